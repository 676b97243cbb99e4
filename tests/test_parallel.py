"""Parallel execution: per-row seeds, chunk mapping, and bit-identical results on every backend.

The Dask tests run on one real ``LocalCluster`` of two worker processes (module fixture),
including a worker killed by SIGKILL in the middle of a job.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import whybox as wb
from whybox import cli as whybox_cli
from whybox.agnostic.shapley import ExactShap
from whybox.cli import app
from whybox.errors import InvalidParameterError, ModelCallError
from whybox.parallel import (
    BACKENDS,
    chunk_bounds,
    map_chunks,
    resolve_n_jobs,
    row_generator,
    row_seed,
)

from ._dask_cluster import two_worker_client

distributed = pytest.importorskip("distributed")

runner = CliRunner()

P = 4
WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0])


# ------------------------------------------------------------------ module-level helpers
# (module level, so that worker processes can unpickle them by reference)
def linear_model(X):
    """X @ WEIGHTS, accumulated column by column without BLAS: each row's output has the same
    bits in any batch, so the exact-equality checks test whybox, not a BLAS kernel's blocking."""
    X = np.asarray(X, dtype=float)
    out = X[:, 0] * WEIGHTS[0]
    for j in range(1, X.shape[1]):
        out = out + X[:, j] * WEIGHTS[j]
    return out


def slow_model(X):
    time.sleep(0.25)
    return linear_model(X)


def fails_on_batches(X):
    """Fine on the one-row probe of wrap_model, raises on the game's batches (in workers)."""
    if np.shape(X)[0] > 1:
        raise ValueError("model exploded on a batch")
    return np.asarray(X, dtype=float).sum(axis=1)


class NoisyExactShap(ExactShap):
    """A *sampled* estimator for the tests: exact values plus noise drawn from the row's rng,
    so that results depend on every seed being right."""

    method = "noisy-exact"

    def _estimate(self, game, rng, **kwargs):
        phi, base, std, info = super()._estimate(game, rng, **kwargs)
        return phi + rng.normal(size=phi.shape) * 1e-3, base, std, info


def rows_of_chunk(start, stop):
    # later chunks finish first, so results arrive out of order on parallel backends
    time.sleep(0.002 * (20 - min(start, 20)))
    return list(range(start, stop))


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def client():
    """One real cluster of two single-threaded worker processes for the whole module."""
    with two_worker_client() as c:
        yield c


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(13, P))
    background = rng.normal(size=(10, P))
    return X, background


@pytest.fixture(scope="module")
def serial_exp(data):
    X, bg = data
    return NoisyExactShap(linear_model, background=bg, random_state=3).explain(X)


def assert_same_explanation(a, b):
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.base_values, b.base_values)
    assert np.array_equal(a.predictions, b.predictions)
    assert (a.std is None) == (b.std is None)
    if a.std is not None:
        assert np.array_equal(a.std, b.std)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------------ row seeds
def _state(seed_seq):
    return seed_seq.generate_state(4).tolist()


def test_row_seed_depends_on_random_state_and_content_not_position():
    X = np.arange(12, dtype=float).reshape(3, 4)
    assert _state(row_seed(0, X[1])) == _state(row_seed(0, X[1].copy()))
    assert _state(row_seed(0, X[1])) != _state(row_seed(1, X[1]))
    assert _state(row_seed(0, X[1])) != _state(row_seed(0, X[2]))
    # the same content at another position of another array
    Y = np.vstack([X[2], X[0], X[1]])
    assert _state(row_seed(0, Y[2])) == _state(row_seed(0, X[1]))
    # generators draw identically
    a = row_generator(5, X[0]).normal(size=8)
    b = row_generator(5, Y[1]).normal(size=8)
    assert np.array_equal(a, b)
    # numpy integer seeds are ints
    assert _state(row_seed(np.int64(5), X[0])) == _state(row_seed(5, X[0]))


