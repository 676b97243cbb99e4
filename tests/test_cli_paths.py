"""The command line's outputs, columns, NaN flag and messages (issue 13, items 2, 8 and 9).

* Missing folders on the way to ``--out`` / ``--report`` are created, by every command, once the
  work has succeeded; nothing is written when a later step fails.
* ``whybox report`` / ``evaluate`` match DATA's columns by name.
* Messages are printed verbatim (no Rich markup), name the right extra, and name the command
  line's option for a library keyword.
* ``whybox[all]`` installs what the command line reads.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import tomllib
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app
from whybox.errors import InvalidParameterError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _flat(text: str) -> str:
    """Help text without Rich's box characters and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def linear(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])
    joblib.dump(model, tmp_path / "model.joblib")
    X.iloc[:5].to_csv(tmp_path / "rows.csv", index=False)
    X.to_csv(tmp_path / "bg.csv", index=False)
    return tmp_path, model, X


def _explain_args(tmp: Path, *more: str) -> list[str]:
    return [
        "explain",
        str(tmp / "model.joblib"),
        str(tmp / "rows.csv"),
        "--trust-model",
        "--background",
        str(tmp / "bg.csv"),
        *more,
    ]


def test_missing_output_folders_are_created_after_the_work(linear):
    tmp, model, X = linear
    out, rep = tmp / "new" / "a" / "e.whybox", tmp / "new" / "b" / "rep"
    res = runner.invoke(app, _explain_args(tmp, "--out", str(out), "--report", str(rep)))
    assert res.exit_code == 0, res.output
    exp = wb.load(out)
    # exact interventional SHAP of a linear model over the whole background: closed form
    expected = model.coef_ * (X.iloc[:5].to_numpy() - X.to_numpy().mean(axis=0))
    np.testing.assert_allclose(exp.values, expected, atol=1e-10)
    assert (rep / "index.html").is_file()
    # the same rule for a report written as a .html file, and for evaluate's --out
    res = runner.invoke(
        app, _explain_args(tmp, "--out", str(out), "--report", str(tmp / "x/r.html"))
    )
    assert res.exit_code == 0, res.output
    assert (tmp / "x" / "r.html").is_file()
    q = tmp / "q" / "r" / "quality.csv"
    args = ["evaluate", str(out), str(tmp / "model.joblib"), str(tmp / "rows.csv")]
    res = runner.invoke(app, [*args, "-b", str(tmp / "bg.csv"), "--trust-model", "--out", str(q)])
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(q, index_col=0).columns)[:2] == ["mean", "std"]


def test_existing_output_file_is_replaced(linear):
    tmp, _, _ = linear
    out = tmp / "e.whybox"
    out.write_bytes(b"an older file")
    res = runner.invoke(app, _explain_args(tmp, "--out", str(out)))
    assert res.exit_code == 0, res.output
    assert wb.load(out).n_rows == 5


def test_nothing_is_written_when_a_later_step_fails(linear, monkeypatch):
    import whybox.report

    def broken_report(*args, **kwargs):
        raise InvalidParameterError("the report could not be built (test).")

    monkeypatch.setattr(whybox.report, "report", broken_report)
    tmp, _, _ = linear
    out, rep = tmp / "e.whybox", tmp / "rep"
    res = runner.invoke(app, _explain_args(tmp, "--out", str(out), "--report", str(rep)))
    assert res.exit_code == 2
    assert "the report could not be built" in res.stderr
    assert not out.exists() and not rep.exists()


def test_missing_package_message_is_verbatim_and_names_the_extra(linear, monkeypatch):
    xgb = pytest.importorskip("xgboost")
    tmp, _, X = linear
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=X["a"]), num_boost_round=2)
    booster.save_model(str(tmp / "m.ubj"))
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost -> ImportError
    res = runner.invoke(app, ["explain", str(tmp / "m.ubj"), str(tmp / "rows.csv")])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("Install it with: pip install 'whybox[cli]'"), lines[0]


def test_help_shows_extras_and_options_verbatim():
    res = runner.invoke(app, ["explain", "--help"])
    assert res.exit_code == 0
    text = _flat(res.output)
    assert "needs whybox[dask] here" in text
    # the link rule and the background it needs, in the help
    assert "--link logit" in text and "needs --background" in text
    for command in ("report", "evaluate", "explain"):
        res = runner.invoke(app, [command, "--help"])
        assert "--allow-nan" in _flat(res.output), command


