"""wb.sae.train: schedules by hand, dictionary recovery on a known sparse problem, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError  # noqa: E402
from whybox.sae.training import TensorActivations, l1_scale_at, lr_at, train  # noqa: E402


def sparse_problem(n, seed, d=16, m=32, p=2 / 32):
    """x = c @ D with a known unit-norm dictionary D (m, d) and sparse non-negative c."""
    dictionary = torch.randn(
        m, d, generator=torch.Generator().manual_seed(123), dtype=torch.float64
    )
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(n, m, generator=g, dtype=torch.float64) < p).double()
    coef = mask * (0.5 + torch.rand(n, m, generator=g, dtype=torch.float64))
    return (coef @ dictionary).float(), dictionary.float()


def fvu(sae, x):
    with torch.no_grad():
        return float((sae(x) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def mean_max_cosine(sae, dictionary):
    w = sae.W_dec.detach() / sae.W_dec.detach().norm(dim=1, keepdim=True)
    return float((dictionary @ w.T).max(dim=1).values.mean())


# ------------------------------------------------------------------------------ schedules
def test_lr_schedule_hand_computed():
    # T = 10 steps, 2 warm-up, 4 decay, lr 1, lr_end 0.2
    kw = dict(lr=1.0, total_steps=10, warmup_steps=2, decay_steps=4, lr_end=0.2)
    got = [lr_at(s, **kw) for s in range(10)]
    # warm-up: LinearLR from 1/2 to 1: 0.5, 0.75; constant: 1, 1 (steps 2..5); decay from
    # step 6: 1 + (0.2 - 1) * j / 4 for j = 0..3
    want = [0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_lr_cosine_hand_computed():
    kw = dict(lr=1.0, total_steps=6, warmup_steps=1, decay_steps=1, lr_end=0.0, schedule="cosine")
    got = [lr_at(s, **kw) for s in range(6)]
    # warm-up step 0: 1/1 = 1; cosine over steps 1..4 (span 4): t = 0, 1/4, 2/4, 3/4;
    # decay step 5: 1 + (0 - 1) * 0 / 1 = 1
    cos = [0.5 * (1 + math.cos(math.pi * t)) for t in (0, 0.25, 0.5, 0.75)]
    np.testing.assert_allclose(got, [1.0, *cos, 1.0], atol=1e-12)


def test_l1_warmup_hand_computed():
    assert [l1_scale_at(s, 4) for s in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert l1_scale_at(0, 0) == 1.0


def test_training_uses_the_schedule():
    x, _ = sparse_problem(2048, 0)
    seen = []
    train(
        activations=x,
        width=32,
        k=4,
        batch_size=256,
        total_tokens=256 * 10,
        lr=1e-2,
        lr_warmup_steps=2,
        lr_decay_steps=4,
        lr_end=2e-3,
        progress=False,
        callback=lambda m: seen.append(m["lr"]),
    )
    np.testing.assert_allclose(seen, [0.005, 0.0075] + [0.01] * 5 + [0.008, 0.006, 0.004])


# ------------------------------------------------------------------------------ recovery
def test_topk_recovers_the_dictionary_and_loss_decreases():
    x, dictionary = sparse_problem(40_000, 0)
    held_out, _ = sparse_problem(4_000, 1)
    sae = train(
        activations=x,
        architecture="topk",
        width=32,
        k=4,
        batch_size=256,
        total_tokens=256 * 400,
        lr=1e-2,
        progress=False,
        log_every=1,
    )
    losses = [h["loss"] for h in sae.history]
    assert len(losses) == 400
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:3])
    # ground truth known: every true atom has a decoder row at cosine > 0.9 on average
    assert mean_max_cosine(sae, dictionary) > 0.93  # measured 0.966
    assert fvu(sae, held_out) < 0.12  # measured 0.092
    # a random dictionary of the same shape would not recover it (the check can fail)
    rand = torch.randn(32, 16, generator=torch.Generator().manual_seed(5))
    rand /= rand.norm(dim=1, keepdim=True)
    assert float((dictionary @ rand.T).max(dim=1).values.mean()) < 0.8
    assert sae.training is False and sae.cfg.k == 4 and sae.d_sae == 32


def test_standard_l1_trains_sparse_with_resampling():
    x, dictionary = sparse_problem(20_000, 0)
    held_out, _ = sparse_problem(2_000, 1)
    sae = train(
        activations=x,
        architecture="standard",
        width=32,
        batch_size=256,
        total_tokens=256 * 300,
        lr=1e-2,
        l1_coefficient=0.3,
        l1_warmup_steps=30,
        dead_tokens=256 * 20,
        progress=False,
    )
    assert fvu(sae, held_out) < 0.15  # measured 0.10
    assert sae.history[-1]["l0"] < 8  # measured 5.1 (true mean L0 2)
    assert mean_max_cosine(sae, dictionary) > 0.9  # measured 0.93


def test_resampling_revives_dead_latents_as_high_loss_inputs():
    from whybox.sae.models import SAE, SAEConfig
    from whybox.sae.training import _resample_dead_

    x, _ = sparse_problem(512, 0)
    sae = SAE.create(SAEConfig(d_in=16, d_sae=8, architecture="standard"), random_state=0)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    sae.training_loss(x).loss.backward()
    opt.step()
    dead = torch.zeros(8, dtype=torch.bool)
    dead[[2, 5]] = True
    alive_norm = float(sae.W_enc.detach()[:, ~dead].norm(dim=0).mean())
    n = _resample_dead_(sae, opt, x, None, dead, torch.Generator().manual_seed(0))
    assert n == 2
    for j in (2, 5):
        row = sae.W_dec.detach()[j]
        # the decoder row is the unit direction of one of the inputs
        cos = (x @ row) / x.norm(dim=1).clamp_min(1e-12)
        i = int(cos.argmax())
        assert float(cos[i]) == pytest.approx(1.0, abs=1e-5)
        enc = sae.W_enc.detach()[:, j]
        assert float(enc.norm()) == pytest.approx(0.2 * alive_norm, rel=1e-5)
        assert float(sae.b_enc.detach()[j]) == 0.0
        assert float(opt.state[sae.W_dec]["exp_avg"][j].abs().sum()) == 0.0
        assert float(opt.state[sae.W_enc]["exp_avg_sq"][:, j].abs().sum()) == 0.0


def test_transcoder_learns_a_linear_map_of_sparse_codes():
    x, _ = sparse_problem(8_000, 0)
    proj = torch.randn(16, 8, generator=torch.Generator().manual_seed(9)) / 4
    y = x @ proj
    sae = train(
        activations=(x, y),
        width=32,
        k=4,
        batch_size=256,
        total_tokens=256 * 200,
        lr=1e-2,
        progress=False,
    )
    assert sae.is_transcoder and sae.d_out == 8
    with torch.no_grad():
        err = float((sae(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    assert err < 0.2


def test_normalize_activations_sets_the_saelens_scale():
    x, _ = sparse_problem(2048, 0)
    x = x * 30
    sae = train(
        activations=x,
        width=32,
        k=4,
        batch_size=512,
        total_tokens=1024,
        normalize_activations="expected_average_only_in",
        progress=False,
        random_state=3,
    )
    first = TensorActivations(x, random_state=3).next_batch(512)
    want = math.sqrt(16) / float(first.double().norm(dim=1).mean())
    assert sae.scaling_factor == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------------ reproducibility
def test_seeded_and_reproducible():
    x, _ = sparse_problem(4096, 0)
    kw = dict(activations=x, width=32, k=4, batch_size=256, total_tokens=256 * 20, progress=False)
    a, b = train(**kw, random_state=1), train(**kw, random_state=1)
    c = train(**kw, random_state=2)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.W_dec, c.W_dec)


def test_iterable_source_equals_the_same_rows_in_order():
    x, _ = sparse_problem(2048, 0)
    kw = dict(width=32, k=4, batch_size=256, total_tokens=256 * 6, progress=False)
    chunks = [x[i : i + 100] for i in range(0, 2048, 100)]
    a = train(activations=chunks, **kw)
    b = train(activations=TensorActivations(x, shuffle=False), **kw)
    assert torch.equal(a.W_dec, b.W_dec)


def test_progress_bar_shows_metrics_and_progress_false_is_silent(capsys):
    x, _ = sparse_problem(1024, 0)
    kw = dict(activations=x, width=32, k=4, batch_size=256, total_tokens=1024)
    train(**kw, progress=True)
    err = capsys.readouterr().err
    assert "L0" in err and "FVU" in err and "dead" in err
    train(**kw, progress=False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_dead_fraction_counts_latents_silent_for_dead_tokens():
    x, _ = sparse_problem(4096, 0)
    seen = []
    sae = train(
        activations=x,
        width=64,
        k=2,
        batch_size=256,
        total_tokens=256 * 8,
        dead_tokens=512,
        lr=1e-2,
        progress=False,
        callback=seen.append,
    )
    assert seen[0]["dead_fraction"] == 0.0  # 256 tokens < 512: nobody is dead yet
    assert 0 <= seen[-1]["dead_fraction"] <= 1
    assert sae.history[-1]["step"] == 8


# ------------------------------------------------------------------------------ bad input
def test_k_larger_than_width():
    x, _ = sparse_problem(512, 0)
    with pytest.raises(InvalidParameterError, match="larger than the width"):
        train(activations=x, width=8, k=9, batch_size=256, total_tokens=512, progress=False)


def test_nan_in_activations_stops_before_training_with_step_and_row():
    x, _ = sparse_problem(1024, 0)
    x[700, 3] = float("nan")
    steps = []
    with pytest.raises(InvalidInputError, match="NaN or inf") as info:
        train(
            activations=TensorActivations(x, shuffle=False),
            width=32,
            k=4,
            batch_size=256,
            total_tokens=1024,
            progress=False,
            callback=steps.append,
        )
    err = info.value
    assert (err.step, err.row, err.dimension) == (2, 700, 3)
    assert "step 2" in str(err) and "token 700" in str(err) and "dimension 3" in str(err)
    assert len(steps) == 2  # steps 0 and 1 trained, step 2 not


def test_other_bad_parameters():
    x, _ = sparse_problem(512, 0)
    kw = dict(activations=x, width=32, k=4, progress=False)
    with pytest.raises(InvalidParameterError, match="less than one batch"):
        train(**kw, batch_size=1024, total_tokens=512)
    with pytest.raises(InvalidParameterError, match="unknown options"):
        train(**kw, batch_size=256, total_tokens=512, bogus=1)
    with pytest.raises(InvalidParameterError, match="architecture"):
        train(activations=x, architecture="nope", batch_size=256, total_tokens=512)
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        train(**kw, batch_size=256, total_tokens=512, resume=True)
    with pytest.raises(InvalidParameterError, match="needs activations"):
        train(width=8)
    with pytest.raises(InvalidInputError, match="shape"):
        train(activations=np.zeros(10), batch_size=2, total_tokens=4)
    with pytest.raises(WhyboxError, match="exceeds"):
        train(**kw, batch_size=256, total_tokens=512, lr_warmup_steps=2, lr_decay_steps=1)


def test_diverging_loss_names_the_step():
    x, _ = sparse_problem(1024, 0)
    x = x * 1e30  # squares overflow float32
    with pytest.raises(InvalidParameterError, match="step 0"):
        train(activations=x, width=32, k=4, batch_size=256, total_tokens=512, progress=False)


# ------------------------------------------------------------------------------ sources
def test_streams_from_a_model_through_hooks():
    from tests.internals.tiny import build, input_ids

    model = build("gpt2")
    ids = input_ids(batch=16, pos=16, seed=1)
    sae = train(
        model,
        "blocks.1.resid_post",
        tokens=ids,
        width=64,
        k=4,
        batch_size=64,
        total_tokens=64 * 12,
        lr=1e-2,
        progress=False,
        log_every=1,
        activation_options={"buffer_tokens": 256, "batch_size_prompts": 4},
    )
    assert sae.cfg.hook_name == "blocks.1.resid_post" and sae.d_in == 32
    fvus = [h["fvu"] for h in sae.history]
    assert np.mean(fvus[-3:]) < np.mean(fvus[:2])
    with pytest.raises(InvalidParameterError, match="total_tokens"):
        train(model, "blocks.1.resid_post", tokens=ids, width=64, k=4, progress=False)
    transcoder = train(
        model, "blocks.1.ln2", site_out="blocks.1.mlp.out", tokens=ids, width=64, k=4,
        batch_size=64, total_tokens=64 * 4, progress=False,
        activation_options={"buffer_tokens": 256, "batch_size_prompts": 4},
    )  # fmt: skip
    assert transcoder.is_transcoder and transcoder.cfg.hook_name_out == "blocks.1.mlp.out"


def test_reads_a_safetensors_shard_folder(tmp_path):
    from safetensors.torch import save_file

    x, _ = sparse_problem(1024, 0)
    save_file({"blocks.0.resid_post": x}, str(tmp_path / "shard0.safetensors"))
    seen = []
    sae = train(
        activations=str(tmp_path),
        width=32,
        k=4,
        batch_size=256,
        total_tokens=512,
        progress=False,
        callback=seen.append,
    )
    assert sae.d_in == 16 and [m["step"] for m in seen] == [1, 2]


@pytest.mark.parametrize("arch", ["standard", "topk", "batchtopk", "jumprelu", "matryoshka"])
def test_every_architecture_trains(arch):
    x, _ = sparse_problem(4096, 0)
    extra = {"matryoshka_widths": (8, 16, 32)} if arch == "matryoshka" else {}
    sae = train(
        activations=x, architecture=arch, width=32, k=4, batch_size=256, total_tokens=256 * 30,
        lr=1e-2, progress=False, log_every=1, **extra,
    )  # fmt: skip
    assert sae.architecture == arch
    assert all(torch.isfinite(p).all() for p in sae.parameters())
    losses = [h["loss"] for h in sae.history]
    assert np.mean(losses[-5:]) < np.mean(losses[:2])
    if sae.cfg.decoder_unit_norm:
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32), atol=1e-5, rtol=0)


def test_finite_check_is_not_fooled_by_an_overflowing_sum():
    from whybox.sae.training import _check_finite

    big = torch.full((4, 4), 3e38)  # finite, but their float32 sum is inf
    assert not math.isfinite(float(big.sum()))
    _check_finite(big, "activations", 0, 0)  # no error
    big[1, 2] = float("-inf")
    with pytest.raises(InvalidInputError, match=r"row 1 .*dimension 2"):
        _check_finite(big, "activations", 5, 0)
