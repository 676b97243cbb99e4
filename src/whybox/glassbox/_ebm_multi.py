"""numba kernels of the multiclass explainable boosting machine: softmax cyclic boosting of
the main terms (the pair terms are in :mod:`._ebm_multi_pairs`).

With ``k`` classes every term has ``k`` scores per bin (cell), one per class, and the model's
class scores are ``F_c(x) = b_c + sum_t f_t,c(x)``, turned into probabilities by the softmax.
Each boosting step of a term fits one tree whose cuts are shared by all classes: a cut's
gain is the sum over classes of the per-class Newton gains ``G_c^2 / (H_c + lambda)``, with
``g_ic = w_i (p_ic - [y_i = c])`` and ``h_ic = w_i p_ic (1 - p_ic)`` (the diagonal of the
softmax Hessian, as in Friedman's multiclass boosting and interpret's), and every leaf takes a
Newton step per class. The best cut leaves ``min_hessian`` hessian in every class on both
sides, as interpret checks each score (libebm ``PartitionOneDimensionalBoosting.cpp``); a
smoothing round's random cut is drawn among the cuts leaving it summed over classes.

As in the binary kernels (``_ebm_boost``), ``exp(F)`` is kept per row and class and
multiplied by ``exp(step)`` of the leaf a row falls in, so a step costs ``k``
multiplications per row instead of ``k`` exponentials; applying a step and building the next
term's histogram share one pass over the rows. The rows' scores ``F`` themselves are not
updated step by step: every ``RESYNC_ROUNDS`` rounds they are rebuilt from the terms' per-bin
scores and ``exp(F - max F)`` is recomputed from them, so the products never drift by more
than a few ulps (a row whose sum of exponentials leaves [1e-100, 1e100] in between is
rescaled). The validation rows keep ``exp(F)`` the same way, so a round's validation loss
takes two logarithms per row. A tree's step is each bin's leaf (``leafof``) and a small
table of the leaves' per-class steps and exponentials, which the row pass reads. Histograms
are bin-major (a row's classes adjacent: the scatter touches one cache line per row and
histogram); a cut search takes the running sums of several classes side by side in one pass
over the bins (each class's sums in bin order, so the results are those of one pass per
class, bit for bit).

Categorical features are ordered before each cut by the gradient ratio ``G_c / (H_c + s)`` of
the class ``c`` with the largest total absolute gradient in the histogram.

References
----------
Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals of
Statistics 29(5) (section 4.6, multiclass logistic regression).

Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._ebm_boost import _next_uniform

__all__ = ["boost_mains_multi", "softmax_grads"]

RESYNC_ROUNDS = 16  # rounds between recomputations of exp(F) from F (products drift ~1 ulp a step)


@njit(cache=True, nogil=True, error_model="numpy")
def _resync(F, E):
    """``E[i] = exp(F[i] - max F[i])`` (recomputed once per round so products never drift)."""
    n, k = F.shape
    for i in range(n):
        m = F[i, 0]
        for c in range(1, k):
            m = max(m, F[i, c])
        for c in range(k):
            E[i, c] = np.exp(F[i, c] - m)


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_loss(F, y, w):
    """Weighted mean cross-entropy ``logsumexp(F_i) - F_i,y_i``."""
    n, k = F.shape
    total = 0.0
    wsum = 0.0
    for i in range(n):
        m = F[i, 0]
        for c in range(1, k):
            m = max(m, F[i, c])
        s = 0.0
        for c in range(k):
            s += np.exp(F[i, c] - m)
        total += w[i] * (m + np.log(s) - F[i, y[i]])
        wsum += w[i]
    return total / wsum if wsum > 0 else total


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_loss_exp(E, y, w):
    """``_ce_loss`` from ``E[i] = exp(F[i] - const_i)`` (kept by the caller): ``log(sum E_i)
    - log E_i,y_i`` per row, two logarithms instead of k exponentials and one; a row whose sum
    left [1e-100, 1e100] is divided by its largest entry first."""
    n, k = E.shape
    total = 0.0
    wsum = 0.0
    for i in range(n):
        s = 0.0
        for c in range(k):
            s += E[i, c]
        if not (s > 1e-100 and s < 1e100):
            mx = 0.0
            for c in range(k):
                mx = max(mx, E[i, c])
            s = 0.0
            for c in range(k):
                E[i, c] /= mx
                s += E[i, c]
        total += w[i] * (np.log(s) - np.log(E[i, y[i]]))
        wsum += w[i]
    return total / wsum if wsum > 0 else total


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_grads(F, y, w):
    """Weighted gradients and hessians of the cross-entropy at scores F (n, k): (n, k) each."""
    n, k = F.shape
    g = np.empty((n, k))
    h = np.empty((n, k))
    for i in range(n):
        m = F[i, 0]
        for c in range(1, k):
            m = max(m, F[i, c])
        s = 0.0
        for c in range(k):
            s += np.exp(F[i, c] - m)
        for c in range(k):
            p = np.exp(F[i, c] - m) / s
            g[i, c] = w[i] * (p - (1.0 if c == y[i] else 0.0))
            h[i, c] = w[i] * max(p * (1.0 - p), 1e-16)
    return g, h


@njit(cache=True, nogil=True, error_model="numpy")
def _score(G, H, lam, k):
    """``sum_c G_c^2 / (H_c + lam)`` of vectors (k,)."""
    s = 0.0
    for c in range(k):
        d = H[c] + lam
        if d > 0:
            s += G[c] * G[c] / d
    return s


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _score2(GL, HL, Gt, Ht, lam, k):
    """``_score(GL, HL) + _score(Gt - GL, Ht - HL)`` in one loop (the same sums in the same
    order; inlined at the numba level: a compiled call per candidate cut costs more than it)."""
    s1 = 0.0
    s2 = 0.0
    for c in range(k):
        g = GL[c]
        d = HL[c] + lam
        if d > 0:
            s1 += g * g / d
        g = Gt[c] - GL[c]
        d = (Ht[c] - HL[c]) + lam
        if d > 0:
            s2 += g * g / d
    return s1 + s2


@njit(cache=True, nogil=True, error_model="numpy")
def _best_cut(G, H, C, order, s, e, min_leaf, min_hess, lam, random, state, GL, HL, Gt, Ht, P, Q):
    """Best (``_best_cut_all``) or random cut of ordered bins ``order[s:e]`` over all classes:
    (position, gain), -1 when no cut is allowed. A random cut is drawn among those leaving
    ``min_leaf`` rows and ``min_hess`` hessian summed over classes on both sides."""
    if not random:
        return _best_cut_all(G, H, C, order, s, e, min_leaf, min_hess, lam, Gt, Ht, P, Q)
    k = G.shape[1]
    Gt[:] = 0.0
    Ht[:] = 0.0
    Ct = 0.0
    for t in range(s, e):
        b = order[t]
        Ct += C[b]
        for c in range(k):
            Gt[c] += G[b, c]
            Ht[c] += H[b, c]
    htot = 0.0
    for c in range(k):
        htot += Ht[c]
    parent = _score(Gt, Ht, lam, k)
    n_valid = 0
    CL = 0.0
    hl = 0.0
    for t in range(s, e - 1):
        b = order[t]
        CL += C[b]
        for c in range(k):
            hl += H[b, c]
        if CL >= min_leaf and Ct - CL >= min_leaf and hl >= min_hess and htot - hl >= min_hess:
            n_valid += 1
    if n_valid == 0:
        return -1, 0.0
    target = int(_next_uniform(state) * n_valid)
    GL[:] = 0.0
    HL[:] = 0.0
    CL = 0.0
    hl = 0.0
    seen = 0
    for t in range(s, e - 1):
        b = order[t]
        CL += C[b]
        for c in range(k):
            GL[c] += G[b, c]
            HL[c] += H[b, c]
            hl += H[b, c]
        if CL < min_leaf or Ct - CL < min_leaf or hl < min_hess or htot - hl < min_hess:
            continue
        if seen == target:
            return t, _score2(GL, HL, Gt, Ht, lam, k) - parent
        seen += 1
    return -1, 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _running_sums(G, H, C, order, s, e, Q, PC):
    """``Q[0, c, t] = sum_{u <= t} G[c, order[s + u]]`` and ``Q[1]`` the same of ``H``, for
    ``t < e - s``: each class's sum runs in bin order from 0.0 (the same additions as a loop
    per class), four or two classes per pass so their running sums advance side by side in
    registers (one class per pass waits on its own additions); ``PC[t]`` the same of ``C``
    (in every pass: one more sum side by side)."""
    k = G.shape[1]
    m = e - s
    c0 = 0
    while c0 + 4 <= k:
        g0 = g1 = g2 = g3 = 0.0
        h0 = h1 = h2 = h3 = 0.0
        cl = 0.0
        for t in range(m):
            b = order[s + t]
            cl += C[b]
            PC[t] = cl
            g0 += G[b, c0]
            g1 += G[b, c0 + 1]
            g2 += G[b, c0 + 2]
            g3 += G[b, c0 + 3]
            h0 += H[b, c0]
            h1 += H[b, c0 + 1]
            h2 += H[b, c0 + 2]
            h3 += H[b, c0 + 3]
            Q[0, c0, t] = g0
            Q[0, c0 + 1, t] = g1
            Q[0, c0 + 2, t] = g2
            Q[0, c0 + 3, t] = g3
            Q[1, c0, t] = h0
            Q[1, c0 + 1, t] = h1
            Q[1, c0 + 2, t] = h2
            Q[1, c0 + 3, t] = h3
        c0 += 4
    if c0 + 2 <= k:
        g0 = g1 = 0.0
        h0 = h1 = 0.0
        cl = 0.0
        for t in range(m):
            b = order[s + t]
            cl += C[b]
            PC[t] = cl
            g0 += G[b, c0]
            g1 += G[b, c0 + 1]
            h0 += H[b, c0]
            h1 += H[b, c0 + 1]
            Q[0, c0, t] = g0
            Q[0, c0 + 1, t] = g1
            Q[1, c0, t] = h0
            Q[1, c0 + 1, t] = h1
        c0 += 2
    if c0 < k:
        g0 = 0.0
        h0 = 0.0
        cl = 0.0
        for t in range(m):
            b = order[s + t]
            cl += C[b]
            PC[t] = cl
            g0 += G[b, c0]
            h0 += H[b, c0]
            Q[0, c0, t] = g0
            Q[1, c0, t] = h0


@njit(cache=True, nogil=True, error_model="numpy")
def _sums(G, H, order, s, e, Gs, Hs):
    """``Gs[c] = sum_t G[c, order[t]]`` over ``s <= t < e`` (in that order, from 0.0) and
    ``Hs`` the same of ``H``, four or two classes per pass (``_running_sums`` without the
    stores)."""
    k = G.shape[1]
    c0 = 0
    while c0 + 4 <= k:
        g0 = g1 = g2 = g3 = 0.0
        h0 = h1 = h2 = h3 = 0.0
        for t in range(s, e):
            b = order[t]
            g0 += G[b, c0]
            g1 += G[b, c0 + 1]
            g2 += G[b, c0 + 2]
            g3 += G[b, c0 + 3]
            h0 += H[b, c0]
            h1 += H[b, c0 + 1]
            h2 += H[b, c0 + 2]
            h3 += H[b, c0 + 3]
        Gs[c0] = g0
        Gs[c0 + 1] = g1
        Gs[c0 + 2] = g2
        Gs[c0 + 3] = g3
        Hs[c0] = h0
        Hs[c0 + 1] = h1
        Hs[c0 + 2] = h2
        Hs[c0 + 3] = h3
        c0 += 4
    if c0 + 2 <= k:
        g0 = g1 = 0.0
        h0 = h1 = 0.0
        for t in range(s, e):
            b = order[t]
            g0 += G[b, c0]
            g1 += G[b, c0 + 1]
            h0 += H[b, c0]
            h1 += H[b, c0 + 1]
        Gs[c0] = g0
        Gs[c0 + 1] = g1
        Hs[c0] = h0
        Hs[c0 + 1] = h1
        c0 += 2
    if c0 < k:
        g0 = 0.0
        h0 = 0.0
        for t in range(s, e):
            b = order[t]
            g0 += G[b, c0]
            h0 += H[b, c0]
        Gs[c0] = g0
        Hs[c0] = h0


@njit(cache=True, nogil=True, error_model="numpy")
def _best_cut_all(G, H, C, order, s, e, min_leaf, min_hess, lam, Gt, Ht, P, Q):
    """The best cut of ordered bins ``order[s:e]``: (position, gain), -1 when none is
    allowed. Both sides need ``min_leaf`` weight and, in every class, ``min_hess`` hessian
    (interpret's rule: libebm's ``PartitionOneDimensionalBoosting.cpp`` checks each score's
    hessian). The running sums of all classes (``_running_sums``; their last entries are the
    totals ``Gt``, ``Ht``), then per class every cut's ``GL^2 / (HL + lam) + GR^2 / (HR +
    lam)`` with one division in a branch-free (vectorised) loop; ``P`` (5, >= e - s), ``Q``
    (2, k, >= e - s): scratch."""
    k = G.shape[1]
    m = e - s
    n = m - 1
    if n <= 0:
        return -1, 0.0
    PC = P[2]
    val = P[3]
    hm = P[4]
    val[:m] = 0.0
    hm[:m] = np.inf
    _running_sums(G, H, C, order, s, e, Q, PC)
    Ct = PC[n]
    for c in range(k):
        Gt[c] = Q[0, c, n]
        Ht[c] = Q[1, c, n]
    parent = _score(Gt, Ht, lam, k)
    for c in range(k):
        PG = Q[0, c]
        PH = Q[1, c]
        gt = Gt[c]
        ht = Ht[c]
        for t in range(n):
            gl = PG[t]
            hl = PH[t]
            gr = gt - gl
            hr = ht - hl
            a1 = hl + lam
            a2 = hr + lam
            a1 = a1 if a1 > 0.0 else 1.0  # (an empty side without lam: g = 0)
            a2 = a2 if a2 > 0.0 else 1.0
            val[t] += (gl * gl * a2 + gr * gr * a1) / (a1 * a2)
            hm[t] = min(hm[t], min(hl, hr))
    best_k = -1
    best_gain = 0.0
    for t in range(n):
        ok = PC[t] >= min_leaf and Ct - PC[t] >= min_leaf and hm[t] >= min_hess
        gain = val[t] - parent
        if ok and gain > best_gain:
            best_gain = gain
            best_k = s + t
    if best_k < 0:
        return -1, 0.0
    return best_k, best_gain


@njit(cache=True, nogil=True, error_model="numpy")
def _fit_tree(G, H, C, order, n_order, max_leaves, min_leaf, min_hess, lam, lr, random, state,
              leafof, DV, EV, seg, seg_gain, V, P, Q, ident):  # fmt: skip
    """A tree of at most ``max_leaves`` leaves on ordered bins ``order[:n_order]`` (a
    permutation of bins 1 .. n_order; bin 0 holds missing values, bin n_order + 1 unknown
    ones): each bin's leaf to ``leafof`` (>= n_order + 2,), the leaves' per-class Newton
    steps to ``DV`` (max_leaves + 2, k) and their exponentials to ``EV`` (leaf 0: no step,
    for unknown values and an empty missing bin; leaf 1: the missing bin, a leaf of its own;
    leaves 2 .. the segments of ordered bins); ``ident``: ``order[t] = t + 1``. ``seg``
    (3, max_leaves + 1), ``seg_gain`` (max_leaves + 1,), ``V`` (6, k), ``P`` (5, >= n_order),
    ``Q`` (2, k, >= n_order): scratch."""
    k = G.shape[1]
    seg_s = seg[0]
    seg_e = seg[1]
    seg_k = seg[2]
    GL = V[0]
    HL = V[1]
    Gt = V[2]
    Ht = V[3]
    for c in range(k):
        DV[0, c] = 0.0
        EV[0, c] = 1.0
        DV[1, c] = 0.0
        EV[1, c] = 1.0
    leafof[0] = 0
    leafof[n_order + 1] = 0
    nseg = 1
    seg_s[0] = 0
    seg_e[0] = n_order
    kk, gain = _best_cut(G, H, C, order, 0, n_order, min_leaf, min_hess, lam, random, state, GL, HL, Gt, Ht, P, Q)  # fmt: skip
    from0 = not random and n_order >= 2  # Q holds the running sums from bin 0 (leaf 0's)
    seg_k[0] = kk
    seg_gain[0] = gain
    while nseg < max_leaves:
        pick = -1
        best = -np.inf
        for q in range(nseg):
            if seg_k[q] >= 0 and seg_gain[q] > best:
                best = seg_gain[q]
                pick = q
        if pick < 0:
            break
        s = seg_s[pick]
        e = seg_e[pick]
        kk = seg_k[pick]
        seg_e[pick] = kk + 1
        seg_s[nseg] = kk + 1
        seg_e[nseg] = e
        k1, g1, k2, g2 = -1, 0.0, -1, 0.0
        if nseg + 1 < max_leaves:  # the children's cuts are only searched if one can be used
            from0 = False
            k1, g1 = _best_cut(G, H, C, order, s, kk + 1, min_leaf, min_hess, lam, random, state, GL, HL, Gt, Ht, P, Q)  # fmt: skip
            k2, g2 = _best_cut(G, H, C, order, kk + 1, e, min_leaf, min_hess, lam, random, state, GL, HL, Gt, Ht, P, Q)  # fmt: skip
        seg_k[pick] = k1
        seg_gain[pick] = g1
        seg_k[nseg] = k2
        seg_gain[nseg] = g2
        nseg += 1
    for q in range(nseg):
        s = seg_s[q]
        e = seg_e[q]
        if e > s:
            if q == 0 and from0:  # (the same additions in the same order as a sum from 0.0)
                for c in range(k):
                    Gt[c] = Q[0, c, e - 1]
                    Ht[c] = Q[1, c, e - 1]
            elif q == 1 and from0 and e == n_order:  # the rest of the bins: totals - leaf 0
                for c in range(k):
                    Gt[c] = Q[0, c, n_order - 1] - Q[0, c, s - 1]
                    Ht[c] = Q[1, c, n_order - 1] - Q[1, c, s - 1]
            else:
                _sums(G, H, order, s, e, Gt, Ht)
            for c in range(k):
                GL[c] = -lr * Gt[c] / (Ht[c] + lam) if Ht[c] + lam > 1e-300 else 0.0
        for c in range(k):
            DV[2 + q, c] = GL[c]
            EV[2 + q, c] = np.exp(GL[c])
        if ident:  # order[t] = t + 1 (a numeric feature): contiguous bins
            leafof[s + 1 : e + 1] = 2 + q
        else:
            for t in range(s, e):
                leafof[order[t]] = 2 + q
    if C[0] > 0:  # the missing bin is a leaf of its own
        leafof[0] = 1
        for c in range(k):
            if H[0, c] + lam > 1e-300:
                DV[1, c] = -lr * G[0, c] / (H[0, c] + lam)
                EV[1, c] = np.exp(DV[1, c])


@njit(cache=True, nogil=True, error_model="numpy")
def _row_update(E, i, EV, r, y_i, w, Gn, Hn, Cn, bn, k):
    """Apply a step to row i (``F += step`` done by the caller, ``E[i] *= EV[r]``), then add
    the row's gradient and hessian at the new scores to bin ``bn`` of the next histogram.
    (Rows are indexed in place: views would cost reference counts.)"""
    s = 0.0
    for c in range(k):
        e = E[i, c] * EV[r, c]
        E[i, c] = e
        s += e
    inv = 1.0 / s
    for c in range(k):
        p = E[i, c] * inv
        g = p - (1.0 if c == y_i else 0.0)
        h = max(p * (1.0 - p), 1e-16)
        Gn[bn, c] += g * w
        Hn[bn, c] += h * w
    Cn[bn] += w


@njit(cache=True, nogil=True, error_model="numpy")
def _scores_of_rows(F, F0, scores, BT):
    """``F[i, c] = F0[i, c] + sum_j scores[j, BT[j, i], c]``: the rows' class scores from the
    terms' per-bin scores ``scores`` (p, nb, k) and bin codes ``BT`` (p, n)."""
    n, k = F.shape
    for i in range(n):
        for c in range(k):
            F[i, c] = F0[i, c]
    for j in range(BT.shape[0]):
        for i in range(n):
            b = BT[j, i]
            for c in range(k):
                F[i, c] += scores[j, b, c]


