"""KernelShap's time per explained row over the model-call floor, with and without surrogates.

Issue 20, part 1: "report time per explained row over the model-call floor (goal stays
<= 1.15x; surrogate fitting must not break it at budgets >= 512)". The sweep's models
(``bench_kernel_sweep.py``):

* ``GBC wine``: GradientBoostingClassifier(random_state=0) on wine (13 features), p(class 0);
* ``SVC wine``: StandardScaler + SVC(rbf, probability=True) on wine, p(class 1);
* ``k-NN cancer``: StandardScaler + KNeighborsClassifier(15) on breast cancer's first 16
  features, p(class 1);

each explaining 10 rows against a 50-row background sample (the rows and the background are
disjoint draws), at budgets 512, 1024 and 4096 coalitions per row, with ``surrogate=`` none,
kernel, tree and auto.

Figures: whybox's time per row over the time spent inside the model (the floor), wall clock
and CPU (``time.process_time``: this process's CPU time, which other jobs on a shared machine
do not inflate the way they inflate wall time), medians of ``repeats`` runs. The runs are
interleaved (repeat, then budget, then model, then surrogate), so that load on a shared
machine hits every cell alike. BLAS and OpenMP are held to one thread for the whole benchmark
(``threadpoolctl``; run it with ``OMP_NUM_THREADS=1`` as well).

Per-stage breakdown: whybox's internals are wrapped with timers for the benchmark (a minimal
instrumenting profiler, ~1 us per call on a few dozen calls per row; cProfile's per-call cost
would inflate the numpy-heavy Python stages), each stage's *exclusive* time (less the stages
nested in it), milliseconds per row, medians of the repeats:

* ``model``: inside the model function (the floor);
* ``masking``: the game's evaluation less the model (composing the masked inputs, the
  coalition cache, averaging over the background);
* ``sampling``: drawing the sampled pairs (``_Stratum.extend``);
* ``solve``: the constrained least-squares fit of the sampled values (``_Fit``);
* ``cf_kernel`` / ``cf_tree`` / ``cf_sigmoid``: each surrogate's cross-fit (fitting the
  folds, the held-out predictions and the surrogates' values);
* ``resid``: the least-squares fits of the residual games;
* ``rest``: everything else (the explainer's bookkeeping, the plan, building the blocks).

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

BUDGETS = (512, 1024, 4096)
SURROGATES = ("none", "kernel", "tree", "auto")
STAGES = (
    "model",
    "masking",
    "sampling",
    "solve",
    "cf_kernel",
    "cf_tree",
    "cf_sigmoid",
    "resid",
    "rest",
)
GOAL = 1.15


def _models() -> list[tuple[str, Callable[[np.ndarray], np.ndarray], np.ndarray]]:
    """(name, f: (m, p) -> (m,), data X) for the sweep's GBC, SVC and k-NN."""
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    Xw, yw = load_wine(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    gbc = GradientBoostingClassifier(random_state=0).fit(Xw, yw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SVC(probability=True) is deprecated in sklearn 1.9
        svc = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(Xw, yw)
    Xk = Xb[:, :16]
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(15)).fit(Xk, yb)
    return [
        ("GBC wine", lambda A: gbc.predict_proba(A)[:, 0], Xw),
        ("SVC wine", lambda A: svc.predict_proba(A)[:, 1], Xw),
        ("k-NN cancer", lambda A: knn.predict_proba(A)[:, 1], Xk),
    ]


class _Stages:
    """Exclusive wall and CPU seconds per stage (a stage nested in another is subtracted)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        frame = [0.0, 0.0]  # children's wall, cpu
        self._stack.append(frame)
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            dw, dc = time.perf_counter() - t, time.process_time() - c
            self._stack.pop()
            self.wall[name] += dw - frame[0]
            self.cpu[name] += dc - frame[1]
            if self._stack:
                self._stack[-1][0] += dw
                self._stack[-1][1] += dc

    def wrap(self, fn: Callable[..., Any], name: Callable[..., str] | str) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name(*args, **kwargs) if callable(name) else name):
                return fn(*args, **kwargs)

        return wrapped


@contextmanager
def _instrumented(stages: _Stages) -> Iterator[None]:
    """Wrap whybox's stages with timers (whatever of them exists), restored on exit."""
    from whybox.games import game as game_mod
    from whybox.games import kernel as kmod

    patches: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, new: Callable[[Any], Any]) -> None:
        old = obj.__dict__.get(attr) if isinstance(obj, type) else getattr(obj, attr, None)
        if old is not None:
            patches.append((obj, attr, old))
            setattr(obj, attr, new(old))

    patch(game_mod.BaseGame, "value", lambda old: stages.wrap(old, "masking"))
    stratum = getattr(kmod, "_Stratum", None)
    if stratum is not None:
        patch(stratum, "extend", lambda old: stages.wrap(old, "sampling"))
    fit = getattr(kmod, "_Fit", None)
    if fit is not None:
        patch(fit, "__init__", lambda old: stages.wrap(old, "solve"))

        def solve_name(self: Any, *args: Any, **kwargs: Any) -> str:
            # the first solve of a round is the plain fit, the later ones residual games
            first = not getattr(self, "_bench_solved", False)
            self._bench_solved = True
            return "solve" if first else "resid"

        patch(fit, "solve", lambda old: stages.wrap(old, solve_name))
    if hasattr(kmod, "cross_fit"):

        def cf_name(Z: Any, y: Any, w: Any, fold: Any, kind: str, *a: Any, **k: Any) -> str:
            return f"cf_{kind}"

        patch(kmod, "cross_fit", lambda old: stages.wrap(old, cf_name))
    if hasattr(kmod, "cross_fit_link"):  # the sigmoid (link) surrogate, where it exists
        patch(kmod, "cross_fit_link", lambda old: stages.wrap(old, "cf_sigmoid"))
    try:
        yield
    finally:
        for obj, attr, old in reversed(patches):
            setattr(obj, attr, old)