def test_all_extra_installs_what_the_cli_reads():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]

    def resolve(name: str) -> set[str]:
        out = set()
        for req in extras[name]:
            m = re.match(r"whybox\[([^\]]+)\]", req)
            if m:
                for sub in m.group(1).split(","):
                    out |= resolve(sub.strip())
            else:
                out.add(re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower())
        return out

    for extra in ("all", "cli"):
        assert {"xgboost-cpu", "lightgbm", "pyarrow"} <= resolve(extra), extra
    # the CLI's MissingDependencyError names an extra that exists
    assert "cli" in extras
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for package in ("xgboost-cpu", "lightgbm", "pyarrow"):
        assert pins[package] == version(package), package


def test_library_keyword_in_a_message_names_the_cli_option(linear, monkeypatch):
    import whybox.api

    def refusing(*args, **kwargs):
        raise InvalidParameterError(
            "the probability of a boosted ensemble has no fast exact method; pass "
            "background=X_train.sample(100, random_state=0), or link='logit' for TreeSHAP "
            "(max_background= summarises it)."
        )

    monkeypatch.setattr(whybox.api, "explain", refusing)
    tmp, _, _ = linear
    res = runner.invoke(app, _explain_args(tmp, "--out", str(tmp / "e.whybox")))
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert "\n" not in line
    assert line.endswith(
        "(at the command line: background= is --background FILE; link= is --link)"
    ), line
    assert not (tmp / "e.whybox").exists()


def test_report_matches_data_columns_by_name(tmp_path):
    """DATA with its columns in another order gives the same report as in the model's order."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(200, 3)) * [1.0, 10.0, 100.0], columns=["a", "b", "c"])
    y = (X["a"] - X["b"] / 10 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    wb.ExactShap(model, background=X.iloc[:30]).explain(X.iloc[:6], target=1).save(
        tmp_path / "exp.whybox"
    )
    X.assign(y=y).iloc[100:].to_csv(tmp_path / "test.csv", index=False)
    X.assign(y=y).iloc[100:, ::-1].to_csv(tmp_path / "test_rev.csv", index=False)
    X.iloc[:100].to_csv(tmp_path / "train.csv", index=False)
    X.iloc[:100, ::-1].assign(y=y.iloc[:100]).to_csv(tmp_path / "train_rev.csv", index=False)
    html = {}
    for name, (data, train) in {
        "ordered": ("test.csv", "train.csv"),
        "reversed": ("test_rev.csv", "train_rev.csv"),
    }.items():
        args = ["report", str(tmp_path / "exp.whybox"), str(tmp_path / "model.joblib")]
        args += [str(tmp_path / data), "--label", "y", "--train", str(tmp_path / train)]
        args += ["--trust-model", "--out", str(tmp_path / name)]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        html[name] = (tmp_path / name / "index.html").read_text()
    assert html["reversed"] == html["ordered"]


def test_nan_rows_need_allow_nan_in_evaluate_and_report(tmp_path):
    """A model that handles missing values: refused without --allow-nan (naming it), scored with."""
    import inspect

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] + X["b"] > 0).astype(int)
    X.iloc[::7, 1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    exp = wb.ExactShap(model, background=X.iloc[:40], allow_nan=True).explain(
        X.iloc[40:50], target=1, link="logit"
    )
    exp.save(tmp_path / "exp.whybox")
    X.iloc[40:50].to_csv(tmp_path / "rows.csv", index=False)
    X.iloc[:40].to_csv(tmp_path / "bg.csv", index=False)
    X.iloc[50:].assign(y=y.iloc[50:]).to_csv(tmp_path / "test.csv", index=False)
    ev = ["evaluate", str(tmp_path / "exp.whybox"), str(tmp_path / "model.joblib")]
    ev += [str(tmp_path / "rows.csv"), "-b", str(tmp_path / "bg.csv"), "--trust-model"]
    ev += ["--metrics", "deletion,insertion"]
    res = runner.invoke(app, ev)
    assert res.exit_code == 2
    assert "--allow-nan" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(app, [*ev, "--allow-nan"])
    assert res.exit_code == 0, res.output
    ref = wb.evaluate(
        exp,
        model,
        X.iloc[40:50].reset_index(drop=True),
        background=X.iloc[:40],
        metrics=["deletion", "insertion"],
        allow_nan=True,
    )
    assert "deletion" in res.output and f"{ref.loc['deletion', 'mean']:.4g}" in res.output
    if "allow_nan" not in inspect.signature(wb.report).parameters:
        pytest.skip("wb.report(allow_nan=) is not in this tree yet")
    rep = ["report", str(tmp_path / "exp.whybox"), str(tmp_path / "model.joblib")]
    rep += [str(tmp_path / "test.csv"), "-y", "y", "--trust-model", "--out", str(tmp_path / "r")]
    res = runner.invoke(app, rep)
    assert res.exit_code == 2 and "--allow-nan" in res.stderr
    assert not (tmp_path / "r").exists()
    res = runner.invoke(app, [*rep, "--allow-nan"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "index.html").is_file()