def test_row_seed_same_row_in_other_dataframes():
    df = pd.DataFrame(
        {
            "income": [50.5, 61.25, 42.0],
            "region": pd.Categorical(["north", "south", "north"]),
            "job": ["clerk", "nurse", "clerk"],
        }
    )
    other = pd.concat([df.iloc[[2, 0]], df.iloc[[1]]], ignore_index=True)  # row 1 -> position 2
    assert _state(row_seed(0, df.iloc[[1]])) == _state(row_seed(0, other.iloc[[2]]))
    assert _state(row_seed(0, df.iloc[[1]])) != _state(row_seed(0, df.iloc[[0]]))
    # the index label is position, not content
    relabelled = df.iloc[[1]].set_axis([99])
    assert _state(row_seed(0, relabelled)) == _state(row_seed(0, df.iloc[[1]]))


def test_row_seed_none_is_fresh_entropy():
    x = np.ones(3)
    assert _state(row_seed(None, x)) != _state(row_seed(None, x))


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, np.random.default_rng(0)])
def test_row_seed_rejects_bad_random_state(bad):
    with pytest.raises(InvalidParameterError, match="random_state"):
        row_seed(bad, np.ones(3))


# ------------------------------------------------------------------ map_chunks
def test_chunk_bounds_and_resolve_n_jobs():
    assert chunk_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert chunk_bounds(0, 3) == []
    cpus = joblib.cpu_count()
    assert resolve_n_jobs(None) == 1
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-1) == cpus
    assert resolve_n_jobs(-2) == max(1, cpus - 1)
    assert resolve_n_jobs(-10_000) == 1
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(InvalidParameterError, match="n_jobs"):
            resolve_n_jobs(bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_size", [None, 1, 4, 50])
def test_map_chunks_in_order_with_progress(backend, chunk_size, client):
    n = 23
    calls = []
    kwargs = {"n_jobs": 2} if backend == "processes" else {}
    if backend == "dask":
        kwargs["client"] = client
    out = map_chunks(
        rows_of_chunk,
        n,
        backend=backend,
        chunk_size=chunk_size,
        progress=lambda done, total: calls.append((done, total)),
        **kwargs,
    )
    assert [r for chunk in out for r in chunk] == list(range(n))
    if chunk_size is not None:
        assert [len(c) for c in out] == [
            stop - start for start, stop in chunk_bounds(n, chunk_size)
        ]
    assert calls[-1] == (n, n)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)
    assert {t for _, t in calls} == {n}


def test_map_chunks_closures_and_all_cores():
    offset = 100
    out = map_chunks(
        lambda s, e: [offset + i for i in range(s, e)],
        6,
        backend="processes",
        n_jobs=-1,
        chunk_size=3,
    )
    assert out == [[100, 101, 102], [103, 104, 105]]
    assert map_chunks(rows_of_chunk, 0, backend="processes", n_jobs=2) == []


def test_dask_calls_in_a_row_do_not_share_keys(client):
    # the same bounds and fresh closures each call: keys are unique per call, so no call
    # can be answered with another call's (cached) results
    for k in range(4):
        out = map_chunks(
            lambda s, e, k=k: [(k, i) for i in range(s, e)],
            5,
            backend="dask",
            client=client,
            chunk_size=2,
        )
        assert [r for c in out for r in c] == [(k, i) for i in range(5)]
    assert not [key for keys in client.processing().values() for key in keys]


def test_map_chunks_parameter_errors(client):
    with pytest.raises(InvalidParameterError, match=r"\['serial', 'processes', 'dask'\]"):
        map_chunks(rows_of_chunk, 3, backend="threads")
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        map_chunks(rows_of_chunk, 3, chunk_size=0)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        map_chunks(rows_of_chunk, 3, backend="processes", n_jobs=0)


