"""Explanation-quality metrics: whybox vs Quantus on the same case and the same draws.

A float32 MLP (20 inputs, 64 hidden, 2 outputs), 100 rows, random attributions; removed
features are set to 0 in both libraries. Each figure is the best of 3 runs.

* faithfulness correlation: 50 random subsets of 5 features per row (Quantus's own draws,
  reproduced from its seed and passed to whybox);
* infidelity: Quantus's 1x1 baseline patches (20 cumulative perturbations per row), passed to
  whybox as explicit perturbations;
* deletion: Quantus's PixelFlipping (one feature per step) vs ``metrics.deletion``;
* max-sensitivity: 10 uniform draws of radius 0.1, gradient x input as the explanation.

Quantus runs with ``batch_size=100`` (one batch, so that its draws can be reproduced) and
torch with one thread in both libraries. ``max_abs_diff`` is the largest difference of the per-row scores of the two libraries.
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.common import best_of

N, P, RUNS, SIZE = 100, 20, 50, 5


def _case():
    import torch

    torch.set_num_threads(1)  # the same for both libraries; threads only add noise here
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(P, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)
    ).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, P)).astype(np.float32)
    A = rng.normal(size=(N, P))
    return model, X, A


def _grad_x_input(model, X):
    import torch

    x = torch.as_tensor(np.asarray(X, dtype=np.float32)).requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    return (g * x).detach().numpy().astype(float)


def run() -> dict[str, object]:
    import quantus

    import whybox as wb
    from whybox import metrics

    warnings.filterwarnings("ignore")
    model, X, A = _case()
    y = np.ones(N, dtype=int)
    res: dict[str, object] = {}

    # faithfulness correlation
    fc = quantus.FaithfulnessCorrelation(
        nr_runs=RUNS,
        subset_size=SIZE,
        perturb_baseline=0.0,
        abs=False,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
    )

    def q_fc():
        np.random.seed(1)  # noqa: NPY002 - Quantus draws from numpy's global generator
        return np.asarray(
            fc(model=model, x_batch=X[:, None], y_batch=y, a_batch=A[:, None], batch_size=N)
        )

    np.random.seed(1)  # noqa: NPY002
    subsets = np.stack(
        [
            np.stack([np.random.choice(P, SIZE, replace=False) for _ in range(N)])  # noqa: NPY002
            for _ in range(RUNS)
        ]
    ).transpose(1, 0, 2)
    t_q, ref = best_of(q_fc)
    t_w, ours = best_of(
        lambda: metrics.faithfulness_correlation(
            A, model, X, background=wb.Baseline(0.0), target=1, subsets=subsets
        )
    )
    t_ws, _ = best_of(
        lambda: metrics.faithfulness_correlation(
            A, model, X, background=wb.Baseline(0.0), target=1, n_samples=RUNS, subset_size=SIZE
        )
    )
    res.update(
        fc_quantus_s=t_q,
        fc_whybox_s=t_w,
        fc_whybox_own_draws_s=t_ws,
        fc_ratio_vs_quantus=t_w / t_q,
        fc_max_abs_diff=float(np.abs(ours - ref).max()),
    )

    # infidelity
    inf = quantus.Infidelity(
        perturb_baseline=0.0, perturb_patch_sizes=[1], n_perturb_samples=1, disable_warnings=True
    )
    x4, a4 = X.reshape(N, 1, 1, P), A.reshape(N, 1, 1, P)
    t_q, ref = best_of(
        lambda: np.asarray(inf(model=model, x_batch=x4, y_batch=y, a_batch=a4, channel_first=True))
    )
    pert = X.astype(float)[:, None, :] * np.tril(np.ones((P, P)))[None]
    t_w, ours = best_of(
        lambda: metrics.infidelity(
            A, model, X, perturbation=pert, target=1, multiply_by_inputs=False
        )
    )
    res.update(
        infidelity_quantus_s=t_q,
        infidelity_whybox_s=t_w,
        infidelity_ratio_vs_quantus=t_w / t_q,
        infidelity_max_abs_diff=float(np.abs(ours - ref).max()),
    )

    # deletion / pixel flipping
    pf = quantus.PixelFlipping(perturb_baseline=0.0, normalise=False, disable_warnings=True)
    t_q, ref = best_of(
        lambda: np.asarray(
            pf(model=model, x_batch=X[:, None], y_batch=y, a_batch=A[:, None], softmax=False)
        )
    )
    t_w, curve = best_of(
        lambda: metrics.deletion(A, model, X, background=wb.Baseline(0.0), target=1, by="value")
    )
    res.update(
        deletion_quantus_s=t_q,
        deletion_whybox_s=t_w,
        deletion_ratio_vs_quantus=t_w / t_q,
        deletion_max_abs_diff=float(np.abs(curve.values[:, 1:] - ref).max()),
    )

    # max-sensitivity
    ms = quantus.MaxSensitivity(nr_samples=10, lower_bound=0.1, disable_warnings=True)

    def q_explain(model, inputs, targets, **kw):
        x = np.asarray(inputs)
        return _grad_x_input(model, x.reshape(len(x), -1)).reshape(x.shape)

    def q_ms():
        np.random.seed(2)  # noqa: NPY002
        return np.asarray(
            ms(model=model, x_batch=X[:, None], y_batch=y, explain_func=q_explain, batch_size=N)
        )

    np.random.seed(2)  # noqa: NPY002
    draws = np.stack([np.random.uniform(-0.1, 0.1, size=(N, P)) for _ in range(10)])  # noqa: NPY002
    t_q, ref = best_of(q_ms)
    t_w, ours = best_of(
        lambda: metrics.max_sensitivity(
            lambda Z: _grad_x_input(model, Z), X.astype(float), perturbations=draws
        )
    )
    res.update(
        max_sensitivity_quantus_s=t_q,
        max_sensitivity_whybox_s=t_w,
        max_sensitivity_ratio_vs_quantus=t_w / t_q,
        max_sensitivity_max_abs_diff=float(np.abs(ours - ref).max()),
    )
    return res
