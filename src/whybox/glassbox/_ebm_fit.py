"""Training of the explainable boosting machine on binned data: bags, stages, averaging.

``fit_ebm`` runs on bin codes only (no DataFrames): it draws the outer bags (each a seeded
split of the rows into training and early-stopping validation rows, stratified for
classification), boosts the main terms of every bag, ranks the feature pairs with FAST on each
bag's residuals and keeps the pairs of best mean rank (as interpret does), boosts those pairs
on top of each bag's main effects, and finally centres every term (weighted mean zero over the
training rows, moved into the intercept) and averages the bags. The spread of the bags gives
each bin's standard deviation.

Bags run in threads (the numba kernels release the GIL); every bag's result depends only on
its rows and its seed, so results do not depend on ``n_jobs``.

References
----------
Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from ._ebm_boost import LOGLOSS, boost_mains, boost_pairs, gradients, predict_terms
from ._ebm_fast import fast_pair_gains, rank_pairs

__all__ = ["BoostSettings", "FittedTerms", "fit_ebm", "make_bags"]


@dataclass
class BoostSettings:
    """Hyper-parameters of one fit, already validated."""

    objective: int
    learning_rate: float
    max_leaves: int
    min_samples_leaf: int
    min_hessian: float
    reg_lambda: float
    cat_smooth: float
    max_rounds: int
    early_stopping_rounds: int
    early_stopping_tolerance: float
    smoothing_rounds: int
    interaction_smoothing_rounds: int
    validation_size: float
    outer_bags: int
    n_interactions: int
    explicit_pairs: list[tuple[int, int]] | None
    n_jobs: int


@dataclass
class FittedTerms:
    """Averaged, centred terms of a fitted EBM (all arrays on the decision-function scale).

    Attributes
    ----------
    intercept : float
    bagged_intercept : ndarray of shape (n_bags,)
    main_scores : list of arrays of shape (n_bins_j,)
    main_std : list of arrays of shape (n_bins_j,)
    main_weights : list of arrays of shape (n_bins_j,)
        Training weight per bin (the rows per bin for unit weights).
    pairs : list of (int, int)
    pair_scores, pair_std, pair_weights : lists of arrays of shape (n_bins_a, n_bins_b)
    best_iteration : ndarray of shape (2, n_bags)
        Rounds kept per bag in the main and pair stages.
    """

    intercept: float
    bagged_intercept: np.ndarray
    main_scores: list[np.ndarray]
    main_std: list[np.ndarray]
    main_weights: list[np.ndarray]
    bagged_main_scores: list[np.ndarray]
    pairs: list[tuple[int, int]]
    pair_scores: list[np.ndarray]
    pair_std: list[np.ndarray]
    pair_weights: list[np.ndarray]
    bagged_pair_scores: list[np.ndarray]
    best_iteration: np.ndarray


def make_bags(
    y: np.ndarray, n_bags: int, validation_size: float, stratify: bool, seeds: Sequence[Any]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per bag, (training rows, validation rows): a seeded split, stratified by class.

    ``validation_size`` below 1 is a fraction of the rows, from 1 on a count; 0 gives every
    bag all rows and no validation rows.
    """
    n = y.shape[0]
    bags = []
    for b in range(n_bags):
        rng = np.random.default_rng(seeds[b])
        if validation_size <= 0 or n < 2:
            bags.append((np.arange(n), np.zeros(0, dtype=np.int64)))
            continue
        frac = validation_size / n if validation_size >= 1 else validation_size
        groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
        val = []
        for idx in groups:
            k = round(frac * idx.size)
            k = min(k, idx.size - 1)  # every class keeps a training row
            if k > 0:
                val.append(rng.permutation(idx)[:k])
        va = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
        mask = np.ones(n, dtype=bool)
        mask[va] = False
        bags.append((np.flatnonzero(mask), va))
    return bags


