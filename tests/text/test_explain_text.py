"""wb.explain on texts: exact Shapley / Banzhaf by brute-force enumeration written here, token
ablation = Captum 0.9 (LLMAttribution(FeatureAblation) on causal LMs, FeatureAblation on a
classifier), sampling estimators against exact, batch-size invariance, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import whybox as wb
from tests.text.tiny_text import causal_lm, classifier, gpt_tokenizer, torch, wordpiece
from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def clf():
    return classifier()


@pytest.fixture(scope="module")
def lm():
    return causal_lm("gpt2")


# ------------------------------------------------------------------ oracles written here
def clf_value(model, ids, cls):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([list(ids)])).logits[0].double()
    return torch.softmax(logits, -1)[cls].item()


def lm_value(model, ids, cont):
    full = list(ids) + list(cont)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].double(), -1)
    return sum(lp[len(ids) - 1 + t, c].item() for t, c in enumerate(cont))


def _memo(v):
    seen = {}

    def cached(S):
        if S not in seen:
            seen[S] = v(S)
        return seen[S]

    return cached


def shapley_by_permutations(v, n):
    """Mean marginal contribution over all n! orderings."""
    v = _memo(v)
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        S = frozenset()
        for j in order:
            phi[j] += v(S | {j}) - v(S)
            S = S | {j}
    return phi / math.factorial(n)


def banzhaf_by_enumeration(v, n):
    v = _memo(v)
    beta = np.zeros(n)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        for r in range(n):
            for S in itertools.combinations(others, r):
                beta[j] += v(frozenset(S) | {j}) - v(frozenset(S))
    return beta / 2 ** (n - 1)


def word_spans(tok, text, n_special_front):
    """Token indices of each whitespace word, from the tokenizer's word ids (independent of
    whybox's grouping)."""
    enc = tok(text)
    groups = {}
    for t, w in enumerate(enc.word_ids()):
        if w is not None:
            groups.setdefault(w, []).append(t)
    return [groups[w] for w in sorted(groups)]


# ------------------------------------------------------------------ exact Shapley
def test_exact_shapley_classifier_words_equals_enumeration(clf):
    tok = wordpiece()
    text = "the cat sat on zorb"
    ids = tok(text)["input_ids"]
    words = word_spans(tok, text, 1)
    assert len(words) == 5 and len(words[-1]) == 4  # "zorb": four word pieces

    def v(S):
        keep = [
            t for t in range(len(ids)) if t in (0, len(ids) - 1) or any(t in words[j] for j in S)
        ]
        seq = [ids[t] if t in keep else tok.mask_token_id for t in range(len(ids))]
        return clf_value(clf, seq, 2)

    exp = wb.explain(
        clf, text, tokenizer=tok, target=2, method="exact", granularity="word", masker="mask"
    )
    assert exp.feature_names[0] == text.split()
    np.testing.assert_allclose(exp.values[0], shapley_by_permutations(v, 5), atol=1e-6)
    np.testing.assert_allclose(exp.base_values[0], v(frozenset()), atol=1e-6)
    np.testing.assert_allclose(exp.predictions[0], v(frozenset(range(5))), atol=1e-6)
    np.testing.assert_allclose(exp.completeness_gap(), [0.0], atol=1e-9)


def test_exact_shapley_causal_drop_equals_enumeration(lm):
    tok = gpt_tokenizer()
    texts = ["the cat sat on it", "a dog is bad"]
    cont = tok(" the mat", add_special_tokens=False)["input_ids"]
    exp = wb.explain(lm, texts, tokenizer=tok, target=" the mat", method="exact", batch_size=5)
    assert exp.is_ragged and [len(v) for v in exp.values] == [5, 4]
    for i, text in enumerate(texts):
        ids = tok(text)["input_ids"]  # <bos> + one token per word
        n = len(ids) - 1

        def v(S, ids=ids):
            return lm_value(lm, [ids[0]] + [ids[1 + j] for j in sorted(S)], cont)

        np.testing.assert_allclose(exp.values[i], shapley_by_permutations(v, n), atol=2e-5)
    assert exp.meta["tokens"][1] == ["<bos>", "a", "dog", "is", "bad"]


