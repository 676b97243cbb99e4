"""KernelSHAP explainer of any model (the estimator is :func:`whybox.games.kernel.kernel_shapley`).

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Covert, I. and Lee, S.-I. (2021). Improving KernelSHAP: practical Shapley value estimation
using linear regression. AISTATS.

Musco, C. and Witter, R. T. (2024). Provably accurate Shapley value estimation via leverage
score sampling. arXiv:2410.01917.
"""

from __future__ import annotations

from ..games.kernel import kernel_min_budget, kernel_shapley
from .shapley import SamplingShapExplainer

__all__ = ["KernelShap"]


class KernelShap(SamplingShapExplainer):
    """Interventional Shapley values by KernelSHAP with standard errors.

    Paired coalitions, exact enumeration of the extreme coalition sizes, leverage-score
    sampling of the rest and an exact efficiency constraint (see the module docstring).
    ``exp.std`` holds standard errors; ``.explain(X, tolerance=...)`` stops early.

    Parameters
    ----------
    model, background, groups, max_background, link, random_state, allow_nan, chunk_bytes,
    n_jobs, backend, client, chunk_size
        See :class:`whybox.agnostic._base.TabularGameExplainer`. ``background`` is required.

    Notes
    -----
    ``.explain(X, budget=None, tolerance=None, target=None, link=None)``: ``budget`` is the
    number of coalitions per row (default ``2 n + 2048``, at least ``2 n + 2``).

    References
    ----------
    Lundberg and Lee (2017); Covert and Lee (2021); Musco and Witter (2024).
    """

    method = "kernel"
    estimator = staticmethod(kernel_shapley)
    min_budget = staticmethod(kernel_min_budget)
    description = "KernelSHAP (paired, leverage-stratified, control variate, exact efficiency)"
