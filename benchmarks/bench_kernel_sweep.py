"""KernelShap (regression-adjusted) vs shap and shapiq: error at equal model evaluations.

The sweep of issue 20, part 1. Six models (linear, tree ensemble, MLP, SVC, k-NN, a
Pipeline), 10 to 30 players (``WHYBOX_BENCH_FULL=1`` adds a 64-player model and more rows and
seeds), budgets 128 .. 8192 coalitions per row. Every estimator explains the *same*
interventional game: the model's mean output over a 10-row background sample with the absent
features taken from it (shap's KernelExplainer with that background computes exactly this
game; shapiq's approximators get it as a function of coalitions).

Reference values: exact enumeration of all coalitions (whybox's ExactShap, checked against
shap's ExactExplainer in the tests) up to 16 players; beyond, whybox's PermutationShap
(antithetic, ``surrogate="none"``) at 2**17 coalitions per row, whose largest standard error
is reported (``ref_max_se``).

Error: mean over explained rows of ``sum_j |phi_hat_j - phi_j|`` (L1), averaged over seeds.
Budgets up to :data:`SMALL` use :data:`SMALL_SEEDS` seeds (cheap there, and with 2 seeds x 3
rows the ratio of two noisy errors at 128 moved by up to 1.4x between seed pairs: GBC 0.58 on
8 seeds, 0.81 on seeds 0-1).
Cells of the table: whybox's error / shap KernelExplainer's error, and whybox's error / the
best (lowest-error) of shap's and shapiq's estimators at that budget. Where the budget
covers all ``2**n`` coalitions whybox is exact (ratio 0).

whybox runs with ``surrogate="auto"``: per row, the cross-fitted product-kernel surrogate,
the per-background sigmoid surrogate (probability outputs, at most 16 background rows: here
10), or none, whichever gives the residual game the smallest estimated variance (the
choices are in each cell's ``surrogates``; the boosted-tree surrogate is no longer a
candidate of ``auto``, for its cost); where the sizes 1 and n - 1 are enumerated (small
budgets with at least 4 pairs per other stratum left), the kernel gets one width per player
from the players' relevance on them and is kept unless another candidate's variance is below
0.7x its own. Plain KernelSHAP (``surrogate="none"``, also in the table) regresses sampled
rounds on symmetric size covariates and shrinks towards the sizes-1/n-1 estimate
(``whybox.games.kernel``). shap's KernelExplainer has no seed argument and
draws from numpy's global generator, which is seeded with the run's seed before each call.

Time: whybox's wall time per explained row over the time spent inside the model (the floor),
at every budget (for models as cheap as a linear model, the floor is tiny and the ratio says
little).

shapiq (test-only peer): shapiq 1.8 needs Python >= 3.12; on Python 3.11 the newest is 1.4.1,
which ships the same estimators (KernelSHAP, SVARM, UnbiasedKernelSHAP, StratifiedSamplingSV,
PermutationSamplingSV). It installs without dependencies (``pip install --no-deps
shapiq==1.4.1 sparse-transform==0.2.1 galois==0.4.11 colour==0.1.5``; galois uses numba,
already installed). Without it the shapiq columns are left out.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np

BUDGETS = (128, 256, 512, 1024, 4096, 8192)
#: Budgets up to this use SMALL_SEEDS seeds.
SMALL = 512
SMALL_SEEDS = tuple(range(8))
SHAPIQ = (
    "KernelSHAP",
    "SVARM",
    "UnbiasedKernelSHAP",
    "StratifiedSamplingSV",
    "PermutationSamplingSV",
)


def _models(full: bool) -> list[tuple[str, Any, np.ndarray, np.ndarray]]:
    """(name, f: (m, p) -> (m,), background (10, p), rows (r, p))."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_classification
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    out = []
    rng = np.random.default_rng(0)
    n_rows = 6 if full else 3

    def pick(X):
        i = rng.choice(len(X), 10 + n_rows, replace=False)
        return X[i[:10]], X[i[10:]]

    Xd, yd = load_diabetes(return_X_y=True)
    Xw, yw = load_wine(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    ridge = Ridge(alpha=1.0).fit(Xd, yd)
    out.append(("linear Ridge, diabetes", ridge.predict, *pick(Xd)))
    gbc = GradientBoostingClassifier(random_state=0).fit(Xw, yw)
    out.append(("GBC(100) p0, wine", lambda A: gbc.predict_proba(A)[:, 0], *pick(Xw)))
    mlp = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=800, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(Xd, yd)
    out.append(("MLP(64,64), diabetes", mlp.predict, *pick(Xd)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svc = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(Xw, yw)
    out.append(("SVC(rbf) p1, wine", lambda A: svc.predict_proba(A)[:, 1], *pick(Xw)))
    Xk = Xb[:, :16]
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(15)).fit(Xk, yb)
    out.append(("k-NN(15) p1, breast cancer[:16]", lambda A: knn.predict_proba(A)[:, 1], *pick(Xk)))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000)).fit(Xb, yb)
    out.append(
        (
            "Pipeline(scaler, logreg) p1, breast cancer",
            lambda A: pipe.predict_proba(A)[:, 1],
            *pick(Xb),
        )
    )
    if full:
        Xs, ys = make_classification(2000, 64, n_informative=24, random_state=0)
        hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(Xs, ys)
        out.append(("HistGB p1, synthetic 64", lambda A: hgb.predict_proba(A)[:, 1], *pick(Xs)))
    return out


