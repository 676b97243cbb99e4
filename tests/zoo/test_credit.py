"""Tests of whybox.zoo.credit against closed forms and brute force written here."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.zoo import CreditData, credit, credit_true_logit, credit_true_shap

COLUMNS = [
    "income",
    "debt_to_income",
    "age",
    "months_employed",
    "late_payments",
    "open_credit_lines",
    "credit_utilization",
    "loan_amount",
    "loan_purpose",
]
PURPOSES = ["car", "debt_consolidation", "education", "home_improvement", "small_business"]
NUMERIC = COLUMNS[:-1]


def reference_logit(X: pd.DataFrame) -> np.ndarray:
    """The documented true logit, transcribed independently of the implementation."""
    offset = {
        "car": 0.0,
        "debt_consolidation": 0.3,
        "education": 0.2,
        "home_improvement": -0.2,
        "small_business": 0.6,
    }
    inc = X["income"].to_numpy(float)
    dti = X["debt_to_income"].to_numpy(float)
    age = X["age"].to_numpy(float)
    mon = X["months_employed"].to_numpy(float)
    late = X["late_payments"].to_numpy(float)
    lines = X["open_credit_lines"].to_numpy(float)
    util = X["credit_utilization"].to_numpy(float)
    loan = X["loan_amount"].to_numpy(float)
    purpose = np.array([offset[str(p)] for p in X["loan_purpose"]])
    return (
        -2.45
        - 0.9 * np.log(inc / 48000)
        + 1.2 * dti
        + 0.0012 * (age - 45) ** 2
        - 0.8 * (1 - np.exp(-mon / 36))
        + 1.8 * (1 - np.exp(-0.7 * late))
        + 0.12 * np.maximum(0, lines - 5)
        + 0.8 * util
        + 0.35 * np.log(loan / 15000)
        + purpose
        + 4.0 * dti * util
    )


@pytest.fixture(scope="module")
def big() -> CreditData:
    return credit(n=100_000, random_state=123)


# --- structure --------------------------------------------------------------------------------


def test_columns_dtypes_and_shapes() -> None:
    data = credit(n=500, random_state=1)
    assert isinstance(data, CreditData)
    assert list(data.X.columns) == COLUMNS
    assert data.X.shape == (500, 9)
    assert isinstance(data.X["loan_purpose"].dtype, pd.CategoricalDtype)
    assert list(data.X["loan_purpose"].cat.categories) == PURPOSES
    for c in NUMERIC:
        assert pd.api.types.is_numeric_dtype(data.X[c]), c
    assert isinstance(data.y, pd.Series)
    assert data.y.name == "default"
    assert data.y.shape == (500,)
    assert set(np.unique(data.y)) <= {0, 1}
    assert data.logit.shape == (500,)
    assert list(data.feature_descriptions) == COLUMNS
    assert all(isinstance(v, str) and v for v in data.feature_descriptions.values())
    assert "USD" in data.feature_descriptions["income"]
    assert "default" in data.description


def test_frozen() -> None:
    data = credit(n=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.X = data.X.copy()  # type: ignore[misc]


def test_logit_matches_documented_formula(big: CreditData) -> None:
    ref = reference_logit(big.X)
    np.testing.assert_allclose(big.logit, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(credit_true_logit(big.X), ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(big.true_logit(big.X.iloc[:50]), ref[:50], rtol=0, atol=1e-10)


def test_true_logit_accepts_strings_and_column_order() -> None:
    data = credit(n=200, random_state=2)
    X = data.X[COLUMNS[::-1]].copy()
    X["loan_purpose"] = X["loan_purpose"].astype(str)
    X["extra"] = 1.0
    np.testing.assert_allclose(credit_true_logit(X), reference_logit(data.X), atol=1e-10)


def test_true_logit_categorical_with_other_category_order() -> None:
    data = credit(n=200, random_state=4)
    X = data.X.copy()
    X["loan_purpose"] = X["loan_purpose"].cat.reorder_categories(PURPOSES[::-1])
    np.testing.assert_allclose(credit_true_logit(X), reference_logit(data.X), atol=1e-10)
    X["loan_purpose"] = X["loan_purpose"].cat.add_categories(["boat"])
    X.loc[5, "loan_purpose"] = np.nan
    with pytest.raises(InvalidInputError, match=r"unknown or missing values \['nan'\]"):
        credit_true_logit(X)


# --- generating process -----------------------------------------------------------------------


def test_feature_ranges_and_relations(big: CreditData) -> None:
    X = big.X
    age = X["age"].to_numpy()
    assert age.min() >= 18 and age.max() <= 80
    np.testing.assert_array_equal(age, np.round(age))
    months = X["months_employed"].to_numpy()
    assert months.min() >= 0
    assert np.all(months <= (age - 16) * 12)
    assert np.corrcoef(age, months)[0, 1] > 0.3
    for c in ("months_employed", "late_payments", "open_credit_lines"):
        v = X[c].to_numpy()
        assert v.min() >= 0
        np.testing.assert_array_equal(v, np.round(v))
    dti = X["debt_to_income"].to_numpy()
    assert dti.min() >= 0 and dti.max() <= 0.8
    util = X["credit_utilization"].to_numpy()
    assert util.min() >= 0 and util.max() <= 1
    assert X["loan_amount"].min() >= 1000
    # lognormal income: median about 48k, log-sd about 0.55
    assert 44_000 <= X["income"].median() <= 52_000
    assert 0.5 <= np.log(X["income"]).std() <= 0.6
    # purpose frequencies close to the documented probabilities
    freq = X["loan_purpose"].value_counts(normalize=True).reindex(PURPOSES).to_numpy()
    np.testing.assert_allclose(freq, [0.25, 0.35, 0.10, 0.18, 0.12], atol=0.01)


@pytest.mark.parametrize("seed", [0, 7])
def test_default_rate(seed: int) -> None:
    data = credit(n=20_000, random_state=seed)
    assert 0.20 <= data.y.mean() <= 0.35


def test_labels_are_bernoulli_of_sigmoid_logit(big: CreditData) -> None:
    p = 1 / (1 + np.exp(-reference_logit(big.X)))
    y = big.y.to_numpy()
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for b in range(10):
        m = bins == b
        se = np.sqrt(np.sum(p[m] * (1 - p[m]))) / m.sum()
        assert abs(y[m].mean() - p[m].mean()) < 4.5 * se, b


def test_exactly_one_interaction_by_second_differences() -> None:
    data = credit(n=40, random_state=3)
    X, X2 = data.X.iloc[:20].reset_index(drop=True), data.X.iloc[20:].reset_index(drop=True)

    def replace(cols: list[str]) -> pd.DataFrame:
        out = X.copy()
        for c in cols:
            out[c] = X2[c].to_numpy()
        return out

    f0 = credit_true_logit(X)
    for j, k in itertools.combinations(COLUMNS, 2):
        d2 = (
            credit_true_logit(replace([j, k]))
            - credit_true_logit(replace([j]))
            - credit_true_logit(replace([k]))
            + f0
        )
        if {j, k} == {"debt_to_income", "credit_utilization"}:
            expected = (
                4.0
                * (X2["debt_to_income"] - X["debt_to_income"]).to_numpy()
                * (X2["credit_utilization"] - X["credit_utilization"]).to_numpy()
            )
            assert np.abs(expected).max() > 1e-3
        else:
            expected = np.zeros(len(X))
        np.testing.assert_allclose(d2, expected, rtol=0, atol=1e-10, err_msg=f"{j} x {k}")


# --- exact Shapley values ---------------------------------------------------------------------


def brute_force_shapley(x: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Interventional Shapley values of credit_true_logit for one row by all 2^9 coalitions."""
    p = len(COLUMNS)
    m = len(background)
    masks = np.array(list(itertools.product([False, True], repeat=p)))  # (512, p)
    cols = {}
    for j, c in enumerate(COLUMNS):
        xv = np.asarray(x[c], dtype=object)[0]
        bv = np.asarray(background[c], dtype=object)
        grid = np.where(masks[:, j][:, None], xv, bv[None, :])  # (512, m)
        cols[c] = grid.ravel()
    frame = pd.DataFrame({c: cols[c].astype(float) for c in NUMERIC})
    frame["loan_purpose"] = pd.Categorical(cols["loan_purpose"].astype(str), categories=PURPOSES)
    v = credit_true_logit(frame).reshape(len(masks), m).mean(axis=1)
    index = {tuple(mk): i for i, mk in enumerate(masks.tolist())}
    phi = np.zeros(p)
    for j in range(p):
        for mk in masks.tolist():
            if mk[j]:
                continue
            s = sum(mk)
            weight = math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p)
            with_j = list(mk)
            with_j[j] = True
            phi[j] += weight * (v[index[tuple(with_j)]] - v[index[tuple(mk)]])
    return phi


