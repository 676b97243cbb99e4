"""The logit lens and direct logit attribution (whybox.internals.lens).

Oracles: the model's own logits (the lens's last entry runs the same modules on the same
tensor, so equality is exact), Hugging Face's ``output_hidden_states`` read through a hand
written LayerNorm and unembedding, TransformerLens 4.3's ``accumulated_resid`` /
``decompose_resid`` / ``stack_head_results`` / ``apply_ln_to_stack`` / ``logit_attrs`` on a
``TransformerBridge`` booted from a copy of the same weights, and brute-force ranks,
probabilities and KL divergences.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.internals.tiny import DECODERS, build, hooks_left, input_ids
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.internals.anatomy import Anatomy
from whybox.internals.lens import LogitLens, direct_logit_attribution, logit_lens

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    """Two shared cores: one torch thread is several times faster than two competing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _perturbed(arch: str):
    """A tiny model whose every norm gain, norm bias and linear bias is random (so the
    final norm's weight and bias and every bias term matter)."""
    model = build(arch)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def _bridge(arch: str, model, tokenizer, *, fold: bool):
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        arch, hf_model=copy.deepcopy(model), tokenizer=tokenizer, device="cpu"
    )
    if fold:
        # fold the final norm's weight into W_U (and its bias into b_U), nothing else: what
        # logit_attrs needs to read logits; value biases stay in the heads
        bridge.enable_compatibility_mode(
            fold_ln=True,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
        )
    return bridge


# ------------------------------------------------------------------------ logit lens ----
def test_last_entry_is_the_models_own_logits_on_every_architecture(tiny_model):
    arch, model = tiny_model
    ids = input_ids()
    lens = logit_lens(model, ids)
    with torch.no_grad():
        own = model(ids).logits
    anat = Anatomy.of(model)
    assert lens.logits.shape == (anat.n_layers + 1, 2, 7, anat.vocab_size)
    assert lens.labels == ["embed", *[f"L{i}" for i in range(anat.n_layers)]]
    assert torch.equal(lens.logits[-1], own), arch
    assert torch.equal(lens.model_logits, own)
    assert hooks_left(model) == []


