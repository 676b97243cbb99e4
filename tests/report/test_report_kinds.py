"""wb.report builds the right report for every kind of Explanation (issue 13 items 2 and 8).

Oracles: the model's own predict_proba (the class each row is read for), hand-made data
whose ranges are known, and the rows drawn (structure, not timings, for the O(n log n) rule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import whybox as wb
from whybox.errors import InvalidInputError
from whybox.explanation import Explanation


@pytest.fixture(scope="module")
def iris_case():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    bg, rows = X.iloc[::10], X.iloc[[0, 60, 120, 75, 140, 30]]
    exp = wb.ExactShap(model, background=bg).explain(rows, target="all")
    return model, X, y, rows, bg, exp


def _section(rep, sid):
    found = [s for s in rep.sections if s.get("id") == sid]
    return found[0] if found else None


def test_all_classes_report_reads_each_row_for_its_predicted_class(iris_case):
    model, _, y, rows, bg, exp = iris_case
    rep = wb.report(exp, model=model, X=rows, X_train=bg, y=y.loc[rows.index], quality_rows=3)
    classes = _section(rep, "classes")
    assert classes is not None and len(classes["header"]) == 1 + 3
    predicted = model.predict_proba(rows).argmax(axis=1)
    local = _section(rep, "local")
    for item, cls in zip(local["rows"], predicted[:3], strict=True):
        assert item["heading"].endswith(f"explained output {cls}")
    quality = _section(rep, "quality")
    assert quality is not None
    metrics = [r[0] for r in quality["blocks"][0]["rows"]]
    assert metrics[:3] == ["deletion", "insertion", "faithfulness_correlation"]
    assert "<html" in rep.to_html()


def test_one_class_report_evaluates_that_class(iris_case):
    model, _, _, rows, bg, exp = iris_case
    for one in (exp[:, :, "2"], wb.ExactShap(model, background=bg).explain(rows, target=2)):
        rep = wb.report(one, model=model, X=rows, X_train=bg, quality_rows=3)
        quality = _section(rep, "quality")
        assert quality is not None and quality["blocks"][0]["rows"][0][0] == "deletion"
        table = wb.evaluate(one[:3], model, rows.iloc[:3], background=bg, metrics=["deletion"])
        curve = wb.metrics.deletion(one[:3], model, rows.iloc[:3], background=bg)
        np.testing.assert_allclose(curve.full, model.predict_proba(rows.iloc[:3])[:, 2])
        assert quality["blocks"][0]["rows"][0][1].startswith(f"{table.loc['deletion', 'mean']:.4g}")


def test_report_allow_nan_for_a_model_that_accepts_nan():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    y = X["a"] - 2 * X["b"] + rng.normal(size=300) * 0.1
    X.loc[::5, "b"] = np.nan
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y.fillna(0))
    rows, bg = X.iloc[:10], X.iloc[100:140]
    exp = wb.TreeShap(model).explain(rows)
    kw = {
        "model": model,
        "X": rows,
        "X_train": bg,
        "quality_rows": 4,
        "rows": [],
        "top_features": 0,
    }
    with pytest.raises(InvalidInputError, match="allow_nan=True"):
        wb.report(exp, **kw)
    rep = wb.report(exp, allow_nan=True, **kw)
    assert _section(rep, "quality") is not None


def test_out_of_range_matches_training_columns_by_name():
    X = pd.DataFrame({"small": [0.0, 1.0, 2.0, 1.0], "large": [300.0, 100.0, 200.0, 250.0]})
    exp = Explanation(np.zeros((4, 2)), np.zeros(4), data=X)
    from whybox.report.limitations import out_of_range

    # every explained value lies inside the training range of its own column
    assert out_of_range(exp, X) == []
    assert out_of_range(exp, X[["large", "small"]]) == []
    rep = wb.report(exp, X_train=X[["large", "small"]])
    assert _section(rep, "limitations") is None
    outside = out_of_range(exp, X[["large", "small"]].assign(small=[0.0, 0.5, 1.0, 1.0]))
    assert [(d["feature"], d["values"]) for d in outside] == [("small", ["2"])]
    with pytest.raises(InvalidInputError, match=r"lacks the explained features \['large'\]"):
        wb.report(exp, X_train=X[["small"]])
    with pytest.raises(InvalidInputError, match="has 1 columns but 2 features"):
        out_of_range(exp, X[["small"]].to_numpy())


@pytest.fixture(scope="module")
def cnn_case():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 8 * 8, 4),
    ).eval()
    x = torch.rand(2, 1, 8, 8)
    exp = wb.IntegratedGradients(net).explain(x, target=torch.tensor([1, 3]), baseline=0, steps=256)
    return net, x, exp


def test_image_explanation_gets_the_vision_report(cnn_case):
    _, _, exp = cnn_case
    rep = wb.report(exp)
    figs = _section(rep, "attributions")
    assert figs is not None and len(figs["figures"]) == 2
    assert all(f["src"].startswith("data:image/svg+xml;base64,") for f in figs["figures"])
    assert figs["figures"][1]["caption"].startswith("image 1: explained output output 3")


def test_image_report_with_model_and_x(cnn_case):
    net, x, exp = cnn_case
    rep = wb.report(exp.__class__(**{**_kw(exp), "data": None}), model=net, X=x)
    ids = [s["id"] for s in rep.sections]
    assert "attributions" in ids and "quality" in ids
    assert "compare-methods" in ids and "compare-curves" in ids
    quality = _section(rep, "quality")
    assert [r[0] for r in quality["blocks"][0]["rows"]] == [
        "deletion",
        "insertion",
        "faithfulness_correlation",
        "infidelity",
    ]


def _kw(exp):
    return {
        "values": exp.values,
        "base_values": exp.base_values,
        "data": exp.data,
        "feature_names": exp.feature_names,
        "output_names": exp.output_names,
        "predictions": exp.predictions,
        "method": exp.method,
        "params": exp.params,
        "meta": exp.meta,
    }


def _big(n, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{j}" for j in range(p)])
    values = X.to_numpy() * np.arange(1, p + 1)
    return Explanation(values, np.zeros(n), data=X, predictions=values.sum(axis=1))


def test_row_plots_draw_a_documented_sample_beyond_their_size():
    from whybox.viz.plots import MAX_ROWS
    from whybox.viz.plots_rows import HEATMAP_MAX_ROWS

    exp = _big(6000)
    ax = exp.plot.heatmap()
    assert ax.images[0].get_array().shape[1] == HEATMAP_MAX_ROWS == 500
    assert "a random sample of 500 of 6,000 rows" in ax.get_xlabel()
    ax = exp.plot.beeswarm()
    assert all(len(c.get_offsets()) == MAX_ROWS == 5000 for c in ax.collections)
    assert "a random sample of 5,000 of 6,000 rows" in ax.get_xlabel()
    ax = exp.plot.scatter("f0")
    assert len(ax.collections[0].get_offsets()) == 5000
    small = _big(300)
    assert small.plot.heatmap().images[0].get_array().shape[1] == 300


def test_report_of_many_rows_says_it_samples():
    exp = _big(30_000)
    rep = wb.report(exp, X_train=exp.data)
    notes = " ".join(m["note"] for m in _section(rep, "importance")["more"])
    assert "random sample of 5,000 of the 30,000" in notes
    assert "random sample of 500 of the 30,000" in notes
    assert "normal-approximation" in _section(rep, "importance")["lead"]
