"""The one result type of whybox.

Every explainer returns an :class:`Explanation`. Plots, reports, metrics, the CLI and
distributed execution read only this type.

Layout
------
``values`` has shape ``(n, *feature_shape)`` when one output is explained and
``(n, *feature_shape, k)`` when ``k`` outputs are. ``base_values`` is ``(n,)`` or ``(n, k)``; its
number of dimensions is what tells the two layouts apart. For ragged inputs (texts with
different token counts, RAG answers with different numbers of documents) ``values`` is a list
of per-row arrays ``(p_i,)`` or ``(p_i, k)`` and ``feature_names`` a list of per-row name lists.

Indexing never drops the row axis: ``exp[0]`` is a one-row Explanation, so every Explanation
has the same layout and every consumer can rely on it (use ``exp.values[0]`` for the raw row).
A feature selector keeps the feature axis as well; an integer or name in the third (output)
position selects one output and drops the output axis.
"""

from __future__ import annotations

import html
import importlib
import io
import json
import math
import numbers
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._selection import PER_ROW_OUTPUT, ROW_KEYS, Selection
from .errors import InvalidInputError, InvalidParameterError

__all__ = ["PER_ROW_OUTPUT", "ROW_KEYS", "Explanation", "load"]

# persistence helpers live in ._persist; _atomic_write is re-exported for the report and CLI
from ._persist import (
    _FORMAT,
    _FORMAT_VERSION,
    _atomic_write,
    _decode_data,
    _encode_data,
    _get_values,
    _is_rectangular,
    _jsonable,
    _put_values,
)

#: Accessors served by packages that build on this module: attribute -> (module, class).
#: The module is imported by name on first use, as pandas finds its plotting backend, so
#: ``explanation`` never imports the layers above it (no import circle with ``viz``).
_ACCESSORS = {"plot": ("whybox.viz.accessor", "PlotAccessor")}


def _accessor(name: str) -> Any:
    module, cls = _ACCESSORS[name]
    return getattr(importlib.import_module(module), cls)