def test_entries_equal_hidden_states_through_a_hand_written_norm_and_unembedding():
    model = _perturbed("gpt2")
    ids = input_ids()
    lens = logit_lens(model, ids)
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    ln = model.transformer.ln_f
    W = model.lm_head.weight
    for i in range(len(hs) - 1):  # HF's last hidden state is after ln_f
        h = hs[i]
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        expect = ((h - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias) @ W.T
        torch.testing.assert_close(lens.logits[i], expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_logit_lens_equals_transformer_lens_accumulated_resid(arch, tiny_tokenizer):
    model = _perturbed(arch)
    ids = input_ids()
    bridge = _bridge(arch, model, tiny_tokenizer, fold=False)
    _, cache = bridge.run_with_cache(ids)
    for incl_mid, site in ((False, "resid_post"), (True, "resid_mid")):
        stack = cache.accumulated_resid(apply_ln=True, incl_mid=incl_mid)
        b_U = getattr(bridge, "b_U", None)
        expect = (stack @ bridge.W_U + (0 if b_U is None else b_U)).detach()
        lens = logit_lens(model, ids, site=site)
        assert lens.logits.shape == expect.shape
        scale = float(expect.abs().max())
        assert float((lens.logits - expect).abs().max()) <= 1e-4 * scale, site


def test_resid_mid_and_component_sites():
    model = build("llama")
    ids = input_ids()
    mid = logit_lens(model, ids, site="resid_mid")
    assert mid.labels[:4] == ["embed", "L0.mid", "L0", "L1.mid"]
    assert len(mid) == 2 * 3 + 1
    full = logit_lens(model, ids)
    assert torch.equal(mid.logits[2::2], full.logits[1:])
    attn = logit_lens(model, ids, site="attn.out")
    assert attn.labels == ["L0.attn", "L1.attn", "L2.attn"]
    assert attn.names == [f"blocks.{i}.attn.out" for i in range(3)]
    # a component read alone: the final norm (recomputed) and unembedding of its output
    from whybox.internals import hooks

    with torch.no_grad(), hooks.capture(model, ["model.layers.1.self_attn"]) as cache:
        model(ids)
        expect = model.lm_head(model.model.norm(cache["model.layers.1.self_attn"][0]))
    torch.testing.assert_close(attn.logits[1], expect, rtol=0, atol=0)
    with pytest.raises(InvalidParameterError, match="parallel residual"):
        logit_lens(build("gpt_neox"), ids, site="resid_mid")


def test_layer_selection_by_index_and_label():
    model = build("gpt2")
    ids = input_ids()
    full = logit_lens(model, ids)
    some = logit_lens(model, ids, layers=[0, -1, "L1"])
    assert some.labels == ["embed", "L2", "L1"]
    assert torch.equal(some.logits, full.logits[[0, 3, 2]])
    with pytest.raises(InvalidParameterError, match="at most 3"):
        logit_lens(model, ids, layers=4)
    with pytest.raises(InvalidParameterError, match="labels are"):
        logit_lens(model, ids, layers="L9")


def test_top_tokens_rank_prob_and_kl_by_brute_force(tiny_tokenizer):
    model = build("qwen2")
    ids = input_ids(seed=3)
    lens = logit_lens(model, ids, tokenizer=tiny_tokenizer, top_k=3)
    lg = lens.logits.double().numpy()
    probs = np.exp(lg - lg.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(lens.probs.numpy(), probs, rtol=1e-5, atol=1e-7)
    top = lens.top_tokens()
    order = np.argsort(-lg, axis=-1, kind="stable")[..., :3]
    assert np.array_equal(top.ids.numpy(), order)
    np.testing.assert_allclose(top.probs.numpy(), np.take_along_axis(probs, order, -1), 1e-5)
    assert top.tokens[1, 0, 2, 0] == tiny_tokenizer.decode([int(order[1, 0, 2, 0])])
    target = 17
    rank = lens.rank(target).numpy()
    expect_rank = (lg > lg[..., target : target + 1]).sum(-1)
    assert np.array_equal(rank, expect_rank)
    np.testing.assert_allclose(lens.prob(target).numpy(), probs[..., target], rtol=1e-5)
    final = probs[-1]
    kl = (final * (np.log(final) - np.log(probs))).sum(-1)
    np.testing.assert_allclose(lens.kl_to_final().numpy(), kl, rtol=1e-4, atol=1e-7)
    assert np.all(lens.kl_to_final().numpy()[-1] == 0)


def test_per_position_targets_and_the_frame(tiny_tokenizer):
    model = build("gpt2")
    ids = input_ids()
    nxt = torch.full_like(ids, -1)
    nxt[:, :-1] = ids[:, 1:]  # the actual next token; the last position has none
    lens = logit_lens(model, ids, target=nxt, tokenizer=tiny_tokenizer)
    rank = lens.rank()
    assert torch.all(rank[:, :, -1] == -1) and torch.all(rank[:, :, :-1] >= 0)
    assert torch.isnan(lens.prob()[:, :, -1]).all()
    lg = lens.logits
    r = (lg[2, 1, 3] > lg[2, 1, 3, int(ids[1, 4])]).sum()
    assert int(rank[2, 1, 3]) == int(r)
    frame = lens.to_frame(top_k=2)
    assert len(frame) == 4 * 2 * 7
    assert list(frame.columns) == [
        "entry", "label", "batch", "position", "input_token", "top_1", "top_2",
        "top_1_prob", "top_2_prob", "kl_to_final", "target", "target_rank", "target_prob",
    ]  # fmt: skip
    row = frame[(frame.entry == 2) & (frame.batch == 1) & (frame.position == 3)].iloc[0]
    assert row.label == "L1"
    assert row.input_token == tiny_tokenizer.decode([int(ids[1, 3])])
    assert row.target == int(ids[1, 4]) and row.target_rank == int(r)
    assert row.top_1 == tiny_tokenizer.decode([int(lg[2, 1, 3].argmax())])
    # one-token string target
    tok = tiny_tokenizer.convert_ids_to_tokens(40)
    text = tiny_tokenizer.convert_tokens_to_string([tok])
    assert torch.equal(lens.rank(text), lens.rank(40))


def test_text_inputs_need_a_tokenizer_and_are_tokenized(tiny_tokenizer):
    model = build("llama")
    lens = logit_lens(model, "def(x):return(x)", tokenizer=tiny_tokenizer)
    ids = tiny_tokenizer("def(x):return(x)", return_tensors="pt")["input_ids"]
    assert torch.equal(lens.input_ids, ids)
    assert isinstance(lens, LogitLens) and "logit_lens" in repr(lens)
    with pytest.raises(InvalidInputError, match="no tokenizer"):
        logit_lens(model, "some text")


def test_bad_input_is_refused_with_a_clear_message(tiny_tokenizer):
    model = build("gpt2")
    ids = input_ids()
    with pytest.raises(InvalidParameterError, match="site="):
        logit_lens(model, ids, site="resid_pre")
    with pytest.raises(InvalidInputError, match="tokenizer does not match"):
        logit_lens(model, ids + 500)
    lens = logit_lens(model, ids, tokenizer=tiny_tokenizer)
    with pytest.raises(InvalidParameterError, match="one token"):
        lens.rank("return value")
    with pytest.raises(InvalidParameterError, match=r"\[0, 96\)"):
        lens.prob(96)
    with pytest.raises(InvalidParameterError, match="no target"):
        lens.rank()
    with pytest.raises(InvalidParameterError, match="fit neither"):
        lens.rank(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(InvalidParameterError, match="another model"):
        logit_lens(model, ids, anatomy=Anatomy.of(build("llama")))
    with pytest.raises(UnsupportedModelError, match="no unembedding"):
        logit_lens(build("gpt2").transformer, ids)
    assert hooks_left(model) == []


# ------------------------------------------------------------ direct logit attribution ----
@pytest.mark.parametrize("arch", DECODERS)
def test_dla_sums_to_the_real_logit_difference(arch):
    model = _perturbed(arch)
    ids = input_ids()
    with torch.no_grad():
        logits = model(ids).logits[:, -1].double()
    exp = direct_logit_attribution(model, ids, target=(5, 9), by="component")
    diff = (logits[:, 5] - logits[:, 9]).numpy()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:  # the attribution explains the unembedding's output, before Gemma 2's soft cap
        np.testing.assert_allclose(np.tanh(exp.predictions / cap) * cap, diff, atol=1e-5)
    else:
        np.testing.assert_allclose(exp.predictions, diff, atol=1e-5)
    np.testing.assert_allclose(exp.values.sum(1), exp.predictions, atol=1e-5)
    np.testing.assert_allclose(exp.meta["completeness_gap"], exp.completeness_gap(), atol=1e-12)
    assert np.abs(exp.completeness_gap()).max() < 1e-6
    anat = Anatomy.of(model)
    mlps = [f"L{i}.mlp" for i in range(anat.n_layers)]
    assert exp.feature_names[-1] == "bias" and exp.feature_names[0] == "embed"
    assert [n for n in exp.feature_names if n.endswith(".mlp")] == mlps
    if arch == "gemma2":  # the post-attention norm mixes the heads after the projection
        with pytest.raises(UnsupportedModelError, match="by='component'"):
            direct_logit_attribution(model, ids, target=(5, 9))
        return
    heads = direct_logit_attribution(model, ids, target=(5, 9))
    np.testing.assert_allclose(heads.values.sum(1), diff, atol=1e-5)
    assert sum(n.startswith("L0.H") for n in heads.feature_names) == anat.n_heads
    # the heads of a layer plus its share of the bias are that layer's attention output
    comp = dict(zip(exp.feature_names, exp.values.T, strict=True))
    head = dict(zip(heads.feature_names, heads.values.T, strict=True))
    layer_sum = sum(head[f"L1.H{h}"] for h in range(anat.n_heads))
    o_bias = Anatomy.of(model).b_O(1)
    if o_bias is None:
        np.testing.assert_allclose(layer_sum, comp["L1.attn"], atol=1e-6)
    np.testing.assert_allclose(heads.meta["bias_attn_out"] + comp["bias"], head["bias"], atol=1e-6)
    assert hooks_left(model) == []


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_dla_equals_transformer_lens_logit_attrs(arch, tiny_tokenizer):
    model = _perturbed(arch)
    ids = input_ids(batch=3, seed=5)
    correct, wrong = torch.tensor([5, 11, 40]), torch.tensor([9, 12, 41])
    bridge = _bridge(arch, model, tiny_tokenizer, fold=True)
    _, cache = bridge.run_with_cache(ids)
    comps, labels = cache.decompose_resid(pos_slice=-1, return_labels=True)
    tl_comp = cache.logit_attrs(comps, correct, wrong, pos_slice=-1).T.detach().numpy()
    heads, head_labels = cache.stack_head_results(pos_slice=-1, return_labels=True)
    tl_head = cache.logit_attrs(heads, correct, wrong, pos_slice=-1).T.detach().numpy()

    pairs = np.stack([correct.numpy(), wrong.numpy()], axis=1)
    exp = direct_logit_attribution(model, ids, target=pairs, by="component")
    names = {"embed": "embed", "pos_embed": "pos_embed"}
    for i in range(3):
        names[f"{i}_attn_out"] = f"L{i}.attn"
        names[f"{i}_mlp_out"] = f"L{i}.mlp"
    ours = exp.values[:, [exp.feature_names.index(names[lab]) for lab in labels]]
    scale = np.abs(tl_comp).max()
    np.testing.assert_allclose(ours, tl_comp, rtol=1e-4, atol=1e-4 * scale)

    exp_h = direct_logit_attribution(model, ids, target=pairs, by="head")
    cols = [exp_h.feature_names.index(lab.replace("H", ".H")) for lab in head_labels]
    scale = np.abs(tl_head).max()
    np.testing.assert_allclose(exp_h.values[:, cols], tl_head, rtol=1e-4, atol=1e-4 * scale)
    # the frozen scale is TransformerLens's cached ln_final scale
    tl_scale = cache["ln_final.hook_scale"][:, -1, 0].detach().numpy()
    np.testing.assert_allclose(exp.meta["final_norm_scale"], tl_scale, rtol=1e-5)


def test_dla_targets_directions_and_positions(tiny_tokenizer):
    model = _perturbed("llama")
    ids = input_ids(batch=2, pos=6)
    with torch.no_grad():
        logits = model(ids).logits.double()
    one = direct_logit_attribution(model, ids, target=7, position=2, by="component")
    np.testing.assert_allclose(one.values.sum(1), logits[:, 2, 7].numpy(), atol=1e-5)
    assert one.params["output"] == "logit[7]"
    v = torch.randn(96, generator=torch.Generator().manual_seed(0)).double()
    d = direct_logit_attribution(model, ids, target=v.numpy(), by="component")
    np.testing.assert_allclose(d.values.sum(1), (logits[:, -1] @ v).numpy(), atol=1e-4)
    per_row = direct_logit_attribution(model, ids, target=(5, 9), position=[1, 4])
    for r, p in enumerate((1, 4)):
        alone = direct_logit_attribution(model, ids[r : r + 1], target=(5, 9), position=p)
        np.testing.assert_allclose(per_row.values[r], alone.values[0], rtol=1e-6, atol=1e-7)
    assert list(per_row.meta["position"]) == [1, 4]
    a, b = (tiny_tokenizer.convert_tokens_to_string([t]) for t in ("x", "y"))
    s = direct_logit_attribution(model, ids, target=(a, b), tokenizer=tiny_tokenizer)
    ia, ib = tiny_tokenizer.convert_tokens_to_ids(["x", "y"])
    np.testing.assert_allclose(s.predictions, (logits[:, -1, ia] - logits[:, -1, ib]).numpy(), 1e-5)
    assert s.params["output"] == f"logit[{a!r}] - logit[{b!r}]"


def test_dla_refuses_what_it_cannot_split():
    ids = input_ids()
    with pytest.raises(UnsupportedModelError, match="post-LN"):
        direct_logit_attribution(build("bert"), ids, target=(5, 9))
    model = build("gpt2")
    with pytest.raises(InvalidParameterError, match="by="):
        direct_logit_attribution(model, ids, target=(5, 9), by="neuron")
    with pytest.raises(InvalidParameterError, match="outside the vocabulary"):
        direct_logit_attribution(model, ids, target=(5, 960))
    with pytest.raises(InvalidParameterError, match="direction"):
        direct_logit_attribution(model, ids, target=np.ones(7))
    with pytest.raises(InvalidParameterError, match="position"):
        direct_logit_attribution(model, ids, target=(5, 9), position=7)
    with pytest.raises(InvalidParameterError, match="one int per batch row"):
        direct_logit_attribution(model, ids, target=(5, 9), position=[1, 2, 3])
    assert hooks_left(model) == []
