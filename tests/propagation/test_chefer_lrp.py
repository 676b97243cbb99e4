"""Chefer et al. (CVPR 2021) LRP-weighted rollout against oracles written here:

* the paper's eq. (13)-(14) in numpy (``Abar_b = I + mean_h((grad A_b * R_A_b)^+)``,
  ``C = Abar_B ... Abar_1``) on attentions captured with ``output_attentions=True``, their
  plain gradient by ``torch.autograd.grad`` and their LRP relevance ``1/2 A * grad`` taken the
  same way but with AttnLRP's hooks installed (not through the module's hook points);
* on a one-layer GPT-2, ``R_A`` against the AttnLRP rules propagated backwards in numpy in
  relevance form (epsilon rule, LayerNorm as the linear map it is with its std fixed, z-rule
  on residual sums, identity on GELU, uniform split of ``A V``), then ``C`` in closed form;
* a hand two-layer product (later layers on the left).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.internals.tiny import ARCHS, DECODERS, build, hooks_left, input_ids

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.internals.hooks import registered  # noqa: E402
from whybox.propagation.attnlrp import AttnLRP  # noqa: E402
from whybox.propagation.chefer_lrp import CheferLRP, explain_chefer_lrp  # noqa: E402

torch.set_num_threads(1)
EPS = 1e-6


def np_cvpr(rel, grad, start=0):
    """CVPR 2021 eq. (13)-(14): product of I + mean_h((grad * R_A)^+), later blocks left."""
    n = rel[0].shape[-1]
    c = np.eye(n)
    for r, g in list(zip(rel, grad, strict=True))[start:]:
        abar = np.eye(n) + np.maximum(g * r, 0.0).mean(axis=0)
        c = abar @ c
    return c


def captured(model, ids, pick, cp_lrp=False, eps=EPS):
    """(A, R_A, grad A) per layer for one row, by output_attentions on copies of the model."""
    m = copy.deepcopy(model)
    out = m(ids, output_attentions=True)
    grads = torch.autograd.grad(pick(out.logits), out.attentions)
    att = [a[0].detach().double().numpy() for a in out.attentions]
    plain = [g[0].double().numpy() for g in grads]
    m = copy.deepcopy(model)
    lrp = AttnLRP(m, cp_lrp=cp_lrp, epsilon=eps)
    handles, store = [], {"batch": 1}
    with registered(handles):
        lrp._install(torch, handles, store)
        out = m(ids, output_attentions=True)
        chosen = pick(out.logits)
        a = chosen.detach().abs()
        # the epsilon rule at an unembedding whose output is the logits (LMs); a classifier
        # head has its own hook
        seed = a / (a + eps) if lrp.anatomy.unembed_path is not None else torch.ones_like(a)
        lrp_grads = torch.autograd.grad(chosen, out.attentions, grad_outputs=seed)
    rel = [
        0.5 * (a[0] * g[0]).detach().double().numpy()
        for a, g in zip(out.attentions, lrp_grads, strict=True)
    ]
    return att, rel, plain, float(chosen.detach())


def check_row(got, ref, pos):
    """Equal to 1e-6 relative to the part of the row beyond the identity."""
    eye = np.eye(len(ref))[pos]
    scale = np.abs(ref - eye).max()
    assert scale > 0
    np.testing.assert_allclose(got - eye, ref - eye, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def classifier():
    cfg = build("bert").config
    cfg.num_labels = 3
    torch.manual_seed(1)
    model = transformers.BertForSequenceClassification._from_config(
        cfg, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)  # logits of order 1
    return model


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_equals_numpy_formula_lms(arch):
    assert arch in ARCHS
    model = build(arch).double()
    ids = input_ids(2, 7, seed=5)
    pos = 6 if arch in DECODERS else 0
    targets = [11, 40]
    with torch.no_grad():
        before = model(ids).logits.clone()
    exp = CheferLRP(model).explain(ids, target=targets)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)
    assert hooks_left(model) == []
    assert all(p.grad is None for p in model.parameters())
    assert exp.meta["target"] == targets and exp.meta["position"] == [pos, pos]
    assert exp.method == "chefer_lrp"
    for b in range(2):
        _, rel, grad, value = captured(
            model, ids[b : b + 1], lambda lg, b=b: lg[0, pos, targets[b]]
        )
        check_row(exp.values[b], np_cvpr(rel, grad)[pos], pos)
        assert exp.predictions[b] == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("cp_lrp", [False, True])
def test_classifier_default_target_start_layer_cp_lrp(cp_lrp):
    model = classifier().double()
    ids = input_ids(2, 6, seed=6)
    with torch.no_grad():
        top = model(ids).logits.argmax(-1).tolist()
    exp = CheferLRP(model, start_layer=1, cp_lrp=cp_lrp).explain(ids)
    assert exp.meta["target"] == top
    assert exp.params == {"start_layer": 1, "cp_lrp": cp_lrp, "epsilon": EPS}
    for b in range(2):
        _, rel, grad, _ = captured(model, ids[b : b + 1], lambda lg, b=b: lg[0, top[b]], cp_lrp)
        check_row(exp.values[b], np_cvpr(rel, grad, start=1)[0], 0)
    assert hooks_left(model) == []
    assert all(p.grad is None for p in model.parameters())


def test_cp_lrp_changes_the_relevance():
    model = build("gpt2").double()
    ids = input_ids(1, 6, seed=2)
    a = CheferLRP(model).explain(ids, target=7).values[0]
    b = CheferLRP(model, cp_lrp=True).explain(ids, target=7).values[0]
    assert np.abs(a - b).max() > 0


# ------------------------------------------------------- R_A on a one-layer GPT-2, numpy LRP
def _gpt2_one_layer(seed=0):
    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.7 * torch.randn_like(p) + (1.0 if name.endswith("ln_1.weight") else 0.0))
    return model.double().eval()


def eps_rule(x, w, z, r, eps):
    """z = x @ w + b: R_x = x * ((R_z / (z + eps sign z)) @ w^T)."""
    return x * ((r / (z + eps * np.where(z >= 0, 1.0, -1.0))) @ w.T)


def ln_rule(x, gamma, beta, r, ln_eps):
    """LayerNorm as y = x @ W + beta with W = (I - 1/d) diag(gamma / sd) (std held fixed);
    z-rule: R_x = x * ((R_y / y) @ W^T). Returns (y, R_x)."""
    d = x.shape[-1]
    sd = np.sqrt(x.var(-1, keepdims=True) + ln_eps)
    y = (x - x.mean(-1, keepdims=True)) / sd * gamma + beta
    rx = np.empty_like(x)
    for t in range(len(x)):
        w = (np.eye(d) - 1.0 / d) * (gamma / sd[t])[None, :]
        rx[t] = x[t] * ((r[t] / y[t]) @ w.T)
    return y, rx


def numpy_attention_relevance(model, ids, target, eps):
    """(A, R_A) of the single layer, AttnLRP rules in relevance form, for the last token."""
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    T, d, H = len(ids), model.config.n_embd, model.config.n_head
    dh, p, le = d // H, "transformer.h.0.", model.config.layer_norm_epsilon
    h0 = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:T]

    def ln(x, name):
        return ln_rule(x, sd[name + ".weight"], sd[name + ".bias"], np.ones_like(x), le)[0]

    a1 = ln(h0, p + "ln_1")
    qkv = a1 @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]
    q, k, v = (qkv[:, i * d : (i + 1) * d].reshape(T, H, dh).transpose(1, 0, 2) for i in range(3))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    att = np.exp(s - s.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    o = att @ v
    merged = o.transpose(1, 0, 2).reshape(T, d)
    attn_out = merged @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
    h1 = h0 + attn_out
    a2 = ln(h1, p + "ln_2")
    fc = a2 @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"]
    act = 0.5 * fc * (1 + np.tanh(np.sqrt(2 / np.pi) * (fc + 0.044715 * fc**3)))
    mlp = act @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    h2 = h1 + mlp
    f = ln(h2, "transformer.ln_f")
    logits = f @ sd["lm_head.weight"].T
    r = np.zeros_like(logits)
    r[-1, target] = logits[-1, target]
    r_f = eps_rule(f, sd["lm_head.weight"].T, logits, r, eps)
    r_h2 = ln_rule(h2, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], r_f, le)[1]
    r_mlp = mlp / h2 * r_h2
    r_fc = eps_rule(act, sd[p + "mlp.c_proj.weight"], mlp, r_mlp, eps)  # identity on GELU
    r_a2 = eps_rule(a2, sd[p + "mlp.c_fc.weight"], fc, r_fc, eps)
    r_h1 = h1 / h2 * r_h2 + ln_rule(h1, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], r_a2, le)[1]
    r_attn = attn_out / h1 * r_h1
    r_merged = eps_rule(merged, sd[p + "attn.c_proj.weight"], attn_out, r_attn, eps)
    r_o = r_merged.reshape(T, H, dh).transpose(1, 0, 2)
    # uniform rule on O = A V: A[t, s] gets half of sum_j A[t, s] V[s, j] R_O[t, j] / O[t, j]
    r_att = 0.5 * np.einsum("hts,hsj,htj->hts", att, v, r_o / o)
    return att, r_att, logits[-1, target]


@pytest.mark.parametrize("eps", [EPS, 0.05])
def test_attention_relevance_equals_numpy_rules_one_layer(eps):
    model = _gpt2_one_layer()
    ids = torch.tensor([[3, 7, 1, 12, 5, 9]])
    target = 4
    att, want, logit = numpy_attention_relevance(model, ids[0].numpy(), target, eps)
    lrp = CheferLRP(model, epsilon=eps)
    maps, rel, grads = lrp.attention_relevance({"input_ids": ids}, [target], [5])
    assert hooks_left(model) == []
    np.testing.assert_allclose(maps[0, 0].numpy(), att, rtol=0, atol=1e-12)
    got = rel[0, 0].detach().numpy()
    assert np.abs(want).max() > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)
    # one layer: C = I + mean_h((grad A * R_A)^+), grad A by plain autograd
    out = model(ids, output_attentions=True)
    g = torch.autograd.grad(out.logits[0, -1, target], out.attentions)[0][0].double().numpy()
    np.testing.assert_allclose(grads[0, 0].numpy(), g, rtol=0, atol=1e-12)
    ref = (np.eye(6) + np.maximum(g * want, 0).mean(0))[-1]
    exp = lrp.explain(ids, target=target)
    check_row(exp.values[0], ref, 5)
    assert exp.predictions[0] == pytest.approx(logit, rel=1e-10)


def test_hand_two_layers_order():
    r0 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    g0 = np.array([[[1.0, 2.0], [2.0, -1.0]]])  # cam0 = [[1, 0], [1, 0]]
    r1 = np.array([[[1.0, 0.0], [0.25, 0.75]]])
    g1 = np.array([[[-1.0, 0.0], [4.0, 2.0]]])  # cam1 = [[0, 0], [1, 1.5]]
    # (I + cam1)(I + cam0) = [[1, 0], [1, 2.5]] @ [[2, 0], [1, 1]] = [[2, 0], [4.5, 2.5]]
    np.testing.assert_allclose(np_cvpr([r0, r1], [g0, g1]), [[2.0, 0.0], [4.5, 2.5]])
    from whybox.propagation.chefer import chefer_relevance

    np.testing.assert_allclose(chefer_relevance(np.stack([r0, r1]), np.stack([g0, g1])), [
        [2.0, 0.0], [4.5, 2.5]])  # fmt: skip


def test_texts_padding_and_adapter():
    from tests.text.tiny_text import wordpiece

    tok = wordpiece()
    model = build("bert")
    texts = ["the cat [MASK] on the mat", "a [MASK]"]
    enc = tok(texts, return_tensors="pt", padding=True)
    padded = CheferLRP(model).explain(enc, tokenizer=tok, target=[5, 7], position=[3, 2])
    one = CheferLRP(model).explain(tok(texts[1:], return_tensors="pt"), target=7, position=2)
    np.testing.assert_allclose(padded.values[1], one.values[0], atol=1e-6)
    exp = explain_chefer_lrp(model, texts, tokenizer=tok, target=["sat", "dog"], start_layer=1)
    assert exp.meta["position"] == [3, 2]
    assert exp.meta["target"] == tok.convert_tokens_to_ids(["sat", "dog"])
    assert exp.params["start_layer"] == 1 and exp.method == "chefer_lrp"
    ids = CheferLRP(model, start_layer=1).explain(
        tok(texts[1:], return_tensors="pt"), target="dog", tokenizer=tok
    )
    assert exp.feature_names[1] == ["a"]
    np.testing.assert_allclose(exp.values[1], ids.values[0][[1]], atol=1e-12)
    with pytest.raises(InvalidParameterError, match="unknown keywords"):
        explain_chefer_lrp(model, texts, tokenizer=tok, head_fusion="max")
    assert hooks_left(model) == []


def test_bad_input():
    sdpa = build("llama", attn_implementation="sdpa")
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        CheferLRP(sdpa).explain(input_ids(1, 4))
    assert hooks_left(sdpa) == []
    model = build("gpt2")
    with pytest.raises(InvalidParameterError, match="target"):
        CheferLRP(model).explain(input_ids(1, 4), target=96)
    with pytest.raises(InvalidParameterError, match="start_layer"):
        CheferLRP(model, start_layer=3)
    with pytest.raises(InvalidParameterError, match="cp_lrp"):
        CheferLRP(model, cp_lrp="yes")
    with pytest.raises(InvalidParameterError, match="epsilon"):
        CheferLRP(model, epsilon=-1.0)
    assert hooks_left(model) == []
    base = transformers.GPT2Model(build("gpt2").config)
    with pytest.raises(UnsupportedModelError, match="without a head"):
        CheferLRP(base)


def test_trained_tiny_lm_text():
    """The zoo's trained GPT-2 and its BPE tokenizer, on text: equal to the numpy formula."""
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    text = "The return statement leaves the current function call with the"
    exp = CheferLRP(model).explain(text, tokenizer=tok)
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        top = int(model(ids).logits[0, -1].argmax())
    assert exp.meta["target"] == [top]
    _, rel, grad, value = captured(model, ids, lambda lg: lg[0, -1, top])
    ref = np_cvpr(rel, grad)[-1]
    check_row(exp.meta["token_relevance"][0], ref, len(ref) - 1)
    assert exp.predictions[0] == pytest.approx(value, abs=1e-4)
    assert hooks_left(model) == []