def test_true_shap_equals_brute_force() -> None:
    data = credit(n=300, random_state=11)
    background = data.X.iloc[:20].reset_index(drop=True)
    # rows chosen to have high debt and utilisation so the interaction term matters
    score = data.X["debt_to_income"] * data.X["credit_utilization"]
    rows = [int(score.iloc[20:].idxmax()), 25, 137]
    phi = credit_true_shap(data.X.iloc[rows], background)
    assert phi.shape == (3, 9)
    for i, r in enumerate(rows):
        expected = brute_force_shapley(data.X.iloc[[r]], background)
        np.testing.assert_allclose(phi[i], expected, rtol=0, atol=1e-10)
    # the interaction's share is not trivially split: phi for dti differs from additive part
    assert np.abs(phi[:, 1]).max() > 0.05


def test_true_shap_efficiency() -> None:
    data = credit(n=2000, random_state=5)
    X, background = data.X.iloc[:200], data.X.iloc[200:1200]
    phi = credit_true_shap(X, background)
    expected = reference_logit(X) - reference_logit(background).mean()
    np.testing.assert_allclose(phi.sum(axis=1), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        data.true_shap(X).sum(axis=1),
        reference_logit(X) - reference_logit(data.X).mean(),
        rtol=0,
        atol=1e-10,
    )


