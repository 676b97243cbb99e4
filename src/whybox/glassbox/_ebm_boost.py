"""numba kernels of the explainable boosting machine: histograms, shallow trees, cyclic boosting.

One bag is boosted by one call, without the GIL, so bags run in parallel threads and each
bag's result depends only on its own rows and seed (never on ``n_jobs``).

Cyclic gradient boosting (Lou et al. 2013, Nori et al. 2019): each round visits every term in
turn; for the visited term it sums the gradients and hessians of the loss per bin (a
histogram), fits a tree with at most ``max_leaves`` leaves over the ordered bins (numeric bins
in value order, categories ordered by their gradient ratio), and adds the leaves' Newton steps
scaled by the learning rate to the term's per-bin scores. The missing-value bin always gets a
leaf of its own. During the first ``smoothing_rounds`` rounds each cut is drawn at random
among the allowed cuts, which gives smooth starting shapes. After every round the loss on the
bag's validation rows decides early stopping; the scores of the best round are kept.

Pair terms use a 2-D histogram and a tree with one cut on one feature and one cut on the other
feature within each side (up to four leaves), the best over both orientations, found in
``O(n_a * n_b)`` with cumulative sums. The missing bin of a feature is its lowest bin
in pair terms.

Objectives: ``0`` = binary log-loss on the log-odds scale, ``1`` = squared error.

For the log-loss the kernels keep ``exp(-F)`` per row next to the scores ``F`` and multiply
it by ``exp(-delta)`` of the leaf a row falls in (one exponential per leaf instead of one per
row and step), recomputing it from ``F`` once per round. Applying a step and building the
next term's histogram share one pass over the rows.

References
----------
Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["boost_mains", "boost_pairs", "gradients", "predict_terms"]


LOGLOSS = 0
SQUARED = 1


@njit(cache=True, nogil=True, error_model="numpy")
def _next_uniform(state: np.ndarray) -> float:
    """splitmix64 step on ``state[0]``; a uniform draw in [0, 1)."""
    z = (state[0] + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    state[0] = z
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) / 9007199254740992.0


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_hess(f: float, y: float, objective: int) -> tuple[float, float]:
    if objective == LOGLOSS:
        p = 1.0 / (1.0 + np.exp(-f))
        return p - y, max(p * (1.0 - p), 1e-16)
    return f - y, 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_hess_e(e: float, f: float, y: float, objective: int) -> tuple[float, float]:
    """Gradient and hessian from ``e = exp(-f)`` (log-loss) or from ``f`` (squared error)."""
    if objective == LOGLOSS:
        p = 1.0 / (1.0 + e)
        return p - y, max(p * (1.0 - p), 1e-16)
    return f - y, 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def _resync(F: np.ndarray, E: np.ndarray, objective: int) -> None:
    """``E = exp(-F)``: recomputed once per round so the running products never drift."""
    if objective == LOGLOSS:
        for i in range(F.shape[0]):
            E[i] = np.exp(-F[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _exp_neg(delta: np.ndarray, out: np.ndarray, n: int) -> None:
    """``out[:n] = exp(-delta[:n])``, one exp per run of equal values (trees have few leaves)."""
    last = 0.0
    e = 1.0
    for k in range(n):
        v = delta[k]
        if v != last:
            last = v
            e = np.exp(-v)
        out[k] = e


@njit(cache=True, nogil=True, error_model="numpy")
def _loss(F: np.ndarray, y: np.ndarray, w: np.ndarray, objective: int) -> float:
    """Weighted mean loss ``sum_i w_i l_i / sum_i w_i`` (the plain mean for unit weights)."""
    total = 0.0
    wsum = 0.0
    for i in range(F.shape[0]):
        f = F[i]
        wsum += w[i]
        if objective == LOGLOSS:
            # softplus(f) - y f, computed stably
            if f > 0:
                total += w[i] * (f + np.log1p(np.exp(-f)) - y[i] * f)
            else:
                total += w[i] * (np.log1p(np.exp(f)) - y[i] * f)
        else:
            d = f - y[i]
            total += w[i] * (d * d)
    return total / wsum if wsum > 0 else total


@njit(cache=True, nogil=True, error_model="numpy")
def gradients(F: np.ndarray, y: np.ndarray, objective: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row gradient and hessian of the loss at scores ``F``, each of shape (n,)."""
    n = F.shape[0]
    g = np.empty(n)
    h = np.empty(n)
    for i in range(n):
        g[i], h[i] = _grad_hess(F[i], y[i], objective)
    return g, h


