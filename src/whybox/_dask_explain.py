"""Explaining a Dask DataFrame or Array partition by partition on a ``dask.distributed`` cluster.

:func:`explain_dask` runs ``explainer.explain(partition, **kwargs)`` on the workers, one task
per partition of ``X``:

* the explainer is pickled once in the caller (cloudpickle, its Client replaced by ``None``)
  and scattered to every worker (``broadcast=True``); each worker unpickles it once per call
  and keeps it for the call's other partitions (tree masks and other lazy caches are built
  once per worker, not once per partition);
* the partitions come from ``X``'s own graph (``to_delayed``), so a partition lost with a
  worker is recomputed from its lineage; every explain task has a key unique to the call and
  is pure (same partition in, same values out), and is retried (``retries=2``) if it raises;
  the scheduler reruns a task whose worker died. Results are taken once per partition key,
  so no row is lost or duplicated;
* without ``out=`` the partitions' explanations are gathered and concatenated in partition
  order into one in-memory :class:`~whybox.explanation.Explanation` -- bit-identical to
  ``explainer.explain(X.compute())`` for explainers whose rows do not interact (every
  explainer here: TreeSHAP, the gradient methods, the per-row game estimators). A torch
  model's matmuls round by batch: the gradient methods give the same bits when their
  ``internal_batch_size`` divides every partition's rows (the batches are then the same),
  and agree to rounding (~1 ulp) otherwise;
* with ``out="folder/"`` each task writes its partition's arrays as ``.npy`` shards into the
  folder (temporary name, then rename: a rerun task replaces a shard whole), the caller
  writes the manifest last, and :func:`whybox.load` opens the folder lazily as a
  :class:`~whybox._shards.ShardedExplanation` (memory-mapped shards). The folder must be on a
  file system every worker (and the caller) can reach.

References
----------
Rocklin, M. (2015). Dask: Parallel computation with blocked algorithms and task scheduling.
Proceedings of the 14th Python in Science Conference.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, InvalidParameterError
from .parallel import DASK_RETRIES, _client_closed, _dask_client, _dumps, _loads

__all__ = ["check_out_folder", "explain_dask", "is_dask_collection", "partitions"]

#: explainers unpickled on a worker, by the token of the call (a few calls at most)
_WORKER_CACHE: dict[str, Any] = {}
_CACHE_SIZE = 4


def is_dask_collection(X: Any) -> bool:
    """True for a Dask DataFrame, Series or Array (checked without importing dask)."""
    mod = type(X).__module__ or ""
    if not mod.startswith("dask"):
        return False
    try:
        from dask import is_dask_collection as _is
    except ImportError:  # pragma: no cover - a dask type without dask
        return False
    return bool(_is(X))


def partitions(X: Any) -> tuple[list[Any], list[str] | None]:
    """The partitions of ``X`` as Delayed objects, and the DataFrame's columns (or None).

    A Dask Array is rechunked so that each block holds whole rows (one chunk along every
    axis but the first); a DataFrame's partitions are checked against its columns on the
    workers.

    Raises
    ------
    InvalidInputError
        For a Dask Series or a 0-d / 1-d Array (rows of features are needed).
    """
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim < 2:
            raise InvalidInputError(
                f"a Dask Array of {X.ndim} dimension(s) has no feature axis: pass rows of "
                "features, shape (n, p) (e.g. X.reshape(-1, 1) for one feature)."
            )
        whole = X.rechunk({ax: -1 for ax in range(1, X.ndim)})
        return list(whole.to_delayed().ravel()), None
    columns = getattr(X, "columns", None)
    if columns is None:
        raise InvalidInputError(
            f"a Dask {type(X).__name__} is not rows of features: pass a Dask DataFrame or a "
            "2-D Dask Array (e.g. series.to_frame())."
        )
    return list(X.to_delayed()), list(columns)


def check_out_folder(out: Any) -> Path:
    """The folder ``out`` names, created if missing; a non-empty folder is refused.

    Raises
    ------
    InvalidParameterError
        If ``out`` is not a path, names a file, or names a folder that is not empty.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidParameterError(
            f"out must be the path of a folder for the shards, got {type(out).__name__}."
        )
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(
            f"out={str(out)!r} is a file; out= names a folder that receives one .npy shard "
            "per partition. Pass a new or empty folder (or exp.save(path) for one file)."
        )
    if path.is_dir():
        entries = sorted(os.listdir(path))
        if entries:
            shown = ", ".join(entries[:3]) + (" ..." if len(entries) > 3 else "")
            raise InvalidParameterError(
                f"out={str(out)!r} is not empty ({len(entries)} entries: {shown}); whybox "
                "writes shards only into a new or empty folder, so that no shard of another "
                "run is mistaken for this one's. Pass a new folder, or delete this one's "
                "contents first."
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Payload:
    """The explainer pickled once in the caller; unpickled once per worker and call."""

    def __init__(self, explainer: Any, token: str) -> None:
        worker_copy = copy.copy(explainer)
        # on the workers the explainer computes in place: no Dask of its own
        if hasattr(worker_copy, "backend"):
            worker_copy.backend = "serial"
        if hasattr(worker_copy, "client"):
            worker_copy.client = None
        self.payload = _dumps(worker_copy)
        self.token = token

    def get(self) -> Any:
        found = _WORKER_CACHE.get(self.token)
        if found is None:
            found = _loads(self.payload)
            while len(_WORKER_CACHE) >= _CACHE_SIZE:
                _WORKER_CACHE.pop(next(iter(_WORKER_CACHE)))
            _WORKER_CACHE[self.token] = found
        return found


def _check_partition(part: Any, i: int, columns: list[str] | None) -> Any:
    if columns is None:
        return np.asarray(part)
    if not isinstance(part, pd.DataFrame):
        raise InvalidInputError(
            f"partition {i} of the Dask DataFrame is a {type(part).__name__}, not a DataFrame."
        )
    got = [str(c) for c in part.columns]
    want = [str(c) for c in columns]
    if got != want:
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        raise InvalidInputError(
            f"partition {i} of the Dask DataFrame has columns {got}, but the DataFrame "
            f"declares {want} (missing {missing}, extra {extra}). Every partition must have "
            "the same columns in the same order: build it so (e.g. dd.read_parquet of files "
            "with one schema), or select them with X[columns] before explaining."
        )
    return part


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _header(exp: Any) -> dict[str, Any]:
    """What the manifest keeps of one partition's Explanation (all but the row arrays)."""
    return {
        "method": exp.method,
        "params": exp.params,
        "feature_names": exp.feature_names,
        "output_names": exp.output_names,
        "random_state": exp.random_state,
        # per-row meta entries (and their listing) stay with the in-memory result only
        "meta": {
            k: v
            for k, v in exp.meta.items()
            if k != "row_keys" and k not in exp.meta.get("row_keys", ())
        },
        "n_evals": exp.n_evals,
        "has_std": exp.std is not None,
        "has_predictions": exp.predictions is not None,
        "columns": [str(c) for c in exp.data.columns]
        if isinstance(exp.data, pd.DataFrame)
        else None,
    }


def _explain_partition(
    payload: _Payload, part: Any, i: int, columns: Any, kwargs: dict[str, Any], out: str | None
) -> Any:
    """One task: explain partition ``i``; return its Explanation, or write it to ``out``."""
    part = _check_partition(part, i, columns)
    explainer = payload.get()
    exp = explainer.explain(part, **kwargs)
    if out is None:
        return exp
    from ._shards import shard_paths

    paths = shard_paths(Path(out), i)
    _atomic_save(paths["values"], exp.values)
    _atomic_save(paths["base_values"], exp.base_values)
    if exp.predictions is not None:
        _atomic_save(paths["predictions"], exp.predictions)
    if exp.std is not None:
        _atomic_save(paths["std"], exp.std)
    data = np.asarray(part) if exp.data is not None else None
    if data is not None and data.dtype.kind in "biuf":
        _atomic_save(paths["data"], data)
    header = _header(exp)
    header["rows"] = int(exp.values.shape[0])
    header["has_data"] = data is not None and data.dtype.kind in "biuf"
    return header


def explain_dask(
    explainer: Any,
    X: Any,
    *,
    client: Any = None,
    out: Any = None,
    progress: Any = None,
    **kwargs: Any,
) -> Any:
    """Explain ``X`` partition by partition on a Dask cluster.

    Parameters
    ----------
    explainer : Explainer
        Any explainer whose rows are explained independently; ``explainer.explain(part,
        **kwargs)`` runs on the workers.
    X : dask.dataframe.DataFrame or dask.array.Array, shape (n, p) or (n, *feature_shape)
        A numpy array or pandas DataFrame is split into about ``4 x`` the cluster's threads
        partitions of consecutive rows.
    client : distributed.Client, optional
        Defaults to the current default client.
    out : str or path-like, optional
        A new or empty folder: each partition's values are written there as ``.npy`` shards
        and a :class:`~whybox._shards.ShardedExplanation` (memory-mapped) is returned.
    progress : callable(done_rows, total_rows), optional
        Called in the caller as partitions finish. A Dask DataFrame's length is not known
        before its partitions are computed: ``total_rows`` is then the rows done so far
        (the last call is ``progress(n, n)`` either way).
    **kwargs
        Passed to ``explainer.explain`` on the workers (e.g. ``target=``).

    Returns
    -------
    Explanation or ShardedExplanation
        ``values`` of shape (n, *feature_shape[, k]), in the rows' order.

    Raises
    ------
    InvalidParameterError
        For ``out=`` naming a file or a non-empty folder, a per-row ``target`` array, or no
        Dask client.
    InvalidInputError
        When a DataFrame partition's columns differ from the DataFrame's.
    """
    folder = None if out is None else check_out_folder(out)
    target = kwargs.get("target")
    if target is not None and not isinstance(target, (str, int, np.integer, list, tuple)):
        raise InvalidParameterError(
            "on Dask, target= must name the output(s) (a label, an index, a list, or 'all'); "
            "one target per row is not split across partitions. Explain the rows of each "
            "target separately (e.g. X[y == label]) or compute X first."
        )
    client = _dask_client(client)
    if not is_dask_collection(X):
        X = _as_dask(X, client)
    parts, columns = partitions(X)
    n_total = _known_rows(X)
    from dask import delayed
    from distributed import as_completed

    token = uuid.uuid4().hex
    shipped = client.scatter(_Payload(explainer, token), broadcast=True, hash=False)
    task = delayed(_explain_partition, pure=True)
    out_arg = None if folder is None else str(folder)
    tasks = [
        task(shipped, part, i, columns, kwargs, out_arg, dask_key_name=f"whybox-part-{token}-{i}")
        for i, part in enumerate(parts)
    ]
    futures = client.compute(tasks, retries=DASK_RETRIES)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        done = 0
        for fut in as_completed(futures, loop=client.loop):
            res = fut.result()  # the worker's exception, with its type
            results[index[fut.key]] = res
            fut.release()
            done += int(res["rows"] if isinstance(res, dict) else res.values.shape[0])
            if progress is not None:
                progress(done, n_total if n_total is not None else done)
    except Exception as exc:
        if _client_closed(client, exc):
            from .parallel import ClusterError

            raise ClusterError(
                "the Dask client was closed while whybox was explaining partitions on it; no "
                "result is returned. Keep the Client open until the call returns, then run "
                "it again"
                + (f" (with a new, empty out= folder than {str(out)!r})." if out else ".")
            ) from exc
        raise
    finally:
        try:
            client.cancel([*futures, shipped])
        except Exception:  # a closed client has released its keys already
            pass
    if folder is not None:
        from ._shards import write_manifest
        from .explanation import Explanation

        return write_manifest(folder, results, Explanation)
    from ._shards import concat

    return concat(results, type(results[0]))


def _known_rows(X: Any) -> int | None:
    import dask.array as da

    if isinstance(X, da.Array):
        n = X.shape[0]
        return None if n != n else int(n)  # NaN for unknown chunks
    return None


def _as_dask(X: Any, client: Any) -> Any:
    """A numpy array or pandas DataFrame as a Dask collection of ~4 partitions per thread."""
    try:
        threads = max(1, sum(client.nthreads().values()))
    except Exception:  # pragma: no cover - a client that cannot tell
        threads = 2
    if isinstance(X, pd.DataFrame):
        import dask.dataframe as dd

        return dd.from_pandas(X, npartitions=max(1, min(len(X), 4 * threads)))
    import dask.array as da

    arr = np.asarray(X)
    if arr.ndim < 2:
        raise InvalidInputError(
            f"X of shape {arr.shape} has no feature axis: pass rows of features (n, p)."
        )
    rows = max(1, -(-arr.shape[0] // (4 * threads)))
    return da.from_array(arr, chunks=(rows, *arr.shape[1:]))


def dask_routed(explain: Any) -> Any:
    """``explain(x, target=None, ...)`` that also takes a Dask ``x``, ``client=`` and ``out=``.

    A Dask DataFrame or Array (or any ``x`` with ``client=`` given) is explained partition by
    partition on the cluster by :func:`explain_dask` (``target`` and the other keywords are
    passed to ``explain`` on the workers); anything else goes to ``explain`` unchanged.
    """
    import functools

    @functools.wraps(explain)
    def routed(
        self: Any, x: Any, *args: Any, client: Any = None, out: Any = None, **kw: Any
    ) -> Any:
        if client is None and out is None and not is_dask_collection(x):
            return explain(self, x, *args, **kw)
        if not is_dask_collection(x) and client is None:
            raise InvalidParameterError(
                "out= writes one shard per Dask partition: pass a Dask DataFrame or Array as "
                "x (or client=Client(...)); for an in-memory result drop out= and save it "
                "with exp.save(path)."
            )
        if len(args) > 1:
            raise InvalidParameterError(
                "on Dask, pass the explain arguments after target by keyword "
                f"(got {len(args)} positional arguments)."
            )
        if args:
            kw["target"] = args[0]
        progress = kw.pop("progress", None)
        return explain_dask(self, x, client=client, out=out, progress=progress, **kw)

    return routed


def route(explainer: Any, X: Any, *, out: Any, progress: Any, **kwargs: Any) -> Any:
    """:func:`explain_dask` when ``X`` is a Dask collection or ``explainer.backend`` is
    ``"dask"``; None otherwise (the caller explains in place).

    Raises
    ------
    InvalidParameterError
        For ``out=`` without Dask.
    """
    if getattr(explainer, "backend", "serial") == "dask" or is_dask_collection(X):
        client = getattr(explainer, "client", None)
        return explain_dask(explainer, X, client=client, out=out, progress=progress, **kwargs)
    if out is not None:
        raise InvalidParameterError(
            "out= writes one shard per Dask partition: pass a Dask DataFrame or Array as X (or "
            f"{type(explainer).__name__}(..., backend='dask')); for an in-memory result drop "
            "out= and save it with exp.save(path)."
        )
    return None
