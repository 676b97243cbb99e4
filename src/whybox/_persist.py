"""Saving and loading Explanations: a zip of ``.npy`` arrays and ``meta.json``, no pickle.

Every array is written with ``allow_pickle=False`` and read back the same way; DataFrame
columns, indexes and their dtypes are encoded explicitly (categoricals, strings, nullable
integers, datetimes in their own unit and time zone, intervals). Files are written to a
temporary name and renamed, so a failed write never leaves a broken file behind.
"""

from __future__ import annotations

import numbers
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, InvalidParameterError

_FORMAT = "whybox.explanation"
_FORMAT_VERSION = 2  # 2: exact datetimes, nullable ints, indexes, columns


def _is_rectangular(values: Sequence[Any]) -> bool:
    shapes = {np.shape(v) for v in values}
    return len(shapes) <= 1


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` into something ``json.dumps`` accepts (repr for anything else)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist()) if obj.size <= 10_000 else f"<array {obj.shape}>"
    return repr(obj)


def _put_values(arrays: dict[str, np.ndarray], name: str, values: Any) -> None:
    if isinstance(values, list):
        lengths = np.array([v.shape[0] for v in values], dtype=np.int64)
        arrays[f"{name}_flat"] = (
            np.concatenate(values, axis=0) if values else np.zeros((0,), dtype=float)
        )
        arrays[f"{name}_lengths"] = lengths
    else:
        arrays[name] = values


def _get_values(arrays: dict[str, np.ndarray], name: str, ragged: bool) -> Any:
    if not ragged:
        return arrays.get(name)
    if f"{name}_flat" not in arrays:
        return None
    flat, lengths = arrays[f"{name}_flat"], arrays[f"{name}_lengths"]
    return list(np.split(flat, np.cumsum(lengths)[:-1])) if len(lengths) else []


def _plain_array(a: np.ndarray, what: str) -> np.ndarray:
    """Arrays storable without pickle: object arrays become fixed-width unicode."""
    if a.dtype.kind == "O":
        return a.astype(str)
    if a.dtype.kind == "V":
        raise InvalidInputError(f"{what} has a structured dtype that cannot be saved.")
    return a


_MASKED_ARRAYS = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)


def _encode_series(s: pd.Series, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Store one column (or index level) under ``key``; return its description for meta.json.

    Every dtype is stored exactly except object columns, which are stored as text.
    """
    dtype = s.dtype
    entry: dict[str, Any] = {"dtype": str(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        entry["kind"] = "categorical"
        entry["ordered"] = bool(dtype.ordered)
        arrays[key] = s.cat.codes.to_numpy()
        entry["categories"] = _encode_series(
            pd.Series(dtype.categories), key + "_categories", arrays
        )
    elif isinstance(dtype, pd.DatetimeTZDtype) or (
        isinstance(dtype, np.dtype) and dtype.kind in "mM"
    ):
        arr = s.array  # DatetimeArray / TimedeltaArray: int64 ticks (UTC when tz-aware)
        entry["kind"] = "timedelta" if dtype.kind == "m" else "datetime"
        entry["unit"] = str(arr.unit)
        tz = getattr(dtype, "tz", None)
        entry["tz"] = None if tz is None else str(tz)
        arrays[key] = np.asarray(arr.asi8, dtype=np.int64)
    elif isinstance(dtype, pd.IntervalDtype):  # e.g. the bins of pd.cut
        entry["kind"] = "interval"
        entry["closed"] = str(dtype.closed)
        entry["left"] = _encode_series(pd.Series(s.array.left), key + "_left", arrays)
        entry["right"] = _encode_series(pd.Series(s.array.right), key + "_right", arrays)
        arrays[key + "_isna"] = s.isna().to_numpy()
    elif isinstance(dtype, np.dtype) and dtype.kind == "b":
        entry["kind"] = "bool"
        arrays[key] = s.to_numpy()
    elif isinstance(s.array, _MASKED_ARRAYS):  # nullable Int64 / Float64 / boolean
        entry["kind"] = "masked"
        isna = s.isna().to_numpy()
        fill = False if dtype.kind == "b" else 0
        arrays[key] = s.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        arrays[key + "_isna"] = isna
    elif isinstance(dtype, np.dtype) and dtype.kind in "iufc":
        entry["kind"] = "numeric"
        arrays[key] = s.to_numpy()
    elif pd.api.types.is_numeric_dtype(dtype):  # other extension dtypes (pyarrow, sparse)
        entry["kind"] = "numeric"
        arrays[key] = s.to_numpy(dtype=float, na_value=np.nan)
    else:  # strings, objects (as text), periods, intervals, ...
        entry["kind"] = "string"
        isna = s.isna().to_numpy()
        text = np.array([str(v) for v in s.to_numpy(dtype=object)], dtype=str)
        arrays[key] = np.where(isna, "", text).astype(str) if len(s) else np.zeros(0, "<U1")
        arrays[key + "_isna"] = isna
        if isinstance(dtype, np.dtype) and dtype.kind == "O" and isna.any():
            # keep which missing marker (None, NaN, NA, NaT) each missing cell held
            arrays[key + "_na"] = np.array(
                [_na_code(v) if m else 0 for v, m in zip(s.to_numpy(), isna, strict=True)],
                dtype=np.int8,
            )
    return entry


_NA_MARKERS: tuple[Any, ...] = (None, None, np.nan, pd.NA, pd.NaT)


def _na_code(v: Any) -> int:
    """Which missing marker an object cell holds: 1 None, 2 NaN, 3 pd.NA, 4 pd.NaT."""
    if v is pd.NA:
        return 3
    if v is pd.NaT:
        return 4
    if isinstance(v, float):
        return 2
    return 1


def _decode_series(entry: dict[str, Any], key: str, arrays: dict[str, np.ndarray]) -> pd.Series:
    kind = entry["kind"]
    dtype = entry["dtype"]
    if kind == "categorical":
        if "categories" in entry:
            cats: Any = pd.Index(_decode_series(entry["categories"], key + "_categories", arrays))
        else:  # format version 1
            cats = arrays[key + "_categories"]
        return pd.Series(
            pd.Categorical.from_codes(arrays[key], categories=cats, ordered=entry["ordered"])
        )
    if kind in ("datetime", "timedelta"):
        letter = "m" if kind == "timedelta" else "M"
        ticks = arrays[key].astype(np.int64).view(f"{letter}8[{entry.get('unit', 'ns')}]")
        s = pd.Series(ticks)
        if entry.get("tz") is not None:
            return s.dt.tz_localize("UTC").astype(pd.api.types.pandas_dtype(dtype))
        return s if str(s.dtype) == dtype else s.astype(dtype)
    if kind == "interval":
        left = _decode_series(entry["left"], key + "_left", arrays)
        right = _decode_series(entry["right"], key + "_right", arrays)
        intervals = pd.arrays.IntervalArray.from_arrays(left, right, closed=entry["closed"])
        if arrays[key + "_isna"].any():  # (missing intervals have NaN ends already)
            intervals[arrays[key + "_isna"]] = np.nan
        return pd.Series(intervals).astype(dtype)
    if kind == "masked":
        arr = pd.array(arrays[key], dtype=dtype)
        arr[arrays[key + "_isna"]] = pd.NA
        return pd.Series(arr)
    if kind == "string":
        vals = arrays[key].astype(object)
        vals[arrays[key + "_isna"]] = None
        if key + "_na" in arrays:
            for i in np.flatnonzero(arrays[key + "_na"]):
                vals[i] = _NA_MARKERS[int(arrays[key + "_na"][i])]
        s = pd.Series(vals, dtype=object)
        if dtype == "object":
            return s
        try:
            return s.astype(dtype)
        except (TypeError, ValueError):  # a dtype that cannot be parsed back from text
            return s
    s = pd.Series(arrays[key])
    return s if str(s.dtype) == dtype else s.astype(dtype)


def _encode_index(idx: pd.Index, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if isinstance(idx, pd.RangeIndex):
        return {
            "kind": "range",
            "start": int(idx.start),
            "stop": int(idx.stop),
            "step": int(idx.step),
            "name": _jsonable(idx.name),
        }
    if isinstance(idx, pd.MultiIndex):
        return {
            "kind": "multi",
            "names": [_jsonable(nm) for nm in idx.names],
            "levels": [
                _encode_series(
                    pd.Series(idx.get_level_values(i)).reset_index(drop=True),
                    f"{key}_level{i}",
                    arrays,
                )
                for i in range(idx.nlevels)
            ],
        }
    freq = (
        getattr(idx, "freqstr", None)
        if isinstance(idx, (pd.DatetimeIndex, pd.TimedeltaIndex))
        else None
    )
    return {
        "kind": "index",
        "name": _jsonable(idx.name),
        "freq": freq,
        "values": _encode_series(pd.Series(idx).reset_index(drop=True), key, arrays),
    }


def _label(name: Any) -> Any:
    """JSON turns tuples into lists; labels must be hashable again."""
    return tuple(_label(x) for x in name) if isinstance(name, list) else name


def _decode_index(meta: dict[str, Any], key: str, arrays: dict[str, np.ndarray]) -> pd.Index:
    kind = meta["kind"]
    if kind == "range":
        return pd.RangeIndex(meta["start"], meta["stop"], meta["step"], name=_label(meta["name"]))
    if kind == "multi":
        levels = [
            _decode_series(e, f"{key}_level{i}", arrays) for i, e in enumerate(meta["levels"])
        ]
        return pd.MultiIndex.from_arrays(levels, names=[_label(nm) for nm in meta["names"]])
    if kind == "values":  # format version 1
        return pd.Index(arrays[key], name=_label(meta.get("name")))
    idx = pd.Index(_decode_series(meta["values"], key, arrays), name=_label(meta["name"]))
    if meta.get("freq") and isinstance(idx, pd.DatetimeIndex):
        idx = pd.DatetimeIndex(idx, freq=meta["freq"])
    elif meta.get("freq") and isinstance(idx, pd.TimedeltaIndex):
        idx = pd.TimedeltaIndex(idx, freq=meta["freq"])
    return idx


def _encode_data(
    data: Any, arrays: dict[str, np.ndarray], ragged: bool = False
) -> dict[str, Any] | None:
    if data is None:
        return None
    if isinstance(data, pd.DataFrame):
        cols = [
            _encode_series(data.iloc[:, j], f"data_col{j}", arrays) for j in range(data.shape[1])
        ]
        return {
            "kind": "frame",
            "n_rows": len(data),
            "columns": cols,
            "column_index": _encode_index(data.columns, "data_columns", arrays),
            "index": _encode_index(data.index, "data_index", arrays),
        }
    if isinstance(data, (list, tuple)) and (ragged or not _is_rectangular(data)):
        rows = [np.asarray(d) for d in data]
        arrays["data_flat"] = _plain_array(
            np.concatenate([r.reshape(-1) for r in rows]) if rows else np.zeros(0),
            "data",
        )
        arrays["data_lengths"] = np.array([r.size for r in rows], dtype=np.int64)
        ndims = {r.ndim for r in rows}
        if len(ndims) == 1:
            arrays["data_shapes"] = np.array([r.shape for r in rows], dtype=np.int64).reshape(
                len(rows), ndims.pop()
            )
        return {"kind": "ragged"}
    arrays["data"] = _plain_array(np.asarray(data), "data")
    return {"kind": "array"}


def _decode_data(meta: dict[str, Any] | None, arrays: dict[str, np.ndarray]) -> Any:
    if meta is None:
        return None
    kind = meta["kind"]
    if kind == "array":
        return arrays["data"]
    if kind == "ragged":
        flat, lengths = arrays["data_flat"], arrays["data_lengths"]
        rows = list(np.split(flat, np.cumsum(lengths)[:-1])) if len(lengths) else []
        shapes = arrays.get("data_shapes")
        if shapes is None:
            return rows
        if shapes.shape[1] == 0:  # one scalar (a text, say) per row
            return flat.tolist()
        return [r.reshape(tuple(sh)) for r, sh in zip(rows, shapes.tolist(), strict=True)]
    columns = [
        _decode_series(entry, f"data_col{j}", arrays) for j, entry in enumerate(meta["columns"])
    ]
    index = _decode_index(meta["index"], "data_index", arrays)
    if "column_index" in meta:
        column_index = _decode_index(meta["column_index"], "data_columns", arrays)
    else:  # format version 1
        column_index = pd.Index([_label(e["name"]) for e in meta["columns"]])
    frame = pd.DataFrame(dict(enumerate(columns)), index=pd.RangeIndex(len(index)))
    frame.columns = column_index
    frame.index = index
    return frame


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file next to ``path``, then rename it over ``path``."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InvalidParameterError(
            f"cannot save to {str(path)!r}: the folder {str(directory)!r} does not exist. "
            "Create it first or choose another path."
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)  # the usual permissions, after the umask
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 random 64-bit names all taken
        raise OSError(f"could not create a temporary file in {str(directory)!r}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
