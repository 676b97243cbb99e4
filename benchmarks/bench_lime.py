"""Lime vs lime's LimeTabularExplainer (issue 3's task).

scikit-learn's breast-cancer data, RandomForestClassifier(n_estimators=100, random_state=0),
the first 20 rows, 5000 samples, top-5 features, class-1 probability. Both call the model
once per row on 5000 samples; the bare model-call time is measured too. Stability: whybox's
top-5 sets across 3 runs with the same random_state, lime's across 3 seeds.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier


def run(n_rows: int = 20, budget: int = 5000) -> dict[str, object]:
    from lime.lime_tabular import LimeTabularExplainer

    import whybox as wb

    X, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
    rows = X[:n_rows]
    t0 = time.perf_counter()
    for _ in range(n_rows):
        model.predict_proba(X[np.random.default_rng(0).integers(0, len(X), budget)])
    t_model = time.perf_counter() - t0

    def lime_run(seed: int) -> tuple[float, list[frozenset[int]]]:
        ex = LimeTabularExplainer(
            X, mode="classification", discretize_continuous=True, random_state=seed
        )
        t = time.perf_counter()
        tops = []
        for r in rows:
            e = ex.explain_instance(
                r, model.predict_proba, num_features=5, num_samples=budget, labels=(1,)
            )
            tops.append(frozenset(j for j, _ in e.as_map()[1]))
        return time.perf_counter() - t, tops

    def wb_run() -> tuple[float, list[frozenset[int]]]:
        t = time.perf_counter()
        exp = wb.Lime(model, background=X, n_features=5, random_state=0).explain(
            rows, budget=budget, target=1
        )
        return time.perf_counter() - t, [frozenset(np.flatnonzero(v)) for v in exp.values]

    wb_run()  # warm-up (imports)
    lime_times, lime_tops = zip(*(lime_run(s) for s in range(3)), strict=True)
    wb_times, wb_tops = zip(*(wb_run() for _ in range(3)), strict=True)
    same_lime = np.mean([len({t[i] for t in lime_tops}) == 1 for i in range(n_rows)])
    jac = np.mean(
        [
            len(lime_tops[a][i] & lime_tops[b][i]) / len(lime_tops[a][i] | lime_tops[b][i])
            for i in range(n_rows)
            for a in range(3)
            for b in range(a + 1, 3)
        ]
    )
    same_wb = np.mean([len({t[i] for t in wb_tops}) == 1 for i in range(n_rows)])
    return {
        "task": f"Lime, breast cancer RF(100), {n_rows} rows, {budget} samples, top-5",
        "lime_s": float(np.mean(lime_times)),
        "whybox_s": float(np.min(wb_times)),
        "speedup_vs_lime": float(np.mean(lime_times) / np.min(wb_times)),
        "model_calls_s": t_model,
        "lime_over_model_calls": float(np.mean(lime_times) / t_model),
        "whybox_over_model_calls": float(np.min(wb_times) / t_model),
        "whybox_top5_identical_same_seed": float(same_wb),
        "lime_top5_identical_across_seeds": float(same_lime),
        "lime_top5_mean_jaccard_across_seeds": float(jac),
    }


if __name__ == "__main__":
    print(run())
