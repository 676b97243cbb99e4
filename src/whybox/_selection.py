"""Selecting rows, features and outputs of an :class:`~whybox.explanation.Explanation`.

``exp[rows]``, ``exp[rows, features]``, ``exp[rows, features, outputs]`` and
``exp.per_row_output(...)`` live here, as a mixin of :class:`~whybox.explanation.Explanation`
(which supplies the layout: ``n_rows``, ``is_ragged``, ``multi_output`` and ``_replace``).
Indexing never drops the row axis; per-row meta entries named in ``meta["row_keys"]`` follow
the rows selected.
"""

from __future__ import annotations

import numbers
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .errors import InvalidParameterError

#: the Explanation the mixin serves (typed without importing explanation.py: no import circle)
_E = TypeVar("_E", bound="Selection")

__all__ = ["PER_ROW_OUTPUT", "ROW_KEYS", "Selection"]

#: ``output_names`` of an Explanation with one explained output per row (its own target)
PER_ROW_OUTPUT = "per-example target"

#: ``meta`` key listing the meta entries that hold one value per row (see Explanation)
ROW_KEYS = "row_keys"


class Selection:
    """Row, feature and output selection of an Explanation (a mixin; see the module)."""

    # ------------------------------------------------------------------ indexing
    def __getitem__(self: _E, key: Any) -> _E:
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

    def _take_rows(self: _E, rows: np.ndarray) -> _E:
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
        meta = self.meta
        row_keys = [k for k in meta.get(ROW_KEYS, ()) if k in meta]
        if row_keys:
            meta = {**meta, **{k: take(meta[k]) for k in row_keys}}
        return self._replace(
            meta=meta,
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

    def _take_features(self: _E, key: Any) -> _E:
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

    def _take_outputs(self: _E, key: Any) -> _E:
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
            params["target"] = names[idx]  # the output explained, as the model names it
        else:
            params["target"] = [names[i] for i in idx]
        return self._replace(
            values=take(self.values),
            base_values=self.base_values[:, idx],
            std=take(self.std),
            predictions=None if self.predictions is None else self.predictions[:, idx],
            output_names=[names[idx]] if scalar else [names[i] for i in idx],
            params=params,
        )

    # ------------------------------------------------------------ per-row targets
    @property
    def row_targets(self) -> list[str] | None:
        """The output explained in each row when it differs by row (one target per row).

        ``meta["targets"]`` (sliced with the rows), else a per-row list in
        ``params["target"]`` when ``output_names == ["per-example target"]``; None for an
        Explanation of the same output(s) in every row.
        """
        t = self.meta.get("targets")
        if isinstance(t, (list, tuple, np.ndarray)) and len(t) == self.n_rows:
            return [str(v) for v in t]
        t = self.params.get("target")
        if (
            self.output_names == [PER_ROW_OUTPUT]
            and isinstance(t, (list, tuple))
            and len(t) == self.n_rows
        ):
            return [str(v) for v in t]
        return None

    def per_row_output(self: _E, outputs: Any) -> _E:
        """Keep one explained output per row: row ``i`` keeps output ``outputs[i]``.

        Parameters
        ----------
        outputs : sequence of length n
            Output names, or indices (an int is an index), one per row (e.g. each row's
            predicted class:
            ``exp.per_row_output(exp.predictions.argmax(1))``).

        Returns
        -------
        Explanation
            Values (n, *feature_shape), ``output_names == ["per-example target"]``,
            ``params["target"]`` and ``meta["targets"]`` the per-row output names (a row key,
            so ``exp[rows]`` keeps them aligned).
        """
        if not self.multi_output:
            raise InvalidParameterError(
                "per_row_output picks one of several explained outputs per row, and this "
                "Explanation explains a single output."
            )
        names = list(self.output_names or [])
        out = list(outputs) if not isinstance(outputs, np.ndarray) else outputs.tolist()
        if len(out) != self.n_rows:
            raise InvalidParameterError(
                f"per_row_output needs one output per row: {self.n_rows} rows, got {len(out)}."
            )
        idx = np.array([_output_position(o, names) for o in out], dtype=int)
        rows = np.arange(self.n_rows)

        def take(a: Any) -> Any:
            if a is None:
                return None
            if isinstance(a, list):
                return [x[..., j] for x, j in zip(a, idx, strict=True)]
            return np.moveaxis(a, -1, 1)[rows, idx]

        chosen = [names[j] for j in idx]
        meta = {**self.meta, "targets": chosen}
        meta[ROW_KEYS] = [*[k for k in self.meta.get(ROW_KEYS, []) if k != "targets"], "targets"]
        output = self.params.get("output")
        return self._replace(
            values=take(self.values),
            base_values=self.base_values[rows, idx],
            std=take(self.std),
            predictions=None if self.predictions is None else self.predictions[rows, idx],
            output_names=[PER_ROW_OUTPUT],
            params={
                **self.params,
                "target": chosen,
                "output": (f"{output}: " if output else "") + "one output per row",
            },
            meta=meta,
        )


def _output_position(k: Any, names: list[str]) -> int:
    """Index of output ``k`` (a name, or an index) among ``names``."""
    if (
        isinstance(k, numbers.Integral)
        and not isinstance(k, bool)
        and -len(names) <= k < len(names)
    ):
        return int(k) % len(names)
    if str(k) in names:
        return names.index(str(k))
    raise InvalidParameterError(f"unknown output {k!r}. Known outputs: {names}.")


def _is_full_slice(k: Any) -> bool:
    return isinstance(k, slice) and k == slice(None)
