"""Anatomy: the parts found in every architecture, checked against what the model itself
computes (its hidden states and attention weights from ``output_hidden_states`` /
``output_attentions``, the residual additions, the output projection), not against the
anatomy's own tables; plus a hand-written transformer no table names, and the errors."""

from __future__ import annotations

import math

import pytest
import torch

from tests.internals.tiny import ARCHS, DECODERS, ENCODERS, build, hooks_left, input_ids
from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.internals import hooks
from whybox.internals.anatomy import Anatomy

EXPECTED_PATHS = {
    # a few paths per family, written from the transformers source by hand
    "gpt2": {"blocks": "transformer.h", "o": "attn.c_proj", "qkv": "attn.c_attn",
             "final_norm": "transformer.ln_f", "unembed": "lm_head", "mlp_down": "mlp.c_proj"},
    "gpt_neox": {"blocks": "gpt_neox.layers", "qkv": "attention.query_key_value",
                 "o": "attention.dense", "ln2": "post_attention_layernorm"},
    "llama": {"blocks": "model.layers", "q": "self_attn.q_proj", "o": "self_attn.o_proj",
              "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
              "final_norm": "model.norm", "mlp_down": "mlp.down_proj"},
    "gemma2": {"ln2": "pre_feedforward_layernorm", "post_attn_norm": "post_attention_layernorm",
               "post_mlp_norm": "post_feedforward_layernorm"},
    "phi": {"o": "self_attn.dense", "mlp_down": "mlp.fc2", "final_norm": "model.final_layernorm"},
    "bert": {"blocks": "bert.encoder.layer", "o": "attention.output.dense",
             "mlp_down": "output.dense", "head": "cls.predictions"},
    "distilbert": {"q": "attention.q_lin", "o": "attention.out_lin", "mlp_down": "ffn.lin2"},
}  # fmt: skip


def _run(model, ids, **kw):
    with torch.no_grad():
        return model(input_ids=ids, **kw)


def _capture_all(model, anat, ids, names=None):
    cache: dict[str, torch.Tensor] = {}
    points = anat.resolve(names)

    def store(name):
        def fn(t):
            cache[name] = t.detach().clone()

        return fn

    with hooks.on_points(model, [(p, store(p.name)) for p in points]), torch.no_grad():
        out = model(input_ids=ids)
    return out, cache


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_and_known_paths(arch):
    model = build(arch)
    anat = Anatomy.of(model)
    cfg = model.config
    assert anat.n_layers == 3
    assert anat.n_heads == 4
    assert anat.d_model == 32
    assert anat.d_head == 8
    assert anat.n_kv_heads == getattr(cfg, "num_key_value_heads", None) or 4
    assert anat.is_causal == (arch in DECODERS)
    assert anat.norm_position == ("post" if arch in ENCODERS else "pre")
    assert anat.parallel_residual == (arch in ("gpt_neox", "phi"))
    found = anat.describe()
    for key, path in EXPECTED_PATHS.get(arch, {}).items():
        assert found[key] == path, key


@pytest.mark.parametrize("arch", ARCHS)
def test_read_only_hooks_on_every_point_leave_logits_bit_identical(arch):
    model = build(arch)
    ids = input_ids()
    bare = _run(model, ids).logits
    anat = Anatomy.of(model)
    seen = []
    with hooks.on_points(
        model, [(p, lambda t, n=p.name: seen.append(n)) for p in anat.resolve(None)]
    ):
        hooked = _run(model, ids).logits
    assert torch.equal(bare, hooked)
    assert set(seen) == {p.name for p in anat.resolve(None)}
    assert hooks_left(model) == []


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_stream_matches_the_models_hidden_states(arch):
    model = build(arch)
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids)
    hidden = _run(model, ids, output_hidden_states=True).hidden_states
    assert torch.equal(cache["blocks.0.resid_pre"], hidden[0])
    for i in range(anat.n_layers - 1):  # the last hidden state is after the final norm
        assert torch.equal(cache[f"blocks.{i}.resid_post"], hidden[i + 1])
        assert torch.equal(cache[f"blocks.{i + 1}.resid_pre"], cache[f"blocks.{i}.resid_post"])
    for i in range(anat.n_layers):
        pre, post = cache[f"blocks.{i}.resid_pre"], cache[f"blocks.{i}.resid_post"]
        attn, mlp = cache[f"blocks.{i}.attn.out"], cache[f"blocks.{i}.mlp.out"]
        assert attn.shape == mlp.shape == pre.shape == (2, 7, 32)
        if anat.norm_position == "pre" and anat.parallel_residual:
            torch.testing.assert_close(post, pre + attn + mlp, rtol=1e-6, atol=1e-6)
        elif anat.norm_position == "pre":
            mid = cache[f"blocks.{i}.resid_mid"]
            torch.testing.assert_close(mid, pre + attn, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(post, mid + mlp, rtol=1e-6, atol=1e-6)
        else:  # post-LN: the MLP reads LayerNorm(resid_pre + attn.out)
            ln = anat.block(i).get_submodule(_attn_norm_path(arch))
            torch.testing.assert_close(cache[f"blocks.{i}.resid_mid"], ln(pre + attn))


def _attn_norm_path(arch):
    return "sa_layer_norm" if arch == "distilbert" else "attention.output.LayerNorm"


@pytest.mark.parametrize("arch", ARCHS)
def test_head_outputs_times_w_o_rebuild_the_output_projection(arch):
    model = build(arch)
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids)
    o_path = anat.describe()["o"]
    for i in range(anat.n_layers):
        z = cache[f"blocks.{i}.attn.head_out"]
        assert z.shape == (2, 7, 4, 8)
        per_head = torch.einsum("bphd,hdm->bphm", z, anat.W_O(i))
        rebuilt = per_head.sum(2) + (anat.b_O(i) if anat.b_O(i) is not None else 0)
        o_out = anat.block(i).get_submodule(o_path)(z.reshape(2, 7, 32))
        torch.testing.assert_close(rebuilt, o_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_attention_pattern_equals_output_attentions(arch):
    model = build(arch)
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids, names="blocks.*.attn.pattern")
    ref = _run(model, ids, output_attentions=True).attentions
    for i in range(anat.n_layers):
        pat = cache[f"blocks.{i}.attn.pattern"]
        assert torch.equal(pat, ref[i])
        torch.testing.assert_close(pat.sum(-1), torch.ones(2, 4, 7))
        if anat.is_causal:
            assert float(pat.triu(1).abs().max()) == 0.0


