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
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    assert headings == [
        "Summary",
        "Data",
        "Global importance",
        "Feature effects",
        "Denied applicants and their principal reasons",
        "Counterfactual recourse",
        "Ground truth comparison",
        "Explanation quality",
        "Limitations",
    ]
    assert "accuracy" in html and "ROC AUC" in html
    # three denied applicants, each with a waterfall and with a recourse table
    assert len(re.findall(r"<h3>Applicant ", html)) == 6
    for h3 in (
        "Faithfulness of the exact explanation",
        "Stability of lime across random seeds",
        "Agreement between exact and lime",
        "Sampled estimates with wide intervals (lime)",
    ):
        assert f"<h3>{h3}</h3>" in html
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
            "--background",
            str(tmp / "bg.csv"),
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
    # without a method the CLI picks TreeSHAP, exact on the log-odds (--link logit; the
    # probability of a boosted model is not additive over trees): XGBoost's own contributions
    # are the oracle
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp_path / "m.json"),
            str(tmp_path / "rows.csv"),
            "--link",
            "logit",
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


# ---------------------------------------------------------------------- report
@pytest.fixture
def report_files(tmp_path):
    """A saved explanation of a logistic regression, its model file and data with labels."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    y = (X["a"] - X["b"] + 0.5 * rng.normal(size=300) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    exp = wb.ExactShap(model, background=X.iloc[:30]).explain(X.iloc[:8], target=1)
    exp.save(tmp_path / "exp.whybox")
    X.assign(y=y).iloc[150:].to_csv(tmp_path / "test.csv", index=False)
    X.iloc[:150].to_csv(tmp_path / "train.csv", index=False)
    return tmp_path, model, X, y


def test_report_command_writes_full_report(report_files):
    from sklearn.metrics import accuracy_score

    tmp, model, X, y = report_files
    args = ["report", str(tmp / "exp.whybox"), str(tmp / "model.joblib"), str(tmp / "test.csv")]
    args += ["--label", "y", "--train", str(tmp / "train.csv"), "--rows", "1,2"]
    args += ["--out", str(tmp / "rep"), "--trust-model", "--title", "<b>credit</b>"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    html = (tmp / "rep" / "index.html").read_text()
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    assert headings[:4] == ["Summary", "Data", "Global importance", "Feature effects"]
    assert "Local explanations" in headings and "Explanation quality" in headings
    assert "Counterfactual recourse" not in headings  # not asked for
    assert len(re.findall(r"<h3>Row ", html)) == 2
    acc = accuracy_score(y.iloc[150:], model.predict(X.iloc[150:]))
    assert f"{acc:.4g}" in html
    assert "&lt;b&gt;credit&lt;/b&gt;" in html and "<b>credit</b>" not in html
    assert "report written to" in result.output


def test_report_command_refuses_pickle_without_trust(report_files):
    tmp, *_ = report_files
    args = ["report", str(tmp / "exp.whybox"), str(tmp / "model.joblib"), str(tmp / "test.csv")]
    result = runner.invoke(app, [*args, "--out", str(tmp / "rep")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "unpickling" in text and "--trust-model" in text
    assert not (tmp / "rep").exists()


def test_report_command_bad_inputs(report_files):
    tmp, *_ = report_files
    base = ["report", str(tmp / "exp.whybox"), str(tmp / "model.joblib"), str(tmp / "test.csv")]
    base += ["--trust-model", "--out", str(tmp / "rep")]
    result = runner.invoke(app, [*base, "--label", "outcome"])
    assert result.exit_code == 2
    assert "--label 'outcome' is not a column" in " ".join(result.output.split())
    result = runner.invoke(app, [*base, "--rows", "one,two"])
    assert result.exit_code == 2
    assert "comma-separated row positions" in " ".join(result.output.split())
    bare = wb.Explanation(np.zeros((2, 3)), 0.0, feature_names=["a", "b", "c"])
    bare.save(tmp / "bare.whybox")
    args = ["report", str(tmp / "bare.whybox"), str(tmp / "model.joblib"), str(tmp / "test.csv")]
    result = runner.invoke(app, [*args, "--trust-model", "--out", str(tmp / "rep")])
    assert result.exit_code == 2
    assert "holds no data rows" in " ".join(result.output.split())
