"""Shapley values of cooperative games: exact enumeration and antithetic permutation sampling.

* :func:`exact_shapley` / :class:`ExactShap`: Shapley values from the worth of all ``2**n``
  coalitions.
* :func:`permutation_shapley` / :class:`PermutationShap`: the average marginal contribution
  over random permutations, each drawn with its reverse (antithetic pairs), with standard
  errors from the spread over pairs and optional early stopping at a ``tolerance``.
  Every permutation's contributions add up to ``v(N) - v(empty)``, so efficiency holds
  exactly for any number of samples, and a player that never changes the worth gets exactly 0.

KernelSHAP lives in :mod:`whybox.games.kernel`. The explainers apply the estimators to each
row of a tabular model through :class:`~whybox.games.game.TabularGame` (interventional
Shapley values).

For player ``j`` of a game ``v`` on ``n`` players

    phi_j = sum_{S not containing j} |S|! (n - |S| - 1)! / n! * (v(S + j) - v(S)),

and efficiency ``sum_j phi_j = v(N) - v(empty)`` holds up to rounding.

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.

Castro, J., Gomez, D. and Tejada, J. (2009). Polynomial calculation of the Shapley value
based on sampling. Computers & Operations Research 36(5).

Mitchell, R., Cooper, J., Frank, E. and Holmes, G. (2022). Sampling permutations for Shapley
value estimation. JMLR 23(43). (Antithetic permutations.)

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from .game import Game, as_value_matrix

__all__ = [
    "MAX_EXACT_PLAYERS",
    "all_coalitions",
    "default_budget",
    "exact_shapley",
    "permutation_min_budget",
    "permutation_shapley",
]

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
            f"{MAX_EXACT_PLAYERS} players. Merge features into fewer players with groups=, "
            "or sample: wb.KernelShap or wb.PermutationShap."
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


def default_budget(n_players: int) -> int:
    """Coalitions per row used when no budget is given: ``2 n + 2048`` (as shap's default)."""
    return 2 * int(n_players) + 2048


def permutation_min_budget(n_players: int) -> int:
    """Fewest coalitions for two antithetic pairs (the least that gives a standard error)."""
    return 2 + 4 * max(int(n_players) - 1, 0)


def _check_budget(budget: int, minimum: int, n: int, method: str) -> int:
    budget = check_int("budget", budget, minimum=1)
    if budget < minimum:
        raise InvalidParameterError(
            f"budget={budget} is below the minimum of {minimum} coalitions per row that "
            f"{method} needs for {n} players. Pass budget >= {minimum}, or explain groups of "
            "features as single players (groups=) to need fewer."
        )
    return budget


def permutation_shapley(
    game: Game,
    rng: np.random.Generator,
    *,
    budget: int | None = None,
    tolerance: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Shapley values from antithetic permutation sampling.

    Each sample is a random permutation and its reverse; a player's estimate from the pair
    is the mean of its two marginal contributions. The estimate is the mean over pairs and
    its standard error the standard deviation over pairs divided by sqrt(pairs).

    Parameters
    ----------
    game : Game
    rng : numpy Generator
    budget : int, optional
        Coalitions to evaluate (each pair costs ``2 (n - 1)`` beyond the empty and full
        coalitions); default :func:`default_budget`.
    tolerance : float, optional
        Stop once the largest standard error is below this (checked after every batch of
        pairs; the budget stays an upper bound).

    Returns
    -------
    phi : ndarray (n_players, k)
    std : ndarray (n_players, k)
        Standard errors.
    v_empty : ndarray (k,)
    info : dict
        ``pairs`` used and whether the ``tolerance`` was reached.
    """
    n = int(game.n_players)
    budget = default_budget(n) if budget is None else budget
    budget = _check_budget(budget, permutation_min_budget(n), n, "PermutationShap")
    ends = np.zeros((2, n), dtype=bool)
    ends[1] = True
    v_ends = as_value_matrix(game.value(ends), 2)
    v0, vN = v_ends[0], v_ends[1]
    k = v0.shape[0]
    if n == 1:
        return (vN - v0)[None, :], np.zeros((1, k)), v0, {"pairs": 0, "converged": True}
    max_pairs = max(2, (budget - 2) // (2 * (n - 1)))
    if tolerance is None:
        batch = max_pairs
    else:
        if not np.isfinite(tolerance) or tolerance <= 0:
            raise InvalidParameterError(f"tolerance must be a positive number, got {tolerance}.")
        batch = max(2, min(max_pairs, 16))
    sizes = np.arange(1, n)
    per_pair: list[np.ndarray] = []
    done, converged = 0, False
    while done < max_pairs:
        b = min(batch, max_pairs - done)
        ranks = np.argsort(np.argsort(rng.random((b, n)), axis=1), axis=1)  # rank of player
        fwd = ranks[:, None, :] < sizes[None, :, None]  # (b, n-1, n) prefixes
        rev = ranks[:, None, :] >= (n - sizes)[None, :, None]  # prefixes of the reverse
        vals = as_value_matrix(
            game.value(np.concatenate([fwd, rev]).reshape(-1, n)), 2 * b * (n - 1)
        ).reshape(2, b, n - 1, k)
        chain_f = np.concatenate(
            [np.broadcast_to(v0, (b, 1, k)), vals[0], np.broadcast_to(vN, (b, 1, k))], axis=1
        )
        chain_r = np.concatenate(
            [np.broadcast_to(v0, (b, 1, k)), vals[1], np.broadcast_to(vN, (b, 1, k))], axis=1
        )
        step_f = np.diff(chain_f, axis=1)  # (b, n, k): contribution of the t-th player
        step_r = np.diff(chain_r, axis=1)
        contrib_f = np.take_along_axis(step_f, ranks[:, :, None], axis=1)
        contrib_r = np.take_along_axis(step_r, (n - 1 - ranks)[:, :, None], axis=1)
        per_pair.append(0.5 * (contrib_f + contrib_r))
        done += b
        if tolerance is not None and done >= 2:
            est = np.concatenate(per_pair)
            se = est.std(axis=0, ddof=1) / np.sqrt(done)
            if se.max() < tolerance:
                converged = True
                break
    est = np.concatenate(per_pair)
    phi = est.mean(axis=0)
    std = est.std(axis=0, ddof=1) / np.sqrt(est.shape[0])
    return phi, std, v0, {"pairs": int(est.shape[0]), "converged": converged}