class _Timed:
    """The model function, counting the time spent inside it."""

    def __init__(self, f):
        self.f, self.seconds = f, 0.0

    def __call__(self, A):
        t0 = time.perf_counter()
        out = np.asarray(self.f(A), dtype=float)
        self.seconds += time.perf_counter() - t0
        return out


def _game(f, x, bg):
    def value(Z):
        Z = np.atleast_2d(np.asarray(Z, dtype=bool))
        inputs = np.where(Z[:, None, :], x[None, None, :], bg[None, :, :])
        return f(inputs.reshape(-1, len(x))).reshape(len(Z), len(bg)).mean(axis=1)

    return value


def _shapiq_values(name, f, x, bg, budget, seed):
    from shapiq import approximator

    n = len(x)
    est = getattr(approximator, name)(n=n, random_state=seed)
    iv = est.approximate(budget=budget, game=_game(f, x, bg))
    return np.asarray(iv.get_n_order_values(1), dtype=float)


def run(budgets=BUDGETS, seeds=None) -> dict:
    import shap

    import whybox as wb

    full = os.environ.get("WHYBOX_BENCH_FULL") == "1"
    seeds = seeds or ((0, 1, 2) if full else (0, 1))
    try:
        import shapiq  # noqa: F401

        peers = SHAPIQ
    except ImportError:
        peers = ()
    rows_out = []
    t_start = time.perf_counter()
    for name, f, bg, X in _models(full):
        n = X.shape[1]
        if n <= 16:
            ref = wb.ExactShap(f, background=bg).explain(X).values
            ref_se = 0.0
        else:
            # antithetic permutations (unbiased, no control variate: KernelShap's order-3/4
            # polynomial control variate at this budget needs a pseudo-inverse of several GB
            # for 30 players)
            e = wb.PermutationShap(f, background=bg, surrogate="none", random_state=123)
            e = e.explain(X, budget=2**17)
            ref, ref_se = e.values, float(e.std.max())
        for b in budgets:
            if b < 2 * n + 2:
                continue
            cell: dict[str, Any] = {"model": name, "players": n, "budget": b, "ref_max_se": ref_se}
            # errors below this are rounding: the estimate is exact (ratios of two such
            # errors are noise and shown as "exact")
            floor = 1e-9 * float(np.abs(ref).sum(axis=1).mean())
            cell["exact_floor"] = floor
            errs: dict[str, list[float]] = {}
            choices: list[str] = []
            floor_ratio = []
            for seed in SMALL_SEEDS if b <= SMALL else seeds:
                for label, sur in (("whybox", "auto"), ("whybox_plain", "none")):
                    tf = _Timed(f)
                    t0 = time.perf_counter()
                    exp = wb.KernelShap(tf, background=bg, surrogate=sur, random_state=seed)
                    exp = exp.explain(X, budget=b)
                    wall = time.perf_counter() - t0
                    errs.setdefault(label, []).append(np.abs(exp.values - ref).sum(1).mean())
                    if sur == "auto":
                        floor_ratio.append(wall / tf.seconds)
                        choices += list(exp.meta.get("surrogate", []))
                # shap's KernelExplainer draws from numpy's global generator (it has no seed)
                np.random.seed(seed)  # noqa: NPY002 (shap reads the global generator)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ke = shap.KernelExplainer(f, bg)
                    sv = np.asarray(ke.shap_values(X, nsamples=b, silent=True))
                errs.setdefault("shap", []).append(np.abs(sv - ref).sum(1).mean())
                for p in peers:
                    vals = np.array([_shapiq_values(p, f, x, bg, b, seed) for x in X])
                    errs.setdefault(p, []).append(np.abs(vals - ref).sum(1).mean())
            mean = {k: float(np.mean(v)) for k, v in errs.items()}
            mean = {k: (0.0 if v <= floor else v) for k, v in mean.items()}
            best_peer = min((k for k in mean if not k.startswith("whybox")), key=mean.get)
            cell.update({f"err_{k}": v for k, v in mean.items()})
            cell["best_peer"] = best_peer
            cell["ratio_vs_shap"] = _ratio(mean["whybox"], mean["shap"])
            cell["ratio_vs_best"] = _ratio(mean["whybox"], mean[best_peer])
            cell["plain_ratio_vs_shap"] = _ratio(mean["whybox_plain"], mean["shap"])
            cell["time_over_model_calls"] = float(np.mean(floor_ratio))
            cell["surrogates"] = {c: choices.count(c) for c in sorted(set(choices))}
            rows_out.append(cell)
    return {
        "cells": rows_out,
        "peers": ["shap.KernelExplainer", *peers],
        "seeds": list(seeds),
        "small_budget_seeds": list(SMALL_SEEDS),
        "full": full,
        "total_s": time.perf_counter() - t_start,
    }


