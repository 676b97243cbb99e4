"""The Dask cluster the Dask test modules share: one ``LocalCluster`` of two single-threaded
workers and a client that is *not* the default one (tests of "no client" must not find it).

Each module keeps its own module-scoped ``client`` fixture that enters
:func:`two_worker_client`, so every module gets a fresh cluster that is closed when the
module's tests are done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def two_worker_client(*, processes: bool = True) -> Iterator[Any]:
    """A ``distributed.Client`` on a new ``LocalCluster`` of two single-threaded workers
    (worker processes with nannies by default; ``processes=False``: threads), once both
    workers are up; client and cluster are closed on exit."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    c = Client(cluster, set_as_default=False)
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        c.close()
        cluster.close()
