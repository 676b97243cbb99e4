"""Banzhaf-value explainer of any model (estimators in :mod:`whybox.games.banzhaf`).

References
----------
Banzhaf, J. F. (1965). Weighted voting doesn't work: a mathematical analysis. Rutgers Law
Review 19.

Wang, J. T. and Jia, R. (2023). Data Banzhaf: a robust data valuation framework for machine
learning. AISTATS.

Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explainer import ProgressFn
from ..explanation import Explanation
from ..games._regression_adjusted import adjusted_banzhaf, check_surrogate
from ..games.banzhaf import banzhaf_min_budget, exact_banzhaf, msr_banzhaf
from ..games.game import TabularGame
from ..games.shapley import MAX_EXACT_PLAYERS, _check_budget, default_budget
from ._base import TabularGameExplainer

__all__ = ["Banzhaf"]


class Banzhaf(TabularGameExplainer):
    """Interventional Banzhaf values of any model: exact for small games, MSR otherwise.

    The values do not satisfy efficiency, so ``exp.completeness_gap()`` is not zero; it is
    reported as what it is. ``exp.std`` holds standard errors (zero when exact).

    Parameters
    ----------
    model : object
        Any model ``whybox.models.wrap_model`` supports.
    background : DataFrame, array or Masker
        Rows whose values absent features take (required), as for :class:`whybox.ExactShap`.
    surrogate : {"none", "auto", "tree", "linear", "kernel"}
        Regression-adjusted maximum sample reuse (Witter, Liu and Musco 2025): coalitions in
        complementary pairs, a cross-fitted surrogate game (linear, small boosted trees, or
        ``"kernel"``: product-kernel ridge regression) with exact Banzhaf values, sampling
        only the residual game; exactly unbiased. ``"auto"`` keeps, per row, whichever of
        none, linear and tree has the smallest estimated variance (``exp.meta["surrogate"]``);
        ``"none"`` (default) is classic MSR.
    **kwargs
        ``groups``, ``max_background``, ``link``, ``random_state``, ``allow_nan``,
        ``chunk_bytes``, ``n_jobs``, ``backend``, ``client``, ``chunk_size``: as for
        :class:`whybox.ExactShap`.

    Notes
    -----
    ``.explain(X, budget=None, target=None, link=None)``: exact when ``2**n <= budget``.

    Examples
    --------
    For a linear model a feature's Banzhaf value equals its Shapley value,
    ``coef * (x - mean of the background)``:

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg, rows = X.iloc[:50], X.iloc[100:103]
    >>> exp = wb.Banzhaf(model, background=bg).explain(rows)
    >>> bool(np.allclose(exp.values, model.coef_ * (rows - bg.mean()).to_numpy()))
    True

    References
    ----------
    Banzhaf (1965); Wang and Jia (2023), AISTATS; Witter, Liu and Musco (2025),
    arXiv:2506.11849.
    """

    method = "banzhaf"
    efficient = False  # Banzhaf values do not add up to v(N) - v(empty)

    def __init__(
        self, model: Any, background: Any = None, *, surrogate: str = "none", **kwargs: Any
    ):
        super().__init__(model, background, **kwargs)
        self.surrogate = check_surrogate(surrogate)

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
        if self.surrogate == "none":
            beta, std, v0 = msr_banzhaf(game, rng, budget=budget)
            return beta, v0, std, {"exact": False, "surrogate": "none"}
        beta, std, v0, info = adjusted_banzhaf(game, rng, budget=budget, surrogate=self.surrogate)
        return beta, v0, std, {"exact": False, **info}

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "estimator": "Banzhaf values (exact or maximum sample reuse)",
            "budget": kwargs.get("budget"),
            "efficient": False,
            "surrogate": self.surrogate,
        }

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "surrogate": [i.get("surrogate", "exact" if i.get("exact") else None) for i in infos]
        }
