"""Activation, attribution and path patching against values produced elsewhere.

Oracles: TransformerLens 4.x's ``TransformerBridge`` patching (``get_act_patch_*``,
``get_act_patch_direct_path``, ``attribution_patch``) booted on a copy of the same weights; a
brute-force loop (one forward per cell) patching the model's own module inputs with
``hooks.replace`` (no anatomy, no hook points); central finite differences of the patched
metric in float64; closed forms (patching a whole residual stream restores the other run).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.internals.tiny import ARCHS, build, hooks_left, input_ids
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.explanation import Explanation
from whybox.internals import hooks
from whybox.internals.patching import (
    activation_patching,
    attribution_patching,
    patching_grid,
    path_patching,
)

# module paths written by hand from the transformers source: block, attention output
# projection (its input is the heads' outputs), fused or separate q/k/v projections
PATHS = {
    "gpt2": ("transformer.h.{}", "transformer.h.{}.attn.c_proj", "transformer.h.{}.attn.c_attn"),
    "llama": ("model.layers.{}", "model.layers.{}.self_attn.o_proj", None),
}
TL_NAMES = {"gpt2": "gpt2", "llama": "meta-llama/Llama-3.2-1B"}
HEADS = 4


def logit_diff(logits):
    return (logits[:, -1, 5] - logits[:, -1, 7]).mean()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, which spin on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs():
    return input_ids(2, 6, seed=1), input_ids(2, 6, seed=2)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def oracle(request, tiny_tokenizer):
    """(arch, model, bridge): a tiny model and TransformerLens booted on a copy of it."""
    from transformer_lens.model_bridge import TransformerBridge

    arch = request.param
    model = build(arch)
    bridge = TransformerBridge.boot_transformers(
        TL_NAMES[arch], hf_model=copy.deepcopy(model), tokenizer=tiny_tokenizer, device="cpu"
    )
    return arch, model, bridge


def close(ours, theirs, rtol=1e-4):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


# ------------------------------------------------------------------ TransformerLens oracle

TL_GRIDS = [
    ("resid_pre", "pos", "get_act_patch_resid_pre"),
    ("resid_mid", "pos", "get_act_patch_resid_mid"),
    ("attn.out", "pos", "get_act_patch_attn_out"),
    ("mlp.out", "pos", "get_act_patch_mlp_out"),
    ("attn.head_out", "head", "get_act_patch_attn_head_out_all_pos"),
    ("attn.head_out", "head_pos", "get_act_patch_attn_head_out_by_pos"),
    ("attn.q", "head", "get_act_patch_attn_head_q_all_pos"),
    ("attn.k", "head", "get_act_patch_attn_head_k_all_pos"),
    ("attn.v", "head", "get_act_patch_attn_head_v_all_pos"),
]


@pytest.mark.parametrize(("site", "by", "tl_fn"), TL_GRIDS)
def test_grids_equal_transformer_lens(oracle, runs, site, by, tl_fn):
    from transformer_lens import patching as tl_patching

    _, model, bridge = oracle
    clean, corrupted = runs
    _, cache = bridge.run_with_cache(clean)
    theirs = getattr(tl_patching, tl_fn)(bridge, corrupted, cache, logit_diff)
    exp = activation_patching(model, clean, corrupted, logit_diff, site=site, by=by)
    assert exp.meta["grid_shape"] == list(theirs.shape)  # k/v: key-value heads on Llama
    close(exp.values[0].reshape(theirs.shape), theirs.numpy())
    # the unpatched runs: TransformerLens's own logits
    with torch.no_grad():
        assert exp.base_values[0] == pytest.approx(float(logit_diff(bridge(corrupted))), 1e-5)
        assert exp.meta["clean_metric"] == pytest.approx(float(logit_diff(bridge(clean))), 1e-5)


def test_noise_direction_equals_transformer_lens_with_runs_swapped(oracle, runs):
    from transformer_lens import patching as tl_patching

    _, model, bridge = oracle
    clean, corrupted = runs
    _, corrupted_cache = bridge.run_with_cache(corrupted)
    theirs = tl_patching.get_act_patch_resid_pre(bridge, clean, corrupted_cache, logit_diff)
    exp = activation_patching(model, clean, corrupted, logit_diff, direction="noise")
    close(exp.values[0].reshape(theirs.shape), theirs.numpy())
    assert exp.meta["grid_axes"] == ["layer", "position"]


def test_attribution_equals_transformer_lens_attribution_patch(oracle):
    """TL scores each (layer, position, head) node with (a_clean - a_corr) . g, one pair."""
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    _, model, bridge = oracle
    clean, corrupted = input_ids(1, 6, seed=3), input_ids(1, 6, seed=4)
    scores = attribution_patch(bridge, clean, corrupted, logit_diff).node_scores
    by_key = {(n.kind, n.layer, n.position, n.head): s for n, s in scores.items()}
    exp = attribution_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                               by="head_pos")  # fmt: skip
    theirs = [by_key["attn_head_out", lay, p, h] for lay in range(3) for p in range(6)
              for h in range(HEADS)]  # fmt: skip
    close(exp.values[0] - exp.base_values[0], theirs, rtol=1e-4)
    mlp = attribution_patching(model, clean, corrupted, logit_diff, site="mlp.out")
    theirs = [by_key["mlp_out", lay, p, None] for lay in range(3) for p in range(6)]
    close(mlp.values[0] - mlp.base_values[0], theirs, rtol=1e-4)


# ------------------------------------------------------------------ brute force


def brute_force(model, arch, clean, corrupted, metric, site, offset=0):
    """One forward per cell, patching the block's input (resid_pre, grid layer x pos) or
    the output projection's input (head_out, grid layer x head) through hooks.replace."""
    block, o_proj, _ = PATHS[arch]
    path = block if site == "resid_pre" else o_proj
    paths = [path.format(i) for i in range(3)]
    with torch.no_grad(), hooks.capture(model, paths, inputs=True) as cache:
        model(clean)
    n_pos = corrupted.shape[1]
    out = []
    for p in paths:
        src = cache.inputs[p][0]
        cells = range(n_pos) if site == "resid_pre" else range(HEADS)
        for c in cells:

            def patch(orig, c=c, src=src):
                new = orig.clone()
                if site == "resid_pre":
                    new[:, c] = src[:, c + offset]
                else:
                    b, n, _ = orig.shape
                    new.view(b, n, HEADS, -1)[:, :, c] = src.view(b, -1, HEADS, src.shape[-1]
                                                                  // HEADS)[:, :, c]  # fmt: skip
                return new

            with torch.no_grad(), hooks.replace(model, p, patch, inputs=True):
                out.append(float(metric(model(corrupted).logits)))
    return np.array(out)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("site", ["resid_pre", "attn.head_out"])
def test_batched_equals_one_forward_per_cell_and_batch_size_is_irrelevant(arch, site, runs):
    model = build(arch)
    clean, corrupted = runs
    truth = brute_force(model, arch, clean, corrupted, logit_diff, site)
    results = [
        activation_patching(model, clean, corrupted, logit_diff, site=site, batch_size=bs)
        for bs in (1, 5, None)
    ]
    for exp in results:
        close(exp.values[0], truth, rtol=1e-5)
    assert results[0].meta["n_forwards"] == 2 + len(truth)  # one forward per cell
    assert results[2].meta["n_forwards"] == 3  # every cell in one forward
    assert results[1].meta["cells_per_forward"] == 5


def test_align_right_compares_the_last_positions(runs):
    model = build("gpt2")
    clean, _ = runs
    corrupted = input_ids(2, 4, seed=5)
    with pytest.raises(InvalidInputError, match=r"clean 2\.\.5 with corrupted 0\.\.3"):
        activation_patching(model, clean, corrupted, logit_diff)
    exp = activation_patching(model, clean, corrupted, logit_diff, align="right")
    truth = brute_force(model, "gpt2", clean, corrupted, logit_diff, "resid_pre", offset=2)
    close(exp.values[0], truth, rtol=1e-5)
    assert exp.meta["compared_positions"] == [0, 1, 2, 3]
    left = activation_patching(model, clean, corrupted, logit_diff, align="left")
    close(left.values[0], brute_force(model, "gpt2", clean, corrupted, logit_diff, "resid_pre"),
          rtol=1e-5)  # fmt: skip


def test_closed_forms_whole_stream_restores_the_other_run(runs):
    model = build("llama")
    clean, corrupted = runs
    exp = activation_patching(model, clean, corrupted, logit_diff, by="layer", layers=[0])
    assert exp.values[0, 0] == pytest.approx(exp.meta["clean_metric"], rel=1e-5)
    norm = activation_patching(model, clean, corrupted, logit_diff, site="resid_post",
                               by="layer", layers=[-1], normalize=True)  # fmt: skip
    assert norm.values[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert norm.base_values[0] == 0.0
    noise = activation_patching(model, clean, corrupted, logit_diff, by="layer",
                                direction="noise", normalize=True)  # fmt: skip
    assert noise.values[0, 0] == pytest.approx(1.0, abs=1e-5)  # layer 0: all the damage


def test_explanation_layout_and_grid(runs):
    model = build("gpt2")
    clean, corrupted = runs
    exp = activation_patching(model, clean, corrupted, logit_diff, layers=[2, 0], positions=[-1, 1])
    assert isinstance(exp, Explanation)
    assert exp.feature_names == ["L2@pos5", "L2@pos1", "L0@pos5", "L0@pos1"]
    assert exp.values.shape == (1, 4) and exp.meta["grid_shape"] == [2, 2]
    grid = patching_grid(exp)
    assert list(grid.index) == ["L2", "L0"] and list(grid.columns) == ["pos5", "pos1"]
    assert grid.loc["L0", "pos1"] == exp.values[0, 3]
    heads = activation_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                                by="head_pos", layers=[1], positions=[0, 5])  # fmt: skip
    assert heads.feature_names[:5] == ["L1.H0@pos0", "L1.H1@pos0", "L1.H2@pos0", "L1.H3@pos0",
                                       "L1.H0@pos5"]  # fmt: skip
    assert patching_grid(heads).shape == (2, HEADS)
    assert exp.output_names == ["logit_diff"] and exp.method == "activation_patching"


def test_subsets_and_mappings_agree_with_the_full_grid(runs):
    """A sub-grid (layers in any order, some positions) holds the full grid's cells; a
    BatchEncoding-like mapping with an attention mask gives the same grid as the ids."""
    model = build("qwen2")
    clean, corrupted = runs
    full = activation_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                               by="head_pos")  # fmt: skip
    cells = dict(zip(full.feature_names, full.values[0], strict=True))
    sub = activation_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                              by="head", layers=[2, 1], positions=[-1])  # fmt: skip
    close(sub.values[0], [cells[n + "@pos5"] for n in sub.feature_names], rtol=1e-5)
    attr_full = attribution_patching(model, clean, corrupted, logit_diff, site="mlp.out")
    attr_sub = attribution_patching(model, clean, corrupted, logit_diff, site="mlp.out",
                                    layers=[2, 0], positions=[4, 1])  # fmt: skip
    by_name = dict(zip(attr_full.feature_names, attr_full.values[0], strict=True))
    close(attr_sub.values[0], [by_name[n] for n in attr_sub.feature_names], rtol=1e-6)
    assert attr_sub.feature_names == ["L2@pos4", "L2@pos1", "L0@pos4", "L0@pos1"]
    mask = torch.ones_like(clean)
    mapped = activation_patching(
        model,
        {"input_ids": clean, "attention_mask": mask},
        {"input_ids": corrupted, "attention_mask": mask},
        logit_diff,
        site="attn.head_out",
        by="head_pos",
    )
    close(mapped.values[0], full.values[0], rtol=1e-5)


