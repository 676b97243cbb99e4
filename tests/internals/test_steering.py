"""Tests of whybox.internals.steering: steering vectors, activation addition, generation under
steering, the measured effect, save / load, bad input.

Oracles: the residual stream recomputed by hand (block outputs captured through raw module
paths with ``hooks.capture``, ``resid + coef * v`` formed here and written back with
``hooks.replace``, or the remaining blocks run by hand), manual greedy loops of full forward
passes, log-softmax of the model's own logits, a linear probe's closed form
``w . (x + c v) + b``, and mean differences computed here from captured activations.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.internals.tiny import build, hooks_left, input_ids

torch = pytest.importorskip("torch")

from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.internals import hooks  # noqa: E402
from whybox.internals.anatomy import Anatomy  # noqa: E402
from whybox.internals.probing import Probe  # noqa: E402
from whybox.internals.steering import SteeringEffect, SteeringVector  # noqa: E402

#: path of the block list of the tiny models, written out here (not asked of the anatomy)
BLOCKS = {"gpt2": "transformer.h", "llama": "model.layers", "gpt_neox": "gpt_neox.layers"}


def _out(value):
    return value[0] if isinstance(value, tuple) else value


def _vector(d: int, seed: int = 1, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(d, generator=g)


@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


@pytest.fixture(scope="module")
def gpt2_text():
    """A tiny GPT-2 whose vocabulary (500) covers the tiny tokenizer's 144 ids (the fixtures'
    models have 96, fewer than that tokenizer produces)."""
    import transformers

    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()


# ------------------------------------------------------------------ hand computation
@pytest.mark.parametrize("arch", sorted(BLOCKS))
def test_adding_at_resid_post_equals_the_rest_of_the_model_on_a_hand_steered_residual(arch):
    model = build(arch)
    ids = input_ids(2, 7)
    layer, coef = 1, 2.5
    v = _vector(32)
    path = f"{BLOCKS[arch]}.{layer}"
    with torch.no_grad(), hooks.capture(model, path) as cache:
        model(ids)
    steered_resid = _out(cache[path]) + coef * v  # by hand
    with torch.no_grad(), hooks.replace(model, path, lambda out: _replace(out, steered_resid)):
        expected = model(ids).logits
    vec = SteeringVector(v, layer=layer)
    with torch.no_grad(), vec.apply(model, coef=coef):
        got = model(ids).logits
    assert torch.equal(got, expected)
    assert not torch.allclose(got, model(ids).logits)


def _replace(out, new):
    return (new, *out[1:]) if isinstance(out, tuple) else new


def test_gpt2_steering_equals_running_the_remaining_block_and_head_by_hand(gpt2):
    ids = input_ids(1, 6)
    v, coef = _vector(32), -3.0
    with torch.no_grad(), hooks.capture(gpt2, "transformer.h.1") as cache:
        gpt2(ids)
        resid = _out(cache["transformer.h.1"]) + coef * v
        # the last block and the head, called by hand on the steered residual
        out = _out(gpt2.transformer.h[2](resid))
        by_hand = gpt2.lm_head(gpt2.transformer.ln_f(out))
        with SteeringVector(v, layer=1).apply(gpt2, coef=coef):
            got = gpt2(ids).logits
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-5)


def test_coef_zero_leaves_logits_bit_identical_on_every_architecture(tiny_model):
    arch, model = tiny_model
    anat = Anatomy.of(model)
    ids = input_ids(2, 6)
    with torch.no_grad():
        base = hooks.forward(model, ids)
        vec = SteeringVector(_vector(anat.d_model, scale=5.0), layer=[0, anat.n_layers - 1])
        with vec.apply(model, coef=0.0):
            same = hooks.forward(model, ids)
        with vec.apply(model, coef=1.0):
            moved = hooks.forward(model, ids)
        # steering the embeddings (the encoders' case of item 8)
        with SteeringVector(_vector(anat.d_model), site="embed").apply(model, coef=3.0):
            embedded = hooks.forward(model, ids)
    assert torch.equal(base, same), arch
    assert not torch.equal(base, moved), arch
    assert not torch.equal(base, embedded), arch


def test_positions_steer_only_the_chosen_tokens(gpt2):
    ids = input_ids(2, 8)
    v, coef, L = _vector(32), 4.0, 0
    path = "transformer.h.0"
    with torch.no_grad():
        base = gpt2(ids).logits
        with hooks.capture(gpt2, path) as cache:
            gpt2(ids)
        resid = _out(cache[path])
        for positions, chosen in [
            ([2, 5], [2, 5]),
            (-1, [7]),
            (slice(1, None, 3), [1, 4, 7]),
            (slice(-3, -1), [5, 6]),
            (3, [3]),
        ]:
            mask = torch.zeros(8, 1)
            mask[chosen] = 1.0
            hand = resid + mask * (coef * v)
            with hooks.replace(gpt2, path, lambda out, hand=hand: _replace(out, hand)):
                expected = gpt2(ids).logits
            with SteeringVector(v, layer=L).apply(gpt2, coef=coef, positions=positions):
                got = gpt2(ids).logits
            assert torch.equal(got, expected), positions
            # causal model: positions before the first steered one are untouched
            first = min(chosen)
            assert torch.equal(got[:, :first], base[:, :first])
            assert not torch.equal(got[:, first], base[:, first])


# ------------------------------------------------------------------ hooks leave no trace
def test_hooks_are_removed_after_an_exception_in_the_block_or_the_forward():
    model = build("gpt2")
    ids = input_ids(1, 5)
    before = hooks_left(model)
    base = model(ids).logits
    vec = SteeringVector(_vector(32), layer=1)
    with pytest.raises(RuntimeError, match="boom"), vec.apply(model, coef=2.0):
        model(ids)
        raise RuntimeError("boom")
    assert hooks_left(model) == before
    # a width mismatch found inside the forward pass (mlp.post is d_mlp = 128 wide, not checked
    # against d_model up front) raises there, and the hooks are gone too
    wrong = SteeringVector(_vector(32), layer=0, site="mlp.post")
    with (
        pytest.raises(InvalidParameterError, match=r"width 32, but 'blocks.0.mlp.post'.*width 128"),
        wrong.apply(model),
    ):
        model(ids)
    assert hooks_left(model) == before
    assert torch.equal(model(ids).logits, base)


# ------------------------------------------------------------------ from pairs
def test_from_pairs_is_the_mean_difference_of_captured_activations(gpt2):
    positive = [[5, 6, 7, 8], [9, 10, 11, 12, 13], [14, 15, 16, 17]]
    negative = [[20, 21, 22, 23], [30, 31, 32, 33, 34, 35], [40, 41, 42]]
    layers = [0, 2]

    def acts(seqs, layer, how):
        path = f"transformer.h.{layer}"
        rows = []
        for s in seqs:
            with torch.no_grad(), hooks.capture(gpt2, path) as cache:
                gpt2(torch.tensor([s]))
            a = _out(cache[path])[0]
            rows.append(a[-1] if how == -1 else a.mean(dim=0))
        return torch.stack(rows)

    for how in (-1, "mean"):
        vec = SteeringVector.from_pairs(gpt2, positive, negative, layer=layers, position=how)
        for i, layer in enumerate(layers):
            manual = acts(positive, layer, how).mean(0) - acts(negative, layer, how).mean(0)
            torch.testing.assert_close(vec.vector[i], manual, rtol=1e-6, atol=1e-7)
        assert vec.layers == (0, 2) and vec.meta["n_pairs"] == 3
    last = SteeringVector.from_pairs(gpt2, positive, negative, layer=-1)
    both = SteeringVector.from_pairs(gpt2, positive, negative, layer=[0, 2])
    assert last.layers == (2,) and torch.equal(last.vector[0], both.vector[1])
    with pytest.raises(InvalidInputError, match="3 positive and 2 negative"):
        SteeringVector.from_pairs(gpt2, positive, negative[:2], layer=0)


def test_from_pairs_on_texts_uses_the_tokenizer(gpt2_text, tiny_tokenizer):
    pos, neg = ["the value is true", "it is good"], ["the value is false", "it is bad"]
    vec = SteeringVector.from_pairs(gpt2_text, pos, neg, layer=1, tokenizer=tiny_tokenizer)
    ids = [tiny_tokenizer(t, return_tensors="pt")["input_ids"] for t in pos + neg]
    rows = []
    for x in ids:
        with torch.no_grad(), hooks.capture(gpt2_text, "transformer.h.1") as cache:
            gpt2_text(x)
        rows.append(_out(cache["transformer.h.1"])[0, -1])
    manual = (rows[0] + rows[1]) / 2 - (rows[2] + rows[3]) / 2
    torch.testing.assert_close(vec.vector[0], manual, rtol=1e-6, atol=1e-7)
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        SteeringVector.from_pairs(gpt2_text, pos, neg, layer=1)


# ------------------------------------------------------------------ generation
def _greedy_by_hand(model, prompt, n_new, vec, coef, positions):
    """Full forward passes (no cache), one token at a time, under steering."""
    seq = prompt.clone()
    for _ in range(n_new):
        with torch.no_grad(), vec.apply(model, coef=coef, positions=positions):
            logits = model(seq).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize(
    ("positions", "absolute"),
    [
        (None, None),
        (slice(3, None), slice(3, None)),
        ([1], [1]),
        (-1, [5]),
        (slice(-2, None), slice(4, None)),
    ],
)
def test_cached_generation_steers_the_positions_a_full_recomputation_would(
    gpt2, positions, absolute
):
    prompt = input_ids(1, 6, seed=3)
    vec = SteeringVector(_vector(32, scale=3.0), layer=1)
    got = vec.generate(gpt2, None, prompt, coef=4.0, max_new_tokens=6, positions=positions)
    expected = _greedy_by_hand(gpt2, prompt, 6, vec, 4.0, absolute)
    assert torch.equal(got, expected)


def test_generation_under_steering_differs_and_is_reproducible(gpt2_text, tiny_tokenizer):
    vec = SteeringVector(_vector(64, scale=3.0), layer=1)
    prompt = "the value of"
    plain = gpt2_text.generate(
        tiny_tokenizer(prompt, return_tensors="pt")["input_ids"],
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=tiny_tokenizer.eos_token_id,
    )
    unsteered = vec.generate(gpt2_text, tiny_tokenizer, prompt, coef=0.0, max_new_tokens=8)
    assert unsteered == tiny_tokenizer.decode(plain[0], skip_special_tokens=True)
    steered = vec.generate(gpt2_text, tiny_tokenizer, prompt, coef=6.0, max_new_tokens=8)
    assert steered != unsteered and steered.startswith(prompt)
    assert vec.generate(gpt2_text, tiny_tokenizer, prompt, coef=6.0, max_new_tokens=8) == steered
    both = vec.generate(gpt2_text, tiny_tokenizer, [prompt, "it is"], coef=6.0, max_new_tokens=8)
    assert both[0] == steered and len(both) == 2


# ------------------------------------------------------------------ measured effect
def test_effect_on_a_target_token_is_the_change_in_its_log_probability(gpt2):
    inputs = [[5, 6, 7], [8, 9, 10, 11], [12, 13, 14]]
    vec = SteeringVector(_vector(32), layer=2)
    coefs = [0.0, 1.0, -2.0, 4.0]
    eff = vec.effect(gpt2, inputs, target_token=17, coefs=coefs)
    assert isinstance(eff, SteeringEffect)
    for i, c in enumerate(coefs):
        for j, s in enumerate(inputs):
            with torch.no_grad(), vec.apply(gpt2, coef=c):
                logits = gpt2(torch.tensor([s])).logits[0, -1].double()
            assert eff.values[i, j] == pytest.approx(
                float(torch.log_softmax(logits, -1)[17]), abs=1e-9
            )
    np.testing.assert_array_equal(eff.values[0], eff.baseline)
    np.testing.assert_allclose(eff.change, (eff.values - eff.baseline).mean(1))
    frame = eff.to_frame()
    assert list(frame.index) == coefs and frame["change"].iloc[0] == 0.0


@pytest.mark.parametrize("arch", ["gemma2", "gpt_neox", "bert"])
def test_effect_reads_the_models_own_logits(arch):
    # Gemma 2 soft-caps its logits after the unembedding: the effect must see the cap
    model = build(arch)
    inputs = [[5, 6, 7, 8], [9, 10, 11, 12]]
    vec = SteeringVector(_vector(32, scale=2.0), layer=0)
    eff = vec.effect(model, inputs, target_token=20, coefs=[3.0])
    with torch.no_grad(), vec.apply(model, coef=3.0):
        logits = model(torch.tensor(inputs)).logits[:, -1].double()
    np.testing.assert_allclose(eff.values[0], torch.log_softmax(logits, -1)[:, 20], atol=1e-9)


def test_effect_on_a_target_token_needs_a_language_model_head():
    import transformers

    from whybox.errors import UnsupportedModelError

    cfg = transformers.BertConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
        vocab_size=96,
    )  # fmt: skip
    torch.manual_seed(0)
    encoder = transformers.BertModel(cfg).eval()
    vec = SteeringVector(_vector(32), layer=0)
    with pytest.raises(UnsupportedModelError, match=r"no language-model head.*probe="):
        vec.effect(encoder, [[5, 6, 7]], target_token=3)


def test_effect_on_a_probe_along_its_own_direction_is_linear_in_the_coefficient(gpt2):
    rng = np.random.default_rng(0)
    inputs = [list(rng.integers(4, 96, size=5)) for _ in range(40)]
    labels = np.array([int(s[-1] % 2) for s in inputs])
    site = "blocks.1.resid_post"
    with torch.no_grad(), hooks.capture(gpt2, "transformer.h.1") as cache:
        gpt2(torch.tensor(inputs))
    acts = _out(cache["transformer.h.1"])[:, -1].numpy()
    probe = Probe(random_state=0).fit(acts, labels)
    vec = SteeringVector(probe.direction_, layer=1)
    coefs = [0.0, 0.5, 2.0, -1.0]
    eff = vec.effect(gpt2, inputs, probe=probe, probe_site=site, coefs=coefs)
    # closed form: the probe reads the steered site, so its decision is w.(x + c v) + b and
    # v = w / |w| gives a change of exactly c |w|
    norm = np.linalg.norm(probe.coef_)
    np.testing.assert_allclose(eff.change, np.array(coefs) * norm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(eff.baseline, probe.decision_function(acts), rtol=1e-5, atol=1e-5)
    # a probe before the steered layer sees nothing
    early = SteeringVector(probe.direction_, layer=2)
    assert np.all(early.effect(gpt2, inputs, probe=probe, probe_site=site).change == 0)


def test_a_vector_from_pairs_moves_the_next_token_toward_the_positive_side(gpt2):
    # pairs differ only in their last token (10 vs 11); the steered last block then favours,
    # on unrelated prompts, the token the positive prompts favour: the sign convention
    # positive - negative, and a change that grows with the coefficient
    g = torch.Generator().manual_seed(0)
    positive = [[*torch.randint(4, 96, (4,), generator=g).tolist(), 10] for _ in range(8)]
    negative = [[*p[:-1], 11] for p in positive]
    vec = SteeringVector.from_pairs(gpt2, positive, negative, layer=2)
    with torch.no_grad():
        lp_pos = gpt2(torch.tensor(positive)).logits[:, -1].log_softmax(-1)
        lp_neg = gpt2(torch.tensor(negative)).logits[:, -1].log_softmax(-1)
    target = int((lp_pos - lp_neg).mean(0).argmax())
    neutral = [torch.randint(4, 96, (5,), generator=g).tolist() for _ in range(10)]
    eff = vec.effect(gpt2, neutral, target_token=target, coefs=[-2.0, -1.0, 0.0, 1.0, 2.0])
    assert np.all(np.diff(eff.change) > 0)
    assert eff.change[-1] > 5 * eff.change_sem[-1]
    flipped = (-vec).effect(gpt2, neutral, target_token=target, coefs=[2.0])
    np.testing.assert_allclose(flipped.change, eff.change[0], rtol=1e-6)


# ------------------------------------------------------------------ persistence
def test_save_and_load_round_trip(tmp_path, gpt2):
    vec = SteeringVector.from_pairs(gpt2, [[5, 6, 7]], [[8, 9, 10]], layer=[0, 1], position="mean")
    path = vec.save(tmp_path / "vec.safetensors")
    back = SteeringVector.load(path)
    assert torch.equal(back.vector, vec.vector)
    assert back.layers == vec.layers and back.site == vec.site and back.meta == vec.meta
    ids = input_ids(1, 5)
    with torch.no_grad(), vec.apply(gpt2, 2.0):
        a = gpt2(ids).logits
    with torch.no_grad(), back.apply(gpt2, 2.0):
        b = gpt2(ids).logits
    assert torch.equal(a, b)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InvalidInputError, match="not a whybox steering vector"):
        SteeringVector.load(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file format")
    with pytest.raises(InvalidInputError, match="not a safetensors file"):
        SteeringVector.load(tmp_path / "junk.safetensors")
    with pytest.raises(InvalidInputError, match="no steering vector file"):
        SteeringVector.load(tmp_path / "missing.safetensors")


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_with_what_to_do(gpt2, tiny_tokenizer):
    ids = input_ids(1, 5)
    with pytest.raises(
        InvalidParameterError, match=r"width 16, but 'blocks.1.resid_post'.*width 32"
    ):
        with SteeringVector(torch.ones(16), layer=1).apply(gpt2):
            gpt2(ids)
    with pytest.raises(InvalidParameterError, match=r"layer 3 is out of range.*3 layers \(0 to 2"):
        with SteeringVector(torch.ones(32), layer=3).apply(gpt2):
            gpt2(ids)
    with pytest.raises(InvalidParameterError, match=r"shape \(d,\) or \(2, d\)"):
        SteeringVector(torch.ones(3, 32), layer=[0, 1])
    with pytest.raises(InvalidParameterError, match="NaN or infinite"):
        SteeringVector(torch.full((32,), float("nan")), layer=0)
    vec = SteeringVector(torch.ones(32), layer=0)
    with pytest.raises(InvalidParameterError, match="coef must be a finite number"):
        with vec.apply(gpt2, coef=float("inf")):
            pass
    with pytest.raises(InvalidParameterError, match="positions must be"):
        with vec.apply(gpt2, positions=["last"]):
            pass
    with pytest.raises(InvalidParameterError, match="exactly one of them"):
        vec.effect(gpt2, [[5, 6]])
    with pytest.raises(InvalidParameterError, match="single token"):
        vec.effect(gpt2, [[5, 6]], target_token="the value of", tokenizer=tiny_tokenizer)
    with pytest.raises(InvalidParameterError, match="probe_site"):
        vec.effect(gpt2, [[5, 6]], probe=Probe().fit(np.eye(32)[:8], [0, 1] * 4))
    with pytest.raises(InvalidInputError, match="tokenizer does not match"):
        vec.effect(gpt2, [[5, 500]], target_token=3)
    # the fixtures' tokenizer has 144 ids, the fixtures' models 96: refused, not an IndexError
    with pytest.raises(InvalidInputError, match="vocabulary has 96 tokens"):
        SteeringVector.from_pairs(gpt2, ["it is"], ["it is"], layer=0, tokenizer=tiny_tokenizer)
    with pytest.raises(InvalidInputError, match="vocabulary has 96 tokens"):
        vec.generate(gpt2, tiny_tokenizer, "it is")
    assert hooks_left(gpt2) == []
