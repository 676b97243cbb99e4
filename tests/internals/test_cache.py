"""run_with_cache / ActivationCache against oracles: the model's own unhooked logits (bit for
bit, every architecture), nnsight's module outputs (bit for bit, every architecture),
TransformerLens 4.x's TransformerBridge (GPT-2 and Llama, 1e-4 relative), gradients from
plain autograd on hand-registered hooks and on Hugging Face's own hidden states, sizes in
bytes computed by hand."""

from __future__ import annotations

import copy
import fnmatch
import gc
import os
import warnings

import pytest

from tests.internals.tiny import build, hooks_left, input_ids, torch
from whybox.errors import InvalidInputError, InvalidParameterError, ModelCallError
from whybox.internals import hooks
from whybox.internals.anatomy import Anatomy
from whybox.internals.cache import ActivationCache, run_with_cache

RESID = ("embed", "pos_embed", "blocks.*.resid_pre", "blocks.*.resid_post")
SITES = (*RESID, "blocks.*.attn.out", "blocks.*.mlp.out", "blocks.*.attn.head_out")
SITES = (*SITES, "blocks.*.mlp.post")


def bare_logits(model, ids):
    with torch.no_grad():
        return hooks.output_logits(model(input_ids=ids))


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(model, before) -> bool:
    now = model.state_dict()
    return now.keys() == before.keys() and all(torch.equal(now[k], before[k]) for k in before)


def rel_err(a, b) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# --------------------------------------------------------------- read-only, every arch ----
def test_logits_bit_for_bit_and_no_trace_every_architecture(tiny_model):
    _, model = tiny_model
    ids = input_ids()
    ref = bare_logits(model, ids)
    before, config = state(model), model.config.to_dict()
    logits, cache = run_with_cache(model, ids)  # every standard name
    assert torch.equal(logits, ref)
    assert "unembed" not in cache and "blocks.0.resid_post" in cache
    metric = lambda lg: lg[:, -1, 5].sum()  # noqa: E731
    logits_g, cache_g = run_with_cache(model, ids, with_grad=True, metric=metric)
    assert torch.equal(logits_g, ref)  # handing tensors back for gradients changes no value
    assert cache_g.names == cache.names
    for name in cache.names:
        assert torch.equal(cache[name], cache_g[name]), name
    assert hooks_left(model) == []
    assert same_state(model, before) and model.config.to_dict() == config
    assert all(p.grad is None for p in model.parameters())  # autograd.grad only
    assert not model.training


def _nnsight_path(path: str) -> str:
    # nnsight serves .output/.input on every module; a submodule so named becomes E_output
    return ".".join("E_" + s if s in ("output", "input", "inputs") else s for s in path.split("."))


def test_activations_equal_nnsight_bit_for_bit_every_architecture(tiny_model):
    import nnsight  # an oracle of the dev extras: missing must fail, not skip

    arch, model = tiny_model
    ids = input_ids()
    anat = Anatomy.of(model)
    names = [n for n in anat.names() if any(fnmatch.fnmatchcase(n, s) for s in SITES)]
    _, cache = run_with_cache(model, ids, names)
    assert set(cache.names) == set(names)
    points = {n: anat.point(n) for n in cache.names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BERT's submodules named 'output'
        wrapped = nnsight.NNsight(model)
        saved = {}
        with wrapped.trace(input_ids=ids):
            for n in cache.names:  # the order the model produced them, as nnsight requires
                p = points[n]
                where = _nnsight_path(p.path) + (".output" if p.io == "output" else ".inputs")
                saved[n] = wrapped.get(where).save()
    for n in cache.names:
        p, value = points[n], saved[n]
        if p.io == "output":
            t = value if isinstance(value, torch.Tensor) else value[p.index]
        else:
            args, kwargs = value
            t = args[p.index] if len(args) > p.index else kwargs[p.kwarg]
        if p.heads:  # head_out: (batch, pos, n_heads * d_head) split by hand
            t = t.reshape(*t.shape[:-1], p.heads, anat.d_head)
        assert torch.equal(cache[n], t), (arch, n)
    assert hooks_left(model) == []


# --------------------------------------------------------------- TransformerLens ----------
TL_NAMES = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "ln1": "ln1.hook_out",
    "attn.q": "attn.hook_q",
    "attn.k": "attn.hook_k",
    "attn.v": "attn.hook_v",
    "attn.pattern": "attn.hook_pattern",
    "attn.head_out": "attn.hook_z",
    "attn.out": "hook_attn_out",
    "ln2": "ln2.hook_out",
    "mlp.post": "mlp.hook_post",
    "mlp.out": "hook_mlp_out",
    "ln_final": "ln_final.hook_out",
}