def test_banzhaf_and_sampling_estimators(clf):
    tok = wordpiece()
    text = "a dog is not very good"
    ids = tok(text)["input_ids"]
    n = len(ids) - 2

    def v(S):
        return clf_value(clf, [ids[0]] + [ids[1 + j] for j in sorted(S)] + [ids[-1]], 1)

    kw = dict(tokenizer=tok, target=1, masker="drop")
    ban = wb.explain(clf, text, method="banzhaf", **kw)
    np.testing.assert_allclose(ban.values[0], banzhaf_by_enumeration(v, n), atol=1e-6)
    exact = wb.explain(clf, text, method="exact", **kw).values[0]
    np.testing.assert_allclose(exact, shapley_by_permutations(v, n), atol=1e-6)
    kern = wb.explain(clf, text, method="kernel", budget=2**n, **kw)
    np.testing.assert_allclose(kern.values[0], exact, atol=1e-8)
    for method in ("permutation", "kernel"):
        est = wb.explain(clf, text, method=method, budget=200, random_state=3, **kw)
        se = np.maximum(est.std[0], 1e-9)
        assert np.all(np.abs(est.values[0] - exact) <= 4 * se + 1e-6), method
    lime = wb.explain(clf, text, method="lime", budget=300, **kw)
    assert lime.method == "lime" and lime.values[0].shape == (n,)
    assert np.corrcoef(lime.values[0], exact)[0, 1] > 0.5
    auto = wb.explain(clf, text, **kw)
    assert auto.method == "exact" and "auto -> exact" in auto.params["method_selection"]


# ------------------------------------------------------------------ Captum oracle
@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox"])
@pytest.mark.parametrize("attr_target", ["log_prob", "prob"])
def test_ablation_equals_captum_llm_attribution(arch, attr_target):
    lm = causal_lm(arch)
    tok = gpt_tokenizer()
    text = "the cat sat on the mat"
    la = captum_attr.LLMAttribution(captum_attr.FeatureAblation(lm), tok, attr_target=attr_target)
    inp = captum_attr.TextTokenInput(
        text, tok, baselines=tok.pad_token_id, skip_tokens=[tok.bos_token_id]
    )
    value = "logprob" if attr_target == "log_prob" else "prob"
    # a one-token target (Captum's default token-by-token path)
    res = la.attribute(inp, target=" a")
    exp = wb.explain(
        lm, text, tokenizer=tok, target=" a", method="ablation", masker="pad", value=value
    )
    assert exp.feature_names[0] == res.input_tokens
    np.testing.assert_allclose(exp.values[0], res.seq_attr.numpy(), atol=2e-6, rtol=1e-4)
    # a continuation: Captum's one-pass path (its cached token-by-token path feeds the whole
    # sequence again with the cache on transformers 5.23, so it is not the reference here)
    res = la.attribute(inp, target=" a dog", forward_in_tokens=False)
    exp = wb.explain(
        lm, text, tokenizer=tok, target=" a dog", method="occlusion", masker="pad", value=value
    )
    np.testing.assert_allclose(exp.values[0], res.seq_attr.numpy(), atol=2e-6, rtol=1e-4)


def test_ablation_equals_captum_feature_ablation_on_classifier(clf):
    tok = wordpiece()
    text = "the cat is not very good"
    ids = tok(text)["input_ids"]
    cls_id, sep_id = ids[0], ids[-1]

    def forward(body):  # body: (b, n) ids without the specials
        b = body.shape[0]
        full = torch.cat([torch.full((b, 1), cls_id), body, torch.full((b, 1), sep_id)], dim=1)
        return torch.softmax(clf(input_ids=full).logits, -1)

    fa = captum_attr.FeatureAblation(forward)
    with torch.no_grad():
        ref = fa.attribute(torch.tensor([ids[1:-1]]), baselines=tok.mask_token_id, target=0)
    exp = wb.explain(clf, text, tokenizer=tok, target=0, method="ablation", masker="mask")
    np.testing.assert_allclose(exp.values[0], ref[0].numpy(), atol=2e-6)


