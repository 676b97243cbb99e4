"""Every Python block of README.md runs.

The README's blocks are quick references: most of them use names a reader already has (a
fitted ``model``, ``X``, a tokenizer). Each block here runs, as written, after a short setup
that makes those names from the zoo's data and models (the setup is keyed by the block's first
line, so a README edit that adds, removes or reorders blocks fails with a message that says
which block to give a setup). Blocks run in a temporary folder, since some write files. A
block that no longer runs (a renamed keyword, a changed signature) fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .docs._md_blocks import fenced_blocks

README = Path(__file__).resolve().parents[1] / "README.md"

_TABULAR = """
import numpy as np
import whybox as wb
from sklearn.ensemble import HistGradientBoostingClassifier
data = wb.zoo.credit(n=2000, random_state=0)
model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(data.X, data.y)
X, y = data.X.iloc[:8], data.y[:8]
X_train = data.X.iloc[:200]
"""

_TORCH = """
import torch
import whybox as wb
model, data = wb.zoo.digits_cnn(random_state=0)
cnn = model
images = torch.as_tensor(data.X_test[:2])
"""

_LM = """
import torch
import whybox as wb
lm_model, tok = wb.zoo.tiny_lm()
folder = str(wb.zoo.tiny_lm_path())
texts = wb.zoo.tiny_lm_corpus("train")[:8]
"""

# first line of the block -> setup run before it, in the same namespace
SETUPS: dict[str, str] = {
    "import whybox as wb\nfrom sklearn.ensemble import HistGradientBoostingClassifier": "",
    "explainer = wb.ExactShap(": _TABULAR,
    "exp = wb.TreeShap(xgb_model)": """
import numpy as np
import xgboost, lightgbm
import whybox as wb
Xbc, ybc = wb.zoo.breast_cancer()
X, X_train = Xbc.iloc[:20], Xbc.iloc[20:]
xgb_model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(Xbc, ybc)
lgbm = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(Xbc, ybc)
""",
    "exp = wb.KernelShap(model, background=wb.kmeans(X_train, 20))": """
import numpy as np
import dask.dataframe as dd
from distributed import Client, LocalCluster
from sklearn.ensemble import RandomForestClassifier
import whybox as wb
Xbc, ybc = wb.zoo.breast_cancer()
cols = list(Xbc.columns[:6])
X_train, X = Xbc[cols].iloc[30:130], Xbc[cols].iloc[:3]
model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(Xbc[cols], ybc)
cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)
dask_df = dd.from_pandas(Xbc[cols].iloc[:40], npartitions=2)
""",
    "pd_ = wb.partial_dependence(model, X, ": _TABULAR
    + "exp = wb.ExactShap(model, X_train.iloc[:20]).explain(X)\n",
    "cf = wb.Counterfactuals(model, data.X,": _TABULAR + "applicant = data.X.iloc[[3]]\n",
    "from whybox import metrics": """
import numpy as np
import torch
import whybox as wb
from sklearn.linear_model import LogisticRegression
Xbc, ybc = wb.zoo.breast_cancer()
cols = list(Xbc.columns[:5])
X_bg, X = Xbc[cols].iloc[50:80], Xbc[cols].iloc[:4]
model = LogisticRegression(max_iter=1000).fit(Xbc[cols], ybc)
explainer = wb.ExactShap(model, X_bg)
exp = explainer.explain(X)
exp_shap = exp
exp_lime = wb.Lime(model, X_bg, random_state=0).explain(X, budget=500)
torch_model, digits = wb.zoo.digits_cnn(random_state=0)
images = torch.as_tensor(digits.X_test[:2])
""",
    "model, data = wb.zoo.digits_cnn(": """
import torch
import whybox as wb

