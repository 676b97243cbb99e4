"""Shapley interaction explainer of any model (estimators in :mod:`whybox.games.interactions`).

References
----------
Grabisch, M. and Roubens, M. (1999). An axiomatic approach to the concept of interaction
among players in cooperative games. International Journal of Game Theory 28.

Lundberg, S. M., Erion, G. et al. (2020). From local explanations to global understanding
with explainable AI for trees. Nature Machine Intelligence 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explainer import ProgressFn
from ..explanation import Explanation
from ..games.game import TabularGame
from ..games.interactions import exact_interactions, sampled_interactions
from ..games.shapley import MAX_EXACT_PLAYERS, default_budget
from ._base import TabularGameExplainer

__all__ = ["ShapleyInteractions"]


class ShapleyInteractions(TabularGameExplainer):
    """SHAP interaction values of any model: values of shape (n_rows, p, p[, k]).

    Exact from all coalitions when ``2**n`` fits the budget (and n <= 20), else sampled
    from permutations with standard errors. Each row of the matrix adds up to the feature's
    Shapley value, and the matrix to ``prediction - base value``; the pairwise interaction
    is split equally between ``values[:, i, j]`` and ``values[:, j, i]``.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` supports.
    background : DataFrame, array of shape (n_bg, p), Independent or Baseline
        Rows that stand for the data: absent features take their values (or
        ``wb.Baseline(value)`` for a fixed reference, ``wb.kmeans(X_train, k)`` for a
        weighted summary). Required.
    groups : mapping of str to list of str, optional
        Feature groups explained as single players, e.g. ``{"address": ["zip", "city"]}``.
    max_background : int, optional
        Background rows to keep; default None keeps every row. A smaller number draws a
        sample with ``random_state`` and warns with its effect on the base value.
    link : {"identity", "logit"}, default "identity"
        Default output scale; ``.explain(link=...)`` overrides it.
    random_state : int or None, default 0
        Seed of every random choice (background sample and permutations).
    allow_nan : bool, default False
        Accept NaN in X and background, for models that handle missing values themselves.
    chunk_bytes : int, default 268435456
        Memory bound of one batch of model inputs (256 MB).
    n_jobs : int or None, default None
        Worker processes for ``backend="processes"`` (-1 or None: all cores); an ``n_jobs``
        above 1 alone selects the process backend.
    backend : {"serial", "processes", "dask"}, default "serial"
        Where rows are explained; results are bit-identical whichever is used.
    client : dask.distributed.Client, optional
        Cluster for ``backend="dask"``; a client alone selects the Dask backend.
    chunk_size : int, optional
        Rows per task sent to a worker (default: an even split over the workers).

    Raises
    ------
    InvalidParameterError
        For an unknown keyword, ``link``, ``backend`` or ``target``.
    InvalidInputError
        Without a background, or when X and the background disagree (columns, NaN).

    Notes
    -----
    ``.explain(X, budget=None, target=None, link=None)`` returns values of shape (n, p, p)
    for one output and (n, p, p, k) for ``k``; ``budget`` is the number of coalitions per
    row (default ``2 p + 2048``).

    Examples
    --------
    ``f = x0 x1 + x2`` explained at (1, 1, 1) against (0, 0, 0): the product's credit is
    split between ``(0, 1)`` and ``(1, 0)``, and ``x2``'s main effect is on the diagonal.

    >>> f = lambda X: X[:, 0] * X[:, 1] + X[:, 2]
    >>> exp = wb.ShapleyInteractions(f, np.zeros((1, 3))).explain(np.ones((1, 3)))
    >>> exp.values.shape
    (1, 3, 3)
    >>> exp.values[0].round(3).tolist()
    [[0.0, 0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 1.0]]
    >>> float(exp.values.sum()), float(exp.predictions[0] - exp.base_values[0])
    (2.0, 2.0)

    References
    ----------
    Grabisch and Roubens (1999); Lundberg et al. (2020), Nature Machine Intelligence.
    """

    method = "interactions"
    precision_parameter = "budget="

    def explain(
        self,
        X: Any,
        *,
        budget: int | None = None,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """SHAP interaction values of each row of ``X``: values (n, p, p[, k]).

        ``budget`` is the number of coalitions per row (default ``2 n + 2048``); the values
        are exact when ``2**n <= budget``. ``target`` selects the output(s) (see
        :func:`whybox.wrap_model`), ``link`` overrides the constructor's, ``progress`` is
        called as ``progress(done, total)`` as rows are explained.
        """
        self._check_keywords(kwargs)
        return self._run(X, target=target, link=link, progress=progress, options={"budget": budget})

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        n = game.n_players
        budget = kwargs.get("budget") or default_budget(n)
        if n <= MAX_EXACT_PLAYERS and 2**n <= budget:
            Phi, v0 = exact_interactions(game)
            return Phi, v0, np.zeros_like(Phi), {"exact": True}
        Phi, std, v0, info = sampled_interactions(game, rng, budget=budget)
        return Phi, v0, std, {"exact": False, **info}

    def _reorder(self, values: np.ndarray, order: list[int] | None) -> np.ndarray:
        return values if order is None else values[:, order][:, :, order]

    def _value_names(self, players: list[str]) -> list[str]:
        return [f"{a} × {b}" for a in players for b in players]

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {"estimator": "Shapley interaction index (pairs)", "budget": kwargs.get("budget")}