def _tl_name(name: str) -> str:
    if name.startswith("blocks."):
        _, layer, site = name.split(".", 2)
        return f"blocks.{layer}.{TL_NAMES[site]}"
    return TL_NAMES[name]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_equal_transformer_lens_bridge(arch, tiny_tokenizer):
    from transformer_lens.model_bridge import TransformerBridge

    model = build(arch)
    ids = input_ids(batch=3, pos=9)
    logits, cache = run_with_cache(model, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            arch, hf_model=copy.deepcopy(model), tokenizer=tiny_tokenizer, device="cpu"
        )
        tl_logits, tl_cache = bridge.run_with_cache(ids)
    assert rel_err(logits, tl_logits.detach()) < 1e-4
    assert len(cache.names) >= 13 * 3  # every standard name but unembed
    for name in cache.names:
        assert rel_err(cache[name], tl_cache[_tl_name(name)]) < 1e-4, name
    # TL's last resid_post is before the final norm, as ours; HF's last hidden state is after
    ours, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    theirs, tl_labels = tl_cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == tl_labels == ["0_pre", "1_pre", "2_pre", "final_post"]
    assert rel_err(ours, theirs) < 1e-4
    assert rel_err(ours[-1], cache["ln_final"]) < 1e-6  # the model's own final norm output
    mid, mid_labels = cache.accumulated_resid(layer=2, incl_mid=True, return_labels=True)
    tl_mid, tl_mid_labels = tl_cache.accumulated_resid(layer=2, incl_mid=True, return_labels=True)
    assert mid_labels == tl_mid_labels and rel_err(mid, tl_mid) < 1e-4
    assert rel_err(cache.stack("resid_post"), tl_cache.stack_activation("resid_post")) < 1e-4


# --------------------------------------------------------------- names and shapes ---------
def test_names_filters_and_shapes():
    model = build("llama")
    ids = input_ids(batch=2, pos=5)
    anat = Anatomy.of(model)
    _, by_glob = run_with_cache(model, ids, "blocks.*.resid_post")
    assert by_glob.names == [f"blocks.{i}.resid_post" for i in range(3)]
    _, by_fn = run_with_cache(model, ids, lambda n: n.endswith("resid_post"))
    assert by_fn.names == by_glob.names
    path = anat.path("blocks.1.mlp.out")
    _, mixed = run_with_cache(model, ids, ["blocks.1.hook_resid_post", path, "blocks.0.attn.*"])
    _, standard = run_with_cache(model, ids, "blocks.1.mlp.out")
    assert torch.equal(mixed[path], standard["blocks.1.mlp.out"])  # a module path as a name
    assert torch.equal(mixed["blocks.1.resid_post"], by_glob["blocks.1.resid_post"])
    assert torch.equal(mixed["blocks.1.hook_resid_post"], mixed["resid_post", 1])
    assert torch.equal(by_glob["resid_post", -1], by_glob["blocks.2.resid_post"])
    # per-head views: grouped-query attention has 2 kv heads of 8
    assert mixed["blocks.0.attn.q"].shape == (2, 5, 4, 8)
    assert mixed["blocks.0.attn.k"].shape == (2, 5, 2, 8)
    assert mixed["blocks.0.attn.head_out"].shape == (2, 5, 4, 8)
    pattern = mixed["blocks.0.attn.pattern"]
    assert pattern.shape == (2, 4, 5, 5)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 4, 5))  # softmax rows
    assert torch.all(pattern.triu(1) == 0)  # causal
    assert by_glob.stack("resid_post").shape == (3, 2, 5, 32)
    assert torch.equal(by_glob.stack("blocks.*.resid_post")[1], by_glob["blocks.1.resid_post"])
    # mixed order follows the forward pass, not the request
    assert mixed.names.index("blocks.0.attn.out") < mixed.names.index(path)