class _AuxAndLogits(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
    def forward(self, x):
        out = self.net(x)
        return out.sum(dim=1), out

model_returning_aux_and_logits = _AuxAndLogits(wb.zoo.digits_cnn(random_state=0)[0])
""",
    "masker = wb.ImageMasker(": _TORCH,
    "ebm = wb.ExplainableBoostingClassifier()": """
import whybox as wb
data = wb.zoo.credit(n=600, random_state=0)
X = data.X.iloc[:5]
""",
    "import whybox as wb\nfrom transformers import AutoModelForCausalLM": _LM
    + """
clean_ids = tok("The for statement is used to iterate over the", return_tensors="pt").input_ids
corrupted_ids = tok("The while statement is used to iterate over the", return_tensors="pt").input_ids
answer, wrong = tok(" list").input_ids[0], tok(" loop").input_ids[0]
with torch.no_grad():
    ids_ = tok(" ".join(texts), return_tensors="pt").input_ids[:, :64]
    hidden = lm_model(ids_, output_hidden_states=True).hidden_states[2]
acts = hidden[0].numpy()
labels = (acts[:, 0] > acts[:, 0].mean()).astype(int)
word_ids = [i // 4 for i in range(len(labels))]
positive, negative = ["x is True", "it is True"], ["x is False", "it is False"]
import numpy as np
sentences = [t[:80] for t in wb.zoo.tiny_lm_corpus("train")[:60]]
sentence_labels = np.array(["(" in s for s in sentences], dtype=int)   # code-like or prose
""",
    "exp = wb.explain(clf, texts, tokenizer=clf_tok": """
import torch
import whybox as wb
s = wb.zoo.sentiment_classifier()
clf, clf_tok = s.model, s.tokenizer
lm, tok = wb.zoo.tiny_lm()
texts = ["a warm and funny film", "dull plot"]
prompts = ["The function returns"]
ids = tok(prompts[0], return_tensors="pt").input_ids
cnn, digits = wb.zoo.digits_cnn(random_state=0)
images = torch.as_tensor(digits.X_test[:2])
""",
    "model, tok = wb.zoo.tiny_lm()": """
import torch
import whybox as wb
m_, t_ = wb.zoo.tiny_lm()
ids = t_("The for statement iterates over a list", return_tensors="pt").input_ids
with torch.no_grad():
    x = m_(ids, output_hidden_states=True).hidden_states[3][0]   # blocks.2.resid_post (pos, d_model)
""",
    "from whybox.llm import LocalBackend": """
import numpy as np
import whybox as wb
from sklearn.tree import DecisionTreeClassifier
model, tok = wb.zoo.tiny_lm()
query = "What does the for statement do?"
documents = ["The for statement iterates over a sequence.", "Classes define objects.",
             "The while loop repeats while true.", "Modules hold definitions."]
answer = " It iterates."
Xbc, ybc = wb.zoo.breast_cancer()
X = Xbc.iloc[:, :4]
tabular_model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, ybc)
""",
    "from whybox.text import cot": """
import numpy as np
import torch
import whybox as wb
from whybox.llm import CallableBackend
from whybox.zoo.scratchpad import VOCAB
sp = wb.zoo.scratchpad_model("dependent")
model, tok = sp.model, sp.tokenizer
# the judge: any backend; here a keyword rule, since no model here can grade a rubric
lm = CallableBackend(generate=lambda p: "Score: 9" if "bypass" in p else "Score: 1")
qs = wb.zoo.scratchpad_questions(30, random_state=5)
texts = [q["prompt"] + " " + " ".join(map(str, q["scratchpad"])) + " A: " + q["answer"] for q in qs]
ids = torch.tensor([sp.encode(t) for t in texts])
_, c = wb.run_with_cache(model, ids, names="blocks.1.resid_post")
acts = c["blocks.1.resid_post"].reshape(-1, c["blocks.1.resid_post"].shape[-1]).numpy()
words = [VOCAB[i] for i in ids.reshape(-1).tolist()]
probe = wb.Probe(random_state=0).fit(acts, np.array([w.isdigit() and int(w) >= 3 for w in words]))
trace = "Q: 3 1 2 = S: 3 4 6 A: 6"
generate = sp
questions = [q["prompt"][: -len(" S:")] for q in wb.zoo.scratchpad_questions(4)]
""",
}


# the README's fenced ``python`` blocks, in order (the same extractor as the docs pages' tests)
BLOCKS = [src for info, src, _ in fenced_blocks(README) if info == "python"]


def _setup_for(block: str) -> str:
    found = [key for key in SETUPS if block.startswith(key)]
    if len(found) != 1:
        raise AssertionError(
            f"README block starting {block.splitlines()[0]!r} matches {len(found)} setups in "
            "tests/test_readme.py: give it exactly one (SETUPS, keyed by the block's first line)"
        )
    return SETUPS[found[0]]


def test_every_setup_belongs_to_a_block():
    for key in SETUPS:
        assert any(b.startswith(key) for b in BLOCKS), f"no README block starts with {key!r}"


@pytest.mark.parametrize(
    "index", range(len(BLOCKS)), ids=[f"block{i + 1}" for i in range(len(BLOCKS))]
)
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = BLOCKS[index]
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(_setup_for(block), f"<setup of README block {index + 1}>", "exec"), namespace)
    try:
        exec(compile(block, f"<README block {index + 1}>", "exec"), namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()
            namespace["cluster"].close()
        import matplotlib.pyplot as plt

        plt.close("all")
