"""Executors for explaining many rows: serial, local processes, or a Dask cluster.

Rows are explained independently, so they are split into chunks of consecutive rows and the
chunks are mapped over workers by :func:`map_chunks`:

* ``"serial"``: in this process, one chunk after the other.
* ``"processes"``: ``n_jobs`` local worker processes (joblib's loky backend; ``-1`` means all
  cores, ``-2`` all but one, ...). ``n_jobs=None`` or ``1`` runs serially in this process.
* ``"dask"``: the workers of a ``dask.distributed`` cluster, through a ``Client`` (passed in,
  or the current default client). The work function is sent to every worker once
  (``scatter(..., broadcast=True)``), each chunk is one task with a key unique to the call,
  and results come back in chunk order. A task whose worker dies is rerun elsewhere by the
  scheduler, and a task that raises is retried (``retries=2``); a chunk's result is taken
  once, so no row is lost or duplicated. The cluster's workers need whybox installed.

The work function is serialised with cloudpickle (closures and lambdas work); a
``distributed.Client`` it refers to (e.g. through an explainer's ``client=``) is a
connection, not data, and is replaced by ``None`` on the workers. An exception raised in a
worker (e.g. :class:`~whybox.errors.ModelCallError`) is re-raised in the caller with its type,
and the remaining chunks are cancelled. A Client closed while a call runs on it raises
:class:`ClusterError` (a :class:`~whybox.errors.WhyboxError`) naming the rows whose chunks were
cancelled.

Reproducibility does not depend on how rows are mapped: every stochastic estimate draws from a
generator seeded by ``random_state`` *and the content of the explained row*
(:func:`row_generator`), never by its position or by the worker that runs it. The same row
with the same ``random_state`` gets bit-identical values whatever the backend, ``n_jobs`` or
chunk size, and explaining a row alone or in a batch gives the same answer.
"""

from __future__ import annotations

import hashlib
import io
import numbers
import pickle
import sys
import traceback
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidParameterError, MissingDependencyError, WhyboxError

__all__ = [
    "BACKENDS",
    "ClusterError",
    "chunk_bounds",
    "map_chunks",
    "one_blas_thread",
    "resolve_n_jobs",
    "row_generator",
    "row_seed",
]

_BLAS: Any = None


def one_blas_thread() -> Any:
    """Context manager limiting BLAS to one thread (threadpoolctl ships with scikit-learn).

    Small dense solves and pseudo-inverses run several times faster on one OpenBLAS thread
    than on several when the cores are shared (the threads spin against each other).
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


BACKENDS = ("serial", "processes", "dask")

#: times Dask reruns a chunk whose task raised (a dead worker is handled by the scheduler)
DASK_RETRIES = 2

ProgressFn = Callable[[int, int], None]


# ---------------------------------------------------------------------------- seeds
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

    The row's position in X, the chunk it falls in and the worker that explains it play no
    part. With ``random_state=None`` the seed is fresh entropy (not reproducible, as asked).

    Raises
    ------
    InvalidParameterError
        If ``random_state`` is not None or a non-negative int.
    """
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise InvalidParameterError(
            f"random_state must be None or a non-negative int, got {random_state!r} of type "
            f"{type(random_state).__name__}."
        )
    if random_state < 0:
        raise InvalidParameterError(f"random_state must be non-negative, got {random_state}.")
    digest = hashlib.blake2b(_row_bytes(x), digest_size=16).digest()
    words = np.frombuffer(digest, dtype=np.uint32).tolist()
    return np.random.SeedSequence([int(random_state), *words])


def row_generator(random_state: int | None, x: Any) -> np.random.Generator:
    """A numpy Generator seeded by :func:`row_seed`."""
    return np.random.default_rng(row_seed(random_state, x))