def _ratio(a: float, b: float) -> float:
    """a / b; nan when both are exact (zero), inf when only the peer is."""
    if b == 0.0:
        return float("nan") if a == 0.0 else float("inf")
    return a / b


def _fmt(x: float) -> str:
    return "exact" if np.isnan(x) else f"{x:.3g}"


def _table(result: dict, key: str) -> list[str]:
    cells = result["cells"]
    budgets = sorted({c["budget"] for c in cells})
    models = list(dict.fromkeys((c["model"], c["players"]) for c in cells))
    lines = ["| model (players) | " + " | ".join(str(b) for b in budgets) + " |"]
    lines.append("|---" * (len(budgets) + 1) + "|")
    for m, n in models:
        row = []
        for b in budgets:
            c = next((c for c in cells if c["model"] == m and c["budget"] == b), None)
            row.append("-" if c is None else _fmt(c[key]))
        lines.append(f"| {m} ({n}) | " + " | ".join(row) + " |")
    return lines


def markdown(result: dict) -> str:
    cells = result["cells"]
    out = [
        f"Seeds {result['seeds']} (budgets <= {SMALL}: "
        f"{len(result.get('small_budget_seeds', result['seeds']))} seeds), peers "
        f"{', '.join(result['peers'])}; total "
        f"{result['total_s']:.0f} s. Cells: whybox KernelShap (surrogate='auto') mean L1 "
        "error / the peer's, same game, same evaluations per row.",
        "",
        "**vs shap KernelExplainer**",
        "",
        *_table(result, "ratio_vs_shap"),
        "",
        "**vs the best of shap and shapiq at that budget**",
        "",
        *_table(result, "ratio_vs_best"),
        "",
        "**plain KernelShap (surrogate='none') vs shap**, for the effect of the adjustment",
        "",
        *_table(result, "plain_ratio_vs_shap"),
        "",
        "**whybox time per row / time inside the model**",
        "",
        *_table(result, "time_over_model_calls"),
        "",
    ]
    pos = [c for c in cells if np.isfinite(c["ratio_vs_best"]) and c["err_whybox"] > 0]
    if pos:
        worst = max(pos, key=lambda c: c["ratio_vs_best"])
        out.append(
            f"Weakest cell: {worst['model']} ({worst['players']} players) at {worst['budget']}: "
            f"{worst['ratio_vs_best']:.3g}x the best peer ({worst['best_peer']}); "
            f"{worst['ratio_vs_shap']:.3g}x shap."
        )
        sampled = [c for c in pos if c["budget"] < 2 ** c["players"]]
        out.append(
            "Over the cells where whybox samples (budget < 2**n) and is not exact: mean ratio vs "
            f"shap {np.mean([c['ratio_vs_shap'] for c in sampled]):.3g}, worst "
            f"{max(c['ratio_vs_shap'] for c in sampled):.3g}; vs the best peer mean "
            f"{np.mean([c['ratio_vs_best'] for c in sampled]):.3g}, worst "
            f"{max(c['ratio_vs_best'] for c in sampled):.3g}."
        )
        out.append(
            "Cells read 'exact' where whybox and the peer are both exact (errors below 1e-9 "
            "of the values' L1 norm); 0 where only whybox is."
        )
    return "\n".join(out)


if __name__ == "__main__":
    r = run()
    print(markdown(r))
