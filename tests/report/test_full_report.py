"""The full report: which sections appear, and the numbers they show.

Oracles: scipy's Spearman correlation (agreement), scikit-learn's predictions (recourse flips
the decision), whybox.evaluate's table (the quality section shows exactly it), and a report
built without model or data (the sections that need them are omitted, not left empty).
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

import whybox as wb


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    n = 240
    a = rng.normal(size=n)
    X = pd.DataFrame(
        {
            "a": a,
            "a_twin": a + 0.2 * rng.normal(size=n),  # |r| ~ 0.98
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
        }
    )
    y = (X["a"] - 1.5 * X["b"] + 0.5 * rng.normal(size=n) > 0).astype(int)
    model = LogisticRegression().fit(X.iloc[:160], y.iloc[:160])
    bg = X.iloc[:20]
    rows = X.iloc[160:172]
    exact = wb.ExactShap(model, background=bg).explain(rows, target=1)
    lime = wb.Lime(model, X.iloc[:160], random_state=0).explain(rows, target=1, budget=500)
    return X, y, model, bg, exact, lime


def sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, re.S))


def test_without_model_or_data_the_dependent_sections_are_omitted(setup):
    *_, exact, _ = setup
    html = wb.report(exact).to_html()
    got = sections(html)
    assert set(got) == {"summary", "importance", "effects", "local", "limitations"}
    # the effect section has the dependence scatter plots only (no model: no curves)
    assert got["effects"].count("<img") == 3
    assert "partial dependence" not in got["effects"]
    # limitations: the correlated pair, found in the explained rows themselves
    assert "a_twin" in got["limitations"]
    for absent in ("Data", "Explanation quality", "Counterfactual recourse"):
        assert f"<h2>{absent}</h2>" not in html
    # no empty headings anywhere: every section has content after its heading
    for body in got.values():
        assert len(re.sub(r"<h2>.*?</h2>|\s", "", body)) > 100


def test_with_model_and_data_every_section_is_there(setup):
    X, y, model, bg, exact, lime = setup
    rep = wb.report(
        exact,
        model=model,
        X=X.iloc[160:],
        y=y.iloc[160:],
        X_train=X.iloc[:160],
        background=bg,
        compare=lime,
        quality_rows=None,
    )
    html = rep.to_html()
    got = sections(html)
    assert list(got) == [
        "summary",
        "data",
        "importance",
        "effects",
        "local",
        "quality",
        "limitations",
    ]
    # three top features x (dependence, PDP/ICE, ALE)
    assert got["effects"].count("<img") == 9
    assert "partial dependence (thick) and ICE curves" in got["effects"]
    assert "accumulated local effects" in got["effects"]

    # quality: exactly wb.evaluate's numbers and readings
    faith = wb.evaluate(
        exact,
        model,
        exact.data,
        metrics=["deletion", "insertion", "faithfulness_correlation", "infidelity"],
        background=bg,
    )
    for name, row in faith.iterrows():
        assert f"<td>{name}</td>" in got["quality"]
        assert f"{row['mean']:.4g} ± {row['std']:.4g}" in got["quality"]
        assert str(row["reading"]).replace("'", "&#39;") in got["quality"]
    # agreement: mean over rows of scipy's Spearman correlation of |attributions|
    rho = np.mean(
        [
            spearmanr(np.abs(exact.values[i]), np.abs(lime.values[i])).statistic
            for i in range(exact.n_rows)
        ]
    )
    block = got["quality"].split("Agreement between exact and lime")[1]
    assert f"<td>{rho:.4g} ± " in block


def test_recourse_rows_flip_the_decision(setup):
    X, _, model, _, exact, _ = setup
    rows = [int(i) for i in np.flatnonzero(model.predict(exact.data) == 1)[:2]]
    assert len(rows) == 2
    rep = wb.report(
        exact,
        model=model,
        X=X.iloc[160:],
        X_train=X.iloc[:160],
        rows=rows,
        recourse={"immutable": ["c"], "time_budget": 0.5},
        quality=False,
    )
    (section,) = [s for s in rep.sections if s["id"] == "recourse"]
    html = rep.to_html()
    assert "Never changed: c." in html
    for block in section["blocks"]:
        res = block["result"]
        assert len(res.counterfactuals) >= 1
        # scikit-learn's own prediction of every counterfactual row is the other class
        assert (model.predict(res.counterfactuals) == 0).all()
        assert (res.counterfactuals["c"] == res.query["c"].iloc[0]).all()
        # each change is shown as the counterfactual module writes it, with an arrow
        table = res.table()
        changed = [c for c in table.columns if c in X.columns]
        assert changed and "c" not in changed
        for c in changed:
            for cell in table[c]:
                if cell:
                    assert f"<td>{cell.replace(' -> ', ' → ')}</td>" in html


def test_importance_intervals_contain_the_mean(setup):
    *_, exact, _ = setup
    section = wb.report(exact, rows=[]).sections[1]
    assert "bootstrap percentile interval" in section["lead"]
    mean = np.abs(exact.values).mean(axis=0)
    by_name = dict(zip(exact.feature_names, mean, strict=True))
    for r in section["rows"]:
        lo, hi = (float(v) for v in r["interval"].split(" – "))
        assert lo <= by_name[r["feature"]] <= hi and lo < hi


def test_quality_needs_nothing_it_cannot_measure(setup):
    *_, exact, lime = setup
    # a second explanation alone gives the agreement table (no model needed)
    got = sections(wb.report(exact, compare=lime).to_html())
    assert "quality" in got and "Agreement between exact and lime" in got["quality"]
    assert "Faithfulness" not in got["quality"]
    got = sections(wb.report(exact, compare=lime, quality=False).to_html())
    assert "quality" not in got
