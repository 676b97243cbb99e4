"""Lime and SP-LIME: against lime itself, closed forms, calibration, determinism, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier

import whybox as wb
from whybox.agnostic.lime import Lime, SubmodularPick
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.games.lime import (
    InterpretableSpace,
    bin_edges,
    default_kernel_width,
    fit_surrogate,
    kernel_weights,
    submodular_pick,
)
from whybox.games.maskers import Independent

lime_base = pytest.importorskip("lime.lime_base")
lime_disc = pytest.importorskip("lime.discretize")
lime_tabular = pytest.importorskip("lime.lime_tabular")
lime_sp = pytest.importorskip("lime.submodular_pick")

MODES = ["forward_selection", "highest_weights", "lasso_path", "none", "auto"]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    return X, model


def _neighbourhood(kind: str, seed: int, m: int = 1500, p: int = 12):
    """Samples like lime's: binary (discretised) or standardised, row 0 the explained row."""
    rng = np.random.default_rng(seed)
    if kind == "binary":
        Z = (rng.random((m, p)) < rng.uniform(0.2, 0.8, p)).astype(float)
        Z[0] = 1.0
    else:
        Z = rng.normal(size=(m, p))
    beta = rng.normal(size=p) * np.geomspace(1, 0.05, p)  # strong and weak features
    y = np.tanh(Z @ beta) + 0.4 * Z[:, 0] * Z[:, 1] + 0.05 * rng.normal(size=m)
    d = np.sqrt(((Z - Z[0]) ** 2).sum(axis=1))
    return Z, y, d, default_kernel_width(p)


# ------------------------------------------------------------------ oracle: lime itself
@pytest.mark.parametrize("selection", MODES)
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_surrogate_equals_lime_base(selection, kind):
    for seed, k in ((0, 3), (1, 8)):
        Z, y, d, width = _neighbourhood(kind, seed)
        base = lime_base.LimeBase(lambda dd, w=width: np.sqrt(np.exp(-(dd**2) / w**2)))
        w = kernel_weights(d, width)
        intercept, local, score, pred = base.explain_instance_with_data(
            Z, y[:, None], d, 0, k, feature_selection=selection
        )
        fit = fit_surrogate(Z, y, w, k, selection)
        # the same features, in the order lime's selection returns them
        assert fit.used.tolist() == list(base.feature_selection(Z, y, w, k, selection))
        ref = dict(local)
        assert sorted(ref) == sorted(fit.used.tolist())
        np.testing.assert_allclose([ref[j] for j in fit.used], fit.coef, rtol=0, atol=1e-8)
        assert abs(intercept - fit.intercept) < 1e-8
        assert abs(score - fit.score) < 1e-8
        assert abs(float(np.ravel(pred)[0]) - fit.local_prediction) < 1e-8


def test_forward_selection_skips_constant_and_duplicated_columns():
    Z, y, d, width = _neighbourhood("binary", 3, p=8)
    Z = np.column_stack([Z, np.ones(len(Z)), Z[:, 0]])  # a constant column and a duplicate
    w = kernel_weights(d, width)
    base = lime_base.LimeBase(lambda dd: np.sqrt(np.exp(-(dd**2) / width**2)))
    fit = fit_surrogate(Z, y, w, 4, "forward_selection")
    assert fit.used.tolist() == list(base.forward_selection(Z, y, w, 4))
    assert 8 not in fit.used and 9 not in fit.used


def test_bin_edges_and_names_equal_lime_discretizers(cancer):
    X, _ = cancer
    X = X.copy()
    X[:, 3] = np.round(X[:, 3], -3)  # heavy ties: repeated percentiles are dropped
    names = [f"x{j}" for j in range(X.shape[1])]  # whybox's names of array columns
    for kind, cls in (
        ("quartile", lime_disc.QuartileDiscretizer),
        ("decile", lime_disc.DecileDiscretizer),
    ):
        disc = cls(X, [], names)
        space = InterpretableSpace(Independent(X, max_samples=len(X)), kind, set())
        for j in range(X.shape[1]):
            edges = bin_edges(X[:, j], kind)
            np.testing.assert_array_equal(edges, disc.mins[j][1:])
            np.testing.assert_array_equal(edges, disc.maxs[j][:-1])
            # the space's edges (all columns in one np.percentile) are lime's, bit for bit
            np.testing.assert_array_equal(space.edges[j], disc.mins[j][1:])
            assert space.bin_names[j] == disc.names[j]