# ------------------------------------------------------------------ bit-identical explanations
@pytest.mark.parametrize("chunk_size", [1, 3, 7])
@pytest.mark.parametrize("backend", ["serial", "processes", "dask"])
def test_bit_identical_across_backends_and_chunk_sizes(
    backend, chunk_size, data, serial_exp, client
):
    X, bg = data
    kwargs = {"processes": {"n_jobs": 2}, "dask": {"backend": "dask", "client": client}}.get(
        backend, {}
    )
    exp = NoisyExactShap(
        linear_model, background=bg, random_state=3, chunk_size=chunk_size, **kwargs
    ).explain(X)
    assert_same_explanation(exp, serial_exp)
    # the noise is there: seeds matter, and differ between rows
    exact = ExactShap(linear_model, background=bg).explain(X)
    assert not np.array_equal(exp.values, exact.values)
    np.testing.assert_allclose(exp.values, exact.values, atol=1e-2)


def test_seed_changes_values(data, serial_exp):
    X, bg = data
    other = NoisyExactShap(linear_model, background=bg, random_state=4).explain(X)
    assert not np.array_equal(other.values, serial_exp.values)


def test_row_alone_equals_row_in_batch(data, serial_exp, client):
    X, bg = data
    for i in (0, 5, 12):
        alone = NoisyExactShap(linear_model, background=bg, random_state=3).explain(X[i])
        assert np.array_equal(alone.values[0], serial_exp.values[i])
    # and in another batch, at another position, on another backend
    shuffled = NoisyExactShap(
        linear_model, background=bg, random_state=3, backend="dask", client=client
    ).explain(X[::-1])
    assert np.array_equal(shuffled.values[::-1], serial_exp.values)


def test_sklearn_model_and_dataframe_bit_identical(client):
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X["a"] - 2 * X["b"] + X["a"] * X["c"])
    rows = X.iloc[:9]
    serial = NoisyExactShap(model, background=X, random_state=1).explain(rows)
    procs = NoisyExactShap(model, background=X, random_state=1, n_jobs=2, chunk_size=2).explain(
        rows
    )
    dask = NoisyExactShap(
        model, background=X, random_state=1, backend="dask", client=client, chunk_size=4
    ).explain(rows)
    assert_same_explanation(procs, serial)
    assert_same_explanation(dask, serial)
    assert list(dask.data.columns) == ["a", "b", "c"]


def test_lambda_model_with_processes_and_dask(data, client):
    X, bg = data
    w = WEIGHTS.copy()

    def model(Z):
        return Z @ w

    serial = NoisyExactShap(model, background=bg, random_state=3).explain(X)
    procs = NoisyExactShap(lambda Z: Z @ w, background=bg, random_state=3, n_jobs=2).explain(X)
    dask = NoisyExactShap(
        lambda Z: Z @ w, background=bg, random_state=3, backend="dask", client=client
    ).explain(X)
    assert_same_explanation(procs, serial)
    assert_same_explanation(dask, serial)


def test_progress_through_explainer(data, client):
    X, bg = data
    for kwargs in ({}, {"n_jobs": 2}, {"backend": "dask", "client": client}):
        calls: list[tuple[int, int]] = []
        NoisyExactShap(linear_model, background=bg, chunk_size=4, **kwargs).explain(
            X, progress=lambda d, t, calls=calls: calls.append((d, t))
        )
        assert calls[-1] == (len(X), len(X)), kwargs