# ------------------------------------------------------------------ attribution patching


def test_attribution_is_the_first_order_term_finite_differences():
    """d/de metric(patch a + e (a_src - a) at one cell) at e=0, by central differences in
    float64, equals the cell's attribution estimate (its first-order Taylor term)."""
    model = build("gpt2").double()
    clean, corrupted = input_ids(2, 5, seed=7), input_ids(2, 5, seed=8)
    exp = attribution_patching(model, clean, corrupted, logit_diff)  # resid_pre, layer x pos
    estimate = (exp.values[0] - exp.base_values[0]).reshape(3, 5)
    paths = [PATHS["gpt2"][0].format(i) for i in range(3)]
    with torch.no_grad(), hooks.capture(model, paths, inputs=True) as cache:
        model(clean)
    eps = 1e-5
    for layer, p in [(0, 0), (1, 3), (2, 4), (2, 2)]:
        src = cache.inputs[paths[layer]][0]
        f = []
        for e in (eps, -eps):

            def nudge(orig, e=e, src=src, p=p):
                new = orig.clone()
                new[:, p] += e * (src[:, p] - orig[:, p])
                return new

            with torch.no_grad(), hooks.replace(model, paths[layer], nudge, inputs=True):
                f.append(float(logit_diff(model(corrupted).logits)))
        assert estimate[layer, p] == pytest.approx((f[0] - f[1]) / (2 * eps), rel=1e-6, abs=1e-12)


