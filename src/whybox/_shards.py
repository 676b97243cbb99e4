"""Explanations stored as a folder of ``.npy`` shards, one per partition, opened lazily.

Written by ``explain(dask_X, out="folder/")`` (:mod:`whybox._dask_explain`)::

    folder/
      whybox-shards.json             the manifest: format, rows per shard, names, params
      part-00000.values.npy          (rows, *feature_shape[, k])
      part-00000.base_values.npy     (rows[, k])
      part-00000.predictions.npy     (rows[, k])       when the explainer gives predictions
      part-00000.std.npy             like values       when the estimate is sampled
      part-00000.data.npy            (rows, p)         the explained rows, when numeric
      ...

Each shard is written to a temporary name and renamed; the manifest is written last, so a
folder without one is a run that did not finish. :func:`whybox.load` of the folder returns
a :class:`ShardedExplanation`, which memory-maps the shards (``np.load(mmap_mode="r")``)
and reads nothing else until asked. Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError

__all__ = [
    "MANIFEST",
    "ShardedExplanation",
    "concat",
    "is_shard_folder",
    "load_shards",
    "shard_paths",
    "write_manifest",
]

MANIFEST = "whybox-shards.json"
_FORMAT = "whybox.explanation.shards"
_VERSION = 1
_ARRAYS = ("values", "base_values", "predictions", "std", "data")


def shard_paths(folder: Path, i: int) -> dict[str, Path]:
    """The file of each array of partition ``i``."""
    return {name: folder / f"part-{i:05d}.{name}.npy" for name in _ARRAYS}


def concat(exps: list[Any], cls: type) -> Any:
    """One ``cls`` (an Explanation) of the row-wise explanations ``exps``, in their order:
    row arrays concatenated, per-row ``meta`` entries (``meta["row_keys"]``) too."""
    first = exps[0]

    def cat(name: str) -> Any:
        arrs = [getattr(e, name) for e in exps]
        return None if arrs[0] is None else np.concatenate(arrs, axis=0)

    datas = [e.data for e in exps]
    if all(isinstance(d, pd.DataFrame) for d in datas):
        data: Any = pd.concat(datas, axis=0)
    elif all(isinstance(d, np.ndarray) for d in datas):
        data = np.concatenate(datas, axis=0)
    else:
        data = None
    meta = dict(first.meta)
    for key in first.meta.get("row_keys", ()):
        parts = [e.meta[key] for e in exps]
        meta[key] = (
            np.concatenate(parts, axis=0)
            if isinstance(parts[0], np.ndarray)
            else [v for p in parts for v in p]
        )
    n_evals = None if first.n_evals is None else sum(int(e.n_evals or 0) for e in exps)
    return cls(
        cat("values"),
        cat("base_values"),
        data=data,
        feature_names=first.feature_names,
        output_names=first.output_names,
        std=cat("std"),
        predictions=cat("predictions"),
        method=first.method,
        params=first.params,
        n_evals=n_evals,
        random_state=first.random_state,
        meta=meta,
    )


def write_manifest(folder: Path, headers: list[dict[str, Any]], cls: type) -> ShardedExplanation:
    """Write the manifest of the shards described by ``headers`` (partition order) and open
    the folder; its shards open as ``cls`` (:class:`~whybox.explanation.Explanation`)."""
    from ._persist import _jsonable

    first = headers[0]
    manifest = {
        "format": _FORMAT,
        "version": _VERSION,
        "rows": [int(h["rows"]) for h in headers],
        "method": first["method"],
        "params": _jsonable(first["params"]),
        "feature_names": first["feature_names"],
        "output_names": first["output_names"],
        "random_state": _jsonable(first["random_state"]),
        "meta": _jsonable(first["meta"]),
        "n_evals": None
        if first["n_evals"] is None
        else sum(int(h["n_evals"] or 0) for h in headers),
        "has_std": bool(first["has_std"]),
        "has_predictions": bool(first["has_predictions"]),
        "has_data": all(h["has_data"] for h in headers),
        "columns": first["columns"],
    }
    path = folder / MANIFEST
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return ShardedExplanation(folder, manifest, cls)


def is_shard_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest or shards (finished or not)."""
    return (folder / MANIFEST).is_file() or any(folder.glob("part-*.values.npy"))


