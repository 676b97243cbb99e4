"""TreeShap on Dask: rows per second on 1 vs 2 workers, against one process; one script.

Task: path-dependent TreeSHAP of a GradientBoostingRegressor (100 trees, depth 4, fit on
5,000 rows) on ``N`` rows x 10 features, ``N`` = 1,000,000 (``WHYBOX_BENCH_ROWS`` overrides
it, e.g. for a quick check). The rows are a Dask Array of 16 partitions generated on the
workers (``da.random``), so the caller never sends data; the values come back in memory
(n x 10 float64) and are compared bit for bit with the serial explanation of the same rows.

Every explainer runs on ONE thread (``TreeShap(n_jobs=1)``, one thread per worker), so the
ratio 2 workers / 1 worker is the scaling of whybox's Dask path itself, not numba's threads.
Times exclude the cluster start and a warm-up call (imports and the numba cache on the
workers); they include scattering the explainer, generating the partitions on the workers,
explaining, and gathering the values into the caller. The peer figure is shap's
``TreeExplainer`` (one thread) on the first 20,000 rows, the same model, in this process.

On a shared 2-core machine the 2-worker figure is bounded by whatever else runs on the
cores: the table states the machine's load average before the run.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from benchmarks.common import machine

N_FEATURES, N_PARTS, PEER_ROWS = 10, 16, 20_000


def _rows() -> int:
    return int(os.environ.get("WHYBOX_BENCH_ROWS", 1_000_000))


def _model() -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, N_FEATURES))
    y = X[:, 0] * X[:, 1] + X[:, 2] - X[:, 3] ** 2 + 0.1 * rng.normal(size=5000)
    return GradientBoostingRegressor(n_estimators=100, max_depth=4, random_state=0).fit(X, y)


def _data(n: int) -> Any:
    import dask.array as da

    return da.random.default_rng(1).normal(size=(n, N_FEATURES), chunks=(-(-n // N_PARTS), -1))


def _on_cluster(model: Any, n: int, workers: int, expected: np.ndarray) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from whybox.trees.treeshap import TreeShap

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(workers, timeout=120)
        TreeShap(model, n_jobs=1, client=client).explain(_data(4 * N_PARTS))  # warm-up
        t0 = time.perf_counter()
        exp = TreeShap(model, n_jobs=1, client=client).explain(_data(n))
        wall = time.perf_counter() - t0
    return {
        "workers": workers,
        "seconds": wall,
        "rows_per_s": n / wall,
        "bit_identical": bool(np.array_equal(exp.values, expected)),
    }


def run(n_rows: int | None = None) -> dict[str, Any]:
    """Rows/s of one process, 1 and 2 Dask workers (and shap on a subset)."""
    from whybox.trees.treeshap import TreeShap

    n = n_rows or _rows()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    model = _model()
    X = _data(n).compute()
    serial = TreeShap(model, n_jobs=1)
    serial.explain(X[:100])
    t0 = time.perf_counter()
    expected = serial.explain(X).values
    serial_s = time.perf_counter() - t0
    del X
    res: dict[str, Any] = {
        "machine": machine(),
        "load_before": load,
        "rows": n,
        "partitions": N_PARTS,
        "serial_s": serial_s,
        "serial_rows_per_s": n / serial_s,
        "clusters": [_on_cluster(model, n, w, expected) for w in (1, 2)],
    }
    one, two = res["clusters"]
    res["speedup_2_vs_1"] = two["rows_per_s"] / one["rows_per_s"]
    try:
        import shap

        Xp = _data(PEER_ROWS).compute()
        explainer = shap.TreeExplainer(model)
        t0 = time.perf_counter()
        explainer.shap_values(Xp)
        res["shap_rows_per_s"] = PEER_ROWS / (time.perf_counter() - t0)
    except ImportError:  # pragma: no cover - shap is a test/benchmark dependency
        res["shap_rows_per_s"] = None
    return res


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    one, two = res["clusters"]
    n = res["rows"]
    lines = [
        "### bench_dask",
        "",
        f"Machine: {res['machine']} (load average {res['load_before']:.1f} before the run). "
        f"Path-dependent TreeSHAP, GradientBoostingRegressor (100 trees, depth 4), {n:,} rows x "
        f"{N_FEATURES} features in {res['partitions']} Dask partitions generated on the workers; "
        "one thread per explainer / worker; cluster start and warm-up excluded, gathering the "
        "values into the caller included.",
        "",
        "| run | seconds | rows/s | vs one process | values bit-identical to serial |",
        "|---|---|---|---|---|",
        f"| one process (serial, 1 thread) | {res['serial_s']:.1f} | "
        f"{res['serial_rows_per_s']:,.0f} | 1.00x | (reference) |",
    ]
    for r in (one, two):
        lines.append(
            f"| Dask, {r['workers']} worker{'s' if r['workers'] > 1 else ''} x 1 thread | "
            f"{r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['rows_per_s'] / res['serial_rows_per_s']:.2f}x | {r['bit_identical']} |"
        )
    lines += [
        "",
        f"2 workers / 1 worker: **{res['speedup_2_vs_1']:.2f}x** rows/s.",
    ]
    if res.get("shap_rows_per_s"):
        lines.append(
            f"shap TreeExplainer, same model, one thread, {PEER_ROWS:,} rows: "
            f"{res['shap_rows_per_s']:,.0f} rows/s (whybox one process: "
            f"{res['serial_rows_per_s'] / res['shap_rows_per_s']:.1f}x that)."
        )
    if n < 1_000_000:
        lines.append(
            f"Measured on {n:,} rows; rows/s is flat in the row count past a few partitions "
            f"(each partition is {-(-n // N_PARTS):,} rows), so 1,000,000 rows would take about "
            f"{1_000_000 / two['rows_per_s']:.0f} s on 2 workers (extrapolated, not measured)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(markdown(run()))
