"""Input and parameter checks: error classes and what their messages say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from whybox._validation import (
    align_columns,
    as_2d_input,
    check_finite,
    check_in,
    check_int,
    check_nonempty,
    check_random_state,
    feature_names_of,
)
from whybox.agnostic.shapley import ExactShap
from whybox.errors import InvalidInputError, InvalidParameterError, ModelCallError, WhyboxError


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "income": [50.0, np.nan, 30.0, np.nan, 70.0, 20.0],
            "age": [30.0, 40.0, np.nan, 50.0, 60.0, 25.0],
            "city": ["a", "b", "c", "a", "b", "c"],
            "n_loans": [0, 1, 2, 0, 1, 3],
        }
    )


# ----------------------------------------------------------------- check_finite
def test_nan_in_dataframe_names_columns_and_rows(frame):
    with pytest.raises(InvalidInputError) as info:
        check_finite(frame)
    msg = str(info.value)
    assert msg.startswith("X contains NaN values in 2 column(s)")
    assert "income (2 rows)" in msg and "age (1 rows)" in msg
    assert "city" not in msg and "n_loans" not in msg
    assert "3 of 6 rows are affected" in msg
    assert "allow_nan=True" in msg


def test_inf_in_dataframe(frame):
    X = frame.fillna(1.0)
    X.loc[4, "age"] = np.inf
    X.loc[5, "age"] = -np.inf
    with pytest.raises(InvalidInputError) as info:
        check_finite(X, name="background")
    msg = str(info.value)
    assert msg.startswith("background contains inf values in 1 column(s): age (2 rows)")
    assert "NaN" not in msg
    assert "2 of 6 rows" in msg


def test_allow_nan_accepts_nan_but_not_inf(frame):
    check_finite(frame, allow_nan=True)  # NaN only: accepted
    X = frame.copy()
    X.loc[0, "income"] = np.inf
    with pytest.raises(InvalidInputError) as info:
        check_finite(X, allow_nan=True)
    msg = str(info.value)
    assert "inf values in 1 column(s): income (1 rows)" in msg
    assert "Replace infinite values" in msg
    with pytest.raises(InvalidInputError, match=r"NaN and inf values in 2 column\(s\)"):
        check_finite(X)


def test_missing_strings_and_categories_are_flagged(frame):
    X = frame.fillna(0.0)
    X["city"] = pd.Categorical(["a", None, "c", "a", "b", "c"])
    X["job"] = pd.Series(["x", "y", None, "x", "y", "x"], dtype="string")
    with pytest.raises(InvalidInputError) as info:
        check_finite(X)
    assert "city (1 rows)" in str(info.value) and "job (1 rows)" in str(info.value)
    check_finite(X, allow_nan=True)


def test_nullable_integer_na_is_flagged():
    X = pd.DataFrame({"k": pd.array([1, None, 3], dtype="Int64"), "b": [True, False, True]})
    with pytest.raises(InvalidInputError, match=r"k \(1 rows\)"):
        check_finite(X)


def test_duplicated_column_names_are_checked_by_position():
    X = pd.DataFrame([[1.0, np.nan], [2.0, 3.0]], columns=["a", "a"])
    with pytest.raises(InvalidInputError, match=r"a \(1 rows\)"):
        check_finite(X)


def test_nan_in_numpy_array_names_x_columns():
    X = np.arange(20, dtype=float).reshape(5, 4)
    X[[0, 3], 1] = np.nan
    X[4, 3] = np.nan
    with pytest.raises(InvalidInputError) as info:
        check_finite(X)
    msg = str(info.value)
    assert "NaN values in 2 column(s): x1 (2 rows), x3 (1 rows)" in msg
    assert "3 of 5 rows" in msg
    check_finite(X, allow_nan=True)
    X[2, 0] = np.inf
    with pytest.raises(InvalidInputError, match=r"inf values in 1 column\(s\): x0 \(1 rows\)"):
        check_finite(X, allow_nan=True)


def test_many_bad_columns_are_summarised():
    X = np.full((2, 25), np.nan)
    with pytest.raises(InvalidInputError) as info:
        check_finite(X)
    assert "x19 (2 rows)" in str(info.value) and "x20" not in str(info.value)
    assert "and 5 more columns" in str(info.value)


def test_object_arrays_flag_missing_and_infinite_entries():
    X = np.array([[1.0, "a"], [None, "b"], [np.inf, "c"]], dtype=object)
    with pytest.raises(InvalidInputError) as info:
        check_finite(X)
    assert "x0 (2 rows)" in str(info.value) and "NaN and inf" in str(info.value)
    X[2, 0] = 3.0
    check_finite(X, allow_nan=True)
    with pytest.raises(InvalidInputError, match=r"NaN values in 1 column\(s\): x0 \(1 rows\)"):
        check_finite(X)


def test_finite_inputs_pass():
    check_finite(np.arange(6).reshape(3, 2))  # integers cannot be NaN
    check_finite(np.ones((3, 2)))
    check_finite(pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]}))


# ----------------------------------------------------------------- shapes
@pytest.mark.parametrize("X", [np.empty((0, 3)), pd.DataFrame({"a": [], "b": []})])
def test_empty_input(X):
    with pytest.raises(InvalidInputError) as info:
        check_nonempty(X, name="X_test")
    msg = str(info.value)
    assert msg.startswith("X_test is empty")
    assert f"(shape {X.shape})" in msg and "no rows" in msg


@pytest.mark.parametrize("X", [np.empty((3, 0)), pd.DataFrame(index=range(3))])
def test_no_columns(X):
    with pytest.raises(InvalidInputError, match=r"X has no columns \(shape \(3, 0\)\)"):
        check_nonempty(X)


def test_as_2d_input_shapes():
    assert as_2d_input([1.0, 2.0, 3.0]).shape == (1, 3)
    row = as_2d_input(pd.Series({"a": 1.0, "b": "x"}))
    assert isinstance(row, pd.DataFrame) and list(row.columns) == ["a", "b"] and len(row) == 1
    df = pd.DataFrame({"a": [1]})
    assert as_2d_input(df) is df
    with pytest.raises(InvalidInputError, match=r"3 dimensions \(shape \(2, 2, 2\)\)"):
        as_2d_input(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidInputError, match="scalar"):
        as_2d_input(5.0)
    with pytest.raises(InvalidInputError, match="could not be read as an array"):
        as_2d_input([[1.0, 2.0], [3.0]])


def test_as_2d_input_refuses_repeated_column_names():
    # pandas itself returns a DataFrame for df["a"] here, which broke the maskers (issue 13)
    df = pd.DataFrame([[1.0, 2.0, 3.0, 4.0]], columns=["a", "b", "a", 1])
    df = pd.concat([df, df.iloc[:, [3]].set_axis(["1"], axis=1)], axis=1)
    with pytest.raises(InvalidInputError) as info:
        as_2d_input(df, name="background")
    msg = str(info.value)
    assert msg.startswith("background has duplicated column names: ['1', 'a']")
    assert "columns.duplicated()" in msg  # what to do


def test_feature_names_of():
    assert feature_names_of(pd.DataFrame({"b": [1], 3: [2]})) == ["b", "3"]
    assert feature_names_of(np.zeros((2, 3))) == ["x0", "x1", "x2"]


# ----------------------------------------------------------------- columns
def test_wrong_number_of_features():
    X = np.zeros((4, 3))
    with pytest.raises(InvalidInputError) as info:
        align_columns(X, None, n_expected=5)
    assert "X has 3 features but the model expects 5" in str(info.value)
    with pytest.raises(InvalidInputError, match=r"expects 2 \(\['u', 'v'\]\)"):
        align_columns(X, ["u", "v"])
    assert align_columns(X, None, n_expected=3) is X
    assert align_columns(X, None) is X


def test_missing_and_unexpected_columns_are_listed(frame):
    expected = ["income", "age", "city", "n_loans", "score"]
    with pytest.raises(InvalidInputError) as info:
        align_columns(frame.drop(columns="age"), expected)
    msg = str(info.value)
    assert "missing columns: ['age', 'score']" in msg
    assert f"Expected exactly: {expected}" in msg
    with pytest.raises(InvalidInputError, match=r"unexpected columns: \['n_loans'\]"):
        align_columns(frame, ["income", "age", "city"])


def test_columns_in_another_order_are_reordered(frame):
    expected = ["n_loans", "city", "age", "income"]
    out = align_columns(frame, expected)
    assert list(out.columns) == expected
    pd.testing.assert_frame_equal(out, frame[expected])
    assert list(frame.columns) == ["income", "age", "city", "n_loans"]  # input untouched
    assert align_columns(frame, list(frame.columns)) is frame


def test_non_string_column_names_match_by_their_string(frame):
    X = frame.rename(columns={"age": 7})
    out = align_columns(X, ["7", "income", "city", "n_loans"])
    assert list(out.columns) == ["7", "income", "city", "n_loans"]
    np.testing.assert_array_equal(out["7"].to_numpy(), frame["age"].to_numpy())


def test_duplicated_columns_are_rejected(frame):
    X = frame[["income", "age", "city", "n_loans", "age"]]
    with pytest.raises(InvalidInputError, match=r"duplicated column names: \['age'\]"):
        align_columns(X, ["income", "age", "city", "n_loans"])


# ----------------------------------------------------------------- parameters
def test_check_int():
    assert check_int("budget", np.int64(7), minimum=1) == 7
    assert type(check_int("budget", np.int64(7))) is int
    for bad in (2.5, "3", True, None):
        with pytest.raises(InvalidParameterError) as info:
            check_int("budget", bad)
        assert f"budget must be an integer, got {bad!r} of type {type(bad).__name__}" in str(
            info.value
        )
    with pytest.raises(InvalidParameterError, match="budget must be at least 10, got 3"):
        check_int("budget", 3, minimum=10)
    with pytest.raises(InvalidParameterError, match="budget must be at most 5, got 6"):
        check_int("budget", 6, maximum=5)


def test_check_in():
    assert check_in("link", "logit", ("identity", "logit")) == "logit"
    with pytest.raises(InvalidParameterError) as info:
        check_in("link", "probit", ("identity", "logit"))
    assert (
        str(info.value) == "link='probit' is not supported. Expected one of: 'identity', 'logit'."
    )
    with pytest.raises(InvalidParameterError, match=r"link=array\(\[1, 2\]\) is not supported"):
        check_in("link", np.array([1, 2]), ("identity", "logit"))


def test_check_random_state():
    a = check_random_state(3).normal(size=4)
    b = check_random_state(np.int64(3)).normal(size=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.random.default_rng(3).normal(size=4))
    g = np.random.default_rng(0)
    assert check_random_state(g) is g
    ss = np.random.SeedSequence(5)
    np.testing.assert_array_equal(
        check_random_state(ss).random(3), np.random.default_rng(np.random.SeedSequence(5)).random(3)
    )
    assert isinstance(check_random_state(None), np.random.Generator)
    with pytest.raises(InvalidParameterError, match="non-negative integer, got -1"):
        check_random_state(-1)
    for bad, type_name in [(1.5, "float"), (np.random.RandomState(0), "RandomState")]:
        with pytest.raises(InvalidParameterError) as info:
            check_random_state(bad)
        msg = str(info.value)
        assert f"got {type_name}" in msg and "SeedSequence" in msg and "Generator" in msg
    with pytest.raises(InvalidParameterError, match="got the bool True"):
        check_random_state(True)


def test_errors_are_builtin_subclasses():
    with pytest.raises(ValueError):
        check_int("n", "x")
    with pytest.raises(WhyboxError):
        check_nonempty(np.empty((0, 2)))


# ----------------------------------------------------------------- through ExactShap
@pytest.fixture
def fitted(credit_frame):
    df, y = credit_frame
    X = df[["income", "age"]].assign(debt=df["income"] * 0.1)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    return model, X


def test_explain_rejects_nan_rows(fitted):
    model, X = fitted
    bad = X.iloc[:5].copy()
    bad.loc[bad.index[[1, 3]], "income"] = np.nan
    with pytest.raises(InvalidInputError) as info:
        ExactShap(model, background=X.iloc[:10]).explain(bad)
    assert "income (2 rows)" in str(info.value) and "2 of 5 rows" in str(info.value)


def test_explain_rejects_inf_even_with_allow_nan(fitted):
    model, X = fitted
    bad = X.iloc[:3].copy()
    bad.loc[bad.index[0], "debt"] = -np.inf
    with pytest.raises(InvalidInputError, match=r"inf values in 1 column\(s\): debt \(1 rows\)"):
        ExactShap(model, background=X.iloc[:10], allow_nan=True).explain(bad)


def test_explain_rejects_nan_in_background(fitted):
    model, X = fitted
    bg = X.iloc[:10].copy()
    bg.loc[bg.index[2], "age"] = np.nan
    with pytest.raises(InvalidInputError, match=r"background contains NaN .* age \(1 rows\)"):
        ExactShap(model, background=bg).explain(X.iloc[:2])


def test_explain_allows_nan_for_models_that_handle_it(credit_frame):
    df, y = credit_frame
    X = df[["income", "age"]].copy()
    X.loc[X.index[:10], "age"] = np.nan
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    exp = ExactShap(model, background=X.iloc[20:40], allow_nan=True).explain(X.iloc[:4])
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X.iloc[:4])[:, 1], atol=1e-12)
    np.testing.assert_allclose(exp.completeness_gap(), 0.0, atol=1e-10)


def test_explain_rejects_empty_input(fitted):
    model, X = fitted
    with pytest.raises(InvalidInputError, match=r"X is empty \(shape \(0, 3\)\)"):
        ExactShap(model, background=X.iloc[:10]).explain(X.iloc[:0])
    with pytest.raises(InvalidInputError, match=r"background is empty"):
        ExactShap(model, background=X.iloc[:0]).explain(X.iloc[:2])


def test_explain_rejects_missing_columns(fitted):
    model, X = fitted
    with pytest.raises(InvalidInputError) as info:
        ExactShap(model, background=X.iloc[:10]).explain(X.iloc[:2].drop(columns="age"))
    assert "missing columns: ['age']" in str(info.value)


def test_explain_reorders_columns(fitted):
    model, X = fitted
    explainer = ExactShap(model, background=X.iloc[:10])
    shuffled = X.iloc[:3][["debt", "income", "age"]]
    exp = explainer.explain(shuffled)
    ref = explainer.explain(X.iloc[:3])
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X.iloc[:3])[:, 1], atol=1e-12)
    # values per name equal the fit-order run, reported in the caller's order and names
    assert exp.feature_names == ["debt", "income", "age"]
    idx = [ref.feature_names.index(c) for c in exp.feature_names]
    np.testing.assert_allclose(exp.values, ref.values[:, idx], atol=1e-12)


def test_explain_wrong_number_of_features_for_numpy_model(fitted):
    model, X = fitted
    model = LogisticRegression(max_iter=1000).fit(X.to_numpy(), model.predict(X))
    with pytest.raises(InvalidInputError, match="2 features but the model expects 3"):
        ExactShap(model, background=X.to_numpy()[:10]).explain(X.to_numpy()[:2, :2])


def test_explain_rejects_unknown_target(fitted):
    model, X = fitted
    with pytest.raises(InvalidParameterError) as info:
        ExactShap(model, background=X.iloc[:10]).explain(X.iloc[:2], target="approved")
    assert "unknown target 'approved'" in str(info.value) and "classes [0, 1]" in str(info.value)


class _RaisingModel:
    classes_ = np.array([0, 1])

    def __init__(self):
        self.error = RuntimeError("the scoring service is down")

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        raise self.error


def test_explain_wraps_model_errors(fitted):
    _, X = fitted
    model = _RaisingModel()
    with pytest.raises(ModelCallError) as info:
        ExactShap(model, background=X.iloc[:10]).explain(X.iloc[:2])
    assert info.value.__cause__ is model.error
    msg = str(info.value)
    assert "RuntimeError" in msg and "scoring service is down" in msg
    assert "test_validation._RaisingModel" in msg
    assert "batch of shape (" in msg and "columns ['income', 'age', 'debt']" in msg


def test_explain_wraps_errors_of_a_callable(fitted):
    _, X = fitted
    err = ZeroDivisionError("division by zero")

    def f(X):
        raise err

    with pytest.raises(ModelCallError) as info:
        ExactShap(f, background=X.to_numpy()[:10]).explain(X.to_numpy()[:2])
    assert info.value.__cause__ is err
    assert "ZeroDivisionError" in str(info.value) and "shape (1, 3)" in str(info.value)


def test_check_keywords_names_closest_constructor_and_shap_spellings():
    from whybox._validation import check_keywords

    allowed = ["budget", "target", "link", "progress", "tolerance"]
    check_keywords({"budget": 1}, allowed, where="KernelShap.explain")  # known: no error
    with pytest.raises(InvalidParameterError, match=r"budjet=\. Did you mean budget=\?"):
        check_keywords({"budjet": 10}, allowed, where="KernelShap.explain")
    with pytest.raises(InvalidParameterError, match=r"nsamples= \(shap's spelling\).*budget="):
        check_keywords({"nsamples": 10}, allowed, where="KernelShap.explain")
    with pytest.raises(
        InvalidParameterError, match=r"belongs to the constructor.*KernelShap\(\.\.\., groups="
    ):
        check_keywords({"groups": {}}, allowed, where="KernelShap.explain", constructor=["groups"])


def test_a_captum_keyword_is_named_as_captums_spelling():
    """The refusal names the library the keyword comes from (not shap for Captum's n_steps)."""
    torch = pytest.importorskip("torch")
    import whybox as wb

    model = torch.nn.Linear(3, 2)
    x = torch.zeros(1, 3)
    with pytest.raises(InvalidParameterError, match=r"n_steps= \(Captum's spelling\)"):
        wb.IntegratedGradients(model).explain(x, target=0, n_steps=5)
    with pytest.raises(InvalidParameterError, match=r"nsamples= \(shap's spelling\)"):
        wb.IntegratedGradients(model).explain(x, target=0, nsamples=5)