def test_public_names():
    import whybox as wb

    assert wb.run_with_cache is run_with_cache and wb.ActivationCache is ActivationCache


def test_default_names_skip_pattern_without_eager_attention():
    model = build("gpt2", attn_implementation="sdpa")
    _, cache = run_with_cache(model, input_ids())
    assert not any(n.endswith("attn.pattern") for n in cache.names)
    assert "blocks.2.attn.head_out" in cache and "unembed" not in cache


def test_bad_names_and_keywords():
    model = build("gpt2")
    ids = input_ids()
    with pytest.raises(InvalidParameterError, match=r"blocks\.0\.resid_post"):
        run_with_cache(model, ids, "blocks.0.resid_pots")
    with pytest.raises(InvalidParameterError, match="3 blocks"):
        run_with_cache(model, ids, "blocks.7.resid_post")
    with pytest.raises(InvalidParameterError, match="'names'"):
        run_with_cache(model, ids, name="blocks.0.resid_post")
    with pytest.raises(InvalidParameterError, match="selects no hook point"):
        run_with_cache(model, ids, lambda n: False)
    _, cache = run_with_cache(model, ids, "blocks.*.resid_post")
    with pytest.raises(
        InvalidParameterError, match=r"Nearest cached names: 'blocks\.1\.resid_post'"
    ):
        cache["blocks.1.resid_pots"]
    with pytest.raises(KeyError):  # a Mapping: .get works
        cache["blocks.1.attn.out"]
    assert cache.get("blocks.1.attn.out") is None
    with pytest.raises(InvalidParameterError, match="lacks it at layers"):
        cache.stack("attn.out")
    with pytest.raises(InvalidParameterError, match="resid_pre"):
        cache.accumulated_resid()
    with pytest.raises(InvalidParameterError, match="no gradients"):
        _ = cache.grad
    with pytest.raises(InvalidParameterError, match="floating"):
        run_with_cache(model, ids, dtype="int8")
    with pytest.raises(InvalidParameterError, match="device"):
        run_with_cache(model, ids, device="nope")
    with pytest.raises(InvalidParameterError, match="with_grad=True"):
        run_with_cache(model, ids, metric=lambda lg: lg.sum())
    with pytest.raises(InvalidParameterError, match="metric=fn"):
        run_with_cache(model, ids, with_grad=True)
    assert hooks_left(model) == []


def test_bad_inputs_tokenizer_mismatch_and_device():
    model = build("gpt2")
    with pytest.raises(InvalidInputError, match="tokenizer does not match"):
        run_with_cache(model, torch.tensor([[1, 2, 500]]))
    with pytest.raises(InvalidInputError, match="is on meta but the model is on cpu"):
        run_with_cache(model, input_ids().to("meta"))
    assert hooks_left(model) == []


