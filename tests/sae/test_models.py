"""The SAE architectures against numpy re-implementations of their papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.optimize import minimize  # noqa: E402

from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.sae.models import (  # noqa: E402
    SAE,
    BatchTopKSAE,
    JumpReLUSAE,
    SAEConfig,
    TrainState,
    geometric_median,
)

D_IN, D_SAE, N = 12, 40, 50


def _x(seed: int = 0, n: int = N, d: int = D_IN) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)))


def _sae(arch: str, **kw) -> SAE:
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture=arch, dtype="float64", **kw)
    sae = SAE.create(cfg, random_state=3)
    with torch.no_grad():  # non-zero biases so that every term of the formulas is exercised
        g = torch.Generator().manual_seed(7)
        sae.b_enc.copy_(0.3 * torch.randn(D_SAE, generator=g, dtype=torch.float64))
        sae.b_dec.copy_(0.2 * torch.randn(sae.d_out, generator=g, dtype=torch.float64))
    return sae


def _np(sae: SAE) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in sae.named_parameters()}


def _pre(p: dict, x: np.ndarray) -> np.ndarray:
    return (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]


def test_initialisation_is_gao_et_al():
    sae = _sae("topk", k=5)
    sae0 = SAE.create(SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=5), random_state=3)
    w_dec = sae0.W_dec.detach().double().numpy()
    np.testing.assert_allclose(np.linalg.norm(w_dec, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(sae0.W_enc.detach().numpy(), sae0.W_dec.detach().numpy().T)
    assert np.all(sae0.b_enc.detach().numpy() == 0) and np.all(sae0.b_dec.detach().numpy() == 0)
    other = SAE.create(SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=5), random_state=4)
    assert not torch.equal(other.W_dec, sae0.W_dec)
    assert sae.W_enc.dtype == torch.float64


@pytest.mark.parametrize(
    "arch,kw",
    [("standard", {}), ("topk", {"k": 5}), ("jumprelu", {}), ("batchtopk", {"k": 5})],
)
def test_encode_equals_the_formula(arch, kw):
    sae = _sae(arch, **kw)
    if arch == "jumprelu":
        sae.set_threshold_(torch.linspace(0.05, 0.8, D_SAE, dtype=torch.float64))
    if arch == "batchtopk":
        sae.topk_threshold.fill_(0.4)
    p, x = _np(sae), _x().numpy()
    pre = _pre(p, x)
    if arch == "standard":
        want = np.maximum(pre, 0)
    elif arch == "topk":
        want = np.zeros_like(pre)
        idx = np.argsort(-pre, axis=1)[:, :5]
        np.put_along_axis(want, idx, np.maximum(np.take_along_axis(pre, idx, 1), 0), 1)
    else:
        thr = np.linspace(0.05, 0.8, D_SAE) if arch == "jumprelu" else np.full(D_SAE, 0.4)
        want = np.where(pre > thr, np.maximum(pre, 0), 0.0)
    f = sae.encode(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(f, want, atol=1e-10)
    x_hat = sae.decode(torch.from_numpy(f)).detach().numpy()
    np.testing.assert_allclose(x_hat, want @ p["W_dec"] + p["b_dec"], atol=1e-10)
    values, indices = sae.encode_sparse(torch.from_numpy(x))
    sparse = sae.decode_sparse(values, indices).detach().numpy()
    np.testing.assert_allclose(sparse, x_hat, atol=1e-10)
    dense = np.zeros_like(f)
    np.put_along_axis(dense, indices.numpy(), values.detach().numpy(), 1)
    np.testing.assert_allclose(dense, f, atol=1e-12)


def test_encode_keeps_leading_dimensions():
    sae = _sae("topk", k=3)
    x = _x().reshape(5, 10, D_IN)
    f = sae.encode(x)
    assert f.shape == (5, 10, D_SAE)
    values, indices = sae.encode_sparse(x)
    assert values.shape == indices.shape == (5, 10, 3)
    torch.testing.assert_close(sae.decode_sparse(values, indices), sae(x))


def test_standard_loss_is_mse_plus_decoder_weighted_l1():
    sae = _sae("standard", l1_coefficient=0.7)
    p, x = _np(sae), _x().numpy()
    f = np.maximum(_pre(p, x), 0)
    x_hat = f @ p["W_dec"] + p["b_dec"]
    mse = ((x_hat - x) ** 2).sum(1).mean()
    l1 = (f * np.linalg.norm(p["W_dec"], axis=1)).sum(1).mean()
    parts = sae.training_loss(torch.from_numpy(x), step_state=TrainState(l1_scale=0.5))
    assert parts.mse.item() == pytest.approx(mse, rel=1e-12)
    assert parts.sparsity.item() == pytest.approx(0.7 * 0.5 * l1, rel=1e-12)
    assert parts.loss.item() == pytest.approx(mse + 0.35 * l1, rel=1e-12)
    var = ((x - x.mean(0)) ** 2).sum(1).mean()
    assert parts.fvu == pytest.approx(mse / var, rel=1e-10)
    assert parts.l0 == pytest.approx((f > 0).sum(1).mean())
    np.testing.assert_array_equal(parts.fired.numpy(), (f > 0).any(0))


def test_auxk_uses_the_dead_latents_top_pre_activations():
    sae = _sae("topk", k=4, aux_k=3, aux_coefficient=0.25, dead_tokens=100)
    p, x = _np(sae), _x().numpy()
    dead = np.zeros(D_SAE, dtype=bool)
    dead[[1, 5, 9, 20, 33]] = True
    counts = torch.where(torch.from_numpy(dead), 100, 99)
    pre = _pre(p, x)
    f = np.zeros_like(pre)
    idx = np.argsort(-pre, 1)[:, :4]
    np.put_along_axis(f, idx, np.maximum(np.take_along_axis(pre, idx, 1), 0), 1)
    x_hat = f @ p["W_dec"] + p["b_dec"]
    masked = np.where(dead, pre, -np.inf)
    aidx = np.argsort(-masked, 1)[:, :3]
    aux_f = np.zeros_like(pre)
    np.put_along_axis(aux_f, aidx, np.maximum(np.take_along_axis(pre, aidx, 1), 0), 1)
    want = 0.25 * min(5 / 3, 1.0) * ((aux_f @ p["W_dec"] - (x - x_hat)) ** 2).sum(1).mean()
    parts = sae.training_loss(torch.from_numpy(x), step_state=TrainState(tokens_since_fired=counts))
    assert parts.aux.item() == pytest.approx(want, rel=1e-10)
    none_dead = TrainState(tokens_since_fired=torch.zeros(D_SAE, dtype=torch.long))
    assert sae.training_loss(torch.from_numpy(x), step_state=none_dead).aux.item() == 0.0


def test_jumprelu_straight_through_gradients_equal_the_paper():
    eps = 0.05
    sae = _sae("jumprelu", jumprelu_bandwidth=eps, l0_coefficient=0.3)
    thr = np.linspace(0.05, 0.8, D_SAE)
    sae.set_threshold_(torch.from_numpy(thr))
    p, x = _np(sae), _x(1).numpy()
    pre = _pre(p, x)
    parts = sae.training_loss(torch.from_numpy(x))
    parts.loss.backward()
    f = np.where(pre > thr, pre, 0.0)
    x_hat = f @ p["W_dec"] + p["b_dec"]
    g_xhat = 2 * (x_hat - x) / len(x)  # d mse / d x_hat
    g_f = g_xhat @ p["W_dec"].T
    kernel = (np.abs((pre - thr) / eps) < 0.5).astype(float)
    # Rajamanoharan et al. (2024), eqs. 11-12: pseudo-derivatives with respect to theta
    g_thr = (g_f * -(thr / eps) * kernel).sum(0) + 0.3 * (-(1 / eps) * kernel).sum(0) / len(x)
    assert parts.sparsity.item() == pytest.approx(0.3 * (pre > thr).sum(1).mean(), rel=1e-12)
    # the parameter is log(theta): chain rule d/dlog = theta d/dtheta
    np.testing.assert_allclose(sae.log_threshold.grad.numpy(), g_thr * thr, rtol=1e-8, atol=1e-12)
    assert np.any(kernel), "the test needs pre-activations inside the kernel window"


def test_batchtopk_keeps_the_batch_top_and_tracks_its_threshold():
    sae = _sae("batchtopk", k=3, topk_threshold_lr=0.5)
    p, x = _np(sae), _x(2).numpy()
    acts = np.maximum(_pre(p, x), 0)
    flat = acts.ravel()
    keep = np.argsort(-flat)[: 3 * N]
    f = np.zeros_like(flat)
    f[keep] = flat[keep]
    f = f.reshape(acts.shape)
    parts = sae.training_loss(torch.from_numpy(x))
    x_hat = f @ p["W_dec"] + p["b_dec"]
    assert parts.mse.item() == pytest.approx(((x_hat - x) ** 2).sum(1).mean(), rel=1e-10)
    assert parts.l0 == pytest.approx((f > 0).sum() / N)
    kept = flat[keep]
    assert float(sae.topk_threshold) == pytest.approx(0.5 * kept[kept > 0].min(), rel=1e-12)
    jump = sae.to_jumprelu()
    assert isinstance(jump, JumpReLUSAE) and jump.cfg.architecture == "jumprelu"
    torch.testing.assert_close(jump.encode(torch.from_numpy(x)), sae.encode(torch.from_numpy(x)))


def test_matryoshka_adds_each_prefix_reconstruction():
    sae = _sae("matryoshka", k=4, matryoshka_widths=(10, 25, D_SAE))
    p, x = _np(sae), _x(3).numpy()
    acts = np.maximum(_pre(p, x), 0).ravel()
    keep = np.argsort(-acts)[: 4 * N]
    f = np.zeros_like(acts)
    f[keep] = acts[keep]
    f = f.reshape(N, D_SAE)
    want = sum(
        ((f[:, :w] @ p["W_dec"][:w] + p["b_dec"] - x) ** 2).sum(1).mean() for w in (10, 25, D_SAE)
    )
    parts = sae.training_loss(torch.from_numpy(x))
    assert parts.loss.item() == pytest.approx(want, rel=1e-10)


def test_transcoder_reads_one_width_and_predicts_another():
    cfg = SAEConfig(
        d_in=D_IN, d_sae=D_SAE, d_out=7, architecture="topk", k=4, dtype="float64",
        hook_name="blocks.0.ln2", hook_name_out="blocks.0.mlp.out",
    )  # fmt: skip
    sae = SAE.create(cfg)
    assert sae.is_transcoder and not cfg.apply_b_dec_to_input
    x, y = _x(4), _x(5, d=7)
    p = _np(sae)
    pre = x.numpy() @ p["W_enc"] + p["b_enc"]  # no b_dec subtracted: it lives in the output space
    np.testing.assert_allclose(sae.encode_pre(x).detach().numpy(), pre, atol=1e-12)
    assert sae(x).shape == (N, 7)
    parts = sae.training_loss(x, y)
    want = ((sae(x).detach().numpy() - y.numpy()) ** 2).sum(1).mean()
    assert parts.mse.item() == pytest.approx(want, rel=1e-10)


def test_parallel_gradient_removal_and_unit_norm():
    sae = _sae("topk", k=4)
    sae.training_loss(_x()).loss.backward()
    g = sae.W_dec.grad.numpy().copy()
    w = sae.W_dec.detach().numpy()
    unit = w / np.linalg.norm(w, axis=1, keepdims=True)
    sae.remove_gradient_parallel_to_decoder_()
    np.testing.assert_allclose(
        sae.W_dec.grad.numpy(), g - (g * unit).sum(1, keepdims=True) * unit, atol=1e-12
    )
    np.testing.assert_allclose((sae.W_dec.grad.numpy() * unit).sum(1), 0, atol=1e-12)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 3, D_SAE, dtype=torch.float64)[:, None])
    sae.set_decoder_norm_to_unit_norm_()
    np.testing.assert_allclose(np.linalg.norm(sae.W_dec.detach().numpy(), axis=1), 1, atol=1e-12)


def test_geometric_median_minimises_the_sum_of_distances():
    pts = np.random.default_rng(0).standard_t(df=1.5, size=(200, 3))  # heavy tails: mean is off
    want = minimize(
        lambda m: np.linalg.norm(pts - m, axis=1).sum(), pts.mean(0), method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    ).x  # fmt: skip
    got = geometric_median(torch.from_numpy(pts), tol=1e-12, max_iter=2000).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.linalg.norm(got - pts.mean(0)) > 0.05  # the mean is a different point
    sae = _sae("topk", k=4)
    sae.init_b_dec_geometric_median_(torch.from_numpy(pts[:, :1].repeat(D_IN, 1)))
    assert sae.b_dec.shape == (D_IN,)


def test_folding_the_activation_scale_keeps_every_output():
    sae = _sae("jumprelu")
    sae.set_threshold_(torch.full((D_SAE,), 0.3, dtype=torch.float64))
    sae.scaling_factor = 2.5
    x = _x(6)
    f, x_hat = sae.encode(x), sae(x)
    p = _np(sae)
    pre = (2.5 * x.numpy() - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    np.testing.assert_allclose(f.detach().numpy(), np.where(pre > 0.3, pre, 0), atol=1e-10)
    sae.fold_activation_norm_scaling_()
    assert sae.scaling_factor is None and sae.cfg.normalize_activations == "none"
    torch.testing.assert_close(sae.encode(x), f)
    torch.testing.assert_close(sae(x), x_hat)


def test_bad_configurations_and_inputs_raise():
    with pytest.raises(InvalidParameterError, match="larger than the width"):
        SAEConfig(d_in=4, d_sae=8, architecture="topk", k=9)
    with pytest.raises(InvalidParameterError, match="needs k"):
        SAEConfig(d_in=4, d_sae=8, architecture="batchtopk")
    with pytest.raises(InvalidParameterError, match="'standard', 'topk'"):
        SAEConfig(d_in=4, d_sae=8, architecture="gated_v9")
    with pytest.raises(InvalidParameterError, match="end at d_sae=8"):
        SAEConfig(d_in=4, d_sae=8, architecture="matryoshka", k=2, matryoshka_widths=(4, 6))
    sae = _sae("topk", k=2)
    with pytest.raises(InvalidInputError, match="d_in=12"):
        sae.encode(torch.zeros(3, 13))
    with pytest.raises(InvalidInputError, match="torch tensors"):
        sae.encode(np.zeros((3, D_IN)))
    assert SAEConfig(d_in=4, d_sae=8, architecture="relu").architecture == "standard"
    cfg = SAEConfig.from_dict({"d_in": 4, "d_sae": 8, "architecture": "topk", "k": 2, "foo": 1})
    assert cfg.metadata == {"foo": 1}
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(SAE.create(cfg.to_dict()), SAE)
    assert isinstance(
        SAE.create(SAEConfig(d_in=4, d_sae=8, architecture="batchtopk", k=2)), BatchTopKSAE
    )