# ------------------------------------------------------------------ a worker dies mid-job
@pytest.mark.timeout(180)
def test_killed_worker_loses_and_duplicates_no_rows(client):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 3))
    bg = rng.normal(size=(6, 3))
    expected = NoisyExactShap(linear_model, background=bg, random_state=2).explain(X)
    pids = client.run(os.getpid)
    assert len(pids) == 2
    result: dict = {}

    def job():
        try:
            result["exp"] = NoisyExactShap(
                slow_model,
                background=bg,
                random_state=2,
                backend="dask",
                client=client,
                chunk_size=1,
            ).explain(X)
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    victim: list[str] = []

    def a_worker_runs_a_chunk():
        for addr, keys in client.processing().items():
            if any(str(k).startswith("whybox-chunk-") for k in keys):
                victim.append(addr)
                return True
        return False

    _wait_for(a_worker_runs_a_chunk, 60, "a whybox chunk to start")
    assert thread.is_alive()  # mid-job: 10 chunks of >= 0.25 s on 2 workers
    os.kill(pids[victim[0]], signal.SIGKILL)
    thread.join(timeout=150)
    assert not thread.is_alive(), "explain() did not finish after a worker was killed"
    assert "error" not in result, result.get("error")
    exp = result["exp"]
    # every row once, in order, with the values of a serial run
    assert exp.values.shape == expected.values.shape
    assert_same_explanation(exp, expected)
    # the worker really died; its nanny starts a new one (other tests use the cluster)
    _wait_for(
        lambda: victim[0] not in client.nthreads() and len(client.nthreads()) == 2,
        60,
        "the nanny to restart the killed worker",
    )
    assert pids[victim[0]] not in client.run(os.getpid).values()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_model_error_in_worker_propagates_with_its_type(backend, data, client):
    X, bg = data
    kwargs = {"n_jobs": 2} if backend == "processes" else {"backend": "dask", "client": client}
    with pytest.raises(ModelCallError, match="model exploded on a batch") as info:
        ExactShap(fails_on_batches, background=bg, chunk_size=2, **kwargs).explain(X)
    # the model's own traceback survives the trip from the worker
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "ValueError: model exploded on a batch" in notes
    assert "fails_on_batches" in notes
    # the cluster is fine afterwards, and no chunk of the failed call is left running
    if backend == "dask":
        _wait_for(
            lambda: not [k for keys in client.processing().values() for k in keys],
            30,
            "the cancelled chunks to leave the workers",
        )
        exp = ExactShap(linear_model, background=bg, backend="dask", client=client).explain(X)
        assert exp.values.shape == (len(X), P)


def test_dask_without_client_is_a_clear_error(data):
    X, bg = data
    with pytest.raises(InvalidParameterError, match=r"needs a dask.distributed Client"):
        ExactShap(linear_model, background=bg, backend="dask").explain(X)


def test_unknown_backend_lists_backends():
    with pytest.raises(InvalidParameterError) as info:
        ExactShap(linear_model, backend="threads")
    for name in BACKENDS:
        assert name in str(info.value)


def test_closed_client_is_a_clear_error(data, client):
    from distributed import Client

    X, bg = data
    c = Client(client.scheduler.address, set_as_default=False)
    c.close()
    with pytest.raises(InvalidParameterError, match="not running"):
        ExactShap(linear_model, background=bg, backend="dask", client=c).explain(X)


def _slow_chunk(start, stop):
    time.sleep(0.2)
    return list(range(start, stop))


@pytest.mark.parametrize("closer", ["progress callback", "other thread"])
def test_client_closed_during_a_run_is_a_whybox_error_naming_the_cancelled_rows(client, closer):
    """Closing the Client mid-run (after the first chunk; in the caller's progress callback, or
    from another thread) is a WhyboxError naming the rows whose chunks were cancelled, not
    distributed's ClosedClientError (or "IOLoop is closed") from the cleanup."""
    from distributed import Client

    from whybox.errors import WhyboxError
    from whybox.parallel import ClusterError

    c = Client(client.scheduler.address, set_as_default=False)
    done = []
    first = threading.Event()
    if closer == "other thread":
        closing = threading.Thread(target=lambda: (first.wait(30), c.close()))
        closing.start()

    def close_after_first(rows_done, n):
        done.append(rows_done)
        if len(done) == 1:
            if closer == "other thread":
                first.set()
                closing.join(30)
            else:
                c.close()

    with pytest.raises(ClusterError) as info:
        map_chunks(
            _slow_chunk, 8, backend="dask", client=c, chunk_size=1, progress=close_after_first
        )
    assert isinstance(info.value, WhyboxError) and isinstance(info.value, RuntimeError)
    text = str(info.value)
    assert text.startswith("the Dask client was closed while whybox was running on it")
    m = re.search(r"(\d+) of 8 chunks of rows were cancelled \((\d+) of 8 rows: ([\d, -]+)\)", text)
    assert m and int(m.group(1)) == int(m.group(2)) >= 1, text
    # the rows named are those not finished before the close: at most the 7 after the first
    assert int(m.group(1)) <= 8 - len(done)
    assert "Keep the Client open until the call returns" in text
    # the cluster serves the next call on an open client
    assert map_chunks(_slow_chunk, 2, backend="dask", client=client, chunk_size=2) == [[0, 1]]


