"""Training of the multiclass explainable boosting machine: bags, stages, averaging.

The same recipe as the binary fit (:mod:`._ebm_fit`) with ``k`` class scores per bin: seeded
train / validation splits stratified by class, the main terms boosted by softmax cyclic
boosting (:mod:`._ebm_multi`), pairs ranked by FAST with gains summed over classes and boosted
on top of each bag's main effects (:mod:`._ebm_multi_pairs`), then every term centred per class (weighted mean zero over
the training rows, moved into that class's intercept) and the bags averaged.

References
----------
Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ._ebm_fast import rank_pairs
from ._ebm_fit import BoostSettings, FittedTerms, _map, make_bags
from ._ebm_multi import boost_mains_multi, softmax_grads
from ._ebm_multi_pairs import boost_pairs_multi, fast_pair_gains_multi

__all__ = ["fit_ebm_multi"]


def _log_priors(y: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Centred log class frequencies (weighted): the best constant class scores."""
    freq = np.bincount(y, weights=w, minlength=k) / w.sum()
    lp = np.log(np.clip(freq, 1e-12, None))
    return lp - lp.mean()


def _predict(B: np.ndarray, scores: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    F = np.tile(intercept, (B.shape[0], 1))
    for j in range(B.shape[1]):
        F += scores[j, B[:, j].astype(np.int64)]
    return F


def fit_ebm_multi(
    B: np.ndarray,
    P: np.ndarray,
    y: np.ndarray,
    k: int,
    nbins: np.ndarray,
    nbins_int: np.ndarray,
    is_cat: np.ndarray,
    s: BoostSettings,
    random_state: Any,
    sample_weight: np.ndarray | None = None,
) -> FittedTerms:
    """Fit all bags and stages of a k-class model.

    Parameters
    ----------
    B, P : uint16 arrays of shape (n, p)
        Main and interaction bin codes.
    y : int array of shape (n,)
        Class codes 0 .. k-1.
    k : int
        Number of classes (>= 3).
    nbins, nbins_int, is_cat, s, random_state, sample_weight
        As in :func:`._ebm_fit.fit_ebm`.

    Returns
    -------
    FittedTerms
        With a trailing class axis of length k on every score array and on the intercept.
    """
    n, p = B.shape
    y = np.asarray(y, dtype=np.int64)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ss = np.random.SeedSequence(random_state) if not isinstance(random_state, np.random.SeedSequence) else random_state  # fmt: skip
    children = ss.spawn(s.outer_bags)
    kernel_seeds = [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]
    bags = make_bags(y, s.outer_bags, s.validation_size, True, children)
    state: list[dict[str, Any]] = [{} for _ in range(s.outer_bags)]

    def mains(b: int) -> None:
        tr, va = bags[b]
        Btr, Bva = np.asfortranarray(B[tr]), np.asfortranarray(B[va])
        icpt = _log_priors(y[tr], w[tr], k)
        F_tr = np.tile(icpt, (tr.size, 1))
        F_va = np.tile(icpt, (va.size, 1))
        scores, rounds = boost_mains_multi(
            Btr, y[tr], Bva, y[va], F_tr, F_va, nbins, is_cat, s.learning_rate, s.max_leaves,
            float(s.min_samples_leaf), s.min_hessian, s.reg_lambda, s.cat_smooth, s.max_rounds,
            s.early_stopping_rounds, s.early_stopping_tolerance, s.smoothing_rounds,
            kernel_seeds[b], w[tr], w[va],
        )  # fmt: skip
        state[b].update(
            intercept=icpt,
            mains=scores,
            main_rounds=rounds,
            F_tr=_predict(Btr, scores, icpt),
            F_va=_predict(Bva, scores, icpt),
        )

    _map(mains, s.outer_bags, s.n_jobs)

    pairs: list[tuple[int, int]] = []
    if s.explicit_pairs is not None:
        pairs = list(s.explicit_pairs)
    elif s.n_interactions > 0 and p >= 2:
        candidates = np.array(list(combinations(range(p), 2)), dtype=np.int64)

        def rank(b: int) -> np.ndarray:
            tr = bags[b][0]
            g, h = softmax_grads(state[b]["F_tr"], y[tr], w[tr])
            return fast_pair_gains_multi(
                np.asfortranarray(P[tr]), g, h, w[tr], candidates, nbins_int,
                float(s.min_samples_leaf), s.min_hessian, s.reg_lambda,
            )  # fmt: skip

        gains = _map(rank, s.outer_bags, s.n_jobs)
        pairs = [(int(a), int(c)) for a, c in rank_pairs(gains, candidates, s.n_interactions)]
    pair_arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def pair_stage(b: int) -> None:
        if not pairs:
            state[b]["pairs"] = np.zeros((0, 1, 1, k))
            state[b]["pair_rounds"] = 0
            return
        tr, va = bags[b]
        scores, rounds = boost_pairs_multi(
            np.asfortranarray(P[tr]), y[tr], np.asfortranarray(P[va]), y[va],
            state[b]["F_tr"].copy(), state[b]["F_va"].copy(), pair_arr, nbins_int,
            s.learning_rate, float(s.min_samples_leaf), s.min_hessian, s.reg_lambda,
            s.max_rounds, s.early_stopping_rounds, s.early_stopping_tolerance,
            s.interaction_smoothing_rounds, kernel_seeds[b] ^ 0x5DEECE66D, w[tr], w[va],
        )  # fmt: skip
        state[b]["pairs"] = scores
        state[b]["pair_rounds"] = rounds

    _map(pair_stage, s.outer_bags, s.n_jobs)
    return _average_multi(B, P, state, pairs, nbins, nbins_int, w, k)


def _average_multi(
    B: np.ndarray,
    P: np.ndarray,
    state: list[dict[str, Any]],
    pairs: list[tuple[int, int]],
    nbins: np.ndarray,
    nbins_int: np.ndarray,
    rw: np.ndarray,
    k: int,
) -> FittedTerms:
    n_bags = len(state)
    p = B.shape[1]
    icpt = np.stack([st["intercept"] for st in state])  # (n_bags, k)
    main_w = [np.bincount(B[:, j], weights=rw, minlength=nbins[j]) for j in range(p)]
    bagged_main = []
    for j in range(p):
        sc = np.stack([st["mains"][j, : nbins[j]] for st in state])  # (n_bags, nb, k)
        wj = main_w[j]
        mean = np.einsum("bnk,n->bk", sc, wj) / wj.sum()
        sc = sc - mean[:, None, :]
        icpt = icpt + mean
        sc[:, wj == 0] = 0.0
        bagged_main.append(sc)
    pair_w, bagged_pair = [], []
    for t, (a, c) in enumerate(pairs):
        na, nc = int(nbins_int[a]), int(nbins_int[c])
        cells = P[:, a].astype(np.int64) * nc + P[:, c].astype(np.int64)
        wt = np.bincount(cells, weights=rw, minlength=na * nc).reshape(na, nc)
        sc = np.stack([st["pairs"][t, :na, :nc] for st in state])  # (n_bags, na, nc, k)
        mean = np.einsum("bxyk,xy->bk", sc, wt) / wt.sum()
        sc = sc - mean[:, None, None, :]
        icpt = icpt + mean
        empty = (wt.sum(axis=1) == 0)[:, None] | (wt.sum(axis=0) == 0)[None, :]
        sc[:, empty] = 0.0
        pair_w.append(wt)
        bagged_pair.append(sc)
    rounds = np.array(
        [[st["main_rounds"] for st in state], [st["pair_rounds"] for st in state]], dtype=np.int64
    )

    def std(sc: np.ndarray) -> np.ndarray:
        return sc.std(axis=0) if n_bags > 1 else np.zeros(sc.shape[1:])

    return FittedTerms(
        intercept=icpt.mean(axis=0),  # type: ignore[arg-type]
        bagged_intercept=icpt,
        main_scores=[sc.mean(axis=0) for sc in bagged_main],
        main_std=[std(sc) for sc in bagged_main],
        main_weights=main_w,
        bagged_main_scores=bagged_main,
        pairs=list(pairs),
        pair_scores=[sc.mean(axis=0) for sc in bagged_pair],
        pair_std=[std(sc) for sc in bagged_pair],
        pair_weights=pair_w,
        bagged_pair_scores=bagged_pair,
        best_iteration=rounds,
    )
