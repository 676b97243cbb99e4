"""Max-sensitivity against Quantus (the same uniform draws) and closed forms; stability
across seeds against a hand computation with scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import whybox as wb
from tests.oracles import import_without_torchvision
from whybox import metrics
from whybox.errors import InvalidInputError, InvalidParameterError

from .conftest import grad_x_input


def test_max_sensitivity_matches_quantus(torch_case):
    quantus = import_without_torchvision("quantus")
    model, X, _ = torch_case
    n, p = X.shape

    def quantus_explain(model, inputs, targets, **kw):
        return grad_x_input(model, np.asarray(inputs).reshape(len(inputs), -1)).reshape(
            np.shape(inputs)
        )

    np.random.seed(11)  # noqa: NPY002 - Quantus draws from numpy's global generator
    ref = quantus.MaxSensitivity(nr_samples=6, lower_bound=0.2, disable_warnings=True)(
        model=model,
        x_batch=X[:, None, :],
        y_batch=np.ones(n, dtype=int),
        explain_func=quantus_explain,
        device="cpu",
    )
    np.random.seed(11)  # noqa: NPY002
    draws = np.stack([np.random.uniform(-0.2, 0.2, size=(n, p)) for _ in range(6)])  # noqa: NPY002
    ours = metrics.max_sensitivity(
        lambda Z: grad_x_input(model, Z), X.astype(float), perturbations=draws
    )
    np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-5)


def test_max_sensitivity_closed_form_linear(linear_case):
    model, rows, bg, exp, _ = linear_case
    explainer = wb.LinearShap(model, background=bg)
    d = 0.1 * np.random.default_rng(0).uniform(-1, 1, size=(5, 30, 6))
    got = metrics.max_sensitivity(explainer.explain, rows, perturbations=d)
    # phi(x + d) - phi(x) = w * d for a linear model
    change = np.linalg.norm(model.coef_ * d, axis=2).max(axis=0)
    np.testing.assert_allclose(got, change / np.linalg.norm(exp.values, axis=1), rtol=1e-10)
    raw = metrics.max_sensitivity(explainer.explain, rows, perturbations=d, relative=False)
    np.testing.assert_allclose(raw, change, rtol=1e-10)
    # random draws stay in the box: ||w * d|| <= radius * ||w||
    drawn = metrics.max_sensitivity(explainer.explain, rows, radius=0.1, relative=False)
    assert np.all(drawn <= 0.1 * np.linalg.norm(model.coef_) + 1e-12)
    assert np.all(drawn > 0.01 * np.linalg.norm(model.coef_))


def _random_explainer(scale):
    def explain(Z, random_state=0):
        Z = np.asarray(Z, dtype=float)
        rng = np.random.default_rng([random_state, *np.abs(Z[:, 0] * 1e6).astype(np.int64)])
        return rng.normal(size=Z.shape) * scale

    return explain


def test_max_sensitivity_exact_beats_random(linear_case):
    model, rows, bg, exp, _ = linear_case
    good = metrics.max_sensitivity(wb.LinearShap(model, background=bg).explain, rows)
    bad = metrics.max_sensitivity(_random_explainer(exp.values.std()), rows)
    assert good.max() < bad.min()


def test_max_sensitivity_seeded_batch_independent(linear_case):
    model, rows, bg, _, _ = linear_case
    fn = wb.LinearShap(model, background=bg).explain
    a = metrics.max_sensitivity(fn, rows, random_state=3, scale="std")
    part = metrics.max_sensitivity(fn, rows.iloc[4:7], random_state=3, scale=rows.std().to_numpy())
    np.testing.assert_allclose(a[4:7], part, rtol=1e-12)
    assert not np.allclose(a, metrics.max_sensitivity(fn, rows, random_state=4, scale="std"))


def test_stability_hand_computation():
    X = np.arange(12.0).reshape(4, 3)
    runs = {s: np.random.default_rng(s).normal(size=(4, 3)) for s in (0, 1, 2)}
    table = metrics.stability(lambda X, random_state: runs[random_state], X, seeds=(0, 1, 2))
    stack = np.stack([runs[s] for s in (0, 1, 2)])
    np.testing.assert_allclose(table["std"], stack.std(axis=0, ddof=1).mean(axis=1))
    np.testing.assert_allclose(
        table["relative_std"], table["std"] / np.abs(stack).mean(axis=(0, 2))
    )
    for i in range(4):
        pairs = [spearmanr(runs[a][i], runs[b][i])[0] for a, b in ((0, 1), (0, 2), (1, 2))]
        assert table["rank_correlation"].iloc[i] == pytest.approx(np.mean(pairs), abs=1e-12)


def test_stability_ranks_exact_above_random_and_sampled(linear_case):
    model, rows, bg, exp, _ = linear_case
    rows = rows.iloc[:10]
    exact = metrics.stability(
        lambda X, random_state: wb.ExactShap(
            model, background=bg, random_state=random_state
        ).explain(X),
        rows,
        seeds=(0, 1, 2),
    )
    np.testing.assert_allclose(exact["std"], 0.0, atol=1e-12)
    np.testing.assert_allclose(exact["rank_correlation"], 1.0)
    bad = metrics.stability(_random_explainer(exp.values.std()), rows, seeds=(0, 1, 2))
    assert bad["rank_correlation"].mean() < 0.5 and bad["std"].min() > 0.1
    assert list(exact.index) == list(rows.index)


def test_errors(linear_case, credit_frame):
    model, rows, bg, _, _ = linear_case
    fn = wb.LinearShap(model, background=bg).explain
    with pytest.raises(InvalidParameterError, match="radius must be a positive number"):
        metrics.max_sensitivity(fn, rows, radius=-1.0)
    with pytest.raises(InvalidParameterError, match=r"shape \(n_samples, 30, 6\)"):
        metrics.max_sensitivity(fn, rows, perturbations=np.zeros((3, 6)))
    with pytest.raises(InvalidParameterError, match="explain_fn must be a function"):
        metrics.max_sensitivity("shap", rows)
    with pytest.raises(
        InvalidInputError, match="returned attributions for 1 rows but was given 30"
    ):
        metrics.max_sensitivity(lambda Z: np.zeros((1, 6)), rows)
    df, _ = credit_frame
    with pytest.raises(InvalidInputError, match="max_sensitivity adds noise to the inputs"):
        metrics.max_sensitivity(lambda Z: np.zeros((len(Z), 2)), np.array([["a", "b"]] * 3))
    with pytest.raises(InvalidParameterError, match="non-zero on non-numeric features"):
        metrics.max_sensitivity(
            lambda Z: np.zeros((len(Z), 4)), df.iloc[:3], perturbations=np.ones((2, 3, 4))
        )
    # a mixed frame: only the numeric columns move
    seen = []
    metrics.max_sensitivity(lambda Z: seen.append(Z) or np.ones((len(Z), 4)), df.iloc[:3])
    assert (seen[-1]["job"].to_numpy() == df["job"].iloc[:3].to_numpy()).all()
    assert not np.allclose(seen[-1]["income"], df["income"].iloc[:3])
    with pytest.raises(InvalidParameterError, match="at least two seeds"):
        metrics.stability(lambda X, random_state: fn(X), rows, seeds=(0,))
    with pytest.raises(InvalidInputError, match="X is empty"):
        metrics.stability(lambda X, random_state: fn(X), pd.DataFrame(columns=list("abcdef")))