# ---------------------------------------------------------------------------- chunks
def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` bounds of consecutive chunks of ``chunk_size`` rows."""
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def _check_backend(backend: Any, n_jobs: Any) -> None:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InvalidParameterError(
            f"backend={backend!r} is not supported. Expected one of {list(BACKENDS)}."
        )
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0
    ):
        raise InvalidParameterError(
            f"n_jobs must be None, a positive int, or a negative int counting back from all "
            f"cores (-1: all cores, -2: all but one); got {n_jobs!r}."
        )


def _cpu_count() -> int:
    try:
        from joblib import cpu_count

        return max(1, int(cpu_count()))
    except Exception:  # pragma: no cover - joblib is a dependency of scikit-learn
        import os

        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Number of worker processes ``n_jobs`` asks for: ``None`` -> 1, ``-1`` -> all cores,
    ``-2`` -> all but one, ... (at least 1)."""
    _check_backend("processes", n_jobs)
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    if n_jobs > 0:
        return n_jobs
    return max(1, _cpu_count() + 1 + n_jobs)


def map_chunks(
    fn: Callable[[int, int], Any],
    n: int,
    *,
    backend: str = "serial",
    n_jobs: int | None = None,
    chunk_size: int | None = None,
    client: Any = None,
    progress: ProgressFn | None = None,
) -> list[Any]:
    """Apply ``fn(start, stop)`` to consecutive row chunks and return results in row order.

    Parameters
    ----------
    fn : callable(start, stop) -> result
        Work on rows ``start:stop``. It must be picklable with cloudpickle for the process
        and Dask backends (closures and lambdas are); a ``distributed.Client`` it refers to
        arrives on the workers as ``None``.
    n : int
        Number of rows.
    backend : {"serial", "processes", "dask"}
    n_jobs : int or None
        Worker processes for ``"processes"``: ``None`` or 1 runs serially in this process,
        ``-1`` uses all cores, ``-2`` all but one. Ignored by the other backends.
    chunk_size : int or None
        Rows per task; defaults to an even split into about ``4 * workers`` tasks (serially:
        one chunk, or one row per chunk when ``progress`` is given).
    client : dask.distributed.Client, optional
        The cluster for ``"dask"``; defaults to the current default client.
    progress : callable(done_rows, total_rows), optional
        Called in this process as chunks finish (in any order); the last call is
        ``progress(n, n)``.

    Returns
    -------
    list
        One result per chunk, in chunk order.

    Raises
    ------
    InvalidParameterError
        For an unknown backend, a bad ``n_jobs`` or ``chunk_size``, or ``"dask"`` without a
        client.
    Exception
        Whatever ``fn`` raised in a worker, with its type.
    """
    _check_backend(backend, n_jobs)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise InvalidParameterError(f"n must be a non-negative int, got {n!r}.")
    n = int(n)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral)
    ):
        raise InvalidParameterError(
            f"chunk_size must be None or a positive int, got {chunk_size!r}."
        )
    if chunk_size is not None and chunk_size < 1:
        raise InvalidParameterError(f"chunk_size must be at least 1, got {chunk_size}.")
    if backend == "processes" and resolve_n_jobs(n_jobs) == 1:
        backend = "serial"
    if backend == "dask":
        client = _dask_client(client)
    if n == 0:
        return []
    if chunk_size is None:
        if backend == "serial":
            chunk_size = 1 if progress is not None else n
        else:
            workers = max(2, _n_workers(backend, n_jobs, client))
            chunk_size = max(1, -(-n // (4 * workers)))
    bounds = chunk_bounds(n, int(chunk_size))
    if backend == "serial":
        out = []
        for start, stop in bounds:
            out.append(fn(start, stop))
            if progress is not None:
                progress(stop, n)
        return out
    if backend == "processes":
        return _map_processes(fn, bounds, n, resolve_n_jobs(n_jobs), progress)
    return _map_dask(fn, bounds, n, client, progress)


def _n_workers(backend: str, n_jobs: int | None, client: Any) -> int:
    if backend == "processes":
        return resolve_n_jobs(n_jobs)
    try:  # total threads: the number of chunks the cluster runs at once
        return max(1, sum(client.nthreads().values()))
    except Exception:  # pragma: no cover - a client that cannot tell
        return 2


# ---------------------------------------------------------------------------- shipping
def _cloudpickle() -> Any:
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib (a scikit-learn dependency) vendors it
        from joblib.externals import cloudpickle
    return cloudpickle


def _no_client() -> None:
    return None


def _dumps(obj: Any) -> bytes:
    """cloudpickle ``obj``, with every ``distributed.Client`` in it replaced by ``None``."""
    cloudpickle = _cloudpickle()
    mod = sys.modules.get("distributed.client")
    client_cls = getattr(mod, "Client", None)

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, o: Any) -> Any:
            if client_cls is not None and isinstance(o, client_cls):
                return (_no_client, ())
            return super().reducer_override(o)

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _loads(payload: bytes) -> Any:
    return pickle.loads(payload)


class _Shipped:
    """``fn`` pickled once, in the caller; it unpickles as ``fn`` itself in the worker.

    Called without a trip through pickle (joblib runs a single task, or nested work, in the
    calling process), it unpickles its copy on first use, so it behaves the same.
    """

    def __init__(self, fn: Any) -> None:
        self.payload = _dumps(fn)
        self._fn: Any = None

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_loads, (self.payload,))

    def __call__(self, start: int, stop: int) -> Any:
        if self._fn is None:
            self._fn = _loads(self.payload)
        return self._fn(start, stop)


def _note_cause(exc: BaseException) -> None:
    """Keep the chained cause of ``exc`` as a note: pickling to the caller drops ``__cause__``
    (e.g. the user's model error behind a ModelCallError), but keeps ``__notes__``."""
    cause = exc.__cause__
    if cause is None:
        return
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    note = "raised in a worker, caused by:\n" + text.rstrip()
    notes = list(getattr(exc, "__notes__", None) or [])
    if note not in notes:
        try:
            exc.__notes__ = [*notes, note]
        except Exception:  # pragma: no cover - an exception type that refuses attributes
            pass


def _call_chunk(fn: Callable[[int, int], Any], bounds: tuple[int, int]) -> Any:
    try:
        return fn(*bounds)
    except BaseException as exc:
        _note_cause(exc)
        raise


def _call_indexed(
    fn: Callable[[int, int], Any], i: int, bounds: tuple[int, int]
) -> tuple[int, Any]:
    return i, _call_chunk(fn, bounds)


# ---------------------------------------------------------------------------- processes
def _map_processes(
    fn: Callable[[int, int], Any],
    bounds: Sequence[tuple[int, int]],
    n: int,
    n_jobs: int,
    progress: ProgressFn | None,
) -> list[Any]:
    from joblib import Parallel, delayed

    shipped = _Shipped(fn)
    parallel = Parallel(
        n_jobs=min(n_jobs, len(bounds)), backend="loky", return_as="generator_unordered"
    )
    out: list[Any] = [None] * len(bounds)
    done = 0
    for i, res in parallel(delayed(_call_indexed)(shipped, i, b) for i, b in enumerate(bounds)):
        out[i] = res
        if progress is not None:
            start, stop = bounds[i]
            done += stop - start
            progress(done, n)
    return out


# ---------------------------------------------------------------------------- dask
def _dask_client(client: Any) -> Any:
    try:
        from distributed import get_client
    except ImportError as exc:
        raise MissingDependencyError("distributed", "dask", "backend='dask'") from exc
    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise InvalidParameterError(
                "backend='dask' needs a dask.distributed Client, and none was given and there "
                "is no default client: pass client=Client('tcp://scheduler:8786') (or "
                "Client(LocalCluster())), or create a Client first so that it becomes the "
                "default. For local processes without Dask use backend='processes', n_jobs=N."
            ) from exc
    if not hasattr(client, "submit") or not hasattr(client, "scatter"):
        raise InvalidParameterError(
            f"client must be a dask.distributed Client, got {type(client).__name__}."
        )
    if getattr(client, "asynchronous", False):
        raise InvalidParameterError(
            "backend='dask' needs a synchronous Client; this one is asynchronous."
        )
    status = getattr(client, "status", "running")
    if status not in ("running", "connecting", "newly-created"):
        raise InvalidParameterError(
            f"the dask Client is {status!r}, not running: connect a new Client to the cluster."
        )
    return client


def _map_dask(
    fn: Callable[[int, int], Any],
    bounds: Sequence[tuple[int, int]],
    n: int,
    client: Any,
    progress: ProgressFn | None,
) -> list[Any]:
    from distributed import as_completed

    # One copy per worker; a worker that joins or restarts fetches it from a peer.
    fn_future = client.scatter(_Shipped(fn), broadcast=True, hash=False)
    token = uuid.uuid4().hex
    futures = [
        client.submit(
            _call_chunk,
            fn_future,
            b,
            key=f"whybox-chunk-{token}-{i}",
            retries=DASK_RETRIES,
        )
        for i, b in enumerate(bounds)
    ]
    sizes = {f.key: stop - start for f, (start, stop) in zip(futures, bounds, strict=True)}
    finished: set[str] = set()
    try:
        done = 0
        for fut in as_completed(futures, loop=client.loop):
            if fut.status != "finished":
                fut.result()  # raises the worker's exception (or CancelledError) with its type
            finished.add(fut.key)
            done += sizes[fut.key]
            if progress is not None:
                progress(done, n)
        results = client.gather(futures)
    except Exception as exc:
        if _client_closed(client, exc):
            raise _closed_error(futures, bounds, n, finished) from exc
        raise
    finally:
        # on success this just releases the keys; on an error it stops the other chunks
        try:
            client.cancel([*futures, fn_future])
        except Exception as exc:
            # a closed client has already released its keys; anything else is a real fault,
            # raised here only if no other exception is on its way out
            if not _client_closed(client, exc) and sys.exc_info()[0] is None:
                raise
    return results


class ClusterError(WhyboxError, RuntimeError):
    """The Dask cluster stopped serving a call (e.g. its Client was closed mid-run)."""


def _client_closed(client: Any, exc: BaseException) -> bool:
    """Whether ``exc`` comes from ``client`` having been closed (or its event loop stopped)."""
    if getattr(client, "status", "running") in ("closing", "closed"):
        return True
    name = type(exc).__name__
    return name == "ClosedClientError" or (
        isinstance(exc, RuntimeError) and "IOLoop is closed" in str(exc)
    )


def _closed_error(
    futures: Sequence[Any], bounds: Sequence[tuple[int, int]], n: int, finished: set[str]
) -> ClusterError:
    """A ClusterError naming the rows whose chunks were cancelled by the closed client."""
    lost = [b for f, b in zip(futures, bounds, strict=True) if f.key not in finished]
    rows = sum(stop - start for start, stop in lost)
    merged: list[list[int]] = []
    for start, stop in lost:  # consecutive chunks as one span of rows
        if merged and merged[-1][1] == start:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    spans = ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b in merged[:5])
    more = f" and {len(merged) - 5} more spans" if len(merged) > 5 else ""
    return ClusterError(
        f"the Dask client was closed while whybox was running on it: {len(lost)} of "
        f"{len(bounds)} chunks of rows were cancelled ({rows} of {n} rows: {spans}{more}), and no "
        "result is returned. Keep the Client open until the call returns (close it afterwards, "
        "e.g. with 'with Client(...) as client:' around the call), then run it again."
    )
