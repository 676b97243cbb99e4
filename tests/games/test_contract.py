"""The explainer contract (issue 13) for the model-agnostic explainers.

Per-row targets, columns matched by name, backgrounds used whole or refused, unread keywords
refused, the torch model left as it was, and the completeness warning. Expected values come
from shap's ExactExplainer, the models' own predict / predict_proba, or a hand computation.
Only public names are used, so the file also runs against the code before the issue.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVR

import whybox as wb
from whybox.errors import InvalidInputError, InvalidParameterError

AGNOSTIC = ["ExactShap", "KernelShap", "PermutationShap", "Banzhaf", "ShapleyInteractions", "Lime"]
#: keywords of .explain that make each one fast enough for a test
FAST = {
    "ExactShap": {},
    "KernelShap": {"budget": 64},
    "PermutationShap": {"budget": 64},
    "Banzhaf": {"budget": 64},
    "ShapleyInteractions": {"budget": 64},
    "Lime": {"budget": 300},
}


def _wine(n_features=5):
    data = load_wine(as_frame=True)
    X = data.data.iloc[:, :n_features]
    model = LogisticRegression(max_iter=5000).fit(X, data.target)
    return model, X, data.target.to_numpy()


# ------------------------------------------------------------------ 1. per-row targets
def test_per_row_targets_match_shap_exact_for_each_rows_class():
    shap = pytest.importorskip("shap")
    model, X, _ = _wine()
    bg, rows = X.iloc[:30], X.iloc[[40, 70, 100, 150]]
    targets = np.array([2, 0, 1, 2])
    exp = wb.ExactShap(model, background=bg).explain(rows, target=targets)
    ref = shap.explainers.Exact(
        model.predict_proba, shap.maskers.Independent(bg, max_samples=len(bg))
    )(rows)
    expected = ref.values[np.arange(4), :, targets]
    assert exp.values.shape == (4, X.shape[1])
    np.testing.assert_allclose(exp.values, expected, atol=1e-10)
    np.testing.assert_allclose(exp.base_values, ref.base_values[np.arange(4), targets], atol=1e-12)
    np.testing.assert_allclose(
        exp.predictions, model.predict_proba(rows)[np.arange(4), targets], atol=1e-12
    )
    assert exp.output_names == ["per-example target"]
    assert exp.params["target"] == ["2", "0", "1", "2"]
    assert exp.meta["targets"] == ["2", "0", "1", "2"]
    sub = exp[[1, 3]]
    assert sub.meta["targets"] == ["0", "2"]


@pytest.mark.parametrize("kind", ["tensor", "series"])
@pytest.mark.parametrize("name", ["KernelShap", "PermutationShap", "Lime"])
def test_per_row_targets_equal_one_run_per_row(name, kind):
    model, X, _ = _wine(4)
    bg, rows = X.iloc[:40], X.iloc[[50, 90, 140]]
    raw = [1, 2, 0]
    if kind == "tensor":
        torch = pytest.importorskip("torch")
        targets = torch.tensor(raw)
    else:
        targets = pd.Series(raw, index=rows.index)
    ex = getattr(wb, name)(model, background=bg, random_state=3)
    exp = ex.explain(rows, target=targets, **FAST[name])
    assert exp.values.shape == (3, 4)
    assert exp.output_names == ["per-example target"]
    for i, t in enumerate(raw):
        one = ex.explain(rows.iloc[[i]], target=t, **FAST[name])
        np.testing.assert_allclose(exp.values[i], one.values[0], atol=1e-12)
        np.testing.assert_allclose(exp.base_values[i], one.base_values[0], atol=1e-12)
        np.testing.assert_allclose(exp.predictions[i], model.predict_proba(rows)[i, t])


def test_per_row_target_of_wrong_length_is_refused():
    model, X, _ = _wine(3)
    with pytest.raises(InvalidParameterError, match="per"):
        wb.ExactShap(model, background=X.iloc[:10]).explain(X.iloc[:3], target=np.array([0, 1]))


def test_per_row_targets_on_images_equal_one_run_per_image():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    net.eval()
    x = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    masker = wb.ImageMasker("grid", n_segments=4)
    targets = torch.tensor([2, 0, 1])
    exp = wb.ExactShap(net, masker).explain(x, target=targets)
    assert exp.values.shape == (3, 1, 4, 4)
    assert exp.output_names == ["per-example target"]
    assert exp.params["target"] == ["output 2", "output 0", "output 1"]
    with torch.no_grad():
        out = net(x).numpy()
    np.testing.assert_allclose(exp.predictions, out[np.arange(3), [2, 0, 1]], atol=1e-12)
    # the linear model's segment values in closed form: sum over the segment of w * (x - 0)
    W = net[1].weight.detach().numpy()
    seg = exp.meta["segments"]
    for i, t in enumerate([2, 0, 1]):
        contrib = (W[t] * x[i].numpy().ravel()).reshape(4, 4)
        truth = np.bincount(seg[i].ravel(), weights=contrib.ravel())
        np.testing.assert_allclose(exp.meta["segment_values"][i], truth, atol=1e-10)


# ------------------------------------------------------------------ 2. columns by name
def _models_on(X, y):
    lgb = pytest.importorskip("lightgbm")
    xgb = pytest.importorskip("xgboost")
    return {
        "lightgbm": lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y),
        "xgboost": xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y),
        "sklearn": LogisticRegression(max_iter=5000).fit(X, y),
    }


def _cancer(n_features=4):
    data = load_breast_cancer(as_frame=True)
    return data.data.iloc[:, :n_features], data.target


@pytest.mark.parametrize("name", AGNOSTIC)
def test_reversed_columns_give_the_same_values_per_name(name):
    X, y = _cancer()  # "mean radius", ...: LightGBM renames the spaces to underscores
    rev = list(X.columns[::-1])
    for label, model in _models_on(X, y).items():
        ex = getattr(wb, name)(model, background=X.iloc[:40], random_state=0)
        ref = ex.explain(X.iloc[100:103], **FAST[name])
        # the rows and the background in two other orders
        ex2 = getattr(wb, name)(model, background=X.iloc[:40][rev[1:] + rev[:1]], random_state=0)
        exp = ex2.explain(X.iloc[100:103][rev], **FAST[name])
        proba = model.predict_proba(X.iloc[100:103])[:, 1]
        np.testing.assert_allclose(exp.predictions, proba, rtol=1e-6, err_msg=label)
        assert list(exp.data.columns) == rev, label
        if name == "ShapleyInteractions":
            assert exp.feature_names == [f"{a} × {b}" for a in rev for b in rev]
            idx = [list(X.columns).index(c) for c in rev]
            np.testing.assert_allclose(
                exp.values, ref.values[:, idx][:, :, idx], atol=1e-10, err_msg=label
            )
            continue
        assert exp.feature_names == rev, label
        per_name = pd.DataFrame(exp.values, columns=rev)[list(X.columns)].to_numpy()
        np.testing.assert_allclose(per_name, ref.values, atol=1e-10, err_msg=label)
        np.testing.assert_allclose(exp.base_values, ref.base_values, atol=1e-12, err_msg=label)


def test_lightgbm_with_spaces_explains_the_users_frame():
    lgb = pytest.importorskip("lightgbm")
    X, y = _cancer(3)
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    exp = wb.KernelShap(model, background=X.iloc[:30]).explain(X.iloc[:2], budget=16)
    assert exp.feature_names == list(X.columns)
    np.testing.assert_allclose(exp.predictions, model.predict_proba(X.iloc[:2])[:, 1], rtol=1e-9)


@pytest.mark.parametrize("where", ["X", "background"])
def test_duplicate_column_names_are_an_invalid_input_error(where):
    rng = np.random.default_rng(0)
    good = pd.DataFrame(rng.normal(size=(20, 3)), columns=["a", "b", "c"])
    dup = good.set_axis(["a", "b", "a"], axis=1)
    f = lambda Z: np.asarray(Z, dtype=float).sum(axis=1)  # noqa: E731 - no fitted names
    X, bg = (dup, good) if where == "X" else (good, dup)
    with pytest.raises(InvalidInputError, match=r"duplicated column names: \['a'\]"):
        wb.ExactShap(f, background=bg).explain(X.iloc[:2])


# ------------------------------------------------------------------ 3. backgrounds
@pytest.mark.parametrize("name", AGNOSTIC)
def test_no_background_is_an_error_with_the_advice(name):
    model, X, _ = _wine(3)
    with pytest.raises(InvalidParameterError) as info:
        getattr(wb, name)(model).explain(X.iloc[:2], **FAST[name])
    msg = str(info.value)
    assert "background=" in msg and "X_train.sample(100, random_state=0)" in msg
    assert "wb.Baseline(" in msg


def test_images_without_a_masker_get_the_advice():
    f = lambda Z: np.asarray(Z, dtype=float).reshape(len(Z), -1).sum(axis=1)  # noqa: E731
    images = np.zeros((2, 1, 4, 4))
    with pytest.raises(InvalidParameterError, match=r"wb\.ImageMasker\("):
        wb.KernelShap(f).explain(images, budget=16)


def test_wb_explain_without_background_no_longer_returns_zeros():
    data = load_wine(as_frame=True)
    X = data.data.iloc[:, :4]
    svr = SVR().fit(X, data.target)
    with pytest.raises(InvalidParameterError, match=r"needs? background="):
        wb.explain(svr, X.iloc[[0]])


def test_background_is_used_whole():
    data = load_wine(as_frame=True)
    X, y = data.data.iloc[:, :4], data.target.astype(float)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    bg = X.sample(150, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = wb.ExactShap(model, background=bg).explain(X.iloc[:2])
    assert exp.params["background_rows"] == 150
    # the base value of interventional Shapley values is the mean output over the background
    np.testing.assert_allclose(exp.base_values, model.predict(bg).mean(), rtol=1e-12)


def test_max_background_sample_warns_with_its_measured_effect():
    data = load_wine(as_frame=True)
    X, y = data.data.iloc[:, :4], data.target.astype(float)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="max_background=40") as rec:
        exp = wb.ExactShap(model, background=X, max_background=40).explain(X.iloc[:1])
    assert exp.params["background_rows"] == 40
    msg = next(str(w.message) for w in rec if "max_background=40" in str(w.message))
    figure = float(re.search(r"by ([0-9.e+-]+),", msg).group(1))
    # the base value is the sample's mean output; the effect is its distance to all rows' mean
    truth = abs(exp.base_values[0] - model.predict(X).mean())
    assert truth > 0.0
    np.testing.assert_allclose(figure, truth, rtol=2e-3)


def test_large_background_warns_about_run_time():
    rng = np.random.default_rng(0)
    bg = rng.normal(size=(1200, 2))
    f = lambda Z: Z[:, 0] - Z[:, 1]  # noqa: E731
    with pytest.warns(UserWarning, match=r"1200 rows.*max_background=.*wb\.kmeans"):
        exp = wb.ExactShap(f, background=bg).explain(bg[:1])
    assert exp.params["background_rows"] == 1200


# ------------------------------------------------------------------ 4. keywords
@pytest.mark.parametrize("name", AGNOSTIC)
def test_unknown_keyword_is_refused(name):
    model, X, _ = _wine(3)
    ex = getattr(wb, name)(model, background=X.iloc[:20])
    with pytest.raises(InvalidParameterError, match="tpyo"):
        ex.explain(X.iloc[:1], tpyo=1, **FAST[name])


def test_keyword_messages_name_the_right_place():
    model, X, _ = _wine(3)
    bg = X.iloc[:20]
    with pytest.raises(InvalidParameterError, match="groups=, which belongs to the constructor"):
        wb.ExactShap(model, background=bg).explain(X.iloc[:1], groups={"g": ["alcohol"]})
    with pytest.raises(InvalidParameterError, match=r"shap's spelling.*budget="):
        wb.KernelShap(model, background=bg).explain(X.iloc[:1], nsamples=10)
    for cls in (wb.KernelShap, wb.PermutationShap, wb.Banzhaf, wb.Lime):
        with pytest.raises(InvalidParameterError, match=r"Did you mean budget=\?"):
            cls(model, background=bg).explain(X.iloc[:1], budjet=10)
    with pytest.raises(InvalidParameterError, match="n_picks"):
        wb.SubmodularPick(model, background=bg).explain(X.iloc[:3], n_pick=2)


# ------------------------------------------------------------------ 5. the model is left as it was
def _bn_cnn():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 6 * 6, 2),
    ).double()
    with torch.no_grad():  # running statistics that differ from any batch's own
        net[1].running_mean.fill_(0.3)
        net[1].running_var.fill_(2.0)
    net.train()
    return net


@pytest.mark.parametrize("how", ["ExactShap", "KernelShap", "wb.explain"])
def test_cnn_with_batch_norm_in_training_mode_is_left_unchanged(how):
    torch = pytest.importorskip("torch")
    net = _bn_cnn()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    masker = wb.ImageMasker("grid", n_segments=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def run():
        if how == "wb.explain":
            return wb.explain(net, x, background=masker, target=1)
        kw = {"budget": 16} if how == "KernelShap" else {}
        return getattr(wb, how)(net, masker).explain(x, target=1, **kw)

    with pytest.warns(UserWarning, match="training mode"):
        a = run()
    with pytest.warns(UserWarning, match="training mode"):
        b = run()
    np.testing.assert_array_equal(a.values, b.values)
    assert net.training and all(m.training for m in net.modules())
    after = net.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # evaluated in eval mode: the predictions are the eval-mode outputs
    net.eval()
    with torch.no_grad():
        out = net(x)[:, 1].numpy()
    np.testing.assert_allclose(a.predictions, out, atol=1e-12)


# ------------------------------------------------------------------ 6. completeness warning
class _Noisy:
    """A stochastic model: the same rows give different outputs on every call."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __call__(self, Z):
        Z = np.asarray(Z, dtype=float)
        return Z[:, 0] + 2 * Z[:, 1] + self.rng.normal(scale=0.5, size=len(Z))


@pytest.mark.parametrize("name", ["ExactShap", "KernelShap", "PermutationShap"])
def test_stochastic_model_warns_with_the_completeness_gap(name):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    with pytest.warns(UserWarning, match=r"do not add up to prediction - base value") as rec:
        exp = getattr(wb, name)(_Noisy(), background=X[:20]).explain(X[20:24], **FAST[name])
    msg = next(str(w.message) for w in rec if "do not add up" in str(w.message))
    gap = np.abs(exp.completeness_gap()).max()
    assert f"{gap:.3g}" in msg  # the figure: the largest gap of the explanation


@pytest.mark.parametrize("name", AGNOSTIC)
def test_deterministic_models_are_quiet(name):
    data = load_wine(as_frame=True)
    X = data.data.iloc[:, :4]
    # probabilities near 0 and 1: a scale of ~1e-16 must not turn rounding into a warning
    model = LogisticRegression(C=1e4, max_iter=10000).fit(X, data.target == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = getattr(wb, name)(model, background=X.iloc[:30]).explain(X.iloc[60:64], **FAST[name])
    if name in ("ExactShap", "KernelShap", "PermutationShap", "ShapleyInteractions"):
        assert np.abs(exp.completeness_gap()).max() < 1e-10