# ------------------------------------------------------------------ invariance
def test_results_do_not_depend_on_batch_size(lm):
    tok = gpt_tokenizer()
    texts = ["the cat sat on the mat", "it is good"]
    a = wb.explain(
        lm, texts, tokenizer=tok, target=" a dog", method="exact", batch_size=1, kv_cache=False
    )
    b = wb.explain(lm, texts, tokenizer=tok, target=" a dog", method="exact", batch_size=13)
    c = wb.explain(lm, texts[::-1], tokenizer=tok, target=" a dog", method="exact", batch_size=64)
    for i in range(2):
        np.testing.assert_allclose(a.values[i], b.values[i], atol=2e-5)
        np.testing.assert_allclose(a.values[i], c.values[1 - i], atol=2e-5)


def test_per_text_targets_and_default_target(lm):
    tok = gpt_tokenizer()
    exp = wb.explain(
        lm, ["the cat", "a dog"], tokenizer=tok, target=[" sat", " is"], method="ablation"
    )
    assert exp.meta["targets"] == [[" sat"], [" is"]]
    own = wb.explain(lm, "the cat", tokenizer=tok, method="ablation")
    with torch.no_grad():
        nxt = int(lm(input_ids=torch.tensor([tok("the cat")["input_ids"]])).logits[0, -1].argmax())
    assert own.meta["target_ids"] == [[nxt]]


# ------------------------------------------------------------------ bad input
def test_bad_input(clf, lm):
    g, w = gpt_tokenizer(), wordpiece()
    with pytest.raises(InvalidInputError, match="text 1 is empty"):
        wb.explain(lm, ["the cat", ""], tokenizer=g, target=" a")
    with pytest.raises(InvalidInputError, match=r"tokens long.*context of 64.*truncate=True"):
        wb.explain(lm, " ".join(["cat"] * 80), tokenizer=g, target=" a")
    ok = wb.explain(
        clf, " ".join(["cat"] * 80), tokenizer=w, target=0, truncate=True, method="ablation"
    )
    assert len(ok.values[0]) == 62
    with pytest.raises(InvalidParameterError, match="has no mask token; use masker='pad'"):
        wb.explain(lm, "the cat", tokenizer=g, target=" a", masker="mask")
    with pytest.raises(InvalidParameterError, match="not in the vocabulary"):
        wb.explain(lm, "the cat", tokenizer=g, target=1000)
    with pytest.raises(InvalidParameterError, match="not in the tokenizer's vocabulary"):
        wb.explain(lm, "the cat", tokenizer=g, target=" 日本")
    with pytest.raises(InvalidParameterError, match="is text to generate, but"):
        wb.explain(clf, "the cat", tokenizer=w, target=" Paris")
    with pytest.raises(WhyboxError, match="granularit"):
        wb.explain(clf, "the cat", tokenizer=w, target=0, granularty="word")
    with pytest.raises(InvalidParameterError, match="needs the model's tokenizer"):
        wb.explain(clf, "the cat", target=0)
    with pytest.raises(InvalidParameterError, match="background= is not used for texts"):
        wb.explain(clf, "the cat", tokenizer=w, target=0, background=np.zeros((1, 2)))
    with pytest.raises(InvalidParameterError, match="not a perturbation method for texts"):
        wb.explain(clf, "the cat", tokenizer=w, target=0, method="tree")
    with pytest.raises(InvalidParameterError, match="2 items for 1 texts"):
        wb.explain(lm, "the cat", tokenizer=g, target=[" a", " b"])


