"""ExactShap vs shap's ExactExplainer: same model, rows, background; one process.

Task (issue 3's): scikit-learn's wine data, GradientBoostingClassifier(random_state=0),
explain predict_proba[:, 0] of the first 20 rows against a 50-row background.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier

from benchmarks.common import best_of


def run(n_rows: int = 20, n_background: int = 50) -> dict[str, object]:
    import shap

    import whybox as wb

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = GradientBoostingClassifier(random_state=0).fit(X, y)
    bg = X.sample(n=n_background, random_state=0)
    rows = X.iloc[:n_rows]

    def f(Z):
        return model.predict_proba(Z)[:, 0]

    t_wb, exp = best_of(
        lambda: wb.ExactShap(f, background=bg, max_background=n_background).explain(rows),
        repeats=1,
    )
    masker = shap.maskers.Independent(bg, max_samples=n_background)
    t_shap, ref = best_of(lambda: shap.explainers.ExactExplainer(f, masker)(rows), repeats=1)
    # the physical floor: the bare model calls on the same number of rows
    n_model_rows = exp.n_evals * n_background
    Z = bg.iloc[np.arange(n_model_rows) % n_background]
    t_floor, _ = best_of(lambda: f(Z), repeats=1)
    t_floor *= n_rows
    return {
        "task": f"ExactShap, wine GBC ({X.shape[1]} features), {n_rows} rows, {n_background} bg",
        "whybox_s": t_wb,
        "peer": "shap.ExactExplainer",
        "peer_s": t_shap,
        "ratio": t_wb / t_shap,
        "max_abs_diff": float(np.abs(exp.values - ref.values).max()),
        "completeness_gap": float(np.abs(exp.completeness_gap()).max()),
        "model_floor_s": t_floor,
    }


if __name__ == "__main__":
    print(run())
