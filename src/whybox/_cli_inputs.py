"""The command line's files: reading models and data, checking output paths, matching columns.

Everything here runs before any explaining, so that a bad file or path costs nothing and
leaves nothing behind. Each problem is a :class:`~whybox.errors.WhyboxError` whose message
names the file and says what to do; the CLI prints it on one line and exits with code 2.

Output paths follow one rule for every command (``--out`` and ``--report``):

* a missing folder on the way to an output is created (like ``mkdir -p``), but only once the
  work has succeeded, just before writing;
* an existing output *file* of the right kind is replaced (atomically); an existing folder
  where a file is expected, or an existing file where a report folder is expected, is refused;
* a path whose nearest existing ancestor is a file, or a folder this user cannot write in, is
  refused; an output that would replace one of the command's own input files is refused.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, InvalidParameterError, MissingDependencyError

__all__ = [
    "HTML_SUFFIXES",
    "PICKLE_SUFFIXES",
    "align_categoricals",
    "check_output_file",
    "check_output_report",
    "explained_columns",
    "load_data",
    "load_explanation",
    "load_model",
    "make_parents",
    "match_columns",
    "nan_option",
    "parse_target",
    "report_target",
]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill")
HTML_SUFFIXES = (".html", ".htm")
#: the optional extra that installs what the command line reads (XGBoost, LightGBM, Parquet)
CLI_EXTRA = "cli"


def _q(path: Path) -> str:
    return repr(str(path))


def _reason(exc: BaseException, limit: int = 160) -> str:
    """The first line of a library's error, without XGBoost's ``[time] file.cc:line:`` prefix."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^\[[0-9:]+\]\s*\S+:\d+:\s*", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_input_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InvalidInputError(f"{what} {_q(path)} does not exist; check the path.")
    if path.is_dir():
        raise InvalidInputError(f"{what} {_q(path)} is a folder; pass the file itself.")


# ---------------------------------------------------------------------- models
def load_model(path: Path, trust_model: bool = False) -> Any:
    """Load a model file: XGBoost JSON/UBJ or LightGBM text (safe), pickle only if trusted.

    Raises
    ------
    InvalidInputError
        If the file is missing, a folder, or not a readable model of its type.
    InvalidParameterError
        For a pickle file without ``trust_model``, or an unknown file type.
    MissingDependencyError
        If XGBoost or LightGBM is needed and not installed (``pip install 'whybox[cli]'``).
    """
    path = Path(path)
    _check_input_file(path, "model file")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path, trust_model)
    if suffix in (".json", ".ubj"):
        return _load_xgboost(path, suffix)
    if suffix in (".txt", ".lgb", ".model"):
        return _load_lightgbm(path)
    raise InvalidParameterError(
        f"unknown model file type {suffix!r} for {_q(path)}. Supported: XGBoost .json/.ubj, "
        f"LightGBM .txt, or (with --trust-model) pickle/joblib files {list(PICKLE_SUFFIXES)}."
    )


def _load_pickle(path: Path, trust_model: bool) -> Any:
    if not trust_model:
        raise InvalidParameterError(
            f"refusing to load {_q(path)}: it is a pickle/joblib file, and unpickling "
            "runs whatever code the file contains. Load it only if you created it or trust "
            "its source, by passing --trust-model. Safer: save XGBoost models with "
            "booster.save_model('model.json') and LightGBM with save_model('model.txt')."
        )
    import joblib

    try:
        return joblib.load(path)
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"model file {_q(path)} needs the module {exc.name!r} to unpickle, and it is not "
            "installed here; install the package the model was made with."
        ) from exc
    except Exception as exc:
        raise InvalidInputError(
            f"model file {_q(path)} could not be unpickled ({type(exc).__name__}: "
            f"{_reason(exc)}); is it a complete pickle/joblib file of a fitted model?"
        ) from exc


def _load_xgboost(path: Path, suffix: str) -> Any:
    if suffix == ".json":
        try:
            head = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{_q(path)} is not valid JSON: {_reason(exc)}.") from exc
        if not isinstance(head, dict) or "learner" not in head:
            raise InvalidInputError(
                f"{_q(path)} is JSON but not an XGBoost model (no 'learner' key); save the "
                "model with booster.save_model('model.json')."
            )
    try:
        import xgboost as xgb
    except ImportError as exc:
        raise MissingDependencyError("xgboost", CLI_EXTRA, "loading an XGBoost model") from exc
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except Exception as exc:  # xgboost.core.XGBoostError, with a C++ backtrace
        raise InvalidInputError(
            f"model file {_q(path)} is not a readable XGBoost model (XGBoost says: "
            f"{_reason(exc)}); save the model with booster.save_model('model.ubj') or "
            "'model.json'."
        ) from exc
    return booster


