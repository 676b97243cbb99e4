"""Counterfactual recourse on the bundled credit data (issue 5's task).

A HistGradientBoosting classifier is trained on 4,000 synthetic applicants
(``wb.zoo.credit(n=5000, random_state=0)``; class 1 = default). The first 50 held-out
applicants with a predicted default probability above 0.5 are the *denied* ones; each gets
``Counterfactuals.explain(x, n=1)`` and ``n=3`` toward class 0 (repays, i.e. approved) under:

* ``loan_purpose`` immutable (what the loan is for is the applicant's need, not a lever);
* ``age`` and ``months_employed`` monotone increasing (time only moves forward);
* ranges: ``age`` 18-80, ``debt_to_income`` 0-0.8, ``credit_utilization`` 0-1.

A counterfactual counts only if the benchmark itself (not whybox) finds every returned row
classified as class 0 by the model, every constraint above respected, integer columns
integer, other numeric features inside the training range, and the call finished within
2 s. No peer runs: dice-ml and alibi are not installed (alibi's counterfactuals need
TensorFlow), so the figures are absolute.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

IMMUTABLE = ["loan_purpose"]
MONOTONE = {"age": "increase", "months_employed": "increase"}
RANGES = {"age": (18, 80), "debt_to_income": (0.0, 0.8), "credit_utilization": (0.0, 1.0)}
INTEGER = ["age", "months_employed", "late_payments", "open_credit_lines"]


def _respects(X: pd.DataFrame, q: pd.Series, cfs: pd.DataFrame) -> bool:
    if list(cfs.dtypes) != list(X.dtypes):
        return False
    for i in range(len(cfs)):
        r = cfs.iloc[i]
        if any(r[c] != q[c] for c in IMMUTABLE):
            return False
        if r["age"] < q["age"] or r["months_employed"] < q["months_employed"]:
            return False
        for c in X.columns:
            if c == "loan_purpose" or r[c] == q[c]:
                continue
            lo, hi = RANGES.get(c, (X[c].min(), X[c].max()))
            if not lo <= r[c] <= hi:
                return False
        if any(r[c] != round(r[c]) for c in INTEGER):
            return False
        if r["loan_purpose"] not in set(X["loan_purpose"]):
            return False
    return True


def run() -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    import whybox as wb

    data = wb.zoo.credit(n=5000, random_state=0)
    X_train, X_test = data.X.iloc[:4000], data.X.iloc[4000:]
    model = HistGradientBoostingClassifier(random_state=0).fit(X_train, data.y.iloc[:4000])
    p_default = model.predict_proba(X_test)[:, 1]
    denied = X_test.iloc[np.flatnonzero(p_default > 0.5)[:50]]

    t0 = time.perf_counter()
    cf = wb.Counterfactuals(
        model,
        X_train,
        immutable=IMMUTABLE,
        monotone=MONOTONE,
        ranges=RANGES,
        desired=0,
        time_budget=2.0,
        random_state=0,
    )
    res: dict[str, object] = {
        "task": "HGB on credit (4000 train), 50 denied applicants, desired class 0",
        "constraints": "purpose immutable; age, months_employed increase; 3 ranges",
        "setup_s": time.perf_counter() - t0,
    }
    t_call, _ = _timed(lambda: model.predict_proba(X_test.iloc[:256]))
    res["model_call_256_rows_s"] = t_call
    for n in (1, 3):
        times, ok, sparsity, proximity, plaus, evals = [], [], [], [], [], []
        for i in range(len(denied)):
            x = denied.iloc[[i]]
            t, r = _timed(lambda x=x, n=n: cf.explain(x, n=n))
            cfs = r.counterfactuals
            valid = len(cfs) == n and bool((model.predict(cfs) == 0).all())
            ok.append(valid and _respects(X_train, x.iloc[0], cfs) and t <= 2.0)
            times.append(t)
            evals.append(r.n_evals)
            if len(cfs):
                sparsity.append(float(np.mean(r.sparsity)))
                proximity.append(float(np.mean(r.proximity)))
                plaus.append(float(np.mean(r.lof)))
        res[f"n{n}_fraction_valid_within_2s"] = float(np.mean(ok))
        res[f"n{n}_median_s"] = float(np.median(times))
        res[f"n{n}_max_s"] = float(np.max(times))
        res[f"n{n}_mean_sparsity"] = float(np.mean(sparsity))
        res[f"n{n}_mean_proximity_mad_l1"] = float(np.mean(proximity))
        res[f"n{n}_mean_lof"] = float(np.mean(plaus))
        res[f"n{n}_median_rows_evaluated"] = float(np.median(evals))
    return res


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out