def test_gpt2_fused_q_k_reproduce_the_pattern_by_hand():
    model = build("gpt2")
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids)
    for i in range(anat.n_layers):
        q, k = cache[f"blocks.{i}.attn.q"], cache[f"blocks.{i}.attn.k"]
        assert q.shape == k.shape == cache[f"blocks.{i}.attn.v"].shape == (2, 7, 4, 8)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(8)
        scores = scores.masked_fill(torch.ones(7, 7).triu(1).bool(), float("-inf"))
        torch.testing.assert_close(scores.softmax(-1), cache[f"blocks.{i}.attn.pattern"])
        # v by hand: the last third of c_attn's output
        c_attn = anat.block(i).attn.c_attn(cache[f"blocks.{i}.ln1"])
        torch.testing.assert_close(
            cache[f"blocks.{i}.attn.v"], c_attn[..., 64:].reshape(2, 7, 4, 8)
        )


def test_neox_fused_qkv_is_split_per_head():
    model = build("gpt_neox")
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids)
    qkv = anat.block(0).attention.query_key_value(cache["blocks.0.ln1"])
    by_head = qkv.reshape(2, 7, 4, 3 * 8)  # GPT-NeoX lays q, k, v out per head
    torch.testing.assert_close(cache["blocks.0.attn.q"], by_head[..., :8])
    torch.testing.assert_close(cache["blocks.0.attn.k"], by_head[..., 8:16])
    torch.testing.assert_close(cache["blocks.0.attn.v"], by_head[..., 16:])


def test_gqa_key_value_heads():
    model = build("llama")
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, input_ids(), names=["blocks.0.attn.k", "blocks.0.attn.q"])
    assert cache["blocks.0.attn.q"].shape == (2, 7, 4, 8)
    assert cache["blocks.0.attn.k"].shape == (2, 7, 2, 8)


@pytest.mark.parametrize("arch", (*DECODERS, "bert", "roberta"))
def test_logits_from_the_last_residual_equal_the_models_logits(arch):
    model = build(arch)
    ids = input_ids()
    anat = Anatomy.of(model)
    out, cache = _capture_all(model, anat, ids, names=[f"blocks.{anat.n_layers - 1}.resid_post"])
    with torch.no_grad():
        logits = anat.logits_from_resid(cache[f"blocks.{anat.n_layers - 1}.resid_post"])
    torch.testing.assert_close(logits, out.logits, rtol=1e-6, atol=1e-6)
    assert anat.W_U().shape == (32, 96)