def test_attribution_hand_computation_for_heads():
    """By hand: gradients of the metric with respect to the output projection's input,
    captured through hooks.capture, times the clean-minus-corrupted difference, per head."""
    model = build("llama")
    clean, corrupted = input_ids(2, 6, seed=9), input_ids(2, 6, seed=10)
    paths = [PATHS["llama"][1].format(i) for i in range(3)]
    with torch.no_grad(), hooks.capture(model, paths, inputs=True) as cc:
        model(clean)
    with hooks.capture(model, paths, inputs=True) as kc:
        m = logit_diff(model(corrupted).logits)
    grads = torch.autograd.grad(m, [kc.inputs[p][0] for p in paths])
    hand = []
    for p, g in zip(paths, grads, strict=True):
        d = (cc.inputs[p][0] - kc.inputs[p][0].detach()) * g
        hand.append(d.view(2, 6, HEADS, -1).sum(dim=(0, 1, 3)).numpy())
    exp = attribution_patching(model, clean, corrupted, logit_diff, site="attn.head_out")
    close(exp.values[0] - exp.base_values[0], np.concatenate(hand), rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients


def test_attribution_compare_reports_agreement(runs):
    model = build("gpt2")
    clean, corrupted = runs
    exp = attribution_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                               compare=True)  # fmt: skip
    real = activation_patching(model, clean, corrupted, logit_diff, site="attn.head_out")
    close(exp.meta["activation_values"], real.values[0], rtol=1e-6)
    from scipy import stats

    rho = stats.spearmanr(exp.values[0], real.values[0]).statistic
    assert exp.meta["spearman"] == pytest.approx(rho)
    assert exp.meta["spearman"] > 0.8  # a tiny random model is close to linear here
    assert exp.n_evals == 2 and exp.meta["n_backwards"] == 1


