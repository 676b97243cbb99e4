"""Lime's batched path: the perturbations of many rows in one model call, their surrogates in
one stacked fit. Oracles: the per-row reference (``InterpretableSpace.sample`` +
``fit_surrogates``, one row at a time), lime's own ``LimeBase`` on the same samples, and
``np.linalg.lstsq``; batches of 1, 7 and all rows must agree bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier

from whybox.agnostic.lime import Lime
from whybox.errors import InvalidParameterError
from whybox.games._lime_batch import _stacked_solve, fit_batch
from whybox.games.lime import default_kernel_width, fit_surrogates, kernel_weights
from whybox.parallel import row_generator

BUDGET = 300


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    return X, model


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    return X, model


def _same(a, b):
    for attr in ("values", "std", "base_values", "predictions"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.meta == b.meta


def _explain(model, X, rows, max_batch_rows, **kw):
    target = kw.pop("target", "all")
    ex = Lime(model, background=X, random_state=7, max_batch_rows=max_batch_rows, **kw)
    return ex.explain(rows, budget=BUDGET, target=target), ex


CONFIGS = [
    {"n_features": 2},  # forward selection
    {"n_features": 3, "discretize": None},
    {"n_features": 4, "feature_selection": "none", "discretize": "decile"},
    {"n_features": 3, "feature_selection": "highest_weights"},
    {"n_features": 2, "feature_selection": "lasso_path"},
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_batch_size_does_not_change_results(iris, kw):
    X, model = iris
    rows = X[::9][:15]
    full, _ = _explain(model, X, rows, None, **dict(kw))
    for cap in (BUDGET, 7 * BUDGET, 7 * BUDGET + 5, BUDGET // 2 + 1):  # 1, 7, 7, split rows
        other, _ = _explain(model, X, rows, cap, **dict(kw))
        _same(full, other)
    alone, _ = _explain(model, X, rows[4], None, **dict(kw))
    np.testing.assert_array_equal(alone.values[0], full.values[4])
    np.testing.assert_array_equal(alone.std[0], full.std[4])


@pytest.mark.parametrize("kw", CONFIGS)
def test_equals_the_per_row_reference(iris, kw):
    """Each row's values equal a per-row run: its own samples (seeded by the row), one model
    call, ``fit_surrogates`` -- to 1e-12 (in practice bit for bit)."""
    X, model = iris
    rows = X[[0, 51, 102, 77, 13, 140, 99, 25]]
    exp, ex = _explain(model, X, rows, 3 * BUDGET, **dict(kw))
    space = ex._space[1]
    width = default_kernel_width(space.p)
    for i, x in enumerate(rows):
        data, Z = space.sample(x, BUDGET, row_generator(7, x))
        fits = fit_surrogates(
            Z,
            model.predict_proba(data),
            width,
            kw["n_features"],
            kw.get("feature_selection", "auto"),
        )
        for o, fit in enumerate(fits):
            ref = np.zeros(space.p)
            ref[fit.used] = fit.coef * Z[0, fit.used]
            np.testing.assert_allclose(exp.values[i, :, o], ref, rtol=0, atol=1e-12)
            ref_std = np.zeros(space.p)
            ref_std[fit.used] = fit.std * np.abs(Z[0, fit.used])
            np.testing.assert_allclose(exp.std[i, :, o], ref_std, rtol=0, atol=1e-12)
            assert abs(exp.base_values[i, o] - fit.intercept) <= 1e-12
            assert abs(exp.meta["fidelity"][i][o] - fit.score) <= 1e-12
            assert abs(exp.meta["local_prediction"][i][o] - fit.local_prediction) <= 1e-12
            names = [space.names[j] for j in fit.used]
            assert exp.meta["selected_features"][i][o] == names


def test_batched_samples_equal_per_row_samples(cancer):
    X, model = cancer
    ex = Lime(model, background=X, random_state=3)
    ex.explain(X[:1], budget=50, target=1)
    space = ex._space[1]
    xs = [X[i] for i in (3, 40, 41, 500, 7, 8, 9)]
    data, Z = space.sample_batch(xs, 400, [row_generator(3, x) for x in xs])
    assert data.shape == (7 * 400, 30) and Z.shape == (7, 400, 30)
    for r, x in enumerate(xs):
        d1, z1 = space.sample(x, 400, row_generator(3, x))
        np.testing.assert_array_equal(data[r * 400 : (r + 1) * 400], d1)
        np.testing.assert_array_equal(Z[r], z1)
        # against the definition: feature j is 1 when the sample's value is in x's quartile bin
        bins = np.stack(
            [np.searchsorted(space.edges[j], d1[:, j], side="left") for j in range(30)], 1
        )
        x_bins = [np.searchsorted(space.edges[j], x[j], side="left") for j in range(30)]
        np.testing.assert_array_equal(z1, (bins == x_bins).astype(float))


def test_compact_samples_fit_as_float_samples(cancer):
    """uint8 interpretable samples (``compact=True``, what Lime uses) hold the float samples'
    values, and the fit on them (kernel weights looked up by each sample's count) is the fit on
    the float samples with the distances computed in full, bit for bit."""
    X, model = cancer
    X = X.copy()
    X[::5, 2] = np.nan  # a column with missing values: its edges computed on their own
    ex = Lime(model, background=X, random_state=3, allow_nan=True)
    ex.explain(X[1:2], budget=50, target=1)
    space = ex._space[1]
    xs = [X[i] for i in (0, 40, 300)]
    data, Z = space.sample_batch(xs, 500, [row_generator(3, x) for x in xs])
    data8, Z8 = space.sample_batch(xs, 500, [row_generator(3, x) for x in xs], compact=True)
    assert Z8.dtype == np.uint8 and Z.dtype == np.float64
    np.testing.assert_array_equal(Z8, Z)
    np.testing.assert_array_equal(data8, data)
    Y = model.predict_proba(data).reshape(3, 500, 2)
    width = default_kernel_width(30)
    ref = fit_batch(Z, Y, width, 4, "forward_selection", binary=False)
    for fit in (fit_batch(Z8, Y, width, 4, binary=True), fit_batch(Z, Y, width, 4, binary=True)):
        for attr in ("values", "std", "intercept", "score", "local_prediction"):
            np.testing.assert_array_equal(getattr(fit, attr), getattr(ref, attr))
    # the explained row's bins (a padded edge table) against np.searchsorted, edges included
    x = X[0].copy()
    x[5], x[6], x[7] = space.edges[5][1], np.nan, np.inf
    codes = space.x_codes(list(x))
    for j in range(30):
        want = -1 if np.isnan(x[j]) else np.searchsorted(space.edges[j], x[j], side="left")
        assert codes[j] == want


def test_model_sees_many_rows_per_call(cancer):
    X, model = cancer
    calls = []

    def f(Z):
        calls.append(len(Z))
        return model.predict_proba(Z)[:, 1]

    base = Lime(f, background=X, n_features=3).explain(X[:12], budget=500)
    assert calls[-2:] == [12 * 500, 12]  # one call for all perturbations, then predictions
    calls.clear()
    small = Lime(f, background=X, n_features=3, max_batch_rows=1600).explain(X[:12], budget=500)
    assert calls[-5:] == [1500] * 4 + [12]  # three rows per call (after a one-row probe)
    _same(base, small)
    calls.clear()
    tiny = Lime(f, background=X, n_features=3, max_batch_rows=200).explain(X[:2], budget=500)
    assert calls[-7:] == [200, 200, 100] * 2 + [2]  # a row's samples split above the cap
    _same(Lime(f, background=X, n_features=3).explain(X[:2], budget=500), tiny)
    # chunk_bytes bounds a batch when max_batch_rows is not given
    calls.clear()
    Lime(f, background=X, n_features=3, chunk_bytes=1000 * 30 * 8 * 4).explain(X[:6], budget=500)
    assert max(calls) < 6 * 500 and len(calls) > 2


def test_per_row_targets_batched(iris):
    X, model = iris
    rows = X[[0, 60, 120, 1, 61]]
    targets = np.array([0, 1, 2, 2, 0])
    exp = Lime(model, background=X, n_features=2).explain(rows, budget=BUDGET, target=targets)
    assert exp.values.shape == (5, 4)
    for i, t in enumerate(targets):
        one = Lime(model, background=X, n_features=2).explain(rows[i], budget=BUDGET, target=int(t))
        np.testing.assert_array_equal(exp.values[i], one.values[0])
        np.testing.assert_array_equal(exp.std[i], one.std[0])
        assert exp.meta["fidelity"][i] == one.meta["fidelity"][0]


def test_dataframe_with_categories_batched():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=200),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], 200)),
            "s": rng.choice(["u", "v"], 200).astype(object),
            "i": rng.integers(0, 4, 200),
        }
    )

    def f(D):
        return D["a"].to_numpy() + 2.0 * (D["c"] == "x").to_numpy() + (D["s"] == "u") + D["i"]

    for disc in ("quartile", None):
        kw = {"n_features": 3, "discretize": disc, "random_state": 1}
        full = Lime(f, background=df, **kw).explain(df.iloc[:9], budget=BUDGET)
        ones = Lime(f, background=df, max_batch_rows=BUDGET, **kw).explain(
            df.iloc[:9], budget=BUDGET
        )
        _same(full, ones)


def test_progress_reports_batches(cancer):
    X, model = cancer
    seen = []
    exp = Lime(model, background=X, n_features=3, max_batch_rows=1000).explain(
        X[:5], budget=300, target=1, progress=lambda d, n: seen.append((d, n))
    )
    assert seen[-1] == (5, 5) and len(seen) == 2  # batches of 3 rows
    plain = Lime(model, background=X, n_features=3).explain(X[:5], budget=300, target=1)
    _same(exp, plain)


def test_fit_batch_equals_lime_base_on_each_row():
    """The stacked fit of several rows equals lime's own LimeBase on each row's samples."""
    lime_base = pytest.importorskip("lime.lime_base")
    rng = np.random.default_rng(4)
    R, m, p = 6, 800, 9
    Z = (rng.random((R, m, p)) < 0.4).astype(float)
    Z[:, 0] = 1.0
    beta = rng.normal(size=(R, p, 2))
    Y = np.tanh(Z @ beta) + 0.05 * rng.normal(size=(R, m, 2))
    width = default_kernel_width(p)
    fit = fit_batch(Z, Y, width, 3, "forward_selection", binary=True)
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / width**2)))
    for r in range(R):
        d = np.sqrt(((Z[r] - Z[r, 0]) ** 2).sum(axis=1))
        for o in range(2):
            intercept, local, score, _ = base.explain_instance_with_data(
                Z[r], Y[r], d, o, 3, feature_selection="forward_selection"
            )
            ref = np.zeros(p)
            for j, c in local:
                ref[j] = c
            np.testing.assert_allclose(fit.values[r, :, o], ref, rtol=0, atol=1e-8)
            assert abs(fit.intercept[r, o] - intercept) < 1e-8
            assert abs(fit.score[r, o] - score) < 1e-8
    # binary=True only changes how the distances are computed, not the numbers
    general = fit_batch(Z, Y, width, 3, "forward_selection")
    np.testing.assert_array_equal(general.values, fit.values)
    np.testing.assert_array_equal(kernel_weights(np.sqrt(p - Z.sum(2)), width).shape, (R, m))


def test_stacked_solve_singular_falls_back_alone():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 3, 3))
    A = A @ np.swapaxes(A, 1, 2) + np.eye(3)
    B = rng.normal(size=(4, 3, 2))
    ok = _stacked_solve(A, B)
    A2 = A.copy()
    A2[2] = np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])  # rank one: singular
    out = _stacked_solve(A2, B)
    for i in (0, 1, 3):  # the others keep their LU solution, bit for bit
        np.testing.assert_array_equal(out[i], ok[i])
    np.testing.assert_allclose(out[2], np.linalg.lstsq(A2[2], B[2], rcond=None)[0], atol=1e-12)


def test_bad_max_batch_rows(iris):
    X, model = iris
    for bad in (0, -5, 2.5, "all", True):
        with pytest.raises(InvalidParameterError, match="max_batch_rows"):
            Lime(model, background=X, max_batch_rows=bad)
