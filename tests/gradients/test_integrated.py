"""IntegratedGradients and ExpectedGradients against Captum, closed forms and scipy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
from scipy import ndimage  # noqa: E402

import whybox as wb  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.gradients import quadrature  # noqa: E402
from whybox.gradients.integrated import make_baseline  # noqa: E402
from whybox.parallel import row_generator  # noqa: E402  (the documented seeding scheme)


def _np(t):
    return t.detach().numpy()


@pytest.mark.parametrize(
    "rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"]
)
def test_ig_equals_captum_for_the_same_rule_steps_and_baseline(cnn, x16, rule) -> None:
    model, data = cnn
    target = data.y_test[:16]
    baseline = torch.full_like(x16, 0.25)
    exp = wb.IntegratedGradients(model).explain(
        x16, target=target, baseline=baseline, steps=20, method=rule
    )
    ref = captum_attr.IntegratedGradients(model).attribute(
        x16.clone(), baselines=baseline, target=target, n_steps=20, method=rule
    )
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    with torch.no_grad():
        f_b = model(baseline).gather(1, target[:, None])[:, 0]
        f_x = model(x16).gather(1, target[:, None])[:, 0]
    np.testing.assert_allclose(exp.base_values, _np(f_b), rtol=1e-6)
    np.testing.assert_allclose(exp.predictions, _np(f_x), rtol=1e-6)
    assert exp.params["rule"] == rule and exp.params["steps"] == 20 and exp.n_evals == 20
    assert exp.params["baseline"] == "tensor"
    gap = exp.completeness_gap()
    np.testing.assert_allclose(exp.meta["completeness_gap"], gap, rtol=1e-6, atol=1e-6)


def test_quadrature_weights_sum_to_one_and_match_closed_forms() -> None:
    for rule in [
        "gausslegendre",
        "riemann_left",
        "riemann_right",
        "riemann_middle",
        "riemann_trapezoid",
    ]:
        a, w = quadrature(rule, 7)
        assert abs(w.sum() - 1.0) < 1e-15 and np.all((a >= 0) & (a <= 1))
    a, w = quadrature("riemann_trapezoid", 5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    a, w = quadrature("gausslegendre", 2)  # nodes 1/2 -+ 1/(2 sqrt 3), weights 1/2
    np.testing.assert_allclose(a, [0.5 - 0.5 / np.sqrt(3), 0.5 + 0.5 / np.sqrt(3)])
    np.testing.assert_allclose(w, [0.5, 0.5])
    # a cubic is integrated exactly by 2 Gauss-Legendre nodes
    assert abs(np.dot(w, a**3) - 0.25) < 1e-15


def test_trapezoid_is_exact_on_a_linear_model_where_captums_falls_short(linear) -> None:
    x = torch.randn(4, 5, dtype=torch.float64)
    exp = wb.IntegratedGradients(linear).explain(x, target=1, steps=50, method="riemann_trapezoid")
    assert np.abs(exp.completeness_gap()).max() < 1e-12
    w = _np(linear.weight[1])
    np.testing.assert_allclose(exp.values, x.numpy() * w, rtol=1e-12)  # closed form x_i w_i
    ref = captum_attr.IntegratedGradients(linear).attribute(
        x.clone(), target=1, n_steps=50, method="riemann_trapezoid"
    )
    # Captum's trapezoid weights sum to (n - 1) / n = 0.98: a broken completeness
    np.testing.assert_allclose(_np(ref), 0.98 * x.numpy() * w, rtol=1e-6)  # float32 alphas
    captum_gap = exp.predictions - exp.base_values - _np(ref).sum(1)
    assert np.all(np.abs(captum_gap) > 0.019 * np.abs(exp.predictions - exp.base_values))


def test_gausslegendre_64_steps_complete_to_1e3_on_the_digits_cnn(cnn) -> None:
    model, data = cnn
    x = data.X_test
    with torch.no_grad():
        target = model(x).argmax(1)
    exp = wb.IntegratedGradients(model).explain(x, target=target, steps=64)
    rel = np.abs(exp.completeness_gap()) / np.abs(exp.predictions - exp.base_values)
    assert rel.mean() < 1e-3
    np.testing.assert_allclose(exp.meta["relative_completeness_gap"], rel, rtol=1e-6, atol=1e-9)


def test_batch_size_does_not_change_fixed_or_adaptive_results(cnn, cnn64, x16) -> None:
    x = x16[:3].double()
    y = cnn[1].y_test[:3]
    ig = wb.IntegratedGradients(cnn64)
    for target, kwargs in (([3, 5], {"steps": 12}), (y, {"tolerance": 1e-2})):
        a = ig.explain(x, target=target, **kwargs)
        b = ig.explain(x, target=target, internal_batch_size=7, **kwargs)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-12, atol=1e-14)
        assert a.meta.get("steps") == b.meta.get("steps")


def test_adaptive_mode_reaches_the_tolerance_with_few_steps_and_recorded_counts(cnn) -> None:
    model, data = cnn
    x = data.X_test[:24]
    target = data.y_test[:24]
    exp = wb.IntegratedGradients(model).explain(x, target=target, tolerance=1e-3)
    rel = np.abs(exp.completeness_gap()) / np.abs(exp.predictions - exp.base_values)
    assert all(exp.meta["converged"])
    assert rel.max() <= 1e-3 * (1 + 1e-3)  # float32 sums
    steps = np.array(exp.meta["steps"])
    assert steps.min() >= 9 and exp.n_evals == steps.max()
    assert exp.meta["mean_steps"] == pytest.approx(steps.mean())
    assert exp.params["rule"] == "adaptive_trapezoid" and exp.params["tolerance"] == 1e-3
    # they are Integrated Gradients: close to a 256-step Gauss-Legendre reference per feature
    ref = captum_attr.IntegratedGradients(model).attribute(x.clone(), target=target, n_steps=256)
    err = np.abs(exp.values - _np(ref)).sum((1, 2, 3)) / np.abs(_np(ref)).sum((1, 2, 3))
    assert err.max() < 0.05
    # a cap on the nodes stops the refinement and says so
    capped = wb.IntegratedGradients(model).explain(
        x[:4], target=target[:4], tolerance=1e-9, steps=12
    )
    assert capped.meta["steps"] == [12] * 4 and not any(capped.meta["converged"])


def test_layer_ig_equals_captums_layer_integrated_gradients(cnn, x16) -> None:
    model, data = cnn
    target = data.y_test[:16]
    exp = wb.IntegratedGradients(model).explain(x16, target=target, layer="features.3", steps=16)
    ref = captum_attr.LayerIntegratedGradients(model, model.features[3]).attribute(
        x16.clone(), target=target, n_steps=16
    )
    assert exp.values.shape == (16, 64, 4, 4)
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    with torch.no_grad():  # base: the model on x with the layer at its baseline activation
        a_b = model.features[:4](torch.zeros_like(x16))
        base = model.fc(model.flatten(model.features[4](a_b))).gather(1, target[:, None])[:, 0]
        act = model.features[:4](x16)
    np.testing.assert_allclose(exp.base_values, _np(base), rtol=1e-5)
    np.testing.assert_allclose(exp.data, _np(act), rtol=1e-6)
    assert exp.params["layer"] == "features.3"


class _Bag(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(20, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids)).mean(1))


def test_token_ids_need_an_embedding_layer_and_match_captum() -> None:
    model = _Bag().eval()
    ids = torch.tensor([[1, 5, 7, 2], [3, 3, 9, 0]])
    ig = wb.IntegratedGradients(model)
    with pytest.raises(InvalidInputError, match=r"integer dtype torch\.int64 \(token ids\?\)"):
        ig.explain(ids, target=1)
    exp = ig.explain(ids, target=1, layer="emb", baseline=0, steps=32)
    ref = captum_attr.LayerIntegratedGradients(model, model.emb).attribute(
        ids, baselines=torch.zeros_like(ids), target=1, n_steps=32
    )
    np.testing.assert_allclose(exp.values, _np(ref), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(exp.data, _np(model.emb(ids)))
    assert np.abs(exp.completeness_gap()).max() < 1e-4
    with pytest.raises(InvalidParameterError, match="needs floating-point inputs"):
        ig.explain(ids, target=1, layer="emb", baseline="blur")


def test_blur_uniform_constant_and_broadcast_baselines(cnn, x16) -> None:
    model, _ = cnn
    b, kind = make_baseline(x16, "blur", blur_sigma=None, random_state=0)
    ref = ndimage.gaussian_filter(x16.numpy(), sigma=(0, 0, 2, 2), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(_np(b), ref, rtol=1e-5, atol=1e-6)
    assert kind == "blur(sigma=2)"
    ig = wb.IntegratedGradients(model, random_state=5)
    exp = ig.explain(x16, target=0, baseline="blur", steps=4)
    with torch.no_grad():
        np.testing.assert_allclose(exp.base_values, _np(model(b)[:, 0]), rtol=1e-5)
    u, kind = make_baseline(x16, "uniform", blur_sigma=None, random_state=5)
    lo = x16.reshape(16, -1).min(1).values.reshape(-1, 1, 1, 1)
    hi = x16.reshape(16, -1).max(1).values.reshape(-1, 1, 1, 1)
    draws = np.stack([row_generator(5, r).random(r.shape) for r in x16.double().numpy()])
    expected = lo + (hi - lo) * torch.as_tensor(draws).float()
    np.testing.assert_allclose(_np(u), _np(expected), rtol=1e-6)
    exp_u = ig.explain(x16, target=0, baseline="uniform", steps=4)
    with torch.no_grad():
        np.testing.assert_allclose(exp_u.base_values, _np(model(u)[:, 0]), rtol=1e-5)
    assert exp_u.params["baseline"] == "uniform" and exp_u.random_state == 5
    # a constant, a (1, 8, 8) tensor and a full tensor give the same baseline
    full = ig.explain(x16, target=0, baseline=torch.full_like(x16, 0.5), steps=4).values
    const = ig.explain(x16, target=0, baseline=0.5, steps=4)
    bcast = ig.explain(x16, target=0, baseline=np.full((1, 8, 8), 0.5), steps=4).values
    np.testing.assert_allclose(const.values, full, rtol=1e-6)
    np.testing.assert_allclose(bcast, full, rtol=1e-6)
    assert const.params["baseline"] == "constant(0.5)"


def test_bad_baselines_and_parameters(cnn, x16) -> None:
    model, _ = cnn
    ig = wb.IntegratedGradients(model)
    with pytest.raises(InvalidInputError, match=r"baseline of shape \(3, 8\) is not broadcastable"):
        ig.explain(x16, target=0, baseline=torch.zeros(3, 8))
    with pytest.raises(
        InvalidInputError, match=r"baseline has 5 rows but x has 16.*ExpectedGradients"
    ):
        ig.explain(x16, target=0, baseline=torch.zeros(5, 1, 8, 8))
    with pytest.raises(InvalidInputError, match="baseline is on device 'meta'"):
        ig.explain(x16, target=0, baseline=torch.zeros(1, 8, 8, device="meta"))
    with pytest.raises(InvalidParameterError, match="baseline='noise' is not supported"):
        ig.explain(x16, target=0, baseline="noise")
    with pytest.raises(InvalidParameterError, match="method='simpson' is not supported"):
        ig.explain(x16, target=0, method="simpson")
    with pytest.raises(InvalidParameterError, match="refines a composite trapezoid grid"):
        ig.explain(x16, target=0, tolerance=1e-3, method="gausslegendre")
    with pytest.raises(InvalidParameterError, match="tolerance must be a positive number"):
        ig.explain(x16, target=0, tolerance=-1.0)
    with pytest.raises(InvalidParameterError, match="trapezoid rule needs steps >= 2"):
        ig.explain(x16, target=0, steps=1, method="riemann_trapezoid")
    with pytest.raises(InvalidParameterError, match=r"Closest valid paths: 'features\.3'"):
        ig.explain(x16, target=0, layer="feature.3")
    with pytest.raises(InvalidParameterError, match="target -11 is out of range"):
        ig.explain(x16, target=-11)
    with pytest.raises(InvalidInputError, match="is on device 'meta' but the model is on 'cpu'"):
        ig.explain(x16.to("meta"), target=0)
    with pytest.raises(InvalidParameterError, match="blur_sigma must be a positive number"):
        ig.explain(x16, target=0, baseline="blur", blur_sigma=0)


class _Quadratic(torch.nn.Module):
    """f(x) = sum(a * x^2) + c . x, gradient 2 a x + c (closed form)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.a = torch.nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))

    def forward(self, x):
        return ((self.a * x * x).sum(1) + (self.c * x).sum(1))[:, None]


