"""Lime vs lime's LimeTabularExplainer: same model, rows and number of model calls; one process.

Task: scikit-learn's breast-cancer data (569 x 30), RandomForestClassifier(n_estimators=100,
random_state=0) fit on all rows, explain the class-1 probability of the first 20 rows with 5000
samples each (one model call of 5000 rows per row in both) and top-5 features (lime's
``num_features=5``: "auto" = forward selection), lime's training data / whybox's background = X.

Runs are interleaved (lime seed s, then whybox) so that load on a shared machine hits both;
times are the best of ``repeats``. The floor is the bare model time: ``predict_proba`` on
20 x 5000 rows in 20 calls, on samples drawn like whybox's (each column from its marginal).
Stability: whybox's top-5 sets over ``repeats`` runs with the same random_state, lime's over
``repeats`` seeds (fraction of rows with identical sets, and mean pairwise Jaccard index).
"""

from __future__ import annotations

import time
from itertools import combinations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from benchmarks.common import best_of


def _agreement(runs: list[list[frozenset[int]]]) -> tuple[float, float]:
    """(fraction of rows whose sets are identical in every run, mean pairwise Jaccard)."""
    n = len(runs[0])
    same = np.mean([len({r[i] for r in runs}) == 1 for i in range(n)])
    jac = np.mean(
        [len(a[i] & b[i]) / len(a[i] | b[i]) for a, b in combinations(runs, 2) for i in range(n)]
    )
    return float(same), float(jac)


def run(n_rows: int = 20, budget: int = 5000, repeats: int = 3) -> dict[str, object]:
    from lime.lime_tabular import LimeTabularExplainer

    import whybox as wb

    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    rows = X[:n_rows]
    lime_model_s = [0.0]

    def predict_proba(Z: np.ndarray) -> np.ndarray:  # lime's calls, timed
        t = time.perf_counter()
        out = model.predict_proba(Z)
        lime_model_s[0] += time.perf_counter() - t
        return out

    def lime_run(seed: int) -> list[frozenset[int]]:
        ex = LimeTabularExplainer(
            X, mode="classification", discretize_continuous=True, random_state=seed
        )
        return [
            frozenset(
                j
                for j, _ in ex.explain_instance(
                    r, predict_proba, num_features=5, num_samples=budget, labels=(1,)
                ).as_map()[1]
            )
            for r in rows
        ]

    def wb_run() -> tuple[list[frozenset[int]], float]:
        exp = wb.Lime(model, background=X, n_features=5, random_state=0).explain(
            rows, budget=budget, target=1
        )
        index = {name: j for j, name in enumerate(exp.feature_names)}
        tops = [frozenset(index[f] for f in sel) for sel in exp.meta["selected_features"]]
        return tops, float(np.mean(exp.meta["fidelity"]))

    wb_run(), lime_run(0)  # warm-up: imports, first calls
    lime_times, lime_tops, wb_times, wb_tops, lime_calls = [], [], [], [], []
    for seed in range(repeats):
        lime_model_s[0] = 0.0
        t, tops = best_of(lambda s=seed: lime_run(s), repeats=1)
        lime_times.append(t)
        lime_tops.append(tops)
        lime_calls.append(lime_model_s[0])
        t, (tops, fidelity) = best_of(wb_run, repeats=1)
        wb_times.append(t)
        wb_tops.append(tops)

    rng = np.random.default_rng(0)
    samples = [
        X[rng.integers(0, len(X), (budget, X.shape[1])), np.arange(X.shape[1])]
        for _ in range(n_rows)
    ]
    t_model, _ = best_of(lambda: [model.predict_proba(Z) for Z in samples], repeats=repeats)
    lime_s, wb_s = min(lime_times), min(wb_times)
    wb_same, wb_jac = _agreement(wb_tops)
    lime_same, lime_jac = _agreement(lime_tops)
    cross = np.mean(
        [len(a & b) / len(a | b) for a, b in zip(wb_tops[0], lime_tops[0], strict=True)]
    )
    return {
        "task": f"Lime, breast cancer RF(100), {n_rows} rows, {budget} samples, top-5, class 1",
        "whybox_s": wb_s,
        "peer": "lime.LimeTabularExplainer",
        "peer_s": lime_s,
        "ratio": wb_s / lime_s,
        "speedup_vs_lime": lime_s / wb_s,
        "whybox_times_s": [round(t, 3) for t in wb_times],
        "lime_times_s": [round(t, 3) for t in lime_times],
        "model_calls_s": t_model,
        "lime_model_calls_in_run_s": min(lime_calls),
        "whybox_over_model_calls": wb_s / t_model,
        "lime_over_model_calls": lime_s / t_model,
        "whybox_top5_identical_same_seed": wb_same,
        "whybox_top5_jaccard_same_seed": wb_jac,
        "lime_top5_identical_across_seeds": lime_same,
        "lime_top5_jaccard_across_seeds": lime_jac,
        "whybox_vs_lime_top5_jaccard": float(cross),
        "whybox_mean_fidelity": fidelity,
    }


if __name__ == "__main__":
    print(run())