@njit(cache=True, nogil=True, error_model="numpy")
def _best_cut(G, H, C, order, s, e, min_leaf, min_hess, lam, random, state):
    """Best (or random) cut of ordered bins ``order[s:e]``; returns (position, gain).

    The cut at position ``k`` puts ``order[s:k+1]`` left and ``order[k+1:e]`` right; -1 when
    no cut leaves ``min_leaf`` rows and ``min_hess`` hessian on both sides.
    """
    Gt = 0.0
    Ht = 0.0
    Ct = 0.0
    for t in range(s, e):
        b = order[t]
        Gt += G[b]
        Ht += H[b]
        Ct += C[b]
    parent = Gt * Gt / (Ht + lam) if Ht + lam > 0 else 0.0
    target = -1
    if random:
        n_valid = 0
        GL = 0.0
        HL = 0.0
        CL = 0.0
        for t in range(s, e - 1):
            b = order[t]
            GL += G[b]
            HL += H[b]
            CL += C[b]
            if CL >= min_leaf and Ct - CL >= min_leaf and HL >= min_hess and Ht - HL >= min_hess:
                n_valid += 1
        if n_valid == 0:
            return -1, 0.0
        target = int(_next_uniform(state) * n_valid)
    best_k = -1
    best_gain = -np.inf
    GL = 0.0
    HL = 0.0
    CL = 0.0
    seen = 0
    for t in range(s, e - 1):
        b = order[t]
        GL += G[b]
        HL += H[b]
        CL += C[b]
        CR = Ct - CL
        HR = Ht - HL
        if CL < min_leaf or CR < min_leaf or HL < min_hess or HR < min_hess:
            continue
        GR = Gt - GL
        gain = GL * GL / (HL + lam) + GR * GR / (HR + lam) - parent
        if random:
            if seen == target:
                return t, gain
            seen += 1
        elif gain > best_gain:
            best_gain = gain
            best_k = t
    if best_k < 0 or best_gain <= 0.0:
        return -1, 0.0
    return best_k, best_gain


@njit(cache=True, nogil=True, error_model="numpy")
def _fit_tree(G, H, C, order, n_order, max_leaves, min_leaf, min_hess, lam, lr, random, state,
              delta, seg_s, seg_e, seg_k, seg_gain):  # fmt: skip
    """Fit a tree of at most ``max_leaves`` leaves on ordered bins; write Newton steps to delta."""
    delta[:] = 0.0
    nseg = 1
    seg_s[0] = 0
    seg_e[0] = n_order
    k, gain = _best_cut(G, H, C, order, 0, n_order, min_leaf, min_hess, lam, random, state)
    seg_k[0] = k
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
        k = seg_k[pick]
        seg_e[pick] = k + 1
        seg_s[nseg] = k + 1
        seg_e[nseg] = e
        k1, g1 = _best_cut(G, H, C, order, s, k + 1, min_leaf, min_hess, lam, random, state)
        k2, g2 = _best_cut(G, H, C, order, k + 1, e, min_leaf, min_hess, lam, random, state)
        seg_k[pick] = k1
        seg_gain[pick] = g1
        seg_k[nseg] = k2
        seg_gain[nseg] = g2
        nseg += 1
    for q in range(nseg):
        Gs = 0.0
        Hs = 0.0
        for t in range(seg_s[q], seg_e[q]):
            Gs += G[order[t]]
            Hs += H[order[t]]
        v = -lr * Gs / (Hs + lam) if Hs + lam > 1e-300 else 0.0
        for t in range(seg_s[q], seg_e[q]):
            delta[order[t]] = v
    # the missing bin is a leaf of its own ("separate")
    if C[0] > 0 and H[0] + lam > 1e-300:
        delta[0] = -lr * G[0] / (H[0] + lam)


@njit(cache=True, nogil=True, error_model="numpy")
def predict_terms(B, scores, intercept):
    """``intercept + sum_j scores[j, B[:, j]]`` for bin codes B (n, p); shape (n,)."""
    n, p = B.shape
    F = np.full(n, intercept)
    for j in range(p):
        for i in range(n):
            F[i] += scores[j, B[i, j]]
    return F


