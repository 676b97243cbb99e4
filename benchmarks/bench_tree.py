"""TreeShap vs the libraries' own TreeSHAP and shap's TreeExplainer (issue 4's tasks).

* XGBoost, 500 trees, depth 6, 40 features, 2000 rows: whybox vs ``pred_contribs``
  (nthread=2).
* LightGBM, 500 trees, 63 leaves, 2000 rows: whybox vs ``pred_contrib``.
* scikit-learn RandomForest, 100 trees, depth 12, 500 rows: whybox vs ``shap.TreeExplainer``.
* Interventional, 100 background rows, the XGBoost model, 500 rows: whybox vs shap's
  interventional TreeExplainer.

Each figure is the best of 3 runs after one warm-up call (shap's: one run); numba's JIT compile
time (first call in a fresh process without a cache) is measured separately. Besides the wall
times (what the ratios use), ``*_cpu_ratio`` compares the CPU seconds of both sides (all
threads), which moves less when other processes load the machine. ``parse_xgboost_500_s``
times ``parse_tree_model`` on the XGBoost model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import best_of


def _best(fn, repeats: int = 3) -> tuple[float, float, object]:
    """Smallest wall time and smallest CPU time (all threads) of ``repeats`` runs."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def _data(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    logit = X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + X[:, 3] ** 2 - X[:, 4:10].sum(axis=1) / 3
    y = (logit + rng.normal(size=n) > 0).astype(int)
    return X, y


def compile_time() -> float:
    """Seconds for the first explain in a fresh process with numba's cache disabled."""
    code = (
        "import time, numpy as np, xgboost as xgb, whybox as wb\n"
        "X = np.random.default_rng(0).normal(size=(200, 5)); y = (X[:, 0] > 0).astype(int)\n"
        "m = xgb.XGBClassifier(n_estimators=3, max_depth=3).fit(X, y)\n"
        "t = time.perf_counter(); wb.TreeShap(m).explain(X[:5]); a = time.perf_counter() - t\n"
        "t = time.perf_counter(); wb.TreeShap(m, background=X[:20]).explain(X[:5])\n"
        "b = time.perf_counter() - t\n"
        "print(a + b)\n"
    )
    env = dict(
        os.environ,
        NUMBA_DISABLE_JIT="0",
        NUMBA_CACHE_DIR="/tmp/whybox-nocache-" + str(time.time_ns()),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def run() -> dict[str, object]:
    import lightgbm as lgb
    import shap
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    import whybox as wb
    from whybox.trees.parse import parse_tree_model

    res: dict[str, object] = {}
    Xr, yr = _data(5000, 20, seed=1)
    rf = RandomForestRegressor(n_estimators=100, max_depth=12, random_state=0, n_jobs=2).fit(
        Xr, yr.astype(float) + Xr[:, 0]
    )
    rrows = Xr[:500]
    t_s, c_s, ref = _best(lambda: shap.TreeExplainer(rf).shap_values(rrows), repeats=1)
    tr = wb.TreeShap(rf)
    tr.explain(rrows[:10])
    t_wr, c_wr, expr = _best(lambda: tr.explain(rrows))
    res["shap_rf_s"] = t_s
    res["whybox_rf_s"] = t_wr
    res["ratio_vs_shap_rf"] = t_wr / t_s
    res["rf_cpu_ratio"] = c_wr / c_s
    res["rf_max_abs_diff"] = float(np.abs(expr.values - ref).max())

    X, y = _data(20000, 40)
    rows = X[:2000]
    xm = xgb.XGBClassifier(
        n_estimators=500, max_depth=6, learning_rate=0.1, nthread=2, random_state=0
    ).fit(X, y)
    booster = xm.get_booster()
    booster.set_param({"nthread": 2})
    dm = xgb.DMatrix(rows)
    t_x, c_x, contribs = _best(lambda: booster.predict(dm, pred_contribs=True))
    ts = wb.TreeShap(xm)
    ts.explain(rows[:10])
    t_w, c_w, exp = _best(lambda: ts.explain(rows))
    res["xgboost_s"] = t_x
    res["whybox_vs_xgboost_s"] = t_w
    res["ratio_vs_xgboost_pred_contribs"] = t_w / t_x
    res["xgboost_cpu_ratio"] = c_w / c_x
    res["parse_xgboost_500_s"] = best_of(lambda: parse_tree_model(xm))[0]
    res["xgboost_max_abs_diff"] = float(np.abs(exp.values - contribs[:, :-1]).max())

    lm = lgb.LGBMClassifier(
        n_estimators=500,
        num_leaves=63,
        learning_rate=0.05,
        n_jobs=2,
        random_state=0,
        verbose=-1,
    ).fit(X, y)
    t_l, c_l, contrib = _best(lambda: lm.booster_.predict(rows, pred_contrib=True, num_threads=2))
    tl = wb.TreeShap(lm)
    tl.explain(rows[:10])
    t_wl, c_wl, expl = _best(lambda: tl.explain(rows))
    res["lightgbm_s"] = t_l
    res["whybox_vs_lightgbm_s"] = t_wl
    res["ratio_vs_lightgbm_pred_contrib"] = t_wl / t_l
    res["lightgbm_cpu_ratio"] = c_wl / c_l
    res["lightgbm_max_abs_diff"] = float(np.abs(expl.values - contrib[:, :-1]).max())

    bg = X[5000:5100]
    irows = X[:500]
    t_si, c_si, refi = _best(
        lambda: shap.TreeExplainer(xm, bg, feature_perturbation="interventional").shap_values(
            irows, check_additivity=False
        ),
        repeats=1,
    )
    ti = wb.TreeShap(xm, background=bg)
    ti.explain(irows[:10])
    t_wi, c_wi, expi = _best(lambda: ti.explain(irows))
    res["shap_interventional_s"] = t_si
    res["whybox_interventional_s"] = t_wi
    res["ratio_vs_shap_interventional"] = t_wi / t_si
    res["interventional_cpu_ratio"] = c_wi / c_si
    res["interventional_max_abs_diff"] = float(np.abs(expi.values - refi).max())
    res["jit_compile_s"] = compile_time()
    return res


if __name__ == "__main__":
    print(run())
