"""Issue 13 contract in wrap_model / ModelFunction / wb.explain: target, columns, link, NaN
outputs, torch outputs and mode, keywords. Every expected value comes from the model's own
predict / predict_proba / decision_function / margin, or a closed form."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError, ModelCallError

EXACT = {"rtol": 0, "atol": 1e-12}


def logit(p):
    return np.log(p) - np.log1p(-p)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]  # "mean radius", "mean texture", ...: names with spaces
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def lgbm(cancer):
    X, y = cancer
    return lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)


# ------------------------------------------------------------------------------ target
def test_per_row_targets_select_one_output_per_row(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    proba = model.predict_proba(X[:6])
    t = np.array([0, 1, 1, 0, 1, 0])
    for target in (t, pd.Series(t), t.astype(str)):
        fn = wb.wrap_model(model, target=target, n_rows=6)
        assert fn.row_targets == t.tolist()
        assert fn.row_target_names == [str(v) for v in t]
        assert (
            fn.output_description == "probability of each row's target class (per-example targets)"
        )
        np.testing.assert_allclose(fn.row_outputs(X[:6]), proba[np.arange(6), t], **EXACT)
        for i in range(6):
            one = fn.for_row(i)
            assert one.single_output and one.row_targets is None
            assert one.output_names == [str(t[i])]
            np.testing.assert_allclose(one(X[i : i + 1])[:, 0], proba[i, t[i]], **EXACT)
    with pytest.raises(InvalidParameterError, match="5 entries but 6 rows"):
        wb.wrap_model(model, target=t[:5], n_rows=6)
    with pytest.raises(InvalidParameterError, match=r"unknown target 7.*classes \[0, 1\]"):
        wb.wrap_model(model, target=np.array([0, 7]), n_rows=2)


def test_per_row_target_as_a_torch_tensor(binary_data):
    torch = pytest.importorskip("torch")
    X = binary_data[0][:5].astype(np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    y = torch.tensor([2, 0, 1, 1, 0])
    fn = wb.wrap_model(net, target=y, X=X, n_rows=5)
    assert fn.row_targets == [2, 0, 1, 1, 0]
    np.testing.assert_allclose(fn.row_outputs(X), expected[np.arange(5), y.numpy()], **EXACT)


def test_string_of_an_integer_label_resolves(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    fn = wb.wrap_model(model, target="0")
    assert fn.output_names == ["0"]
    np.testing.assert_allclose(fn(X)[:, 0], model.predict_proba(X)[:, 0], **EXACT)
    with pytest.raises(InvalidParameterError, match=r"'7'.*classes \[0, 1\]"):
        wb.wrap_model(model, target="7")


def _margin_models(X, y):
    frame = pd.DataFrame(X, columns=list("abcd"))
    small = {"n_estimators": 10, "max_depth": 3}
    return [
        (LogisticRegression().fit(X, y), X, lambda m, Z: m.decision_function(Z)),
        (
            xgb.XGBClassifier(**small, random_state=0).fit(X, y),
            X,
            lambda m, Z: m.predict(Z, output_margin=True),
        ),
        (
            lgb.LGBMClassifier(**small, num_leaves=7, verbose=-1).fit(frame, y),
            frame,
            lambda m, Z: m.predict(Z, raw_score=True),
        ),
        (
            HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y),
            X,
            lambda m, Z: m.decision_function(Z),
        ),
    ]


def test_class_zero_of_a_binary_margin_model_is_the_negated_margin(binary_data):
    X, y = binary_data
    for model, data, margin in _margin_models(X, y):
        own = np.asarray(margin(model, data), dtype=float)
        one = wb.wrap_model(model, link="logit")
        assert one.output_description == "log-odds of class 1"
        np.testing.assert_allclose(one(data)[:, 0], own, rtol=1e-12, atol=1e-12)
        zero = wb.wrap_model(model, target=0, link="logit")
        assert zero.output_names == ["0"]
        assert zero.output_description == "log-odds of class 0 (negated margin)"
        np.testing.assert_allclose(zero(data)[:, 0], -own, rtol=1e-12, atol=1e-12)
        both = wb.wrap_model(model, target=[0, 1], link="logit")
        assert both.output_names == ["0", "1"]
        np.testing.assert_allclose(both(data), np.column_stack([-own, own]), atol=1e-12)
        # on probabilities class 0 is 1 - p: the model's own predict_proba[:, 0]
        prob0 = wb.wrap_model(model, target=0)
        np.testing.assert_allclose(prob0(data)[:, 0], model.predict_proba(data)[:, 0], **EXACT)


# ------------------------------------------------------------------------------ columns
def test_lightgbm_columns_with_spaces_are_matched_by_name_on_every_call(cancer, lgbm):
    X, _ = cancer
    assert lgbm.booster_.feature_name()[0] == "mean_radius"  # LightGBM's renaming
    expected = lgbm.predict_proba(X)[:, 1]
    for model in (lgbm, lgbm.booster_):
        fn = wb.wrap_model(model)
        for cols in (list(X.columns), list(X.columns[::-1]), list(X.columns[[2, 0, 5, 1, 4, 3]])):
            frame = X[cols]
            assert fn.prepare(frame) is frame  # the caller's order is kept
            np.testing.assert_allclose(fn(frame)[:, 0], expected, **EXACT)


def test_xgboost_and_sklearn_columns_in_another_order(cancer):
    X, y = cancer
    Xu = X.rename(columns=lambda c: c.replace(" ", "_"))
    rev = Xu[Xu.columns[::-1]]
    for model in (
        xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(Xu, y),
        LogisticRegression(max_iter=5000).fit(Xu, y),
    ):
        fn = wb.wrap_model(model)
        np.testing.assert_allclose(fn(rev)[:, 0], model.predict_proba(Xu)[:, 1], **EXACT)


def test_duplicate_missing_and_unexpected_columns_are_input_errors(cancer, lgbm):
    X, _ = cancer
    fn = wb.wrap_model(lgbm)
    dup = pd.concat([X, X[["mean texture"]]], axis=1)
    with pytest.raises(InvalidInputError, match=r"duplicated column names: \['mean texture'\]"):
        fn.prepare(dup)
    with pytest.raises(InvalidInputError, match=r"duplicated column names"):
        fn(dup)
    with pytest.raises(InvalidInputError, match=r"missing columns: \['mean_area'\]"):
        fn.prepare(X.drop(columns="mean area"))
    with pytest.raises(InvalidInputError, match=r"unexpected columns: \['extra'\]"):
        fn(X.assign(extra=1.0))


def test_explain_with_reversed_columns_gives_the_models_predictions(cancer, lgbm):
    # issue 13 item 2: ExactShap gave 0.19 where the model says 0.97 (columns by position)
    X, _ = cancer
    rows, bg = X.iloc[:4], X.iloc[100:130]
    rev = list(X.columns[::-1])
    exp = wb.explain(lgbm, rows[rev], method="exact", background=bg[rev])
    np.testing.assert_allclose(exp.predictions, lgbm.predict_proba(rows)[:, 1], atol=1e-12)
    assert exp.feature_names == rev
    same = wb.explain(lgbm, rows, method="exact", background=bg)
    # the same values per feature name, in the caller's order
    np.testing.assert_allclose(exp.values, same.values[:, ::-1], atol=1e-12)


# ------------------------------------------------------------------------------ link
def test_logistic_regression_logit_is_its_decision_function_exactly(binary_data):
    X, y = binary_data
    model = LogisticRegression().fit(X, y)
    bg = X[40:]
    exp = wb.explain(model, X[:5], background=bg, link="logit")
    assert exp.method == "linear"
    assert exp.params["output"] == "log-odds of class 1"
    # closed form: w_j (x_j - mean_j) of the decision function
    np.testing.assert_allclose(exp.values, model.coef_[0] * (X[:5] - bg.mean(0)), atol=1e-12)
    np.testing.assert_allclose(exp.predictions, model.decision_function(X[:5]), atol=1e-12)
    prob = wb.explain(model, X[:5], background=bg)
    assert prob.method == "exact" and prob.params["output"] == "probability of class 1"
    assert "link='logit'" in prob.params["method_selection"]
    np.testing.assert_allclose(prob.predictions, model.predict_proba(X[:5])[:, 1], atol=1e-12)


def test_random_forest_logit_is_explained_over_the_background(binary_data):
    X, y = binary_data
    model = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    exp = wb.explain(model, X[:4], background=X[40:60], link="logit")
    assert exp.method == "exact"
    assert exp.params["output"] == "log-odds of class 1 (logit of the probability)"
    p = np.clip(model.predict_proba(X[:4])[:, 1], 1e-15, 1 - 1e-15)
    np.testing.assert_allclose(exp.predictions, logit(p), atol=1e-9)
    assert "model_output" not in exp.params["method_selection"]
    with pytest.raises(InvalidParameterError, match=r"background=.*X_train.sample"):
        wb.explain(model, X[:4], link="logit")
    # identity: TreeSHAP is exact for a forest's probability
    assert wb.explain(model, X[:4]).method == "tree"


def test_regressor_and_decision_only_classifier_refuse_logit(binary_data):
    from sklearn.svm import LinearSVC

    X, y = binary_data
    with pytest.raises(InvalidParameterError, match=r"regressor.*link='identity'"):
        wb.wrap_model(LinearRegression().fit(X, y), link="logit")
    with pytest.raises(InvalidParameterError, match=r"no predict_proba.*CalibratedClassifierCV"):
        wb.wrap_model(LinearSVC().fit(X, y), link="logit")


def test_logit_of_a_callable_refuses_outputs_outside_zero_one(binary_data):
    X, _ = binary_data

    def scores(Z):
        return Z[:, 0] * 3.0  # unbounded: logits

    def proba(Z):
        return 1.0 / (1.0 + np.exp(-Z[:, 0]))

    fn = wb.wrap_model(scores, link="logit", X=X)
    with pytest.raises(InvalidParameterError, match=r"already unbounded scores.*link='identity'"):
        fn(X)
    np.testing.assert_allclose(wb.wrap_model(proba, link="logit", X=X)(X)[:, 0], X[:, 0], atol=1e-9)


def test_identity_output_of_a_callable_is_described_in_words(binary_data):
    X, _ = binary_data
    fn = wb.wrap_model(lambda Z: Z[:, :4], target=3, X=X)
    assert fn.output_description == "output 3 (raw model output)"


# ------------------------------------------------------------------------------ NaN
def test_nan_or_inf_outputs_raise_naming_the_rows(binary_data):
    X, _ = binary_data

    def f(Z):
        out = Z[:, 0].copy()
        out[Z[:, 1] > 1.0] = np.nan
        out[Z[:, 2] > 1.5] = np.inf
        return out

    fn = wb.wrap_model(f, X=X)
    bad = np.flatnonzero((X[:, 1] > 1.0) | (X[:, 2] > 1.5))
    assert bad.size
    with pytest.raises(ModelCallError) as info:
        fn(X)
    msg = str(info.value)
    assert "NaN and inf" in msg and f"for {bad.size} of {len(X)} rows" in msg
    assert str(bad[:10].tolist()) in msg


# ------------------------------------------------------------------------------ torch
def _net():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Dropout(0.5), torch.nn.Linear(6, 3)
    )


def test_torch_dict_model_output_and_tuple_outputs(binary_data):
    torch = pytest.importorskip("torch")
    X = binary_data[0][:8].astype(np.float32)
    base = _net().eval()

    class ModelOutput(OrderedDict):  # the shape of transformers' ModelOutput
        pass

    class AsDict(torch.nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.net, self.kind = base, kind
            self.eval()

        def forward(self, x):
            logits = self.net(x)
            if self.kind == "dict":
                return {"hidden": x, "logits": logits}
            if self.kind == "output":
                return ModelOutput(loss=None, logits=logits)
            return (x.sum(1, keepdim=True), logits)

    with torch.no_grad():
        expected = base(torch.from_numpy(X)).numpy()
    for kind in ("dict", "output"):
        np.testing.assert_allclose(wb.wrap_model(AsDict(kind), X=X)(X), expected, **EXACT)
    with pytest.raises(InvalidParameterError, match=r"tuple of 2 elements.*output=<index>"):
        wb.wrap_model(AsDict("tuple"), X=X)
    picked = wb.wrap_model(AsDict("tuple"), X=X, output=1)
    np.testing.assert_allclose(picked(X), expected, **EXACT)
    with pytest.raises(InvalidParameterError, match="keys"):
        wb.wrap_model(AsDict("dict"), X=X, output="scores")


def test_torch_model_in_training_mode_is_evaluated_in_eval_mode_and_restored(binary_data):
    torch = pytest.importorskip("torch")
    X = binary_data[0][:16].astype(np.float32)
    net = _net()
    net.train()
    net[1].eval()  # a submodule's own mode must come back as it was
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.eval()
        expected = net(torch.from_numpy(X)).numpy()
        net.train()
        net[1].eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = wb.wrap_model(net, X=X)
        a, b = fn(X), fn(X)
    training = [w for w in caught if "training mode" in str(w.message)]
    assert len(training) == 1  # once per wrapped model
    np.testing.assert_allclose(a, expected, **EXACT)
    np.testing.assert_array_equal(a, b)
    assert net.training and net[0].training and not net[1].training
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    boom = Boom().train()
    with pytest.raises(ModelCallError, match="boom"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb.wrap_model(boom, X=X)
    assert boom.training  # restored after the exception


# ------------------------------------------------------------------------------ keywords
def test_wb_explain_refuses_constructor_keywords_the_explainer_does_not_take(binary_data):
    X, y = binary_data
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"max_backgruond.*Did you mean max_background"):
        wb.explain(model, X[:3], background=X[40:], max_backgruond=10)
    with pytest.raises(InvalidParameterError, match="check_additivity"):
        wb.explain(model, X[:3], check_additivity=False)
    with pytest.raises(InvalidParameterError, match=r"nsamples.*budget="):
        wb.LinearShap(LogisticRegression().fit(X, y), background=X).explain(X[:2], nsamples=10)
