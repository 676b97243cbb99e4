"""whybox's ExplainableBoostingClassifier vs interpret's, both with default settings (issue 5).

Tasks: scikit-learn's breast-cancer data (``train_test_split(test_size=0.3, random_state=0)``)
and ``wb.zoo.credit(n=5000, random_state=0)`` with the same split. For each: the test AUC of
both models and their training wall time in this process, with the ratios
(``whybox_fit_s / interpret_fit_s``, target <= 0.1; ``auc_diff = whybox - interpret``, target
``|auc_diff| <= 0.01``). interpret's default fit takes many minutes, so it is fitted once per
task; whybox is fitted twice (after one small warm-up fit that loads the numba kernels) and
both of its times are reported, so the spread is visible. Both use every core: whybox's
default runs its bags in threads, and interpret is given ``n_jobs=-1`` (its default ``-2``
leaves one of this machine's two cores idle); all other settings are interpret's defaults.
CPU time (this process and its worker processes) is reported too.

Multiclass block (issue 20): scikit-learn's wine (3 classes) and digits (10 classes) and a
5-class synthetic set (``five_classes``: argmax of noisy linear scores plus one pair, 2000
rows), each split ``train_test_split(test_size=0.3, random_state=0, stratify=y)``; test AUC
one-vs-rest (macro) of both models with default settings, ``auc_diff`` (target
``|auc_diff| <= 0.01``) and the fit-time ratios, wall and CPU (target <= 0.1), fitted as
above. Both fit pairs: interpret 0.7.8's default ``interactions="3x"`` applies to multiclass
too (it boosts multiclass pairs and only warns that it cannot plot them), and whybox's default
is the same, so the comparison is default against default. ``python benchmarks/bench_ebm.py
multiclass [--whybox-only] [task ...]`` runs this block alone (``--whybox-only``: without
interpret's fits, for quick timing of whybox).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _tasks() -> dict[str, tuple[Any, Any, Any, Any]]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    import whybox as wb

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    credit = wb.zoo.credit(n=5000, random_state=0)
    return {
        "breast_cancer": tuple(train_test_split(X, y, test_size=0.3, random_state=0)),
        "credit": tuple(train_test_split(credit.X, credit.y, test_size=0.3, random_state=0)),
    }


def five_classes(n: int = 2000, seed: int = 0) -> tuple[Any, Any]:
    """The 5-class synthetic set: the class is the argmax of noisy additive scores plus one
    pair effect (the same recipe as tests/glassbox/test_ebm_multiclass.py)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    W = rng.normal(size=(5, 5))
    S = X @ W + 1.5 * np.outer(X[:, 0] * X[:, 1], np.r_[1.0, -1.0, 0, 0, 0])
    y = np.argmax(S + rng.gumbel(size=S.shape), axis=1)
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(5)]), y


def _multiclass_tasks() -> dict[str, tuple[Any, Any, Any, Any]]:
    from sklearn.datasets import load_digits, load_wine
    from sklearn.model_selection import train_test_split

    out = {}
    for name, (X, y) in {
        "wine": load_wine(return_X_y=True, as_frame=True),
        "five_classes": five_classes(),
        "digits": load_digits(return_X_y=True, as_frame=True),
    }.items():
        out[name] = tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))
    return out


def _cpu_seconds() -> dict[int, float]:
    """CPU seconds used so far by this process and each of its child processes, by pid."""
    import psutil

    me = psutil.Process()
    out = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _fit(make: Any, X: Any, y: Any) -> tuple[Any, float, float]:
    before, t_wall = _cpu_seconds(), time.perf_counter()
    model = make().fit(X, y)
    wall = time.perf_counter() - t_wall
    after = _cpu_seconds()
    cpu = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return model, wall, cpu


def run() -> dict[str, object]:
    from interpret.glassbox import ExplainableBoostingClassifier as InterpretEBM
    from sklearn.metrics import roc_auc_score

    from whybox.glassbox import ExplainableBoostingClassifier

    res: dict[str, object] = {}
    tasks = _tasks()
    Xw, _, yw, _ = tasks["credit"]
    ExplainableBoostingClassifier(outer_bags=2, max_rounds=5, interactions=2).fit(Xw, yw)
    for name, (X_tr, X_te, y_tr, y_te) in tasks.items():
        walls, cpus, aucs = [], [], []
        for _ in range(2):
            model, wall, cpu = _fit(ExplainableBoostingClassifier, X_tr, y_tr)
            walls.append(wall)
            cpus.append(cpu)
            aucs.append(roc_auc_score(y_te, model.predict_proba(X_te)[:, 1]))
        gap = float(np.abs(model.explain_local(X_te).completeness_gap()).max())
        ref, ref_wall, ref_cpu = _fit(lambda: InterpretEBM(n_jobs=-1), X_tr, y_tr)
        ref_auc = roc_auc_score(y_te, ref.predict_proba(X_te)[:, 1])
        res[f"{name}_whybox_auc"] = aucs[0]
        res[f"{name}_interpret_auc"] = ref_auc
        res[f"{name}_auc_diff"] = aucs[0] - ref_auc
        res[f"{name}_whybox_fit_s"] = min(walls)
        res[f"{name}_whybox_fit_s_runs"] = " / ".join(f"{w:.2f}" for w in walls)
        res[f"{name}_interpret_fit_s"] = ref_wall
        res[f"{name}_ratio_fit_time"] = min(walls) / ref_wall
        res[f"{name}_whybox_cpu_s"] = min(cpus)
        res[f"{name}_interpret_cpu_s"] = ref_cpu
        res[f"{name}_ratio_cpu_time"] = min(cpus) / ref_cpu
        res[f"{name}_whybox_terms"] = len(model.term_names_)
        res[f"{name}_interpret_terms"] = len(ref.term_names_)
        res[f"{name}_completeness_gap"] = gap
    res.update(run_multiclass())
    return res