def _load_lightgbm(path: Path) -> Any:
    with path.open("r", errors="replace") as fh:
        first = fh.readline().strip()
    if first != "tree":
        raise InvalidInputError(
            f"{_q(path)} is not a LightGBM text model (its first line is {first[:40]!r}, "
            "expected 'tree'); save the model with booster.save_model('model.txt')."
        )
    try:
        import lightgbm as lgb
    except ImportError as exc:
        raise MissingDependencyError("lightgbm", CLI_EXTRA, "loading a LightGBM model") from exc
    try:
        return lgb.Booster(model_file=str(path))
    except Exception as exc:  # lightgbm.basic.LightGBMError
        raise InvalidInputError(
            f"model file {_q(path)} is not a readable LightGBM model (LightGBM says: "
            f"{_reason(exc)}); save the model with booster.save_model('model.txt')."
        ) from exc


# ---------------------------------------------------------------------- data
def load_data(path: Path, what: str = "data file") -> Any:
    """Read a CSV, TSV or Parquet file into a DataFrame with at least one row.

    Raises
    ------
    InvalidInputError
        If the file is missing, empty, malformed, has duplicate column names or no rows.
    InvalidParameterError
        For an unknown file type.
    """
    import pandas as pd

    path = Path(path)
    _check_input_file(path, what)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        empty = InvalidInputError(
            f"{what} {_q(path)} is empty; expected a header row naming the columns and one "
            "row per example."
        )
        if path.stat().st_size == 0:
            raise empty
        _check_header(path, sep, what)
        try:
            data = pd.read_csv(path, sep=sep)
        except pd.errors.EmptyDataError as exc:
            raise empty from exc
        except pd.errors.ParserError as exc:
            raise InvalidInputError(
                f"{what} {_q(path)} is not a well-formed {'TSV' if sep == chr(9) else 'CSV'} "
                f"file ({_reason(exc)}); every row needs as many fields as the header (quote "
                "fields that contain the separator)."
            ) from exc
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{what} {_q(path)} is not UTF-8 text ({_reason(exc)}); save it as a UTF-8 CSV."
            ) from exc
    elif suffix in (".parquet", ".pq"):
        try:
            data = pd.read_parquet(path)
        except ImportError as exc:
            raise MissingDependencyError("pyarrow", CLI_EXTRA, "reading Parquet files") from exc
        except Exception as exc:  # pyarrow.lib.ArrowInvalid and friends
            raise InvalidInputError(
                f"{what} {_q(path)} is not a readable Parquet file ({type(exc).__name__}: "
                f"{_reason(exc)})."
            ) from exc
        dup = sorted({str(c) for c in data.columns if list(data.columns).count(c) > 1})
        if dup:
            raise _duplicates(path, what, dup)
    else:
        raise InvalidParameterError(
            f"unknown data file type {suffix!r} for {_q(path)}; use .csv, .tsv or .parquet."
        )
    if len(data) == 0:
        raise InvalidInputError(
            f"{what} {_q(path)} has a header but no rows; it needs one row per example."
        )
    return data