def test_interpretable_samples_are_lime_bins(cancer):
    X, _ = cancer
    disc = lime_disc.QuartileDiscretizer(X, [], [str(j) for j in range(X.shape[1])])
    space = InterpretableSpace(Independent(X, max_samples=len(X)), "quartile", set())
    for i in (0, 7):
        data, Z = space.sample(X[i], 400, np.random.default_rng(i))
        np.testing.assert_array_equal(data[0], X[i])
        np.testing.assert_array_equal(Z, disc.discretize(data) == disc.discretize(X[i]))
        # every sampled value is a background value of its column
        assert all(np.isin(data[:, j], X[:, j]).all() for j in range(X.shape[1]))


def test_kernel_equals_lime_default_kernel(cancer):
    X, _ = cancer
    ref = lime_tabular.LimeTabularExplainer(X, random_state=0).base.kernel_fn
    d = np.linspace(0, 10, 101)
    np.testing.assert_allclose(kernel_weights(d, default_kernel_width(X.shape[1])), ref(d))


def test_end_to_end_agrees_with_lime_on_a_binned_model():
    # a model that depends on x only through its quartile bins: lime's truncated-normal values
    # and whybox's background values give the same interpretable samples in distribution,
    # so the two estimates differ by sampling noise only
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)) * [1, 2, 0.5, 1, 3, 1] + np.arange(6)
    edges = [bin_edges(X[:, j], "quartile") for j in range(6)]
    a = rng.normal(size=(6, 4))

    def f(Z):
        B = np.stack([np.searchsorted(edges[j], np.asarray(Z)[:, j]) for j in range(6)], 1)
        return sum(a[j][B[:, j]] for j in range(6)) + 0.8 * (B[:, 0] == B[:, 1])

    ex = lime_tabular.LimeTabularExplainer(
        X, mode="regression", random_state=0, feature_selection="none"
    )
    exp = Lime(f, background=X, n_features=6, feature_selection="none").explain(X[:3], budget=5000)
    for i in range(3):
        ref = dict(ex.explain_instance(X[i], f, num_features=6, num_samples=5000).as_map()[1])
        diff = np.array([ref[j] for j in range(6)]) - exp.values[i]
        assert np.all(np.abs(diff) < 4 * np.sqrt(2) * exp.std[i] + 1e-3), diff / exp.std[i]


# ------------------------------------------------------------------ closed form, calibration
def _noisy_linear(w):
    # a linear model plus deterministic, high-frequency "noise" with no local linear trend
    return lambda Z: Z @ w + 0.3 * np.sin(1e4 * Z.sum(axis=1))


def test_linear_model_recovers_w_times_std():
    # discretize=None: the interpretable feature is (x - mean) / std, so LIME's coefficient of
    # feature j is w_j * std_j, up to sampling noise (reported std) and a tiny ridge shrinkage
    rng = np.random.default_rng(1)
    X = rng.normal(loc=2.0, scale=[1.0, 3.0, 0.5], size=(2000, 3))
    w = np.array([1.5, -0.5, 4.0])
    rows = X[:4]
    exp = Lime(
        _noisy_linear(w), background=X, discretize=None, feature_selection="none", n_features=3
    ).explain(rows, budget=5000)
    scaled = (rows - X.mean(0)) / X.std(0)
    coef, se = exp.values / scaled, exp.std / np.abs(scaled)
    z = (coef - w * X.std(0)) / se
    assert np.all(np.abs(z) < 4), z
    assert np.all(se < 0.02)
    assert all(0.9 < f < 1 for f in exp.meta["fidelity"])


