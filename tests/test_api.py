"""wb.explain and the method registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import whybox as wb
from whybox.errors import InvalidParameterError


def test_auto_picks_exact_and_records_why():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    w = np.array([1.0, 2.0, 0.0, -1.0])
    exp = wb.explain(lambda Z: Z @ w, X[:5], background=X[:20])
    assert exp.method == "exact"
    assert exp.params["method_selection"].startswith("auto -> exact")
    np.testing.assert_allclose(exp.values, w * (X[:5] - X[:20].mean(0)), atol=1e-10)


def test_auto_picks_linear_for_linear_models():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 0.0, -1.0])
    exp = wb.explain(model, X[:5], background=X[:20])
    assert exp.method == "linear"
    assert exp.params["method_selection"].startswith("auto -> linear")
    np.testing.assert_allclose(exp.values, model.coef_ * (X[:5] - X[:20].mean(0)), atol=1e-10)


def test_explicit_method_and_unknown_method():
    X = np.random.default_rng(1).normal(size=(10, 3))
    exp = wb.explain(lambda Z: Z.sum(axis=1), X[:2], method="exact", background=X)
    assert exp.params["method_selection"] == "exact -> exact: requested"
    with pytest.raises(InvalidParameterError) as info:
        wb.explain(lambda Z: Z.sum(axis=1), X, method="magic")
    assert "magic" in str(info.value) and "exact" in str(info.value)


def test_auto_uses_kernel_above_sixteen_players():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 20))
    w = rng.normal(size=20)
    exp = wb.explain(lambda Z: Z @ w, X[:2], background=X[:10], budget=200)
    assert exp.method == "kernel"
    assert "20 players > 16" in exp.params["method_selection"]
    # a linear game is pairwise-free: KernelSHAP with paired sampling recovers it exactly
    np.testing.assert_allclose(exp.values, w * (X[:2] - X[:10].mean(0)), atol=1e-9)


def test_available_methods():
    assert {"exact", "permutation", "kernel", "banzhaf", "interactions", "linear"} <= set(
        wb.available_methods()
    )


def test_auto_picks_integrated_gradients_for_torch_modules():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    model.eval()
    x = torch.randn(5, 4)
    exp = wb.explain(model, x, target=1)
    assert exp.method == "integrated_gradients"
    assert exp.params["method_selection"].startswith("auto -> integrated_gradients")
    # completeness against the model's own outputs at x and at the zero baseline
    with torch.no_grad():
        out = model(x)[:, 1]
        gap = out - model(torch.zeros(1, 4))[:, 1] - torch.as_tensor(exp.values).sum(1)
    assert float(gap.abs().max()) < 1e-3 * float(out.abs().max() + 1)
    # a background of several rows: expected gradients, base value = mean output over it
    bg = torch.randn(30, 4)
    exp = wb.explain(model, x, background=bg, target=1)
    assert exp.method == "expected_gradients"
    with torch.no_grad():
        np.testing.assert_allclose(exp.base_values, float(model(bg)[:, 1].mean()), rtol=1e-5)


def test_auto_explains_images_through_an_image_masker():
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 8, 8))
    w = rng.normal(size=(1, 8, 8))

    def f(Z):
        return (np.asarray(Z) * w).sum(axis=(1, 2, 3))

    masker = wb.ImageMasker(segments="grid", n_segments=4, fill="baseline", value=0.0)
    exp = wb.explain(f, images, background=masker)
    assert exp.method == "exact"
    assert exp.values.shape == images.shape
    # additive model: each grid segment's value is its own contribution against the 0 fill
    seg = exp.meta["segments"][0]
    for s in np.unique(seg):
        cell = seg == s
        expected = (images[0, 0] * w[0])[cell].sum()
        np.testing.assert_allclose(exp.values[0, 0][cell].sum(), expected, atol=1e-10)
    exp = wb.explain(f, images[:1], background=wb.ImageMasker(segments="grid", n_segments=25))
    assert exp.method == "kernel"


def test_auto_uses_an_ebms_own_terms():
    from whybox.glassbox import ExplainableBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    ebm = ExplainableBoostingClassifier(outer_bags=2, interactions=0, max_rounds=200).fit(X, y)
    # link -> output, one rule for every model (CONTRACT 5): the probability (the default) is
    # not additive over the EBM's terms, so auto needs a background or link='logit'
    with pytest.raises(InvalidParameterError, match="link='logit'"):
        wb.explain(ebm, X[:10])
    prob = wb.explain(ebm, X[:3], background=X[100:140])
    assert prob.method == "exact"
    np.testing.assert_allclose(prob.predictions, ebm.predict_proba(X[:3])[:, 1], atol=1e-12)
    np.testing.assert_allclose(prob.completeness_gap(), 0.0, atol=1e-10)
    with pytest.raises(InvalidParameterError, match="link='logit'"):
        wb.explain(ebm, X[:10], method="ebm")
    exp = wb.explain(ebm, X[:10], link="logit")
    assert exp.method == ebm.explain_local(X[:10]).method
    assert exp.params["method_selection"].startswith("auto -> ebm")
    # exactly additive on the model's own log-odds
    np.testing.assert_allclose(
        exp.values.sum(axis=1) + exp.base_values, ebm.decision_function(X[:10]), atol=1e-10
    )
    # CONTRACT 1 (behaviour change: target=0 was refused): class 0 of the binary EBM is its
    # negated log-odds
    zero = wb.explain(ebm, X[:10], target=0, link="logit")
    assert zero.output_names == ["0"]
    np.testing.assert_allclose(
        zero.values.sum(axis=1) + zero.base_values, -ebm.decision_function(X[:10]), atol=1e-10
    )
