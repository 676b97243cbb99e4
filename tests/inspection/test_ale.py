"""ALE against an independent port of ALEPlot (plain loops and pandas) and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.inspection.ale import ale_numeric

N = 400


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(0)
    a = rng.normal(size=N)
    b = 0.6 * a + 0.8 * rng.normal(size=N)  # correlated with a
    c = np.round(rng.uniform(0, 10, N))  # ties at the bin edges
    k = np.where(a + rng.normal(size=N) > 0.5, "hi", np.where(b > 0, "mid", "lo"))
    k = np.where(rng.random(N) < 0.15, "odd", k)
    return pd.DataFrame({"a": a, "b": b, "c": c, "k": pd.Categorical(k)})


LEVEL = {"lo": -1.0, "mid": 0.5, "hi": 2.0, "odd": 4.0}


def f_model(X):
    k = X["k"].astype(object).map(LEVEL).to_numpy(dtype=float)
    return (
        np.sin(X["a"].to_numpy()) * X["b"].to_numpy()
        + 0.1 * X["c"].to_numpy() ** 2
        + k * X["a"].to_numpy()
    )


# ------------------------------------------------------------------ reference (ALEPlot port)
def quantile_type1(x, p):
    """R's quantile(type=1): the smallest order statistic whose ECDF reaches p."""
    xs = sorted(x)
    return xs[max(math.ceil(len(xs) * p), 1) - 1]


def ref_edges(x, K):
    z = [min(x)] + [quantile_type1(x, k / K) for k in range(1, K + 1)]
    return np.array(sorted(set(z)))


def ref_ale_1d(f, X, col, K, rows=None, edges=None):
    X = X if rows is None else X.iloc[rows]
    x = X[col].to_numpy()
    z = ref_edges(x, K) if edges is None else edges
    a1 = pd.cut(x, bins=z, include_lowest=True, labels=False)  # 0-based bin numbers
    X1, X2 = X.copy(), X.copy()
    X1[col], X2[col] = z[a1], z[a1 + 1]
    delta = f(X2) - f(X1)
    means = pd.Series(delta).groupby(a1).mean()
    fj = [0.0]
    for k in range(len(z) - 1):
        fj.append(fj[-1] + means[k])
    fj = np.array(fj)
    counts = np.array([np.sum(a1 == k) for k in range(len(z) - 1)])
    centre = sum((fj[k] + fj[k + 1]) / 2 * counts[k] for k in range(len(counts))) / counts.sum()
    return z, fj - centre, counts


def ref_order(X, col):
    """ALEPlot's category order: KS / frequency distances, then classical MDS in 1-D."""
    levels = sorted(X[col].astype(object).unique())
    K = len(levels)
    D = np.zeros((K, K))
    x = X[col].astype(object)
    for other in X.columns:
        if other == col:
            continue
        v = X[other]
        if isinstance(v.dtype, pd.CategoricalDtype) or v.dtype == object:
            tab = pd.crosstab(x, v.astype(object))
            for i in range(K):
                for j in range(i + 1, K):
                    pi = tab.loc[levels[i]] / (x == levels[i]).sum()
                    pj = tab.loc[levels[j]] / (x == levels[j]).sum()
                    D[i, j] += np.abs(pi - pj).sum() / 2
        else:
            q = np.quantile(v, np.linspace(0, 1, 100))
            for i in range(K):
                for j in range(i + 1, K):
                    vi, vj = v[x == levels[i]].to_numpy(), v[x == levels[j]].to_numpy()
                    Fi = np.array([np.mean(vi <= t) for t in q])
                    Fj = np.array([np.mean(vj <= t) for t in q])
                    D[i, j] += np.max(np.abs(Fi - Fj))
    D = D + D.T
    H = np.eye(K) - np.ones((K, K)) / K
    w, V = np.linalg.eigh(-0.5 * H @ (D**2) @ H)
    coord = V[:, -1] * np.sqrt(w[-1])
    return [levels[i] for i in np.argsort(coord)]