@njit(cache=True, nogil=True, error_model="numpy")
def _boost_mains(Btr, ytr, Bva, yva, F_tr, F_va, nbins, is_cat, objective, lr, max_leaves,
                min_leaf, min_hess, lam, cat_smooth, max_rounds, es_rounds, es_tol,
                smoothing_rounds, seed, wtr, wva):  # fmt: skip
    """Cyclic boosting of the main terms of one bag.

    Parameters
    ----------
    Btr, Bva : uint16 arrays of shape (n_tr, p), (n_va, p)
        Bin codes of the bag's training and validation rows.
    ytr, yva : float arrays of shape (n_tr,), (n_va,)
        Targets (0/1 for log-loss).
    F_tr, F_va : float arrays of shape (n_tr,), (n_va,)
        Scores to start from (the intercept); updated in place to the final round's scores.
    nbins : int array of shape (p,)
        Bins per feature (missing + values + unseen).
    is_cat : bool array of shape (p,)
        Categorical features, whose bins are ordered by gradient ratio before each cut.

    Returns
    -------
    best : ndarray of shape (p, max(nbins))
        Per-bin scores at the round with the lowest validation loss (the last round when
        there are no validation rows or early stopping is off).
    n_rounds : int
        Number of rounds the returned scores took.
    """
    n_tr, p = Btr.shape
    n_va = Bva.shape[0]
    maxb = 0
    for j in range(p):
        maxb = max(maxb, nbins[j])
    scores = np.zeros((p, maxb))
    best = np.zeros((p, maxb))
    G = np.zeros(maxb)
    H = np.zeros(maxb)
    C = np.zeros(maxb)
    delta = np.zeros(maxb)
    order = np.zeros(maxb, dtype=np.int64)
    ratio = np.zeros(maxb)
    seg_s = np.zeros(max_leaves + 1, dtype=np.int64)
    seg_e = np.zeros(max_leaves + 1, dtype=np.int64)
    seg_k = np.zeros(max_leaves + 1, dtype=np.int64)
    seg_gain = np.zeros(max_leaves + 1)
    state = np.array([np.uint64(seed)], dtype=np.uint64)
    use_es = n_va > 0 and es_rounds > 0
    best_loss = _loss(F_va, yva, wva, objective) if n_va > 0 else np.inf
    best_round = 0
    rounds_done = 0
    E_tr = np.ones(n_tr)
    ed = np.ones(maxb)
    Gn = np.zeros(maxb)
    Hn = np.zeros(maxb)
    Cn = np.zeros(maxb)
    _resync(F_tr, E_tr, objective)
    G[: nbins[0]] = 0.0
    H[: nbins[0]] = 0.0
    C[: nbins[0]] = 0.0
    for i in range(n_tr):
        b = Btr[i, 0]
        g, h = _grad_hess_e(E_tr[i], F_tr[i], ytr[i], objective)
        w = wtr[i]
        G[b] += g * w
        H[b] += h * w
        C[b] += w
    for r in range(max_rounds):
        random = r < smoothing_rounds
        for j in range(p):
            # G, H, C hold term j's histogram (built while applying the previous step)
            nb = nbins[j]
            n_order = nb - 2  # value bins 1 .. nb-2 (0 is missing, nb-1 unseen)
            if n_order > 0:
                if is_cat[j]:
                    for t in range(n_order):
                        ratio[t] = G[t + 1] / (H[t + 1] + cat_smooth)
                    idx = np.argsort(ratio[:n_order])
                    for t in range(n_order):
                        order[t] = idx[t] + 1
                else:
                    for t in range(n_order):
                        order[t] = t + 1
                _fit_tree(G, H, C, order, n_order, max_leaves, min_leaf, min_hess, lam, lr,
                          random, state, delta, seg_s, seg_e, seg_k, seg_gain)  # fmt: skip
            else:
                delta[:nb] = 0.0
            for b in range(nb):
                scores[j, b] += delta[b]
            _exp_neg(delta, ed, nb)
            # apply the step and build the next term's histogram in the same pass; after the
            # last term of a round exp(-F) is recomputed from F
            last = j + 1 == p
            jn = 0 if last else j + 1
            nbn = nbins[jn]
            Gn[:nbn] = 0.0
            Hn[:nbn] = 0.0
            Cn[:nbn] = 0.0
            for i in range(n_tr):
                b = Btr[i, j]
                f = F_tr[i] + delta[b]
                F_tr[i] = f
                e = 1.0
                if objective == LOGLOSS:
                    e = np.exp(-f) if last else E_tr[i] * ed[b]
                    E_tr[i] = e
                g, h = _grad_hess_e(e, f, ytr[i], objective)
                w = wtr[i]
                bn = Btr[i, jn]
                Gn[bn] += g * w
                Hn[bn] += h * w
                Cn[bn] += w
            G, Gn = Gn, G
            H, Hn = Hn, H
            C, Cn = Cn, C
            for i in range(n_va):
                F_va[i] += delta[Bva[i, j]]
        rounds_done = r + 1
        if use_es:
            loss = _loss(F_va, yva, wva, objective)
            if loss < best_loss - es_tol * abs(best_loss):
                best_loss = loss
                best_round = rounds_done
                best[:, :] = scores
            elif rounds_done - best_round >= es_rounds:
                break
    if not use_es:
        return scores, rounds_done
    return best, best_round


@njit(cache=True, nogil=True, error_model="numpy")
def _prefix_step(S, L, b, t, right, n):
    """Row ``b`` of the prefix sums along ``b``: ``S[b] = S[b - 1] + L[b]`` (or of ``t - L[b]``
    with ``right``), from zero. Rows are indexed in place: views would cost reference counts."""
    if b == 0:
        if right:
            for i in range(n):
                S[0, i] = 0.0 + (t - L[0, i])
        else:
            for i in range(n):
                S[0, i] = 0.0 + L[0, i]
    elif right:
        for i in range(n):
            S[b, i] = S[b - 1, i] + (t - L[b, i])
    else:
        for i in range(n):
            S[b, i] = S[b - 1, i] + L[b, i]


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_cut_work(m):
    """Scratch space of ``_best_pair_cut`` for histograms up to ``(m, m)``.

    The cut axis is padded to a multiple of 32 so the vectorised loops run whole vectors.
    """
    mv = (m + 31) // 32 * 32
    P = np.zeros((9, m, mv))
    return P, np.zeros((10, mv)), np.zeros((2, mv), dtype=np.int64), np.zeros((14, m))


@njit(cache=True, nogil=True, error_model="numpy")
def _at(A, i, b, tr):
    """``A[i, b]``, or ``A[b, i]`` when searching the transposed orientation."""
    return A[b, i] if tr else A[i, b]


