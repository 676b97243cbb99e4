"""Purification of pair terms (functional ANOVA): mass moved to the main terms and intercept.

A pair term ``f_ab`` on interaction bins is *pure* when its weighted means along every row
and every column are zero: ``sum_b w_ab f_ab = 0`` for every ``a`` and ``sum_a w_ab f_ab = 0``
for every ``b`` (``w``: the training weight of each cell). Lengerich et al. (2020) show that
the pure part is unique and reached by repeatedly subtracting the row means and then the
column means (alternating projections, which converge geometrically, but slowly for sparse
pairs); here the row and column functions are solved for directly (a least-squares solve of
their normal equations, size ``n_a + n_b``) and then polished by a few sweeps; they are
functions of one feature and are added to that feature's main term, so every prediction is
unchanged. The main terms are then centred (weighted mean zero over the training rows) into
the intercept.

A pair's interaction bins are coarser than the main bins; a main bin's scores receive the
mass of the interaction bin that contains it, which is exact because the interaction cuts are
a subset of the main cuts (:func:`._ebm_binning.fit_feature_bins` snaps them). Scores with a
trailing class axis (multiclass) are purified class by class. Every bag is purified (the
projection is linear, so the mean of the purified bags is the purified mean).

References
----------
Lengerich, B., Tan, S., Chang, C.-H., Hooker, G. and Caruana, R. (2020). Purifying Interaction
Effects with the Functional ANOVA: An Efficient Algorithm for Recovering Identifiable Additive
Models. AISTATS.
"""

from __future__ import annotations

import numpy as np

from ..parallel import one_blas_thread
from ._ebm_binning import FeatureBins
from ._ebm_fit import FittedTerms

__all__ = ["main_to_interaction_bins", "purify_pair", "purify_terms"]


def main_to_interaction_bins(spec: FeatureBins) -> np.ndarray:
    """For each main bin of a feature, the interaction bin containing it, shape (n_bins,)."""
    nb = spec.n_bins()
    if spec.kind == "nominal":
        return np.arange(nb)  # the same categories at both resolutions
    cuts, icuts = np.asarray(spec.cuts), np.asarray(spec.interaction_cuts)
    out = np.empty(nb, dtype=np.int64)
    out[0] = 0  # missing
    out[1] = 1  # below the first cut
    # value bin k >= 2 starts at cuts[k - 2]; codes are searchsorted(cuts, x, "right") + 1
    out[2 : cuts.size + 2] = np.searchsorted(icuts, cuts, side="right") + 1
    out[cuts.size + 2 :] = spec.n_bins(interaction=True) - 1  # unseen
    return out