# ------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])
    joblib.dump(model, tmp / "model.joblib")
    X.iloc[:9].to_csv(tmp / "rows.csv", index=False)
    X.to_csv(tmp / "bg.csv", index=False)
    return tmp


def _cli_explain(tmp, out_name, *extra):
    target = tmp / out_name
    out = runner.invoke(
        app,
        [
            "explain",
            str(tmp / "model.joblib"),
            str(tmp / "rows.csv"),
            "--trust-model",
            "--background",
            str(tmp / "bg.csv"),
            # a sampling method, so that the seeds of rows matter
            "--method",
            "permutation",
            "--seed",
            "3",
            "--out",
            str(target),
            *extra,
        ],
    )
    return out, target


def test_cli_help_lists_parallel_options():
    out = runner.invoke(app, ["explain", "--help"])
    assert out.exit_code == 0
    assert "--n-jobs" in out.output and "--scheduler" in out.output


def test_cli_scheduler_and_n_jobs_match_serial(cli_files, client):
    out, serial_path = _cli_explain(cli_files, "serial.whybox")
    assert out.exit_code == 0, out.output
    serial = wb.load(serial_path)
    assert serial.std is not None and np.any(serial.std > 0)  # sampled
    address = client.scheduler.address
    assert address.startswith("tcp://")
    out, dask_path = _cli_explain(cli_files, "dask.whybox", "--scheduler", address)
    assert out.exit_code == 0, out.output
    out, procs_path = _cli_explain(cli_files, "procs.whybox", "--n-jobs", "2")
    assert out.exit_code == 0, out.output
    for path in (dask_path, procs_path):
        assert_same_explanation(wb.load(path), serial)
    # the CLI closed its client; the cluster is still there for others
    assert len(client.nthreads()) == 2


def test_cli_bad_scheduler_address(cli_files, monkeypatch):
    monkeypatch.setattr(whybox_cli, "SCHEDULER_TIMEOUT", 1)
    t0 = time.perf_counter()
    out, target = _cli_explain(cli_files, "bad.whybox", "--scheduler", "tcp://127.0.0.1:1")
    assert out.exit_code == 2
    text = " ".join(out.output.split())
    assert "could not connect to the Dask scheduler" in text and "tcp://127.0.0.1:1" in text
    assert time.perf_counter() - t0 < 30
    assert not target.exists()
    out, _ = _cli_explain(cli_files, "bad.whybox", "--scheduler", "no-port-here")
    assert out.exit_code == 2 and "could not connect" in " ".join(out.output.split())


def test_cli_scheduler_with_n_jobs_is_refused(cli_files):
    out, _ = _cli_explain(
        cli_files, "x.whybox", "--scheduler", "tcp://127.0.0.1:1", "--n-jobs", "2"
    )
    assert out.exit_code == 2
    assert "--scheduler and --n-jobs" in " ".join(out.output.split())


def test_client_alone_selects_dask_and_explainer_pickles_without_it(client):
    import pickle

    from whybox.agnostic.shapley import ExactShap

    X = np.random.default_rng(0).normal(size=(6, 3))
    explainer = ExactShap(lambda Z: Z.sum(axis=1), background=X, client=client)
    assert explainer.backend == "dask"
    state = explainer.__getstate__()
    assert state["client"] is None and explainer.client is client
    pickle.dumps({k: v for k, v in state.items() if k != "model"})
    serial = ExactShap(lambda Z: Z.sum(axis=1), background=X).explain(X)
    np.testing.assert_array_equal(explainer.explain(X).values, serial.values)
    assert ExactShap(lambda Z: Z.sum(axis=1), backend="processes").n_jobs == -1
