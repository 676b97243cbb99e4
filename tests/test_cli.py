"""The whybox command line: quickstart, explain, safe model loading."""

from __future__ import annotations

import re

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app

runner = CliRunner()


def test_help_lists_commands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    assert "quickstart" in out.output and "explain" in out.output
    out = runner.invoke(app, ["explain", "--help"])
    assert out.exit_code == 0
    for option in ("--trust-model", "--target", "--method", "--out", "--report"):
        assert option in out.output
    out = runner.invoke(app, ["quickstart", "--help"])
    assert out.exit_code == 0 and "--out" in out.output


def test_version():
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and wb.__version__ in out.output


def test_quickstart_writes_report(tmp_path):
    out_dir = tmp_path / "rep"
    result = runner.invoke(
        app,
        [
            "quickstart",
            "--out",
            str(out_dir),
            "--n",
            "800",
            "--explain-rows",
            "12",
            "--background-rows",
            "15",
        ],
    )
    assert result.exit_code == 0, result.output
    html = (out_dir / "index.html").read_text()
    assert "Denied applicants and their principal reasons" in html
    assert "Ground truth comparison" in html
    assert "accuracy" in html and "ROC AUC" in html
    assert len(re.findall(r"<h3>Applicant ", html)) == 3
    assert "http://" not in html and "https://" not in html
    assert "whybox quickstart" in result.output


@pytest.fixture
def linear_files(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])
    joblib.dump(model, tmp_path / "model.joblib")
    X.iloc[:5].to_csv(tmp_path / "rows.csv", index=False)
    X.to_csv(tmp_path / "bg.csv", index=False)
    return tmp_path, model, X


def test_pickle_is_refused_without_trust(linear_files):
    tmp, _, _ = linear_files
    out = runner.invoke(app, ["explain", str(tmp / "model.joblib"), str(tmp / "rows.csv")])
    assert out.exit_code == 2
    text = " ".join(out.output.split())
    assert "unpickling" in text and "--trust-model" in text
    assert not (tmp / "explanation.whybox").exists()


def test_trusted_pickle_explains_with_closed_form(linear_files):
    tmp, model, X = linear_files
    target = tmp / "e.whybox"
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp / "model.joblib"),
            str(tmp / "rows.csv"),
            "--trust-model",
            "--background",
            str(tmp / "bg.csv"),
            "--out",
            str(target),
        ],
    )
    assert out.exit_code == 0, out.output
    exp = wb.load(target)
    # exact interventional SHAP of a linear model; the background is subsampled to 100 rows
    # at most, and here has 50, so it is used whole
    expected = model.coef_ * (X.iloc[:5].to_numpy() - X.to_numpy().mean(axis=0))
    np.testing.assert_allclose(exp.values, expected, atol=1e-10)
    assert exp.feature_names == ["a", "b", "c"]


def test_csv_output_and_report(linear_files):
    tmp, _model, _X = linear_files
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp / "model.joblib"),
            str(tmp / "rows.csv"),
            "--trust-model",
            "--out",
            str(tmp / "v.csv"),
            "--report",
            str(tmp / "rep"),
        ],
    )
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp / "v.csv", index_col=0)
    assert list(table.columns) == ["a", "b", "c"] and len(table) == 5
    assert (tmp / "rep" / "index.html").exists()


def test_xgboost_json_model(tmp_path):
    xgb = pytest.importorskip("xgboost")
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("pqrs"))
    y = (X["p"] + X["q"] * X["r"] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 0},
        xgb.DMatrix(X, label=y),
        num_boost_round=10,
    )
    booster.save_model(str(tmp_path / "m.json"))
    X.iloc[:4].to_csv(tmp_path / "rows.csv", index=False)
    X.iloc[:30].to_csv(tmp_path / "bg.csv", index=False)
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp_path / "m.json"),
            str(tmp_path / "rows.csv"),
            "--method",
            "exact",
            "--background",
            str(tmp_path / "bg.csv"),
            "--target",
            "1",
            "--out",
            str(tmp_path / "e.whybox"),
        ],
    )
    assert out.exit_code == 0, out.output
    exp = wb.load(tmp_path / "e.whybox")
    ref = shap.explainers.ExactExplainer(
        lambda Z: booster.predict(xgb.DMatrix(pd.DataFrame(Z, columns=list("pqrs")))),
        shap.maskers.Independent(X.iloc[:30], max_samples=30),
    )(X.iloc[:4])
    np.testing.assert_allclose(exp.values, ref.values, atol=1e-6)
    assert exp.params["output"] == "probability of class 1"
    # without a method the CLI picks TreeSHAP: XGBoost's own contributions are the oracle
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp_path / "m.json"),
            str(tmp_path / "rows.csv"),
            "--out",
            str(tmp_path / "t.whybox"),
        ],
    )
    assert out.exit_code == 0, out.output
    tree = wb.load(tmp_path / "t.whybox")
    contribs = booster.predict(xgb.DMatrix(X.iloc[:4]), pred_contribs=True)
    np.testing.assert_allclose(tree.values, contribs[:, :-1], atol=1e-6)
    assert tree.method == "tree"


def test_lightgbm_text_model(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["u", "v", "w"])
    y = X["u"] * 2 - X["v"]
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_leaves": 7, "seed": 0},
        lgb.Dataset(X, label=y),
        num_boost_round=15,
    )
    booster.save_model(str(tmp_path / "m.txt"))
    X.iloc[:3].to_csv(tmp_path / "rows.csv", index=False)
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp_path / "m.txt"),
            str(tmp_path / "rows.csv"),
            "--out",
            str(tmp_path / "e.whybox"),
        ],
    )
    assert out.exit_code == 0, out.output
    exp = wb.load(tmp_path / "e.whybox")
    np.testing.assert_allclose(exp.predictions, booster.predict(X.iloc[:3]), atol=1e-10)
    assert np.abs(exp.completeness_gap()).max() < 1e-10


@pytest.mark.parametrize(
    ("model_name", "content", "words"),
    [
        ("m.onnx", "x", ["unknown model file type", ".onnx"]),
        ("m.json", '{"a": 1}', ["not an XGBoost model"]),
        ("m.txt", "hello", ["not a LightGBM text model"]),
    ],
)
def test_bad_model_files(tmp_path, model_name, content, words):
    (tmp_path / model_name).write_text(content)
    (tmp_path / "rows.csv").write_text("a\n1\n")
    out = runner.invoke(app, ["explain", str(tmp_path / model_name), str(tmp_path / "rows.csv")])
    assert out.exit_code == 2
    text = " ".join(out.output.split())
    for w in words:
        assert w in text


def test_missing_data_file(linear_files):
    tmp, _, _ = linear_files
    out = runner.invoke(
        app, ["explain", str(tmp / "model.joblib"), str(tmp / "nope.csv"), "--trust-model"]
    )
    assert out.exit_code == 2 and "does not exist" in " ".join(out.output.split())