def purify_pair(
    scores: np.ndarray,
    weights: np.ndarray,
    *,
    multiclass: bool = False,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pure part of a pair term and the row / column functions moved out of it.

    Parameters
    ----------
    scores : ndarray of shape (..., n_a, n_b), or (..., n_a, n_b, k) with ``multiclass``
        Leading axes (e.g. bags) are purified independently, and so is each class.
    weights : ndarray of shape (n_a, n_b)
        Training weight of each cell.
    multiclass : bool
        Whether ``scores`` has a trailing class axis.
    tol : float
        Stop when the largest mean moved in a sweep is below ``tol`` times the largest score.

    Returns
    -------
    pure : same shape as scores
        ``scores - row[..., :, None] - col[..., None, :]`` with zero weighted row and column
        means (to ``tol`` relative to the largest score).
    row : ndarray of shape (..., n_a[, k])
    col : ndarray of shape (..., n_b[, k])
    """
    S = np.array(scores, dtype=float)
    W = np.asarray(weights, dtype=float)
    multi = multiclass
    if not multi:  # a class axis last in every case: (..., n_a, n_b, k)
        S = S[..., None]
    Wr = W.sum(axis=1)
    Wc = W.sum(axis=0)
    wr = np.where(Wr > 0, Wr, 1.0)[:, None]
    wc = np.where(Wc > 0, Wc, 1.0)[:, None]
    # exact step: the row and column functions solve the normal equations
    #   Wr_a r_a + sum_b W_ab c_b = sum_b W_ab S_ab,  sum_a W_ab r_a + Wc_b c_b = sum_a W_ab S_ab
    # (singular along r + t, c - t: the minimum-norm solution), for every bag and class at once
    na, nb = W.shape
    M = np.zeros((na + nb, na + nb))
    M[:na, :na] = np.diag(Wr)
    M[na:, na:] = np.diag(Wc)
    M[:na, na:] = W
    M[na:, :na] = W.T
    lead = S.shape[:-3]
    k = S.shape[-1]
    Sf = np.moveaxis(S.reshape(-1, na, nb, k), 0, -1).reshape(na, nb, -1)  # (na, nb, m)
    rhs = np.concatenate([np.einsum("abm,ab->am", Sf, W), np.einsum("abm,ab->bm", Sf, W)])
    sol = np.linalg.lstsq(M, rhs, rcond=None)[0]  # (na + nb, m)

    def back(v: np.ndarray, size: int) -> np.ndarray:
        return np.moveaxis(v.reshape(size, k, -1), -1, 0).reshape(*lead, size, k)

    row = back(sol[:na], na)
    col = back(sol[na:], nb)
    S = S - row[..., :, None, :] - col[..., None, :, :]
    # polish with alternating projections (Lengerich et al.'s sweeps) to the tolerance
    scale = max(float(np.abs(S).max()), 1e-300) if S.size else 1.0
    for _ in range(max_iter):
        r = np.einsum("...abk,ab->...ak", S, W) / wr
        S -= r[..., :, None, :]
        row += r
        c = np.einsum("...abk,ab->...bk", S, W) / wc
        S -= c[..., None, :, :]
        col += c
        if max(np.abs(r).max(initial=0.0), np.abs(c).max(initial=0.0)) <= tol * scale:
            break
    if not multi:
        return S[..., 0], row[..., 0], col[..., 0]
    return S, row, col


def purify_terms(f: FittedTerms, specs: list[FeatureBins]) -> FittedTerms:
    """``f`` with every pair purified into its main terms, the mains re-centred into the
    intercept, and the bags' means and standard deviations recomputed."""
    if not f.pairs:
        return f
    maps = [main_to_interaction_bins(s) for s in specs]
    mains = [sc.copy() for sc in f.bagged_main_scores]  # (n_bags, nb[, k])
    pairs = []
    with one_blas_thread():  # small solves: threads only spin against each other
        for t, (a, c) in enumerate(f.pairs):
            sc = f.bagged_pair_scores[t]  # (n_bags, n_a, n_b[, k])
            pure, row, col = purify_pair(sc, f.pair_weights[t], multiclass=sc.ndim == 4)
            pairs.append(pure)
            mains[a] += row[:, maps[a]]
            mains[c] += col[:, maps[c]]
    icpt = np.array(f.bagged_intercept, dtype=float)
    for j, sc in enumerate(mains):
        w = f.main_weights[j]
        mean = np.tensordot(sc, w, axes=([1], [0])) / w.sum()  # (n_bags[, k])
        mains[j] = sc - mean[:, None]
        icpt = icpt + mean
    n_bags = icpt.shape[0]

    def std(sc: np.ndarray) -> np.ndarray:
        return sc.std(axis=0) if n_bags > 1 else np.zeros(sc.shape[1:])

    return FittedTerms(
        intercept=icpt.mean(axis=0) if icpt.ndim > 1 else float(icpt.mean()),
        bagged_intercept=icpt,
        main_scores=[sc.mean(axis=0) for sc in mains],
        main_std=[std(sc) for sc in mains],
        main_weights=f.main_weights,
        bagged_main_scores=mains,
        pairs=f.pairs,
        pair_scores=[sc.mean(axis=0) for sc in pairs],
        pair_std=[std(sc) for sc in pairs],
        pair_weights=f.pair_weights,
        bagged_pair_scores=pairs,
        best_iteration=f.best_iteration,
    )
