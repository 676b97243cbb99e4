"""Tests of whybox.zoo.induction: induction heads in a two-layer attention-only transformer.

The reproduction (Olsson et al. 2022): trained on random tokens with repeated segments, the
model copies in context (loss on the second copy far below the first) through induction heads
in layer 1 (prefix-matching score) that read a previous-token head in layer 0; activation
patching of single heads localises the copying to the induction heads.

Oracles: attention patterns are read through whybox's own hooks (``blocks.{i}.attn.pattern``,
not ``output_attentions``) and scored with explicit loops; losses are computed from the logits
with ``torch.nn.functional.cross_entropy``; patching effects are checked against patching done
by hand with a plain torch pre-hook on ``o_proj``.

Thresholds, measured on seed 0 (1200 steps, one thread): layer-1 prefix-matching scores
0.78-0.84 (uniform causal attention would give about 0.04 on these queries), layer-0 ones
<= 0.03; the best previous-token head 0.46 (uniform: 0.09), layer-1 previous-token scores
<= 0.09; loss 4.21 nats on the first copy (ln 64 = 4.16) and 0.83 on the second. Patching
(clean: a repeated segment; corrupted: its first copy replaced by other random tokens; metric:
mean log-probability of the second copy's tokens, a 3.5-nat gap): each layer-1 head restores
20-26 % of the gap alone, each layer-0 head at most 1.3 %.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.internals.anatomy import Anatomy  # noqa: E402
from whybox.zoo.induction import (  # noqa: E402
    attention_patterns,
    induction_model,
    induction_scores,
    prefix_matching_score,
    previous_token_score,
    repeated_tokens,
)

L = 20  # repeated segment length of the evaluation tokens


@pytest.fixture(scope="module")
def trained(zoo_cache):
    return induction_model(seed=0, cache_dir=zoo_cache)


@pytest.fixture(scope="module")
def tokens():
    return repeated_tokens(64, L, 64, seed=7)


def _hooked_patterns(model, ids) -> np.ndarray:
    """(n_layers, batch, heads, q, k) through whybox's hook points, not output_attentions."""
    _, cache = wb.run_with_cache(model, ids, names="blocks.*.attn.pattern")
    return np.stack([cache[f"blocks.{i}.attn.pattern"].double().numpy() for i in range(2)])


