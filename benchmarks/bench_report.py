"""Time wb.report (and the row plots) on large explanations: the report costs O(n log n).

Issue 13 item 8: a 1M-row explanation must report in seconds (before: the heatmap clustered
every row with optimal leaf ordering, 8k rows 235 s, 100k x 50 died allocating 37 GiB).

Run: ``MPLBACKEND=Agg python benchmarks/bench_report.py [--rows 1000000] [--features 20]``.
Prints one line per size: rows, features, seconds to build the report (wall and CPU: the
CPU figure is steadier on a loaded machine), seconds to render it to HTML, and its size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def explanation(n: int, p: int, seed: int = 0):
    from whybox import Explanation

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{j}" for j in range(p)])
    w = rng.normal(size=p)
    values = X.to_numpy() * w  # the exact Shapley values of a linear model (mean-0 data)
    return Explanation(
        values,
        np.zeros(n),
        data=X,
        predictions=values.sum(axis=1),
        method="exact",
        params={"output": "prediction"},
    )


def main() -> None:
    import whybox as wb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    wb.report(explanation(1000, args.features))  # warm-up: imports, fonts
    print("rows, features, build s (wall), build s (CPU), html s, html MB")
    for n in args.rows:
        exp = explanation(n, args.features)
        start, cpu = time.perf_counter(), time.process_time()
        rep = wb.report(exp, X_train=exp.data)
        built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        html = rep.to_html()
        rendered = time.perf_counter() - start
        print(
            f"{n}, {args.features}, {built:.2f}, {built_cpu:.2f}, {rendered:.2f}, "
            f"{len(html) / 1e6:.2f}"
        )


if __name__ == "__main__":
    main()