# ------------------------------------------------------------------ path patching


def test_path_patching_by_hand_two_steps():
    """Wang et al.'s two steps written by hand on GPT-2's own modules: (1) clean run, sender
    head's c_proj input from the corrupted run, every other head's frozen to clean; record
    c_attn's output at the receiver's layer; (2) clean run with only the receiver's q (or v)
    slice of c_attn replaced."""
    model = build("gpt2")
    clean, corrupted = input_ids(2, 6, seed=11), input_ids(2, 6, seed=12)
    c_proj = [PATHS["gpt2"][1].format(i) for i in range(3)]
    c_attn = PATHS["gpt2"][2].format(2)
    with torch.no_grad():
        with hooks.capture(model, c_proj, inputs=True) as cc:
            model(clean)
        with hooks.capture(model, c_proj, inputs=True) as kc:
            model(corrupted)
    d = 32
    dh = d // HEADS
    for (s_layer, s_head), (r_head, part) in [((0, 1), (2, "q")), ((1, 3), (0, "v"))]:
        frozen = []
        for i, p in enumerate(c_proj[:2]):
            value = cc.inputs[p][0].clone()
            if i == s_layer:
                sl = slice(s_head * dh, (s_head + 1) * dh)
                value[..., sl] = kc.inputs[p][0][..., sl]
            frozen.append(hooks.replace(model, p, value, inputs=True))
        with torch.no_grad(), frozen[0], frozen[1], hooks.capture(model, c_attn) as rec:
            model(clean)
        start = {"q": 0, "k": d, "v": 2 * d}[part] + r_head * dh

        def receive(out, rec=rec, start=start):
            new = out.clone()
            new[..., start : start + dh] = rec[c_attn][..., start : start + dh]
            return new

        with torch.no_grad(), hooks.replace(model, c_attn, receive):
            hand = float(logit_diff(model(clean).logits))
        exp = path_patching(model, clean, corrupted, logit_diff, senders=[(s_layer, s_head)],
                            receivers=[(2, r_head, part)])  # fmt: skip
        assert exp.values[0, 0] == pytest.approx(hand, rel=1e-5)
        assert exp.feature_names == [f"L{s_layer}.H{s_head}"]