def _loop_scores(patterns: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    n_layers, batch, heads, pos, _ = patterns.shape
    prefix = np.zeros((n_layers, heads))
    prev = np.zeros((n_layers, heads))
    for layer in range(n_layers):
        for h in range(heads):
            prefix[layer, h] = np.mean(
                [
                    patterns[layer, b, h, q, q - seq_len + 1]
                    for b in range(batch)
                    for q in range(seq_len, 2 * seq_len)
                ]
            )
            prev[layer, h] = np.mean(
                [patterns[layer, b, h, q, q - 1] for b in range(batch) for q in range(1, pos)]
            )
    return prefix, prev


# ------------------------------------------------------------------ data and scores


def test_repeated_tokens_repeat_a_seeded_random_segment() -> None:
    x = repeated_tokens(5, 7, vocab=11, seed=3)
    assert x.shape == (5, 14) and x.dtype == torch.long
    assert torch.equal(x[:, :7], x[:, 7:])
    assert int(x.min()) >= 0 and int(x.max()) < 11
    assert torch.equal(x, repeated_tokens(5, 7, vocab=11, seed=3))
    assert not torch.equal(x, repeated_tokens(5, 7, vocab=11, seed=4))
    state = torch.random.get_rng_state()
    repeated_tokens(2, 3, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_scores_of_hand_built_patterns() -> None:
    seq_len, pos = 5, 10
    induction = np.zeros((2, 1, pos, pos))  # batch 2, one head: the ideal induction head
    previous = np.zeros((2, 1, pos, pos))
    uniform = np.tril(np.ones((pos, pos)))
    uniform = np.broadcast_to(uniform / uniform.sum(1, keepdims=True), (2, 1, pos, pos))
    for q in range(pos):
        induction[:, 0, q, q - seq_len + 1 if q >= seq_len else 0] = 1.0
        previous[:, 0, q, max(q - 1, 0)] = 1.0
    np.testing.assert_allclose(prefix_matching_score(induction, seq_len), [1.0])
    np.testing.assert_allclose(previous_token_score(previous), [1.0])
    # the ideal induction head's only previous-token weight: query 1 parked on key 0
    np.testing.assert_allclose(previous_token_score(induction), [1 / 9])
    # uniform causal attention: query q puts 1 / (q + 1) on every allowed key
    expected = np.mean([1 / (q + 1) for q in range(seq_len, 2 * seq_len)])
    np.testing.assert_allclose(prefix_matching_score(uniform, seq_len), [expected])
    np.testing.assert_allclose(
        previous_token_score(uniform), [np.mean([1 / (q + 1) for q in range(1, pos)])]
    )
    # a leading axis (layers) is kept, the batch axis averaged; torch tensors are accepted
    stacked = torch.tensor(np.stack([induction, previous]))
    np.testing.assert_allclose(prefix_matching_score(stacked, seq_len), [[1.0], [0.0]])
    # with a one-token prefix the induction target moves by one
    shifted = np.zeros((1, 1, pos + 1, pos + 1))
    for q in range(1 + seq_len, 1 + 2 * seq_len):
        shifted[0, 0, q, q - seq_len + 1] = 1.0
    np.testing.assert_allclose(prefix_matching_score(shifted, seq_len, offset=1), [1.0])


def test_bad_patterns_and_lengths_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="q_pos == k_pos"):
        prefix_matching_score(np.zeros((2, 4, 5)), 2)
    with pytest.raises(InvalidInputError, match="offset \\+ 2 \\* seq_len"):
        prefix_matching_score(np.zeros((1, 2, 6, 6)), 4)
    with pytest.raises(InvalidParameterError, match="seq_len"):
        repeated_tokens(2, 1)
    with pytest.raises(InvalidParameterError, match="seed"):
        induction_model(seed=-1, cache=False)


# ------------------------------------------------------------------ the model


def test_model_is_an_attention_only_llama_that_anatomy_reads(trained, tokens) -> None:
    model, info = trained
    assert isinstance(model, transformers.LlamaForCausalLM) and not model.training
    assert model.config.intermediate_size == 0 and model.config._attn_implementation == "eager"
    anat = Anatomy.of(model)
    assert (anat.n_layers, anat.n_heads, anat.d_model, anat.d_head) == (2, 4, 64, 16)
    # each block is attention only: resid_post == resid_pre + attn.out exactly, mlp.out == 0
    names = [
        f"blocks.{i}.{s}"
        for i in range(2)
        for s in ("resid_pre", "attn.out", "mlp.out", "resid_post")
    ]
    _, cache = wb.run_with_cache(model, tokens[:4], names=names)
    for i in range(2):
        assert torch.count_nonzero(cache[f"blocks.{i}.mlp.out"]) == 0
        torch.testing.assert_close(
            cache[f"blocks.{i}.resid_post"],
            cache[f"blocks.{i}.resid_pre"] + cache[f"blocks.{i}.attn.out"],
            rtol=0,
            atol=0,
        )
    assert info.config["architecture"]["num_hidden_layers"] == 2


def test_in_context_loss_on_the_repeat_is_far_below_the_first_copy(trained, tokens) -> None:
    model, _ = trained
    with torch.no_grad():
        logits = model(tokens).logits.double()
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"
    )  # nll[:, t] predicts token t + 1
    first, second = float(nll[:, : L - 1].mean()), float(nll[:, L : 2 * L - 1].mean())
    assert first > math.log(64) - 0.2  # random tokens: nothing to predict but the prior
    assert second < 1.0  # measured 0.83
    assert first - second > 3.0
    # induction_scores reports the same losses (its own evaluation tokens: seed 1)
    scores = induction_scores(model, seed=7)
    assert scores.first_half_loss == pytest.approx(first, rel=1e-6)
    assert scores.second_half_loss == pytest.approx(second, rel=1e-6)


def test_induction_heads_in_layer_1_and_a_previous_token_head_in_layer_0(trained, tokens):
    model, info = trained
    patterns = _hooked_patterns(model, tokens)
    prefix, prev = _loop_scores(patterns, L)
    scores = induction_scores(model, seed=7)
    np.testing.assert_allclose(scores.prefix_matching, prefix, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores.previous_token, prev, rtol=1e-5, atol=1e-7)
    # output_attentions, the other route to the same weights, agrees with the hooks
    np.testing.assert_allclose(
        attention_patterns(model, tokens).double().numpy(), patterns, rtol=0, atol=1e-7
    )
    # the published picture: induction heads in layer 1 only ...
    assert prefix[1].max() > 0.7 and prefix[1].min() > 0.5
    assert prefix[0].max() < 0.1
    top = scores.top("prefix_matching", k=4)
    assert {name for name, _ in top} == {f"L1.H{h}" for h in range(4)}
    # ... reading a previous-token head in layer 0 (5x uniform causal attention's 0.09)
    assert prev[0].max() > 0.4 and prev[1].max() < 0.15
    assert scores.top("previous_token", k=1)[0][0].startswith("L0.")
    # info carries the default evaluation (seed 1), close to this one
    np.testing.assert_allclose(info.scores.prefix_matching, prefix, atol=0.05)


