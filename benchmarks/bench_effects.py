"""Partial dependence / ICE and permutation importance vs scikit-learn's inspection module.

* ICE of one feature on 2000 rows (grid of 20), HistGradientBoostingClassifier with 500 trees
  (31 leaves): whybox's exact tree path vs ``sklearn.inspection.partial_dependence(
  method="brute", kind="both")``; sklearn's ``method="recursion"`` (the average only, over the
  training distribution, not the same quantity) for a speed reference; whybox's brute force.
* The same ICE on an XGBoost model with 500 trees (depth 6) vs sklearn's brute force.
* Permutation importance, 10 features, 2000 rows, 5 repeats, the HGB model: whybox vs
  ``sklearn.inspection.permutation_importance`` (both serial).

Each figure is the best of 2 runs after one warm-up call (numba's compile excluded).
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import best_of


def _data(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    logit = X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + X[:, 3] ** 2 - X[:, 4:].sum(axis=1) / 3
    return X, (logit + rng.normal(size=n) > 0).astype(int)


def run() -> dict[str, object]:
    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import partial_dependence as sk_pd
    from sklearn.inspection import permutation_importance as sk_pi

    import whybox as wb

    res: dict[str, object] = {}
    X, y = _data(4000, 10)
    rows, yr = X[:2000], y[:2000]
    hgb = HistGradientBoostingClassifier(
        max_iter=500, max_leaf_nodes=31, early_stopping=False, random_state=0
    ).fit(X, y)
    wb.partial_dependence(hgb, rows[:20], 0, kind="both", method="tree")  # compile

    t_w, ours = best_of(
        lambda: wb.partial_dependence(hgb, rows, 0, kind="both", method="tree"), repeats=2
    )
    t_b, ref = best_of(
        lambda: sk_pd(hgb, rows, [0], method="brute", kind="both", grid_resolution=20),
        repeats=2,
    )
    t_r, _ = best_of(
        lambda: sk_pd(hgb, rows, [0], method="recursion", grid_resolution=20), repeats=2
    )
    t_wb, _ = best_of(
        lambda: wb.partial_dependence(hgb, rows, 0, kind="both", method="brute"), repeats=2
    )
    res["hgb_whybox_tree_s"] = t_w
    res["hgb_sklearn_brute_s"] = t_b
    res["hgb_sklearn_recursion_s"] = t_r
    res["hgb_whybox_brute_s"] = t_wb
    res["ratio_tree_vs_sklearn_brute"] = t_w / t_b
    res["ratio_tree_vs_sklearn_recursion"] = t_w / t_r
    res["hgb_max_abs_diff_vs_brute"] = float(np.abs(ours.individual - ref["individual"][0]).max())

    xm = xgb.XGBClassifier(
        n_estimators=500, max_depth=6, learning_rate=0.1, nthread=2, random_state=0
    ).fit(X, y)
    wb.partial_dependence(xm, rows[:20], 0, kind="both", method="tree")
    t_xw, xo = best_of(
        lambda: wb.partial_dependence(xm, rows, 0, kind="both", method="tree"), repeats=2
    )
    t_xb, xr = best_of(
        lambda: sk_pd(xm, rows, [0], method="brute", kind="both", grid_resolution=20),
        repeats=2,
    )
    res["xgb_whybox_tree_s"] = t_xw
    res["xgb_sklearn_brute_s"] = t_xb
    res["ratio_xgb_tree_vs_sklearn_brute"] = t_xw / t_xb
    res["xgb_max_abs_diff_vs_brute"] = float(np.abs(xo.individual - xr["individual"][0]).max())

    t_pw, pw = best_of(
        lambda: wb.permutation_importance(hgb, rows, yr, n_repeats=5, random_state=0),
        repeats=2,
    )
    t_ps, ps = best_of(lambda: sk_pi(hgb, rows, yr, n_repeats=5, random_state=0), repeats=2)
    res["perm_whybox_s"] = t_pw
    res["perm_sklearn_s"] = t_ps
    res["ratio_perm_vs_sklearn"] = t_pw / t_ps
    res["perm_max_abs_mean_diff"] = float(np.abs(pw.importances_mean - ps.importances_mean).max())
    return res


if __name__ == "__main__":
    print(run())
