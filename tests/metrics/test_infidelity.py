"""Infidelity (Yeh et al. 2019): against Quantus (baseline patches), Captum (Gaussian noise,
optimal scaling, multiply_by_inputs) with the same perturbations, and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.oracles import import_without_torchvision
from whybox import metrics
from whybox.errors import InvalidInputError, InvalidParameterError


def test_matches_quantus_infidelity(torch_case):
    quantus = import_without_torchvision("quantus")
    model, X, A = torch_case
    n, p = X.shape
    ref = quantus.Infidelity(
        perturb_baseline=0.0, perturb_patch_sizes=[1], n_perturb_samples=1, disable_warnings=True
    )(
        model=model,
        x_batch=X.reshape(n, 1, 1, p),
        y_batch=np.ones(n, dtype=int),
        a_batch=A.reshape(n, 1, 1, p),
        device="cpu",
        channel_first=True,
    )
    # Quantus blacks out 1x1 patches one after another without restoring them: perturbation
    # b is x on features 0..b and 0 elsewhere; its attributions are used as they are
    cumulative = np.tril(np.ones((p, p)))  # (block, feature)
    pert = X.astype(float)[:, None, :] * cumulative[None]
    ours = metrics.infidelity(A, model, X, perturbation=pert, target=1, multiply_by_inputs=False)
    np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("normalize", [False, True])
def test_matches_captum_infidelity(torch_case, normalize):
    torch = pytest.importorskip("torch")
    from captum.metrics import infidelity, infidelity_perturb_func_decorator

    model, X, A = torch_case
    n, p = X.shape
    S = 12
    noise = (0.3 * np.random.default_rng(5).normal(size=(n, S, p))).astype(np.float32)
    baseline = np.full(p, 0.25, dtype=np.float32)

    @infidelity_perturb_func_decorator(True)
    def perturb(inputs, baselines):
        return inputs - torch.as_tensor(noise.reshape(n * S, p))

    ref = infidelity(
        model,
        perturb,
        torch.as_tensor(X),
        torch.as_tensor(A, dtype=torch.float32),
        baselines=torch.as_tensor(baseline[None]),
        target=1,
        n_perturb_samples=S,
        normalize=normalize,
    ).numpy()
    ours = metrics.infidelity(
        A.astype(np.float32).astype(float),
        model,
        X,
        perturbation=noise.astype(float),
        target=1,
        multiply_by_inputs=True,
        background=baseline[None].astype(float),
        optimal_scaling=normalize,
    )
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6)


def test_closed_form_linear_model(linear_case):
    model, rows, bg, exp, rnd = linear_case
    # exact Shapley values of a linear model predict every perturbation's effect exactly
    for perturbation in ("gaussian", "subset"):
        got = metrics.infidelity(exp, model, rows, background=bg, perturbation=perturbation)
        np.testing.assert_allclose(got, 0.0, atol=1e-20)
    # a hand computation for the random explanation with the raw perturbation
    pert = 0.1 * np.random.default_rng(2).normal(size=(30, 8, 6))
    got = metrics.infidelity(rnd, model, rows, perturbation=pert, multiply_by_inputs=False)
    expect = ((np.einsum("nsp,np->ns", pert, rnd.values) - pert @ model.coef_) ** 2).mean(1)
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    # optimal scaling by hand: beta = E[d y] / E[d^2]
    d = np.einsum("nsp,np->ns", pert, rnd.values)
    y = pert @ model.coef_
    beta = (d * y).mean(1) / (d * d).mean(1)
    scaled = metrics.infidelity(
        rnd, model, rows, perturbation=pert, multiply_by_inputs=False, optimal_scaling=True
    )
    np.testing.assert_allclose(scaled, ((beta[:, None] * d - y) ** 2).mean(1), rtol=1e-10)
    assert np.all(scaled <= got + 1e-15)


def test_exact_shapley_beats_random(linear_case):
    model, rows, bg, exp, rnd = linear_case
    for kw in ({}, {"scale": "std", "noise": 0.5}, {"perturbation": "subset"}):
        good = metrics.infidelity(exp, model, rows, background=bg, random_state=0, **kw)
        bad = metrics.infidelity(rnd, model, rows, background=bg, random_state=0, **kw)
        assert good.mean() < 1e-3 * bad.mean()


def test_seeded_and_batch_independent(linear_case):
    model, rows, bg, _, rnd = linear_case
    a = metrics.infidelity(rnd, model, rows, background=bg, random_state=1)
    part = metrics.infidelity(rnd[3:6], model, rows.iloc[3:6], background=bg, random_state=1)
    # the same draws; the model's BLAS may round a batch of another size in the last bit
    np.testing.assert_allclose(a[3:6], part, rtol=1e-13)
    assert not np.allclose(a, metrics.infidelity(rnd, model, rows, background=bg, random_state=2))


def test_errors(linear_case, credit_frame):
    model, rows, _, exp, _ = linear_case
    with pytest.raises(InvalidParameterError, match="perturbation='uniform' is not supported"):
        metrics.infidelity(exp, model, rows, perturbation="uniform")
    with pytest.raises(InvalidParameterError, match=r"shape \(30, n_samples, 6\)"):
        metrics.infidelity(exp, model, rows, perturbation=np.zeros((30, 6)))
    with pytest.raises(InvalidParameterError, match="noise must be a positive number"):
        metrics.infidelity(exp, model, rows, noise=0.0)
    with pytest.raises(InvalidParameterError, match="scale='iqr' is not supported"):
        metrics.infidelity(exp, model, rows, scale="iqr")
    df, _ = credit_frame
    text = df[["region", "job"]].iloc[:5]
    with pytest.raises(
        InvalidInputError, match="adds noise to the numeric features, and X has none"
    ):
        metrics.infidelity(np.zeros((5, 2)), lambda Z: np.zeros(len(Z)), text)
    with pytest.raises(InvalidParameterError, match=r"non-zero on non-numeric features \['region'"):
        metrics.infidelity(
            np.zeros((5, 4)),
            lambda Z: np.zeros(len(Z)),
            df.iloc[:5],
            perturbation=np.ones((5, 2, 4)),
        )
    with pytest.raises(InvalidInputError, match="background lacks X's columns"):
        metrics.infidelity(exp, model, rows, background=pd.DataFrame({"a": [0.0]}))


def test_wrong_convention_fails_the_closed_form(linear_case):
    """Shapley values compared with raw perturbations (the convention for gradients) are far
    from 0: the closed-form check above depends on the multiply_by_inputs convention."""
    model, rows, bg, exp, _ = linear_case
    raw = metrics.infidelity(exp, model, rows, background=bg, multiply_by_inputs=False)
    assert raw.mean() > 1e-3


def test_mixed_frame_perturbs_numeric_columns_only(credit_frame):
    df, _ = credit_frame
    rows = df.iloc[:6]
    seen = []

    def model(Z):
        seen.append(Z)
        return Z["income"].to_numpy() * 2.0 + (Z["job"] == "nurse").to_numpy()

    vals = np.column_stack([2.0 * rows["income"] - 100.0, np.zeros((6, 3))])
    pert = np.zeros((6, 3, 4))
    pert[:, :, 0] = np.random.default_rng(0).normal(size=(6, 3))
    pert[:, :, 1] = 1.0  # age: not used by the model
    got = metrics.infidelity(vals, model, rows, perturbation=pert, multiply_by_inputs=False)
    # by hand: the model's change is 2 * I_income; the attributions predict I . a
    expect = ((np.einsum("nsp,np->ns", pert, vals) - 2.0 * pert[:, :, 0]) ** 2).mean(1)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    perturbed = seen[-1]
    assert perturbed.shape == (18, 4)
    pd.testing.assert_series_equal(
        perturbed["region"], rows["region"].iloc[np.repeat(np.arange(6), 3)].reset_index(drop=True)
    )
    assert (perturbed["job"].to_numpy() == np.repeat(rows["job"].to_numpy(), 3)).all()
    # Gaussian noise on a mixed frame runs and leaves the categories alone
    noisy = metrics.infidelity(vals, model, rows, noise=1.0, n_samples=4)
    assert noisy.shape == (6,) and np.all(np.isfinite(noisy))
    assert (seen[-1]["region"].cat.categories == rows["region"].cat.categories).all()