def test_sdpa_attention_is_refused_with_the_remedy(trained, tokens) -> None:
    model, _ = trained
    other = copy.deepcopy(model)
    other.config._attn_implementation = "sdpa"
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        attention_patterns(other, tokens[:1])


# ------------------------------------------------------------------ causal localisation


def _second_copy_logprob(tokens_clean):
    targets = tokens_clean[:, L + 1 :]

    def metric(logits):
        logp = torch.log_softmax(logits[:, L : 2 * L - 1].double(), dim=-1)
        return logp.gather(-1, targets[..., None]).mean()

    return metric


def _patch_head_by_hand(model, clean, corrupted, metric, layer, head):
    """Denoise one head: corrupted run with head's o_proj input taken from the clean run."""
    o_proj = model.model.layers[layer].self_attn.o_proj
    saved = {}

    def keep(module, args):
        saved["z"] = args[0].detach().clone()

    def put(module, args):
        z = args[0].clone()
        z[..., head * 16 : (head + 1) * 16] = saved["z"][..., head * 16 : (head + 1) * 16]
        return (z,)

    with torch.no_grad():
        handle = o_proj.register_forward_pre_hook(keep)
        try:
            model(clean)
        finally:
            handle.remove()
        handle = o_proj.register_forward_pre_hook(put)
        try:
            return float(metric(model(corrupted).logits))
        finally:
            handle.remove()


def test_activation_patching_localises_copying_to_the_induction_heads(trained) -> None:
    model, _ = trained
    clean = repeated_tokens(32, L, 64, seed=11)
    corrupted = clean.clone()  # the first copy replaced: nothing to copy from
    corrupted[:, :L] = repeated_tokens(32, L, 64, seed=12)[:, :L]
    metric = _second_copy_logprob(clean)
    exp = wb.activation_patching(model, clean, corrupted, metric, site="attn.head_out", by="head")
    assert exp.feature_names == [f"L{i}.H{h}" for i in range(2) for h in range(4)]
    patched = np.asarray(exp.values)[0]
    by_hand = [
        _patch_head_by_hand(model, clean, corrupted, metric, i, h)
        for i in range(2)
        for h in range(4)
    ]
    np.testing.assert_allclose(patched, by_hand, rtol=1e-4, atol=1e-5)
    base = float(np.ravel(exp.base_values)[0])
    effect = patched - base
    with torch.no_grad():
        clean_metric = float(metric(model(clean).logits))
    assert clean_metric - base > 2.0  # copying is worth > 2 nats per token
    prefix = induction_scores(model).prefix_matching.ravel()
    # the heads that restore the copying are the induction heads: every layer-1 head
    # restores more than any layer-0 head, and together they restore most of the gap
    assert effect[4:].min() > 5 * max(effect[:4].max(), 0.01)
    assert set(np.argsort(-effect)[:4]) == set(np.argsort(-prefix)[:4]) == {4, 5, 6, 7}
    # patched together, the layer-1 heads restore all of it (measured 1.00; layer 0: -0.14)
    by_layer = wb.activation_patching(
        model, clean, corrupted, metric, site="attn.out", by="layer", normalize=True
    )
    restored = dict(zip(by_layer.feature_names, np.asarray(by_layer.values)[0], strict=True))
    assert restored["L1"] > 0.95 and restored["L0"] < 0.2
    # attribution patching (one backward) ranks the heads the same way (measured Pearson
    # 0.975, Spearman 0.93 against the real patching)
    attr = wb.attribution_patching(
        model, clean, corrupted, metric, site="attn.head_out", by="head", compare=True
    )
    est = np.asarray(attr.values)[0] - base
    assert set(np.argsort(-est)[:4]) == {4, 5, 6, 7}
    assert attr.meta["pearson"] > 0.9
