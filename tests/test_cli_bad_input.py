"""Every bad input at the command line: one line naming the problem, exit code 2, nothing written.

``BAD_INPUTS`` is the table (a module-level list, importable by the conformance matrix):
each case is a command line over the files :func:`make_cli_files` writes, and the pattern its
one-line message must match. :func:`check_bad_input` runs a case and checks the contract:

* exit code 2;
* stderr is exactly one line, ``error: <message>``, matching the case's pattern; stdout empty;
* the folder is unchanged afterwards: no file or folder created (outputs, their missing parent
  folders, temporary files), and every existing file byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import whybox as wb
from whybox.cli import app

runner = CliRunner()


@dataclass(frozen=True)
class BadInput:
    """One bad command line: ``argv`` with ``{d}`` standing for the folder of the files."""

    id: str
    argv: tuple[str, ...]
    pattern: str

    def args(self, folder: Path) -> list[str]:
        return [a.replace("{d}", str(folder)) for a in self.argv]


def make_cli_files(folder: Path) -> None:
    """Write the good and bad input files the table refers to into ``folder``."""
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    folder = Path(folder)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    y = (X["a"] - X["b"] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "seed": 0},
        xgb.DMatrix(X, label=y),
        num_boost_round=3,
    )
    booster.save_model(str(folder / "model.ubj"))
    lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(X, label=y),
        num_boost_round=3,
    ).save_model(str(folder / "model.txt"))
    lr = LogisticRegression().fit(X, y)
    joblib.dump(lr, folder / "model.joblib")
    X.iloc[:5].to_csv(folder / "rows.csv", index=False)
    X.iloc[40:].to_csv(folder / "bg.csv", index=False)
    X.assign(y=y).iloc[40:].to_csv(folder / "test.csv", index=False)
    X.iloc[40:, :2].to_csv(folder / "missing_c.csv", index=False)
    X.iloc[:40].to_csv(folder / "train.csv", index=False)
    X.iloc[:40, [0, 2]].to_csv(folder / "train_missing_b.csv", index=False)
    wb.ExactShap(lr, background=X.iloc[40:60]).explain(X.iloc[:6], target=1).save(
        folder / "exp.whybox"
    )
    (folder / "malformed.csv").write_text('a,b,c\n1,2,3\n4,5,6,7,8\n"9,10\n')
    (folder / "empty.csv").write_text("")
    (folder / "blank.csv").write_text("\n\n")
    (folder / "header_only.csv").write_text("a,b,c\n")
    (folder / "duplicate.csv").write_text("a,a,b\n1,2,3\n")
    (folder / "latin1.csv").write_bytes("a,b,c\n\xe9,\xff,\xfe\n".encode("latin-1"))
    (folder / "garbage.ubj").write_bytes(b"\x00\x01garbage" * 20)
    (folder / "garbage.json").write_text("{not json")
    (folder / "garbage.txt").write_text("tree\nthis is not a model\n")
    (folder / "garbage.joblib").write_bytes(b"\x80\x04garbage")
    (folder / "garbage.parquet").write_bytes(b"PAR1garbage")
    (folder / "garbage.whybox").write_bytes(b"garbage")
    (folder / "a_folder").mkdir()
    (folder / "a_folder" / "keep.txt").write_text("keep")
    (folder / "notes.txt").write_text("my notes\n")


_X = ("explain", "{d}/model.ubj")
_XR = ("explain", "{d}/model.ubj", "{d}/rows.csv", "--background", "{d}/bg.csv")
_REP = ("report", "{d}/exp.whybox", "{d}/model.joblib")
_EV = ("evaluate", "{d}/exp.whybox", "{d}/model.joblib")
_NEW = "{d}/new/sub"  # a folder that does not exist: no part of it may be created

BAD_INPUTS: list[BadInput] = [
    # data files
    BadInput(
        "malformed-csv",
        (*_X, "{d}/malformed.csv", "-o", f"{_NEW}/e.whybox"),
        r"data file '.*malformed\.csv' is not a well-formed CSV file \(.*\); every row needs",
    ),
    BadInput(
        "failed-run-keeps-existing-out",
        (*_X, "{d}/malformed.csv", "-o", "{d}/exp.whybox", "--report", "{d}/a_folder"),
        r"data file '.*malformed\.csv' is not a well-formed CSV",
    ),
    BadInput("empty-csv", (*_X, "{d}/empty.csv"), r"data file '.*empty\.csv' is empty"),
    BadInput("blank-csv", (*_X, "{d}/blank.csv"), r"data file '.*blank\.csv' is empty"),
    BadInput(
        "header-only-csv", (*_X, "{d}/header_only.csv"), r"has a header but no rows; it needs"
    ),
    BadInput(
        "duplicate-columns",
        (*_X, "{d}/duplicate.csv"),
        r"duplicate column names \['a'\]; columns are matched by name",
    ),
    BadInput("not-utf8-csv", (*_X, "{d}/latin1.csv"), r"is not UTF-8 text .*save it as a UTF-8"),
    BadInput("missing-data", (*_X, "{d}/nope.csv"), r"data file '.*nope\.csv' does not exist"),
    BadInput("data-is-folder", (*_X, "{d}/a_folder"), r"data file '.*a_folder' is a folder"),
    BadInput(
        "garbage-parquet",
        (*_X, "{d}/garbage.parquet"),
        r"data file '.*garbage\.parquet' is not a readable Parquet file",
    ),
    BadInput(
        "malformed-background",
        (*_X, "{d}/rows.csv", "--background", "{d}/malformed.csv"),
        r"background file '.*malformed\.csv' is not a well-formed CSV",
    ),
    BadInput(
        "unknown-data-type",
        (*_X, "{d}/exp.whybox"),
        r"unknown data file type '\.whybox' .* use \.csv, \.tsv or \.parquet",
    ),
    # model files
    BadInput(
        "garbage-ubj",
        ("explain", "{d}/garbage.ubj", "{d}/rows.csv", "-o", f"{_NEW}/e.whybox"),
        r"model file '.*garbage\.ubj' is not a readable XGBoost model \(XGBoost says: .*\); "
        r"save the model with booster\.save_model",
    ),
    BadInput("garbage-json", ("explain", "{d}/garbage.json", "{d}/rows.csv"), r"is not valid JSON"),
    BadInput(
        "garbage-lightgbm",
        ("explain", "{d}/garbage.txt", "{d}/rows.csv"),
        r"model file '.*garbage\.txt' is not a readable LightGBM model \(LightGBM says: .*\)",
    ),
    BadInput(
        "garbage-pickle",
        ("explain", "{d}/garbage.joblib", "{d}/rows.csv", "--trust-model"),
        r"model file '.*garbage\.joblib' could not be unpickled \(",
    ),
    BadInput(
        "pickle-untrusted",
        ("explain", "{d}/model.joblib", "{d}/rows.csv"),
        r"refusing to load .* pass(ing)? --trust-model",
    ),
    BadInput("missing-model", ("explain", "{d}/nope.ubj", "{d}/rows.csv"), r"does not exist"),
    BadInput("model-is-folder", ("explain", "{d}/a_folder", "{d}/rows.csv"), r"is a folder"),
    # output paths of explain
    BadInput(
        "out-is-folder",
        (*_XR, "--out", "{d}/a_folder"),
        r"--out '.*a_folder' is an existing folder; --out names the file to write, e\.g\.",
    ),
    BadInput(
        "report-is-file",
        (*_XR, "--out", f"{_NEW}/e.whybox", "--report", "{d}/notes.txt"),
        r"--report '.*notes\.txt' is an existing file, not a folder",
    ),
    BadInput(
        "out-under-a-file",
        (*_XR, "--out", "{d}/notes.txt/e.whybox"),
        r"--out '.*notes\.txt/e\.whybox' cannot be created: '.*notes\.txt' is a file",
    ),
    BadInput(
        "report-under-a-file",
        (*_XR, "--report", "{d}/notes.txt/rep"),
        r"--report '.*notes\.txt/rep' cannot be created: '.*notes\.txt' is a file",
    ),
    BadInput(
        "out-is-the-data",
        (*_XR, "--out", "{d}/rows.csv"),
        r"--out '.*rows\.csv' is one of this command's input files",
    ),
    BadInput(
        "out-and-report-same-file",
        (*_XR, "--out", f"{_NEW}/r.html", "--report", f"{_NEW}/r.html"),
        r"--out and --report both name",
    ),
    BadInput(
        "scheduler-and-n-jobs",
        (*_XR, "--scheduler", "tcp://127.0.0.1:1", "--n-jobs", "2", "-o", f"{_NEW}/e.whybox"),
        r"--scheduler and --n-jobs choose different executors",
    ),
    # report: columns by name, the label, output paths
    BadInput(
        "report-missing-column",
        (*_REP, "{d}/missing_c.csv", "--trust-model", "--out", f"{_NEW}/rep"),
        r"data file '.*missing_c\.csv' lacks the columns \['c'\] that the explanation was "
        r"computed on",
    ),
    BadInput(
        "report-label-is-a-feature",
        (*_REP, "{d}/test.csv", "--trust-model", "--label", "a", "--out", f"{_NEW}/rep"),
        r"--label 'a' is a feature of the explanation .* would lack the columns \['a'\]",
    ),
    BadInput(
        "report-extra-column",
        (*_REP, "{d}/test.csv", "--trust-model", "--out", f"{_NEW}/rep"),
        r"has columns \['y'\] that are not features of the explanation .* --label",
    ),
    BadInput(
        "report-train-missing-column",
        (*_REP, "{d}/test.csv", "--trust-model", "-y", "y", "--train", "{d}/train_missing_b.csv"),
        r"--train file '.*train_missing_b\.csv' lacks the columns \['b'\]",
    ),
    BadInput(
        "report-out-is-file",
        (*_REP, "{d}/test.csv", "--trust-model", "-y", "y", "--out", "{d}/notes.txt"),
        r"--out '.*notes\.txt' is an existing file, not a folder",
    ),
    BadInput(
        "report-garbage-explanation",
        ("report", "{d}/garbage.whybox", "{d}/model.joblib", "{d}/test.csv", "--trust-model"),
        r"'.*garbage\.whybox' is not a whybox explanation file",
    ),
    BadInput(
        "report-malformed-data",
        (*_REP, "{d}/malformed.csv", "--trust-model", "--out", f"{_NEW}/rep"),
        r"data file '.*malformed\.csv' is not a well-formed CSV",
    ),
    # evaluate
    BadInput(
        "evaluate-out-is-folder",
        (*_EV, "{d}/rows.csv", "--trust-model", "--out", "{d}/a_folder"),
        r"--out '.*a_folder' is an existing folder",
    ),
    BadInput(
        "evaluate-missing-column",
        (*_EV, "{d}/missing_c.csv", "--trust-model", "--out", f"{_NEW}/q.csv"),
        r"data file '.*missing_c\.csv' lacks the columns \['c'\]",
    ),
    BadInput(
        "evaluate-empty-data",
        (*_EV, "{d}/empty.csv", "--trust-model", "--out", f"{_NEW}/q.csv"),
        r"data file '.*empty\.csv' is empty",
    ),
    BadInput(
        "evaluate-missing-explanation",
        ("evaluate", "{d}/nope.whybox", "{d}/model.joblib", "--trust-model"),
        r"explanation file '.*nope\.whybox' does not exist",
    ),
]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a digest of its bytes ('<dir>' for folders)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = "<dir>"
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def check_bad_input(case: BadInput, folder: Path, cli=app) -> None:
    """Run ``case`` over the files in ``folder`` and check the one-line, exit-2, no-write rule."""
    folder = Path(folder)
    before = _snapshot(folder)
    result = runner.invoke(cli, case.args(folder))
    err = result.stderr
    assert result.exit_code == 2, (case.id, result.exit_code, result.output[-3000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, (case.id, err)
    assert lines[0].startswith("error: "), (case.id, err)
    assert re.search(case.pattern, lines[0]), (case.id, case.pattern, lines[0])
    assert result.stdout == "", (case.id, result.stdout)
    assert _snapshot(folder) == before, (case.id, "the folder changed")


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    make_cli_files(folder)
    return folder


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, cli_folder):
    check_bad_input(case, cli_folder)


def test_table_ids_are_unique():
    ids = [c.id for c in BAD_INPUTS]
    assert len(ids) == len(set(ids))
