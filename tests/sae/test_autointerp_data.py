"""Where autointerp's contexts come from: FeatureData (issue 17), any (tokens, activations)
arrays, and an MLP neuron through run_with_cache -- each checked against a direct reading
(the feature page, brute-force ranking in numpy, the cached activations)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from whybox.sae import autointerp as ai  # noqa: E402
from whybox.sae.features import FeatureData, feature_data  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402


@pytest.fixture(scope="module")
def fd():
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    lm, tok = tiny_lm()
    cfg = SAEConfig(d_in=128, d_sae=64, architecture="topk", k=8, hook_name="blocks.2.resid_post")
    sae = SAE.create(cfg, random_state=1)
    texts = tiny_lm_corpus("train")[:12]
    return feature_data(sae, lm, texts, tokenizer=tok, context_size=32, n_top=8,
                        n_quantiles=3, examples_per_quantile=3, batch_size=8)  # fmt: skip


def test_feature_data_contexts_are_the_feature_pages(fd):
    ctx = ai.FeatureContexts.from_feature_data(fd, n_examples=3, n_negative=5)
    j = int(np.argmax(fd.n_firing))
    page = fd.feature(j)
    sets = ctx.latent(j)
    for c, p in zip(sets["train"], page["top_contexts"][:3], strict=True):
        assert list(c.tokens) == p["tokens"]
        np.testing.assert_allclose(c.activations, p["activations"])
        assert c.label == 1
    keys = [(p["seq"], p["pos"]) for p in page["top_contexts"]]
    keys += [(e["seq"], e["pos"]) for iv in page["intervals"] for e in iv["examples"]]
    assert len(sets["test"]) == len(set(keys)) - 3  # held out: no train context, no repeat
    # non-activating: top windows of the latents that co-fire least with j
    count = np.zeros(len(fd))
    a, b = fd.cooc_indptr[j : j + 2]
    count[fd.cooc_indices[a:b]] = fd.cooc_counts[a:b]
    others = [k for k in range(len(fd)) if k != j and fd.n_firing[k] > 0]
    bar = np.sort(count[others])[4]  # the 5th smallest count
    windows = {tuple(fd.feature(k)["top_contexts"][0]["tokens"]) for k in others
               if count[k] <= bar}  # fmt: skip
    assert len(sets["negative"]) == 5 and all(c.tokens in windows for c in sets["negative"])
    assert all(c.label == 0 and c.activations is None for c in sets["negative"])


def test_feature_data_end_to_end_to_the_feature_pages(fd, tmp_path):
    j = int(np.argmax(fd.n_firing))
    res = ai.autointerp(fd, [j], scorers=("simulation", "detection", "embedding"), n_examples=4)
    row = res.rows[0]
    assert row["explanation"].startswith("tokens ")
    top = {t for p in fd.feature(j)["top_contexts"][:4]
           for t, a in zip(p["tokens"], p["activations"], strict=True) if a > 0}  # fmt: skip
    named = json.loads("[" + row["explanation"][7:].split("; often after")[0] + "]")
    assert set(named) <= top
    assert 0.0 <= row["embedding_auroc"] <= 1.0
    folder = res.attach(fd).save(tmp_path / "features")
    res.save(folder)
    back = FeatureData.load(folder)
    assert back.feature(j)["explanation"]["text"] == row["explanation"]
    assert back.feature(j)["explanation"]["score"] == pytest.approx(row["embedding_auroc"])
    assert json.loads((folder / "autointerp.json").read_text())["rows"][0]["latent"] == j
    # the folder itself is accepted as data
    again = ai.explain_features(folder, [j], n_examples=4)
    assert again.rows[0]["explanation"] == row["explanation"]


def _brute_top(a2, n, left, right):
    """Greedy non-overlapping top positions, by a plain loop."""
    T = a2.shape[1]
    cand = [(-a2[s, p], s * T + p) for s in range(a2.shape[0]) for p in range(T) if a2[s, p] > 0]
    cand.sort()
    kept = []
    for _, f in cand:
        if all(f // T != g // T or abs(f % T - g % T) > left + right for g in kept):
            kept.append(f)
        if len(kept) == n:
            break
    return kept


def test_arrays_top_test_and_silent_windows_by_brute_force():
    rng = np.random.default_rng(0)
    n_seq, T = 8, 15
    acts = np.where(rng.random((n_seq, T, 2)) < 0.12, rng.random((n_seq, T, 2)), 0.0)
    words = np.array([f" w{i}" for i in range(20)], dtype=object)
    ids = rng.integers(0, 20, (n_seq, T))
    left, right = 2, 1
    ctx = ai.FeatureContexts.from_arrays(ids, acts, vocab=list(words), n_examples=4, n_test=5,
                                         n_negative=6, window=(left, right))  # fmt: skip
    for j in range(2):
        sets = ctx.latent(j)
        top = _brute_top(acts[:, :, j], 4, left, right)
        for c, f in zip(sets["train"], top, strict=True):
            s, p = divmod(f, T)
            lo, hi = max(p - left, 0), min(p + right + 1, T)
            assert list(c.tokens) == list(words[ids[s, lo:hi]])
            np.testing.assert_array_equal(c.activations, acts[s, lo:hi, j])
        assert len(sets["test"]) == 5 and all(c.activations.max() > 0 for c in sets["test"])
        assert len(sets["negative"]) == 6
        assert all((c.activations == 0).all() for c in sets["negative"])
    # the draws are seeded and do not depend on which latent is asked first
    other = ai.FeatureContexts.from_arrays(ids, acts, vocab=list(words), n_examples=4, n_test=5,
                                           n_negative=6, window=(left, right))  # fmt: skip
    other.latent(1)
    assert [c.tokens for c in other.latent(0)["test"]] == [c.tokens for c in ctx.latent(0)["test"]]


def test_mlp_neuron_contexts_from_run_with_cache():
    from tests.internals.tiny import build, input_ids
    from whybox.internals.cache import run_with_cache

    model = build("gpt2")
    ids = input_ids(batch=6, pos=12, seed=1)
    site = "blocks.0.mlp.post"
    ctx = ai.neuron_contexts(model, ids, site, n_examples=3, window=(3, 1))
    _, cache = run_with_cache(model, ids, names=[site])
    a = np.maximum(cache[site].numpy(), 0.0)
    assert ctx.n_latents == a.shape[-1]
    j = int(np.argmax(a.reshape(-1, a.shape[-1]).max(0)))
    c = ctx.latent(j)["train"][0]
    s, p = np.unravel_index(np.argmax(a[:, :, j]), a.shape[:2])
    np.testing.assert_allclose(c.activations, a[s, max(p - 3, 0) : p + 2, j], rtol=1e-6)
    assert list(c.tokens) == [f"<{int(i)}>" for i in ids[s, max(p - 3, 0) : p + 2]]
    res = ai.autointerp(ctx, [j], scorers=("simulation", "detection"), n_examples=3)
    assert np.isfinite(res.rows[0]["simulation"])


def test_scores_never_use_the_contexts_the_explainer_saw(fd):
    j = int(np.argmax(fd.n_firing))
    page = fd.feature(j)
    keys = {(p["seq"], p["pos"]) for p in page["top_contexts"]}
    keys |= {(e["seq"], e["pos"]) for iv in page["intervals"] for e in iv["examples"]}
    expl = ai.explain_features(fd, [j], n_examples=6)
    res = ai.score_explanations(fd, expl, scorers=("detection",))  # n_examples from expl
    assert res.rows[0]["n_test"] == len(keys) - 6
    shown = {
        c.tokens for c in ai.FeatureContexts.from_feature_data(fd, n_examples=6).latent(j)["train"]
    }
    test = ai.FeatureContexts.from_feature_data(fd, n_examples=6).latent(j)["test"]
    assert len(shown) == 6 and len(test) == len(keys) - 6


def test_a_local_language_model_backend_flows_through():
    """The project's tiny LM as explainer and scorer (its answers are poor; the plumbing is
    what is tested): the explanation is the first line it generates for the prompt."""
    from whybox.llm.base import as_backend
    from whybox.zoo.tinylm import tiny_lm

    lm, tok = tiny_lm()
    be = as_backend(lm, tokenizer=tok)
    tokens = [[" a", " dog", " b", " a", " cat", " b"], [" b", " a", " b", " a", " b", " a"]] * 2
    acts = np.array([[0, 1.0, 0, 0, 0.5, 0], [0] * 6] * 2)
    ctx = ai.FeatureContexts.from_arrays(tokens, acts, n_examples=2, n_test=2, n_negative=2,
                                         window=(1, 1))  # fmt: skip
    with warnings.catch_warnings():  # long prompts are cut to the LM's 128-token window
        warnings.simplefilter("ignore", UserWarning)
        res = ai.autointerp(ctx, [0], backend=be, scorers=("detection", "fuzzing"), n_examples=2)
        out = be.generate([res.prompts[0]], max_new_tokens=64)[0]
        again = ai.score_explanations(ctx, res, backend=be, scorers=("simulation",),
                                      simulator="logprobs")  # fmt: skip
    assert res.rows[0]["explanation"] == next(ln.strip() for ln in out.splitlines() if ln.strip())
    assert np.isfinite(again.rows[0]["simulation"])
    assert "detection_auroc" not in again.rows[0]  # earlier scores are not carried over
