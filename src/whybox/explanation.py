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
import io
import json
import math
import numbers
import os
import secrets
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, InvalidParameterError

__all__ = ["Explanation", "load"]

_FORMAT = "whybox.explanation"
_FORMAT_VERSION = 2  # 2: exact datetimes, nullable ints, indexes, columns


class Explanation:
    """Attributions for a batch of explained inputs, with everything needed to read them.

    Parameters
    ----------
    values : ndarray of shape (n, *feature_shape) or (n, *feature_shape, k), or list of arrays
        Attributions. A list gives one array per row for ragged inputs.
    base_values : array of shape (n,) or (n, k)
        The value the attributions are measured from (expected model output under the
        background for Shapley methods). A scalar is broadcast to all rows.
    data : ndarray, DataFrame, list or None
        The explained inputs, row-aligned with ``values``.
    feature_names : list of str, or list of list of str for ragged rows
        Names of the features (players); defaults to ``x0, x1, ...``.
    output_names : list of str or None
        Names of the explained outputs, one per output (also for a single output).
    std : same layout as ``values`` or None
        Standard errors of sampled estimates.
    predictions : array of shape (n,) or (n, k) or None
        Model outputs for the explained inputs, on the same scale as the values.
    method : str
        Name of the method that produced the values.
    params : dict
        JSON-serialisable parameters, including ``params["output"]`` describing the output.
    n_evals : int or None
        Model evaluations (coalitions, samples, steps) per explained row.
    random_state : int or None
        Seed used, for reproducibility.
    meta : dict or None
        Extra JSON-serialisable information (fidelity, timing, ...).
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

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, key: Any) -> Explanation:
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 3:
            raise InvalidParameterError(
                "an Explanation is indexed as exp[rows], exp[rows, features] or "
                f"exp[rows, features, outputs]; got {len(key)} indices."
            )
        rows = self._row_index(key[0])
        out = self._take_rows(rows)
        if len(key) >= 2 and not _is_full_slice(key[1]):
            out = out._take_features(key[1])
        if len(key) == 3 and not _is_full_slice(key[2]):
            out = out._take_outputs(key[2])
        return out

    def _row_index(self, key: Any) -> np.ndarray:
        n = self.n_rows
        if isinstance(key, slice):
            return np.arange(n)[key]
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if not -n <= key < n:
                raise InvalidParameterError(f"row index {key} is out of range for {n} rows.")
            return np.array([int(key) % n])
        arr = np.asarray(key)
        if arr.size == 0 and arr.dtype != bool:
            return np.zeros(0, dtype=int)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise InvalidParameterError(
                    f"a boolean row mask must have shape ({n},), got {arr.shape}."
                )
            return np.flatnonzero(arr)
        if arr.dtype.kind in "iu":
            if arr.size and (arr.max() >= n or arr.min() < -n):
                raise InvalidParameterError(f"row indices out of range for {n} rows.")
            return arr.reshape(-1) % n
        raise InvalidParameterError(
            f"rows are selected by an int, a slice, a list of ints or a boolean mask; got {key!r}."
        )

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

    def _take_rows(self, rows: np.ndarray) -> Explanation:
        def take(a: Any) -> Any:
            if a is None:
                return None
            if isinstance(a, list):
                return [a[i] for i in rows]
            return a[rows]

        if self.data is None:
            data = None
        elif isinstance(self.data, (pd.DataFrame, pd.Series)):
            data = self.data.iloc[rows]
        elif isinstance(self.data, list):
            data = [self.data[i] for i in rows]
        else:
            data = np.asarray(self.data)[rows]
        return self._replace(
            values=take(self.values),
            base_values=self.base_values[rows],
            data=data,
            feature_names=(
                [self.feature_names[i] for i in rows] if self.is_ragged else self.feature_names
            ),
            std=take(self.std),
            predictions=None if self.predictions is None else self.predictions[rows],
        )

    def _feature_index(self, key: Any) -> np.ndarray:
        names = list(self.feature_names)
        p = len(names)

        def one(k: Any) -> int:
            if isinstance(k, str):
                if k not in names:
                    raise InvalidParameterError(f"unknown feature {k!r}. Known features: {names}.")
                return names.index(k)
            if isinstance(k, numbers.Integral) and not isinstance(k, bool):
                if not -p <= k < p:
                    raise InvalidParameterError(
                        f"feature index {k} is out of range for {p} features. "
                        f"Known features: {names}."
                    )
                return int(k) % p
            raise InvalidParameterError(
                f"features are selected by name, index, list or slice; got {k!r}."
            )

        if isinstance(key, slice):
            return np.arange(p)[key]
        if isinstance(key, (str, numbers.Integral)):
            return np.array([one(key)])
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (p,):
                raise InvalidParameterError(
                    f"a boolean feature mask must have shape ({p},), got {arr.shape}."
                )
            return np.flatnonzero(arr)
        return np.array([one(k) for k in key], dtype=int)

    def _take_features(self, key: Any) -> Explanation:
        self._require_tabular("selecting features")
        cols = self._feature_index(key)
        if isinstance(self.data, pd.DataFrame):
            data = self.data.iloc[:, cols]
        elif self.data is None:
            data = None
        else:
            data = np.asarray(self.data)[:, cols]
        return self._replace(
            values=self.values[:, cols],
            data=data,
            feature_names=[self.feature_names[j] for j in cols],
            std=None if self.std is None else self.std[:, cols],
            params={**self.params, "feature_subset": True},
        )

    def _take_outputs(self, key: Any) -> Explanation:
        if not self.multi_output:
            raise InvalidParameterError(
                "this Explanation explains a single output; there is no output axis to index."
            )
        names = list(self.output_names or [])

        def one(k: Any) -> int:
            if isinstance(k, str):
                if k not in names:
                    raise InvalidParameterError(f"unknown output {k!r}. Known outputs: {names}.")
                return names.index(k)
            if isinstance(k, numbers.Integral) and not isinstance(k, bool):
                if not -len(names) <= k < len(names):
                    raise InvalidParameterError(
                        f"output index {k} is out of range for {len(names)} outputs. "
                        f"Known outputs: {names}."
                    )
                return int(k) % len(names)
            raise InvalidParameterError(f"outputs are selected by name or index; got {k!r}.")

        scalar = isinstance(key, (str, numbers.Integral)) and not isinstance(key, bool)
        idx: Any
        if scalar:
            idx = one(key)
        elif isinstance(key, slice):
            idx = list(range(len(names)))[key]
        elif np.asarray(key).dtype == bool:
            mask = np.asarray(key)
            if mask.shape != (len(names),):
                raise InvalidParameterError(
                    f"a boolean output mask must have shape ({len(names)},), got {mask.shape}."
                )
            idx = np.flatnonzero(mask).tolist()
        elif isinstance(key, (str, bool, numbers.Number)) or not hasattr(key, "__iter__"):
            idx = one(key)  # raises with the accepted kinds of selector
        else:
            idx = [one(k) for k in key]

        def take(a: Any) -> Any:
            if a is None:
                return None
            if isinstance(a, list):
                return [x[..., idx] for x in a]
            return a[..., idx]

        params = dict(self.params)
        if scalar:
            params["output"] = names[idx]
        return self._replace(
            values=take(self.values),
            base_values=self.base_values[:, idx],
            std=take(self.std),
            predictions=None if self.predictions is None else self.predictions[:, idx],
            output_names=[names[idx]] if scalar else [names[i] for i in idx],
            params=params,
        )

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
    def plot(self) -> PlotAccessor:
        """Plotting methods: ``exp.plot.bar()``, ``.waterfall(i)``, ``.beeswarm()``, ..."""
        return PlotAccessor(self)

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


class PlotAccessor:
    """``exp.plot``: matplotlib plots of an Explanation; each returns the Axes."""

    def __init__(self, exp: Explanation) -> None:
        self._exp = exp

    def bar(self, **kwargs: Any) -> Any:
        from .viz import plots

        return plots.bar(self._exp, **kwargs)

    def waterfall(self, i: int = 0, **kwargs: Any) -> Any:
        from .viz import plots

        return plots.waterfall(self._exp, i, **kwargs)

    def beeswarm(self, **kwargs: Any) -> Any:
        from .viz import plots

        return plots.beeswarm(self._exp, **kwargs)

    def scatter(self, feature: str | int, **kwargs: Any) -> Any:
        from .viz import plots

        return plots.scatter(self._exp, feature, **kwargs)


# ---------------------------------------------------------------------- helpers
def _is_rectangular(values: Sequence[Any]) -> bool:
    shapes = {np.shape(v) for v in values}
    return len(shapes) <= 1


def _is_nested_names(names: Any) -> bool:
    return (
        isinstance(names, (list, tuple)) and len(names) > 0 and isinstance(names[0], (list, tuple))
    )


def _is_full_slice(k: Any) -> bool:
    return isinstance(k, slice) and k == slice(None)


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


def _n_data_rows(data: Any) -> int | None:
    """Number of rows of ``data`` where it has a clear row axis, else None."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return len(data)
    if isinstance(data, np.ndarray):
        return None if data.ndim == 0 else int(data.shape[0])
    if isinstance(data, (list, tuple)):
        return len(data)
    return None


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


def load(path: str | os.PathLike[str]) -> Explanation:
    """Read an Explanation written by :meth:`Explanation.save`.

    Arrays are read with ``allow_pickle=False``: loading a file never runs code.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"no such file: {str(path)!r}.")
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
