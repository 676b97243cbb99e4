"""wrap_model: every adapter checked against the model's own predictions."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.models import ModelFunction, describe_outputs, wrap_model

EXACT = {"rtol": 0, "atol": 1e-12}


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    return data.data, data.target, data.target_names


@pytest.fixture(scope="module")
def iris_forest(iris):
    X, y, _ = iris
    return RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, y)


def logit(p):
    return np.log(p / (1 - p))


# ----------------------------------------------------------------- sklearn binary
def test_binary_classifier_defaults_to_positive_class(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    fn = wrap_model(model)
    assert isinstance(fn, ModelFunction)
    assert fn.single_output is True
    assert fn.kind == "probability"
    assert fn.output_indices == [1]
    assert fn.output_names == ["1"]
    assert fn.output_description == "probability of class 1"
    assert fn.model_type == "sklearn.linear_model._logistic.LogisticRegression"
    assert fn.n_features_in == 4 and fn.feature_names_in is None
    out = fn(X)
    assert out.shape == (80, 1) and out.dtype == np.float64
    np.testing.assert_allclose(out[:, 0], model.predict_proba(X)[:, 1], **EXACT)


def test_binary_classifier_string_labels(binary_data):
    X, y = binary_data
    labels = np.where(y == 1, "denied", "approved")
    model = LogisticRegression().fit(X, labels)
    proba = model.predict_proba(X)
    assert list(model.classes_) == ["approved", "denied"]

    default = wrap_model(model)
    assert default.output_names == ["denied"]
    assert "denied" in default.output_description
    np.testing.assert_allclose(default(X)[:, 0], proba[:, 1], **EXACT)

    approved = wrap_model(model, target="approved")
    assert approved.single_output and approved.output_names == ["approved"]
    assert approved.output_description == "probability of class approved"
    np.testing.assert_allclose(approved(X)[:, 0], proba[:, 0], **EXACT)

    by_index = wrap_model(model, target=0)  # no label 0: an index
    assert by_index.output_names == ["approved"]
    np.testing.assert_allclose(by_index(X)[:, 0], proba[:, 0], **EXACT)


def test_binary_classifier_logit_link(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    fn = wrap_model(model, link="logit")
    p = model.predict_proba(X)[:, 1]
    assert fn.link == "logit"
    assert fn.output_description == "log-odds of class 1"
    np.testing.assert_allclose(fn(X)[:, 0], logit(p), rtol=1e-9, atol=1e-9)
    # for logistic regression the log-odds are the decision function
    np.testing.assert_allclose(fn(X)[:, 0], model.decision_function(X), rtol=1e-7, atol=1e-7)


def test_binary_classifier_all_and_lists(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    proba = model.predict_proba(X)

    both = wrap_model(model, target="all")
    assert both.single_output is False
    assert both.output_names == ["0", "1"] and both.n_outputs == 2
    np.testing.assert_allclose(both(X), proba, **EXACT)

    reordered = wrap_model(model, target=[1, 0])
    assert reordered.single_output is False and reordered.output_names == ["1", "0"]
    np.testing.assert_allclose(reordered(X), proba[:, ::-1], **EXACT)


def test_bool_labels_are_matched_as_labels(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y.astype(bool))
    proba = model.predict_proba(X)
    for target, col in [(True, 1), (False, 0), ("True", 1), (np.True_, 1)]:
        fn = wrap_model(model, target=target)
        assert fn.output_names == [str(bool(col))]
        np.testing.assert_allclose(fn(X)[:, 0], proba[:, col], **EXACT)


def test_binary_decision_function_model(binary_data):
    X, y = binary_data
    model = LinearSVC(random_state=0).fit(X, y)
    fn = wrap_model(model)
    assert fn.kind == "decision" and fn.single_output
    assert fn.output_description == "decision function of class 1"
    assert fn.output_names == ["1"]
    np.testing.assert_allclose(fn(X)[:, 0], model.decision_function(X), **EXACT)
    # class 0 of a binary margin model is the negated decision function (CONTRACT 1)
    zero = wrap_model(model, target=0)
    assert zero.output_names == ["0"]
    assert zero.output_description == "decision function of class 0 (negated)"
    np.testing.assert_allclose(zero(X)[:, 0], -model.decision_function(X), **EXACT)
    with pytest.raises(InvalidParameterError, match=r"link='logit'.*does not output probabilities"):
        wrap_model(model, link="logit")


# ----------------------------------------------------------------- multiclass
def test_multiclass_defaults_to_all(iris, iris_forest):
    X, _, _ = iris
    fn = wrap_model(iris_forest)
    assert fn.single_output is False
    assert fn.n_outputs == 3 and fn.output_names == ["0", "1", "2"]
    assert fn.output_description == "probability of class 0, 1, 2"
    np.testing.assert_allclose(fn(X), iris_forest.predict_proba(X), **EXACT)


def test_multiclass_target_list_and_negative_index(iris, iris_forest):
    X, _, _ = iris
    proba = iris_forest.predict_proba(X)
    fn = wrap_model(iris_forest, target=[2, 0])
    assert fn.output_indices == [2, 0] and not fn.single_output
    np.testing.assert_allclose(fn(X), proba[:, [2, 0]], **EXACT)
    last = wrap_model(iris_forest, target=-1)
    assert last.output_indices == [2] and last.single_output
    np.testing.assert_allclose(last(X)[:, 0], proba[:, 2], **EXACT)


def test_multiclass_target_by_label_and_unknown_class(iris):
    X, y, names = iris
    labels = names[y]
    model = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, labels)
    proba = model.predict_proba(X)
    fn = wrap_model(model, target="virginica")
    assert fn.output_names == ["virginica"] and fn.single_output
    np.testing.assert_allclose(fn(X)[:, 0], proba[:, 2], **EXACT)

    with pytest.raises(InvalidParameterError) as info:
        wrap_model(model, target="rose")
    msg = str(info.value)
    assert "'rose'" in msg
    for cls in ("setosa", "versicolor", "virginica"):
        assert cls in msg
    assert "between 0 and 2" in msg
    with pytest.raises(InvalidParameterError, match="unknown target 3"):
        wrap_model(model, target=3)
    with pytest.raises(InvalidParameterError, match="empty list"):
        wrap_model(model, target=[])


def test_label_is_matched_before_index(iris):
    X, y, _ = iris
    model = LogisticRegression(max_iter=500).fit(X, y + 1)  # classes 1, 2, 3
    proba = model.predict_proba(X)
    assert list(model.classes_) == [1, 2, 3]
    one = wrap_model(model, target=1)
    assert one.output_indices == [0] and one.output_names == ["1"]
    np.testing.assert_allclose(one(X)[:, 0], proba[:, 0], **EXACT)
    three = wrap_model(model, target=3)  # the label 3, not an out-of-range index
    assert three.output_indices == [2]
    zero = wrap_model(model, target=0)  # no label 0: index 0
    assert zero.output_indices == [0] and zero.output_names == ["1"]


# ----------------------------------------------------------------- regressors
def test_single_output_regressor(binary_data):
    X, _ = binary_data
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 3.0
    model = LinearRegression().fit(X, y)
    fn = wrap_model(model)
    assert fn.kind == "regression" and fn.single_output
    assert fn.output_names == ["prediction"]
    np.testing.assert_allclose(fn(X)[:, 0], model.predict(X), **EXACT)
    with pytest.raises(InvalidParameterError) as info:
        wrap_model(model, link="logit")
    assert "link='logit'" in str(info.value) and "link='identity'" in str(info.value)
    with pytest.raises(InvalidParameterError, match=r"link='probit'.*'identity', 'logit'"):
        wrap_model(model, link="probit")


@pytest.mark.parametrize("with_x", [True, False])
def test_multi_output_regressor(binary_data, with_x):
    X, _ = binary_data
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3]])
    model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)
    fn = wrap_model(model, X=X if with_x else None)
    assert not fn.single_output
    assert fn.output_names == ["prediction 0", "prediction 1"]
    np.testing.assert_allclose(fn(X), model.predict(X), **EXACT)
    second = wrap_model(model, target=1, X=X if with_x else None)
    assert second.single_output
    np.testing.assert_allclose(second(X)[:, 0], model.predict(X)[:, 1], **EXACT)


def test_multi_output_linear_regressor_without_x(binary_data):
    X, _ = binary_data
    Y = np.column_stack([X[:, 0], 2 * X[:, 1], -X[:, 2]])
    model = LinearRegression().fit(X, Y)
    fn = wrap_model(model)
    assert fn.n_outputs == 3
    np.testing.assert_allclose(fn(X), model.predict(X), **EXACT)


class _TwoColumnRegressor:
    """An sklearn-like regressor that does not say how many outputs it has."""

    def fit(self, X, y):
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return np.column_stack([X[:, 0], X[:, 1]])


def test_unannounced_extra_outputs_are_an_error_not_silently_dropped(binary_data):
    X, _ = binary_data
    fn = wrap_model(_TwoColumnRegressor())  # no X: cannot know there are two outputs
    with pytest.raises(ModelCallError, match=r"returned 2 output column\(s\).*expected 1.*X="):
        fn(X)
    probed = wrap_model(_TwoColumnRegressor(), X=X)
    np.testing.assert_allclose(probed(X), X[:, :2], **EXACT)


# ----------------------------------------------------------------- pipelines and columns
@pytest.fixture
def credit_pipeline(credit_frame):
    df, y = credit_frame
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "job"]),
            ("num", StandardScaler(), ["income", "age"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression()).fit(df, y)


def test_pipeline_with_categorical_and_string_columns(credit_frame, credit_pipeline):
    df, _ = credit_frame
    fn = wrap_model(credit_pipeline)
    assert fn.feature_names_in == ["income", "age", "region", "job"]
    assert fn.n_features_in == 4
    np.testing.assert_allclose(fn(df)[:, 0], credit_pipeline.predict_proba(df)[:, 1], **EXACT)


def test_prepare_keeps_the_callers_order_and_calls_match_by_name(credit_frame, credit_pipeline):
    # CONTRACT 2: prepare validates and keeps the caller's column order; every call matches
    # the columns to the model's by name
    df, _ = credit_frame
    fn = wrap_model(credit_pipeline)
    shuffled = df[["job", "age", "region", "income"]]
    prepared = fn.prepare(shuffled)
    assert prepared is shuffled
    assert isinstance(prepared["region"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(fn(prepared)[:, 0], credit_pipeline.predict_proba(df)[:, 1], **EXACT)


def test_prepare_lists_missing_and_unexpected_columns(credit_frame, credit_pipeline):
    df, _ = credit_frame
    fn = wrap_model(credit_pipeline)
    with pytest.raises(InvalidInputError) as info:
        fn.prepare(df.drop(columns=["age"]))
    assert "missing columns: ['age']" in str(info.value)
    assert "unexpected" not in str(info.value)

    with pytest.raises(InvalidInputError) as info:
        fn.prepare(df.assign(score=1.0))
    assert "unexpected columns: ['score']" in str(info.value)

    with pytest.raises(InvalidInputError) as info:
        fn.prepare(df.rename(columns={"income": "salary"}), name="X_test")
    msg = str(info.value)
    assert msg.startswith("X_test ")
    assert "missing columns: ['income']" in msg and "unexpected columns: ['salary']" in msg
    assert "['income', 'age', 'region', 'job']" in msg


def test_prepare_checks_number_of_features_of_numpy_model(binary_data):
    X, y = binary_data
    fn = wrap_model(LogisticRegression().fit(X, y))
    assert fn.prepare(X) is X
    with pytest.raises(InvalidInputError) as info:
        fn.prepare(X[:, :3])
    assert "3 features" in str(info.value) and "expects 4" in str(info.value)
    with pytest.raises(InvalidInputError, match="6 features but the model expects 4"):
        fn.prepare(np.hstack([X, X[:, :2]]))


# ----------------------------------------------------------------- XGBoost
def test_xgb_classifier_binary(binary_data):
    X, y = binary_data
    model = xgb.XGBClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    fn = wrap_model(model)
    assert fn.single_output and fn.output_names == ["1"]
    np.testing.assert_allclose(fn(X)[:, 0], model.predict_proba(X)[:, 1], **EXACT)
    margin = model.get_booster().predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(wrap_model(model, link="logit")(X)[:, 0], margin, atol=1e-5)


def test_xgb_classifier_multiclass(iris):
    X, y, _ = iris
    model = xgb.XGBClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    fn = wrap_model(model)
    assert fn.n_outputs == 3 and not fn.single_output
    np.testing.assert_allclose(fn(X), model.predict_proba(X), **EXACT)


def test_xgb_regressor(binary_data):
    X, _ = binary_data
    y = X[:, 0] - 2 * X[:, 2]
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    fn = wrap_model(model)
    assert fn.kind == "regression" and fn.single_output
    np.testing.assert_allclose(fn(X)[:, 0], model.predict(X), **EXACT)


def test_xgb_native_binary_logistic(binary_data):
    X, y = binary_data
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 10
    )
    expected = booster.predict(xgb.DMatrix(X))
    fn = wrap_model(booster)
    assert fn.kind == "probability" and fn.single_output and fn.output_names == ["1"]
    assert fn.n_features_in == 4
    np.testing.assert_allclose(fn(X)[:, 0], expected, **EXACT)
    np.testing.assert_allclose(
        wrap_model(booster, target="all")(X), np.column_stack([1 - expected, expected]), **EXACT
    )
    margin = booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(wrap_model(booster, link="logit")(X)[:, 0], margin, atol=1e-5)


@pytest.mark.parametrize("objective", ["multi:softprob", "multi:softmax"])
def test_xgb_native_multiclass(iris, objective):
    X, y, _ = iris
    params = {"objective": objective, "num_class": 3, "max_depth": 2}
    booster = xgb.train(params, xgb.DMatrix(X, label=y), 10)
    fn = wrap_model(booster)
    assert fn.n_outputs == 3 and fn.output_names == ["0", "1", "2"]
    out = fn(X)
    if objective == "multi:softprob":
        np.testing.assert_allclose(out, booster.predict(xgb.DMatrix(X)), atol=1e-6)
    else:  # softmax predicts the class: whybox still explains the probabilities
        np.testing.assert_array_equal(out.argmax(axis=1), booster.predict(xgb.DMatrix(X)))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


def test_xgb_native_regression(binary_data):
    X, _ = binary_data
    y = X[:, 0] - 2 * X[:, 2]
    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), 10)
    fn = wrap_model(booster)
    assert fn.kind == "regression" and fn.output_names == ["prediction"]
    np.testing.assert_allclose(fn(X)[:, 0], booster.predict(xgb.DMatrix(X)), **EXACT)


def test_xgb_native_multi_target_regression_without_x(binary_data):
    X, _ = binary_data
    Y = np.column_stack([X[:, 0], X[:, 1] - X[:, 2]])
    params = {"objective": "reg:squarederror", "tree_method": "hist"}
    booster = xgb.train(params, xgb.DMatrix(X, label=Y), 5)
    fn = wrap_model(booster)
    assert fn.output_names == ["prediction 0", "prediction 1"]
    np.testing.assert_allclose(fn(X), booster.predict(xgb.DMatrix(X)), **EXACT)


def test_xgb_categorical_dataframe(credit_frame):
    df, y = credit_frame
    df = df.drop(columns="job")  # region is a pandas categorical
    dtrain = xgb.DMatrix(df, label=y, enable_categorical=True)
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3}, dtrain, 10
    )
    assert "c" in booster.feature_types
    fn = wrap_model(booster)
    assert fn.feature_names_in == ["income", "age", "region"]
    expected = booster.predict(xgb.DMatrix(df, enable_categorical=True))
    np.testing.assert_allclose(fn(df)[:, 0], expected, **EXACT)
    shuffled = fn.prepare(df[["region", "income", "age"]])
    np.testing.assert_allclose(fn(shuffled)[:, 0], expected, **EXACT)
    few = df.iloc[:3]  # not every category present: categories kept by the dtype
    np.testing.assert_allclose(fn(few)[:, 0], expected[:3], **EXACT)

    clf = xgb.XGBClassifier(
        n_estimators=10, max_depth=3, tree_method="hist", enable_categorical=True
    ).fit(df, y)
    np.testing.assert_allclose(wrap_model(clf)(df)[:, 0], clf.predict_proba(df)[:, 1], **EXACT)


# ----------------------------------------------------------------- LightGBM
LGB_SMALL = {"verbose": -1, "min_data_in_leaf": 5, "num_leaves": 7}


def test_lgbm_classifier_and_regressor(binary_data):
    X, y = binary_data
    clf = lgb.LGBMClassifier(n_estimators=10, random_state=0, **LGB_SMALL).fit(X, y)
    fn = wrap_model(clf)
    assert fn.single_output and fn.output_names == ["1"]
    np.testing.assert_allclose(fn(X)[:, 0], clf.predict_proba(X)[:, 1], **EXACT)

    reg = lgb.LGBMRegressor(n_estimators=10, random_state=0, **LGB_SMALL).fit(X, X[:, 0])
    fr = wrap_model(reg)
    assert fr.kind == "regression" and fr.single_output
    np.testing.assert_allclose(fr(X)[:, 0], reg.predict(X), **EXACT)


def test_lgbm_classifier_multiclass(iris):
    X, y, _ = iris
    clf = lgb.LGBMClassifier(n_estimators=10, random_state=0, **LGB_SMALL).fit(X, y)
    fn = wrap_model(clf)
    assert fn.n_outputs == 3
    np.testing.assert_allclose(fn(X), clf.predict_proba(X), **EXACT)


def test_lgb_native_binary(binary_data):
    X, y = binary_data
    booster = lgb.train({"objective": "binary", **LGB_SMALL}, lgb.Dataset(X, y), 10)
    fn = wrap_model(booster)
    assert fn.kind == "probability" and fn.single_output and fn.output_names == ["1"]
    assert fn.feature_names_in is None and fn.n_features_in == 4  # Column_0.. are not names
    np.testing.assert_allclose(fn(X)[:, 0], booster.predict(X), **EXACT)
    raw = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(wrap_model(booster, link="logit")(X)[:, 0], raw, atol=1e-9)


def test_lgb_native_multiclass(iris):
    X, y, _ = iris
    params = {"objective": "multiclass", "num_class": 3, **LGB_SMALL}
    booster = lgb.train(params, lgb.Dataset(X, y), 10)
    fn = wrap_model(booster)
    assert fn.n_outputs == 3 and not fn.single_output
    np.testing.assert_allclose(fn(X), booster.predict(X), **EXACT)
    np.testing.assert_allclose(
        wrap_model(booster, target=2)(X)[:, 0], booster.predict(X)[:, 2], **EXACT
    )


def test_lgb_native_regression_with_dataframe_names(credit_frame):
    df, _ = credit_frame
    X = df[["income", "age"]]
    booster = lgb.train({"objective": "regression", **LGB_SMALL}, lgb.Dataset(X, X["age"]), 10)
    fn = wrap_model(booster)
    assert fn.kind == "regression" and fn.feature_names_in == ["income", "age"]
    np.testing.assert_allclose(fn(X)[:, 0], booster.predict(X), **EXACT)
    np.testing.assert_allclose(
        fn(fn.prepare(X[["age", "income"]]))[:, 0], booster.predict(X), **EXACT
    )


def test_lgb_booster_loaded_from_string_keeps_objective(binary_data):
    X, y = binary_data
    booster = lgb.train({"objective": "binary", **LGB_SMALL}, lgb.Dataset(X, y), 10)
    loaded = lgb.Booster(model_str=booster.model_to_string())
    fn = wrap_model(loaded)
    assert fn.kind == "probability"
    np.testing.assert_allclose(fn(X)[:, 0], booster.predict(X), **EXACT)


# ----------------------------------------------------------------- torch
def _mlp():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()


def test_torch_module_outputs(binary_data):
    import torch

    X = binary_data[0][:10].astype(np.float32)
    net = _mlp()
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    fn = wrap_model(net, X=X)
    assert fn.kind == "output" and not fn.single_output
    assert fn.output_names == ["output 0", "output 1", "output 2"]
    assert fn.model_type == "torch.nn.modules.container.Sequential"
    np.testing.assert_allclose(fn(X), expected, **EXACT)

    third = wrap_model(net, target=2, X=X)
    assert third.single_output and third.output_names == ["output 2"]
    np.testing.assert_allclose(third(X)[:, 0], expected[:, 2], **EXACT)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    np.testing.assert_allclose(fn(frame), expected, **EXACT)


def test_torch_module_float64_is_evaluated_in_float64(binary_data):
    import torch

    X = binary_data[0][:10]  # float64
    net = _mlp().double()
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    fn = wrap_model(net, X=X)
    # float32 evaluation would be off by ~1e-7
    np.testing.assert_allclose(fn(X), expected, rtol=0, atol=1e-14)


def test_torch_module_needs_example_inputs():
    with pytest.raises(InvalidParameterError, match="pass X"):
        wrap_model(_mlp())


# ----------------------------------------------------------------- callables
def test_callable_with_one_output(binary_data):
    X, _ = binary_data

    def f(X):
        return X[:, 0] * 2.0 + X[:, 1]

    fn = wrap_model(f, X=X)
    assert fn.kind == "output" and fn.single_output and fn.output_names == ["output"]
    np.testing.assert_allclose(fn(X)[:, 0], X[:, 0] * 2.0 + X[:, 1], **EXACT)


def test_callable_with_two_outputs(binary_data):
    X, _ = binary_data

    def f(X):
        p = 1.0 / (1.0 + np.exp(-X[:, 0]))
        return np.column_stack([1 - p, p])

    fn = wrap_model(f, X=X)
    assert not fn.single_output and fn.output_names == ["output 0", "output 1"]
    np.testing.assert_allclose(fn(X), f(X), **EXACT)
    second = wrap_model(f, target=1, link="logit", X=X)
    assert second.output_description == "logit of output 1"
    np.testing.assert_allclose(second(X)[:, 0], X[:, 0], atol=1e-9)


def test_callable_with_3d_output_is_flattened(binary_data):
    X, _ = binary_data
    fn = wrap_model(lambda X: np.stack([X[:, :2], -X[:, :2]], axis=1), X=X)
    assert fn.n_outputs == 4
    np.testing.assert_allclose(fn(X), np.column_stack([X[:, :2], -X[:, :2]]), **EXACT)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("model", "type_name"), [(object(), "builtins.object"), ("model.pkl", "builtins.str")]
)
def test_unsupported_model(model, type_name):
    with pytest.raises(UnsupportedModelError) as info:
        wrap_model(model)
    msg = str(info.value)
    assert type_name in msg
    for supported in ("scikit-learn", "XGBoost", "LightGBM", "torch.nn.Module", "callable"):
        assert supported in msg
    assert isinstance(info.value, TypeError)


def test_model_function_is_not_rewrapped(binary_data):
    X, y = binary_data
    fn = wrap_model(LogisticRegression().fit(X, y))
    with pytest.raises(InvalidParameterError, match="original model"):
        wrap_model(fn)


class _Broken:
    def __init__(self):
        self.error = ValueError("could not convert string to float: 'abc'")

    def fit(self, X, y):
        return self

    def predict(self, X):
        raise self.error


def test_model_that_raises_is_wrapped_with_cause_and_batch_shape(binary_data):
    X, _ = binary_data
    model = _Broken()
    fn = wrap_model(model)
    with pytest.raises(ModelCallError) as info:
        fn(X[:7, :3])
    assert info.value.__cause__ is model.error
    msg = str(info.value)
    assert "(7, 3)" in msg and "ValueError" in msg and "could not convert" in msg
    assert "test_models._Broken" in msg

    frame = pd.DataFrame(X[:5], columns=["a", "b", "c", "d"])
    with pytest.raises(ModelCallError, match=r"\(5, 4\) with columns \['a', 'b', 'c', 'd'\]"):
        fn(frame)
    assert fn.n_calls == 0


def test_callable_that_raises_while_counting_outputs(binary_data):
    X, _ = binary_data
    err = KeyError("feature_7")

    def f(X):
        raise err

    with pytest.raises(ModelCallError) as info:
        wrap_model(f, X=X)
    assert info.value.__cause__ is err
    assert "KeyError" in str(info.value) and "(1, 4)" in str(info.value)


def test_wrong_number_of_rows_is_an_error(binary_data):
    X, _ = binary_data
    fn = wrap_model(lambda X: X[:-1, 0], X=X)
    with pytest.raises(ModelCallError, match="returned 9 rows for a batch of 10 rows"):
        fn(X[:10])


def test_scalar_output_is_an_error_for_several_rows(binary_data):
    X, _ = binary_data
    fn = wrap_model(lambda X: float(np.sum(X)), X=X)
    np.testing.assert_allclose(fn(X[:1]), [[np.sum(X[:1])]], **EXACT)
    with pytest.raises(ModelCallError, match="single number for a batch of 5 rows"):
        fn(X[:5])


def test_call_counters(binary_data):
    X, y = binary_data
    fn = wrap_model(LogisticRegression().fit(X, y))
    assert (fn.n_calls, fn.n_rows_evaluated) == (0, 0)
    fn(X[:5])
    fn(X[:3])
    fn(X)
    assert fn.n_calls == 3
    assert fn.n_rows_evaluated == 5 + 3 + 80


def test_describe_outputs(iris, iris_forest):
    assert describe_outputs(iris_forest) == [0, 1, 2]
    assert describe_outputs(lambda X: X) is None


class _ProbaOnly:
    """A classifier-like object with predict_proba and nothing else."""

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def test_predict_proba_only_model(binary_data):
    X, _ = binary_data
    model = _ProbaOnly()
    fn = wrap_model(model, X=X)
    assert fn.kind == "probability" and fn.single_output and fn.output_names == ["1"]
    np.testing.assert_allclose(fn(X)[:, 0], model.predict_proba(X)[:, 1], **EXACT)
    np.testing.assert_allclose(wrap_model(model, link="logit", X=X)(X)[:, 0], X[:, 0], atol=1e-9)
