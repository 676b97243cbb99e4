"""KernelSHAP: Shapley values as a weighted least-squares fit over sampled coalitions.

The Shapley values are the solution of

    min_phi  sum_{0 < |z| < n}  mu(|z|) (v(z) - v(empty) - z . phi)^2
    s.t.     sum_j phi_j = v(N) - v(empty),

with the Shapley kernel ``mu(s) = (n - 1) / (C(n, s) s (n - s))`` (Lundberg and Lee 2017).
This module estimates the objective from a budget of coalitions and solves the constrained
problem exactly (efficiency holds to rounding for any budget):

1. Coalitions come in *pairs* ``(z, complement of z)`` (paired sampling, Covert and Lee 2021).
2. Coalition sizes form strata ``{s, n - s}``. Strata are enumerated exactly, the smallest
   and largest sizes first, while the budget covers them and leaves enough for the rest;
   the sizes 1 and ``n - 1`` whenever at least 4 pairs per other stratum are left.
3. The remaining strata are sampled without replacement, with the budget split evenly across
   coalition sizes, which is leverage-score sampling for this regression (Musco and Witter
   2024, Leverage SHAP); each sampled pair is weighted by its inverse inclusion probability.
   With too small a budget to give every remaining stratum two pairs, the remaining strata are
   pooled and pairs drawn with replacement (size uniform, then subset uniform).
4. Where strata are sampled, the values are regressed on symmetric size covariates
   ``[1, c**2, c**3]`` (``c = |z| / n - 1/2``) next to the players, the players'
   coefficients centred and ``(v(N) - v(empty)) / n`` added (as in
   :mod:`whybox.games._lowbudget`): exact on full enumeration, exact at any budget on
   pairwise games plus a cubic profile in ``|z|``, and the part of the game that varies with
   the coalition size no longer leaks into the players through the sampled design. With the
   sizes 1 and ``n - 1`` enumerated, the estimate is shrunk towards the sampling-free one
   they give, ``(v({j}) - v(N - j)) / 2`` centred plus ``(v(N) - v(empty)) / n``, by the
   positive-part James-Stein factor (Bock 1975), which tends to 1 as the sampling error
   vanishes. On bench_kernel_sweep's games at 128-512 evaluations (8 seeds) the two cut
   plain KernelSHAP's error by 5-50% (SVC 1.22 -> 0.63x shap's at 128, k-NN 0.83 -> 0.37;
   unchanged where the control variate runs, 10 players at 512).
5. Standard errors come from linearising the constrained solution:
   ``phi_hat - phi ~ M (b_hat - A_hat phi)`` with ``M = A^-1 - A^-1 1 1' A^-1 / (1' A^-1 1)``;
   the random part is a stratified sum over sampled pairs whose variance is estimated from
   the residuals, with the finite-population correction.

5. Regression adjustment (``surrogate=``, Witter, Liu and Musco 2025): a surrogate game is
   fitted to the coalition values already paid for (kernel ridge regression with a product
   kernel, small boosted trees on the coalition indicators, or a linear game,
   :mod:`whybox.games._regression_adjusted`) with cross-fitting: the sampled pairs are split
   into folds (8 when at most 128 pairs were sampled, else 3), each fold's residuals come
   from the surrogate fitted on the other folds (enumerated coalitions, which carry no
   sampling error, use the folds' average). With the sizes 1 and ``n - 1`` enumerated, the
   kernel surrogate's width per player follows the player's relevance read off them
   (:func:`whybox.games._regression_adjusted.relevance_widths`). The estimate is the surrogates' exact Shapley
   values plus the constrained fit above applied to the residual game, so efficiency stays
   exact and the standard errors are the residual game's. ``"auto"`` keeps the candidate
   (none, kernel, and for probability outputs with at most :data:`AUTO_LINK_MAX_COLUMNS`
   background rows the per-background sigmoid) with the smallest estimated variance; a
   linear surrogate is no candidate, since paired KernelSHAP is already exact on additive
   and pairwise games, and the boosted trees are left out for their cost (asked for by
   name, they are fitted). The least-squares solve makes KernelSHAP a ratio estimator, unbiased
   up to O(1/budget); the exactly unbiased Monte Carlo forms are the permutation and Banzhaf
   ones in :mod:`whybox.games._regression_adjusted`.

``tolerance=`` adds pairs in rounds (doubling the budget spent) until the largest standard
error is below it.

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Covert, I. and Lee, S.-I. (2021). Improving KernelSHAP: practical Shapley value estimation
using linear regression. AISTATS.

Musco, C. and Witter, R. T. (2024). Provably accurate Shapley value estimation via leverage
score sampling. arXiv:2410.01917.

Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849.

Bock, M. E. (1975). Minimax estimators of the mean of a multivariate normal distribution.
Annals of Statistics 3(1), 209-218. (Positive-part James-Stein shrinkage.)
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from math import comb
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..parallel import one_blas_thread
from ._link_surrogate import cross_fit_link
from ._regression_adjusted import (
    CHOICE_MARGIN,
    KERNEL_SURROGATES,
    check_surrogate,
    choose,
    cross_fit,
    fold_of_pairs,
    negligible,
    relevance_widths,
)
from .game import Game, as_value_matrix
from .shapley import _check_budget, default_budget, exact_shapley

__all__ = ["kernel_min_budget", "kernel_shapley"]


def kernel_min_budget(n_players: int) -> int:
    """Fewest coalitions KernelShap accepts: the empty and full ones plus ``2 n``."""
    return 2 * int(n_players) + 2


def _kernel_weight(n: int, s: int) -> float:
    return (n - 1) / (comb(n, s) * s * (n - s))


@lru_cache(maxsize=64)
def _all_pairs(n: int, s: int) -> np.ndarray:
    combos = np.array(list(itertools.combinations(range(n), s)))
    if 2 * s == n:  # canonical member of a middle pair contains player 0
        combos = combos[combos[:, 0] == 0]
    out = np.zeros((len(combos), n), dtype=bool)
    np.put_along_axis(out, combos, True, axis=1)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=64)
def _combinations(n: int, d: int) -> np.ndarray:
    out = np.array(list(itertools.combinations(range(n), d)))
    out.flags.writeable = False
    return out


class _Stratum:
    """Coalitions of sizes ``{s, n - s}``, grouped in complementary pairs.

    The without-replacement sample is drawn in vectorised batches: each pair is keyed by its
    packed bits, and a batch keeps, in order, the first occurrence of each key not drawn
    before (the same draws, for the same generator, as adding the rows one by one).
    """

    def __init__(self, n: int, s: int) -> None:
        self.n, self.s = n, s
        self.middle = 2 * s == n
        self.n_pairs = comb(n, s) // 2 if self.middle else comb(n, s)
        self.cost = 2 * self.n_pairs  # coalitions to enumerate it
        self.n_sizes = 1 if self.middle else 2
        self.sampled: list[np.ndarray] = []  # canonical members of sampled pairs
        self._seen = _pair_keys(np.zeros((0, n), dtype=bool))  # keys of the sampled pairs

    def all_pairs(self) -> np.ndarray:
        """Canonical member of every pair: bool (n_pairs, n) (cached, read-only)."""
        return _all_pairs(self.n, self.s)

    def extend(self, rng: np.random.Generator, k: int) -> None:
        """Grow the without-replacement sample to ``k`` distinct pairs (uniformly)."""
        k = min(k, self.n_pairs)
        need = k - len(self.sampled)
        if need <= 0:
            return
        if k > self.n_pairs // 3:  # dense: draw the missing pairs from the unseen ones
            pool = self.all_pairs()
            keys = _all_pair_keys(self.n, self.s)
            unseen = np.flatnonzero(~np.isin(keys, self._seen))
            pick = rng.choice(unseen, size=need, replace=False)
            self._add(pool[pick], keys[pick])
            return
        while need > 0:
            batch = self._random(rng, 2 * need + 4)
            keys = _pair_keys(batch)
            fresh = np.zeros(len(batch), dtype=bool)
            fresh[np.unique(keys, return_index=True)[1]] = True  # first of each key
            fresh &= ~np.isin(keys, self._seen)
            take = np.flatnonzero(fresh)[:need]
            self._add(batch[take], keys[take])
            need -= len(take)

    def _random(self, rng: np.random.Generator, m: int) -> np.ndarray:
        order = np.argsort(rng.random((m, self.n)), axis=1)
        rows = np.zeros((m, self.n), dtype=bool)
        np.put_along_axis(rows, order[:, : self.s], True, axis=1)
        if self.middle:  # canonical member of a middle pair contains player 0
            rows[~rows[:, 0]] = ~rows[~rows[:, 0]]
        return rows

    def _add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        self._seen = np.concatenate([self._seen, keys])
        self.sampled.extend(rows)


def _pair_keys(rows: np.ndarray) -> np.ndarray:
    """One hashable, sortable key per bool row (m, n): its packed bits, as uint64 when they
    fit in 8 bytes, else as raw bytes."""
    packed = np.packbits(rows, axis=1)
    width = packed.shape[1]
    if width <= 8:
        out = np.zeros((len(rows), 8), dtype=np.uint8)
        out[:, :width] = packed
        return out.view(np.uint64).ravel()
    return np.ascontiguousarray(packed).view(np.dtype((np.void, width))).ravel()


@lru_cache(maxsize=64)
def _all_pair_keys(n: int, s: int) -> np.ndarray:
    out = _pair_keys(_all_pairs(n, s))
    out.flags.writeable = False
    return out


def _solve(A: np.ndarray, b: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constrained least squares: phi = M b + c delta; returns (phi (n, k), M (n, n))."""
    n = A.shape[0]
    Ainv = np.linalg.pinv(A, hermitian=True)
    ones = np.ones(n)
    a1 = Ainv @ ones
    denom = ones @ a1
    M = Ainv - np.outer(a1, a1) / denom
    phi = M @ b + np.outer(a1 / denom, delta)
    return phi, M