def load_shards(folder: str | os.PathLike[str], cls: type) -> ShardedExplanation:
    """Open a shard folder written with ``out=`` (lazily: nothing but the manifest is read);
    shards open as ``cls`` (:class:`~whybox.explanation.Explanation`, passed in by
    :func:`whybox.load`: this module sits below it).

    Raises
    ------
    InvalidInputError
        For a folder without a manifest (an unfinished run, or not a shard folder), a
        manifest of another format or a newer version, or a missing shard.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidInputError(
            f"{str(folder)!r} is a folder without {MANIFEST}: not the output of "
            "explain(..., out=folder), or a run that did not finish (its manifest is written "
            "last). Run the explanation again into a new, empty folder."
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{str(path)!r} is not a readable manifest ({exc}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise InvalidInputError(f"{str(path)!r} is not a whybox shard manifest.")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > _VERSION:
        raise InvalidInputError(
            f"{str(path)!r} was written by a newer whybox (shard format version "
            f"{manifest.get('version')!r}; this whybox reads up to {_VERSION}). Upgrade whybox."
        )
    exp = ShardedExplanation(folder, manifest, cls)
    for i in range(exp.n_shards):
        if not shard_paths(folder, i)["values"].is_file():
            raise InvalidInputError(
                f"{str(folder)!r} misses the shard {shard_paths(folder, i)['values'].name}; "
                "the folder is damaged. Run the explanation again into a new, empty folder."
            )
    return exp


class ShardedExplanation:
    """An Explanation stored as one shard per partition, memory-mapped on access.

    Attributes
    ----------
    folder : Path
    rows : list of int
        Rows of each shard, in order; ``n_rows`` is their sum.
    method, params, feature_names, output_names, random_state, meta, n_evals
        As on :class:`~whybox.explanation.Explanation`.

    Examples
    --------
    >>> exp = wb.load("shap_values/")  # doctest: +SKIP
    >>> exp.shard(0).values[:5]         # memory-mapped: reads 5 rows  # doctest: +SKIP
    >>> exp.values                      # a lazy dask.array over every shard  # doctest: +SKIP
    >>> exp.to_explanation()            # all of it in memory  # doctest: +SKIP
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], cls: type) -> None:
        self.folder = Path(folder)
        self._cls = cls
        self.rows = [int(r) for r in manifest["rows"]]
        self.method = manifest["method"]
        self.params = manifest["params"]
        self.feature_names = manifest["feature_names"]
        self.output_names = manifest["output_names"]
        self.random_state = manifest["random_state"]
        self.meta = manifest["meta"]
        self.n_evals = manifest["n_evals"]
        self._manifest = manifest

    @property
    def n_shards(self) -> int:
        return len(self.rows)

    @property
    def n_rows(self) -> int:
        return sum(self.rows)

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"ShardedExplanation(method={self.method!r}, rows={self.n_rows}, "
            f"shards={self.n_shards}, features={len(self.feature_names)}, "
            f"folder={str(self.folder)!r})"
        )

    def _array(self, i: int, name: str) -> np.ndarray | None:
        path = shard_paths(self.folder, i)[name]
        if not path.is_file():
            return None
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def shard(self, i: int) -> Any:
        """Shard ``i`` as an :class:`~whybox.explanation.Explanation` over memory maps."""
        if not 0 <= i < self.n_shards:
            raise IndexError(f"shard {i} out of range: this folder has {self.n_shards}.")
        data = self._array(i, "data")
        columns = self._manifest.get("columns")
        if data is not None and columns is not None:
            data = pd.DataFrame(np.asarray(data), columns=columns)
        return self._cls(
            self._array(i, "values"),
            self._array(i, "base_values"),
            data=data,
            feature_names=self.feature_names,
            output_names=self.output_names,
            std=self._array(i, "std"),
            predictions=self._array(i, "predictions"),
            method=self.method,
            params=self.params,
            n_evals=None,
            random_state=self.random_state,
            meta=self.meta,
        )

    def __iter__(self) -> Iterator[Any]:
        for i in range(self.n_shards):
            yield self.shard(i)

    def _lazy(self, name: str) -> Any:
        import dask.array as da

        arrays = [self._array(i, name) for i in range(self.n_shards)]
        if any(a is None for a in arrays):
            return None
        return da.concatenate([da.from_array(a, chunks=a.shape) for a in arrays], axis=0)

    @property
    def values(self) -> Any:
        """All values as a lazy ``dask.array`` (n, *feature_shape[, k]) over the shards."""
        return self._lazy("values")

    @property
    def base_values(self) -> Any:
        return self._lazy("base_values")

    @property
    def predictions(self) -> Any:
        return self._lazy("predictions")

    def to_explanation(self) -> Any:
        """Every shard read into one in-memory :class:`~whybox.explanation.Explanation`."""
        exp = concat(list(self), self._cls)
        exp.n_evals = self.n_evals
        return exp
