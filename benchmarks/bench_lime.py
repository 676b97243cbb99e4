"""Lime vs lime's LimeTabularExplainer: same model, rows and number of model calls; one process.

Tasks (20 rows each, 5000 samples per row, top-5 features: lime's ``num_features=5``, "auto" =
forward selection; lime's training data = whybox's background = the training rows):

* ``cancer_rf``: scikit-learn's breast-cancer data (569 x 30), RandomForestClassifier(
  n_estimators=100, random_state=0) fit on all rows, class-1 probability.
* ``gb3``: held out: ``make_classification(5000, 20 features, 8 informative, 3 classes)``,
  GradientBoostingClassifier(random_state=0), all three class probabilities (lime
  ``labels=(0, 1, 2)``).
* ``wine_mlp``: held out: wine (178 x 13, 3 classes), StandardScaler + MLPClassifier((64, 64))
  pipeline, class-1 probability.

Runs are interleaved (lime seed s, then whybox) so that load on a shared machine hits both;
times are the best of ``repeats``. The model-call floor is the bare model time on whybox's own
model inputs, in its batches (whybox sends the samples of all 20 rows in one call here, and the
20 explained rows for the predictions), timed in whybox's own position: right after a whole
lime run, as whybox runs (the first large model call after lime's run is slower than a repeated
one, for whoever makes it: the MLP's 100,000-row call takes 0.21 s there and 0.06-0.07 s when
repeated; ``warm_floor_s`` is the repeated call's time, right after whybox's run);
``whybox_model_s`` is the model time inside whybox's own run (its calls timed; whybox time over
it is whybox's own overhead, free of the floor's run-to-run variation) and ``lime_model_s``
inside lime's. On a loaded machine one 100,000-row call of the MLP can take 3x its quiet time
(its 100,000 x 64 activations are fresh memory each call); lime's 5000-row calls do not see
this. ``max_batch_rows=`` sets whybox's call size. Stability: whybox's top-5 sets over
``repeats`` runs with the same random_state, lime's over ``repeats`` seeds (fraction of rows with
identical sets, and mean pairwise Jaccard index).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np

N_ROWS, BUDGET = 20, 5000
TASKS = ("cancer_rf", "gb3", "wine_mlp")


def _agreement(runs: list[list[frozenset[int]]]) -> tuple[float, float]:
    """(fraction of rows whose sets are identical in every run, mean pairwise Jaccard)."""
    n = len(runs[0])
    same = np.mean([len({r[i] for r in runs}) == 1 for i in range(n)])
    jac = np.mean(
        [len(a[i] & b[i]) / len(a[i] | b[i]) for a, b in combinations(runs, 2) for i in range(n)]
    )
    return float(same), float(jac)


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def _tasks() -> dict[str, tuple[str, Any, np.ndarray, np.ndarray, list[int]]]:
    """name -> (description, fitted model, training rows, explained rows, classes)."""
    from sklearn.datasets import load_breast_cancer, load_wine, make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    X, y = load_breast_cancer(return_X_y=True)
    rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    out["cancer_rf"] = ("breast cancer 569x30, RandomForest(100), class 1", rf, X, X[:N_ROWS], [1])
    X, y = make_classification(
        n_samples=5000, n_features=20, n_informative=8, n_classes=3, random_state=0
    )
    gb = GradientBoostingClassifier(random_state=0).fit(X, y)
    out["gb3"] = ("synthetic 5000x20, GradientBoosting, 3 classes", gb, X, X[:N_ROWS], [0, 1, 2])
    X, y = load_wine(return_X_y=True)
    mlp = make_pipeline(
        StandardScaler(), MLPClassifier((64, 64), max_iter=1000, random_state=0)
    ).fit(X, y)
    out["wine_mlp"] = ("wine 178x13, StandardScaler+MLP(64,64), class 1", mlp, X, X[:N_ROWS], [1])
    return out


class _Timed:
    """``predict_proba`` of a fitted model, its calls timed (set as an instance attribute)."""

    def __init__(self, model: Any) -> None:
        self.fn: Callable[[Any], np.ndarray] = type(model).predict_proba.__get__(model)
        self.seconds = 0.0
        self.batches: list[int] = []
        self.inputs: list[Any] = []
        self.keep = False

    def __call__(self, Z: Any) -> np.ndarray:
        t = time.perf_counter()
        out = self.fn(Z)
        self.seconds += time.perf_counter() - t
        self.batches.append(len(Z))
        if self.keep:
            self.inputs.append(Z)
        return out


def _run_task(
    name: str, desc: str, model: Any, X: np.ndarray, rows: np.ndarray, classes: list[int],
    repeats: int,
) -> dict[str, Any]:  # fmt: skip
    from lime.lime_tabular import LimeTabularExplainer

    import whybox as wb

    timed = _Timed(model)
    target = classes[0] if len(classes) == 1 else list(classes)

    def lime_run(seed: int) -> list[frozenset[int]]:
        ex = LimeTabularExplainer(
            X, mode="classification", discretize_continuous=True, random_state=seed
        )
        return [
            frozenset(
                j
                for j, _ in ex.explain_instance(
                    r, timed, num_features=5, num_samples=BUDGET, labels=tuple(classes)
                ).as_map()[classes[0]]
            )
            for r in rows
        ]

    def wb_run() -> tuple[list[frozenset[int]], float]:
        model.predict_proba = timed  # the explainer calls the timed predict_proba
        try:
            exp = wb.Lime(model, background=X, n_features=5, random_state=0).explain(
                rows, budget=BUDGET, target=target
            )
        finally:
            del model.predict_proba
        index = {f: j for j, f in enumerate(exp.feature_names)}
        sel = exp.meta["selected_features"]
        sel = [s if len(classes) == 1 else s[0] for s in sel]  # the first class's
        fid = np.asarray(exp.meta["fidelity"], dtype=float)
        return [frozenset(index[f] for f in s) for s in sel], float(fid.mean())

    timed.keep = True
    wb_run()  # warm-up (imports, first calls), keeping whybox's model inputs for the floor
    timed.keep = False
    inputs, wb_batches = timed.inputs, list(timed.batches)
    lime_run(0)
    lime_times, lime_tops, wb_times, wb_tops, lime_calls, wb_calls = [], [], [], [], [], []
    floor_times: list[float] = []
    warm_floor_times: list[float] = []
    cpu: dict[str, list[float]] = {"lime": [], "whybox": [], "floor": []}
    for seed in range(repeats):
        timed.seconds, timed.batches = 0.0, []
        t, c, tops = _timed(lambda s=seed: lime_run(s))
        lime_times.append(t)
        cpu["lime"].append(c)
        lime_tops.append(tops)
        lime_calls.append(timed.seconds)
        timed.seconds, timed.batches = 0.0, []
        t, c, (tops, fidelity) = _timed(wb_run)
        wb_times.append(t)
        cpu["whybox"].append(c)
        wb_tops.append(tops)
        wb_calls.append(timed.seconds)
        # warm floor: the bare model on whybox's own inputs, in its batches, right after it
        t, _, _ = _timed(lambda: [model.predict_proba(S) for S in inputs])
        warm_floor_times.append(t)
        # floor: the same calls in whybox's position, right after a whole lime run (untimed):
        # the first large call after lime's run is slower than a repeated one (measured: the
        # MLP's 100,000-row call 0.21 s after lime, 0.06-0.07 s repeated), for whoever makes it
        lime_run(seed)
        t, c, _ = _timed(lambda: [model.predict_proba(S) for S in inputs])
        floor_times.append(t)
        cpu["floor"].append(c)
    t_floor = min(floor_times)
    lime_cpu, wb_cpu, floor_cpu = (min(cpu[k]) for k in ("lime", "whybox", "floor"))
    lime_s, wb_s = min(lime_times), min(wb_times)
    wb_same, wb_jac = _agreement(wb_tops)
    lime_same, lime_jac = _agreement(lime_tops)
    cross = np.mean(
        [len(a & b) / len(a | b) for a, b in zip(wb_tops[0], lime_tops[0], strict=True)]
    )
    return {
        "task": f"{desc}; {len(rows)} rows, {BUDGET} samples, top-5",
        "whybox_s": wb_s,
        "lime_s": lime_s,
        "speedup_vs_lime": lime_s / wb_s,
        "model_call_floor_s": t_floor,
        "whybox_over_floor": wb_s / t_floor,
        "lime_over_floor": lime_s / t_floor,
        "best_possible_speedup": lime_s / t_floor,
        "cpu_whybox_s": wb_cpu,
        "cpu_lime_s": lime_cpu,
        "cpu_floor_s": floor_cpu,
        "cpu_speedup_vs_lime": lime_cpu / wb_cpu,
        "cpu_whybox_over_floor": wb_cpu / floor_cpu,
        "whybox_model_s": min(wb_calls),
        "whybox_over_own_model_s": wb_s / min(wb_calls),
        "lime_model_s": min(lime_calls),
        "whybox_batches": wb_batches,
        "whybox_times_s": [round(t, 3) for t in wb_times],
        "floor_times_s": [round(t, 3) for t in floor_times],
        "warm_floor_s": min(warm_floor_times),
        "whybox_over_warm_floor": wb_s / min(warm_floor_times),
        "lime_times_s": [round(t, 3) for t in lime_times],
        "whybox_top5_identical_same_seed": wb_same,
        "whybox_top5_jaccard_same_seed": wb_jac,
        "lime_top5_identical_across_seeds": lime_same,
        "lime_top5_jaccard_across_seeds": lime_jac,
        "whybox_vs_lime_top5_jaccard": float(cross),
        "whybox_mean_fidelity": fidelity,
    }


def run(repeats: int = 3, tasks: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every task (or those named): {"machine": ..., "tasks": {name: figures}}, plus the
    first task's figures at the top level under the names earlier runs used."""
    from benchmarks.common import machine

    out: dict[str, Any] = {"machine": machine(), "tasks": {}}
    for name, (desc, model, X, rows, classes) in _tasks().items():
        if tasks is None or name in tasks:
            out["tasks"][name] = _run_task(name, desc, model, X, rows, classes, repeats)
    first = next(iter(out["tasks"].values()))
    out.update(
        whybox_s=first["whybox_s"],
        peer="lime.LimeTabularExplainer",
        peer_s=first["lime_s"],
        ratio=first["whybox_s"] / first["lime_s"],
        speedup_vs_lime=first["speedup_vs_lime"],
    )
    return out


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block: one row per task."""
    lines = [
        "### bench_lime",
        "",
        f"Machine: {res['machine']}. 20 rows per task, 5000 samples per row, top-5 features; "
        "the floor is the bare model on the same total perturbed rows in whybox's batches, "
        "timed as whybox is, right after a lime run (a warm floor, the same calls repeated, "
        "alongside); best of the interleaved runs (wall time; CPU time of the process alongside, less "
        "sensitive to other load on the machine).",
        "",
        "| task | lime s | whybox s | speed-up vs lime (goal >= 20) | model-call floor s | "
        "whybox / floor (goal <= 1.3) | warm floor s, whybox / it | whybox / its own model "
        "calls | lime / floor (best "
        "possible speed-up) | CPU time: "
        "speed-up vs lime, whybox / floor | batches | top-5 identical, same seed (whybox / "
        "lime across seeds) | top-5 Jaccard whybox vs lime |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["tasks"].items():
        lines.append(
            f"| {name}: {r['task']} | {r['lime_s']:.2f} | {r['whybox_s']:.3f} | "
            f"**{r['speedup_vs_lime']:.1f}x** | {r['model_call_floor_s']:.3f} | "
            f"**{r['whybox_over_floor']:.2f}** | "
            f"{r['warm_floor_s']:.3f}, {r['whybox_over_warm_floor']:.2f} | "
            f"{r['whybox_over_own_model_s']:.2f} | "
            f"{r['lime_over_floor']:.1f} | "
            f"{r['cpu_speedup_vs_lime']:.1f}x, {r['cpu_whybox_over_floor']:.2f} | "
            f"{' + '.join(str(b) for b in r['whybox_batches'])} rows | "
            f"{r['whybox_top5_identical_same_seed']:.2f} / "
            f"{r['lime_top5_identical_across_seeds']:.2f} | "
            f"{r['whybox_vs_lime_top5_jaccard']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    names = tuple(sys.argv[1:]) or None  # e.g. ``python benchmarks/bench_lime.py cancer_rf``
    unknown = set(names or ()) - set(TASKS)
    if unknown:
        sys.exit(f"unknown task(s) {sorted(unknown)}; tasks are {list(TASKS)}")
    print(markdown(run(tasks=names)))