def test_standard_errors_are_calibrated():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 3))

    def f(Z):
        return np.sin(2 * Z[:, 0]) + Z[:, 1] ** 2 + (Z[:, 2] > 0.3) + 0.5 * Z[:, 0] * Z[:, 2]

    vals, stds = [], []
    for seed in range(40):
        exp = Lime(f, background=X, feature_selection="none", random_state=seed).explain(
            X[:1], budget=600
        )
        vals.append(exp.values[0])
        stds.append(exp.std[0])
    ratio = np.std(vals, axis=0, ddof=1) / np.mean(stds, axis=0)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


# ------------------------------------------------------------------ determinism
def test_seeded_and_backend_independent(cancer):
    X, model = cancer
    rows = X[:4]
    a = Lime(model, background=X, n_features=5, random_state=3).explain(rows, budget=800, target=1)
    b = Lime(model, background=X, n_features=5, random_state=3).explain(rows, budget=800, target=1)
    for attr in ("values", "std", "base_values", "predictions"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.meta == b.meta
    procs = Lime(model, background=X, n_features=5, random_state=3, n_jobs=2, chunk_size=1)
    c = procs.explain(rows, budget=800, target=1)
    np.testing.assert_array_equal(a.values, c.values)
    np.testing.assert_array_equal(a.std, c.std)
    alone = Lime(model, background=X, n_features=5, random_state=3).explain(
        rows[2], budget=800, target=1
    )
    np.testing.assert_array_equal(alone.values[0], a.values[2])
    other = Lime(model, background=X, n_features=5, random_state=4).explain(
        rows, budget=800, target=1
    )
    assert not np.array_equal(a.values, other.values)
    assert (np.count_nonzero(a.values, axis=1) == 5).all()
    assert a.n_evals == 800 and a.params["budget"] == 800
    assert a.params["kernel_width"] == pytest.approx(0.75 * np.sqrt(30))
    assert a.params["feature_selection"] == "auto" and a.params["discretize"] == "quartile"
    assert a.params["n_features"] == 5 and "class 1" in a.params["output"]


def test_top5_identical_over_five_runs(cancer):
    X, model = cancer
    tops = {
        tuple(
            frozenset(np.argsort(-np.abs(v))[:5])
            for v in Lime(model, background=X, n_features=5, random_state=0)
            .explain(X[:5], budget=1500, target=1)
            .values
        )
        for _ in range(5)
    }
    assert len(tops) == 1


def test_model_calls_chunked_by_chunk_bytes(cancer):
    X, model = cancer
    calls = []

    def f(Z):
        calls.append(len(Z))
        return model.predict_proba(Z)[:, 1]

    a = Lime(f, background=X, n_features=3).explain(X[:2], budget=500)
    small = Lime(f, background=X, n_features=3, chunk_bytes=100 * 8 * 30).explain(X[:2], budget=500)
    np.testing.assert_array_equal(a.values, small.values)
    assert max(calls[-11:]) <= 100  # 5 calls per row, and the predictions


# ------------------------------------------------------------------ outputs and inputs
def test_multi_output_fits_each_output():
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    exp = Lime(model, background=X, n_features=2).explain(X[:3], budget=600, target="all")
    assert exp.values.shape == (3, 4, 3) and exp.base_values.shape == (3, 3)
    assert len(exp.meta["fidelity"][0]) == 3
    one = Lime(model, background=X, n_features=2).explain(X[:3], budget=600, target=1)
    np.testing.assert_array_equal(exp.values[..., 1], one.values)
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X[:3]))
    np.testing.assert_allclose(
        exp.meta["local_prediction"][0][1],
        exp.base_values[0, 1] + exp.values[0, :, 1].sum(),
    )


