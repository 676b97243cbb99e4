"""Autointerp (sae/autointerp.py) on a toy with known ground-truth features.

The toy: the issue-17 toy model of superposition (40 features in 10 dimensions, the one
test_recovery.py trains) given a vocabulary. Each feature i is two words (group i: " dog",
" cat"; " red", " blue"; ...); a token stream mixes these words (40 %) with 16 filler words
that carry no feature. A word of group i sets feature i to a value uniform on [0.3, 1], so the
hidden activation is ``h = W_i * value`` and an SAE trained on h (TopK, k = 1, 80 latents)
should give latents that fire exactly on one group. *True* latents: decoder cosine > 0.9 with
a feature direction W_i (ground truth from the toy). *Random* latents: an untrained ReLU SAE
of the same width, whose random directions fire on about half the groups.

The claim tested (issue 18): the offline default's scores rank true latents above random ones,
for every scorer, with the offline explanation of each true latent naming its two words.
Metric helpers are checked against sklearn / scipy on the same numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from whybox.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.llm.base import CallableBackend  # noqa: E402
from whybox.sae import autointerp as ai  # noqa: E402

GROUPS = [("dog", "cat"), ("red", "blue"), ("apple", "banana"), ("car", "truck"),
          ("rain", "snow"), ("guitar", "piano"), ("iron", "copper"), ("chair", "table"),
          ("shirt", "jacket"), ("soccer", "tennis"), ("coffee", "tea"), ("France", "Germany"),
          ("Monday", "Friday"), ("doctor", "nurse"), ("hammer", "wrench"), ("river", "lake"),
          ("happy", "angry"), ("bread", "cheese"), ("eagle", "sparrow"), ("rose", "tulip"),
          ("seven", "nine"), ("winter", "summer"), ("knee", "elbow"), ("gold", "silver"),
          ("bus", "train"), ("violin", "flute"), ("oak", "pine"), ("ship", "boat"),
          ("salt", "pepper"), ("moon", "star"), ("king", "queen"), ("python", "java"),
          ("sword", "shield"), ("cloud", "storm"), ("milk", "juice"), ("tiger", "lion"),
          ("desk", "lamp"), ("gift", "party"), ("bridge", "tower"), ("paper", "pencil")]  # fmt: skip
FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "was", "on", "with", "as",
          "for", "at", "by"]  # fmt: skip
WORDS = [f" {w}" for g in GROUPS for w in g] + [f" {w}" for w in FILLER]


def token_toy(cache_dir=None, n_seq: int = 400, T: int = 32, seed: int = 0) -> dict:
    """The toy above: token strings, the trained and the random SAE's activations, and the
    ground truth (feature matched by each latent, decoder cosine)."""
    from whybox.sae.models import SAE, SAEConfig
    from whybox.sae.training import train
    from whybox.zoo.superposition import toy_superposition_model

    toy = toy_superposition_model(40, 10, 0.95, cache_dir=cache_dir, importance=1.0,
                                  n_instances=1, steps=1500, batch_size=512)  # fmt: skip
    rng = np.random.default_rng(seed)
    is_feat = rng.random((n_seq, T)) < 0.4
    feat = rng.integers(0, 40, (n_seq, T))
    ids = np.where(is_feat, 2 * feat + rng.integers(0, 2, (n_seq, T)),
                   80 + rng.integers(0, len(FILLER), (n_seq, T)))  # fmt: skip
    x = np.zeros((n_seq * T, 40), np.float32)
    on = np.flatnonzero(is_feat.reshape(-1))
    x[on, feat.reshape(-1)[on]] = rng.uniform(0.3, 1.0, len(on))
    h = torch.from_numpy(toy.hidden(x))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae = train(activations=h.numpy(), architecture="topk", width=80, k=1, batch_size=256,
                    lr=1e-2, progress=False, random_state=0)  # fmt: skip
        rand = SAE.create(SAEConfig(d_in=10, d_sae=80, architecture="standard"), random_state=1)
        with torch.no_grad():
            acts = sae.encode(h).numpy().reshape(n_seq, T, -1)
            racts = rand.encode(h).numpy().reshape(n_seq, T, -1)
    finally:
        torch.set_num_threads(threads)
    W = toy.W / np.linalg.norm(toy.W, axis=0)
    D = sae.W_dec.detach().double().numpy()
    cos = (D / np.linalg.norm(D, axis=1, keepdims=True)) @ W
    fires = (acts > 0).any(axis=(0, 1))
    true = [j for j in range(80) if cos[j].max() > 0.9 and fires[j]]
    random = [j for j in range(80) if (racts[..., j] > 0).any()]
    return {"tokens": [[WORDS[i] for i in r] for r in ids], "ids": ids, "acts": acts,
            "random_acts": racts, "true": true, "random": random,
            "match": cos.argmax(axis=1)}  # fmt: skip


@pytest.fixture(scope="module")
def toy(zoo_cache):
    return token_toy(zoo_cache)


@pytest.fixture(scope="module")
def scored(toy):
    """Every true and every random latent scored offline (the embedding scorer, ~0.5 s a
    latent on one thread, on the first 12 of each)."""
    out = []
    for acts, latents in ((toy["acts"], toy["true"]), (toy["random_acts"], toy["random"])):
        ctx = ai.FeatureContexts.from_arrays(toy["tokens"], acts)
        table = ai.autointerp(ctx, latents, scorers=("simulation", "detection", "fuzzing")).table()
        emb = ai.score_explanations(ctx, ai.explain_features(ctx, latents[:12]),
                                    scorers=("embedding",)).table()  # fmt: skip
        out.append(table.merge(emb[["latent", "embedding_auroc"]], on="latent", how="left"))
    return out


SCORES = ["simulation", "detection_balanced_accuracy", "detection_auroc",
          "fuzzing_balanced_accuracy", "fuzzing_auroc", "embedding_auroc"]  # fmt: skip


def test_the_toy_sae_recovers_the_word_features(toy):
    assert len(toy["true"]) >= 30  # most of the 40 features have their own latent
    assert len(toy["random"]) >= 40


def test_offline_explanations_name_the_ground_truth_words(toy, scored):
    table, _ = scored
    exact = 0
    for j, text in zip(table["latent"], table["explanation"], strict=True):
        words = {f" {w}" for w in GROUPS[toy["match"][j]]}
        quoted = set(json.loads("[" + text.removeprefix("tokens ").split(";")[0] + "]"))
        assert quoted and quoted <= words, (j, text, words)  # never a wrong word
        exact += quoted == words
    # both words, except where the 10 top contexts happen to show one (measured: 36 of 37,
    # the king/queen latent's top 10 are all " king")
    assert exact >= 0.9 * len(table)


@pytest.mark.parametrize("score", SCORES)
def test_offline_scores_rank_true_latents_above_random_ones(scored, score):
    from sklearn.metrics import roc_auc_score

    true, rand = scored[0][score].to_numpy(float), scored[1][score].to_numpy(float)
    true, rand = true[np.isfinite(true)], rand[np.isfinite(rand)]
    assert len(true) >= 12 and len(rand) >= 12
    labels = np.r_[np.ones(len(true)), np.zeros(len(rand))]
    sep = roc_auc_score(labels, np.r_[true, rand])
    assert sep >= 0.95, (score, true, rand)
    assert true.min() > np.median(rand)
    assert true.mean() > 0.9  # true features are explained almost perfectly
    assert np.median(rand) < 0.85  # and random directions are not: the score can fail


def test_metrics_equal_sklearn_and_scipy():
    from scipy.stats import pearsonr
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=n) + y, 1)  # rounding makes ties
        assert ai.auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        p = s > 0.5
        assert ai.balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))
        a = rng.normal(size=n)
        assert ai.correlation(a, s) == pytest.approx(pearsonr(a, s)[0], abs=1e-12)
    assert math.isnan(ai.auroc([1, 1], [0.2, 0.3]))
    assert ai.correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert ai.auroc([0, 1], [0.0, 1.0]) == 1.0 and ai.auroc([0, 1], [1.0, 0.0]) == 0.0


def _ctx(tokens, acts):
    return ai.Context(tuple(tokens), np.asarray(acts, dtype=float), 1)


def test_prompts_mark_the_activating_tokens_and_escape_nothing():
    c = _ctx([" x", " <b>&amp;", ' "q"', "\n", " y", " z"], [0, 2, 1, 0, 0, 3])
    assert ai.mark_tokens(c) == ' x<< <b>&amp; "q">>\n y<< z>>'  # runs grouped, text raw
    p = ai.explain_prompt([c])
    assert "Example 1: " + ai.mark_tokens(c) in p
    assert " <b>&amp;" in p and "&lt;" not in p and p.endswith("Explanation:")
    # a token holding a marker: another marker pair, named in the prompt
    d = _ctx([" a", " <<", " b"], [0, 1, 0])
    p2 = ai.explain_prompt([d])
    assert "[[like this]]" in p2 and "Example 1:  a[[ <<]] b" in p2
    every = _ctx([" <<", " [[", " {{", " \u27ea"], [1, 0, 0, 0])
    with pytest.raises(InvalidInputError, match="marker"):
        ai.explain_prompt([every])


def test_offline_explanation_log_odds_by_hand():
    dog = _ctx([" the", " dog", " b"], [0, 1, 0])
    cat = _ctx([" the", " cat", " a"], [0, 0.5, 0])
    background = {" a": 500, " b": 300, " dog": 4, " cat": 200, " the": 10}  # m = 1014

    def z(y, b, n, m=1014, prior=10.0):
        """Monroe et al. (2008) eqs. 16 and 20, alpha_w = prior * b_w / m, against the corpus
        counts b (which hold the foreground's tokens)."""
        a = prior * b / m
        d = math.log((y + a) / (n + prior - y - a)) - math.log((b + a) / (m + prior - b - a))
        return d / math.sqrt(1 / (y + a) + 1 / (b + a))

    # foreground (weights act / context max): dog 4 x 1, cat 2 x 1 (each its context's max)
    text = ai.offline_explanation([dog] * 4 + [cat] * 2, background)
    z_dog, z_cat = z(4, 4, 6), z(2, 200, 6)
    assert z_dog > 1.96 > z_cat  # dog enriched; cat as common as the corpus says
    assert z(6, 10, 6) >= 3.0  # " the" precedes every activating token
    assert text == 'tokens " dog"; often after " the"'
    zs = ai._log_odds(Counter({" dog": 4.0, " cat": 2.0}), background)
    assert zs[" dog"] == pytest.approx((z_dog, 4 / 6)) and zs[" cat"][0] == pytest.approx(z_cat)
    # dog covers 4/6 < 0.9 of the mass, but cat is below z 1.96: not added. Lower the bar:
    both = ai.offline_explanation([dog] * 4 + [cat] * 2, background, z_min=z_cat - 1e-9)
    assert both.startswith('tokens " dog", " cat"')


def _fake_llm(prompt: str) -> str:
    """Explains every latent as dog/cat; answers detection / fuzzing by reading the text;
    simulates 10 on quoted words."""
    if prompt.endswith("Explanation:"):
        return 'Fires on "dog" and "cat".\nignored second line'
    if prompt.endswith("Predictions:"):
        lines = [ln.split("\t") for ln in prompt.split("\n") if "\t" in ln]
        return "\n".join(f"{i}\t{10 if json.loads(t).strip() in ('dog', 'cat') else 0}"
                         for i, t in lines)  # fmt: skip
    text = prompt.split("Text: ")[1].split("\n")[0]
    if "marked" in prompt:
        spans = re.findall(r"<<(.*?)>>", text)
        ok = all(w in (" dog", " cat") for sp in spans for w in re.findall(r" \S+", sp))
        return "Yes" if ok else "No"
    return "Yes" if " dog" in text or " cat" in text else "No"


def test_callable_backend_explanation_flows_through(toy):
    j = next(j for j in toy["true"] if GROUPS[toy["match"][j]] == ("dog", "cat"))
    ctx = ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"])
    be = CallableBackend(generate=_fake_llm, name="fake")
    res = ai.autointerp(ctx, [j, toy["true"][-1]], backend=be,
                        scorers=("simulation", "detection", "fuzzing"))  # fmt: skip
    t = res.table()
    assert list(t["explanation"]) == ['Fires on "dog" and "cat".'] * 2
    assert list(t["explainer"]) == ["fake", "fake"]
    assert "<< dog>>" in res.prompts[j] or "<< cat>>" in res.prompts[j]
    good, other = t.iloc[0], t.iloc[1]
    assert good["detection_balanced_accuracy"] == 1.0 and good["fuzzing_balanced_accuracy"] == 1.0
    assert other["detection_balanced_accuracy"] < 0.6  # a wrong explanation: near chance
    # the generate simulator's parsed predictions equal the lexical simulator's
    off = ai.score_explanations(ctx, res.explanations(), scorers=("simulation",)).table()
    np.testing.assert_allclose(t["simulation"], off["simulation"], rtol=1e-12)
    assert (t["simulation_unparsed_tokens"] == 0).all()
    assert be.calls > 0


def test_logprob_backend_detection_scores_are_log_odds(toy):
    ctx = ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"])
    j = next(j for j in toy["true"] if GROUPS[toy["match"][j]] == ("dog", "cat"))

    def lp(prompt, cont):
        text = prompt.split("Text: ")[1].split("\n")[0]
        hit = " dog" in text or " cat" in text
        return -0.1 if (cont == " Yes") == hit else -3.0

    be = CallableBackend(logprobs=lp, name="lp")
    res = ai.score_explanations(ctx, {j: 'the words "dog", "cat"'}, backend=be,
                                scorers=("detection",))  # fmt: skip
    assert res.rows[0]["detection_auroc"] == 1.0
    with pytest.raises(UnsupportedModelError, match="backend=None"):
        ai.explain_features(ctx, [j], backend=be)  # no generate: name the offline default


def test_results_table_json_and_atomic_save(tmp_path, scored, toy):
    res = ai.autointerp(ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"]),
                        toy["true"][:2], scorers=("detection",))  # fmt: skip
    path = res.save(tmp_path)
    assert path.name == "autointerp.json"
    back = json.loads(path.read_text("utf-8"))
    assert [r["latent"] for r in back["rows"]] == toy["true"][:2]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    assert "detection_balanced_accuracy" in str(res)


def test_bad_input(toy):
    ctx = ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"])
    silent = next(j for j in range(80) if not (toy["acts"][..., j] > 0).any())
    with pytest.raises(InvalidInputError, match="never fires"):
        ai.explain_features(ctx, [silent])
    with pytest.raises(InvalidParameterError, match="out of range"):
        ai.explain_features(ctx, [80])
    with pytest.raises(InvalidInputError, match="no latents"):
        ai.explain_features(ctx, [])
    with pytest.raises(InvalidInputError, match="FeatureData"):
        ai.explain_features([1, 2, 3], [0])
    with pytest.raises(InvalidInputError, match="shape"):
        ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"][:3])
    with pytest.raises(InvalidParameterError, match="scorers"):
        ai.score_explanations(ctx, {toy["true"][0]: "x"}, scorers=("vibes",))
    with pytest.raises(InvalidInputError, match="empty"):
        ai.score_explanations(ctx, {toy["true"][0]: "  "})
    with pytest.raises(ModelCallError, match="empty explanation"):
        ai.explain_features(ctx, toy["true"][:1], backend=lambda p: "\n")
    with pytest.raises(InvalidParameterError, match="needs a backend"):
        ai.score_explanations(ctx, {toy["true"][0]: "x"}, simulator="generate")


def test_logprob_simulator_is_the_expected_digit():
    """Bills et al.'s expected-value simulator: p(digit) from the backend's log-probs."""
    tokens = [[" a", " dog", " b", " a", " cat", " b"], [" b", " a", " b", " a", " b", " a"]]
    acts = np.array([[0, 1.0, 0, 0, 0.5, 0], [0] * 6], dtype=float)
    ctx = ai.FeatureContexts.from_arrays(tokens, acts, n_examples=1, n_test=1, n_negative=2,
                                         window=(1, 1))  # fmt: skip

    def lp(prompt, digit):
        """Favours digit 8 on token lines naming dog or cat, 1 elsewhere."""
        i = int(prompt.rsplit("\n", 1)[1].split("\t")[0])
        line = next(ln for ln in prompt.split("\n") if ln.startswith(f"{i}\t"))
        want = 8 if ("dog" in line or "cat" in line) else 1
        return -abs(int(digit) - want) * 1.5

    be = CallableBackend(logprobs=lp, name="lp")
    res = ai.score_explanations(ctx, {0: 'the words "dog" and "cat"'}, backend=be,
                                scorers=("simulation",), simulator="logprobs")  # fmt: skip
    d = np.arange(11)
    ev = {w: float((np.exp(-np.abs(d - w) * 1.5) * d).sum() / np.exp(-np.abs(d - w) * 1.5).sum())
          for w in (1, 8)}  # fmt: skip
    sets = ctx.latent(0)
    pred, truth = [], []
    for c in sets["test"] + sets["negative"]:
        pred += [ev[8 if t.strip() in ("dog", "cat") else 1] / 10 for t in c.tokens]
        truth += list(c.activations)
    from scipy.stats import pearsonr

    assert res.rows[0]["simulation"] == pytest.approx(pearsonr(pred, truth)[0], abs=1e-12)
    with pytest.raises(UnsupportedModelError, match="log-probabilities"):
        ai.score_explanations(ctx, {0: "x"}, backend=lambda p: "0", simulator="logprobs")


def test_embedding_simulator_reads_category_words(toy):
    """A category explanation names none of the words, so the lexical simulator scores 0;
    the MiniLM simulator matches each category to its own latent (measured: diagonal
    0.71-0.82, off-diagonal <= 0.17)."""
    cats = {("dog", "cat"): "animals, pets", ("rain", "snow"): "weather, precipitation",
            ("violin", "flute"): "musical instruments", ("coffee", "tea"): "hot drinks"}  # fmt: skip
    ctx = ai.FeatureContexts.from_arrays(toy["tokens"], toy["acts"])
    latent = {g: next(j for j in toy["true"] if GROUPS[toy["match"][j]] == g) for g in cats}
    M = np.array([[ai.score_explanations(ctx, {latent[g]: e}, scorers=("simulation",),
                                         simulator="embedding").rows[0]["simulation"]
                   for e in cats.values()] for g in cats])  # fmt: skip
    diag = np.diag(M)
    assert (diag > 0.5).all()
    assert (diag[:, None] > M + 0.3 - np.eye(4)).all()  # its own category wins by 0.3
    lex = ai.score_explanations(ctx, {latent[("dog", "cat")]: "animals, pets"},
                                scorers=("simulation",)).rows[0]["simulation"]  # fmt: skip
    assert lex == 0.0
