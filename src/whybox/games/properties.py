"""The game-level property suite: games whose Shapley values have a closed form, and the
checks every Shapley estimator of :mod:`whybox.games` must pass with tight tolerances.

:func:`check_game` checks the Game protocol and its cache; :class:`MobiusGame` (with
:func:`additive_game`, :func:`unanimity_game`, :func:`pairwise_game`, :func:`random_game`)
gives games with exact values ``phi_j = sum_{T containing j} c_T / |T|``;
:func:`check_shapley_estimator` checks accuracy, efficiency, symmetry, dummy, linearity and
calibrated standard errors. Re-exported by :mod:`whybox.testing`. Failures raise
``AssertionError`` naming the property, as test helpers do.

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "MobiusGame",
    "additive_game",
    "check_game",
    "check_shapley_estimator",
    "pairwise_game",
    "random_game",
    "unanimity_game",
]


def _fail(msg: str) -> None:
    raise AssertionError(msg)


def check_game(game: Any, *, n_coalitions: int = 16, random_state: int = 0) -> None:
    """Check the Game protocol: shapes, determinism and (for cached games) the cache."""
    n = int(game.n_players)
    if len(game.player_names) != n:
        _fail(f"{len(game.player_names)} player names for {n} players.")
    rng = np.random.default_rng(random_state)
    C = rng.random((n_coalitions, n)) < 0.5
    C[0] = False
    C[-1] = True
    v = np.asarray(game.value(C), dtype=float)
    if v.shape[0] != n_coalitions or v.ndim not in (1, 2):
        _fail(f"value() returned shape {v.shape} for {n_coalitions} coalitions.")
    before = getattr(game, "n_evaluated", None)
    v2 = np.asarray(game.value(C[::-1]), dtype=float)
    if not np.array_equal(v2, v[::-1]):
        _fail("value() is not a function of the coalition (order or repeat changed it).")
    if before is not None and game.n_evaluated != before:
        _fail("a cached game evaluated coalitions it had already evaluated.")


# ---------------------------------------------------------------- property suite
class MobiusGame:
    """A game given by its Mobius coefficients: ``v(S) = sum_{T subset S} c_T``.

    Every game is one of these; the Shapley value has the closed form
    ``phi_j = sum_{T containing j} c_T / |T|`` (each unanimity game ``u_T`` splits its worth
    equally among ``T``). Additive games (only singletons), pairwise-interaction games and
    unanimity games are special cases.

    Parameters
    ----------
    n : int
        Number of players.
    terms : mapping from a tuple of players to a coefficient, or to an array of k outputs
    """

    def __init__(self, n: int, terms: dict[tuple[int, ...], Any]) -> None:
        self.n_players = int(n)
        self.player_names = [f"p{j}" for j in range(n)]
        self.terms = {
            tuple(sorted(T)): np.atleast_1d(np.asarray(c, dtype=float)) for T, c in terms.items()
        }
        k = {c.shape for c in self.terms.values()}
        if len(k) > 1:
            raise ValueError("all coefficients must have the same number of outputs")
        self.k = next(iter(k))[0] if k else 1
        self.n_evaluated = 0

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        C = np.asarray(coalitions, dtype=bool)
        if C.ndim == 1:
            C = C[None, :]
        self.n_evaluated += len(C)
        out = np.zeros((len(C), self.k))
        for T, c in self.terms.items():
            present = C[:, list(T)].all(axis=1) if T else np.ones(len(C), dtype=bool)
            out += present[:, None] * c[None, :]
        return out

    def shapley(self) -> np.ndarray:
        """Closed-form Shapley values, shape (n, k)."""
        phi = np.zeros((self.n_players, self.k))
        for T, c in self.terms.items():
            for j in T:
                phi[j] += c / len(T)
        return phi

    def __add__(self, other: MobiusGame) -> MobiusGame:
        terms = dict(self.terms)
        for T, c in other.terms.items():
            terms[T] = terms.get(T, 0.0) + c
        return MobiusGame(self.n_players, terms)

    def scaled(self, a: float) -> MobiusGame:
        return MobiusGame(self.n_players, {T: a * c for T, c in self.terms.items()})


def additive_game(a: Any) -> MobiusGame:
    """``v(S) = sum_{j in S} a_j``: ``phi = a``."""
    a = np.asarray(a, dtype=float)
    return MobiusGame(len(a), {(j,): a[j] for j in range(len(a))})


def unanimity_game(n: int, T: tuple[int, ...], worth: float = 1.0) -> MobiusGame:
    """``v(S) = worth`` if ``T`` is inside ``S`` else 0: ``phi_j = worth / |T|`` on ``T``."""
    return MobiusGame(n, {tuple(T): worth})


def pairwise_game(a: Any, B: Any) -> MobiusGame:
    """Additive plus pairwise interactions ``B[i, j]`` (upper triangle used)."""
    a = np.asarray(a, dtype=float)
    B = np.asarray(B, dtype=float)
    n = len(a)
    terms: dict[tuple[int, ...], Any] = {(j,): a[j] for j in range(n)}
    for i in range(n):
        for j in range(i + 1, n):
            if B[i, j] != 0:
                terms[(i, j)] = B[i, j]
    return MobiusGame(n, terms)


def random_game(
    n: int,
    *,
    max_order: int = 4,
    n_terms: int = 30,
    random_state: int = 0,
    dummy: tuple[int, ...] = (),
    symmetric: tuple[int, int] | None = None,
) -> MobiusGame:
    """A game with random higher-order interactions, optional dummy and symmetric players."""
    rng = np.random.default_rng(random_state)
    live = [j for j in range(n) if j not in dummy]
    terms: dict[tuple[int, ...], Any] = {}
    for j in live:
        terms[(j,)] = rng.normal()
    for _ in range(n_terms):
        order = int(rng.integers(2, max_order + 1))
        T = tuple(sorted(rng.choice(live, size=min(order, len(live)), replace=False).tolist()))
        terms[T] = terms.get(T, 0.0) + rng.normal()
    if symmetric is not None:  # make players i and j interchangeable
        i, j = symmetric
        sym: dict[tuple[int, ...], Any] = {}
        for T, c in terms.items():
            swapped = tuple(sorted(j if t == i else i if t == j else t for t in T))
            sym[T] = sym.get(T, 0.0) + np.asarray(c) / 2
            sym[swapped] = sym.get(swapped, 0.0) + np.asarray(c) / 2
        terms = sym
    return MobiusGame(n, terms)


#: an estimator under test: (game, seed) -> (phi (n, k), std (n, k) or None)
Estimator = Callable[[Any, int], "tuple[np.ndarray, np.ndarray | None]"]


def check_shapley_estimator(
    estimator: Estimator,
    *,
    exact: bool = False,
    n_players: int = 8,
    n_seeds: int = 40,
    atol: float = 1e-10,
    n_sigma: float = 4.0,
    coverage_range: tuple[float, float] = (0.90, 0.99),
) -> dict[str, float]:
    """The Shapley axioms and accuracy on games with closed-form values.

    Checks, on additive, unanimity, pairwise and random higher-order games:

    * accuracy: the estimate is within ``atol`` (exact) or ``n_sigma`` standard errors
      (sampled) of the closed form;
    * efficiency: ``sum phi = v(N) - v(empty)`` to ``atol`` (every whybox Shapley
      estimator solves it exactly);
    * symmetry: interchangeable players get equal values (within the errors);
    * dummy: a player that never changes the worth gets 0 (within the errors);
    * linearity: the estimate of ``2 u + v`` is ``2 est(u) + est(v)`` with the same seed;
    * calibration (sampled): the 95% intervals ``phi_hat +- 1.96 std`` cover the truth in a
      fraction of cases inside ``coverage_range``, over ``n_seeds`` seeds.

    Returns the measured numbers (e.g. ``coverage``); raises AssertionError on a failure.
    """
    n = n_players
    rng = np.random.default_rng(12345)
    games = {
        "additive": additive_game(rng.normal(size=n)),
        "unanimity": unanimity_game(n, (0, 2, 3), 2.0),
        "pairwise": pairwise_game(rng.normal(size=n), np.triu(rng.normal(size=(n, n)), 1)),
        "random": random_game(n, random_state=1, dummy=(n - 1,), symmetric=(0, 1)),
    }
    report: dict[str, float] = {}

    def run(game: MobiusGame, seed: int) -> tuple[np.ndarray, np.ndarray]:
        phi, std = estimator(game, seed)
        phi = np.asarray(phi, dtype=float).reshape(n, -1)
        std = np.zeros_like(phi) if std is None else np.asarray(std, float).reshape(n, -1)
        return phi, std

    def tol(std: np.ndarray) -> np.ndarray:
        return atol if exact else n_sigma * std + 1e-9

    for name, game in games.items():
        truth = game.shapley()
        phi, std = run(game, 0)
        if np.any(np.abs(phi - truth) > tol(std)):
            worst = float(np.max(np.abs(phi - truth)))
            _fail(f"accuracy fails on the {name} game: largest error {worst:.3e}.")
        ends = game.value(np.array([[False] * n, [True] * n]))
        gap = np.abs(phi.sum(axis=0) - (ends[1] - ends[0])).max()
        if gap > max(atol, 1e-9):
            _fail(f"efficiency fails on the {name} game: gap {gap:.3e}.")
    rnd = games["random"]
    phi, std = run(rnd, 1)
    if abs(phi[0, 0] - phi[1, 0]) > (
        atol if exact else n_sigma * np.hypot(std[0, 0], std[1, 0]) + 1e-9
    ):
        _fail(f"symmetry fails: interchangeable players got {phi[0, 0]:.6g} and {phi[1, 0]:.6g}.")
    if abs(phi[n - 1, 0]) > (atol if exact else n_sigma * std[n - 1, 0] + 1e-9):
        _fail(f"dummy fails: a player with no effect got {phi[n - 1, 0]:.3e}.")
    u, v = games["pairwise"], games["random"]
    combo = u.scaled(2.0) + v
    pc, sc = run(combo, 7)
    pu, su = run(u, 7)
    pv, sv = run(v, 7)
    lin_err = np.abs(pc - (2 * pu + pv))
    lin_tol = atol if exact else n_sigma * np.sqrt(sc**2 + 4 * su**2 + sv**2) + 1e-9
    if np.any(lin_err > lin_tol):
        _fail(f"linearity fails: largest deviation {lin_err.max():.3e}.")
    report["linearity_error"] = float(lin_err.max())
    if not exact:
        truth = rnd.shapley()
        hits, total = 0, 0
        for seed in range(100, 100 + n_seeds):
            phi, std = run(rnd, seed)
            live = np.arange(n - 1)  # the dummy has zero error and zero variance
            hits += int(np.sum(np.abs(phi[live] - truth[live]) <= 1.96 * std[live] + 1e-12))
            total += live.size * phi.shape[1]
        coverage = hits / total
        report["coverage"] = coverage
        lo, hi = coverage_range
        if not lo <= coverage <= hi:
            _fail(
                f"standard errors are not calibrated: 95% intervals covered the truth in "
                f"{coverage:.1%} of cases, outside [{lo:.0%}, {hi:.0%}]."
            )
    return report