@njit(cache=True, nogil=True, error_model="numpy")
def _best_pair_cut_rows(G2, H2, C2, na, nb, tr, min_leaf, min_hess, lam, Lg, Lh, Lc, Tg, Th, Tc, W, leaves):  # fmt: skip
    """``_best_pair_cut`` cut by cut (the outer loop over ``i``): faster for few cuts.

    The histograms are ``(n_a, n_b)``; with ``tr`` the search runs on their transpose (cut the
    second feature first) and ``na``, ``nb`` are the transposed sizes. Returns
    ``(gain, i, j_left, j_right)``, with ``j_left`` / ``j_right`` = -1 where a side is better
    left as one leaf, and writes the gradient and hessian sums of the four leaves (left-low,
    left-high, right-low, right-high) to ``leaves`` (8,); ``W`` (8, n) is scratch space.
    Cuts of the first feature next to empty bins repeat the neighbouring cut and are skipped.
    """
    for b in range(nb):
        Tg[b] = 0.0
        Th[b] = 0.0
        Tc[b] = 0.0
        Lg[b] = 0.0
        Lh[b] = 0.0
        Lc[b] = 0.0
    for a in range(na):
        for b in range(nb):
            Tg[b] += _at(G2, a, b, tr)
            Th[b] += _at(H2, a, b, tr)
            Tc[b] += _at(C2, a, b, tr)
    Gt = 0.0
    Ht = 0.0
    Ct = 0.0
    for b in range(nb):
        Gt += Tg[b]
        Ht += Th[b]
        Ct += Tc[b]
    parent = Gt * Gt / (Ht + lam) if Ht + lam > 0 else 0.0
    best_gain = 0.0
    best_i = -1
    best_jl = -1
    best_jr = -1
    sGL = 0.0
    sHL = 0.0
    sCL = 0.0
    for i in range(na - 1):
        rc = 0.0
        for b in range(nb):
            g = _at(G2, i, b, tr)
            h = _at(H2, i, b, tr)
            c = _at(C2, i, b, tr)
            Lg[b] += g
            Lh[b] += h
            Lc[b] += c
            sGL += g
            sHL += h
            rc += c
        sCL += rc
        if rc == 0.0 and i > 0:
            continue  # the same split as the previous cut
        sGR = Gt - sGL
        sHR = Ht - sHL
        sCR = Ct - sCL
        if sCL < min_leaf or sCR < min_leaf or sHL < min_hess or sHR < min_hess:
            continue
        # best cut on b within each side, or none: prefix sums, then every cut's value in
        # one branch-free (vectorised) pass, then the argmax
        pg = W[0]
        ph = W[1]
        pc = W[2]
        qg = W[3]
        qh = W[4]
        qc = W[5]
        vl = W[6]
        vr = W[7]
        cg_l = 0.0
        ch_l = 0.0
        cc_l = 0.0
        cg_r = 0.0
        ch_r = 0.0
        cc_r = 0.0
        for b in range(nb - 1):
            cg_l += Lg[b]
            ch_l += Lh[b]
            cc_l += Lc[b]
            cg_r += Tg[b] - Lg[b]
            ch_r += Th[b] - Lh[b]
            cc_r += Tc[b] - Lc[b]
            pg[b] = cg_l
            ph[b] = ch_l
            pc[b] = cc_l
            qg[b] = cg_r
            qh[b] = ch_r
            qc[b] = cc_r
        for b in range(nb - 1):
            ok_l = (pc[b] >= min_leaf) & (sCL - pc[b] >= min_leaf)
            ok_l = ok_l & (ph[b] >= min_hess) & (sHL - ph[b] >= min_hess)
            v_l = pg[b] * pg[b] / (ph[b] + lam) + (sGL - pg[b]) ** 2 / (sHL - ph[b] + lam)
            vl[b] = v_l if ok_l else -1e300
            ok_r = (qc[b] >= min_leaf) & (sCR - qc[b] >= min_leaf)
            ok_r = ok_r & (qh[b] >= min_hess) & (sHR - qh[b] >= min_hess)
            v_r = qg[b] * qg[b] / (qh[b] + lam) + (sGR - qg[b]) ** 2 / (sHR - qh[b] + lam)
            vr[b] = v_r if ok_r else -1e300
        side_l = sGL * sGL / (sHL + lam)
        side_r = sGR * sGR / (sHR + lam)
        jl = -1
        jr = -1
        for b in range(nb - 1):
            if vl[b] > side_l:
                side_l = vl[b]
                jl = b
            if vr[b] > side_r:
                side_r = vr[b]
                jr = b
        lg = pg[jl] if jl >= 0 else sGL
        lh = ph[jl] if jl >= 0 else sHL
        rg = qg[jr] if jr >= 0 else sGR
        rh = qh[jr] if jr >= 0 else sHR
        gain = side_l + side_r - parent
        if gain > best_gain:
            best_gain = gain
            best_i = i
            best_jl = jl
            best_jr = jr
            leaves[0] = lg
            leaves[1] = lh
            leaves[2] = sGL - lg
            leaves[3] = sHL - lh
            leaves[4] = rg
            leaves[5] = rh
            leaves[6] = sGR - rg
            leaves[7] = sHR - rh
    return best_gain, best_i, best_jl, best_jr