def ref_ale_cat(f, X, col, order):
    K = len(order)
    pos = {c: i for i, c in enumerate(order)}
    x = X[col].astype(object).to_numpy()
    ords = np.array([pos[v] for v in x])
    y0 = f(X)
    sums, cnts = np.zeros(K - 1), np.zeros(K - 1)
    for i in range(len(X)):
        if ords[i] < K - 1:
            Xp = X.iloc[[i]].copy()
            Xp[col] = pd.Categorical([order[ords[i] + 1]], categories=X[col].cat.categories)
            sums[ords[i]] += f(Xp)[0] - y0[i]
            cnts[ords[i]] += 1
        if ords[i] > 0:
            Xm = X.iloc[[i]].copy()
            Xm[col] = pd.Categorical([order[ords[i] - 1]], categories=X[col].cat.categories)
            sums[ords[i] - 1] += y0[i] - f(Xm)[0]
            cnts[ords[i] - 1] += 1
    fj = np.r_[0.0, np.cumsum(sums / cnts)]
    p = np.array([np.mean(ords == k) for k in range(K)])
    return fj - np.sum(fj * p)


def ref_ale_2d(f, X, c1, c2, K):
    x1, x2 = X[c1].to_numpy(), X[c2].to_numpy()
    z1, z2 = ref_edges(x1, K), ref_edges(x2, K)
    K1, K2 = len(z1) - 1, len(z2) - 1
    a1 = pd.cut(x1, bins=z1, include_lowest=True, labels=False)
    a2 = pd.cut(x2, bins=z2, include_lowest=True, labels=False)
    ys = {}
    for s1 in (0, 1):
        for s2 in (0, 1):
            Xc = X.copy()
            Xc[c1], Xc[c2] = z1[a1 + s1], z2[a2 + s2]
            ys[s1, s2] = f(Xc)
    delta = (ys[1, 1] - ys[1, 0]) - (ys[0, 1] - ys[0, 0])
    D = np.full((K1, K2), np.nan)
    b = np.zeros((K1, K2))
    for i in range(K1):
        for j in range(K2):
            m = (a1 == i) & (a2 == j)
            b[i, j] = m.sum()
            if m.any():
                D[i, j] = delta[m].mean()
    r1, r2 = z1[-1] - z1[0], z2[-1] - z2[0]
    full = [(i, j) for i in range(K1) for j in range(K2) if not np.isnan(D[i, j])]
    filled = D.copy()
    for i in range(K1):
        for j in range(K2):
            if np.isnan(D[i, j]):
                best = min(
                    full,
                    key=lambda c: (
                        ((z1[c[0]] + z1[c[0] + 1]) / 2 / r1 - (z1[i] + z1[i + 1]) / 2 / r1) ** 2
                        + ((z2[c[1]] + z2[c[1] + 1]) / 2 / r2 - (z2[j] + z2[j + 1]) / 2 / r2) ** 2
                    ),
                )
                filled[i, j] = D[best]
    fJ = np.zeros((K1 + 1, K2 + 1))
    for i in range(K1):
        for j in range(K2):
            fJ[i + 1, j + 1] = fJ[i, j + 1] + fJ[i + 1, j] - fJ[i, j] + filled[i, j]
    b1, b2 = b.sum(axis=1), b.sum(axis=0)
    d = fJ[1:, :] - fJ[:-1, :]
    ave1 = (b * (d[:, :-1] + d[:, 1:]) / 2).sum(axis=1) / b1
    f1 = np.r_[0, np.cumsum(ave1)]
    d = fJ[:, 1:] - fJ[:, :-1]
    ave2 = (b * (d[:-1, :] + d[1:, :]) / 2).sum(axis=0) / b2
    f2 = np.r_[0, np.cumsum(ave2)]
    fJ = fJ - f1[:, None] - f2[None, :]
    f0 = (b * (fJ[:-1, :-1] + fJ[:-1, 1:] + fJ[1:, :-1] + fJ[1:, 1:]) / 4).sum() / b.sum()
    return (z1, z2), fJ - f0, b


# ------------------------------------------------------------------ against the reference
@pytest.mark.parametrize("col,K", [("a", 20), ("b", 7), ("c", 20)])
def test_numeric_matches_reference(df, col, K):
    ours = wb.ale(f_model, df, col, bins=K)
    z, eff, counts = ref_ale_1d(f_model, df, col, K)
    np.testing.assert_array_equal(ours.grid, z)
    np.testing.assert_array_equal(ours.counts, counts)
    np.testing.assert_allclose(ours.effect, eff, rtol=0, atol=1e-12)
    assert ours.lower is None and ours.upper is None and not ours.categorical