def _intercept(y: np.ndarray, w: np.ndarray, objective: int) -> float:
    """The best constant: the weighted mean (squared error) or the log-odds of the weighted
    rate (log-loss). ``sum(y * 1) / sum(1)`` is ``y.mean()`` to the bit."""
    m = float((y * w).sum() / w.sum())
    if objective == LOGLOSS:
        p = float(np.clip(m, 1e-12, 1 - 1e-12))
        return float(np.log(p / (1 - p)))
    return m


def _map(fn: Callable[[int], Any], n: int, n_jobs: int) -> list[Any]:
    if n_jobs <= 1 or n <= 1:
        return [fn(b) for b in range(n)]
    with ThreadPoolExecutor(max_workers=min(n_jobs, n)) as pool:
        return list(pool.map(fn, range(n)))


def fit_ebm(
    B: np.ndarray,
    P: np.ndarray,
    y: np.ndarray,
    nbins: np.ndarray,
    nbins_int: np.ndarray,
    is_cat: np.ndarray,
    s: BoostSettings,
    random_state: Any,
    sample_weight: np.ndarray | None = None,
) -> FittedTerms:
    """Fit all bags and stages; see the module docstring.

    Parameters
    ----------
    B, P : uint16 arrays of shape (n, p)
        Main and interaction bin codes.
    y : float array of shape (n,)
        Targets (0/1 for the log-loss objective).
    nbins, nbins_int : int arrays of shape (p,)
        Bins per feature at main and interaction resolution.
    is_cat : bool array of shape (p,)
    s : BoostSettings
    random_state : None, int or SeedSequence
        Seeds the bags' splits and the random cuts of the smoothing rounds.
    sample_weight : float array of shape (n,) or None
        Positive weights of the rows (None: all ones): they scale each row's gradient,
        hessian, count and loss, the intercept and the centring weights.
    """
    _n, p = B.shape
    w = np.ones(_n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ss = np.random.SeedSequence(random_state) if not isinstance(random_state, np.random.SeedSequence) else random_state  # fmt: skip
    children = ss.spawn(s.outer_bags)
    kernel_seeds = [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]
    bags = make_bags(y, s.outer_bags, s.validation_size, s.objective == LOGLOSS, children)

    state: list[dict[str, Any]] = [{} for _ in range(s.outer_bags)]

    def mains(b: int) -> None:
        tr, va = bags[b]
        Btr = np.asfortranarray(B[tr])
        Bva = np.asfortranarray(B[va])
        ytr, yva = y[tr], y[va]
        icpt = _intercept(ytr, w[tr], s.objective)
        F_tr = np.full(tr.size, icpt)
        F_va = np.full(va.size, icpt)
        scores, rounds = boost_mains(
            Btr, ytr, Bva, yva, F_tr, F_va, nbins, is_cat, s.objective, s.learning_rate,
            s.max_leaves, s.min_samples_leaf, s.min_hessian, s.reg_lambda, s.cat_smooth,
            s.max_rounds, s.early_stopping_rounds, s.early_stopping_tolerance,
            s.smoothing_rounds, kernel_seeds[b], wtr=w[tr], wva=w[va],
        )  # fmt: skip
        state[b].update(
            intercept=icpt,
            mains=scores,
            main_rounds=rounds,
            F_tr=predict_terms(Btr, scores, icpt),
            F_va=predict_terms(Bva, scores, icpt),
        )

    _map(mains, s.outer_bags, s.n_jobs)

    pairs: list[tuple[int, int]] = []
    if s.explicit_pairs is not None:
        pairs = list(s.explicit_pairs)
    elif s.n_interactions > 0 and p >= 2:
        candidates = np.array(list(combinations(range(p), 2)), dtype=np.int64)

        def rank(b: int) -> np.ndarray:
            tr = bags[b][0]
            g, h = gradients(state[b]["F_tr"], y[tr], s.objective)
            Ptr = np.asfortranarray(P[tr])
            wb = w[tr]
            return fast_pair_gains(
                Ptr, g * wb, h * wb, candidates, nbins_int, float(s.min_samples_leaf),
                s.min_hessian, s.reg_lambda, wb,
            )  # fmt: skip

        gains = _map(rank, s.outer_bags, s.n_jobs)
        pairs = [(int(a), int(c)) for a, c in rank_pairs(gains, candidates, s.n_interactions)]

    pair_arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def pair_stage(b: int) -> None:
        if not pairs:
            state[b]["pairs"] = np.zeros((0, 1, 1))
            state[b]["pair_rounds"] = 0
            return
        tr, va = bags[b]
        scores, rounds = boost_pairs(
            np.asfortranarray(P[tr]), y[tr], np.asfortranarray(P[va]), y[va],
            state[b]["F_tr"].copy(), state[b]["F_va"].copy(), pair_arr, nbins_int,
            s.objective, s.learning_rate, float(s.min_samples_leaf), s.min_hessian,
            s.reg_lambda, s.max_rounds, s.early_stopping_rounds, s.early_stopping_tolerance,
            s.interaction_smoothing_rounds, kernel_seeds[b] ^ 0x5DEECE66D, wtr=w[tr], wva=w[va],
        )  # fmt: skip
        state[b]["pairs"] = scores
        state[b]["pair_rounds"] = rounds

    _map(pair_stage, s.outer_bags, s.n_jobs)
    return _average(B, P, state, pairs, nbins, nbins_int, w)


def _average(
    B: np.ndarray,
    P: np.ndarray,
    state: list[dict[str, Any]],
    pairs: list[tuple[int, int]],
    nbins: np.ndarray,
    nbins_int: np.ndarray,
    rw: np.ndarray,
) -> FittedTerms:
    n_bags = len(state)
    p = B.shape[1]
    icpt = np.array([st["intercept"] for st in state], dtype=float)
    main_w = [np.bincount(B[:, j], weights=rw, minlength=nbins[j]) for j in range(p)]
    bagged_main = []
    for j in range(p):
        sc = np.stack([st["mains"][j, : nbins[j]] for st in state])  # (n_bags, nb)
        w = main_w[j]
        mean = sc @ w / w.sum()
        sc = sc - mean[:, None]
        icpt = icpt + mean
        sc[:, w == 0] = 0.0  # bins without training rows (missing, unseen) add nothing
        bagged_main.append(sc)
    pair_w, bagged_pair = [], []
    for t, (a, c) in enumerate(pairs):
        na, nc = int(nbins_int[a]), int(nbins_int[c])
        w = np.zeros((na, nc))
        np.add.at(w, (P[:, a].astype(np.int64), P[:, c].astype(np.int64)), rw)
        sc = np.stack([st["pairs"][t, :na, :nc] for st in state])
        mean = (sc * w).sum(axis=(1, 2)) / w.sum()
        sc = sc - mean[:, None, None]
        icpt = icpt + mean
        empty = (w.sum(axis=1) == 0)[:, None] | (w.sum(axis=0) == 0)[None, :]
        sc[:, empty] = 0.0
        pair_w.append(w)
        bagged_pair.append(sc)
    rounds = np.array(
        [[st["main_rounds"] for st in state], [st["pair_rounds"] for st in state]], dtype=np.int64
    )
    return FittedTerms(
        intercept=float(icpt.mean()),
        bagged_intercept=icpt,
        main_scores=[sc.mean(axis=0) for sc in bagged_main],
        main_std=[sc.std(axis=0) if n_bags > 1 else np.zeros(sc.shape[1]) for sc in bagged_main],
        main_weights=main_w,
        bagged_main_scores=bagged_main,
        pairs=list(pairs),
        pair_scores=[sc.mean(axis=0) for sc in bagged_pair],
        pair_std=[sc.std(axis=0) for sc in bagged_pair],
        pair_weights=pair_w,
        bagged_pair_scores=bagged_pair,
        best_iteration=rounds,
    )
