"""wb.evaluate: the table's numbers are the metrics' own, summarised by hand; exact Shapley
values score better than random ones on every metric."""

from __future__ import annotations

import numpy as np
import pytest

import whybox as wb
from whybox import metrics
from whybox.errors import InvalidParameterError
from whybox.metrics.evaluate import METRICS


def test_table_is_the_metrics_summarised(linear_case):
    model, rows, bg, _, rnd = linear_case
    table = wb.evaluate(rnd, model, rows, background=bg, random_state=3)
    assert list(table.index) == ["deletion", "insertion", "faithfulness_correlation", "infidelity"]
    assert list(table.columns) == ["mean", "std", "n", "higher_is_better", "statistic", "reading"]
    curves = {
        "deletion": metrics.deletion(rnd, model, rows, background=bg),
        "insertion": metrics.insertion(rnd, model, rows, background=bg),
    }
    for name, c in curves.items():  # weighted by |f(x) - v(empty)|, by hand
        w = np.abs(c.full - c.empty)
        a = c.normalized_auc
        mean = (w * a).sum() / w.sum()
        std = np.sqrt((w / w.sum() * (a - mean) ** 2).sum() * 30 / 29)
        assert table.loc[name, "mean"] == pytest.approx(mean, rel=1e-12)
        assert table.loc[name, "std"] == pytest.approx(std, rel=1e-12)
        assert table.loc[name, "n"] == 30
        assert f"{mean:.2f}" in table.loc[name, "reading"]
    per_row = {
        "faithfulness_correlation": metrics.faithfulness_correlation(
            rnd, model, rows, background=bg, random_state=3
        ),
        "infidelity": metrics.infidelity(rnd, model, rows, background=bg, random_state=3),
    }
    for name, v in per_row.items():
        v = v[np.isfinite(v)]
        assert table.loc[name, "mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert table.loc[name, "std"] == pytest.approx(v.std(ddof=1), rel=1e-12)
        assert table.loc[name, "n"] == v.size
        shown = f"{v.mean():.3g}" if name == "infidelity" else f"{v.mean():.2f}"
        assert shown in table.loc[name, "reading"]
    assert table["higher_is_better"].tolist() == [False, True, True, False]


def test_exact_shapley_beats_random_on_every_metric(linear_case):
    model, rows, bg, exp, rnd = linear_case
    rows, exp, rnd = rows.iloc[:12], exp[:12], rnd[:12]
    kernel = wb.KernelShap(model, background=bg, random_state=0).explain(rows, budget=64)
    names = list(METRICS)
    good = wb.evaluate(
        exp,
        model,
        rows,
        metrics=names,
        background=bg,
        explain_fn=lambda X, random_state=0: wb.ExactShap(model, background=bg).explain(X),
        other=kernel,
        stability={"seeds": (0, 1, 2)},
        max_sensitivity={"n_samples": 4},
    )
    scale = exp.values.std()

    def random_fn(X, random_state=0):
        X = np.asarray(X, float)
        return (
            np.random.default_rng([random_state, int(abs(X.sum()) * 1e6)]).normal(size=X.shape)
            * scale
        )

    bad = wb.evaluate(
        rnd,
        model,
        rows,
        metrics=names,
        background=bg,
        explain_fn=random_fn,
        other=kernel,
        stability={"seeds": (0, 1, 2)},
        max_sensitivity={"n_samples": 4},
    )
    for name in names:
        up = good.loc[name, "higher_is_better"]
        g, b = good.loc[name, "mean"], bad.loc[name, "mean"]
        assert (g > b) if up else (g < b), name


def test_options_are_routed(linear_case):
    model, rows, bg, exp, _ = linear_case
    coarse = wb.evaluate(exp, model, rows, metrics=["deletion"], background=bg, n_steps=2)
    direct = metrics.deletion(exp, model, rows, background=bg, n_steps=2)
    assert coarse.loc["deletion", "mean"] == pytest.approx(direct.pooled_normalized_auc)
    only = wb.evaluate(
        exp,
        model,
        rows,
        metrics=["deletion", "insertion"],
        background=bg,
        insertion={"n_steps": 2},
    )
    full = metrics.deletion(exp, model, rows, background=bg)
    assert only.loc["deletion", "mean"] == pytest.approx(full.pooled_normalized_auc)
    ins = metrics.insertion(exp, model, rows, background=bg, n_steps=2)
    assert only.loc["insertion", "mean"] == pytest.approx(ins.pooled_normalized_auc)


def test_errors(linear_case):
    model, rows, _, exp, _ = linear_case
    with pytest.raises(InvalidParameterError, match="metrics='sparsity' is not supported"):
        wb.evaluate(exp, model, rows, metrics=["sparsity"])
    with pytest.raises(InvalidParameterError, match="metrics is empty"):
        wb.evaluate(exp, model, rows, metrics=[])
    with pytest.raises(InvalidParameterError, match=r"option\(s\) \['n_stepz'\]"):
        wb.evaluate(exp, model, rows, n_stepz=3)
    with pytest.raises(InvalidParameterError, match="needs explain_fn="):
        wb.evaluate(exp, model, rows, metrics=["max_sensitivity"])
    with pytest.raises(InvalidParameterError, match="pass the second one as other="):
        wb.evaluate(exp, model, rows, metrics=["agreement"])
    with pytest.raises(InvalidParameterError, match="X is None while the explanation holds no"):
        wb.evaluate(
            exp.values, model, metrics=["stability"], explain_fn=lambda X, random_state=0: X
        )
    with pytest.raises(InvalidParameterError, match="deletion= must be a dict"):
        wb.evaluate(exp, model, rows, deletion=3)


def test_readings_explain_normalised_aucs_outside_zero_one():
    from whybox.metrics.evaluate import _reading

    assert "past its background level" in _reading("deletion", -0.38, {})
    assert "past its background level" not in _reading("deletion", 0.2, {})
    assert "past the prediction" in _reading("insertion", 1.29, {})
    assert "past the prediction" not in _reading("insertion", 0.9, {})
