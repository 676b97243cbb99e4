"""Shapley interaction values for pairs of players.

The Shapley interaction index of players ``i != j`` (Grabisch and Roubens 1999) is

    I_ij = sum_{S in N \\ {i, j}} |S|! (n - |S| - 2)! / (n - 1)! * d_ij(S),
    d_ij(S) = v(S + i + j) - v(S + i) - v(S + j) + v(S).

Following SHAP interaction values (Lundberg et al. 2020), the result is an ``(n, n)`` matrix
``Phi`` with ``Phi_ij = I_ij / 2`` off the diagonal and ``Phi_ii = phi_i - sum_{j != i}
Phi_ij`` on it, so that each row adds up to the Shapley value ``phi_i`` and the whole matrix
to ``v(N) - v(empty)``.

Sampled estimate: in a random permutation, the set of players before an adjacent pair
``(i, j)`` is distributed exactly as the weights of ``I_ij`` (merge ``i`` and ``j`` into one
player), so each permutation gives one unbiased draw of ``d`` for each of its ``n - 1``
adjacent pairs at the cost of ``2 (n - 1)`` coalitions; the Shapley values on the diagonal
come from the same permutations' marginal contributions.

References
----------
Grabisch, M. and Roubens, M. (1999). An axiomatic approach to the concept of interaction
among players in cooperative games. International Journal of Game Theory 28.

Lundberg, S. M., Erion, G. et al. (2020). From local explanations to global understanding
with explainable AI for trees. Nature Machine Intelligence 2.
"""

from __future__ import annotations

from math import factorial
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from .game import Game, as_value_matrix
from .shapley import (
    MAX_EXACT_PLAYERS,
    _check_budget,
    all_coalitions,
    default_budget,
    exact_shapley,
)

__all__ = [
    "exact_interactions",
    "interaction_matrix",
    "sampled_interactions",
]


def interaction_matrix(phi: np.ndarray, index: np.ndarray) -> np.ndarray:
    """SHAP interaction matrix from Shapley values (n, k) and interaction indices (n, n, k)."""
    Phi = index / 2.0
    n = phi.shape[0]
    Phi[np.arange(n), np.arange(n)] = 0.0
    Phi[np.arange(n), np.arange(n)] = phi - Phi.sum(axis=1)
    return Phi


def exact_interactions(game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Exact SHAP interaction values from all ``2**n`` coalitions.

    Returns
    -------
    Phi : ndarray (n_players, n_players, k)
    v_empty : ndarray (k,)
    """
    n = int(game.n_players)
    if n > MAX_EXACT_PLAYERS:
        raise InvalidParameterError(
            f"exact interaction values need all 2**{n} coalitions; refusing above "
            f"{MAX_EXACT_PLAYERS} players. Use a budget below 2**n to sample them."
        )
    phi, v0, _ = exact_shapley(game)
    C = all_coalitions(n)
    v = as_value_matrix(game.value(C), len(C))  # cached: no new model calls
    idx = np.arange(2**n, dtype=np.int64)
    sizes = C.sum(axis=1)
    if n >= 2:
        w = np.array([factorial(s) * factorial(n - s - 2) / factorial(n - 1) for s in range(n - 1)])
    index = np.zeros((n, n, v.shape[1]))
    for i in range(n):
        bi = np.int64(1) << i
        for j in range(i + 1, n):
            bj = np.int64(1) << j
            S = idx[(idx & (bi | bj)) == 0]
            d = v[S | bi | bj] - v[S | bi] - v[S | bj] + v[S]
            index[i, j] = index[j, i] = w[sizes[S]] @ d
    return interaction_matrix(phi, index), v0


def sampled_interactions(
    game: Game, rng: np.random.Generator, *, budget: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """SHAP interaction values from random permutations (adjacent pairs), with standard errors.

    Returns
    -------
    Phi : ndarray (n, n, k)
    std : ndarray (n, n, k)
        Standard errors; NaN for a pair drawn fewer than twice (its value is then 0 or a
        single draw).
    v_empty : ndarray (k,)
    info : dict
        ``permutations`` used and ``min_pair_draws``.
    """
    n = int(game.n_players)
    budget = default_budget(n) if budget is None else budget
    minimum = 2 + 2 * (n - 1) * 2
    budget = _check_budget(budget, minimum, n, "sampled interaction values")
    P = max(2, (budget - 2) // (2 * (n - 1)))
    ends = np.zeros((2, n), dtype=bool)
    ends[1] = True
    v_ends = as_value_matrix(game.value(ends), 2)
    v0, vN = v_ends[0], v_ends[1]
    k = v0.shape[0]
    order = np.argsort(rng.random((P, n)), axis=1)  # order[p, t]: player at position t
    ranks = np.argsort(order, axis=1)
    sizes = np.arange(1, n)
    prefixes = ranks[:, None, :] < sizes[None, :, None]  # (P, n-1, n), prefix of size t
    # the players before position t, plus the player at position t + 1
    swap = ranks[:, None, :] < np.arange(n - 1)[None, :, None]  # (P, n-1, n)
    swap[np.arange(P)[:, None], np.arange(n - 1)[None, :], order[:, 1:]] = True
    values = as_value_matrix(
        game.value(np.concatenate([prefixes, swap]).reshape(-1, n)), 2 * P * (n - 1)
    ).reshape(2, P, n - 1, k)
    chain = np.concatenate(
        [np.broadcast_to(v0, (P, 1, k)), values[0], np.broadcast_to(vN, (P, 1, k))], axis=1
    )  # chain[:, t] = v(first t players)
    contrib = np.take_along_axis(np.diff(chain, axis=1), ranks[:, :, None], axis=1)
    phi = contrib.mean(axis=0)
    # adjacent pair at positions (t, t+1): d = v(P_{t+2}) - v(P_t + j) - v(P_{t+1}) + v(P_t)
    d = chain[:, 2:] - values[1] - chain[:, 1:-1] + chain[:, :-2]  # (P, n-1, k)
    sums = np.zeros((n, n, k))
    sq = np.zeros((n, n, k))
    counts = np.zeros((n, n))
    a, b = order[:, :-1].ravel(), order[:, 1:].ravel()
    dd = d.reshape(-1, k)
    for arr, x, y in ((sums, a, b), (sums, b, a)):
        np.add.at(arr, (x, y), dd)
    np.add.at(sq, (a, b), dd**2)
    np.add.at(sq, (b, a), dd**2)
    np.add.at(counts, (a, b), 1)
    np.add.at(counts, (b, a), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts[:, :, None] > 0, sums / np.maximum(counts, 1)[:, :, None], 0.0)
        var = (sq - counts[:, :, None] * mean**2) / (counts[:, :, None] - 1)
        se_index = np.where(
            counts[:, :, None] >= 2, np.sqrt(np.maximum(var, 0) / counts[:, :, None]), np.nan
        )
    Phi = interaction_matrix(phi, mean)
    std = se_index / 2.0
    phi_se = contrib.std(axis=0, ddof=1) / np.sqrt(P)
    off = ~np.eye(n, dtype=bool)
    diag_var = phi_se**2 + np.nansum(np.where(off[:, :, None], std**2, 0.0), axis=1)
    std[np.arange(n), np.arange(n)] = np.sqrt(diag_var)
    offdiag_counts = counts[off]
    return (
        Phi,
        std,
        v0,
        {
            "permutations": int(P),
            "min_pair_draws": int(offdiag_counts.min()) if n > 1 else 0,
        },
    )
