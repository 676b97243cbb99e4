"""KernelShap vs shap's KernelExplainer: accuracy at equal budget, and overhead over the model.

Task (issue 3): scikit-learn's wine data, GradientBoostingClassifier(random_state=0), explain
predict_proba[:, 0] of the first 20 rows against a 50-row background sample. Exact values
come from ExactShap (checked against shap's ExactExplainer in the tests). Error: mean over
rows of sum_j |phi_hat_j - phi_j| / sum_j |phi_j| (relative L1), averaged over 3 seeds.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier


def rel_l1(est: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean(np.abs(est - exact).sum(axis=1) / np.abs(exact).sum(axis=1)))


def run(budget: int = 1024, n_rows: int = 20, n_background: int = 50, seeds=(0, 1, 2)) -> dict:
    import shap

    import whybox as wb

    X, y = load_wine(return_X_y=True)
    model = GradientBoostingClassifier(random_state=0).fit(X, y)
    bg = X[np.random.default_rng(0).choice(len(X), n_background, replace=False)]
    rows = X[:n_rows]

    calls = {"rows": 0, "time": 0.0}

    def f(Z):
        t0 = time.perf_counter()
        out = model.predict_proba(Z)[:, 0]
        calls["time"] += time.perf_counter() - t0
        calls["rows"] += len(Z)
        return out

    exact = wb.ExactShap(f, background=bg, max_background=n_background).explain(rows).values
    errs_wb, errs_shap, times_wb, times_shap, overhead = [], [], [], [], []
    for seed in seeds:
        calls.update(rows=0, time=0.0)
        t0 = time.perf_counter()
        exp = wb.KernelShap(f, background=bg, max_background=n_background, random_state=seed)
        exp = exp.explain(rows, budget=budget)
        t_wb = time.perf_counter() - t0
        overhead.append(t_wb / calls["time"])
        times_wb.append(t_wb)
        errs_wb.append(rel_l1(exp.values, exact))
        t0 = time.perf_counter()
        sv = shap.KernelExplainer(f, bg, seed=seed).shap_values(rows, nsamples=budget, silent=True)
        times_shap.append(time.perf_counter() - t0)
        errs_shap.append(rel_l1(np.asarray(sv), exact))
    return {
        "task": f"KernelShap, wine GBC (13 features), {n_rows} rows, {n_background} bg, "
        f"budget {budget}",
        "whybox_rel_l1": float(np.mean(errs_wb)),
        "shap_rel_l1": float(np.mean(errs_shap)),
        "error_ratio": float(np.mean(errs_wb) / np.mean(errs_shap)),
        "whybox_s": float(np.mean(times_wb)),
        "shap_s": float(np.mean(times_shap)),
        "time_over_model_calls": float(np.mean(overhead)),
        "whybox_coalitions_per_row": int(exp.n_evals),
    }


if __name__ == "__main__":
    print(run())