class Explanation(Selection):
    """Attributions for a batch of explained inputs, with everything needed to read them.

    Parameters
    ----------
    values : ndarray of shape ``(n, *feature_shape)`` or ``(n, *feature_shape, k)``, or list
        Attributions. A list gives one array per row for ragged inputs.
    base_values : array of shape (n,) or (n, k), default 0.0
        The value the attributions are measured from (expected model output under the
        background for Shapley methods). A scalar is broadcast to all rows.
    data : ndarray, DataFrame, list or None, default None
        The explained inputs, row-aligned with ``values``.
    feature_names : list of str, or list of list of str for ragged rows, optional
        Names of the features (players); defaults to the DataFrame columns of ``data``, else
        ``x0, x1, ...``.
    output_names : list of str or None, default None
        Names of the explained outputs, one per output (also for a single output); with
        ``k`` outputs and None, ``output 0, output 1, ...``.
    std : same layout as ``values`` or None, default None
        Standard errors of sampled estimates.
    predictions : array of shape (n,) or (n, k) or None, default None
        Model outputs for the explained inputs, on the same scale as the values.
    method : str, default ""
        Name of the method that produced the values.
    params : dict or None, default None
        JSON-serialisable parameters, including ``params["output"]`` describing the output.
    n_evals : int or None, default None
        Model evaluations (coalitions, samples, steps) per explained row.
    random_state : int or None, default None
        Seed used, for reproducibility.
    meta : dict or None, default None
        Extra JSON-serialisable information (fidelity, timing, ...). ``meta["row_keys"]``
        lists the keys whose values hold one entry per explained row (an array with a leading
        row axis, or a list): row selection (``exp[rows]``) selects those entries too, so
        per-row information such as segment maps or completeness gaps stays aligned.

    Raises
    ------
    InvalidInputError
        If the shapes disagree: ``values`` without a row or feature axis, ``base_values``,
        ``predictions``, ``std``, ``data``, ``feature_names`` or ``output_names`` not
        matching the rows, features or outputs of ``values``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> exp = wb.explain(LinearRegression().fit(X, y), X.iloc[:5], background=X)
    >>> exp.values.shape, exp.base_values.shape, exp.method
    ((5, 10), (5,), 'linear')
    >>> # values add up to the prediction minus the base value (completeness)
    >>> bool(np.allclose(exp.values.sum(axis=1), exp.predictions - exp.base_values))
    True
    >>> exp[0].values.shape  # indexing keeps the row axis
    (1, 10)
    """

    def __init__(
        self,
        values: Any,
        base_values: Any = 0.0,
        *,
        data: Any = None,
        feature_names: Sequence[str] | Sequence[Sequence[str]] | None = None,
        output_names: Sequence[str] | None = None,
        std: Any = None,
        predictions: Any = None,
        method: str = "",
        params: dict[str, Any] | None = None,
        n_evals: int | None = None,
        random_state: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        ragged = isinstance(values, (list, tuple)) and (
            len(values) == 0 or not _is_rectangular(values) or _is_nested_names(feature_names)
        )
        if ragged:
            vals = [np.asarray(v, dtype=float) for v in values]
            n = len(vals)
        else:
            vals = np.asarray(values, dtype=float)
            if vals.ndim == 0:
                raise InvalidInputError(
                    "values must have a row axis: expected shape (n, *feature_shape[, k]), "
                    "got a scalar."
                )
            n = vals.shape[0]
        bv = np.asarray(base_values, dtype=float)
        if bv.ndim == 0:
            bv = np.full(n, float(bv))
        if bv.ndim > 2 or bv.shape[0] != n:
            raise InvalidInputError(
                f"base_values must have shape (n,) or (n, k) with n={n} rows, got {bv.shape}."
            )
        multi = bv.ndim == 2
        self.values = vals
        self.base_values = bv
        self.data = data
        self.std = (
            None
            if std is None
            else ([np.asarray(s, dtype=float) for s in std] if ragged else np.asarray(std, float))
        )
        self.predictions = None if predictions is None else np.asarray(predictions, dtype=float)
        self.method = str(method)
        self.params = dict(params or {})
        self.n_evals = None if n_evals is None else int(n_evals)
        self.random_state = random_state
        self.meta = dict(meta or {})

        if ragged:
            for i, v in enumerate(vals):
                if v.ndim != (2 if multi else 1):
                    raise InvalidInputError(
                        f"row {i} of ragged values has shape {v.shape}; expected "
                        + ("(p_i, k)" if multi else "(p_i,)")
                        + " to match base_values of shape "
                        + str(bv.shape)
                        + "."
                    )
        elif multi and (vals.ndim < 3 or vals.shape[-1] != bv.shape[1]):
            raise InvalidInputError(
                f"values of shape {vals.shape} do not match base_values of shape {bv.shape}: "
                "with k outputs values must be (n, *feature_shape, k)."
            )
        elif not multi and vals.ndim < 2:
            raise InvalidInputError(
                f"values of shape {vals.shape} have no feature axis; expected (n, p)."
            )
        if self.predictions is not None and self.predictions.shape != bv.shape:
            raise InvalidInputError(
                f"predictions of shape {self.predictions.shape} must match base_values {bv.shape}."
            )
        if self.std is not None:
            std_shapes = [s.shape for s in self.std] if ragged else [self.std.shape]
            val_shapes = [v.shape for v in vals] if ragged else [vals.shape]
            if std_shapes != val_shapes:
                raise InvalidInputError("std must have exactly the same shape as values.")

        if feature_names is None:
            if isinstance(data, pd.DataFrame) and not ragged:
                feature_names = [str(c) for c in data.columns]
            elif ragged:
                feature_names = [[f"x{j}" for j in range(v.shape[0])] for v in vals]
            else:
                p = int(np.prod(self.feature_shape))
                feature_names = [f"x{j}" for j in range(p)]
        if ragged:
            if any(isinstance(row, str) for row in feature_names):  # type: ignore[union-attr]
                raise InvalidInputError(
                    "ragged feature_names must give one list of names per row "
                    "(a list of lists of str), got a flat list of str."
                )
            fn = [[str(s) for s in row] for row in feature_names]  # type: ignore[union-attr]
            if len(fn) != n or any(len(f) != v.shape[0] for f, v in zip(fn, vals, strict=True)):
                raise InvalidInputError(
                    "ragged feature_names must give one list of names per row, each as long "
                    "as that row's values."
                )
            self.feature_names: list[str] | list[list[str]] = fn
        else:
            fn = [str(s) for s in feature_names]  # type: ignore[union-attr]
            if len(fn) != int(np.prod(self.feature_shape)):
                raise InvalidInputError(
                    f"got {len(fn)} feature_names for feature shape {self.feature_shape} "
                    f"({int(np.prod(self.feature_shape))} features)."
                )
            self.feature_names = fn
        k = bv.shape[1] if multi else 1
        if output_names is None:
            output_names = [f"output {j}" for j in range(k)] if multi else None
        if output_names is not None:
            output_names = [str(o) for o in output_names]
            if len(output_names) != k:
                raise InvalidInputError(
                    f"got {len(output_names)} output_names for {k} explained output(s)."
                )
        self.output_names = output_names
        n_data = _n_data_rows(data)
        if n_data is not None and n_data != n:
            raise InvalidInputError(
                f"data has {n_data} rows but values has {n}; data must hold the explained "
                "inputs, one row per explained row."
            )

    # ------------------------------------------------------------------ layout
    @property
    def is_ragged(self) -> bool:
        """True when values is a list of per-row arrays of different lengths."""
        return isinstance(self.values, list)

    @property
    def multi_output(self) -> bool:
        """True when several outputs are explained (values has a trailing output axis)."""
        return self.base_values.ndim == 2

    @property
    def n_outputs(self) -> int:
        return int(self.base_values.shape[1]) if self.multi_output else 1

    @property
    def n_rows(self) -> int:
        return int(self.base_values.shape[0])

    def __len__(self) -> int:
        return self.n_rows

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of the feature axes of one row (rectangular Explanations only)."""
        if self.is_ragged:
            raise InvalidParameterError(
                "this Explanation is ragged (rows have different numbers of features); "
                "it has no single feature_shape. Use exp.row_values(i) per row."
            )
        end = self.values.ndim - (1 if self.multi_output else 0)
        return tuple(self.values.shape[1:end])

    @property
    def feature_axes(self) -> tuple[int, ...]:
        """Axes of ``values`` that index features (rectangular Explanations only)."""
        return tuple(range(1, 1 + len(self.feature_shape)))

    @property
    def is_tabular(self) -> bool:
        """True when rows are rectangular with a 1-D feature axis."""
        return not self.is_ragged and len(self.feature_shape) == 1

    def row_values(self, i: int) -> np.ndarray:
        """Values of row ``i`` flattened over features: shape (p_i,) or (p_i, k)."""
        v = self.values[i]
        if self.is_ragged:
            return v
        return v.reshape(-1, self.n_outputs) if self.multi_output else v.reshape(-1)

    def row_feature_names(self, i: int) -> list[str]:
        """Feature names of row ``i`` (the shared names for rectangular Explanations)."""
        return list(self.feature_names[i]) if self.is_ragged else list(self.feature_names)

    def row_data(self, i: int) -> np.ndarray | None:
        """Inputs of row ``i`` flattened like :meth:`row_values`, or None without data."""
        if self.data is None:
            return None
        if isinstance(self.data, pd.DataFrame):
            return self.data.iloc[i].to_numpy(dtype=object)
        if self.is_ragged:
            return np.asarray(self.data[i])
        return np.asarray(self.data)[i].reshape(-1)

    @property
    def row_labels(self) -> list[Any]:
        """Labels of the rows: the DataFrame index when data is a DataFrame, else 0..n-1."""
        if isinstance(self.data, pd.DataFrame):
            return list(self.data.index)
        return list(range(self.n_rows))

    # ------------------------------------------------------------ derived numbers
    def completeness_gap(self) -> np.ndarray:
        """``predictions - base_values - values.sum(feature axes)``, shape (n,) or (n, k).

        Zero (to rounding) for methods that satisfy efficiency / completeness.
        """
        if self.predictions is None:
            raise InvalidParameterError(
                f"this Explanation (method {self.method!r}) has no predictions, so its "
                "completeness gap cannot be computed. Explainers fill exp.predictions; "
                "when building an Explanation by hand, pass predictions=."
            )
        if self.is_ragged:
            sums = (
                np.stack([v.sum(axis=0) for v in self.values])
                if self.values
                else np.zeros(self.base_values.shape)
            )
        else:
            sums = self.values.sum(axis=self.feature_axes)
        return self.predictions - self.base_values - sums

    def _require_tabular(self, what: str) -> None:
        if not self.is_tabular:
            raise InvalidParameterError(
                f"{what} needs a tabular Explanation (one flat feature axis, the same "
                "features in every row); this one is "
                + ("ragged" if self.is_ragged else f"of feature shape {self.feature_shape}")
                + ". Use to_frame() for a long table instead."
            )

    def mean_abs(self) -> pd.Series | pd.DataFrame:
        """Mean absolute attribution per feature over rows (global importance).

        Returns
        -------
        Series indexed by feature name (one output) or DataFrame of shape (p, k) with one
        column per output.
        """
        self._require_tabular("mean_abs()")
        m = np.abs(self.values).mean(axis=0)
        if self.multi_output:
            return pd.DataFrame(m, index=self.feature_names, columns=self.output_names)
        return pd.Series(m, index=self.feature_names, name="mean_abs")

    def top(self, k: int = 10) -> pd.Series:
        """The ``k`` features with the largest mean absolute attribution, largest first.

        With several outputs the importance is averaged over outputs.
        """
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}.")
        imp = self.mean_abs()
        if isinstance(imp, pd.DataFrame):
            imp = imp.mean(axis=1).rename("mean_abs")
        order = np.argsort(-imp.to_numpy(), kind="stable")[: int(k)]
        return imp.iloc[order]

    def to_frame(self) -> pd.DataFrame:
        """Values as a DataFrame.

        Tabular, one output: one row per explained row, one column per feature.
        Tabular, several outputs: columns are a MultiIndex (output, feature).
        Ragged or multi-dimensional features: a long table with columns
        ``row, feature, [output,] value[, std]``.
        """
        if self.is_tabular:
            index = (
                self.data.index.copy()
                if isinstance(self.data, pd.DataFrame)
                else pd.RangeIndex(self.n_rows)
            )
            if self.multi_output:
                cols = pd.MultiIndex.from_product(
                    [self.output_names, self.feature_names], names=["output", "feature"]
                )
                wide = np.transpose(self.values, (0, 2, 1)).reshape(self.n_rows, -1)
                return pd.DataFrame(wide, index=index, columns=cols)
            return pd.DataFrame(self.values, index=index, columns=self.feature_names)
        records: dict[str, list[Any]] = {"row": [], "feature": []}
        if self.multi_output:
            records["output"] = []
        records["value"] = []
        if self.std is not None:
            records["std"] = []
        labels = self.row_labels
        for i in range(self.n_rows):
            v = self.row_values(i)
            s = None
            if self.std is not None:
                s = self.std[i] if self.is_ragged else self.std[i].reshape(v.shape)
            names = self.row_feature_names(i)
            for j, name in enumerate(names):
                outs = range(self.n_outputs) if self.multi_output else [None]
                for o in outs:
                    records["row"].append(labels[i])
                    records["feature"].append(name)
                    records["value"].append(v[j] if o is None else v[j, o])
                    if o is not None:
                        records["output"].append(self.output_names[o])  # type: ignore[index]
                    if s is not None:
                        records["std"].append(s[j] if o is None else s[j, o])
        return pd.DataFrame(records)

    def _replace(self, **changes: Any) -> Explanation:
        kw = {
            "values": self.values,
            "base_values": self.base_values,
            "data": self.data,
            "feature_names": self.feature_names,
            "output_names": self.output_names,
            "std": self.std,
            "predictions": self.predictions,
            "method": self.method,
            "params": self.params,
            "n_evals": self.n_evals,
            "random_state": self.random_state,
            "meta": self.meta,
        }
        kw.update(changes)
        return Explanation(**kw)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        shape = (
            f"{self.n_rows} ragged rows"
            if self.is_ragged
            else f"values shape {tuple(self.values.shape)}"
        )
        out = f", outputs={self.output_names}" if self.multi_output else ""
        return f"<Explanation method={self.method!r}, {shape}{out}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = [
            f"<b>Explanation</b> &middot; method <code>{esc(self.method)}</code> &middot; "
            f"{self.n_rows} row(s)"
        ]
        if "output" in self.params:
            rows.append(f" &middot; output: {esc(str(self.params['output']))}")
        table = ""
        if self.is_tabular and self.n_rows and self.feature_names:
            top = self.top(min(10, len(self.feature_names)))
            body = "".join(
                f"<tr><td>{esc(str(name))}</td><td>{val:.4g}</td></tr>" for name, val in top.items()
            )
            table = (
                "<table><thead><tr><th>feature</th><th>mean |value|</th></tr></thead>"
                f"<tbody>{body}</tbody></table>"
            )
        return f"<div class='whybox-explanation'><p>{''.join(rows)}</p>{table}</div>"

    @property
    def plot(self) -> Any:
        """Plotting methods: ``exp.plot.bar()``, ``.waterfall(i)``, ``.beeswarm()``, ...

        The accessor is :class:`whybox.viz.accessor.PlotAccessor`, found by name on first use
        (see ``_ACCESSORS``): this module sits below ``whybox.viz`` and never imports it.
        """
        return _accessor("plot")(self)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the Explanation to ``path`` (a zip of ``.npy`` arrays plus ``meta.json``).

        No pickle is used; DataFrame data keeps its columns and dtypes (categoricals and
        strings included). The file is written to a temporary name and renamed, so an
        error never leaves a half-written file behind.
        """
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "method": self.method,
            "params": _jsonable(self.params),
            "n_evals": self.n_evals,
            "random_state": _jsonable(self.random_state),
            "meta": _jsonable(self.meta),
            "feature_names": self.feature_names,
            "output_names": self.output_names,
            "ragged": self.is_ragged,
        }
        _put_values(arrays, "values", self.values)
        arrays["base_values"] = self.base_values
        if self.std is not None:
            _put_values(arrays, "std", self.std)
        if self.predictions is not None:
            arrays["predictions"] = self.predictions
        meta["data"] = _encode_data(self.data, arrays, ragged=self.is_ragged)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("meta.json", json.dumps(meta, indent=1))
            for name, arr in arrays.items():
                b = io.BytesIO()
                np.lib.format.write_array(b, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(f"{name}.npy", b.getvalue())
        _atomic_write(path, buf.getvalue())
        return path


# ---------------------------------------------------------------------- helpers
def _is_nested_names(names: Any) -> bool:
    return (
        isinstance(names, (list, tuple)) and len(names) > 0 and isinstance(names[0], (list, tuple))
    )


def _n_data_rows(data: Any) -> int | None:
    """Number of rows of ``data`` where it has a clear row axis, else None."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return len(data)
    if isinstance(data, np.ndarray):
        return None if data.ndim == 0 else int(data.shape[0])
    if isinstance(data, (list, tuple)):
        return len(data)
    return None


def load(path: str | os.PathLike[str]) -> Explanation:
    """Read an Explanation written by ``Explanation.save()``.

    Arrays are read with ``allow_pickle=False``: loading a file never runs code. A folder
    written by ``explain(dask_X, out=folder)`` opens lazily as a ``ShardedExplanation``
    (memory-mapped shards, read like an Explanation).

    Parameters
    ----------
    path : str or os.PathLike
        The file written by ``Explanation.save()``, or a shard folder.

    Returns
    -------
    Explanation
        Equal to the saved one: values, base values, data (DataFrame columns and dtypes
        included), names, standard errors, predictions, parameters and meta.

    Raises
    ------
    InvalidInputError
        If ``path`` does not exist, is not a whybox explanation file, is damaged, or was
        written by a newer whybox (format version above the one this whybox reads).

    Examples
    --------
    >>> import os, tempfile
    >>> exp = wb.Explanation([[0.5, -0.25]], base_values=1.0, feature_names=["a", "b"])
    >>> path = exp.save(os.path.join(tempfile.mkdtemp(), "exp.whybox"))
    >>> back = wb.load(path)
    >>> back.feature_names, back.values.tolist(), back.base_values.tolist()
    (['a', 'b'], [[0.5, -0.25]], [1.0])
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"no such file: {str(path)!r}.")
    if path.is_dir():  # shards written by explain(dask_X, out=folder): opened lazily
        from ._shards import is_shard_folder, load_shards

        if is_shard_folder(path):
            return load_shards(path, Explanation)  # type: ignore[return-value]
    if not path.is_file():
        raise InvalidInputError(f"{str(path)!r} is not a file; pass the path of a saved file.")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
            arrays = {}
            for name in zf.namelist():
                if name.endswith(".npy"):
                    with zf.open(name) as fh:
                        arrays[name[:-4]] = np.lib.format.read_array(
                            io.BytesIO(fh.read()), allow_pickle=False
                        )
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, ValueError) as exc:
        raise InvalidInputError(
            f"{str(path)!r} is not a whybox explanation file ({exc}). Files are written by "
            "Explanation.save()."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InvalidInputError(
            f"{str(path)!r} is not a whybox explanation file (format {found!r})."
        )
    version = meta.get("version", 0)
    if not isinstance(version, int) or version > _FORMAT_VERSION:
        raise InvalidInputError(
            f"{str(path)!r} was written by a newer whybox (format version {version!r}); "
            f"this whybox reads versions up to {_FORMAT_VERSION}. Upgrade whybox to read it."
        )
    try:
        ragged = bool(meta["ragged"])
        rs = meta.get("random_state")
        values = _get_values(arrays, "values", ragged)
        return Explanation(
            values,
            arrays["base_values"],
            data=_decode_data(meta.get("data"), arrays),
            feature_names=meta["feature_names"],
            output_names=meta["output_names"],
            std=_get_values(arrays, "std", ragged),
            predictions=arrays.get("predictions"),
            method=meta["method"],
            params=meta["params"],
            n_evals=meta["n_evals"],
            random_state=rs if not isinstance(rs, float) or not math.isnan(rs) else None,
            meta=meta["meta"],
        )
    except (KeyError, TypeError, IndexError) as exc:
        raise InvalidInputError(
            f"{str(path)!r} is a damaged whybox explanation file (missing or malformed "
            f"entry: {exc!r}). Save the Explanation again."
        ) from exc