@njit(cache=True, nogil=True, error_model="numpy")
def _side_step(Pg, Ph, Pc, b, S, best, at, n, min_leaf, min_hess, lam):
    """Cut ``b`` of every side ``i`` (totals ``S[:, i]``: gradient, hessian, count), whose low
    part has sums ``Pg[b, i]``, ``Ph[b, i]``, ``Pc[b, i]``: its value, -1e300 where a part
    breaks the minimums; where it beats ``best[i]``, ``best[i]`` = value and ``at[i] = b``.
    """
    for i in range(n):
        cg = Pg[b, i]
        ch = Ph[b, i]
        cc = Pc[b, i]
        sh = S[1, i]
        ok = (cc >= min_leaf) & (S[2, i] - cc >= min_leaf)
        ok = ok & (ch >= min_hess) & (sh - ch >= min_hess)
        d = S[0, i] - cg
        val = cg * cg / (ch + lam) + d * d / (sh - ch + lam)
        val = val if ok else -1e300
        y = best[i]
        up = val > y
        best[i] = val if up else y
        at[i] = b if up else at[i]


@njit(cache=True, nogil=True, error_model="numpy")
def _cols_sums(hist, na, nb, tr, P, V):
    """The sums ``_best_pair_cut_cols`` starts from: the column sums of rows 0..i
    (``P[0:3][b, i]``, transposed) and the running totals of rows 0..i in row-major order
    (``V[0:3][i]``) with each row's count (``V[3][i]``)."""
    Lg = P[0]
    Lh = P[1]
    Lc = P[2]
    for b in range(nb):
        cg = 0.0
        ch = 0.0
        cc = 0.0
        for i in range(na):
            x = b if tr else i
            y = i if tr else b
            cg += hist[x, y, 0]
            ch += hist[x, y, 1]
            cc += hist[x, y, 2]
            Lg[b, i] = cg
            Lh[b, i] = ch
            Lc[b, i] = cc
    gl = 0.0
    hl = 0.0
    cl = 0.0
    for i in range(na):
        rc = 0.0
        for b in range(nb):
            x = b if tr else i
            y = i if tr else b
            gl += hist[x, y, 0]
            hl += hist[x, y, 1]
            rc += hist[x, y, 2]
        cl += rc
        V[0, i] = gl
        V[1, i] = hl
        V[2, i] = cl
        V[3, i] = rc


@njit(cache=True, nogil=True, error_model="numpy")
def _cols_sums_both(hist, na, nb, PA, VA, PB, VB):
    """``_cols_sums`` of both orientations of the ``(na, nb)`` histogram (to ``PA``, ``VA``
    and, transposed, ``PB``, ``VB``) in two passes over it instead of four: each pass runs
    one orientation's running totals next to the other's column sums (the same order)."""
    gl = 0.0
    hl = 0.0
    cl = 0.0
    for a in range(na):
        rc = 0.0
        cg = 0.0
        ch = 0.0
        cc = 0.0
        for b in range(nb):
            g = hist[a, b, 0]
            h = hist[a, b, 1]
            c = hist[a, b, 2]
            gl += g
            hl += h
            rc += c
            cg += g
            ch += h
            cc += c
            PB[0, a, b] = cg
            PB[1, a, b] = ch
            PB[2, a, b] = cc
        cl += rc
        VA[0, a] = gl
        VA[1, a] = hl
        VA[2, a] = cl
        VA[3, a] = rc
    gl = 0.0
    hl = 0.0
    cl = 0.0
    for b in range(nb):
        rc = 0.0
        cg = 0.0
        ch = 0.0
        cc = 0.0
        for a in range(na):
            g = hist[a, b, 0]
            h = hist[a, b, 1]
            c = hist[a, b, 2]
            gl += g
            hl += h
            rc += c
            cg += g
            ch += h
            cc += c
            PA[0, b, a] = cg
            PA[1, b, a] = ch
            PA[2, b, a] = cc
        cl += rc
        VB[0, b] = gl
        VB[1, b] = hl
        VB[2, b] = cl
        VB[3, b] = rc