def test_dataframe_keeps_dtypes_and_reads_categories():
    rng = np.random.default_rng(2)
    n = 400
    df = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "count": rng.integers(0, 5, n),
            "cat": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "job": rng.choice(["clerk", "nurse"], n).astype(object),
            "flag": rng.random(n) < 0.5,
        }
    )
    seen = []

    def f(Z):
        seen.append(Z.dtypes.copy())
        return Z["num"].to_numpy() + 2.0 * (Z["cat"] == "b").to_numpy() + Z["flag"].to_numpy()

    rows = df.iloc[:6]
    exp = Lime(
        f, background=df, n_features=5, feature_selection="none", categorical_features=["count"]
    ).explain(rows, budget=800)
    assert seen[-2].equals(df.dtypes)  # the samples of the last row
    is_b = (rows["cat"] == "b").to_numpy()
    # x's category is worth about +2 against the others when it is "b", about -1 when not
    assert np.all(np.where(is_b, exp.values[:, 2] > 1.5, exp.values[:, 2] < -0.5))
    assert np.all(np.abs(exp.values[:, 3]) < 0.2)  # job does not matter
    assert exp.meta["conditions"][0][2] == f"cat={rows['cat'].iloc[0]}"
    assert exp.meta["conditions"][0][1] == f"count={rows['count'].iloc[0]}"
    assert exp.meta["conditions"][0][0].count("num") == 1


def test_missing_values_form_their_own_bin():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    X[::4, 0] = np.nan
    f = lambda Z: np.nan_to_num(Z[:, 0], nan=5.0) + Z[:, 1]  # noqa: E731
    exp = Lime(f, background=X, allow_nan=True, feature_selection="none").explain(
        X[:2], budget=1000
    )
    assert exp.meta["conditions"][0][0] == "x0 is missing"
    assert exp.values[0, 0] > 2  # missing x0 means 5: well above what others give
    with pytest.raises(InvalidInputError, match="discretize=None"):
        Lime(f, background=X, allow_nan=True, discretize=None).explain(X[:1], budget=100)


def test_registered_and_explain_api(cancer):
    X, model = cancer
    assert "lime" in wb.available_methods() and wb.Lime is Lime
    exp = wb.explain(model, X[:2], method="lime", background=X, budget=300, n_features=4)
    assert exp.method == "lime" and exp.n_evals == 300 and exp.values.shape == (2, 30)
    assert len(exp.meta["fidelity"]) == 2 and 0 < exp.meta["fidelity_mean"] <= 1


# ------------------------------------------------------------------ SP-LIME
def _lime_greedy(W, n_picks):
    """lime's greedy loop, as in lime/submodular_pick.py."""
    importance = np.sum(abs(W), axis=0) ** 0.5
    remaining, V = set(range(len(W))), []
    for _ in range(n_picks):
        best, best_ind = 0, None
        for i in remaining:
            current = np.dot((np.sum(abs(W)[V + [i]], axis=0) > 0), importance)  # noqa: RUF005
            if current >= best:
                best, best_ind = current, i
        V.append(best_ind)
        remaining -= {best_ind}
    return V


class _FakeExplanation:
    mode = "classification"

    def __init__(self, row):
        self.row = row

    def available_labels(self):
        return [1]

    def as_list(self, label):
        return [(f"f{j}", v) for j, v in enumerate(self.row) if v != 0]


class _FakeExplainer:
    """Hands lime's SubmodularPick a given explanation matrix."""

    def __init__(self, W):
        self.W = W

    def explain_instance(self, row, predict_fn, **kwargs):
        return _FakeExplanation(self.W[int(row[0])])


def test_submodular_pick_by_hand():
    W = np.array([[1.0, 0, 0], [0, 2.0, 2.0], [1.0, 1.0, 0], [0, 0, 3.0]])
    picked, coverage, imp = submodular_pick(W, 3)
    np.testing.assert_allclose(imp, np.sqrt([2.0, 3.0, 5.0]))
    # row 1 covers features 1 and 2 (sqrt3 + sqrt5); rows 0 and 2 then both add feature 0:
    # the tie goes to the higher index (lime's >=); then only row 3 adds nothing, vs row 0
    assert picked == [1, 2, 3]
    np.testing.assert_allclose(coverage, [np.sqrt(3) + np.sqrt(5), imp.sum(), imp.sum()])


@pytest.mark.parametrize("seed", range(4))
def test_submodular_pick_equals_lime(seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(12, 7)) * (rng.random((12, 7)) < 0.3)
    n_picks = 6
    sp = lime_sp.SubmodularPick(
        _FakeExplainer(W), np.arange(12)[:, None], None, method="full", num_exps_desired=n_picks
    )
    picked, coverage, _ = submodular_pick(W, n_picks)
    assert picked == sp.V == _lime_greedy(W, n_picks)
    assert np.all(np.diff(coverage) >= 0)


