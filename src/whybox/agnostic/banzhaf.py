"""Banzhaf-value explainer of any model (estimators in :mod:`whybox.games.banzhaf`).

References
----------
Banzhaf, J. F. (1965). Weighted voting doesn't work: a mathematical analysis. Rutgers Law
Review 19.

Wang, J. T. and Jia, R. (2023). Data Banzhaf: a robust data valuation framework for machine
learning. AISTATS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explainer import ProgressFn
from ..explanation import Explanation
from ..games.banzhaf import banzhaf_min_budget, exact_banzhaf, msr_banzhaf
from ..games.game import TabularGame
from ..games.shapley import MAX_EXACT_PLAYERS, _check_budget, default_budget
from ._base import TabularGameExplainer

__all__ = ["Banzhaf"]


class Banzhaf(TabularGameExplainer):
    """Interventional Banzhaf values of any model: exact for small games, MSR otherwise.

    The values do not satisfy efficiency, so ``exp.completeness_gap()`` is not zero; it is
    reported as what it is. ``exp.std`` holds standard errors (zero when exact).

    Notes
    -----
    ``.explain(X, budget=None, target=None, link=None)``: exact when ``2**n <= budget``.

    References
    ----------
    Banzhaf (1965); Wang and Jia (2023), AISTATS.
    """

    method = "banzhaf"
    efficient = False  # Banzhaf values do not add up to v(N) - v(empty)

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
        """Banzhaf values of each row of ``X`` (or image, with an ImageMasker).

        ``budget`` is the number of coalitions per row (default ``2 n + 2048``); the values
        are exact when ``2**n <= budget``. ``target``, ``link`` and ``progress`` are as
        :meth:`whybox.agnostic._base.TabularGameExplainer.explain`.
        """
        self._check_keywords(kwargs)
        return self._run(X, target=target, link=link, progress=progress, options={"budget": budget})

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        budget = kwargs.get("budget")
        if budget is not None and budget < 2**n_players:
            _check_budget(budget, banzhaf_min_budget(n_players), n_players, "Banzhaf (MSR)")

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        n = game.n_players
        budget = kwargs.get("budget") or default_budget(n)
        if n <= MAX_EXACT_PLAYERS and 2**n <= budget:
            beta, v0 = exact_banzhaf(game)
            return beta, v0, np.zeros_like(beta), {"exact": True}
        beta, std, v0 = msr_banzhaf(game, rng, budget=budget)
        return beta, v0, std, {"exact": False}

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "estimator": "Banzhaf values (exact or maximum sample reuse)",
            "budget": kwargs.get("budget"),
            "efficient": False,
        }
