"""The automatic limitations: correlated pairs, rows outside the training range, wide intervals.

Oracles: pandas' correlation matrix, hand-built data whose out-of-range cells are known, and
standard errors whose ratio to the values is computed by hand.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import whybox as wb
from whybox.explanation import Explanation
from whybox.report.limitations import (
    correlated_pairs,
    limitations_section,
    out_of_range,
    wide_intervals,
)


def correlated_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame(
        {
            "a": a,
            "a_copy": a + 0.1 * rng.normal(size=n),  # r ~ 0.995
            "minus_a": -a + 0.5 * rng.normal(size=n),  # r ~ -0.89
            "weak": a + 1.0 * rng.normal(size=n),  # r ~ 0.7: below the threshold
            "free": rng.normal(size=n),
            "label": pd.Categorical(rng.choice(["x", "y"], size=n)),
        }
    )


def test_correlated_pairs_match_pandas():
    X = correlated_frame()
    corr = X.drop(columns="label").corr()
    expected = {
        (a, b): corr.loc[a, b]
        for i, a in enumerate(corr.columns)
        for b in corr.columns[i + 1 :]
        if abs(corr.loc[a, b]) > 0.8
    }
    got = correlated_pairs(X, 0.8)
    assert (
        {(d["a"], d["b"]) for d in got}
        == set(expected)
        == {
            ("a", "a_copy"),
            ("a", "minus_a"),
            ("a_copy", "minus_a"),
        }
    )
    for d in got:
        assert d["r"] == pytest.approx(expected[(d["a"], d["b"])], abs=1e-12)
    assert [abs(d["r"]) for d in got] == sorted((abs(d["r"]) for d in got), reverse=True)
    # the weak pair appears once the threshold is below its correlation
    weak = corr.loc["a", "weak"]
    assert 0.6 < weak < 0.8
    assert ("a", "weak") in {(d["a"], d["b"]) for d in correlated_pairs(X, weak - 1e-9)}


def test_correlated_pairs_skip_missing_and_constant():
    X = pd.DataFrame({"a": [1.0, 2, 3, 4, np.nan], "b": [2.0, 4, 6, 8, 100], "c": [1.0] * 5})
    (pair,) = correlated_pairs(X)
    assert (pair["a"], pair["b"]) == ("a", "b") and pair["r"] == pytest.approx(1.0)


def test_out_of_range_lists_each_rows_per_feature():
    train = pd.DataFrame(
        {"x": [0.0, 0.5, 1.0], "n": [1, 2, 3], "c": pd.Categorical(["u", "v", "u"])}
    )
    rows = pd.DataFrame(
        {
            "x": [1.5, 0.2, -0.25, np.nan],
            "n": [2, 2, 2, 4],
            "c": pd.Categorical(["u", "zzz", "v", "u"]),
        },
        index=["r0", "r1", "r2", "r3"],
    )
    exp = Explanation(np.zeros((4, 3)), 0.0, data=rows)
    got = {d["feature"]: d for d in out_of_range(exp, train)}
    assert set(got) == {"x", "n", "c"}
    assert got["x"]["rows"] == ["r0", "r2"] and got["x"]["values"] == ["1.5", "-0.25"]
    assert got["x"]["range"] == "0 to 1"
    assert got["n"]["rows"] == ["r3"] and got["n"]["range"] == "1 to 3"
    assert got["c"]["rows"] == ["r1"] and got["c"]["values"] == ["zzz"]
    assert got["c"]["range"] == "u, v"
    assert (
        out_of_range(Explanation(np.zeros((4, 3)), 0.0, data=train.iloc[[0, 1, 2, 0]]), train) == []
    )


def test_wide_intervals_ratio_by_hand():
    values = np.array([[1.0, -0.5, 2.0], [3.0, 0.5, -2.0]])
    std = np.array([[0.1, 0.5, 0.05], [0.3, 0.1, 0.05]])
    exp = Explanation(values, 0.0, std=std, feature_names=["a", "b", "c"])
    got = wide_intervals(exp, threshold=0.04)
    # a: mean std 0.2 / mean |v| 2 = 0.1; b: 0.3 / 0.5 = 0.6; c: 0.05 / 2 = 0.025
    assert [d["feature"] for d in got] == ["b", "a"]
    assert got[0]["relative_error"] == pytest.approx(0.6)
    assert got[1]["relative_error"] == pytest.approx(0.1)
    # b's first row: |-0.5| <= 1.96 * 0.5, the sign is uncertain; second row 0.5 > 0.196
    assert got[0]["sign_uncertain"] == pytest.approx(0.5)
    assert got[1]["sign_uncertain"] == 0.0
    assert wide_intervals(exp, threshold=0.7) == []
    assert wide_intervals(Explanation(values, 0.0)) == []  # no std: exact
    assert wide_intervals(Explanation(values, 0.0, std=np.zeros_like(values))) == []


def test_section_omitted_when_nothing_is_found():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    exp = Explanation(rng.normal(size=(5, 3)), 0.0, data=X.iloc[:5])
    assert limitations_section(exp, X, X) is None
    html = wb.report(exp, X=X).to_html()
    assert "Limitations" not in html and 'id="limitations"' not in html


def test_section_lists_every_finding():
    X = correlated_frame()
    rows = X.iloc[:6].copy()
    rows.iloc[2, 0] = 99.0  # far outside the training range of "a"
    values = np.random.default_rng(2).normal(size=(6, 6))
    std = np.abs(values) * 0.5  # 50% relative error everywhere
    exp = Explanation(
        values,
        0.0,
        data=rows,
        std=std,
        method="kernel",
        params={"masker": "Independent", "budget": 64},
    )
    section = limitations_section(exp, X, X)
    titles = [b["title"] for b in section["blocks"]]
    assert titles == [
        "Highly correlated features (|r| > 0.8)",
        "Explained rows outside the training range",
        "Sampled estimates with wide intervals (kernel)",
    ]
    corr_block, range_block, wide_block = section["blocks"]
    assert "off the data manifold" in corr_block["text"] and "split" in corr_block["text"]
    assert next(r[:2] for r in corr_block["rows"]) == ["a", "a_copy"]
    assert range_block["rows"] == [["a", f"{X['a'].min():.4g} to {X['a'].max():.4g}", "2", "99"]]
    assert len(wide_block["rows"]) == 6 and "budget 64" in wide_block["text"]
    html = wb.report(exp, X=X, X_train=X).to_html()
    block = re.search(r'<section id="limitations">(.*?)</section>', html, re.S).group(1)
    assert block.count("<h3>") == 3 and "a_copy" in block