def test_sp_lime_explainer(cancer):
    X, model = cancer
    sp = SubmodularPick(model, background=X, n_features=4, random_state=0)
    exp = sp.explain(X[:8], n_picks=3, budget=500, target=1)
    full = Lime(model, background=X, n_features=4).explain(X[:8], budget=500, target=1)
    picked = exp.meta["picked_indices"]
    assert picked == submodular_pick(full.values, 3)[0]
    np.testing.assert_array_equal(exp.values, full.values[picked])
    assert exp.meta["fidelity"] == [full.meta["fidelity"][i] for i in picked]
    assert exp.meta["coverage"] == sorted(exp.meta["coverage"])
    np.testing.assert_allclose(
        exp.meta["global_importance"], np.sqrt(np.abs(full.values).sum(axis=0))
    )


# ------------------------------------------------------------------ bad inputs
def test_bad_parameters_raise_clear_errors(cancer):
    X, model = cancer
    with pytest.raises(InvalidParameterError, match="minimum of 7 samples"):
        Lime(model, background=X, n_features=5).explain(X[:1], budget=6)
    with pytest.raises(InvalidParameterError, match="minimum of 32 samples"):
        Lime(model, background=X, feature_selection="none").explain(X[:1], budget=31)
    with pytest.raises(InvalidParameterError, match="budget must be an integer"):
        Lime(model, background=X).explain(X[:1], budget=100.0)
    with pytest.raises(InvalidParameterError, match="n_features must be at least 1"):
        Lime(model, n_features=0)
    for width in (-1.0, 0, float("nan"), True, "wide"):
        with pytest.raises(InvalidParameterError, match="kernel_width must be a positive"):
            Lime(model, kernel_width=width)
    with pytest.raises(InvalidParameterError, match="discretize='octile' is not supported"):
        Lime(model, discretize="octile")
    with pytest.raises(InvalidParameterError, match=r"feature_selection='best'.*forward_selection"):
        Lime(model, feature_selection="best")
    with pytest.raises(InvalidParameterError, match="ridge_alpha must be a finite number >= 0"):
        Lime(model, ridge_alpha=-1.0)
    with pytest.raises(InvalidParameterError, match="does not support groups"):
        Lime(model, groups={"a": ["x0", "x1"]})
    with pytest.raises(InvalidParameterError, match="not a column"):
        Lime(model, background=X, categorical_features=["age"]).explain(X[:1], budget=100)
    with pytest.raises(InvalidParameterError, match="position 30"):
        Lime(model, background=X, categorical_features=[30]).explain(X[:1], budget=100)
    with pytest.raises(InvalidParameterError, match=r"positions \(int\) or names"):
        Lime(model, categorical_features=[1.5])
    with pytest.raises(InvalidParameterError, match="background has 1 row"):
        Lime(model, background=wb.Baseline(X.mean(0))).explain(X[:1], budget=100)
    with pytest.raises(InvalidInputError, match="Z of shape"):
        fit_surrogate(np.ones((5, 2)), np.ones(4), np.ones(5), 1)


def test_sp_lime_bad_inputs(cancer):
    X, model = cancer
    sp = SubmodularPick(model, background=X)
    with pytest.raises(InvalidParameterError, match="n_picks=3 is more than the 2 rows"):
        sp.explain(X[:2], n_picks=3, budget=100, target=1)
    with pytest.raises(InvalidParameterError, match="n_picks must be at least 1"):
        sp.explain(X[:2], n_picks=0)
    with pytest.raises(InvalidParameterError, match="one output"):
        sp.explain(X[:2], n_picks=1, budget=100, target="all")
    with pytest.raises(InvalidParameterError, match="n_picks=4 is more than the 3"):
        submodular_pick(np.ones((3, 2)), 4)
    with pytest.raises(InvalidInputError, match="2-D"):
        submodular_pick(np.ones(3), 1)