@pytest.mark.parametrize("batch", [None, 7])
def test_expected_gradients_equals_the_closed_form_with_the_same_draws(batch) -> None:
    model = _Quadratic().eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6))
    bg = rng.normal(size=(10, 6))
    eg = wb.ExpectedGradients(model, baselines=bg, n_samples=30, random_state=2)
    exp = eg.explain(x, internal_batch_size=batch)
    # each example's own stream (row_generator: seed + content): 30 indices, then 30 positions
    gens = [row_generator(2, row) for row in x]
    idx = np.array([g.integers(0, 10, size=30) for g in gens])
    alpha = np.array([g.random(30) for g in gens])
    a, c = _np(model.a), _np(model.c)
    b = bg[idx]  # (4, 30, 6)
    point = b + alpha[..., None] * (x[:, None] - b)
    contrib = (x[:, None] - b) * (2 * a * point + c)
    np.testing.assert_allclose(exp.values, contrib.mean(1), rtol=1e-10)
    np.testing.assert_allclose(exp.std, contrib.std(1, ddof=1) / np.sqrt(30), rtol=1e-8)
    f = (a * bg**2).sum(1) + bg @ c
    np.testing.assert_allclose(exp.base_values, np.full(4, f.mean()), rtol=1e-12)
    assert exp.params["baseline"] == "distribution" and exp.n_evals == 30