def test_own_generation_target_is_greedy_decoding(lm):
    tok = gpt_tokenizer()
    ids = tok("the cat sat")["input_ids"]
    seq = list(ids)
    with torch.no_grad():
        for _ in range(3):
            seq.append(int(lm(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
    gen = seq[len(ids) :]
    exp = wb.explain(lm, "the cat sat", tokenizer=tok, method="ablation", max_new_tokens=3)
    assert exp.meta["target_ids"] == [gen]
    np.testing.assert_allclose(exp.predictions[0], lm_value(lm, ids, gen), atol=2e-5)


def test_several_classes_give_an_output_axis(clf):
    tok = wordpiece()
    exp = wb.explain(clf, ["the cat", "a dog is bad"], tokenizer=tok, target=[0, 2], method="exact")
    assert exp.values[1].shape == (4, 2) and exp.base_values.shape == (2, 2)
    one = wb.explain(clf, ["the cat", "a dog is bad"], tokenizer=tok, target=2, method="exact")
    np.testing.assert_allclose(exp.values[1][:, 1], one.values[1], atol=1e-12)
    np.testing.assert_allclose(exp.completeness_gap(), 0.0, atol=1e-9)


def test_params_and_save_load(clf, tmp_path):
    tok = wordpiece()
    exp = wb.explain(clf, ["the cat sat", "a dog"], tokenizer=tok, target=1, method="kernel")
    assert exp.params["output"] == "class probability (BertForSequenceClassification)"
    assert exp.params["masker"] == "mask" and exp.params["granularity"] == "token"
    back = wb.load(exp.save(tmp_path / "e.wbx"))
    assert back.feature_names == exp.feature_names
    assert back.meta["tokens"] == exp.meta["tokens"]
    np.testing.assert_allclose(back.values[1], exp.values[1])
    assert exp[1].meta["texts"] == ["a dog"]


def test_other_text_methods_are_routed_by_name(lm, monkeypatch):
    from whybox import api

    names = api.available_text_methods()
    for name in (
        "exact",
        "ablation",
        "integrated_gradients",
        "saliency",
        "rollout",
        "chefer",
        "tokenshap",
    ):
        assert name in names
    seen = {}

    def fake(model, texts, *, target, random_state, progress, budget, tolerance, **kw):
        seen.update(texts=texts, target=target, budget=budget, **kw)
        return "routed"

    monkeypatch.setitem(api._TEXT_REGISTRY, "fake", lambda: fake)
    tok = gpt_tokenizer()
    out = wb.explain(lm, ["the cat"], tokenizer=tok, target=" a", method="fake", budget=7, steps=3)
    assert out == "routed"
    assert seen == {"texts": ["the cat"], "target": " a", "budget": 7, "tokenizer": tok, "steps": 3}
    sal = wb.explain(lm, ["the cat"], tokenizer=tok, target=" a", method="saliency")
    assert sal.method == "saliency" and sal.feature_names == [["the", "cat"]]
    # TokenShap runs on the same token game: with every coalition it is the exact value
    exact = wb.explain(lm, "the cat sat", tokenizer=tok, target=" on", method="exact")
    ts = wb.explain(
        lm,
        "the cat sat",
        tokenizer=tok,
        target=" on",
        method="tokenshap",
        value="logprob",
        budget=8,
    )
    np.testing.assert_allclose(ts.values[0], exact.values[0], atol=1e-6)


def test_attnlrp_on_texts_sums_token_relevance_per_word(lm):
    from whybox.propagation.attnlrp import AttnLRP

    tok = gpt_tokenizer()
    text = "the cat sat on zorb"
    exp = wb.explain(lm, text, tokenizer=tok, target=" on", method="attnlrp", granularity="word")
    ids = tok(text)["input_ids"]
    direct = AttnLRP(lm).explain(torch.tensor([ids]), target=" on", tokenizer=tok)
    rel = direct.values[0]
    words = word_spans(tok, text, 1)
    np.testing.assert_allclose(exp.values[0], [rel[w].sum() for w in words], atol=1e-6)
    np.testing.assert_allclose(exp.meta["special_relevance"][0], rel[0], atol=1e-6)
    np.testing.assert_allclose(exp.predictions[0], direct.predictions[0], atol=1e-6)
    with pytest.raises(InvalidParameterError, match="budget= does not apply"):
        wb.explain(lm, text, tokenizer=tok, target=" on", method="attnlrp", budget=3)