def test_path_patching_equals_transformer_lens_direct_path_without_mlps(tiny_tokenizer):
    """With every MLP's output zeroed, the only path from a layer-0 head to a later head's
    input once all other heads are frozen is the direct one: TransformerLens's
    get_act_patch_direct_path (denoising) computes it."""
    from transformer_lens import patching as tl_patching
    from transformer_lens.model_bridge import TransformerBridge

    model = build("gpt2")
    with torch.no_grad():
        for block in model.transformer.h:
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
    bridge = TransformerBridge.boot_transformers(
        "gpt2", hf_model=copy.deepcopy(model), tokenizer=tiny_tokenizer, device="cpu"
    )
    clean, corrupted = input_ids(1, 6, seed=13), input_ids(1, 6, seed=14)
    _, cc = bridge.run_with_cache(clean)
    _, kc = bridge.run_with_cache(corrupted)
    for part in ("q", "k", "v"):
        theirs = tl_patching.get_act_patch_direct_path(
            bridge, corrupted, cc, kc, logit_diff, src_layer=0, src_head=2, component=part,
            verbose=False,
        )  # fmt: skip
        receivers = [(layer, h, part) for layer in (1, 2) for h in range(HEADS)]
        ours = [
            path_patching(model, clean, corrupted, logit_diff, senders=[(0, 2)],
                          receivers=[r], direction="denoise").values[0, 0]
            for r in receivers
        ]  # fmt: skip
        close(ours, theirs[1:].flatten().numpy(), rtol=1e-4)


def test_path_patching_sweep_to_logits_and_batching():
    model = build("llama")
    clean, corrupted = input_ids(2, 5, seed=15), input_ids(2, 5, seed=16)
    sweep = path_patching(model, clean, corrupted, logit_diff, batch_size=5)
    one = path_patching(model, clean, corrupted, logit_diff, batch_size=1)
    assert sweep.meta["grid_shape"] == [3, HEADS] and sweep.feature_names[5] == "L1.H1"
    close(sweep.values[0], one.values[0], rtol=1e-5)
    # to the logits, a last-layer head reaches the output only directly: patching its
    # output alone is the same intervention
    last = activation_patching(model, clean, corrupted, logit_diff, site="attn.head_out",
                               layers=[2], direction="noise")  # fmt: skip
    close(sweep.values[0, -HEADS:], last.values[0], rtol=1e-5)
    joint = path_patching(model, clean, corrupted, logit_diff, senders=[(0, 1), (1, 2)],
                          receivers=[(2, 0, "k")])  # fmt: skip
    assert joint.feature_names == ["L0.H1+L1.H2"] and joint.values.shape == (1, 1)


# ------------------------------------------------------------------ the induction toy model


