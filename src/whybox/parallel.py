"""Executors for explaining many rows: serial, local processes, or a Dask cluster.

Rows are explained independently, so they are split into chunks and mapped over workers.
Reproducibility does not depend on how: every stochastic estimate draws from a generator
seeded by ``random_state`` *and the content of the explained row* (:func:`row_generator`),
never by its position or by the worker that runs it. The same row with the same
``random_state`` gets bit-identical values whatever the backend, ``n_jobs`` or chunk size,
and explaining a row alone or in a batch gives the same answer.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidParameterError

__all__ = ["BACKENDS", "chunk_bounds", "map_chunks", "row_generator", "row_seed"]

BACKENDS = ("serial", "processes", "dask")


def _row_bytes(x: Any) -> bytes:
    """A canonical byte string of one explained row (array or one-row DataFrame)."""
    if isinstance(x, pd.DataFrame):
        row = x.iloc[0]
        return "\x1f".join(
            f"{c}={type(v).__name__}:{v!r}" for c, v in zip(x.columns, row.tolist(), strict=True)
        ).encode()
    arr = np.ascontiguousarray(np.asarray(x))
    if arr.dtype.kind == "O":
        return repr(arr.tolist()).encode()
    return str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes()


def row_seed(random_state: int | None, x: Any) -> np.random.SeedSequence:
    """Seed sequence of one explained row: a function of ``random_state`` and the row's content.

    With ``random_state=None`` the seed is fresh entropy (not reproducible, as asked).
    """
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise InvalidParameterError(
            f"random_state must be None or a non-negative int, got {random_state!r}."
        )
    if random_state < 0:
        raise InvalidParameterError(f"random_state must be non-negative, got {random_state}.")
    digest = hashlib.blake2b(_row_bytes(x), digest_size=16).digest()
    words = np.frombuffer(digest, dtype=np.uint32).tolist()
    return np.random.SeedSequence([int(random_state), *words])


def row_generator(random_state: int | None, x: Any) -> np.random.Generator:
    """A numpy Generator seeded by :func:`row_seed`."""
    return np.random.default_rng(row_seed(random_state, x))


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` bounds of consecutive chunks of ``chunk_size`` rows."""
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def _check_backend(backend: str, n_jobs: int | None) -> None:
    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"backend={backend!r} is not supported. Expected one of {list(BACKENDS)}."
        )
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0
    ):
        raise InvalidParameterError(
            f"n_jobs must be None, a positive int, or -1 for all cores; got {n_jobs!r}."
        )


def map_chunks(
    fn: Callable[[int, int], Any],
    n: int,
    *,
    backend: str = "serial",
    n_jobs: int | None = None,
    chunk_size: int | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Apply ``fn(start, stop)`` to consecutive row chunks and return results in row order.

    Parameters
    ----------
    fn : callable(start, stop) -> result
        Work on rows ``start:stop``. It must be picklable for the process and Dask backends
        (cloudpickle is used, so closures work).
    n : int
        Number of rows.
    backend : {"serial", "processes", "dask"}
    n_jobs : int or None
        Worker processes for ``"processes"`` (-1: all cores).
    chunk_size : int or None
        Rows per task; defaults to an even split into ``4 * workers`` tasks.
    client : dask.distributed.Client, optional
        The cluster for ``"dask"``; defaults to the current default client.
    progress : callable(done_rows, total_rows), optional

    Returns
    -------
    list
        One result per chunk, in chunk order.
    """
    _check_backend(backend, n_jobs)
    if backend == "processes" and (n_jobs is None or n_jobs == 1):
        backend = "serial"
    if chunk_size is None:
        workers = 1 if backend == "serial" else max(2, _n_workers(backend, n_jobs, client))
        chunk_size = max(1, -(-n // (4 * workers))) if backend != "serial" else max(1, n)
        if backend == "serial" and progress is not None:
            chunk_size = 1
    bounds = chunk_bounds(n, chunk_size)
    if backend == "serial":
        out = []
        for start, stop in bounds:
            out.append(fn(start, stop))
            if progress is not None:
                progress(stop, n)
        return out
    if backend == "processes":
        return _map_processes(fn, bounds, n, n_jobs, progress)
    return _map_dask(fn, bounds, n, client, progress)


def _n_workers(backend: str, n_jobs: int | None, client: Any) -> int:
    if backend == "processes":
        import os

        if n_jobs in (None, -1):
            return os.cpu_count() or 1
        return int(n_jobs)  # type: ignore[arg-type]
    if client is None:
        return 2
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # pragma: no cover - a client without scheduler info
        return 2


def _call_chunk(fn: Callable[[int, int], Any], bounds: tuple[int, int]) -> Any:
    return fn(*bounds)


def _map_processes(
    fn: Callable[[int, int], Any],
    bounds: Sequence[tuple[int, int]],
    n: int,
    n_jobs: int | None,
    progress: Callable[[int, int], None] | None,
) -> list[Any]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
    out = []
    for (_, stop), res in zip(
        bounds, parallel(delayed(_call_chunk)(fn, b) for b in bounds), strict=True
    ):
        out.append(res)
        if progress is not None:
            progress(stop, n)
    return out


def _map_dask(
    fn: Callable[[int, int], Any],
    bounds: Sequence[tuple[int, int]],
    n: int,
    client: Any,
    progress: Callable[[int, int], None] | None,
) -> list[Any]:
    try:
        from distributed import get_client
    except ImportError as exc:
        from .errors import MissingDependencyError

        raise MissingDependencyError("distributed", "dask", "backend='dask'") from exc
    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise InvalidParameterError(
                "backend='dask' needs a dask.distributed Client: pass client=Client(...) or "
                "create one first (it becomes the default)."
            ) from exc
    fn_future = client.scatter(fn, broadcast=True, hash=False)
    futures = [
        client.submit(
            _call_chunk,
            fn_future,
            b,
            pure=False,
            retries=2,
            key=f"whybox-chunk-{i}-"
            + hashlib.blake2b(repr((id(fn), b)).encode(), digest_size=6).hexdigest(),
        )
        for i, b in enumerate(bounds)
    ]
    done = 0
    if progress is not None:
        from distributed import as_completed

        sizes = {f.key: stop - start for f, (start, stop) in zip(futures, bounds, strict=True)}
        for fut in as_completed(futures):
            done += sizes[fut.key]
            progress(done, n)
    return client.gather(futures)