def test_batch_encoding_and_forward_kwargs():
    from transformers import BatchEncoding

    model = build("gpt2")
    ids = input_ids(batch=2, pos=6)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # left padding in row 1
    enc = BatchEncoding({"input_ids": ids, "attention_mask": mask})
    logits, cache = run_with_cache(model, enc, "blocks.*.resid_post", batch_size=1)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(logits, ref.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cache["blocks.0.resid_post"], ref.hidden_states[1])
    logits2, _ = run_with_cache(model, ids, attention_mask=mask)
    torch.testing.assert_close(logits2, ref.logits, rtol=0, atol=0)
    with pytest.raises(InvalidParameterError, match="given twice"):
        run_with_cache(model, {"input_ids": ids, "attention_mask": mask}, attention_mask=mask)


# --------------------------------------------------------------- gradients ----------------
def test_gradients_equal_autograd_on_hidden_states():
    model = build("gpt2")
    ids = input_ids(batch=2, pos=6)

    def metric(lg):
        return lg[:, -1, 7].sum() - lg[:, -2, 3].mean()

    _, cache = run_with_cache(model, ids, "blocks.*.resid_post", with_grad=True, metric=metric)
    oracle = build("gpt2")  # output_hidden_states leaves transformers' own hooks behind
    out = oracle(input_ids=ids, output_hidden_states=True)
    # hidden_states[i + 1] is block i's output, except the last (after the final norm)
    grads = torch.autograd.grad(metric(out.logits), out.hidden_states[1:3])
    for i, g in enumerate(grads):
        torch.testing.assert_close(cache.grad[f"blocks.{i}.resid_post"], g, rtol=1e-5, atol=1e-7)
    assert cache.grad.names == cache.names and cache.has_grad


def test_gradients_of_head_views_equal_hand_hooks():
    """Gradients for q (a slice of GPT-2's fused c_attn, split by heads) and head_out (the
    input of c_proj, split by heads), against retain_grad on hand-registered hooks."""
    model = build("gpt2")
    ids = input_ids(batch=2, pos=6)

    def metric(lg):
        return (lg[:, -1, 11] - lg[:, -1, 12]).sum()

    names = ["blocks.1.attn.q", "blocks.1.attn.v", "blocks.1.attn.head_out", "blocks.0.mlp.out"]
    _, cache = run_with_cache(model, ids, names, with_grad=True, metric=metric)
    oracle = build("gpt2")
    seen = {}
    h1 = oracle.transformer.h[1].attn.c_attn.register_forward_hook(
        lambda m, a, out: seen.setdefault("qkv", out)
    )
    h2 = oracle.transformer.h[1].attn.c_proj.register_forward_pre_hook(
        lambda m, a: seen.setdefault("z", a[0])
    )
    h3 = oracle.transformer.h[0].mlp.register_forward_hook(
        lambda m, a, out: seen.setdefault("mlp", out)
    )
    try:
        value = metric(oracle(input_ids=ids).logits)
    finally:
        h1.remove(), h2.remove(), h3.remove()
    g_qkv, g_z, g_mlp = torch.autograd.grad(value, [seen["qkv"], seen["z"], seen["mlp"]])
    d = 32
    torch.testing.assert_close(cache.grad["blocks.1.attn.q"], g_qkv[..., :d].reshape(2, 6, 4, 8))
    v_grad = g_qkv[..., 2 * d :].reshape(2, 6, 4, 8)
    torch.testing.assert_close(cache.grad["blocks.1.attn.v"], v_grad)
    torch.testing.assert_close(cache.grad["blocks.1.attn.head_out"], g_z.reshape(2, 6, 4, 8))
    torch.testing.assert_close(cache.grad["blocks.0.mlp.out"], g_mlp)