def test_explanations_save_and_load_without_pickle(cnn, x16, tmp_path) -> None:
    model, data = cnn
    exp = wb.IntegratedGradients(model).explain(x16[:4], target=data.y_test[:4], tolerance=1e-2)
    path = tmp_path / "ig.whybox"
    exp.save(path)
    back = wb.load(path)
    np.testing.assert_array_equal(back.values, exp.values)
    np.testing.assert_array_equal(back.base_values, exp.base_values)
    np.testing.assert_array_equal(back.completeness_gap(), exp.completeness_gap())
    assert back.meta["steps"] == exp.meta["steps"] and back.params == exp.params


def test_model_on_another_device_than_the_inputs() -> None:
    net = torch.nn.Linear(3, 2).to("meta")
    with pytest.raises(InvalidInputError, match="is on device 'cpu' but the model is on 'meta'"):
        wb.IntegratedGradients(net).explain(torch.ones(2, 3), target=0)


def test_expected_gradients_of_an_example_do_not_depend_on_its_batch() -> None:
    model = _Quadratic().eval()
    rng = np.random.default_rng(1)
    x, bg = rng.normal(size=(5, 6)), rng.normal(size=(10, 6))
    eg = wb.ExpectedGradients(model, baselines=bg, n_samples=20, random_state=4)
    np.testing.assert_allclose(eg.explain(x[2:4]).values, eg.explain(x).values[2:4], rtol=1e-12)