def kernel_shapley(
    game: Game,
    rng: np.random.Generator,
    *,
    budget: int | None = None,
    tolerance: float | None = None,
    surrogate: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """KernelSHAP estimate with paired, stratified leverage sampling and standard errors.

    Parameters
    ----------
    game : Game
    rng : numpy Generator
    budget : int, optional
        Coalitions to evaluate per row, including the empty and full ones; default
        ``2 n + 2048``. A budget covering all ``2**n`` coalitions gives the exact values.
    tolerance : float, optional
        Stop adding coalitions once the largest standard error is below this.
    surrogate : {"auto", "kernel", "tree", "sigmoid", "linear", "none"}
        Regression adjustment (:mod:`whybox.games._regression_adjusted`): a cross-fitted
        surrogate game whose Shapley values are known (exactly, or for ``"sigmoid"`` by an
        unbiased Monte Carlo estimate on the surrogate), KernelSHAP applied to the residual.
        ``"auto"`` keeps whichever of none, kernel and (for probability outputs, with at most
        :data:`AUTO_LINK_MAX_COLUMNS` background rows) sigmoid gives the residual game the
        smallest estimated variance (``info["surrogate"]``);
        ``"none"`` (default) is plain
        KernelSHAP (see :class:`whybox.KernelShap` for why the adjustment is opt-in).

    Returns
    -------
    phi : ndarray (n_players, k)
    std : ndarray (n_players, k)
    v_empty : ndarray (k,)
    info : dict
        ``coalitions`` used, ``exact_sizes`` enumerated, ``converged``.
    """
    n = int(game.n_players)
    budget = default_budget(n) if budget is None else budget
    budget = _check_budget(budget, kernel_min_budget(n), n, "KernelShap")
    check_surrogate(surrogate, KERNEL_SURROGATES)
    if tolerance is not None and (not np.isfinite(tolerance) or tolerance <= 0):
        raise InvalidParameterError(f"tolerance must be a positive number, got {tolerance}.")
    if n <= 2 or budget >= 2**n:
        phi, v0, _ = exact_shapley(game)
        return (
            phi,
            np.zeros_like(phi),
            v0,
            {"coalitions": 2**n, "exact_sizes": list(range(n + 1)), "converged": True},
        )
    if surrogate == "auto" and getattr(game, "keep_background", False):
        # "auto" leaves the per-background sigmoid out beyond AUTO_LINK_MAX_COLUMNS rows:
        # the game need not keep its outputs per background row then
        rows = getattr(getattr(game, "masker", None), "n_rows", None)
        if rows is not None and rows > AUTO_LINK_MAX_COLUMNS:
            game.keep_background = False
    ends = np.zeros((2, n), dtype=bool)
    ends[1] = True
    v_ends = as_value_matrix(game.value(ends), 2)
    v0, vN = v_ends[0], v_ends[1]
    delta = vN - v0
    strata = [_Stratum(n, s) for s in range(1, n // 2 + 1)]
    spend = budget if tolerance is None else max(kernel_min_budget(n), min(budget, 4 * n + 64))
    while True:
        phi, std, info = _estimate_round(game, rng, strata, spend, v0, delta, surrogate=surrogate)
        info["converged"] = tolerance is not None and float(std.max()) < tolerance
        if tolerance is None or info["converged"] or spend >= budget:
            break
        spend = min(budget, 2 * spend)
    return phi, std, v0, info


def _share(st: _Stratum, allocation: str) -> float:
    """Relative sampling effort of a stratum: by coalition size (leverage) or kernel mass."""
    if allocation == "leverage":
        return float(st.n_sizes)
    return float(st.n_sizes) / (st.s * (st.n - st.s))


def _water_fill(
    strata: list[_Stratum], share: np.ndarray, pairs: int
) -> tuple[list[_Stratum], list[int | None]]:
    """Split ``pairs`` over strata in proportion to ``share``; a stratum whose portion covers
    all its pairs is enumerated instead and the rest is split again.

    Returns the enumerated strata and, per stratum, the pairs to sample (None: enumerated).
    """
    alloc: list[int | None] = [0] * len(strata)
    exact: list[_Stratum] = []
    open_ = list(range(len(strata)))
    left = pairs
    changed = True
    while changed and open_:
        changed = False
        total = share[open_].sum()
        for i in list(open_):
            if left * share[i] / total >= strata[i].n_pairs:
                exact.append(strata[i])
                alloc[i] = None
                left -= strata[i].n_pairs
                open_.remove(i)
                changed = True
        if changed:
            continue
    if open_:
        total = share[open_].sum()
        raw = np.array([left * share[i] / total for i in open_])
        base = np.floor(raw).astype(int)
        spare = int(left - base.sum())
        for j in np.argsort(-(raw - base), kind="stable")[:spare]:
            base[j] += 1
        for i, k in zip(open_, base, strict=True):
            alloc[i] = int(min(k, strata[i].n_pairs))
    exact.sort(key=lambda st: st.s)
    return exact, alloc


#: Highest order of the polynomial control variate (its size grows like C(n, order)).
MAX_CV_ORDER = 4
#: The sizes 1 and n - 1 are enumerated first when at least this many pairs per other stratum
#: are left (measured on bench_kernel_sweep's games at 128-512 evaluations: 4 enumerates them
#: for 13-16 players at 128 and for 30 from 256; enumerating them at 128 for 30 players, 2
#: pairs per other stratum, raised the error by ~30%).
PAIRS_AFTER_SINGLETONS = 4


def _plan(
    strata: list[_Stratum], share: np.ndarray, pairs: int
) -> tuple[list[_Stratum], list[int | None], int]:
    """Which strata to enumerate, how many pairs to sample from the others, and the order of
    the polynomial control variate (0: none).

    Enumerating the smallest and largest sizes up to ``q >= 3`` lets a polynomial of order
    ``q`` be fitted exactly there; paired sampling is already exact for pairwise games, so
    the control variate pays off from order 3 and is worth the pairs it takes from the
    sampled strata. Otherwise the pairs are split by water-filling (:func:`_water_fill`),
    after enumerating the sizes 1 and ``n - 1`` (the largest kernel weight, ``n`` pairs) when
    that leaves :data:`PAIRS_AFTER_SINGLETONS` pairs per other stratum: their values anchor
    the Stein shrinkage and the players' relevance for the kernel surrogate (``_Fit``,
    :func:`relevance_widths`).
    """
    left, q = pairs, 0
    for i, st in enumerate(strata):
        after = len(strata) - i - 1
        if st.n_pairs <= left and left - st.n_pairs >= 2 * after and after > 0:
            left -= st.n_pairs
            q += 1
        else:
            break
    order = min(q, MAX_CV_ORDER)
    if order >= 3 and _n_monomials(strata[0].n, order) <= sum(st.n_pairs for st in strata[:q]):
        exact = strata[:q]
        _, rest_alloc = _water_fill(strata[q:], share[q:], left)
        return exact, [None] * q + rest_alloc, order
    exact, alloc = _water_fill(strata, share, pairs)
    first = strata[0]
    after = len(strata) - 1
    if after and first not in exact and pairs - first.n_pairs >= PAIRS_AFTER_SINGLETONS * after:
        exact, alloc = _water_fill(strata[1:], share[1:], pairs - first.n_pairs)
        return [first, *exact], [None, *alloc], 0
    return exact, alloc, 0


def _n_monomials(n: int, order: int) -> int:
    return sum(comb(n, d) for d in range(1, order + 1))


def _monomials(Z: np.ndarray, order: int) -> np.ndarray:
    """Products of up to ``order`` members: float (m, sum_d C(n, d)), lowest degree first."""
    n = Z.shape[1]
    cols = [Z.astype(float)]
    for d in range(2, order + 1):
        cols.append(np.all(Z[:, _combinations(n, d)], axis=2).astype(float))
    return np.concatenate(cols, axis=1)


@lru_cache(maxsize=16)
def _control_design(n: int, q: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """For the strata of sizes 1..q enumerated (laid out as in ``_estimate_round``):
    their monomials ``D`` (m_e, n_mono) and the weighted least-squares operator ``P``
    (n_mono, m_e + 1) mapping ``[v(S) - v(empty) on them; v(N) - v(empty)]`` to the
    Mobius coefficients of the fitted polynomial (``v(N)`` matched, kernel weights)."""
    Z = np.concatenate([_pair_block(_all_pairs(n, s), np.zeros(0), -1)[0] for s in range(1, q + 1)])
    w = np.concatenate(
        [np.full(2 * len(_all_pairs(n, s)), _kernel_weight(n, s)) for s in range(1, q + 1)]
    )
    D = _monomials(Z, order)
    D_full = np.concatenate([D, _monomials(np.ones((1, n), dtype=bool), order)])
    sw = np.sqrt(np.concatenate([w, [w.max() * 1e6]]))
    with one_blas_thread():  # ~10x faster than 2 spinning OpenBLAS threads on shared cores
        P = np.linalg.pinv(D_full * sw[:, None]) * sw[None, :]
    D.flags.writeable = False
    P.flags.writeable = False
    return D, P


def _polynomial_shapley(coef: np.ndarray, n: int, order: int) -> np.ndarray:
    """Shapley values of a polynomial game: each Mobius coefficient splits equally among the
    members of its coalition."""
    phi = np.zeros((n, coef.shape[1]))
    start = 0
    for d in range(1, order + 1):
        idx = _combinations(n, d)
        c = coef[start : start + len(idx)] / d
        for col in range(d):
            np.add.at(phi, idx[:, col], c)
        start += len(idx)
    return phi


def _estimate_round(
    game: Game,
    rng: np.random.Generator,
    strata: list[_Stratum],
    budget: int,
    v0: np.ndarray,
    delta: np.ndarray,
    allocation: str = "leverage",
    surrogate: str = "none",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    n = strata[0].n
    pairs_total = (budget - 2) // 2
    share = np.array([_share(st, allocation) for st in strata], dtype=float)
    exact, alloc, order = _plan(strata, share, pairs_total)
    rest = [(st, k) for st, k in zip(strata, alloc, strict=True) if k is not None]
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (coalitions, weights, group)
    for st in exact:
        canon = st.all_pairs()
        blocks.append(_pair_block(canon, np.full(len(canon), _kernel_weight(n, st.s)), -1))
    groups: list[float] = []  # per sampled stratum: the finite-population factor 1 - f
    if rest and min(k for _, k in rest) >= 2:
        for st, k in rest:
            st.extend(rng, k)
            canon = np.array(st.sampled[:k])
            w = _kernel_weight(n, st.s) * st.n_pairs / k
            groups.append(1.0 - k / st.n_pairs)
            blocks.append(_pair_block(canon, np.full(k, w), len(groups) - 1))
    elif rest:
        # pooled, with replacement: a size drawn in proportion to the strata's shares, then
        # a subset uniformly. A pair {z, complement} is drawn through either member.
        k = max(2, sum(a for _, a in rest))
        sizes, size_p = [], []
        for st, _ in rest:
            members = [st.s] if st.middle else [st.s, n - st.s]
            for s_ in members:
                sizes.append(s_)
                size_p.append(_share(st, allocation) / st.n_sizes)
        size_p = np.array(size_p) / np.sum(size_p)
        draw = rng.choice(np.array(sizes), size=k, p=size_p)
        perm = np.argsort(rng.random((k, n)), axis=1)
        canon = np.zeros((k, n), dtype=bool)
        for i, s_ in enumerate(draw):
            canon[i, perm[i, :s_]] = True
        p_of = dict(zip(sizes, size_p, strict=True))
        q = np.array([2.0 * p_of[int(s_)] / comb(n, int(s_)) for s_ in draw])
        w = np.array([_kernel_weight(n, int(s_)) for s_ in draw]) / (k * q)
        groups.append(1.0)
        blocks.append(_pair_block(canon, w, 0))
    Z = np.concatenate([b[0] for b in blocks])
    W = np.concatenate([b[1] for b in blocks])
    group_of = np.concatenate([b[2] for b in blocks])
    y = as_value_matrix(game.value(Z), len(Z)) - v0
    info = {
        "coalitions": int(len(Z) + 2),
        "exact_sizes": sorted({s_ for st in exact for s_ in (st.s, n - st.s)}),
        "control_variate_order": int(order) if order >= 3 and groups else 0,
    }
    # the sizes 1 and n - 1 enumerated: their rows come first, [singletons; complements]
    singletons = bool(exact) and exact[0].s == 1 and order < 3
    fit = _Fit(Z, W, group_of, groups, len(exact), order, singletons=singletons)
    phi, var = fit.solve(y, delta)
    # "auto" fits no surrogate when the estimate is already exact up to rounding, or when the
    # polynomial control variate runs (most of the budget enumerated: measured, the tree
    # surrogate is then not chosen, and fitting it would only cost time)
    skip_auto = surrogate == "auto" and (negligible(var, y) or info["control_variate_order"] > 0)
    if surrogate == "none" or not groups or skip_auto:
        if groups:
            info["surrogate"] = "none"
        return phi, np.sqrt(var), info
    # regression adjustment (Witter, Liu and Musco 2025): cross-fitted surrogate, exact values
    # of the surrogate plus the KernelSHAP estimate of the residual game
    half = [len(b[0]) // 2 for b in blocks]
    # more folds when few pairs were sampled: each surrogate then sees 7/8 of them, not 2/3
    sampled_pairs = sum(h for h, b in zip(half, blocks, strict=True) if b[2][0] >= 0)
    n_folds = 8 if sampled_pairs <= 128 else N_FOLDS
    fold = np.concatenate(
        [
            np.tile(fold_of_pairs(rng, h, n_folds), 2) if b[2][0] >= 0 else np.full(2 * h, -1)
            for h, b in zip(half, blocks, strict=True)
        ]
    )
    # the surrogate matters where the coalitions were sampled: the enumerated ones weigh as
    # much per coalition as the sampled ones on average
    fit_weight = W.copy()
    if (fold < 0).any():
        fit_weight[fold < 0] = W[fold >= 0].mean()
    # each coalition's complement: blocks are laid out [members; complements]
    starts = np.cumsum([0] + [len(b_[0]) for b_ in blocks])[:-1]
    partner = np.concatenate(
        [o + (np.arange(2 * h_) + h_) % (2 * h_) for o, h_ in zip(starts, half, strict=True)]
    )
    # (no linear candidate: paired KernelSHAP is already exact on additive and pairwise games)
    kinds = (
        list(AUTO_KINDS) if surrogate == "auto" else [] if surrogate == "sigmoid" else [surrogate]
    )
    results = {"none": (phi, var)}
    for kind in kinds:
        # the kernel surrogate's width per player follows the players' relevance, read off
        # the enumerated sizes 1 and n - 1 (no sampled value: cross-fitting stays exact)
        widths = None
        if kind == "kernel" and singletons:
            widths = relevance_widths(y[:n], y[n : 2 * n], delta)
        pred, phi_f, ends = cross_fit(
            Z, y, fit_weight, fold, kind, rng=rng, widths=widths, partner=partner
        )
        phi_r, var_r = fit.solve(y - pred, delta - (ends[1] - ends[0]))
        results[kind] = (phi_f + phi_r, var_r)
    link = _link_candidate(game, Z, y, v0, delta, fit, fit_weight, fold, rng, surrogate)
    if surrogate == "sigmoid":
        choice, (phi, var) = ("sigmoid", link) if link is not None else ("none", results["none"])
    else:
        # the relevance-weighted kernel is kept unless another candidate is clearly better
        choice, phi, var = choose(results, surrogate, prefer="kernel" if singletons else None)
        if link is not None and float(link[1].sum()) < CHOICE_MARGIN * float(var.sum()):
            choice, (phi, var) = "sigmoid", link
    info["surrogate"] = choice
    return phi, np.sqrt(var), info


#: Cross-fitting folds of the regression adjustment when more than 128 pairs were sampled
#: (8 below). Measured on bench_kernel_sweep's GBC, SVC, k-NN and Pipeline games at 512 and
#: 1024 coalitions (8 / 2 seeds, ``surrogate="auto"``): 3 folds within 1-3% of 4 (GBC at 512
#: 0.00240 vs 0.00242, SVC 0.0100 vs 0.0103), 2 folds 13% worse on GBC at 512; each fold's
#: kernel ridge system then has ~2/3 of the coalitions instead of 3/4 and there are 3 of
#: them (the Cholesky factorisations cost ~45% less), and the sigmoid surrogate fits 3
#: sets of columns instead of 4.
N_FOLDS = 3
#: ``"auto"``'s surrogates fitted by KernelSHAP (plus the sigmoid one for probability
#: outputs). The boosted-tree surrogate (``"tree"``, by name) is left out: on the sweep's
#: games it was kept for 5 of 24 rows at 128 coalitions on GBC and never elsewhere, and its
#: fit cost ~11 ms per row at 512 coalitions, a third of GBC's model time there.
AUTO_KINDS = ("kernel",)

#: The sigmoid surrogate is fitted per background row (and output) up to this many columns;
#: beyond, ``"auto"`` leaves it out and ``"sigmoid"`` fits one to the averaged game.
LINK_MAX_COLUMNS = 64
#: ``"auto"`` fits the sigmoid surrogate per background row only up to this many background
#: rows (columns, times the outputs); beyond, it leaves the sigmoid out and the game does not
#: keep its outputs per background row. The sigmoid's fit and values cost grows with the
#: columns: measured at 512 coalitions (bench_kernel_time, 50 background rows), ~0.7 ms per
#: column and explained row on 13 players and ~1.5 ms on 16, i.e. 35-78 ms per row where
#: the model's calls take 33-101 ms, against the <= 1.15x goal of issue 20. Leaving it out
#: there cost GBC ~15-25% more error at 512 coalitions (3 rows x 4 seeds, 50 background rows)
#: and nothing measurable on SVC and k-NN; bench_kernel_sweep's games (10 background rows)
#: keep it.
AUTO_LINK_MAX_COLUMNS = 16


def _link_candidate(
    game: Game,
    Z: np.ndarray,
    y: np.ndarray,
    v0: np.ndarray,
    delta: np.ndarray,
    fit: _Fit,
    fit_weight: np.ndarray,
    fold: np.ndarray,
    rng: np.random.Generator,
    surrogate: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The sigmoid (link) surrogate's estimate and variance, or None where it does not apply.

    The interventional game is a weighted mean over background rows of the model's output;
    the model is evaluated on every row anyway, and a :class:`~whybox.TabularGame` with
    ``keep_background`` on keeps those outputs. One sigmoid per background row and output is
    then fitted (for a logistic model each such column is exactly a sigmoid of a linear score)
    and the surrogate game is their weighted mean. Without the outputs per row, only
    ``surrogate="sigmoid"`` fits a single sigmoid to the averaged game.
    """
    if surrogate not in ("auto", "sigmoid"):
        return None
    by_bg = getattr(game, "values_by_background", None)
    Yb = Yb0 = None
    cap = AUTO_LINK_MAX_COLUMNS if surrogate == "auto" else LINK_MAX_COLUMNS
    if by_bg is not None and getattr(game, "keep_background", False):
        Yb0 = by_bg(np.zeros((1, Z.shape[1]), dtype=bool))
        if Yb0 is not None and Yb0.shape[1] * Yb0.shape[2] <= cap:
            Yb = by_bg(Z)
    if Yb is not None and Yb0 is not None:
        m, nb, k = Yb.shape
        combine = np.kron(np.asarray(game.masker.weights, dtype=float)[:, None], np.eye(k))
        out = cross_fit_link(
            Z,
            (Yb - Yb0).reshape(m, nb * k),
            Yb0.reshape(-1),
            fit_weight,
            fold,
            rng,
            combine=combine,
        )
    elif surrogate == "sigmoid":
        out = cross_fit_link(Z, y, v0, fit_weight, fold, rng)
    else:
        return None
    if out is None:
        return None
    pred, phi_f, ends, var_phi = out
    phi_r, var_r = fit.solve(y - pred, delta - (ends[1] - ends[0]))
    return phi_f + phi_r, var_r + var_phi


class _Fit:
    """The weighted least-squares solve of one round, with its standard errors.

    Applied to the game and to residual games on the same coalitions (regression adjustment).
    Where strata are sampled and no polynomial control variate runs, the coalitions' values
    are regressed on ``[1, c**2, c**3, z]`` with ``c = |z| / n - 1/2`` (symmetric size
    covariates, as in :mod:`whybox.games._lowbudget`): the players' coefficients are centred
    and ``(v(N) - v(empty)) / n`` added, which is the Shapley vector exactly when every
    coalition is weighted by the kernel (a symmetric function of ``|z|`` adds the same amount
    to every player) and removes from the sampled estimate whatever the game's mean varies
    with the coalition size. With the sizes 1 and ``n - 1`` enumerated (``singletons``), the
    estimate is then shrunk towards the one they give alone by the positive-part James-Stein
    factor (as in :mod:`whybox.games._lowbudget`); the standard errors are the unshrunk
    estimate's.
    """

    def __init__(
        self,
        Z: np.ndarray,
        W: np.ndarray,
        group_of: np.ndarray,
        groups: list[float],
        n_exact: int,
        order: int,
        singletons: bool = False,
    ) -> None:
        self.Z, self.W, self.group_of, self.groups = Z, W, group_of, groups
        self.n_exact, self.order = n_exact, order
        n = self.n = Z.shape[1]
        self.Zf = Z.astype(float)
        self.ZW = self.Zf * W[:, None]
        self.sizes = order < 3 and bool(groups)
        self.singletons = singletons and self.sizes
        if self.sizes:
            c = self.Zf.sum(axis=1) / n - 0.5
            self.X = np.column_stack([np.ones(len(Z)), c**2, c**3, self.Zf])
            self.XW = self.X * W[:, None]
            self.Ainv = np.linalg.pinv(self.XW.T @ self.X, hermitian=True)
            # centred players' rows of the inverse: the linearised map from X'W(y - X theta)
            players = self.Ainv[_N_SIZE_TERMS:]
            self.M = players - players.mean(axis=0)

    def solve(self, y: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimate (n, k) and its variance (n, k) for values ``y`` (m, k) (minus v(empty))
        and ``delta = v(N) - v(empty)`` (k,)."""
        if not self.sizes:
            return self._solve_constrained(y, delta)
        n = self.n
        b = self.XW.T @ y
        phi = self.M @ b + delta[None, :] / n
        resid = y - self.X @ (self.Ainv @ b)
        cov = np.zeros((y.shape[1], n, n))
        for g_, fpc in enumerate(self.groups):
            proj = self._pair_projections(g_, self.XW, resid, self.M)
            if proj is not None:
                dev = proj - proj.mean(axis=0)
                cov += len(proj) * fpc * np.einsum("pik,pjk->kij", dev, dev) / (len(proj) - 1)
        var = np.clip(np.einsum("kii->ik", cov), 0.0, None)
        if self.singletons:
            # Stein shrinkage towards the sampling-free estimate of the sizes 1 and n - 1:
            # phi_j = (v({j}) - v(N - j)) / 2, centred, plus delta / n (both efficient)
            half = (y[:n] - y[n : 2 * n]) / 2
            target = half - half.mean(axis=0) + delta[None, :] / n
            for c in range(y.shape[1]):
                keep = _stein_factor(phi[:, c] - target[:, c], cov[c])
                phi[:, c] = target[:, c] + keep * (phi[:, c] - target[:, c])
        return phi, var

    def _pair_projections(
        self, group: int, XW: np.ndarray, resid: np.ndarray, M: np.ndarray
    ) -> np.ndarray | None:
        """Per sampled pair of ``group``: ``M`` times the sum over its two coalitions of
        ``x w (y - x theta)``: (pairs, n, k); None with fewer than two pairs."""
        rows = np.flatnonzero(self.group_of == group)
        half = len(rows) // 2  # a block is laid out [members..., complements...]
        if half < 2:
            return None
        first, second = rows[:half], rows[half:]
        per_pair = (
            XW[first][:, :, None] * resid[first][:, None, :]
            + XW[second][:, :, None] * resid[second][:, None, :]
        )
        return np.einsum("ij,pjk->pik", M, per_pair)

    def _solve_constrained(self, y: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The constrained solve (efficiency as a constraint), with the polynomial control
        variate when it runs."""
        n, Z, Zf, ZW, group_of, groups = (
            self.n,
            self.Z,
            self.Zf,
            self.ZW,
            self.group_of,
            self.groups,
        )
        order = self.order
        phi_g = np.zeros((n, y.shape[1]))
        if order >= 3 and groups:
            # control variate: a polynomial game g fitted on the enumerated strata, whose
            # Shapley values are known; only the residual game v - g is estimated from samples
            is_exact = group_of == -1
            D, P = _control_design(n, self.n_exact, order)
            coef = P @ np.concatenate([y[is_exact], delta[None, :]])
            phi_g = _polynomial_shapley(coef, n, order)
            g = np.empty_like(y)
            g[is_exact] = D @ coef
            g[~is_exact] = _monomials(Z[~is_exact], order) @ coef
            y = y - g
            delta = delta - _monomials(np.ones((1, n), dtype=bool), order)[0] @ coef
        phi, M = _solve(ZW.T @ Zf, ZW.T @ y, delta)
        var = np.zeros_like(phi)
        if groups:
            resid = y - Zf @ phi  # (m, k)
            for g_, fpc in enumerate(groups):
                proj = self._pair_projections(g_, ZW, resid, M)
                if proj is not None:
                    var += len(proj) * fpc * proj.var(axis=0, ddof=1)
        return phi + phi_g, var


#: Columns of the size-covariate design before the players: 1, c**2, c**3.
_N_SIZE_TERMS = 3


def _stein_factor(d: np.ndarray, cov: np.ndarray) -> float:
    """Positive-part James-Stein factor for ``target + d`` shrunk towards ``target``:
    ``(1 - (tr S - 2 lambda_max(S)) / |d|^2)_+`` with ``S`` the covariance of ``d``; 1 (no
    shrinkage) when ``tr S <= 2 lambda_max`` (Bock 1975). It tends to 1 as the sampling
    error vanishes, so the estimate stays consistent."""
    ev = np.linalg.eigvalsh(cov)
    c = float(ev.sum() - 2.0 * ev.max())
    dd = float(d @ d)
    if c <= 0.0 or dd == 0.0:
        return 1.0
    return max(0.0, 1.0 - c / dd)


def _pair_block(
    canon: np.ndarray, w: np.ndarray, group: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coalitions ``[canon; complements]`` with their weights and group id."""
    Z = np.concatenate([canon, ~canon])
    return Z, np.concatenate([w, w]), np.full(len(Z), group)
