"""Banzhaf values: the average marginal contribution over all coalitions, equally weighted.

    beta_j = 2^-(n-1) sum_{S not containing j} (v(S + j) - v(S))

Unlike Shapley values they do not add up to ``v(N) - v(empty)``; they are more robust to
noise in the game (Wang and Jia 2023). Computed exactly from all ``2**n`` coalitions when the
budget covers them, else by maximum sample reuse (MSR): coalitions drawn uniformly (each player
in with probability 1/2) and ``beta_j`` estimated as the mean worth of sampled coalitions with
``j`` minus the mean worth of those without, every sample serving every player.

References
----------
Banzhaf, J. F. (1965). Weighted voting doesn't work: a mathematical analysis. Rutgers Law
Review 19.

Wang, J. T. and Jia, R. (2023). Data Banzhaf: a robust data valuation framework for machine
learning. AISTATS.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from .game import Game, as_value_matrix
from .shapley import MAX_EXACT_PLAYERS, _check_budget, all_coalitions, default_budget

__all__ = ["banzhaf_min_budget", "exact_banzhaf", "msr_banzhaf"]


def banzhaf_min_budget(n_players: int) -> int:
    """Fewest coalitions MSR accepts: four per player (so each side has samples)."""
    return max(8, 4 * int(n_players))


def exact_banzhaf(game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Exact Banzhaf values from all ``2**n`` coalitions.

    Returns
    -------
    beta : ndarray (n_players, k)
    v_empty : ndarray (k,)
    """
    n = int(game.n_players)
    if n > MAX_EXACT_PLAYERS:
        raise InvalidParameterError(
            f"exact Banzhaf values need all 2**{n} coalitions; refusing above "
            f"{MAX_EXACT_PLAYERS} players."
        )
    C = all_coalitions(n)
    v = as_value_matrix(game.value(C), len(C))
    # beta_j = mean over coalitions with j - mean over coalitions without j
    with_j = C.astype(float) / 2 ** (n - 1)
    beta = with_j.T @ v - (1.0 - C.astype(float)).T @ v / 2 ** (n - 1)
    return beta, v[0].copy()


def msr_banzhaf(
    game: Game, rng: np.random.Generator, *, budget: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Banzhaf values by maximum sample reuse, with standard errors.

    Returns
    -------
    beta : ndarray (n_players, k)
    std : ndarray (n_players, k)
    v_empty : ndarray (k,)
    """
    n = int(game.n_players)
    budget = default_budget(n) if budget is None else budget
    budget = _check_budget(budget, banzhaf_min_budget(n), n, "Banzhaf (MSR)")
    v0 = as_value_matrix(game.value(np.zeros((1, n), dtype=bool)), 1)[0]
    C = rng.random((budget - 1, n)) < 0.5
    v = as_value_matrix(game.value(C), len(C))
    beta = np.empty((n, v.shape[1]))
    std = np.empty_like(beta)
    for j in range(n):
        a, b = v[C[:, j]], v[~C[:, j]]
        if len(a) < 2 or len(b) < 2:
            raise InvalidParameterError(
                f"the sample has fewer than two coalitions with or without player {j}; "
                "increase the budget."
            )
        beta[j] = a.mean(axis=0) - b.mean(axis=0)
        std[j] = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    return beta, std, v0
