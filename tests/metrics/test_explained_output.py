"""wb.evaluate reads the explained output from the Explanation (issue 13 item 8).

Oracles: the model's own predict_proba / decision_function, closed forms of linear models
(exact Shapley values w * (x - baseline), whose infidelity is 0), and one-at-a-time runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import whybox as wb
from whybox import metrics
from whybox.errors import InvalidInputError
from whybox.explanation import Explanation


@pytest.fixture(scope="module")
def iris_case():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    bg, rows = X.iloc[::10], X.iloc[[0, 60, 120, 75, 140]]
    exp = wb.ExactShap(model, background=bg).explain(rows, target="all")
    return model, rows, bg, exp


def test_one_class_of_an_all_class_explanation_needs_no_target(iris_case):
    model, rows, bg, exp = iris_case
    one = exp[:, :, "2"]
    curve = metrics.deletion(one, model, rows, background=bg)
    np.testing.assert_allclose(curve.full, model.predict_proba(rows)[:, 2], rtol=1e-12)
    table = wb.evaluate(one, model, rows, background=bg, metrics=["deletion", "insertion"])
    assert table["n"].tolist() == [len(rows), len(rows)]


def test_all_classes_are_scored_for_the_predicted_class(iris_case):
    model, rows, bg, exp = iris_case
    proba = model.predict_proba(rows)
    curve = metrics.deletion(exp, model, rows, background=bg)
    np.testing.assert_allclose(curve.full, proba.max(axis=1), rtol=1e-12)


def test_per_row_targets_equal_one_at_a_time_runs(iris_case):
    model, rows, bg, exp = iris_case
    targets = np.array([2, 0, 1, 1, 0])
    per_row = exp.per_row_output(targets)
    assert per_row.output_names == ["per-example target"]
    assert per_row.meta["targets"] == ["2", "0", "1", "1", "0"]
    curve = metrics.deletion(per_row, model, rows, background=bg)
    proba = model.predict_proba(rows)
    np.testing.assert_allclose(curve.full, proba[np.arange(5), targets], rtol=1e-12)
    for i, t in enumerate(targets):
        alone = metrics.deletion(exp[[i], :, int(t)], model, rows.iloc[[i]], background=bg)
        np.testing.assert_allclose(curve.values[i], alone.values[0], rtol=1e-12)
    fc = metrics.faithfulness_correlation(per_row, model, rows, background=bg)
    inf = metrics.infidelity(per_row, model, rows, background=bg)
    assert fc.shape == inf.shape == (5,) and np.isfinite(inf).all()
    # a slice keeps its targets
    np.testing.assert_allclose(
        metrics.deletion(per_row[[3, 1]], model, rows.iloc[[3, 1]], background=bg).full,
        proba[[3, 1], targets[[3, 1]]],
        rtol=1e-12,
    )


def test_per_example_targets_of_a_torch_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 24)).double().eval()
    x = torch.randn(24, 6, dtype=torch.float64)
    y = torch.arange(24) % 24
    exp = wb.IntegratedGradients(net).explain(x, target=y, baseline=0, steps=8)
    table = wb.evaluate(exp, net, x.numpy(), background=np.zeros((1, 6)))
    assert (table["n"] > 0).all()
    curve = metrics.deletion(exp, net, x.numpy(), background=np.zeros((1, 6)))
    with torch.no_grad():
        out = net(x).numpy()
    np.testing.assert_allclose(curve.full, out[np.arange(24), y.numpy()], rtol=1e-12)
    # IG of a linear model with baseline 0 is w * x exactly: infidelity is 0
    inf = metrics.infidelity(exp, net, x.numpy(), background=np.zeros((1, 6)))
    np.testing.assert_allclose(inf, 0.0, atol=1e-20)


def test_allow_nan_is_an_option_for_models_that_accept_nan():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    y = X["a"] - 2 * X["b"].fillna(0) + rng.normal(size=300) * 0.1
    X.loc[::7, "b"] = np.nan
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    rows, bg = X.iloc[:14], X.iloc[100:140]
    exp = wb.TreeShap(model).explain(rows)
    with pytest.raises(InvalidInputError, match="allow_nan=True"):
        wb.evaluate(exp, model, rows, background=bg, metrics=["deletion"])
    table = wb.evaluate(exp, model, rows, background=bg, allow_nan=True)
    assert list(table.index) == ["deletion", "insertion", "faithfulness_correlation", "infidelity"]
    assert table["n"].min() > 0
    curve = metrics.deletion(exp, model, rows, background=bg, allow_nan=True)
    np.testing.assert_allclose(curve.full, model.predict(rows), rtol=1e-9)
    inf = metrics.infidelity(exp, model, rows, background=bg, allow_nan=True)
    assert np.isfinite(inf).all()


def _linear_case():
    rng = np.random.default_rng(1)
    w = np.array([1.5, -2.0, 0.5, 3.0])
    X = rng.normal(size=(10, 4))

    def f(Z):
        return np.asarray(Z, dtype=float) @ w

    # exact Shapley values of a linear model against the baseline 0: w * x
    exp = Explanation(
        X * w, np.zeros(10), data=X, predictions=f(X), method="exact", params={"output": "f"}
    )
    return f, X, exp


def test_infidelity_accepts_a_baseline_masker():
    f, X, exp = _linear_case()
    by_masker = metrics.infidelity(exp, f, X, background=wb.Baseline(0.0))
    by_rows = metrics.infidelity(exp, f, X, background=np.zeros((1, 4)))
    np.testing.assert_allclose(by_masker, 0.0, atol=1e-24)
    np.testing.assert_array_equal(by_masker, by_rows)
    by_value = metrics.infidelity(exp, f, X, background=0.0)
    np.testing.assert_array_equal(by_value, by_rows)


@pytest.mark.parametrize("metric", ["deletion", "faithfulness_correlation", "infidelity"])
def test_every_tabular_metric_accepts_every_masker(metric):
    f, X, exp = _linear_case()
    bg = np.random.default_rng(2).normal(size=(30, 4))
    fn = getattr(metrics, metric)
    for masker in (
        wb.Baseline(0.0),
        wb.Independent(bg),
        wb.kmeans(bg, 5),
        bg,
        0.0,
    ):
        out = fn(exp, f, X, background=masker)
        values = out.values if hasattr(out, "values") else out
        assert np.isfinite(values).all()


@pytest.fixture(scope="module")
def image_case():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 5 * 5, 3)).double().eval()
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    exp = wb.IntegratedGradients(net).explain(x, target=2, baseline=0, steps=8)
    return net, x, exp


def test_image_explanations_get_image_metrics(image_case):
    net, _, exp = image_case
    table = wb.evaluate(exp, net)
    assert list(table.index) == ["deletion", "insertion", "faithfulness_correlation", "infidelity"]
    assert (table["n"] == 4).all()
    # IG of a linear model against the black image is w * x: infidelity 0, correlation 1
    assert abs(table.loc["infidelity", "mean"]) < 1e-20
    np.testing.assert_allclose(table.loc["faithfulness_correlation", "mean"], 1.0, atol=1e-12)


def test_image_metrics_accept_an_image_masker(image_case):
    net, x, exp = image_case
    masker = wb.ImageMasker(segments="grid", n_segments=4, fill="baseline", value=0.0)
    inf = metrics.infidelity(exp, net, x, background=masker, perturbation="subset")
    np.testing.assert_allclose(inf, 0.0, atol=1e-20)  # an additive model, exact values
    table = wb.evaluate(exp, net, x, background=masker)
    assert (table["n"] == 4).all()


def test_max_sensitivity_accepts_images(image_case):
    torch = pytest.importorskip("torch")
    net, x, _ = image_case

    def saliency(images):
        assert isinstance(images, torch.Tensor) and images.shape == x.shape
        return wb.Saliency(net).explain(images, target=2)

    sens = metrics.max_sensitivity(saliency, x, radius=0.1, n_samples=3)
    np.testing.assert_allclose(sens, 0.0, atol=1e-12)  # a linear model's gradient is constant
