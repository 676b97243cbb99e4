"""A Dask worker killed (SIGKILL) while TreeShap explains partitions: the run completes, no
partition is lost or duplicated, the values equal the serial ones bit for bit, in memory and
as shards. One LocalCluster of two worker processes (with nannies, which restart the dead)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from whybox.trees.treeshap import TreeShap

from ._dask_cluster import two_worker_client

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

N_PARTS = 10
ROWS = 40


def _frame(i):
    """Partition i, slowly (as if read from a remote store): module level, so that worker
    processes unpickle it by reference."""
    time.sleep(0.3)
    rng = np.random.default_rng(i)
    return pd.DataFrame(rng.normal(size=(ROWS, 4)), columns=["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def client():
    with two_worker_client() as c:
        yield c


@pytest.fixture(scope="module")
def model():
    X = pd.concat([_frame(i) for i in range(2)])
    y = X.a - 2 * X.b * X.c + X.d
    return GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0).fit(X, y)


def _dask_frame():
    from dask import delayed

    parts = [delayed(_frame, pure=True)(i) for i in range(N_PARTS)]
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in "abcd"})
    return dd.from_delayed(parts, meta=empty, verify_meta=False)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _run_and_kill(client, job):
    """Run ``job`` in a thread, SIGKILL the worker that holds a whybox partition task, wait."""
    pids = client.run(os.getpid)
    assert len(pids) == 2
    result: dict = {}

    def run():
        try:
            result["value"] = job()
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    victim: list[str] = []

    def a_worker_has_a_partition():
        for addr, keys in client.processing().items():
            if any(str(k).startswith("whybox-part-") for k in keys):
                victim.append(addr)
                return True
        return False

    _wait_for(a_worker_has_a_partition, 60, "a whybox partition task")
    assert thread.is_alive()  # mid-run: 10 partitions of >= 0.3 s on 2 workers
    os.kill(pids[victim[0]], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not finish after a worker was killed"
    assert "error" not in result, result.get("error")
    _wait_for(lambda: len(client.nthreads()) == 2, 60, "the nanny to restart the worker")
    assert pids[victim[0]] not in client.run(os.getpid).values()
    return result["value"]


@pytest.mark.timeout(180)
def test_killed_worker_loses_no_partition(client, model):
    X = pd.concat([_frame(i) for i in range(N_PARTS)])
    serial = TreeShap(model).explain(X)

    exp = _run_and_kill(client, lambda: TreeShap(model, client=client).explain(_dask_frame()))
    assert exp.values.shape == (N_PARTS * ROWS, 4)
    assert np.array_equal(exp.values, serial.values)
    assert np.array_equal(exp.predictions, serial.predictions)
