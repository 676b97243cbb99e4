"""The demo SAEs (:mod:`whybox.sae.demo`) and the purity ranking of their features.

``concept_features`` is checked on hand-made feature data whose purities are counted by
hand; ``demo_sae("tiny_lm")`` is built with a small training budget (``tokens=8192``, cached
apart from the full recipe) and checked for what it promises: a TopK SAE at its site that
fits the model, an evaluation whose L0 is the TopK bound and whose FVU equals the one
computed here from the model's own hidden states on the same held-out stream, a cached
rebuild that is the same SAE, and explanations on the latents the ranking picks.
"""

from __future__ import annotations

import numpy as np
import pytest

from whybox.errors import InvalidParameterError
from whybox.sae.demo import (
    concept_features,
    evaluation_from_dict,
    pydoc_sentences,
    token_class,
)
from whybox.sae.features import FeatureData

VOCAB = ["<pad>", " cat", "Cat", "cat ", " dog", ",", "42", " the", "##ing", "\n"]


def fake_data(top: list[list[int]], density: list[float]) -> FeatureData:
    """Feature data with the given activating tokens per latent (window 1 + 0 + 0)."""
    d, n_top = len(top), max(len(t) for t in top)
    tokens = np.full((d, n_top, 1), -1, dtype=np.int64)
    seq = np.full((d, n_top), -1, dtype=np.int64)
    for j, toks in enumerate(top):
        tokens[j, : len(toks), 0] = toks
        seq[j, : len(toks)] = np.arange(len(toks))
    arrays = {
        "top_tokens": tokens,
        "top_seq": seq,
        "density": np.asarray(density, dtype=np.float64),
        "n_firing": (np.asarray(density) * 1000).astype(np.int64),
    }
    meta = {"d_sae": d, "site": "s", "n_tokens": 1000, "context_window": [0, 0]}
    return FeatureData(meta, arrays, vocab=VOCAB)


def test_concept_features_purity_by_hand():
    data = fake_data(
        [
            [1, 2, 3, 1],  # " cat", "Cat", "cat ", " cat": one string after normalising -> 1.0
            [4, 4, 4, 5],  # 3 of 4 " dog" -> 0.75
            [1, 1, 1, 1],  # pure but dense: skipped
            [7, 7],  # pure but 2 contexts < min_contexts: skipped
            [5, 6, 4, 7],  # 1 of 4 -> 0.25; classes: punctuation, digits, lower, lower -> 0.5
            [4, 4, 4, 6],  # " dog" again, 0.75: a duplicate of latent 1's token
        ],
        [0.01, 0.02, 0.5, 0.01, 0.01, 0.01],
    )
    got = concept_features(data, n=10, min_contexts=3, max_density=0.1)
    assert [g["latent"] for g in got] == [0, 1, 4]
    assert [g["purity"] for g in got] == [1.0, 0.75, 0.25]
    assert got[0]["token"] == " cat" and got[1]["token"] == " dog"
    assert got[2]["class_purity"] == 0.5 and got[2]["token_class"] == "lower"
    assert got[1]["top_tokens"] == [" dog", " dog", " dog", ","]
    both = concept_features(data, n=10, min_contexts=3, max_density=0.1, distinct=False)
    assert [g["latent"] for g in both] == [0, 1, 5, 4]  # tie at 0.75: more firings first
    words = concept_features(data, min_contexts=3, max_density=0.1, classes=("digits",))
    assert words == []
    by_class = concept_features(data, n=2, min_contexts=3, max_density=0.1, by="class")
    # class purities all 0.75 (latent 0: "Cat" is Capitalised): token purity breaks the tie
    assert [g["latent"] for g in by_class] == [0, 1]
    with pytest.raises(InvalidParameterError, match="'token' or 'class'"):
        concept_features(data, by="word")


def test_token_class():
    cases = {" cat": "lower", "Cat": "Capitalised", "HTTP": "UPPER", "42": "digits",
             ",": "punctuation", "\n": "space", "##ing": "lower", "x1": "other", None: "other"}  # fmt: skip
    assert {t: token_class(t) for t in cases} == cases


def test_pydoc_sentences_bounds():
    s = pydoc_sentences("test", min_words=5, max_words=12)
    assert s and all(5 <= len(x.split()) <= 12 for x in s)
    assert all("\n" not in x and "  " not in x for x in s)


def test_bad_model_name():
    from whybox.sae.demo import demo_sae

    with pytest.raises(InvalidParameterError, match="tiny_lm, minilm"):
        demo_sae("gpt5")


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def demo():
    from whybox.sae.demo import demo_sae

    return demo_sae("tiny_lm", tokens=8192)


def test_demo_tiny_lm(demo):
    from whybox.sae.demo import _eval_inputs, _texts, demo_sae

    sae, model, tok, ev, fd = demo
    assert (sae.cfg.hook_name, sae.d_in, sae.d_sae, sae.cfg.k) == ("blocks.2.resid_post", 128,
                                                                     1024, 16)  # fmt: skip
    assert 15.9 <= ev.l0 <= 16.0  # TopK: at most k active (fewer only where pre-acts <= 0)
    # FVU from the model's own hidden states (block 2's output) on the same held-out stream
    ids = _eval_inputs("tiny_lm", _texts("tiny_lm", "test"), tok)
    rows = ids[: len(ids) // 128 * 128].reshape(-1, 128)
    with torch.no_grad():
        h = model(rows, output_hidden_states=True).hidden_states[3]
        x = h[rows != tok.eos_token_id].double()
        err = ((sae(x.float()).double() - x) ** 2).sum()
        var = ((x - x.mean(0)) ** 2).sum()
    assert ev.n_tokens >= len(x)
    assert float(err / var) == pytest.approx(ev.fvu, rel=0.05)  # all but the last short row
    again = demo_sae("tiny_lm", tokens=8192)
    assert torch.equal(again.sae.W_dec, sae.W_dec)
    picked = concept_features(fd, n=4)
    words = concept_features(fd, n=8, classes=("lower", "Capitalised", "UPPER"), min_chars=4)
    assert all(len(p["token"].strip()) >= 4 and p["token"].strip().isalpha() for p in words)
    chosen = {p["latent"] for p in picked}
    chosen |= {p["latent"] for p in words if p["latent"] not in chosen}
    assert {int(j) for j in fd.explanations} <= chosen
    assert len(fd.explanations) == min(8, len(chosen))
    for j, e in fd.explanations.items():
        assert e["score"] >= 0.5 and repr(next(
            p["token"] for p in picked + words if p["latent"] == int(j))) in e["text"]  # fmt: skip
    again_ev = evaluation_from_dict(ev.to_dict())
    assert again_ev.to_dict() == ev.to_dict()