@njit(cache=True, nogil=True, error_model="numpy")
def _best_pair_cut_cols(hist, na, nb, tr, min_leaf, min_hess, lam, P, V, J, leaves, fill):
    """``_best_pair_cut`` for all cuts ``i`` at once: faster for many rows.

    ``hist`` (m, m, 3) holds the gradient, hessian and count sums per cell; with ``tr`` the
    search runs on its transpose (cut the second feature first) and ``na``, ``nb`` are the
    transposed sizes. Returns ``(gain, i, j_left, j_right)``, with ``j_left`` / ``j_right`` = -1
    where a side is better left as one leaf, and writes the gradient and hessian sums of the
    four leaves (left-low, left-high, right-low, right-high) to ``leaves`` (8,). ``P``
    (9, m, m), ``V`` (10, m) and ``J`` (2, m) are scratch space (``_pair_cut_work``);
    without ``fill`` ``P[:3]`` and ``V[:4]`` already hold the sums (``_cols_sums_both``).
    Cuts of the first feature next to empty bins repeat the neighbouring cut and are skipped.

    All cuts ``i`` of the first feature are searched together: the loop over the second
    feature's cuts ``b`` is the outer one and short loops over ``i``, without dependencies
    between iterations, do the work (vectorised; they run over whole vectors, the padding
    lanes' values are never read back). Each sum is accumulated in the same order
    as by a search cut by cut (running totals in row-major order, prefix sums along ``b`` of
    the column sums up to ``i``), so every value is the same to the last bit.
    """
    Lg = P[0]
    Lh = P[1]
    Lc = P[2]
    PG = P[3]
    PH = P[4]
    PC = P[5]
    QG = P[6]
    QH = P[7]
    QC = P[8]
    sG = V[0]
    sH = V[1]
    sC = V[2]
    rC = V[3]
    sGR = V[4]
    sHR = V[5]
    sCR = V[6]
    sl = V[7]
    sr = V[8]
    jl = J[0]
    jr = J[1]
    SL = V[0:3]
    SR = V[4:7]
    if fill:
        _cols_sums(hist, na, nb, tr, P, V)
    Gt = 0.0
    Ht = 0.0
    Ct = 0.0
    for b in range(nb):
        Gt += Lg[b, na - 1]
        Ht += Lh[b, na - 1]
        Ct += Lc[b, na - 1]
    parent = Gt * Gt / (Ht + lam) if Ht + lam > 0 else 0.0
    n1 = na - 1
    nv = (n1 + 31) // 32 * 32  # n1 rounded up to whole vectors (at most P.shape[2])
    for i in range(nv):
        sgl = sG[i]
        shl = sH[i]
        sgr = Gt - sgl
        shr = Ht - shl
        sGR[i] = sgr
        sHR[i] = shr
        sCR[i] = Ct - sC[i]
        sl[i] = sgl * sgl / (shl + lam)
        sr[i] = sgr * sgr / (shr + lam)
        jl[i] = -1
        jr[i] = -1
    # best cut on b within each side of every i, or none: prefix sums along b (PG[b, i]:
    # left side's low part, QG[b, i]: right side's), each cut's value, the running argmax
    # (the first of equal values)
    for b in range(nb - 1):
        tg = Lg[b, na - 1]
        th = Lh[b, na - 1]
        tc = Lc[b, na - 1]
        _prefix_step(PG, Lg, b, 0.0, False, nv)
        _prefix_step(PH, Lh, b, 0.0, False, nv)
        _prefix_step(PC, Lc, b, 0.0, False, nv)
        _prefix_step(QG, Lg, b, tg, True, nv)
        _prefix_step(QH, Lh, b, th, True, nv)
        _prefix_step(QC, Lc, b, tc, True, nv)
        _side_step(PG, PH, PC, b, SL, sl, jl, nv, min_leaf, min_hess, lam)
        _side_step(QG, QH, QC, b, SR, sr, jr, nv, min_leaf, min_hess, lam)
    best_gain = 0.0
    best_i = -1
    best_jl = -1
    best_jr = -1
    for i in range(n1):
        if rC[i] == 0.0 and i > 0:
            continue  # the same split as the previous cut
        if sC[i] < min_leaf or sCR[i] < min_leaf or sH[i] < min_hess or sHR[i] < min_hess:
            continue
        gain = sl[i] + sr[i] - parent
        if gain > best_gain:
            best_gain = gain
            best_i = i
            best_jl = jl[i]
            best_jr = jr[i]
            lg = PG[best_jl, i] if best_jl >= 0 else sG[i]
            lh = PH[best_jl, i] if best_jl >= 0 else sH[i]
            rg = QG[best_jr, i] if best_jr >= 0 else sGR[i]
            rh = QH[best_jr, i] if best_jr >= 0 else sHR[i]
            leaves[0] = lg
            leaves[1] = lh
            leaves[2] = sG[i] - lg
            leaves[3] = sH[i] - lh
            leaves[4] = rg
            leaves[5] = rh
            leaves[6] = sGR[i] - rg
            leaves[7] = sHR[i] - rh
    return best_gain, best_i, best_jl, best_jr


@njit(cache=True, nogil=True, error_model="numpy")
def _use_cols(na):
    """Whether ``_best_pair_cut_cols`` (all cuts at once) is the faster search: when the
    ``na - 1`` cuts fill whole vectors of 32 with at most a fifth of them padding."""
    n1 = na - 1
    nv = (n1 + 31) // 32 * 32
    return n1 >= 32 and 4 * (nv - n1) <= n1


