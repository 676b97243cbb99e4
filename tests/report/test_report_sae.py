"""The SAE report: evaluation table, density histogram, feature cards; every token escaped.

A tiny random GPT-2 (tests/internals/tiny.py) read by a random TopK SAE at
``blocks.1.resid_post``; its feature data gets a vocabulary whose first tokens are hostile
HTML (``<script>alert(1)</script>``, handlers, entities, Jinja braces...). The page is parsed
with :mod:`html.parser`: only the template's tags, no handler attribute, no script; the
hostile tokens come back as text. The cards' activations are checked against the SAE's
encoding of the model's own ``output_hidden_states``, the table against the evaluation's
fields, the dead count against a count of latents that never fire on the same positions.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

import whybox as wb  # noqa: E402
from tests.internals.tiny import build, input_ids  # noqa: E402
from tests.report.test_internals_report import HOSTILE, check_safe  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.report import sae as R  # noqa: E402
from whybox.report.internals import show_token  # noqa: E402
from whybox.sae.features import FeatureData  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402

SITE = "blocks.1.resid_post"


@pytest.fixture(scope="module")
def setup():
    model = build("gpt2")
    cfg = SAEConfig(d_in=32, d_sae=24, architecture="topk", k=3, hook_name=SITE)
    sae = SAE.create(cfg, random_state=0).eval()
    ids = input_ids(batch=6, pos=24, seed=1)
    ids[:, 2::5] = 0  # the <script> token in every window
    ev = wb.sae.evaluate(sae, model, ids, exclude_special=False)
    raw = wb.sae.feature_data(sae, model, ids, n_top=6)
    vocab = list(HOSTILE) + [f"t{i}" for i in range(96 - len(HOSTILE))]
    fd = FeatureData(raw.meta, {n: raw.array(n) for n in raw.names}, vocab=vocab)
    return model, sae, ids, ev, fd


def site_codes(model, sae, ids):
    """f (batch, pos, d_sae): the SAE's codes of block 1's output, from hidden_states[2]."""
    with torch.no_grad():
        h = model(ids, output_hidden_states=True).hidden_states[2]
        return sae.encode(h).numpy()


def test_hostile_tokens_are_text_and_the_page_is_safe(setup):
    _, _, _, ev, fd = setup

    def shows_script(j):  # a card of latent j shows token 0 (<script>alert(1)</script>)
        return any(0 in c["token_ids"] for c in fd.feature(j)["top_contexts"][:5])

    chosen = [j for j in range(len(fd)) if shows_script(j)][:3]
    assert chosen
    fd.set_explanations({j: "plain" for j in chosen})
    fd.set_explanations({chosen[0]: "<script>alert('expl')</script> concept"})
    html = wb.report([ev, fd]).to_html()
    page = check_safe(html)
    text = "".join(page.text)
    assert "<script>alert('expl')</script> concept" in text
    shown = {show_token(t) for t in HOSTILE}
    cells = [c for g in page.grids for row in g for c in row]
    lines = {line for c in cells for line in c["lines"]}
    titles = {c["attrs"].get("title", "").rsplit(": ", 1)[0] for c in cells}
    assert "<script>alert(1)</script>" in titles  # whole in the title (the cell cuts it)
    assert "<script>alert…" in lines
    assert len(shown & titles) >= 3 and len(shown & lines) >= 3
    assert "&lt;script&gt;alert(1)" in html and "<script>alert(1)" not in html


def test_card_cells_are_the_sae_codes_of_the_models_activations(setup):
    model, sae, ids, _, fd = setup
    f = site_codes(model, sae, ids)
    j = int(np.argmax(np.asarray(fd.array("n_firing"))))
    sec = R.feature_cards_section(fd, [j], n_contexts=3)
    (grid,) = sec["grids"]
    page = fd.feature(j)
    contexts = [r for r in grid["rows"] if r["label"].startswith("#")]
    assert len(contexts) == min(3, len(page["top_contexts"]))
    order = np.sort(f[..., j].ravel())[::-1]
    for r, (row, ctx) in enumerate(zip(contexts, page["top_contexts"], strict=False)):
        seq, pos = ctx["seq"], ctx["pos"]
        assert float(row["label"].split()[1]) == pytest.approx(f[seq, pos, j], rel=1e-3)
        assert f[seq, pos, j] == pytest.approx(order[r], rel=1e-5)  # ranked by activation
        centre = [c for c in row["cells"] if "(activating token)" in c["title"]]
        assert len(centre) == 1
        value = float(centre[0]["title"].split(": ")[-1].split(" ")[0])
        assert value == pytest.approx(f[seq, pos, j], rel=1e-3)
        assert centre[0]["title"].rsplit(": ", 1)[0] == show_token(fd.vocab[int(ids[seq, pos])])
        assert row["cells"].index(centre[0]) == R.CARD_WINDOW[0]  # peaks aligned in a column
        assert centre[0]["shade"] != "rgb(255,255,255)"
    logit_rows = {r["label"]: r for r in grid["rows"] if not r["label"].startswith("#")}
    assert set(logit_rows) == {"promotes", "suppresses"}
    # the promoted tokens: the largest entries of the direct path W_dec[j] -> logits
    w = sae.W_dec[j].detach()
    ln = model.transformer.ln_f
    eff = ((w - w.mean()) * ln.weight.detach()) @ model.lm_head.weight.detach().T
    top = torch.argsort(eff, descending=True)[:6].tolist()
    assert [c["title"].rsplit(": ", 1)[0] for c in logit_rows["promotes"]["cells"]] == [
        show_token(fd.vocab[t]) for t in top
    ]


def test_evaluation_table_and_density(setup):
    model, sae, ids, ev, _ = setup
    sec = R.evaluation_section(ev)
    values = {row[1]: row[2] for row in sec["rows"]}
    assert values["l0"] == f"{ev.l0:.5g}" and values["fvu"] == f"{ev.fvu:.5g}"
    assert values["ce_loss_score"] == f"{ev.ce_loss_score:.5g}"
    f = site_codes(model, sae, ids)
    dead = int(((f > 0).sum(axis=(0, 1)) == 0).sum())
    dens = R.density_section(ev)
    assert f"{dead:,} (" in dens["figures"][0]["caption"]
    assert dens["table"]["rows"][1] == ["dead (never fired)", f"{dead:,}"]


def test_report_dispatch_and_errors(setup):
    _, _, _, ev, fd = setup
    rep = wb.report(ev)
    assert [s["id"] for s in rep.sections] == ["sae-evaluation", "sae-density"]
    rep = wb.report(fd, title="<b>t</b>")
    assert [s["id"] for s in rep.sections] == ["sae-density", "sae-features"]
    assert "&lt;b&gt;t&lt;/b&gt;" in rep.to_html()
    assert R.is_sae(ev) and R.is_sae(fd) and not R.is_sae(object())
    with pytest.raises(InvalidParameterError, match="SAEEvaluation"):
        R.sae_report(ev, "nope")
    with pytest.raises(InvalidParameterError, match="FeatureData"):
        R.feature_cards_section(ev)