def test_off_by_one_bins_are_caught(df):
    """A broken variant (ties at an edge put in the upper bin) fails the reference check."""
    x = df["c"].to_numpy()
    z, eff, _ = ref_ale_1d(f_model, df, "c", 20)
    bad_b = np.clip(np.searchsorted(z, x, side="right") - 1, 0, len(z) - 2)
    lo, hi = df.copy(), df.copy()
    lo["c"], hi["c"] = z[bad_b], z[bad_b + 1]
    delta = (f_model(hi) - f_model(lo))[:, None]
    broken, _ = ale_numeric(delta, bad_b, len(z) - 1, np.ones(N))
    assert np.abs(broken[:, 0] - eff).max() > 1e-3


def test_categorical_order_and_effects_match_reference(df):
    ours = wb.ale(f_model, df, "k")
    order = ref_order(df, "k")
    assert list(ours.grid) in (order, order[::-1])
    ref = dict(zip(order, ref_ale_cat(f_model, df, "k", order), strict=True))
    got = dict(zip(ours.grid, ours.effect, strict=True))
    for c in ref:  # per-category values do not depend on the direction of the order
        assert got[c] == pytest.approx(ref[c], abs=1e-12)
    counts = df["k"].astype(object).value_counts()
    np.testing.assert_array_equal(ours.counts, [counts[c] for c in ours.grid])


def test_pair_matches_reference(df):
    for K in (4, 12):  # 12 x 12 cells leave some empty: nearest-cell filling
        ours = wb.ale(f_model, df, ("a", "b"), bins=K)
        (z1, z2), eff, b = ref_ale_2d(f_model, df, "a", "b", K)
        np.testing.assert_array_equal(ours.grid[0], z1)
        np.testing.assert_array_equal(ours.grid[1], z2)
        np.testing.assert_array_equal(ours.counts, b)
        np.testing.assert_allclose(ours.effect, eff, rtol=0, atol=1e-11)
    assert (b == 0).any()


def test_bootstrap_band_matches_resampled_reference(df):
    B = 30
    ours = wb.ale(f_model, df, "a", bins=10, n_bootstrap=B, confidence=0.9, random_state=4)
    z, eff, _ = ref_ale_1d(f_model, df, "a", 10)
    np.testing.assert_allclose(ours.effect, eff, atol=1e-12)
    rng = np.random.default_rng(4)
    reps = [
        ref_ale_1d(f_model, df, "a", 10, rows=rng.integers(0, N, N), edges=z)[1] for _ in range(B)
    ]
    reps = np.array(reps)
    np.testing.assert_allclose(ours.lower, np.quantile(reps, 0.05, axis=0), atol=1e-12)
    np.testing.assert_allclose(ours.upper, np.quantile(reps, 0.95, axis=0), atol=1e-12)
    assert np.all(ours.lower <= ours.upper)
    again = wb.ale(f_model, df, "a", bins=10, n_bootstrap=B, confidence=0.9, random_state=4)
    np.testing.assert_array_equal(again.lower, ours.lower)
    cat = wb.ale(f_model, df, "k", n_bootstrap=20, random_state=1)
    assert cat.lower.shape == cat.effect.shape and np.all(cat.lower <= cat.upper + 1e-15)
    pair = wb.ale(f_model, df, ("a", "b"), bins=4, n_bootstrap=10)
    assert pair.lower.shape == pair.effect.shape == (5, 5)


# ------------------------------------------------------------------ closed forms
def test_additive_model_recovers_the_component(df):
    def f(X):
        return np.sin(2 * X["a"].to_numpy()) + X["b"].to_numpy() ** 2

    r = wb.ale(f, df, "a")  # a and b are correlated: ALE still isolates sin(2a)
    diff = r.effect - np.sin(2 * r.grid)
    assert np.ptp(diff) < 1e-12


def test_linear_model_is_the_slope_line(df):
    X = df[["a", "b", "c"]]
    y = 3 * X["a"] - 2 * X["b"] + 0.5 * X["c"]
    lin = LinearRegression().fit(X, y)
    r = wb.ale(lin, X, "b", bins=15)
    np.testing.assert_allclose(np.diff(r.effect) / np.diff(r.grid), lin.coef_[1], rtol=1e-9)
    # centred: the count-weighted mean of the bin midpoints is zero
    mid = (r.effect[:-1] + r.effect[1:]) / 2
    assert abs(np.sum(mid * r.counts)) < 1e-9