@njit(cache=True, nogil=True, error_model="numpy")
def _step_rows(F, E, leafof, EV, bins, bins_next, y, w, G, H, C, resync):
    """Apply a step to every row's ``E[i, c] = exp(F[i, c] - const_i)`` (``E[i, c] *=
    EV[leafof[bins[i]], c]``; a row whose sum leaves [1e-100, 1e100] is divided by its largest entry),
    or with ``resync`` recompute ``E[i] = exp(F[i] - max F[i])`` from the scores ``F`` (the
    caller has brought them up to date, step included), then add the row's gradient and
    hessian at the new scores to bin ``bins_next[i]`` of ``G``, ``H`` (>= nb, k) and its
    weight to ``C``: one pass, row by row (written out here: a function per row, even
    inlined, costs 4x the row). The scores ``F`` are not kept per row between resyncs."""
    n, k = F.shape
    for i in range(n):
        lf = leafof[bins[i]]
        s = 0.0
        if resync:
            mx = -np.inf
            for c in range(k):
                mx = max(mx, F[i, c])
            for c in range(k):
                e = np.exp(F[i, c] - mx)
                E[i, c] = e
                s += e
        else:
            for c in range(k):
                e = E[i, c] * EV[lf, c]
                E[i, c] = e
                s += e
            if not (s > 1e-100 and s < 1e100):  # (far from the last resync: rescale the row)
                mx = 0.0
                for c in range(k):
                    mx = max(mx, E[i, c])
                s = 0.0
                for c in range(k):
                    E[i, c] /= mx
                    s += E[i, c]
        inv = 1.0 / s
        bn = bins_next[i]
        wi = w[i]
        yi = y[i]
        for c in range(k):
            pc = E[i, c] * inv
            G[bn, c] += (pc - (1.0 if c == yi else 0.0)) * wi
            H[bn, c] += max(pc * (1.0 - pc), 1e-16) * wi
        C[bn] += wi


