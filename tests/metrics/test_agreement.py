"""Agreement metrics of Krishna et al. (2022): a hand-worked case and scipy's rank
correlations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

import whybox as wb
from whybox import metrics
from whybox.errors import InvalidInputError, InvalidParameterError


def test_hand_worked_case():
    a = np.array([[3.0, -2.0, 1.0, 0.5, 0.0]])
    b = np.array([[-3.0, 1.0, 2.0, 0.1, 0.4]])
    t = metrics.agreement(a, b, k=2).iloc[0]
    # top-2 by magnitude: a -> [0, 1], b -> [0, 2]
    assert t["feature_agreement"] == 0.5  # feature 0 in both
    assert t["rank_agreement"] == 0.5  # position 1 holds feature 0 in both
    assert t["sign_agreement"] == 0.0  # feature 0 has opposite signs
    assert t["signed_rank_agreement"] == 0.0
    # 10 pairs of |values|; (1, 2) and (3, 4) are ordered differently
    assert t["pairwise_rank_agreement"] == 0.8
    assert t["spearman"] == pytest.approx(spearmanr(np.abs(a[0]), np.abs(b[0]))[0])
    assert t["kendall"] == pytest.approx(kendalltau(np.abs(a[0]), np.abs(b[0]))[0])


def test_rank_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(25, 7)), 1)  # ties
    b = np.round(a + rng.normal(size=(25, 7)), 1)
    t = metrics.agreement(a, b, k=3)
    for i in range(25):
        assert t["spearman"].iloc[i] == pytest.approx(
            spearmanr(np.abs(a[i]), np.abs(b[i]))[0], abs=1e-12
        )
        assert t["kendall"].iloc[i] == pytest.approx(
            kendalltau(np.abs(a[i]), np.abs(b[i]))[0], abs=1e-12
        )


def test_identical_and_aligned_by_name(linear_case):
    model, rows, bg, exp, rnd = linear_case
    same = metrics.agreement(exp, exp, k=3)
    np.testing.assert_allclose(same.to_numpy(), 1.0)
    assert list(same.index) == list(rows.index)
    shuffled = wb.Explanation(
        exp.values[:, ::-1], exp.base_values, feature_names=exp.feature_names[::-1]
    )
    np.testing.assert_allclose(metrics.agreement(exp, shuffled, k=3).to_numpy(), 1.0)
    # exact Shapley agrees with a sampled estimate far more than with random values
    kernel = wb.KernelShap(model, background=bg, random_state=0).explain(rows, budget=64)
    near = metrics.agreement(exp, kernel, k=3).mean()
    far = metrics.agreement(exp, rnd, k=3).mean()
    assert (near > far + 0.2).all()


def test_errors(linear_case):
    _, _, _, exp, _ = linear_case
    with pytest.raises(InvalidParameterError, match="k must be at most 6"):
        metrics.agreement(exp, exp, k=7)
    with pytest.raises(InvalidInputError, match=r"shapes \(30, 6\) and \(29, 6\)"):
        metrics.agreement(exp, exp.values[1:])
    other = wb.Explanation(exp.values, exp.base_values, feature_names=list("abcdez"))
    with pytest.raises(InvalidInputError, match=r"only in exp_a: \['f'\]; only in exp_b: \['z'\]"):
        metrics.agreement(exp, other)
    with pytest.raises(InvalidInputError, match="exp_b must be an Explanation or a numeric array"):
        metrics.agreement(exp, "shap")
