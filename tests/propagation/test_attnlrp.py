"""AttnLRP (Achtibat et al. 2024) against the paper's rules written out in numpy, and its
conservation gap against the closed form of what the rules let go.

Oracles (none is whybox code):

* a one-layer GPT-2 (LayerNorm, biases, GELU, two heads, learned positions) whose relevance is
  propagated backwards in numpy with the rules *in relevance form* (epsilon rule
  ``R_in = x * W^T (R_out / (z + eps sign z))``, z-rule on residual sums, LayerNorm as the linear
  map it is once its std is fixed, identity on GELU, uniform split on ``A V`` and ``Q K^T``, the
  softmax rule ``R_in = x (R_out - s sum R_out)``), not by gradients;
* on bias-free models (Llama; GPT-2 with its biases set to 0) every AttnLRP rule conserves
  relevance except the softmax, whose rule leaves, per attention row with weights ``a`` and
  arriving gradient ``g`` (relevance ``a g`` at the output), ``sum a g - sum S a (g - sum a g)``
  with ``S = log a + const``; so the gap equals ``1/2 sum_rows [sum a g - sum a log a (g - a.g)]``
  (the 1/2: the uniform rule gives ``A`` half of ``A V``'s relevance), computed from the
  attention weights and their gradient captured by the test's own hooks;
* with biases (GPT-2), the gap is that leak plus ``sum f b g`` over every biased layer (the
  bias's share under the epsilon / z-rule, ``f`` the rule's factor at that layer), with ``g``
  captured by the test's own gradient hooks;
* CP-LRP on a bias-free model conserves exactly (every rule is conservative; epsilon = 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.internals.tiny import build, hooks_left, input_ids, transformers

torch = pytest.importorskip("torch")

from whybox.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.propagation.attnlrp import AttnLRP  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- numpy LRP of a 1-layer GPT-2
def _gpt2_one_layer(seed: int = 0):
    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.6 * torch.randn_like(p))
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.add_(1.0)
    return model.double().eval()


def _np(t):
    return t.detach().double().numpy()


def _linear_eps(x, w, z, r_out, eps):
    """Epsilon rule for z = x @ w + b: R_in = x * ((R_out / (z + eps sign z)) @ w^T)."""
    stab = z + eps * np.where(z >= 0, 1.0, -1.0)
    return x * ((r_out / stab) @ w.T)


def _layer_norm_rule(h, gamma, beta, r_out, eps_ln):
    """LayerNorm with its std held fixed is the linear map a = diag(gamma / sd) (I - 11^T/d) h
    + beta; z-rule (epsilon 0) on it."""
    d = h.shape[-1]
    sd = np.sqrt(h.var(-1, keepdims=True) + eps_ln)
    a = (h - h.mean(-1, keepdims=True)) / sd * gamma + beta
    out = np.zeros_like(h)
    centre = np.eye(d) - 1.0 / d  # h - mean(h) = h @ centre
    for t in range(h.shape[0]):
        w = centre * (gamma / sd[t])[None, :]  # a_t = h_t @ w + beta
        out[t] = h[t] * ((r_out[t] / a[t]) @ w.T)
    return a, out


def _numpy_attnlrp(model, ids, target, eps, cp_lrp):
    """Relevance of each token of ``ids`` (1-d) for logit ``target`` at the last position."""
    sd = {k: _np(v) for k, v in model.state_dict().items()}
    T = len(ids)
    n_head, d = model.config.n_head, model.config.n_embd
    dh = d // n_head
    tok = sd["transformer.wte.weight"][ids]
    pos = sd["transformer.wpe.weight"][:T]
    h0 = tok + pos
    p = "transformer.h.0."
    ln_eps = model.config.layer_norm_epsilon

    def ln(x, name):
        m = x.mean(-1, keepdims=True)
        s = np.sqrt(x.var(-1, keepdims=True) + ln_eps)
        return (x - m) / s * sd[name + ".weight"] + sd[name + ".bias"]

    a1 = ln(h0, p + "ln_1")
    qkv = a1 @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]
    q, k, v = (
        qkv[:, i * d : (i + 1) * d].reshape(T, n_head, dh).transpose(1, 0, 2) for i in range(3)
    )
    s_raw = q @ k.transpose(0, 2, 1) / np.sqrt(dh)  # (H, T, T)
    causal = np.tril(np.ones((T, T), bool))
    s = np.where(causal, s_raw, -np.inf)
    att = np.exp(s - s.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    o = att @ v  # (H, T, dh)
    merged = o.transpose(1, 0, 2).reshape(T, d)
    attn_out = merged @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
    h1 = h0 + attn_out
    a2 = ln(h1, p + "ln_2")
    fc = a2 @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"]
    act = 0.5 * fc * (1 + np.tanh(np.sqrt(2 / np.pi) * (fc + 0.044715 * fc**3)))
    mlp = act @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    h2 = h1 + mlp
    f = ln(h2, "transformer.ln_f")
    w_u = sd["lm_head.weight"].T  # (d, vocab)
    logits = f @ w_u

    # ---- relevance, backwards
    r_logits = np.zeros_like(logits)
    r_logits[-1, target] = logits[-1, target]
    r_f = _linear_eps(f, w_u, logits, r_logits, eps)
    _, r_h2 = _layer_norm_rule(
        h2, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], r_f, ln_eps
    )
    r_h1 = h1 / h2 * r_h2  # z-rule on the residual sum
    r_mlp = mlp / h2 * r_h2
    r_act = _linear_eps(act, sd[p + "mlp.c_proj.weight"], mlp, r_mlp, eps)
    r_fc = r_act  # identity rule on GELU
    r_a2 = _linear_eps(a2, sd[p + "mlp.c_fc.weight"], fc, r_fc, eps)
    _, r_h1_ln = _layer_norm_rule(h1, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], r_a2, ln_eps)
    r_h1 = r_h1 + r_h1_ln
    r_h0 = h0 / h1 * r_h1
    r_attn = attn_out / h1 * r_h1
    r_merged = _linear_eps(merged, sd[p + "attn.c_proj.weight"], attn_out, r_attn, eps)
    r_o = r_merged.reshape(T, n_head, dh).transpose(1, 0, 2)
    # A V: contributions A[t,s] V[s,j] of O[t,j]
    contrib = att[:, :, :, None] * v[:, None, :, :]  # (H, t, s, j)
    share = contrib * (r_o / o)[:, :, None, :]
    half = 1.0 if cp_lrp else 0.5
    r_v = half * share.sum(1)  # (H, s, j)
    if cp_lrp:
        r_q = np.zeros_like(q)
        r_k = np.zeros_like(k)
    else:
        r_att = 0.5 * share.sum(-1)  # (H, t, s)
        s_fin = np.where(causal, s_raw, 0.0)
        r_s = s_fin * (r_att - att * r_att.sum(-1, keepdims=True))  # the softmax rule
        r_s = np.where(causal, r_s, 0.0)
        # Q K^T: contributions q[t,j] k[s,j] / sqrt(dh) of S[t,s]
        qk = q[:, :, None, :] * k[:, None, :, :] / np.sqrt(dh)  # (H, t, s, j)
        qshare = qk * np.where(causal, r_s / np.where(causal, s_raw, 1.0), 0.0)[..., None]
        r_q = 0.5 * qshare.sum(2)
        r_k = 0.5 * qshare.sum(1)
    r_qkv = np.concatenate([r.transpose(1, 0, 2).reshape(T, d) for r in (r_q, r_k, r_v)], axis=1)
    r_a1 = _linear_eps(a1, sd[p + "attn.c_attn.weight"], qkv, r_qkv, eps)
    _, r_h0_ln = _layer_norm_rule(h0, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], r_a1, ln_eps)
    r_h0 = r_h0 + r_h0_ln
    r_tok = (tok / h0 * r_h0).sum(-1)
    r_pos = (pos / h0 * r_h0).sum(-1)
    return r_tok, r_pos.sum(), logits[-1, target]


@pytest.mark.parametrize("cp_lrp", [False, True])
@pytest.mark.parametrize("eps", [1e-6, 0.05])
def test_one_layer_gpt2_equals_numpy_rules(cp_lrp, eps):
    model = _gpt2_one_layer()
    ids = torch.tensor([[3, 7, 1, 12, 5, 9]])
    target = 4
    want_tok, want_pos, want_logit = _numpy_attnlrp(model, ids[0].numpy(), target, eps, cp_lrp)
    exp = AttnLRP(model, cp_lrp=cp_lrp, epsilon=eps).explain(ids, target=target)
    np.testing.assert_allclose(exp.values[0], want_tok, rtol=1e-7, atol=1e-9)
    c = exp.meta["conservation"][0]
    np.testing.assert_allclose(c["position_relevance"], want_pos, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(c["target_logit"], want_logit, rtol=1e-7)
    assert not hooks_left(model)


# ---------------------------------------------------------------- conservation, closed form
def _softmax_leak(model, ids, lrp, target):
    """Run ``lrp`` with test hooks that capture every attention's weights and their gradient;
    return (explanation, the gap the softmax rule leaves per example)."""
    weights: list = []

    def grab(module, args, output):
        a = output[1]
        weights.append(a)
        a.register_hook(lambda g, a=a: grads.append((a.detach(), g.detach())))

    grads: list = []
    attn_mods = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    handles = [m.register_forward_hook(grab) for m in attn_mods]
    try:
        exp = lrp.explain(ids, target=target)
    finally:
        for h in handles:
            h.remove()
    leak = np.zeros(ids.shape[0])
    for a, g in grads:
        a, g = _np(a), _np(g)
        ag = (a * g).sum(-1, keepdims=True)
        alog = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)
        per_row = (a * g).sum(-1) - (alog * (g - ag)).sum(-1)
        leak += 0.5 * per_row.reshape(ids.shape[0], -1).sum(-1)
    assert len(grads) == len(attn_mods)
    return exp, leak


def _zero_biases(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_gap_is_the_softmax_rule_leak_on_bias_free_models(arch):
    model = _zero_biases(build(arch).double())
    ids = input_ids(2, 9, seed=1)
    exp, leak = _softmax_leak(model, ids, AttnLRP(model, epsilon=0.0), target=[5, 40])
    gaps = np.array([c["gap"] for c in exp.meta["conservation"]])
    assert np.all(np.abs(gaps) > 1e-4)  # the leak is real, not a rounding
    # HF's eager attention takes its softmax in float32 (Llama): float32-level agreement
    np.testing.assert_allclose(gaps, leak, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(exp.completeness_gap(), gaps + [
        c["position_relevance"] for c in exp.meta["conservation"]
    ], rtol=1e-9, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gpt2"])
def test_cp_lrp_conserves_on_bias_free_models(arch):
    model = _zero_biases(build(arch).double())
    exp = AttnLRP(model, cp_lrp=True, epsilon=0.0).explain(input_ids(2, 9), target=7)
    for c in exp.meta["conservation"]:
        assert abs(c["gap"]) <= 1e-10 * max(1.0, abs(c["target_logit"]))


def _bias_relevance(model, ids, lrp, target):
    """Relevance the biases take (epsilon 0): at a layer ``z = W x + b`` (or a LayerNorm
    ``c / sd * w + b``) with gradient ``g`` arriving at ``z`` and the rule's factor ``f``
    (0.25 for q and k, 0.5 for v, 1 elsewhere), ``R(z) = f z g`` and the inputs receive
    ``f (z - b) g``: the bias keeps ``f b g``. Returns (explanation, leak, bias share)."""
    d = model.config.n_embd
    factor = torch.tensor([0.25] * (2 * d) + [0.5] * d, dtype=torch.float64)
    taken = np.zeros(ids.shape[0])

    def grab(module, args, output):
        b = module.bias.detach()
        f = factor if output.shape[-1] == 3 * d and "c_attn" in names[module] else 1.0

        def record(g):
            taken[:] += _np((f * b * g).reshape(ids.shape[0], -1).sum(-1))

        output.register_hook(record)

    names = {m: n for n, m in model.named_modules()}
    conv = [m for m in model.modules() if type(m).__name__ == "Conv1D"]
    handles = [m.register_forward_hook(grab) for m in conv]
    # AttnLRP rebuilds a LayerNorm's output, so its gradient is read at the next layer's input
    h = model.transformer.h
    consumers = [(blk.ln_1, blk.attn.c_attn) for blk in h] + [(blk.ln_2, blk.mlp.c_fc) for blk in h]
    consumers.append((model.transformer.ln_f, model.lm_head))

    def at_input(ln):
        b = ln.bias.detach()

        def record(g):
            taken[:] += _np((b * g).reshape(ids.shape[0], -1).sum(-1))

        def pre(module, args):
            args[0].register_hook(record)

        return pre

    handles += [nxt.register_forward_pre_hook(at_input(ln)) for ln, nxt in consumers]
    try:
        exp, leak = _softmax_leak(model, ids, lrp, target)
    finally:
        for h in handles:
            h.remove()
    return exp, leak, taken


def test_gap_is_softmax_leak_plus_bias_relevance_gpt2():
    """GPT-2 with its (random) biases: the gap is exactly what the softmax rule and the biases
    of Conv1D and LayerNorm layers take; epsilon 1e-6 moves it by at most ~1e-6 relative (it
    takes ``eps / (|z| + eps)`` of each linear output's relevance)."""
    model = build("gpt2").double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    ids = input_ids(2, 9, seed=2)
    exp, leak, taken = _bias_relevance(model, ids, AttnLRP(model, epsilon=0.0), [5, 40])
    gaps = np.array([c["gap"] for c in exp.meta["conservation"]])
    assert np.all(np.abs(taken) > 1e-3)
    np.testing.assert_allclose(gaps, leak + taken, rtol=1e-6, atol=1e-9)
    eps_gaps = np.array(
        [c["gap"] for c in AttnLRP(model).explain(ids, target=[5, 40]).meta["conservation"]]
    )
    logits = np.abs(exp.predictions)
    assert np.all(np.abs(eps_gaps - gaps) <= 1e-4 * (1 + logits))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_reported_conservation_matches_its_definition(arch):
    model = build(arch)
    exp = AttnLRP(model).explain(input_ids(2, 9), target=[5, 40])
    for c, v in zip(exp.meta["conservation"], exp.values, strict=True):
        assert c["relevance_sum"] == pytest.approx(float(v.sum()), rel=1e-6)
        gap = c["target_logit"] - c["relevance_sum"] - c["position_relevance"]
        assert c["gap"] == pytest.approx(gap, abs=1e-7)
        assert c["relative_gap"] == pytest.approx(gap / abs(c["target_logit"]), rel=1e-6)


# ---------------------------------------------------------------- behaviour
def test_logits_unchanged_and_predictions_are_the_target_logits():
    model = build("llama")
    ids = input_ids(2, 7)
    with torch.no_grad():
        before = model(input_ids=ids).logits.clone()
    exp = AttnLRP(model).explain(ids)  # target: the top token
    with torch.no_grad():
        after = model(input_ids=ids).logits
    assert torch.equal(before, after)
    top = before[:, -1].argmax(-1)
    assert exp.meta["target"] == top.tolist()
    np.testing.assert_allclose(
        exp.predictions, before[:, -1].gather(1, top[:, None])[:, 0], rtol=1e-5
    )
    assert not hooks_left(model)
    assert all(p.grad is None for p in model.parameters())


def test_hooks_removed_after_exceptions():
    model = build("gpt2")
    lrp = AttnLRP(model)
    with pytest.raises(InvalidParameterError, match="outside the model's 96 outputs"):
        lrp.explain(input_ids(1, 5), target=500)
    assert not hooks_left(model)

    def boom(module, args, output):
        raise RuntimeError("boom")

    h = model.transformer.h[1].register_forward_hook(boom)
    try:
        with pytest.raises(ModelCallError, match="boom"):
            lrp.explain(input_ids(1, 5), target=3)
    finally:
        h.remove()
    assert not hooks_left(model)


def test_right_padding_matches_unpadded():
    model = build("llama")
    ids = input_ids(2, 8, seed=3)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    lrp = AttnLRP(model)
    batch = lrp.explain({"input_ids": ids, "attention_mask": mask}, target=11)
    alone = lrp.explain(ids[1:, :5], target=11)
    assert len(batch.values[1]) == 5 and len(batch.values[0]) == 8
    np.testing.assert_allclose(batch.values[1], alone.values[0], rtol=1e-4, atol=1e-6)
    assert batch.meta["positions"] == [7, 4]


def test_sequence_classifier_and_token_names():
    cfg = build("bert").config
    torch.manual_seed(0)
    clf = transformers.BertForSequenceClassification._from_config(
        cfg, attn_implementation="eager"
    ).eval()
    exp = AttnLRP(clf).explain(input_ids(2, 6), target=1)
    assert exp.method == "attnlrp" and len(exp.values) == 2
    assert exp.feature_names[0][0].startswith("[")
    assert np.isfinite(exp.values[0]).all()
    assert not hooks_left(clf)


def test_bad_inputs():
    model = build("llama")
    lrp = AttnLRP(model)
    with pytest.raises(InvalidParameterError, match="position 9"):
        lrp.explain(input_ids(1, 5), position=9)
    with pytest.raises(InvalidParameterError, match="tokenizer="):
        lrp.explain(input_ids(1, 5), target=" Paris")
    with pytest.raises(InvalidInputError):
        lrp.explain("a string")
    with pytest.raises(InvalidParameterError, match="epsilon"):
        AttnLRP(model, epsilon=-1.0)
    with pytest.raises(InvalidParameterError, match="rules"):
        AttnLRP(model, rules={"Linear": "gamma"})


class _Scale(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.gain


def test_module_without_rule_is_named_and_can_be_registered():
    model = build("llama")
    model.model.layers[0].mlp.extra = _Scale(32)
    with pytest.raises(UnsupportedModelError, match=r"model\.layers\.0\.mlp\.extra.*rules="):
        AttnLRP(model)
    AttnLRP(model, rules={"_Scale": "pass"})  # registered: accepted


def test_trained_tiny_lm_text_and_gap_accounting():
    """The project's trained GPT-2 (whybox.zoo.tinylm) on a real sentence: a str target through
    the tokenizer, token names, and the gap = softmax leak + bias shares, as on random weights."""
    import copy

    from whybox.zoo.tinylm import tiny_lm

    lm, tok = tiny_lm(seed=0)
    model = copy.deepcopy(lm).double().eval()
    enc = tok(["The module returns a list of the"], return_tensors="pt")
    word = " value" if len(tok.encode(" value")) == 1 else tok.decode(tok.encode(" the")[:1])
    exp = AttnLRP(model).explain(enc, target=word, tokenizer=tok)
    assert exp.feature_names[0] == [tok.decode([i]) for i in enc["input_ids"][0].tolist()]
    assert exp.meta["target"] == tok.encode(word)
    _, leak, taken = _bias_relevance(model, enc["input_ids"], AttnLRP(model, epsilon=0.0),
                                     exp.meta["target"])  # fmt: skip
    gap = exp.meta["conservation"][0]["gap"]
    assert gap == pytest.approx(float(leak[0] + taken[0]), rel=1e-4, abs=1e-6)
    with pytest.raises(InvalidParameterError, match="tokens"):
        AttnLRP(model).explain(enc, target=" returns a list", tokenizer=tok)


def test_sdpa_attention_gives_the_eager_relevance():
    """Only gradients at the q/k/v projections change, so the attention function itself does
    not matter: SDPA and eager attention give the same relevance."""
    ids = input_ids(2, 7)
    eager = AttnLRP(build("llama")).explain(ids, target=9)
    sdpa = AttnLRP(build("llama", attn_implementation="sdpa")).explain(ids, target=9)
    for a, b in zip(eager.values, sdpa.values, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
