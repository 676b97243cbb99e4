"""Adverse-action reason codes from hand-built explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.recourse.reasons import default_phrase, reason_codes


@pytest.fixture
def exp():
    data = pd.DataFrame(
        {
            "income": [30000.0, 90000.0],
            "late_payments": [4, 0],
            "debt_to_income": [0.55, 0.1],
            "loan_purpose": pd.Categorical(["car", "home"]),
        },
        index=["alice", "bob"],
    )
    values = np.array([[0.9, 1.2, 0.4, -0.3], [-0.5, -0.2, 0.05, 0.1]])
    return Explanation(values, [-1.0, -1.0], data=data, predictions=[1.2, -1.55])


def test_ranked_by_contribution_toward_denial(exp):
    r = reason_codes(exp, 0, k=3)
    assert r["feature"].tolist() == ["late_payments", "income", "debt_to_income"]
    assert r["rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(r["contribution"], [1.2, 0.9, 0.4])
    assert r["row"].tolist() == ["alice"] * 3
    assert r["reason"][0] == "Late payments (4) increased the risk"


def test_only_adverse_features_are_reasons(exp):
    r = reason_codes(exp, 1, k=4)
    assert r["feature"].tolist() == ["loan_purpose", "debt_to_income"]
    assert r["value"].tolist() == ["home", 0.1]


def test_negative_adverse_direction_for_approval_scores(exp):
    r = reason_codes(exp, 1, k=2, adverse="negative")
    assert r["feature"].tolist() == ["income", "late_payments"]
    np.testing.assert_allclose(r["contribution"], [-0.5, -0.2])


def test_phrases_and_groups(exp):
    r = reason_codes(
        exp,
        0,
        k=2,
        phrases={"Debt burden": "Debt burden too high", "income": "Income ({value}) too low"},
        groups={"Debt burden": ["late_payments", "debt_to_income"]},
    )
    assert r["feature"].tolist() == ["Debt burden", "income"]
    np.testing.assert_allclose(r["contribution"], [1.6, 0.9])
    assert r["reason"].tolist() == ["Debt burden too high", "Income (30,000) too low"]


def test_all_rows_by_default(exp):
    r = reason_codes(exp, k=1)
    assert r["row"].tolist() == ["alice", "bob"]


def test_default_phrase():
    assert default_phrase("months_employed", 7, -0.2) == "Months employed (7) decreased the risk"


def test_bad_arguments(exp):
    with pytest.raises(InvalidParameterError, match="adverse"):
        reason_codes(exp, adverse="up")
    with pytest.raises(InvalidParameterError, match="positive integer"):
        reason_codes(exp, k=0)
    with pytest.raises(InvalidParameterError, match="unknown features"):
        reason_codes(exp, groups={"g": ["nope"]})
    multi = Explanation(np.zeros((1, 2, 2)), np.zeros((1, 2)), output_names=["a", "b"])
    with pytest.raises(InvalidParameterError, match="output="):
        reason_codes(multi)
    assert len(reason_codes(multi, output="b")) == 0