def _check_header(path: Path, sep: str, what: str) -> None:
    """Refuse duplicate column names, which pandas would silently rename ('a', 'a.1')."""
    with path.open("r", newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    seen: set[str] = set()
    dup = sorted({c for c in header if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dup:
        raise _duplicates(path, what, dup)


def _duplicates(path: Path, what: str, dup: list[str]) -> InvalidInputError:
    return InvalidInputError(
        f"{what} {_q(path)} has duplicate column names {dup}; columns are matched by name, so "
        "each name must appear once. Rename or drop the duplicates."
    )


def match_columns(
    X: Any, expected: list[str], *, what: str, path: Path, label: str | None = None
) -> Any:
    """``X``'s columns put in the order of ``expected``, matched by name.

    Raises
    ------
    InvalidInputError
        Naming the missing columns (and, when ``label`` is one of them, saying that the label
        is a feature), or the columns that are not features (suggesting ``--label``).
    """
    have = [str(c) for c in X.columns]
    X = X.set_axis(have, axis=1)
    missing = [c for c in expected if c not in have]
    if label is not None and label in expected:
        raise InvalidInputError(
            f"--label {label!r} is a feature of the explanation (a column the model was "
            f"explained on), not the outcome: taken out as the label, {what} {_q(path)} would "
            f"lack the columns {[label]}. Pass the outcome's column as --label, or leave "
            "--label out."
        )
    if missing:
        raise InvalidInputError(
            f"{what} {_q(path)} lacks the columns {missing} that the explanation was computed "
            f"on (columns are matched by name; it has {have}). Pass a file with every feature."
        )
    extra = [c for c in have if c not in expected]
    if extra:
        hint = " If one of them is the outcome, name it with --label." if label is None else ""
        raise InvalidInputError(
            f"{what} {_q(path)} has columns {extra} that are not features of the explanation "
            f"(its features: {list(expected)}); drop them from the file.{hint}"
        )
    return X[list(expected)]


# ---------------------------------------------------------------------- outputs
def report_target(path: Path) -> Path:
    """The HTML file a report for ``path`` is written to (as ``Report.save`` does)."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in HTML_SUFFIXES:
        return path / "index.html"
    return path


def _check_ancestors(target: Path, option: str, shown: Path) -> None:
    """The nearest existing ancestor of ``target`` must be a folder this user can write in."""
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidParameterError(
            f"{option} {_q(shown)} cannot be created: {_q(parent)} is a file, not a folder. "
            "Choose another path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameterError(
            f"{option} {_q(shown)} cannot be written: no permission to write in the folder "
            f"{_q(parent)}. Choose another path."
        )


def _check_not_input(target: Path, option: str, shown: Path, inputs: Iterable[Any]) -> None:
    if not target.exists():
        return
    for inp in inputs:
        if inp is not None and Path(inp).exists() and Path(inp).resolve() == target.resolve():
            raise InvalidParameterError(
                f"{option} {_q(shown)} is one of this command's input files and would be "
                "overwritten; choose another output path."
            )


def check_output_file(path: Path, option: str, *, example: str, inputs: Iterable[Any] = ()) -> None:
    """Check, before any work, that ``path`` can be written as a file (see the module rule)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidParameterError(
            f"{option} {_q(path)} is an existing folder; {option} names the file to write, "
            f"e.g. {option} {str(path / example)!r}."
        )
    _check_ancestors(path, option, path)
    _check_not_input(path, option, path, inputs)


def check_output_report(path: Path, option: str, *, inputs: Iterable[Any] = ()) -> Path:
    """Check a report destination (a folder, or a ``.html`` file) before any work.

    Returns
    -------
    Path
        The HTML file that will be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir() and path.suffix.lower() not in HTML_SUFFIXES:
        raise InvalidParameterError(
            f"{option} {_q(path)} is an existing file, not a folder; {option} takes a folder "
            "(index.html is written in it) or a .html file name."
        )
    target = report_target(path)
    if target.is_dir():
        raise InvalidParameterError(
            f"{option} {_q(path)}: {_q(target)} is a folder, so the report cannot be written "
            "there; choose another path."
        )
    _check_ancestors(target, option, path)
    _check_not_input(target, option, path, inputs)
    return target


def make_parents(path: Path) -> None:
    """Create the missing folders above ``path`` (after the work, just before writing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------- options and rows
def parse_target(target: str | None) -> Any:
    """``--target``: ``None``, ``"all"``, one label or index, or a comma-separated list.

    Integers are passed as ints (a class label is matched first, then an index), other
    strings as they are.
    """
    if target is None:
        return None
    parts = [t.strip() for t in target.split(",") if t.strip()]

    def one(t: str) -> Any:
        try:
            return int(t)
        except ValueError:
            return t

    if len(parts) == 1:
        return parts[0] if parts[0] == "all" else one(parts[0])
    return [one(t) for t in parts]


def align_categoricals(model: Any, X: Any) -> Any:
    """Give columns an XGBoost booster declares categorical the pandas category dtype."""
    types = getattr(model, "feature_types", None)
    names = getattr(model, "feature_names", None)
    if types and names:
        X = X.copy()
        for name, t in zip(names, types, strict=False):
            if t == "c" and name in X.columns:
                X[name] = X[name].astype("category")
    return X


def explained_columns(exp: Any) -> list[str] | None:
    """The column names of the rows saved with ``exp`` (None when they carry no names)."""
    columns = getattr(exp.data, "columns", None)
    return None if columns is None else [str(c) for c in columns]


def nan_option(fn: Any, allow_nan: bool, where: str) -> dict[str, Any]:
    """``{"allow_nan": allow_nan}`` for a library function that takes it."""
    import inspect

    if "allow_nan" in inspect.signature(fn).parameters:
        return {"allow_nan": allow_nan}
    if allow_nan:  # pragma: no cover - only while the library function lacks the option
        raise InvalidParameterError(
            f"--allow-nan is not supported by {where} in this version of whybox; remove the "
            "rows with missing values or impute them."
        )
    return {}


def load_explanation(path: Path) -> Any:
    """``wb.load(path)``, with a missing file or a folder said in one line."""
    from .explanation import load

    path = Path(path)
    _check_input_file(path, "explanation file")
    return load(path)
