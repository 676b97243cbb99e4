"""Shapley values of cooperative games.

This module holds the exact estimator: Shapley values from the worth of all ``2**n``
coalitions, and :class:`ExactShap`, which applies it to each row of a tabular model through
:class:`~whybox.games.game.TabularGame` (interventional Shapley values).

For player ``j`` of a game ``v`` on ``n`` players

    phi_j = sum_{S not containing j} |S|! (n - |S| - 1)! / n! * (v(S + j) - v(S)),

and efficiency ``sum_j phi_j = v(N) - v(empty)`` holds up to rounding.

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from ..explainer import TabularGameExplainer
from .game import Game, TabularGame, as_value_matrix

__all__ = ["MAX_EXACT_PLAYERS", "ExactShap", "all_coalitions", "exact_shapley"]

#: ExactShap refuses games with more players than this (2**20 coalitions per row).
MAX_EXACT_PLAYERS = 20


def all_coalitions(n: int) -> np.ndarray:
    """Every coalition of ``n`` players, row ``s`` being the bits of the integer ``s``.

    Returns
    -------
    ndarray of bool, shape (2**n, n)
    """
    idx = np.arange(2**n, dtype=np.int64)
    return ((idx[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(bool)


def exact_shapley(game: Game) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Shapley values by enumerating every coalition.

    Parameters
    ----------
    game : Game
        A game with ``n_players <= MAX_EXACT_PLAYERS``.

    Returns
    -------
    phi : ndarray of shape (n_players, k)
        Shapley value of each player for each output.
    v_empty : ndarray of shape (k,)
        Worth of the empty coalition (the base value).
    v_full : ndarray of shape (k,)
        Worth of the grand coalition.
    """
    n = int(game.n_players)
    if n > MAX_EXACT_PLAYERS:
        raise InvalidParameterError(
            f"exact Shapley values need all 2**{n} coalitions; refusing above "
            f"{MAX_EXACT_PLAYERS} players."
        )
    coalitions = all_coalitions(n)
    v = as_value_matrix(game.value(coalitions), coalitions.shape[0])
    idx = np.arange(2**n, dtype=np.int64)
    sizes = coalitions.sum(axis=1)
    # weight of a coalition S (not containing j) of size s: 1 / (n * C(n-1, s))
    weight_of_size = np.array([1.0 / (n * comb(n - 1, s)) for s in range(n)])
    phi = np.empty((n, v.shape[1]))
    for j in range(n):
        bit = np.int64(1) << j
        without = idx[(idx & bit) == 0]
        w = weight_of_size[sizes[without]]
        phi[j] = w @ (v[without | bit] - v[without])
    return phi, v[0].copy(), v[-1].copy()


class ExactShap(TabularGameExplainer):
    """Interventional Shapley values of any model, exactly, for up to ~16 features.

    Every coalition of features (or feature groups) is evaluated against the background,
    all coalitions of a row going to the model in as few calls as the memory bound allows.
    Efficiency holds to rounding: ``exp.completeness_gap()`` is ~1e-15.

    Parameters
    ----------
    model, background, groups, max_background, link, random_state, allow_nan, chunk_bytes
        See :class:`whybox.explainer.TabularGameExplainer`.

    Examples
    --------
    >>> exp = ExactShap(model, background=X_train).explain(X_test[:10])  # doctest: +SKIP
    >>> exp.completeness_gap()  # doctest: +SKIP

    References
    ----------
    Shapley (1953); Lundberg and Lee (2017), NeurIPS.
    """

    method = "exact"

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        check_int("number of players", n_players, minimum=1)
        if n_players > MAX_EXACT_PLAYERS:
            raise InvalidParameterError(
                f"ExactShap enumerates all 2**n coalitions and refuses more than "
                f"{MAX_EXACT_PLAYERS} players; this problem has {n_players}. Use KernelShap or "
                "PermutationShap (sampling estimators with standard errors), or pass groups= to "
                "explain groups of features as single players."
            )

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        phi, v_empty, _ = exact_shapley(game)
        return phi, v_empty, None, {}

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {"estimator": "exact enumeration of all coalitions"}