def test_gradients_with_frozen_parameters_and_chunks():
    model = build("llama")
    ids = input_ids(batch=4, pos=5)

    def metric(lg):
        return lg[:, -1, 9].sum()  # sums over rows: chunks add up to the whole batch

    names = ["embed", "blocks.*.resid_post", "blocks.1.attn.k"]
    _, ref = run_with_cache(model, ids, names, with_grad=True, metric=metric)
    for p in model.parameters():
        p.requires_grad_(False)
    _, frozen = run_with_cache(model, ids, names, with_grad=True, metric=metric)
    _, chunked = run_with_cache(model, ids, names, with_grad=True, metric=metric, batch_size=3)
    for n in ref.names:
        torch.testing.assert_close(frozen.grad[n], ref.grad[n], rtol=0, atol=0)
        torch.testing.assert_close(chunked.grad[n], ref.grad[n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(chunked[n], ref[n], rtol=1e-5, atol=1e-6)
    assert ref.grad["blocks.2.resid_post"][:, :-1].abs().max() == 0  # causal: last position only


def test_metric_errors_leave_no_hooks():
    model = build("gpt2")
    ids = input_ids()
    before = state(model)
    with pytest.raises(InvalidParameterError, match=r"scalar tensor.*shape \(2, 7\)"):
        run_with_cache(model, ids, with_grad=True, metric=lambda lg: lg[..., 0])
    with pytest.raises(InvalidParameterError, match="no gradient"):
        run_with_cache(model, ids, with_grad=True, metric=lambda lg: lg.detach().sum())

    def boom(lg):
        raise RuntimeError("metric exploded")

    with pytest.raises(ModelCallError, match="metric exploded") as info:
        run_with_cache(model, ids, with_grad=True, metric=boom)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert hooks_left(model) == [] and same_state(model, before)


def test_model_error_leaves_no_hooks(monkeypatch):
    model = build("gpt2")
    Anatomy.of(model)  # found while the model still works
    block = model.transformer.h[1]

    def broken(*args, **kwargs):
        raise RuntimeError("block 1 is broken")

    monkeypatch.setattr(block, "forward", broken)
    with pytest.raises(ModelCallError, match="block 1 is broken"):
        run_with_cache(model, input_ids())
    with pytest.raises(ModelCallError, match="block 1 is broken"):
        run_with_cache(model, input_ids(), with_grad=True, metric=lambda lg: lg.sum())
    assert hooks_left(model) == []


# --------------------------------------------------------------- dtype, device, chunks ----
def test_dtype_cast_after_capture():
    model = build("gpt2")
    ids = input_ids()
    logits, ref = run_with_cache(model, ids, "blocks.*")
    logits16, half = run_with_cache(model, ids, "blocks.*", dtype="float16", device=None)
    assert torch.equal(logits16, logits) and logits16.dtype == torch.float32
    for n in ref.names:
        assert half[n].dtype == torch.float16
        assert torch.equal(half[n], ref[n].half())
    assert half.nbytes * 2 == ref.nbytes
    bf = ref.to(dtype=torch.bfloat16)
    assert bf["blocks.0.resid_post"].dtype == torch.bfloat16 and ref.nbytes == 2 * bf.nbytes


def test_chunks_equal_whole_batch():
    model = build("gpt2")  # pos_embed is (1, pos, d) for every chunk
    ids = input_ids(batch=5)
    logits, whole = run_with_cache(model, ids)
    logits_c, chunked = run_with_cache(model, ids, batch_size=2)
    assert chunked.names == whole.names
    for n in whole.names:
        assert chunked[n].shape == whole[n].shape, n
        torch.testing.assert_close(chunked[n], whole[n], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_c, logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidParameterError, match="batch_size must be at least 1"):
        run_with_cache(model, ids, batch_size=0)


# --------------------------------------------------------------- offload -------------------
def test_max_bytes_offloads_to_memmap_folder(tmp_path):
    model = build("gpt2")
    ids = input_ids(batch=2, pos=7)
    one = 2 * 7 * 32 * 4  # bytes of one (batch, pos, d_model) float32 activation
    _, ref = run_with_cache(model, ids, "blocks.*.resid_post")
    _, cache = run_with_cache(
        model, ids, "blocks.*.resid_post", max_bytes=one, offload_dir=tmp_path
    )
    folder = cache.offload_dir
    assert folder is not None and folder.parent == tmp_path
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".npy", ".npy"]
    for n in ref.names:
        assert torch.equal(cache[n], ref[n])
    reopened = ActivationCache.load(folder)  # the two that did not fit
    assert reopened.names == ["blocks.1.resid_post", "blocks.2.resid_post"]
    assert torch.equal(reopened["blocks.2.resid_post"], ref["blocks.2.resid_post"])
    del cache, reopened
    gc.collect()
    assert folder.exists()  # a user's folder is kept


def test_max_bytes_temporary_folder_removed_with_cache_and_bfloat16():
    model = build("llama")
    ids = input_ids()
    _, ref = run_with_cache(model, ids, "blocks.*.attn.*", dtype=torch.bfloat16)
    _, cache = run_with_cache(model, ids, "blocks.*.attn.*", dtype=torch.bfloat16, max_bytes=1000)
    folder = cache.offload_dir
    assert folder is not None and any(folder.glob("*.npy"))
    for n in ref.names:
        assert cache[n].dtype == torch.bfloat16 and torch.equal(cache[n], ref[n])
    del cache
    gc.collect()
    assert not folder.exists()


def test_max_bytes_smaller_than_one_activation(tmp_path):
    model = build("gpt2")
    ids = input_ids(batch=2, pos=7)
    smallest = 2 * 7 * 32 * 4
    with pytest.raises(InvalidParameterError, match=f"takes {smallest} bytes") as info:
        run_with_cache(model, ids, "blocks.*.resid_post", max_bytes=100, offload_dir=tmp_path)
    assert "max_bytes=100" in str(info.value) and "blocks.0.resid_post" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    # q (batch, pos, heads, d_head) is the smallest here: 2*7*4*8*4 bytes; mlp.post is 3x that
    with pytest.raises(InvalidParameterError, match=f"'blocks.0.attn.q', takes {2 * 7 * 32 * 4} "):
        run_with_cache(model, ids, ["blocks.0.mlp.post", "blocks.0.attn.q"], max_bytes=10)
    assert hooks_left(model) == []


# --------------------------------------------------------------- save / load ---------------
def test_save_load_roundtrip_atomic(tmp_path, monkeypatch):
    model = build("gpt2")
    _, cache = run_with_cache(
        model,
        input_ids(),
        "blocks.*",
        with_grad=True,
        metric=lambda lg: lg[:, -1].logsumexp(-1).sum(),
    )
    path = cache.save(tmp_path / "acts.safetensors")
    loaded = ActivationCache.load(path)
    assert loaded.names == cache.names and loaded.grad.names == cache.grad.names
    for n in cache.names:
        assert torch.equal(loaded[n], cache[n]) and torch.equal(loaded.grad[n], cache.grad[n])
    assert loaded.n_layers == 3 and loaded.stack("resid_post").shape == (3, 2, 7, 32)
    assert loaded.nbytes == cache.nbytes
    # a failed write leaves the old file whole and no temporary file behind
    import safetensors.torch as st

    real = st.save_file

    def half_then_fail(tensors, filename, metadata=None):
        real({"x": torch.zeros(3)}, filename)
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        cache.save(path)
    assert sorted(os.listdir(tmp_path)) == ["acts.safetensors"]
    assert torch.equal(
        ActivationCache.load(path)["blocks.0.resid_post"], cache["blocks.0.resid_post"]
    )


def test_load_refuses_other_files(tmp_path):
    import safetensors.torch as st

    st.save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InvalidInputError, match="not a saved ActivationCache"):
        ActivationCache.load(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidInputError, match="could not be read"):
        ActivationCache.load(tmp_path / "junk.safetensors")
    with pytest.raises(InvalidParameterError, match="no file or folder"):
        ActivationCache.load(tmp_path / "missing.safetensors")
    with pytest.raises(InvalidInputError, match="offload folder"):
        ActivationCache.load(tmp_path)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        ActivationCache({}).save(tmp_path / "no" / "such.safetensors")