def run_multiclass(names: Any = None, peer: bool = True) -> dict[str, object]:
    """The multiclass block: keys ``mc_<task>_...``; ``peer=False`` skips interpret's fits
    (its figures and the ratios are then NaN: for quick whybox-only timing)."""
    import warnings

    from interpret.glassbox import ExplainableBoostingClassifier as InterpretEBM
    from sklearn.metrics import roc_auc_score

    from whybox.glassbox import ExplainableBoostingClassifier

    res: dict[str, object] = {}
    tasks = _multiclass_tasks()
    Xw, _, yw, _ = tasks["wine"]
    ExplainableBoostingClassifier(outer_bags=2, max_rounds=5, interactions=2).fit(Xw, yw)
    for name, (X_tr, X_te, y_tr, y_te) in tasks.items():
        if names is not None and name not in names:
            continue
        walls, cpus, aucs = [], [], []
        for _ in range(2):
            model, wall, cpu = _fit(ExplainableBoostingClassifier, X_tr, y_tr)
            walls.append(wall)
            cpus.append(cpu)
            aucs.append(roc_auc_score(y_te, model.predict_proba(X_te), multi_class="ovr"))
        gap = float(np.abs(model.explain_local(X_te).completeness_gap()).max())
        ref, ref_wall, ref_cpu, ref_auc = None, float("nan"), float("nan"), float("nan")
        if peer:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # interpret cannot plot multiclass pairs
                ref, ref_wall, ref_cpu = _fit(lambda: InterpretEBM(n_jobs=-1), X_tr, y_tr)
            ref_auc = roc_auc_score(y_te, ref.predict_proba(X_te), multi_class="ovr")
        key = f"mc_{name}"
        res[f"{key}_classes"] = len(model.classes_)
        res[f"{key}_whybox_auc"] = aucs[0]
        res[f"{key}_interpret_auc"] = ref_auc
        res[f"{key}_auc_diff"] = aucs[0] - ref_auc
        res[f"{key}_whybox_fit_s"] = min(walls)
        res[f"{key}_whybox_fit_s_runs"] = " / ".join(f"{w:.2f}" for w in walls)
        res[f"{key}_interpret_fit_s"] = ref_wall
        res[f"{key}_ratio_fit_time"] = min(walls) / ref_wall
        res[f"{key}_whybox_cpu_s"] = min(cpus)
        res[f"{key}_interpret_cpu_s"] = ref_cpu
        res[f"{key}_ratio_cpu_time"] = min(cpus) / ref_cpu
        res[f"{key}_whybox_terms"] = len(model.term_names_)
        res[f"{key}_interpret_terms"] = len(ref.term_names_) if ref is not None else "-"
        res[f"{key}_whybox_pair_rounds"] = model.best_iteration_[1].tolist()
        res[f"{key}_completeness_gap"] = gap
    return res


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(res: dict[str, object]) -> str:
    """The binary figures as before, then the multiclass block (one row per task)."""
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in res.items() if not k.startswith("mc_")]
    tasks = [k[3 : -len("_classes")] for k in res if k.startswith("mc_") and k.endswith("_classes")]
    if tasks:
        lines += [
            "",
            "Multiclass (issue 20; targets: |AUC diff| <= 0.01, fit-time ratio <= 0.1):",
            "",
            "| task | classes | whybox AUC (ovr) | interpret AUC | diff | whybox fit s (runs) "
            "| interpret fit s | ratio (wall) | ratio (CPU) | terms (whybox / interpret) "
            "| completeness gap |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in tasks:
            r = {k[len(f"mc_{t}_") :]: v for k, v in res.items() if k.startswith(f"mc_{t}_")}
            lines.append(
                f"| {t} | {r['classes']} | {r['whybox_auc']:.4f} | {r['interpret_auc']:.4f} | "
                f"{r['auc_diff']:+.4f} | {r['whybox_fit_s_runs']} | {r['interpret_fit_s']:.1f} | "
                f"**{r['ratio_fit_time']:.3f}** | {r['ratio_cpu_time']:.3f} | "
                f"{r['whybox_terms']} / {r['interpret_terms']} | "
                f"{r['completeness_gap']:.1e} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["multiclass"]:
        # python benchmarks/bench_ebm.py multiclass [--whybox-only] [task ...]
        args = sys.argv[2:]
        peer = "--whybox-only" not in args
        out = run_multiclass([a for a in args if a != "--whybox-only"] or None, peer=peer)
        print(out)
        print(markdown(out))
    else:
        print(run())