@njit(cache=True, nogil=True, error_model="numpy")
def boost_mains_multi(Btr, ytr, Bva, yva, F_tr, F_va, nbins, is_cat, lr, max_leaves, min_leaf,
                      min_hess, lam, cat_smooth, max_rounds, es_rounds, es_tol,
                      smoothing_rounds, seed, wtr, wva):  # fmt: skip
    """Cyclic softmax boosting of the main terms of one bag.

    Parameters
    ----------
    Btr, Bva : uint16 arrays of shape (n_tr, p), (n_va, p)
        Bin codes.
    ytr, yva : int64 arrays of shape (n_tr,), (n_va,)
        Class codes 0 .. k-1.
    F_tr, F_va : float arrays of shape (n_tr, k), (n_va, k)
        Class scores to start from (the intercepts); updated in place.
    wtr, wva : float arrays of shape (n_tr,), (n_va,)
        Sample weights.

    Returns
    -------
    best : ndarray of shape (p, max(nbins), k)
        Per-bin class scores at the round of lowest validation cross-entropy.
    n_rounds : int
    """
    n_tr, p = Btr.shape
    n_va = Bva.shape[0]
    k = F_tr.shape[1]
    maxb = 0
    for j in range(p):
        maxb = max(maxb, nbins[j])
    scores = np.zeros((p, maxb, k))
    best = np.zeros((p, maxb, k))
    G = np.zeros((maxb, k))  # histograms and steps bin-major: a row's classes are adjacent
    H = np.zeros((maxb, k))
    C = np.zeros(maxb)
    Gn = np.zeros((maxb, k))
    Hn = np.zeros((maxb, k))
    Cn = np.zeros(maxb)
    leafof = np.zeros(maxb, dtype=np.int64)  # a term's step: each bin's leaf, the leaves' steps
    DV = np.zeros((max_leaves + 2, k))
    EV = np.ones((max_leaves + 2, k))
    order = np.zeros(maxb, dtype=np.int64)
    ratio = np.zeros(maxb)
    seg = np.zeros((3, max_leaves + 1), dtype=np.int64)
    seg_gain = np.zeros(max_leaves + 1)
    V = np.zeros((6, k))
    P = np.zeros((5, maxb))
    Q = np.zeros((2, k, maxb))
    BT = np.empty((p, n_tr), dtype=Btr.dtype)  # each term's bin codes contiguous
    for j in range(p):
        for i in range(n_tr):
            BT[j, i] = Btr[i, j]
    E = np.empty((n_tr, k))  # exp(F - row max)
    state = np.array([np.uint64(seed)], dtype=np.uint64)
    use_es = n_va > 0 and es_rounds > 0
    best_loss = _ce_loss(F_va, yva, wva) if n_va > 0 else np.inf
    E_va = np.empty((n_va, k))  # exp(F_va - row max), kept like E
    _resync(F_va, E_va)
    best_round = 0
    rounds_done = 0
    F0 = F_tr.copy()
    _step_rows(F_tr, E, leafof, EV, BT[0], BT[0], ytr, wtr, G, H, C, True)  # (a zero step)
    for r in range(max_rounds):
        random = r < smoothing_rounds
        for j in range(p):
            nb = nbins[j]
            n_order = nb - 2
            if n_order > 0:
                if is_cat[j]:
                    cstar = 0
                    big = -1.0
                    for c in range(k):
                        a = 0.0
                        for t in range(nb):
                            a += abs(G[t, c])
                        if a > big:
                            big = a
                            cstar = c
                    for t in range(n_order):
                        ratio[t] = G[t + 1, cstar] / (H[t + 1, cstar] + cat_smooth)
                    idx = np.argsort(ratio[:n_order])
                    for t in range(n_order):
                        order[t] = idx[t] + 1
                else:
                    for t in range(n_order):
                        order[t] = t + 1
                _fit_tree(G, H, C, order, n_order, max_leaves, min_leaf, min_hess, lam, lr,
                          random, state, leafof, DV, EV, seg, seg_gain, V, P, Q, not is_cat[j])  # fmt: skip
            else:
                leafof[:nb] = 0
                DV[0, :] = 0.0
                EV[0, :] = 1.0
            sj = scores[j]
            for b in range(nb):
                lf = leafof[b]
                for c in range(k):
                    sj[b, c] += DV[lf, c]
            last = j + 1 == p
            jn = 0 if last else j + 1
            nbn = nbins[jn]
            Gn[:nbn, :] = 0.0
            Hn[:nbn, :] = 0.0
            Cn[:nbn] = 0.0
            resync = last and r % RESYNC_ROUNDS == RESYNC_ROUNDS - 1
            if resync:
                _scores_of_rows(F_tr, F0, scores, BT)
            _step_rows(F_tr, E, leafof, EV, BT[j], BT[jn], ytr, wtr, Gn, Hn, Cn, resync)
            G, Gn = Gn, G
            H, Hn = Hn, H
            C, Cn = Cn, C
            for i in range(n_va):
                lf = leafof[Bva[i, j]]
                for c in range(k):
                    F_va[i, c] += DV[lf, c]
                    E_va[i, c] *= EV[lf, c]
        rounds_done = r + 1
        if use_es:
            if r % RESYNC_ROUNDS == RESYNC_ROUNDS - 1:
                _resync(F_va, E_va)
            loss = _ce_loss_exp(E_va, yva, wva)
            if loss < best_loss - es_tol * abs(best_loss):
                best_loss = loss
                best_round = rounds_done
                best[:, :, :] = scores
            elif rounds_done - best_round >= es_rounds:
                break
    _scores_of_rows(F_tr, F0, scores, BT)
    out = scores if not use_es else best
    return out, rounds_done if not use_es else best_round