def run(
    budgets: tuple[int, ...] = BUDGETS,
    surrogates: tuple[str, ...] = SURROGATES,
    n_rows: int = 10,
    n_background: int = 50,
    repeats: int = 3,
) -> dict:
    from threadpoolctl import threadpool_limits

    import whybox as wb

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    models = []
    for name, f, X in _models():
        pick = np.random.default_rng(0).choice(len(X), n_background + n_rows, replace=False)
        models.append((name, f, X[pick[:n_background]], X[pick[n_background:]]))
    stages = _Stages()
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    t_start = time.perf_counter()
    with threadpool_limits(limits=1), _instrumented(stages):
        # warm-up: first calls of the models and of whybox's code paths (and its caches of
        # per-budget designs)
        for _, f, bg, rows in models:
            for b in budgets:
                for sur in surrogates:
                    e = wb.KernelShap(f, background=bg, max_background=n_background, surrogate=sur)
                    e.explain(rows[:1], budget=b)
        for rep in range(repeats):
            for b in budgets:
                for name, f, bg, rows in models:
                    for sur in surrogates:
                        timed = stages.wrap(f, "model")
                        exp = wb.KernelShap(
                            timed,
                            background=bg,
                            max_background=n_background,
                            surrogate=sur,
                            random_state=rep,
                        )
                        stages.reset()
                        t, c = time.perf_counter(), time.process_time()
                        exp = exp.explain(rows, budget=b)
                        wall, cpu = time.perf_counter() - t, time.process_time() - c
                        per_w = {k: v / n_rows for k, v in stages.wall.items()}
                        per_c = {k: v / n_rows for k, v in stages.cpu.items()}
                        per_w["rest"] = wall / n_rows - sum(per_w.values())
                        per_c["rest"] = cpu / n_rows - sum(per_c.values())
                        runs[(name, b, sur)].append(
                            {
                                "wall": wall,
                                "cpu": cpu,
                                "model_wall": stages.wall["model"],
                                "model_cpu": stages.cpu["model"],
                                "stages_wall": per_w,
                                "stages_cpu": per_c,
                                "choices": list(exp.meta.get("surrogate", [])),
                            }
                        )
    cells = []
    for (name, b, sur), rs in runs.items():
        cells.append(
            {
                "model": name,
                "budget": b,
                "surrogate": sur,
                "wall_ratio": float(np.median([r["wall"] / r["model_wall"] for r in rs])),
                "cpu_ratio": float(np.median([r["cpu"] / r["model_cpu"] for r in rs])),
                "ms_per_row": 1e3 * _median(rs, "wall") / n_rows,
                "model_ms_per_row": 1e3 * _median(rs, "model_wall") / n_rows,
                "stages_ms_wall": {
                    s: 1e3 * float(np.median([r["stages_wall"].get(s, 0.0) for r in rs]))
                    for s in STAGES
                },
                "stages_ms_cpu": {
                    s: 1e3 * float(np.median([r["stages_cpu"].get(s, 0.0) for r in rs]))
                    for s in STAGES
                },
                "choices": {
                    c: sum(r["choices"].count(c) for r in rs)
                    for c in sorted({c for r in rs for c in r["choices"]})
                },
            }
        )
    return {
        "task": f"KernelShap time per row / model time, {n_rows} rows, {n_background}-row "
        f"background, medians of {repeats} interleaved repeats, one BLAS/OpenMP thread",
        "cells": cells,
        "load_start": load_start,
        "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "total_s": time.perf_counter() - t_start,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def markdown(result: dict) -> str:
    cells = result["cells"]
    surs = list(dict.fromkeys(c["surrogate"] for c in cells))
    keys = list(dict.fromkeys((c["model"], c["budget"]) for c in cells))
    by = {(c["model"], c["budget"], c["surrogate"]): c for c in cells}
    out = [
        f"{result['task']}; load average {result['load_start']:.1f} at the start, "
        f"{result['load_end']:.1f} at the end; total {result['total_s']:.0f} s. Cells: whybox "
        f"time per row / time inside the model, wall (CPU); goal <= {GOAL}.",
        "",
        "| model | budget | floor ms/row (wall) | " + " | ".join(surs) + " |",
        "|---|---|---|" + "---|" * len(surs),
    ]
    for m, b in keys:
        row = [
            f"{by[(m, b, s)]['wall_ratio']:.2f} ({by[(m, b, s)]['cpu_ratio']:.2f})" for s in surs
        ]
        floor = by[(m, b, surs[0])]["model_ms_per_row"]
        out.append(f"| {m} | {b} | {floor:.1f} | " + " | ".join(row) + " |")
    out += [
        "",
        "Per-stage CPU milliseconds per row (exclusive; see the module docstring):",
        "",
        "| model | budget | surrogate | " + " | ".join(STAGES) + " | auto's choices |",
        "|---|---|---|" + "---|" * (len(STAGES) + 1),
    ]
    for m, b in keys:
        for s in surs:
            c = by[(m, b, s)]
            st = " | ".join(f"{c['stages_ms_cpu'][k]:.2f}" for k in STAGES)
            ch = ", ".join(f"{k} {v}" for k, v in c["choices"].items()) if s == "auto" else ""
            out.append(f"| {m} | {b} | {s} | {st} | {ch} |")
    return "\n".join(out)


if __name__ == "__main__":
    r = run()
    print(markdown(r))
