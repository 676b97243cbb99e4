"""numba kernels of the multiclass explainable boosting machine: pair terms.

The pair stage of the k-class model (the main terms are in :mod:`._ebm_multi`): FAST
ranking of candidate pairs with gains summed over classes, and cyclic softmax boosting of
the chosen pairs, each step a tree "cut one feature, then the other within each side" (up to
four leaves) whose per-class Newton steps are added to the pair's cells.

The rules follow interpret 0.7.8 (``glassbox/_ebm/_boost.py`` and libebm): during the first
``interaction_smoothing_rounds`` rounds each tree is a 2 x 2 grid cut at random on both
features (``TermBoostFlags_RandomSplits``, libebm ``PartitionRandomBoosting.cpp``) and early
stopping is off; afterwards each tree is the best of both orientations whose leaves hold
``min_samples_leaf`` weight and ``min_hessian`` hessian in every class (libebm
``PartitionMultiDimensionalTree.cpp``), and boosting stops by the window rule of
``_boost.py``. The cut search reads all leaf sums from summed-area tables of the pair
histogram, so one vectorised pass over the cells gives both orientations.

A smoothing step needs no histogram: its two random cuts are drawn one step ahead (the same
draws in the same order) and the row pass before it sums the rows' gradients and hessians
straight into its four leaves. After smoothing, histograms and cut searches run on the bins
of each feature that hold training rows of the bag (a cut next to an empty bin repeats the
cut before it, so nothing is lost; wine's 105 training rows fill ~56 of 63 interaction bins);
the cuts are mapped back to the original bins for the rows, the validation rows and the step
log. ``exp(F)`` is resynced every ``RESYNC_ROUNDS`` rounds, as in the main stage.

References
----------
Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.

Crow, F. C. (1984). Summed-area tables for texture mapping. SIGGRAPH.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._ebm_boost import _next_uniform
from ._ebm_multi import RESYNC_ROUNDS, _ce_loss, _resync, _row_update, _score

# numba's on-disk cache keys this module's kernels on this file only: RESYNC_ROUNDS and the
# helpers above are compiled into them, so after editing ``_ebm_multi.py`` touch this file
# (or clear ``__pycache__``) before testing or timing, or the old kernels are loaded (seen
# 2026-12-06: pair kernels cached before RESYNC_ROUNDS changed were still loaded after it)

__all__ = ["boost_pairs_multi", "fast_pair_gains_multi"]


@njit(cache=True, nogil=True, error_model="numpy")
def pair_cut_work(m, k):
    """Scratch space of ``_best_pair_cuts`` for histograms up to ``(m, m)`` with k classes:
    ``S`` (2, k, m, m), ``SC`` (m, m), ``V2`` (2, m, m), ``V1`` (6, m), ``J`` (2, m)."""
    return (np.zeros((2, k, m, m)), np.zeros((m, m)), np.zeros((2, m, m)), np.zeros((6, m)),
            np.zeros((2, m), dtype=np.int64))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _sat(A, na, nb, T):
    """Summed-area table ``T[x, y] = sum(A[:x + 1, :y + 1])``."""
    run = 0.0
    for y in range(nb):
        run += A[0, y]
        T[0, y] = run
    for x in range(1, na):
        run = 0.0
        for y in range(nb):
            run += A[x, y]
            T[x, y] = run + T[x - 1, y]


@njit(cache=True, nogil=True, error_model="numpy")
def _best_pair_cuts(HG, HH, HC, na, nb, min_leaf, min_hess, lam, S, SC, V2, V1, J):
    """Best pair tree of each orientation on the ``(na, nb)`` histogram (class sums ``HG``,
    ``HH`` (m, m, k), weights ``HC`` (m, m)): ``(gain, i, j_left, j_right)`` of the tree "cut
    the first feature at i, then the second within each side", then the same with the second
    feature cut first (``i`` on the second feature, ``j`` on the first); i = -1: no cut,
    j = -1: that side is left whole. ``S``, ``SC``, ``V2``, ``V1``, ``J``: scratch
    (``pair_cut_work``).

    A leaf is allowed when it holds ``min_leaf`` weight and, for every class, ``min_hess``
    hessian (interpret's rule: libebm's ``PartitionMultiDimensionalTree.cpp`` checks each
    score's hessian of every leaf). Every leaf sum is read from summed-area tables, so one
    pass over the cells ``(x, y)`` gives, per class, ``g^2 / (h + lam)`` of the four
    quadrants around ``(x, y)`` (one division) and from them the value of the four sides a
    cut through ``(x, y)`` can split (both orientations, both sides), in branch-free loops
    over y (vectorised); a class whose hessian breaks the minimum adds -1e300. First cuts next
    to empty rows (columns) repeat the previous cut and are skipped; equal values keep the
    first cut.
    """
    k = HG.shape[2]
    TG = S[0]
    TH = S[1]
    _sat(HC, na, nb, SC)
    for c in range(k):
        _sat(HG[:, :, c], na, nb, TG[c])
        _sat(HH[:, :, c], na, nb, TH[c])
    BL = V2[0, 0]  # BL[y] (row x): second feature cut first at y, its low side cut at x
    BR = V2[1, 0]
    vl = V1[0]
    vr = V1[1]
    bl = V1[2]  # best value of each side of a first cut y (second feature first)
    br = V1[3]
    jl = J[0]
    jr = J[1]
    ct = SC[na - 1, nb - 1]
    parent = 0.0
    for c in range(k):
        parent += TG[c, na - 1, nb - 1] ** 2 / (TH[c, na - 1, nb - 1] + lam)
    n1 = na - 1
    n2 = nb - 1
    # the second feature cut first at y: each side left whole (bl, br), then its best cut x,
    # updated row by row in the pass below
    for y in range(n2):
        bl[y] = 0.0
        br[y] = 0.0
        jl[y] = -1
        jr[y] = -1
    hm = V1[4]
    for y in range(n2):
        hm[y] = np.inf
    for c in range(k):
        gt = TG[c, na - 1, nb - 1]
        ht = TH[c, na - 1, nb - 1]
        for y in range(n2):
            cg = TG[c, na - 1, y]
            ch = TH[c, na - 1, y]
            bl[y] += cg * cg / (ch + lam)
            br[y] += (gt - cg) ** 2 / ((ht - ch) + lam)
            hm[y] = min(hm[y], min(ch, ht - ch))
    best_a = 0.0
    ia = -1
    jla = -1
    jra = -1
    prev = 0.0
    for x in range(n1):
        sc = SC[x, nb - 1]
        empty = sc == prev
        prev = sc
        wl = 0.0
        wr = 0.0
        hmin = np.inf
        for y in range(n2):
            vl[y] = 0.0
            vr[y] = 0.0
            BL[y] = 0.0
            BR[y] = 0.0
        for c in range(k):
            gt = TG[c, na - 1, nb - 1]
            ht = TH[c, na - 1, nb - 1]
            sg = TG[c, x, nb - 1]  # rows <= x
            sh = TH[c, x, nb - 1]
            rg = gt - sg
            rh = ht - sh
            wl += sg * sg / (sh + lam)
            wr += rg * rg / (rh + lam)
            hmin = min(hmin, min(sh, rh))
            for y in range(n2):
                # the four quadrants around the cut point (x, y): rows <= x / > x, columns
                # <= y / > y; each side a cut can split is two of them
                g00 = TG[c, x, y]
                h00 = TH[c, x, y]
                cg = TG[c, na - 1, y]  # columns <= y
                ch = TH[c, na - 1, y]
                g10 = cg - g00
                h10 = ch - h00
                g01 = sg - g00
                h01 = sh - h00
                g11 = rg - g10
                h11 = rh - h10
                # g^2 / (h + lam) of each quadrant with one division (an empty one, h = 0
                # without lam, has g = 0 and a denominator of 1)
                a00 = h00 + lam
                a01 = h01 + lam
                a10 = h10 + lam
                a11 = h11 + lam
                a00 = a00 if a00 > 0.0 else 1.0
                a01 = a01 if a01 > 0.0 else 1.0
                a10 = a10 if a10 > 0.0 else 1.0
                a11 = a11 if a11 > 0.0 else 1.0
                p0 = a00 * a01
                p1 = a10 * a11
                r = 1.0 / (p0 * p1)
                r0 = p1 * r
                r1 = p0 * r
                q00 = g00 * g00 * a01 * r0
                q01 = g01 * g01 * a00 * r0
                q10 = g10 * g10 * a11 * r1
                q11 = g11 * g11 * a10 * r1
                k00 = h00 >= min_hess
                k01 = h01 >= min_hess
                k10 = h10 >= min_hess
                k11 = h11 >= min_hess
                vl[y] += q00 + q01 if k00 & k01 else -1e300
                vr[y] += q10 + q11 if k10 & k11 else -1e300
                BL[y] += q00 + q10 if k00 & k10 else -1e300
                BR[y] += q01 + q11 if k01 & k11 else -1e300
        for y in range(n2):  # the second feature first: row x as the inner cut of side y
            cc = SC[na - 1, y]
            pc = SC[x, y]
            qc = sc - pc
            ok = (pc >= min_leaf) & (cc - pc >= min_leaf)
            v = BL[y] if ok else -1e300
            up = v > bl[y]
            bl[y] = v if up else bl[y]
            jl[y] = x if up else jl[y]
            ok = (qc >= min_leaf) & ((ct - cc) - qc >= min_leaf)
            v = BR[y] if ok else -1e300
            up = v > br[y]
            br[y] = v if up else br[y]
            jr[y] = x if up else jr[y]
        if empty or sc < min_leaf or ct - sc < min_leaf or hmin < min_hess:
            continue  # (an empty row repeats the previous cut, or leaves the left side empty)
        yl = -1
        yr = -1
        for y in range(n2):
            pc = SC[x, y]
            qc = SC[na - 1, y] - pc
            if pc >= min_leaf and sc - pc >= min_leaf and vl[y] > wl:
                wl = vl[y]
                yl = y
            if qc >= min_leaf and (ct - sc) - qc >= min_leaf and vr[y] > wr:
                wr = vr[y]
                yr = y
        gain = wl + wr - parent
        if gain > best_a:
            best_a = gain
            ia = x
            jla = yl
            jra = yr
    best_b = 0.0
    ib = -1
    jlb = -1
    jrb = -1
    prev = 0.0
    for y in range(n2):
        cc = SC[na - 1, y]
        empty = cc == prev
        prev = cc
        if empty or cc < min_leaf or ct - cc < min_leaf or hm[y] < min_hess:
            continue
        gain = bl[y] + br[y] - parent
        if gain > best_b:
            best_b = gain
            ib = y
            jlb = jl[y]
            jrb = jr[y]
    return best_a, ia, jla, jra, best_b, ib, jlb, jrb


@njit(cache=True, nogil=True, error_model="numpy")
def _leaf(a, b, tr, i, jl, jr):
    """Leaf (0..3) of cell (a, b) (original orientation) in the tree "first feature cut at
    i, then the second at jl (left side) or jr (right side)"; ``tr``: the second feature is
    cut first."""
    x = b if tr else a
    y = a if tr else b
    if x <= i:
        return 1 if (jl >= 0 and y > jl) else 0
    return 3 if (jr >= 0 and y > jr) else 2


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_leaves(HG, HH, na, nb, tr, i, jl, jr, lam, lr, V):
    """Per-class Newton steps of the four leaves into ``V[:4]`` and their exponentials into
    ``V[4:8]`` (``V`` (10, k)); ``na``, ``nb``, ``i``, ``jl``, ``jr`` in the tree's
    orientation. Each row of the histogram is two runs of cells, one leaf each."""
    k = HG.shape[2]
    V[:8, :] = 0.0
    ea = nb if tr else na
    eb = na if tr else nb
    for a in range(ea):
        if tr:  # columns <= i: left side, split on rows at jl; the rest at jr
            cut = i
            q0 = 0 if (jl < 0 or a <= jl) else 1
            q1 = 2 if (jr < 0 or a <= jr) else 3
        elif a <= i:
            cut = jl if jl >= 0 else eb - 1
            q0 = 0
            q1 = 1
        else:
            cut = jr if jr >= 0 else eb - 1
            q0 = 2
            q1 = 3
        for b in range(eb):
            q = q0 if b <= cut else q1
            for c in range(k):
                V[q, c] += HG[a, b, c]
                V[4 + q, c] += HH[a, b, c]
    _leaf_steps(V, k, lam, lr)


@njit(cache=True, nogil=True, error_model="numpy")
def _leaf_steps(V, k, lam, lr):
    """Turn the four leaves' gradient / hessian sums ``V[q]`` / ``V[4 + q]`` into their
    Newton steps ``-lr g / (h + lam)`` and the steps' exponentials, in place."""
    for q in range(4):
        for c in range(k):
            den = V[4 + q, c] + lam
            v = -lr * V[q, c] / den if den > 1e-300 else 0.0
            V[q, c] = v
            V[4 + q, c] = np.exp(v)


@njit(cache=True, nogil=True, error_model="numpy")
def _rect(T, x0, x1, y0, y1):
    """Sum of the cells ``[x0, x1] x [y0, y1]`` from the summed-area table ``T`` (0 if empty)."""
    if x0 > x1 or y0 > y1:
        return 0.0
    v = T[x1, y1]
    if x0 > 0:
        v -= T[x0 - 1, y1]
    if y0 > 0:
        v -= T[x1, y0 - 1]
    if x0 > 0 and y0 > 0:
        v += T[x0 - 1, y0 - 1]
    return v


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_leaves_sat(S, na, nb, tr, i, jl, jr, lam, lr, V):
    """``_pair_leaves`` from the summed-area tables ``S`` (2, k, n_a, n_b) of the histogram
    (``_best_pair_cuts``); ``na``, ``nb`` in the original orientation, the cuts in the tree's."""
    k = S.shape[1]
    for c in range(k):
        for z in range(2):
            T = S[z, c]
            if tr:  # columns cut at i first, then rows within each side
                a = jl if jl >= 0 else na - 1
                b = jr if jr >= 0 else na - 1
                V[4 * z + 0, c] = _rect(T, 0, a, 0, i)
                V[4 * z + 1, c] = _rect(T, a + 1, na - 1, 0, i)
                V[4 * z + 2, c] = _rect(T, 0, b, i + 1, nb - 1)
                V[4 * z + 3, c] = _rect(T, b + 1, na - 1, i + 1, nb - 1)
            else:
                a = jl if jl >= 0 else nb - 1
                b = jr if jr >= 0 else nb - 1
                V[4 * z + 0, c] = _rect(T, 0, i, 0, a)
                V[4 * z + 1, c] = _rect(T, 0, i, a + 1, nb - 1)
                V[4 * z + 2, c] = _rect(T, i + 1, na - 1, 0, b)
                V[4 * z + 3, c] = _rect(T, i + 1, na - 1, b + 1, nb - 1)
    _leaf_steps(V, k, lam, lr)


@njit(cache=True, nogil=True, error_model="numpy")
def _rect_add(D, x0, x1, y0, y1, v):
    """Add ``v`` (k,) to the cells ``[x0, x1] x [y0, y1]`` of the difference array ``D``
    (its 2-D running sum); nothing when the rectangle is empty."""
    if x0 > x1 or y0 > y1:
        return
    for c in range(D.shape[2]):
        D[x0, y0, c] += v[c]
        D[x1 + 1, y0, c] -= v[c]
        D[x0, y1 + 1, c] -= v[c]
        D[x1 + 1, y1 + 1, c] += v[c]


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_add(sc, na, nb, tr, i, jl, jr, V):
    """Add the leaves' steps ``V[:4]`` to every cell of the pair's scores ``sc``
    (n_a, n_b, k), original orientation (``na``, ``nb`` in the tree's)."""
    k = sc.shape[2]
    ea = nb if tr else na
    eb = na if tr else nb
    for a in range(ea):
        for b in range(eb):
            q = _leaf(a, b, tr, i, jl, jr)
            for c in range(k):
                sc[a, b, c] += V[q, c]


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_fill(HG, HH, na, nb, tr, i, jl, jr, lam, lr, sc, V):
    """``_pair_leaves``, then the steps added to the pair's scores ``sc`` (``_pair_add``)."""
    _pair_leaves(HG, HH, na, nb, tr, i, jl, jr, lam, lr, V)
    _pair_add(sc, na, nb, tr, i, jl, jr, V)


@njit(cache=True, nogil=True, error_model="numpy")
def boost_pairs_multi(Ptr, ytr, Pva, yva, F_tr, F_va, pairs, nbins, lr, min_leaf, min_hess,
                      lam, max_rounds, es_rounds, es_tol, smoothing_rounds, seed, wtr, wva):  # fmt: skip
    """Cyclic softmax boosting of pair terms of one bag on interaction bins, from scores F
    (n, k). Returns the per-cell class scores (q, m, m, k) at the round of lowest validation
    cross-entropy and that round.

    As interpret 0.7.8 boosts pairs (``glassbox/_ebm/_boost.py`` and libebm): during the
    first ``smoothing_rounds`` rounds each pair tree is a 2 x 2 grid cut at random on both
    features (``TermBoostFlags_RandomSplits``) and early stopping is off; afterwards each tree
    is the best over both orientations, with every leaf holding ``min_leaf`` weight and
    ``min_hess`` hessian in each class, and boosting stops once the lowest loss of the last
    ``es_rounds`` rounds is not below the lowest loss before them (after smoothing) by more
    than ``es_tol`` times the smaller of that loss and the lowest loss so far. (interpret
    checks after every term step, and boosts greedily between cyclic rounds; rounds here are
    cyclic and checked as a whole.)"""
    n_tr = Ptr.shape[0]
    n_va = Pva.shape[0]
    q = pairs.shape[0]
    k = F_tr.shape[1]
    m = 0
    for j in range(nbins.shape[0]):
        m = max(m, nbins[j])
    # the steps taken (term, orientation, cuts; leaf steps), replayed up to the best round at
    # the end instead of copying every term's scores at each better round
    cap = max(q, 1) * (smoothing_rounds + 2 * es_rounds + 16)
    log_cut = np.zeros((cap, 5), dtype=np.int64)
    log_val = np.zeros((cap, 4, k))
    n_log = 0
    best_log = 0
    # the histograms and cut searches run on each feature's bins that hold training rows
    # (``occ[f, :nocc[f]]``, rows coded ``PcT[f, i]``): a cut next to an empty bin repeats
    # the cut before it, so the search skips nothing; cuts are logged and applied in the
    # original bins (a cut after compressed bin x' is a cut after bin occ[f, x'])
    n_feat = nbins.shape[0]
    occ = np.zeros((n_feat, m), dtype=np.int64)
    nocc = np.zeros(n_feat, dtype=np.int64)
    PcT = np.zeros((n_feat, n_tr), dtype=np.uint16)
    seen = np.zeros(m, dtype=np.int64)
    for f in range(n_feat):
        seen[:] = -1
        for i in range(n_tr):
            seen[Ptr[i, f]] = 0
        u = 0
        for b in range(nbins[f]):
            if seen[b] == 0:
                seen[b] = u
                occ[f, u] = b
                u += 1
        nocc[f] = u
        for i in range(n_tr):
            PcT[f, i] = seen[Ptr[i, f]]
    HG = np.zeros((m, m, k))
    HH = np.zeros((m, m, k))
    HC = np.zeros((m, m))
    NG = np.zeros((m, m, k))
    NH = np.zeros((m, m, k))
    NC = np.zeros((m, m))
    S, SC, V2, V1, J = pair_cut_work(m, k)
    V = np.zeros((10, k))
    state = np.array([np.uint64(seed)], dtype=np.uint64)
    use_es = n_va > 0 and es_rounds > 0
    best_loss = _ce_loss(F_va, yva, wva) if n_va > 0 else np.inf
    best_round = 0
    window = np.full(max(es_rounds, 1), np.inf)  # the last es_rounds losses after smoothing
    w_at = 0
    min_prev = np.inf  # the lowest loss after smoothing older than the window
    rounds_done = 0
    E = np.ones((n_tr, k))
    one = np.ones((1, k))
    _resync(F_tr, E)
    za = -1  # the pair whose histogram the spare buffers hold (-1: they are clear)
    zb = -1
    # a smoothing step needs only its four leaves' sums: its cuts are drawn one step ahead
    # (the same draws in the same order) and the row pass before it sums the rows' gradients
    # and hessians per leaf into L instead of filling the pair's histogram
    L = np.zeros((8, k))
    LC = np.zeros(4)
    rci = 0  # the cuts drawn for the next smoothing step
    rcj = 0
    if q > 0:
        fa = pairs[0, 0]
        fb = pairs[0, 1]
        if smoothing_rounds > 0 and max_rounds > 0:
            rci = int(_next_uniform(state) * (nbins[fa] - 1))
            rcj = int(_next_uniform(state) * (nbins[fb] - 1))
            L[:, :] = 0.0
            for i in range(n_tr):
                lf = _leaf(Ptr[i, fa], Ptr[i, fb], False, rci, rcj, rcj)
                _row_update(E, i, one, 0, ytr[i], wtr[i], L[:4], L[4:], LC, lf, k)
        else:
            HGf = HG.reshape(m * m, k)
            HHf = HH.reshape(m * m, k)
            HCf = HC.reshape(m * m)
            for i in range(n_tr):
                cell = np.int64(PcT[fa, i]) * m + np.int64(PcT[fb, i])
                _row_update(E, i, one, 0, ytr[i], wtr[i], HGf, HHf, HCf, cell, k)
    for r in range(max_rounds):
        random = r < smoothing_rounds
        for t in range(q):
            fa = pairs[t, 0]
            fb = pairs[t, 1]
            na = nbins[fa]
            nb = nbins[fb]
            if random:
                # interpret's smoothing ("RandomSplits"): one cut drawn uniformly on each
                # feature, a 2 x 2 grid of Newton steps, no search and no minimums
                # (drawn and summed in the previous row pass: L)
                transposed = False
                ci, cjl, cjr = rci, rcj, rcj
                V[:8, :] = L
                _leaf_steps(V, k, lam, lr)
            else:
                nca = nocc[fa]
                ncb = nocc[fb]
                gain_a, ia, jla, jra, gain_b, ib, jlb, jrb = _best_pair_cuts(
                    HG, HH, HC, nca, ncb, min_leaf, min_hess, lam, S, SC, V2, V1, J
                )
                transposed = ib >= 0 and (ia < 0 or gain_b > gain_a)
                ci, cjl, cjr = na + nb, -1, -1  # no cut: every cell in leaf 0, which stays put
                if ia < 0 and ib < 0:
                    V[0, :] = 0.0
                    V[4, :] = 1.0
                elif transposed:
                    _pair_leaves_sat(S, nca, ncb, True, ib, jlb, jrb, lam, lr, V)
                    ci = occ[fb, ib]
                    cjl = occ[fa, jlb] if jlb >= 0 else -1
                    cjr = occ[fa, jrb] if jrb >= 0 else -1
                else:
                    _pair_leaves_sat(S, nca, ncb, False, ia, jla, jra, lam, lr, V)
                    ci = occ[fa, ia]
                    cjl = occ[fb, jla] if jla >= 0 else -1
                    cjr = occ[fb, jra] if jra >= 0 else -1
            if ci < na + nb:
                if n_log == log_cut.shape[0]:
                    log_cut = np.concatenate((log_cut, np.zeros_like(log_cut)))
                    log_val = np.concatenate((log_val, np.zeros_like(log_val)))
                log_cut[n_log, 0] = t
                log_cut[n_log, 1] = 1 if transposed else 0
                log_cut[n_log, 2] = ci
                log_cut[n_log, 3] = cjl
                log_cut[n_log, 4] = cjr
                log_val[n_log] = V[:4]
                n_log += 1
            last = t + 1 == q
            resync = last and r % RESYNC_ROUNDS == RESYNC_ROUNDS - 1  # E = exp(F - max F) anew
            tn = 0 if last else t + 1
            ga = pairs[tn, 0]
            gb = pairs[tn, 1]
            rnext = (r + 1 if last else r) < smoothing_rounds
            if rnext:  # the next step is a smoothing step: its cuts now, its leaves' sums below
                rci = int(_next_uniform(state) * (nbins[ga] - 1))
                rcj = int(_next_uniform(state) * (nbins[gb] - 1))
                L[:, :] = 0.0
                for i in range(n_tr):
                    lf = _leaf(Ptr[i, fa], Ptr[i, fb], transposed, ci, cjl, cjr)
                    s = 0.0
                    if resync:
                        mx = -np.inf
                        for c in range(k):
                            v = F_tr[i, c] + V[lf, c]
                            F_tr[i, c] = v
                            mx = max(mx, v)
                        for c in range(k):
                            e = np.exp(F_tr[i, c] - mx)
                            E[i, c] = e
                            s += e
                    else:
                        for c in range(k):
                            F_tr[i, c] += V[lf, c]
                            e = E[i, c] * V[4 + lf, c]
                            E[i, c] = e
                            s += e
                        if not (
                            s > 1e-100 and s < 1e100
                        ):  # (rescale a row far from its last resync)
                            mx = 0.0
                            for c in range(k):
                                mx = max(mx, E[i, c])
                            s = 0.0
                            for c in range(k):
                                E[i, c] /= mx
                                s += E[i, c]
                    inv = 1.0 / s
                    wi = wtr[i]
                    yi = ytr[i]
                    ln = _leaf(Ptr[i, ga], Ptr[i, gb], False, rci, rcj, rcj)
                    for c in range(k):
                        pc = E[i, c] * inv
                        L[ln, c] += (pc - (1.0 if c == yi else 0.0)) * wi
                        L[4 + ln, c] += max(pc * (1.0 - pc), 1e-16) * wi
                for i in range(n_va):
                    lf = _leaf(Pva[i, fa], Pva[i, fb], transposed, ci, cjl, cjr)
                    for c in range(k):
                        F_va[i, c] += V[lf, c]
                continue
            NGf = NG.reshape(m * m, k)
            NHf = NH.reshape(m * m, k)
            NCf = NC.reshape(m * m)
            if za >= 0:  # clear the cells the rows filled (the histogram of pair (za, zb))
                for i in range(n_tr):
                    cell = np.int64(PcT[za, i]) * m + np.int64(PcT[zb, i])
                    NCf[cell] = 0.0
                    for c in range(k):
                        NGf[cell, c] = 0.0
                        NHf[cell, c] = 0.0
            for i in range(n_tr):
                lf = _leaf(Ptr[i, fa], Ptr[i, fb], transposed, ci, cjl, cjr)
                cell = np.int64(PcT[ga, i]) * m + np.int64(PcT[gb, i])
                s = 0.0  # the row's step, then its gradient and hessian into the next histogram
                if resync:  # (written out: a function per row, even inlined, costs 4x the row)
                    mx = -np.inf
                    for c in range(k):
                        v = F_tr[i, c] + V[lf, c]
                        F_tr[i, c] = v
                        mx = max(mx, v)
                    for c in range(k):
                        e = np.exp(F_tr[i, c] - mx)
                        E[i, c] = e
                        s += e
                else:
                    for c in range(k):
                        F_tr[i, c] += V[lf, c]
                        e = E[i, c] * V[4 + lf, c]
                        E[i, c] = e
                        s += e
                    if not (s > 1e-100 and s < 1e100):  # (rescale a row far from its last resync)
                        mx = 0.0
                        for c in range(k):
                            mx = max(mx, E[i, c])
                        s = 0.0
                        for c in range(k):
                            E[i, c] /= mx
                            s += E[i, c]
                inv = 1.0 / s
                wi = wtr[i]
                yi = ytr[i]
                for c in range(k):
                    pc = E[i, c] * inv
                    NGf[cell, c] += (pc - (1.0 if c == yi else 0.0)) * wi
                    NHf[cell, c] += max(pc * (1.0 - pc), 1e-16) * wi
                NCf[cell] += wi
            HG, NG = NG, HG
            HH, NH = NH, HH
            HC, NC = NC, HC
            za = -1 if random else fa  # (a smoothing step's histogram was never filled)
            zb = fb
            for i in range(n_va):
                lf = _leaf(Pva[i, fa], Pva[i, fb], transposed, ci, cjl, cjr)
                for c in range(k):
                    F_va[i, c] += V[lf, c]
        rounds_done = r + 1
        if use_es:
            loss = _ce_loss(F_va, yva, wva)
            tol = min(abs(best_loss), abs(min_prev)) * es_tol
            if not np.isfinite(tol):
                tol = 0.0
            if loss < best_loss:  # the model kept: the lowest validation loss
                best_loss = loss
                best_round = rounds_done
                best_log = n_log
            if not random:  # no stopping during smoothing (random cuts: noisy gains)
                toss = window[w_at]
                window[w_at] = loss
                w_at = (w_at + 1) % es_rounds
                min_prev = min(min_prev, toss)
                if min_prev - tol <= window.min():
                    break
    upto = best_log if use_es else n_log
    # each step adds a constant to the four rectangles of its leaves: corner updates of a
    # difference array per pair, then one 2-D running sum per pair
    D = np.zeros((q, m + 1, m + 1, k))
    for e in range(upto):
        t = log_cut[e, 0]
        na = nbins[pairs[t, 0]]
        nb = nbins[pairs[t, 1]]
        i = log_cut[e, 2]
        if log_cut[e, 1] == 1:  # columns cut at i, then rows at jl / jr
            a = log_cut[e, 3] if log_cut[e, 3] >= 0 else na - 1
            b = log_cut[e, 4] if log_cut[e, 4] >= 0 else na - 1
            _rect_add(D[t], 0, a, 0, i, log_val[e, 0])
            _rect_add(D[t], a + 1, na - 1, 0, i, log_val[e, 1])
            _rect_add(D[t], 0, b, i + 1, nb - 1, log_val[e, 2])
            _rect_add(D[t], b + 1, na - 1, i + 1, nb - 1, log_val[e, 3])
        else:
            a = log_cut[e, 3] if log_cut[e, 3] >= 0 else nb - 1
            b = log_cut[e, 4] if log_cut[e, 4] >= 0 else nb - 1
            _rect_add(D[t], 0, i, 0, a, log_val[e, 0])
            _rect_add(D[t], 0, i, a + 1, nb - 1, log_val[e, 1])
            _rect_add(D[t], i + 1, na - 1, 0, b, log_val[e, 2])
            _rect_add(D[t], i + 1, na - 1, b + 1, nb - 1, log_val[e, 3])
    scores = np.zeros((q, m, m, k))
    for t in range(q):
        Dt = D[t]
        for x in range(m):
            for y in range(m):
                for c in range(k):
                    v = Dt[x, y, c]
                    if x > 0:
                        v += Dt[x - 1, y, c]
                    if y > 0:
                        v += Dt[x, y - 1, c]
                    if x > 0 and y > 0:
                        v -= Dt[x - 1, y - 1, c]
                    Dt[x, y, c] = v
                    scores[t, x, y, c] = v
    return scores, best_round if use_es else rounds_done


@njit(cache=True, nogil=True, error_model="numpy")
def fast_pair_gains_multi(P, g, h, w, pairs, nbins, min_leaf, min_hess, lam):
    """FAST strength of each pair for k classes: the best 2x2 cut's gain summed over classes.

    ``g``, ``h`` (n, k) are weighted gradients and hessians, ``w`` (n,) the weights (counts
    towards ``min_leaf``); ``min_hess`` applies to the hessian summed over classes.
    """
    n = P.shape[0]
    k = g.shape[1]
    q = pairs.shape[0]
    m = 0
    for j in range(nbins.shape[0]):
        m = max(m, nbins[j])
    SG = np.zeros((m, m, k))
    SH = np.zeros((m, m, k))
    SC = np.zeros((m, m))
    out = np.zeros(q)
    Q = np.zeros((4, k))
    QH = np.zeros((4, k))
    Gt = np.zeros(k)
    Ht = np.zeros(k)
    hs = np.zeros(4)
    for t in range(q):
        fa = pairs[t, 0]
        fb = pairs[t, 1]
        na = nbins[fa]
        nb = nbins[fb]
        SG[:na, :nb, :] = 0.0
        SH[:na, :nb, :] = 0.0
        SC[:na, :nb] = 0.0
        for i in range(n):
            a = P[i, fa]
            b = P[i, fb]
            SC[a, b] += w[i]
            for c in range(k):
                SG[a, b, c] += g[i, c]
                SH[a, b, c] += h[i, c]
        for a in range(na):
            for b in range(nb):
                if a > 0:
                    SC[a, b] += SC[a - 1, b]
                    for c in range(k):
                        SG[a, b, c] += SG[a - 1, b, c]
                        SH[a, b, c] += SH[a - 1, b, c]
                if b > 0:
                    SC[a, b] += SC[a, b - 1]
                    for c in range(k):
                        SG[a, b, c] += SG[a, b - 1, c]
                        SH[a, b, c] += SH[a, b - 1, c]
                if a > 0 and b > 0:
                    SC[a, b] -= SC[a - 1, b - 1]
                    for c in range(k):
                        SG[a, b, c] -= SG[a - 1, b - 1, c]
                        SH[a, b, c] -= SH[a - 1, b - 1, c]
        Ct = SC[na - 1, nb - 1]
        for c in range(k):
            Gt[c] = SG[na - 1, nb - 1, c]
            Ht[c] = SH[na - 1, nb - 1, c]
        parent = _score(Gt, Ht, lam, k)
        best = 0.0
        for i in range(na - 1):
            for j in range(nb - 1):
                c00 = SC[i, j]
                c01 = SC[i, nb - 1] - c00
                c10 = SC[na - 1, j] - c00
                c11 = Ct - c00 - c01 - c10
                if c00 < min_leaf or c01 < min_leaf or c10 < min_leaf or c11 < min_leaf:
                    continue
                hs[:] = 0.0
                for c in range(k):
                    Q[0, c] = SG[i, j, c]
                    QH[0, c] = SH[i, j, c]
                    Q[1, c] = SG[i, nb - 1, c] - Q[0, c]
                    QH[1, c] = SH[i, nb - 1, c] - QH[0, c]
                    Q[2, c] = SG[na - 1, j, c] - Q[0, c]
                    QH[2, c] = SH[na - 1, j, c] - QH[0, c]
                    Q[3, c] = Gt[c] - Q[0, c] - Q[1, c] - Q[2, c]
                    QH[3, c] = Ht[c] - QH[0, c] - QH[1, c] - QH[2, c]
                    for z in range(4):
                        hs[z] += QH[z, c]
                if hs[0] < min_hess or hs[1] < min_hess or hs[2] < min_hess or hs[3] < min_hess:
                    continue
                gain = -parent
                for z in range(4):
                    gain += _score(Q[z], QH[z], lam, k)
                if gain > best:
                    best = gain
        out[t] = best
    return out