def test_true_shap_single_background_row_is_difference() -> None:
    # with one background row r, phi_j for additive j is g_j(x_j) - g_j(r_j); check the
    # interaction pair against the 2-player closed form computed here
    data = credit(n=10, random_state=9)
    x, r = data.X.iloc[[0]], data.X.iloc[[1]]
    phi = credit_true_shap(x, r)[0]
    a0, b0 = float(x["debt_to_income"].iloc[0]), float(x["credit_utilization"].iloc[0])
    a1, b1 = float(r["debt_to_income"].iloc[0]), float(r["credit_utilization"].iloc[0])
    # f restricted to (dti, util): 1.2 a + 0.8 b + 4 a b

    def h(a: float, b: float) -> float:
        return 1.2 * a + 0.8 * b + 4.0 * a * b

    np.testing.assert_allclose(
        phi[1], 0.5 * ((h(a0, b1) - h(a1, b1)) + (h(a0, b0) - h(a1, b0))), atol=1e-12
    )
    np.testing.assert_allclose(
        phi[6], 0.5 * ((h(a1, b0) - h(a1, b1)) + (h(a0, b0) - h(a0, b1))), atol=1e-12
    )
    inc0, inc1 = float(x["income"].iloc[0]), float(r["income"].iloc[0])
    np.testing.assert_allclose(phi[0], -0.9 * np.log(inc0 / inc1), atol=1e-12)


# --- determinism and validation ---------------------------------------------------------------


def test_determinism() -> None:
    a, b = credit(n=300, random_state=42), credit(n=300, random_state=42)
    pd.testing.assert_frame_equal(a.X, b.X)
    pd.testing.assert_series_equal(a.y, b.y)
    np.testing.assert_array_equal(a.logit, b.logit)
    c = credit(n=300, random_state=43)
    assert not a.X["income"].equals(c.X["income"])
    assert not np.array_equal(a.logit, c.logit)
    d, e = credit(n=300, random_state=None), credit(n=300, random_state=None)
    assert not np.array_equal(d.logit, e.logit)


def test_default_arguments() -> None:
    data = credit()
    assert data.X.shape == (5000, 9)
    pd.testing.assert_frame_equal(data.X, credit(5000, 0).X)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "100", True, None])
def test_bad_n(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"n must be a positive integer.*got"):
        credit(n=bad)  # type: ignore[arg-type]


def test_numpy_integer_n() -> None:
    assert credit(n=np.int64(7)).X.shape == (7, 9)


@pytest.mark.parametrize("bad", [-1, 1.5, "seed", False])
def test_bad_random_state(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"random_state must be None or a non-neg"):
        credit(n=10, random_state=bad)  # type: ignore[arg-type]


def test_true_logit_input_errors() -> None:
    X = credit(n=20).X
    with pytest.raises(InvalidInputError, match=r"missing the column\(s\) \['age'\]"):
        credit_true_logit(X.drop(columns="age"))
    with pytest.raises(InvalidInputError, match="must be a pandas DataFrame"):
        credit_true_logit(X.to_numpy())  # type: ignore[arg-type]
    bad = X.copy()
    bad["loan_purpose"] = bad["loan_purpose"].astype(str)
    bad.loc[3, "loan_purpose"] = "boat"
    with pytest.raises(InvalidInputError, match=r"unknown or missing values \['boat'\]"):
        credit_true_logit(bad)
    bad = X.copy()
    bad.loc[0, "income"] = np.nan
    with pytest.raises(InvalidInputError, match=r"'income'.*NaN"):
        credit_true_logit(bad)
    bad = X.copy()
    bad.loc[0, "loan_amount"] = 0.0
    with pytest.raises(InvalidInputError, match=r"'loan_amount'.*strictly positive"):
        credit_true_logit(bad)
    with pytest.raises(InvalidInputError, match="background has no rows"):
        credit_true_shap(X, X.iloc[:0])
    with pytest.raises(InvalidInputError, match=r"background is missing the column\(s\)"):
        credit_true_shap(X, X.drop(columns=["loan_purpose"]))


def test_fast_for_100k_rows() -> None:
    credit(n=1000)  # warm up
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        credit(n=100_000, random_state=1)
        best = min(best, time.perf_counter() - t0)
    assert best < 1.0