@pytest.fixture(scope="module")
def induction():
    """The zoo's two-layer attention-only Llama with induction heads; clean = random tokens
    repeated once, corrupted = the first copy replaced (nothing to copy); metric = mean
    log-probability of the clean second copy's next tokens."""
    from whybox.zoo.induction import induction_model, repeated_tokens

    model, info = induction_model()
    n = 12
    clean = repeated_tokens(16, n, seed=3)
    corrupted = clean.clone()
    corrupted[:, :n] = torch.randint(0, 64, (16, n), generator=torch.Generator().manual_seed(4))
    targets = clean[:, n + 1 :]

    def copy_logprob(logits):
        logp = torch.log_softmax(logits[:, n : 2 * n - 1].float(), -1)
        return logp.gather(-1, targets[..., None]).mean()

    return model, info, clean, corrupted, copy_logprob


def test_induction_heads_restore_copying_and_attribution_agrees(induction):
    """Denoising (Olsson et al. 2022): each layer-1 (induction) head's clean output restores
    a tenth or more of the copying gap, no layer-0 head does; attribution patching finds the
    same four heads, linearly close to the real effects."""
    model, _, clean, corrupted, metric = induction
    exp = attribution_patching(model, clean, corrupted, metric, site="attn.head_out",
                               compare=True, normalize=True)  # fmt: skip
    real = np.asarray(exp.meta["activation_values"])
    gap = exp.meta["clean_metric"] - exp.meta["corrupted_metric"]
    restored = ((real - exp.meta["corrupted_metric"]) / gap).reshape(2, HEADS)
    assert gap > 2.0  # the corruption costs the model more than 2 nats per copied token
    assert (restored[1] > 0.1).all() and (np.abs(restored[0]) < 0.05).all()
    estimate = exp.values[0].reshape(2, HEADS)
    assert set(np.argsort(-exp.values[0])[:HEADS]) == {4, 5, 6, 7}  # the layer-1 heads
    assert exp.meta["pearson"] > 0.9 and exp.meta["spearman"] > 0.7
    assert (estimate[1] > 0.05).all()


def test_path_patching_finds_k_composition_with_the_previous_token_heads(induction):
    """Noising the path from each layer-0 head to the layer-1 heads' keys alone (Wang et al.'s
    path patching): the two heads the zoo scores as previous-token heads carry most of the
    copying (K-composition, Elhage et al. 2021; Olsson et al. 2022); the paths into queries
    and values carry little."""
    model, info, clean, corrupted, metric = induction
    previous = {name for name, _ in info.scores.top("previous_token", k=2)}
    damage = {}
    for part in ("q", "k", "v"):
        receivers = [(1, h, part) for h in range(HEADS)]
        exp = path_patching(model, clean, corrupted, metric, receivers=receivers,
                            normalize=True)  # fmt: skip
        assert exp.feature_names == [f"L0.H{h}" for h in range(HEADS)]
        damage[part] = dict(zip(exp.feature_names, exp.values[0], strict=True))
    top2 = sorted(damage["k"], key=damage["k"].get)[-2:]
    assert set(top2) == previous
    assert all(damage["k"][h] > 0.5 for h in previous)
    assert max(abs(v) for part in "qv" for v in damage[part].values()) < 0.15


# ------------------------------------------------------------------ every architecture


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_batched_equals_single_and_leaves_no_trace(arch):
    model = build(arch)
    clean, corrupted = input_ids(1, 5, seed=17), input_ids(1, 5, seed=18)

    def metric(logits):
        return logits[:, -1, 5].sum() - logits[:, 1, 7].sum()

    with torch.no_grad():
        before = model(clean).logits.clone()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    for site in ("resid_pre", "attn.head_out"):
        a = activation_patching(model, clean, corrupted, metric, site=site)
        b = activation_patching(model, clean, corrupted, metric, site=site, batch_size=1)
        close(a.values[0], b.values[0], rtol=1e-5)
    est = attribution_patching(model, clean, corrupted, metric, site="attn.head_out",
                               compare=True)  # fmt: skip
    assert np.isfinite(est.values).all() and est.meta["spearman"] is not None
    path_patching(model, clean, corrupted, metric, receivers=[(2, 0, "v")])
    assert hooks_left(model) == []
    with torch.no_grad():
        assert torch.equal(model(clean).logits, before)
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------ bad input


