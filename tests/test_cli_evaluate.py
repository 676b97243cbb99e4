"""``whybox evaluate``: a saved explanation, a model file and the rows -> the quality table."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    model = LinearRegression().fit(X, X @ [2.0, -1.0, 0.5, 0.0])
    bg, rows = X.iloc[:40], X.iloc[100:110]
    exp = wb.LinearShap(model, background=bg).explain(rows)
    paths = {k: tmp_path / k for k in ("exp.whybox", "model.joblib", "rows.csv", "bg.csv")}
    exp.save(paths["exp.whybox"])
    joblib.dump(model, paths["model.joblib"])
    rows.to_csv(paths["rows.csv"], index=False)
    bg.to_csv(paths["bg.csv"], index=False)
    return paths, model, rows, bg, exp


def test_evaluate_writes_the_table(files, tmp_path):
    paths, model, rows, bg, exp = files
    out = tmp_path / "quality.csv"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(paths["exp.whybox"]),
            str(paths["model.joblib"]),
            str(paths["rows.csv"]),
            "--background",
            str(paths["bg.csv"]),
            "--trust-model",
            "--out",
            str(out),
            "--seed",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "faithfulness_correlation" in res.output and "infidelity" in res.output
    table = pd.read_csv(out, index_col=0)
    # the same numbers as the API on the same inputs (CSV rows lose their index labels)
    ref = wb.evaluate(exp.values, model, rows.reset_index(drop=True), background=bg, random_state=2)
    np.testing.assert_allclose(table["mean"], ref["mean"], rtol=1e-12, atol=1e-20)
    assert table.loc["faithfulness_correlation", "mean"] == pytest.approx(1.0)
    assert list(table.columns) == ["mean", "std", "n", "higher_is_better", "statistic", "reading"]


def test_evaluate_uses_saved_rows_and_chosen_metrics(files):
    paths, *_ = files
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(paths["exp.whybox"]),
            str(paths["model.joblib"]),
            "--trust-model",
            "--metrics",
            "deletion,insertion",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "deletion" in res.output and "infidelity" not in res.output


def test_evaluate_refuses_pickle_and_bad_metric(files):
    paths, *_ = files
    res = runner.invoke(app, ["evaluate", str(paths["exp.whybox"]), str(paths["model.joblib"])])
    assert res.exit_code == 2
    assert "--trust-model" in res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(paths["exp.whybox"]),
            str(paths["model.joblib"]),
            "--trust-model",
            "--metrics",
            "sparsity",
        ],
    )
    assert res.exit_code == 2
    assert "metrics='sparsity' is not supported" in res.output