@njit(cache=True, nogil=True, error_model="numpy")
def _best_pair_cut(hist, na, nb, tr, min_leaf, min_hess, lam, P, V, J, W, leaves, dense=True):
    """Best tree "cut the first feature at i, then the second within each side".

    ``hist`` (m, m, 3) holds the gradient, hessian and count sums per cell in its first
    ``(n_a, n_b)`` cells; with ``tr`` the search runs on its transpose (cut the second
    feature first) and ``na``, ``nb`` are the transposed sizes. Returns
    ``(gain, i, j_left, j_right)``, with ``j_left`` / ``j_right`` = -1 where a side is better
    left as one leaf, and writes the gradient and hessian sums of the four leaves (left-low,
    left-high, right-low, right-high) to ``leaves`` (8,). ``P``, ``V``, ``J``, ``W`` are
    scratch space (``_pair_cut_work``). Cuts of the first feature next to empty bins repeat
    the neighbouring cut and are skipped.

    Two searches give the same result to the last bit (every sum is accumulated in the same
    order): cut by cut for few cuts ``i`` or a sparse histogram (``dense`` false: the scalar
    divisions of mostly empty cells are quick), all cuts at once (vectorised over ``i``)
    when they fill whole vectors.
    """
    if dense and _use_cols(na):
        return _best_pair_cut_cols(hist, na, nb, tr, min_leaf, min_hess, lam, P, V, J, leaves,
                                   True)  # fmt: skip
    na0 = nb if tr else na
    nb0 = na if tr else nb
    Gv = hist[:na0, :nb0, 0]
    Hv = hist[:na0, :nb0, 1]
    Cv = hist[:na0, :nb0, 2]
    return _best_pair_cut_rows(Gv, Hv, Cv, na, nb, tr, min_leaf, min_hess, lam, W[0], W[1], W[2],
                               W[3], W[4], W[5], W[6:], leaves)  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_fill(na, nb, tr, i, jl, jr, leaves, lam, lr, d, scores_t, ed2):
    """Write the pair tree's Newton steps to ``d``, add them to ``scores_t`` and put
    ``exp(-step)`` in ``ed2`` (all ``(n_a, n_b)``; ``na``, ``nb`` in the searched orientation).
    """
    vals = np.zeros(4)
    exps = np.ones(4)
    for q in range(4):
        Gs = leaves[2 * q]
        Hs = leaves[2 * q + 1]
        vals[q] = -lr * Gs / (Hs + lam) if Hs + lam > 1e-300 else 0.0
        exps[q] = np.exp(-vals[q])
    for x in range(na):
        side = 0 if x <= i else 2
        j = jl if x <= i else jr
        for y in range(nb):
            q = side + (1 if (j >= 0 and y > j) else 0)
            if tr:
                d[y, x] = vals[q]
                scores_t[y, x] += vals[q]
                ed2[y, x] = exps[q]
            else:
                d[x, y] = vals[q]
                scores_t[x, y] += vals[q]
                ed2[x, y] = exps[q]


