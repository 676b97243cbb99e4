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
    Shapley value, and the matrix to ``prediction - base value``.

    Notes
    -----
    ``.explain(X, budget=None, target=None, link=None)``.

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
        are exact when ``2**n <= budget``. ``target``, ``link`` and ``progress`` are as
        :meth:`whybox.agnostic._base.TabularGameExplainer.explain`.
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