def test_replacing_a_point_changes_the_forward_as_a_manual_rerun_says():
    model = build("llama")
    ids = input_ids()
    anat = Anatomy.of(model)
    _, cache = _capture_all(model, anat, ids)

    # zero head 2 of layer 1: rerun the rest of the model by hand from the patched residual
    def zero_head(z):
        z = z.clone()
        z[:, :, 2] = 0
        return z

    with hooks.on_points(model, [(anat.point("blocks.1.attn.head_out"), zero_head)]):
        patched = _run(model, ids).logits
    z = cache["blocks.1.attn.head_out"].clone()
    z[:, :, 2] = 0
    attn = anat.block(1).self_attn.o_proj(z.reshape(2, 7, 32))
    mid = cache["blocks.1.resid_pre"] + attn
    layer = anat.block(1)
    h = mid + layer.mlp(layer.post_attention_layernorm(mid))
    with torch.no_grad():
        pos_emb = model.model.rotary_emb(h, torch.arange(7)[None])
        mask = torch.full((7, 7), float("-inf")).triu(1)[None, None]
        h = model.model.layers[2](h, attention_mask=mask, position_embeddings=pos_emb)
        manual = anat.logits_from_resid(h)
    torch.testing.assert_close(patched, manual, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(patched, _run(model, ids).logits)
    assert hooks_left(model) == []


def test_hooks_are_removed_after_an_exception():
    model = build("gpt2")
    anat = Anatomy.of(model)

    def boom(t):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with hooks.on_points(model, [(anat.point("blocks.1.mlp.out"), boom)]):
            _run(model, input_ids())
    assert hooks_left(model) == []


def test_replacement_of_the_wrong_shape_is_refused():
    model = build("gpt2")
    anat = Anatomy.of(model)
    with pytest.raises(InvalidParameterError, match=r"expected \(2, 7, 4, 8\)"):
        with hooks.on_points(model, [(anat.point("blocks.0.attn.head_out"), lambda t: t[..., :2])]):
            _run(model, input_ids())
    assert hooks_left(model) == []


def test_names_aliases_paths_and_errors():
    model = build("gpt2")
    anat = Anatomy.of(model)
    assert anat.path("blocks.2.mlp.out") == "transformer.h.2.mlp"
    assert anat.path("blocks.2.hook_resid_post") == "transformer.h.2"
    assert anat.point("blocks.0.attn.hook_z") == anat.point("blocks.0.attn.head_out")
    assert anat.path("transformer.h.1.mlp.c_fc") == "transformer.h.1.mlp.c_fc"
    assert anat.names("blocks.*.resid_post") == [f"blocks.{i}.resid_post" for i in range(3)]
    assert [p.name for p in anat.resolve(lambda n: n.endswith("mlp.out"))] == [
        f"blocks.{i}.mlp.out" for i in range(3)
    ]
    with pytest.raises(InvalidParameterError, match=r"Nearest: 'blocks\.1\.resid_post'"):
        anat.point("blocks.1.resid_pots")
    with pytest.raises(InvalidParameterError, match="has 3 blocks"):
        anat.point("blocks.7.resid_post")
    with pytest.raises(InvalidParameterError, match="parallel residual"):
        Anatomy.of(build("phi")).point("blocks.0.resid_mid")
    with pytest.raises(InvalidParameterError, match="out of range"):
        anat.W_O(3)


def test_pattern_without_eager_attention_names_the_fix():
    model = build("gpt2", attn_implementation="sdpa")
    anat = Anatomy.of(model)
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        anat.point("blocks.0.attn.pattern")
    assert not any(p.name.endswith("pattern") for p in anat.resolve(None))


def test_encoder_without_head_has_no_unembedding():
    import transformers

    model = transformers.BertModel(build("bert").config).eval()
    anat = Anatomy.of(model)
    assert anat.unembed is None and "unembed" not in anat.names()
    with pytest.raises(UnsupportedModelError, match="AutoModelForMaskedLM"):
        anat.W_U()


def test_overrides_equal_discovery():
    model = build("llama")
    auto = Anatomy(model)
    manual = Anatomy(
        model, blocks="model.layers", o="self_attn.o_proj", q="self_attn.q_proj",
        k="self_attn.k_proj", v="self_attn.v_proj", mlp_down="mlp.down_proj",
        ln1="input_layernorm", ln2="post_attention_layernorm",
    )  # fmt: skip
    assert auto.describe() == manual.describe()
    with pytest.raises(InvalidParameterError, match="not a module path inside block"):
        Anatomy(model, o="self_attn.out")


# -- an architecture no table names ----------------------------------------------------


class _Mixer(torch.nn.Module):
    """Attention with odd names: projections 'alpha' (q), 'beta' (k), 'gamma' (v), 'omega'."""

    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.alpha, self.beta, self.gamma = (torch.nn.Linear(d, d) for _ in range(3))
        self.omega = torch.nn.Linear(d, d)

    def forward(self, x):
        b, p, d = x.shape
        q, k, v = (
            m(x).view(b, p, self.h, -1).transpose(1, 2) for m in (self.alpha, self.beta, self.gamma)
        )
        w = (q @ k.transpose(-1, -2) / math.sqrt(d // self.h)).softmax(-1)
        return self.omega((w @ v).transpose(1, 2).reshape(b, p, d)), w


class _Cell(torch.nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.pre_a = torch.nn.LayerNorm(d)
        self.mixer = _Mixer(d, h)
        self.pre_b = torch.nn.LayerNorm(d)
        self.widen = torch.nn.Linear(d, 4 * d)
        self.narrow = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.mixer(self.pre_a(x))[0]
        return x + self.narrow(torch.relu(self.widen(self.pre_b(x))))


class _Net(torch.nn.Module):
    def __init__(self, vocab=50, d=16, h=2, n=2):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, d)
        self.trunk = torch.nn.ModuleList(_Cell(d, h) for _ in range(n))
        self.squash = torch.nn.LayerNorm(d)
        self.readout = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.tokens(input_ids)
        for cell in self.trunk:
            x = cell(x)
        return self.readout(self.squash(x))


def test_an_unseen_architecture_is_found_from_shapes_and_call_order():
    torch.manual_seed(0)
    net = _Net().eval()
    anat = Anatomy(net, n_heads=2)
    found = anat.describe()
    assert (found["blocks"], found["embed"], found["final_norm"], found["unembed"]) == (
        "trunk", "tokens", "squash", "readout",
    )  # fmt: skip
    assert (found["q"], found["k"], found["v"], found["o"]) == (
        "mixer.alpha", "mixer.beta", "mixer.gamma", "mixer.omega",
    )  # fmt: skip
    assert (found["ln1"], found["ln2"], found["mlp_down"]) == ("pre_a", "pre_b", "narrow")
    assert anat.d_model == 16 and anat.d_head == 8 and anat.d_mlp == 64 and not anat.is_causal
    ids = torch.randint(0, 50, (2, 5))
    _, cache = _capture_all(net, anat, ids)
    torch.testing.assert_close(
        cache["blocks.0.resid_mid"], cache["blocks.0.resid_pre"] + cache["blocks.0.attn.out"]
    )
    torch.testing.assert_close(anat.logits_from_resid(cache["blocks.1.resid_post"]), net(ids))


def test_unfindable_parts_are_named_with_the_keyword_that_supplies_them():
    torch.manual_seed(0)
    with pytest.raises(UnsupportedModelError, match=r"n_heads=\.\.\."):
        Anatomy(_Net())
    flat = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    with pytest.raises(UnsupportedModelError, match=r"blocks='path\.to\.layers'"):
        Anatomy(flat, n_heads=1)
    with pytest.raises(UnsupportedModelError, match=r"torch\.nn\.Module"):
        Anatomy("not a model")


def test_the_probe_pass_leaves_the_model_as_it_was():
    model = build("gpt2").train()
    before_cfg = model.config.to_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Anatomy(model)
    assert model.training
    assert model.config.to_dict() == before_cfg
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hooks_left(model) == []


def test_inputs_that_do_not_fit_the_model_are_refused():
    from whybox.errors import InvalidInputError

    model = build("gpt2")
    anat = Anatomy.of(model)
    with pytest.raises(InvalidInputError, match="tokenizer does not match the model"):
        hooks.forward(model, torch.tensor([[5, 96]]), vocab_size=anat.vocab_size)
    with pytest.raises(InvalidInputError, match=r"on meta but the model is on cpu"):
        hooks.forward(model, torch.tensor([[5, 6]], device="meta"))
    with pytest.raises(InvalidInputError, match="tensor of token ids"):
        hooks.forward(model, "some text")
    with pytest.raises(InvalidInputError, match="empty"):
        hooks.forward(model, torch.zeros((1, 0), dtype=torch.long))
    logits = hooks.forward(model, {"input_ids": input_ids()})
    assert torch.equal(logits, _run(model, input_ids()).logits)


def test_an_anatomy_of_another_model_is_refused_everywhere_it_is_taken():
    from whybox.internals.cache import run_with_cache
    from whybox.internals.steering import SteeringVector

    model, other = build("gpt2", seed=0), build("gpt2", seed=1)
    assert Anatomy.for_model(model) is Anatomy.of(model)
    assert Anatomy.for_model(model, Anatomy.of(model)) is Anatomy.of(model)
    with pytest.raises(InvalidParameterError, match="must be a whybox Anatomy"):
        Anatomy.for_model(model, "transformer.h")
    # same architecture, so the same paths: its hooks would sit on the other model's modules
    with pytest.raises(InvalidParameterError, match="another model"):
        run_with_cache(model, input_ids(), names="blocks.0.resid_post", anatomy=Anatomy.of(other))
    vec = SteeringVector(torch.ones(32), layer=1)
    with pytest.raises(InvalidParameterError, match="another model"):
        with vec.apply(model, coef=1.0, anatomy=Anatomy.of(other)):
            pass
    assert hooks_left(model) == [] and hooks_left(other) == []