@njit(cache=True, nogil=True, error_model="numpy")
def _boost_pairs(Ptr, ytr, Pva, yva, F_tr, F_va, pairs, nbins, objective, lr, min_leaf,
                min_hess, lam, max_rounds, es_rounds, es_tol, smoothing_rounds, seed, wtr,
                 wva):  # fmt: skip
    """Cyclic boosting of pair terms of one bag on interaction bins, from scores F.

    ``Ptr``/``Pva`` are interaction bin codes (n, p), ``pairs`` (q, 2) feature indices and
    ``nbins`` (p,) interaction bins per feature. During the first ``smoothing_rounds`` rounds
    the orientation of each pair tree (which feature is cut first) is drawn at random; the
    cuts themselves are always the best ones.

    Returns
    -------
    best : ndarray of shape (q, m, m) with m = max(nbins)
        Per-cell scores of the pair terms at the best validation round.
    n_rounds : int
    """
    n_tr = Ptr.shape[0]
    n_va = Pva.shape[0]
    q = pairs.shape[0]
    m = 0
    for j in range(nbins.shape[0]):
        m = max(m, nbins[j])
    scores = np.zeros((q, m, m))
    best = np.zeros((q, m, m))
    # gradient, hessian and count sums per cell, interleaved so one row touches one place
    cur = np.zeros((m, m, 3))
    nxt = np.zeros((m, m, 3))
    leaves = np.zeros(8)
    leaves_b = np.zeros(8)
    delta2 = np.zeros((m, m))
    LT, V, J, W = _pair_cut_work(m)
    LT2, V2, _, _ = _pair_cut_work(m)
    state = np.array([np.uint64(seed)], dtype=np.uint64)
    use_es = n_va > 0 and es_rounds > 0
    best_loss = _loss(F_va, yva, wva, objective) if n_va > 0 else np.inf
    best_round = 0
    rounds_done = 0
    E_tr = np.ones(n_tr)
    ed2 = np.ones((m, m))
    # each row's cell of every pair, as a flat index into (m, m), computed once
    cell_tr = np.empty((q, n_tr), dtype=np.int32)
    cell_va = np.empty((q, n_va), dtype=np.int32)
    for t in range(q):
        fa = pairs[t, 0]
        fb = pairs[t, 1]
        for i in range(n_tr):
            cell_tr[t, i] = np.int32(Ptr[i, fa]) * m + np.int32(Ptr[i, fb])
        for i in range(n_va):
            cell_va[t, i] = np.int32(Pva[i, fa]) * m + np.int32(Pva[i, fb])
    d_flat = delta2.reshape(m * m)
    e2_flat = ed2.reshape(m * m)
    _resync(F_tr, E_tr, objective)
    if q > 0:
        for i in range(n_tr):
            a = Ptr[i, pairs[0, 0]]
            b = Ptr[i, pairs[0, 1]]
            g, h = _grad_hess_e(E_tr[i], F_tr[i], ytr[i], objective)
            w = wtr[i]
            cur[a, b, 0] += g * w
            cur[a, b, 1] += h * w
            cur[a, b, 2] += w
    for r in range(max_rounds):
        random = r < smoothing_rounds
        for t in range(q):
            # cur holds pair t's histogram (built while applying the previous step)
            fa = pairs[t, 0]
            fb = pairs[t, 1]
            na = nbins[fa]
            nb = nbins[fb]
            dense = 4 * n_tr >= na * nb  # at least a row per four cells
            if dense and _use_cols(na) and _use_cols(nb):
                _cols_sums_both(cur, na, nb, LT, V, LT2, V2)
                gain_a, ia, jla, jra = _best_pair_cut_cols(cur, na, nb, False, min_leaf,
                                                           min_hess, lam, LT, V, J, leaves,
                                                           False)  # fmt: skip
                gain_b, ib, jlb, jrb = _best_pair_cut_cols(cur, nb, na, True, min_leaf,
                                                           min_hess, lam, LT2, V2, J, leaves_b,
                                                           False)  # fmt: skip
            else:
                gain_a, ia, jla, jra = _best_pair_cut(cur, na, nb, False, min_leaf, min_hess,
                                                      lam, LT, V, J, W, leaves, dense)  # fmt: skip
                gain_b, ib, jlb, jrb = _best_pair_cut(cur, nb, na, True, min_leaf, min_hess,
                                                      lam, LT, V, J, W, leaves_b, dense)  # fmt: skip
            if random:
                transposed = _next_uniform(state) < 0.5
            else:
                transposed = gain_b > gain_a
            if (ia < 0 and not transposed) or (ib < 0 and transposed):
                transposed = ib >= 0
            d = delta2[:na, :nb]
            e2 = ed2[:na, :nb]
            if (ib < 0 and transposed) or (ia < 0 and not transposed):
                d[:, :] = 0.0  # no allowed cut: no step
                e2[:, :] = 1.0
            elif transposed:
                _pair_fill(nb, na, True, ib, jlb, jrb, leaves_b, lam, lr, d, scores[t], e2)
            else:
                _pair_fill(na, nb, False, ia, jla, jra, leaves, lam, lr, d, scores[t], e2)
            # apply the step and build the next pair's histogram in the same pass; after the
            # last pair of a round exp(-F) is recomputed from F
            last = t + 1 == q
            tn = 0 if last else t + 1
            ga = pairs[tn, 0]
            gb = pairs[tn, 1]
            nxt[: nbins[ga], : nbins[gb], :] = 0.0
            n_flat = nxt.reshape(m * m * 3)
            c_t = cell_tr[t]
            c_n = cell_tr[tn]
            for i in range(n_tr):
                c = c_t[i]
                f = F_tr[i] + d_flat[c]
                F_tr[i] = f
                e = 1.0
                if objective == LOGLOSS:
                    e = np.exp(-f) if last else E_tr[i] * e2_flat[c]
                    E_tr[i] = e
                g, h = _grad_hess_e(e, f, ytr[i], objective)
                w = wtr[i]
                k = 3 * c_n[i]
                n_flat[k] += g * w
                n_flat[k + 1] += h * w
                n_flat[k + 2] += w
            cur, nxt = nxt, cur
            c_v = cell_va[t]
            for i in range(n_va):
                F_va[i] += d_flat[c_v[i]]
        rounds_done = r + 1
        if use_es:
            loss = _loss(F_va, yva, wva, objective)
            if loss < best_loss - es_tol * abs(best_loss):
                best_loss = loss
                best_round = rounds_done
                best[:, :, :] = scores
            elif rounds_done - best_round >= es_rounds:
                break
    if not use_es:
        return scores, rounds_done
    return best, best_round


def _unit(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.ascontiguousarray(w, dtype=np.float64)


def boost_mains(Btr, ytr, Bva, yva, F_tr, F_va, *args, wtr=None, wva=None):  # type: ignore[no-untyped-def]
    """Cyclic boosting of the main terms of one bag (see ``_boost_mains``).

    ``wtr`` / ``wva`` (n_tr,), (n_va,) are the rows' sample weights (None: all ones). A row of
    weight ``w`` adds ``w`` times its gradient, hessian and count to the histograms and ``w``
    times its loss to the validation loss, so unit weights give the unweighted fit to the bit
    and integer weights the fit on repeated rows (up to the order of the sums).
    """
    return _boost_mains(
        Btr, ytr, Bva, yva, F_tr, F_va, *args, _unit(wtr, ytr.shape[0]), _unit(wva, yva.shape[0])
    )


def boost_pairs(Ptr, ytr, Pva, yva, F_tr, F_va, *args, wtr=None, wva=None):  # type: ignore[no-untyped-def]
    """Cyclic boosting of pair terms of one bag (see ``_boost_pairs``), with sample weights
    ``wtr`` / ``wva`` as in :func:`boost_mains`."""
    return _boost_pairs(
        Ptr, ytr, Pva, yva, F_tr, F_va, *args, _unit(wtr, ytr.shape[0]), _unit(wva, yva.shape[0])
    )