def test_metric_returning_a_non_scalar_is_refused(runs):
    model = build("gpt2")
    clean, corrupted = runs
    with pytest.raises(InvalidParameterError, match=r"shape \(2,\).*scalar"):
        activation_patching(model, clean, corrupted, lambda lg: lg[:, -1, 5])
    with pytest.raises(InvalidParameterError, match="scalar"):
        activation_patching(model, clean, corrupted, lambda lg: "high")
    with pytest.raises(InvalidParameterError, match="without a gradient"):
        attribution_patching(model, clean, corrupted, lambda lg: logit_diff(lg).detach())
    with pytest.raises(InvalidParameterError, match="0-d torch tensor"):
        attribution_patching(model, clean, corrupted, lambda lg: float(logit_diff(lg)))
    assert hooks_left(model) == []


def test_bad_inputs_and_parameters(runs):
    model = build("gpt2")
    clean, corrupted = runs
    with pytest.raises(InvalidInputError, match="2 rows and corrupted has 1"):
        activation_patching(model, clean, corrupted[:1], logit_diff)
    with pytest.raises(InvalidInputError, match="position by position"):
        path_patching(model, clean, corrupted[:, :4], logit_diff)
    with pytest.raises(InvalidInputError, match="Tokenize"):
        activation_patching(model, "the cat", "a dog", logit_diff)
    with pytest.raises(InvalidInputError, match="vocabulary"):
        activation_patching(model, clean + 1000, corrupted, logit_diff)
    with pytest.raises(InvalidParameterError, match="resid_pre"):
        activation_patching(model, clean, corrupted, logit_diff, site="resid_pree")
    with pytest.raises(InvalidParameterError, match="by='pos'"):
        activation_patching(model, clean, corrupted, logit_diff, by="head")
    with pytest.raises(InvalidParameterError, match="out of range"):
        activation_patching(model, clean, corrupted, logit_diff, positions=[6])
    with pytest.raises(InvalidParameterError, match="out of range"):
        activation_patching(model, clean, corrupted, logit_diff, layers=[3])
    with pytest.raises(InvalidParameterError, match="batch_size"):
        activation_patching(model, clean, corrupted, logit_diff, batch_size=0)
    with pytest.raises(InvalidParameterError, match="direction"):
        activation_patching(model, clean, corrupted, logit_diff, direction="up")
    with pytest.raises(InvalidParameterError, match="no path"):
        path_patching(model, clean, corrupted, logit_diff, senders=[(2, 0)],
                      receivers=[(1, 0, "q")])  # fmt: skip
    with pytest.raises(InvalidParameterError, match="'q'"):
        path_patching(model, clean, corrupted, logit_diff, receivers=[(1, 0, "o")])
    with pytest.raises(InvalidInputError, match="same metric"):
        activation_patching(model, clean, clean, logit_diff, normalize=True)
    assert hooks_left(model) == []


def test_hooks_removed_after_an_exception_and_training_mode_restored(runs):
    model = build("gpt2")
    clean, corrupted = runs
    calls = []

    def flaky(logits):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("metric failed")
        return logit_diff(logits)

    with torch.no_grad():
        before = model(corrupted).logits.clone()
    with pytest.raises(RuntimeError, match="metric failed"):
        activation_patching(model, clean, corrupted, flaky, batch_size=2)
    assert hooks_left(model) == []
    calls.clear()
    with pytest.raises(RuntimeError, match="metric failed"):
        path_patching(model, clean, corrupted, flaky, batch_size=1)
    assert hooks_left(model) == []
    calls[:] = [1]
    with pytest.raises(RuntimeError, match="metric failed"):
        attribution_patching(model, clean, corrupted, flaky)  # fails in the gradient pass
    assert hooks_left(model) == []
    with pytest.raises(InvalidParameterError, match="copy beside its output"):
        activation_patching(model, clean, corrupted, logit_diff, site="attn.pattern")
    with torch.no_grad():
        assert torch.equal(model(corrupted).logits, before)
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        exp = activation_patching(model, clean, corrupted, logit_diff, layers=[0])
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    close(exp.values[0], activation_patching(model, clean, corrupted, logit_diff,
                                             layers=[0]).values[0], rtol=1e-6)  # fmt: skip