def test_product_interaction_recovered_up_to_main_effects():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.uniform(-1, 2, size=(400, 2)), columns=["a", "b"])

    def f(D):
        return D["a"].to_numpy() * D["b"].to_numpy()

    r = wb.ale(f, X, ("a", "b"), bins=5)
    assert r.counts.min() > 0
    R = r.effect - np.outer(*r.grid)  # what is left must be additive: g1(a) + g2(b)
    assert np.abs(R - R.mean(0) - R.mean(1)[:, None] + R.mean()).max() < 1e-12
    # and the first-order effects of the surface were removed: a pure interaction
    assert np.ptp(r.effect) > 0.5


def test_categorical_additive_recovers_levels():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=300), "k": rng.choice(list("pqrs"), 300)})
    h = {"p": 0.0, "q": 1.0, "r": 3.0, "s": -1.0}

    def f(D):
        return D["x"].to_numpy() + D["k"].map(h).to_numpy(dtype=float)

    r = wb.ale(f, X, "k")  # a string column is categorical
    freq = X["k"].value_counts(normalize=True)
    expected = {c: h[c] - sum(h[d] * freq[d] for d in h) for c in h}
    for c, v in zip(r.grid, r.effect, strict=True):
        assert v == pytest.approx(expected[c], abs=1e-12)


def test_similarity_order_follows_the_other_features():
    rng = np.random.default_rng(8)
    centre = {"a": 0.0, "b": 6.0, "c": 2.0, "d": 4.0}
    k = rng.choice(list("abcd"), 500)
    X = pd.DataFrame({"k": k, "x": [centre[v] for v in k] + 0.3 * rng.normal(size=500)})
    r = wb.ale(lambda D: D["x"].to_numpy(), X, "k")
    assert list(r.grid) in (list("acdb"), list("bdca"))


# ------------------------------------------------------------------ models, outputs, plots
def test_multiclass_and_pipeline(df):
    y = np.digitize(df["a"] + df["b"], [-0.5, 0.5])
    m = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(df[["a", "b", "c"]], y)
    r = wb.ale(m, df[["a", "b", "c"]], "a", bins=8)
    assert r.effect.shape == (len(r.grid), 3) and r.output_names == ["0", "1", "2"]
    for k in range(3):

        def fk(X, k=k):
            return m.predict_proba(X)[:, k]

        np.testing.assert_allclose(
            r.effect[:, k], ref_ale_1d(fk, df[["a", "b", "c"]], "a", 8)[1], atol=1e-12
        )
    X = df.assign(k=df["k"].astype(str))
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["k"]), remainder="passthrough"),
        HistGradientBoostingClassifier(max_iter=10, random_state=0),
    ).fit(X, (y > 0).astype(int))
    r = wb.ale(pipe, X, "k")
    order = ref_order(X.assign(k=pd.Categorical(X["k"])), "k")
    assert list(r.grid) in (order, order[::-1])


def test_plot_and_frame(df):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = wb.ale(f_model, df, "a", bins=10, n_bootstrap=10)
    ax = r.plot()
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "ale")
    np.testing.assert_array_equal(line.get_ydata(), r.effect)
    np.testing.assert_array_equal(line.get_xdata(), r.grid)
    assert len(ax.collections) >= 1  # the band
    f = r.to_frame()
    np.testing.assert_array_equal(f["lower"].to_numpy(), r.lower)
    c = wb.ale(f_model, df, "k")
    ax = c.plot()
    np.testing.assert_allclose([p.get_height() for p in ax.patches], c.effect)
    plt.close("all")


# ------------------------------------------------------------------ bad input
def test_bad_input_messages(df):
    with pytest.raises(
        InvalidParameterError, match=r"'zz' is not a column of X.*\['a', 'b', 'c', 'k'\]"
    ):
        wb.ale(f_model, df, "zz")
    with pytest.raises(InvalidParameterError, match="needs two numeric features; \\['k'\\]"):
        wb.ale(f_model, df, ("a", "k"))
    with pytest.raises(InvalidInputError, match="'c' takes a single value"):
        wb.ale(f_model, df.assign(c=1.0), "c")
    with pytest.raises(InvalidParameterError, match="bins must be at least 1"):
        wb.ale(f_model, df, "a", bins=0)
    with pytest.raises(InvalidParameterError, match=r"confidence must be in \(0, 1\)"):
        wb.ale(f_model, df, "a", confidence=1.5)
