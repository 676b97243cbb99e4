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
row and step), recomputing it from ``F`` at the start of every round.

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
def _loss(F: np.ndarray, y: np.ndarray, objective: int) -> float:
    total = 0.0
    for i in range(F.shape[0]):
        f = F[i]
        if objective == LOGLOSS:
            # softplus(f) - y f, computed stably
            if f > 0:
                total += f + np.log1p(np.exp(-f)) - y[i] * f
            else:
                total += np.log1p(np.exp(f)) - y[i] * f
        else:
            d = f - y[i]
            total += d * d
    return total / max(F.shape[0], 1)


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
def boost_mains(Btr, ytr, Bva, yva, F_tr, F_va, nbins, is_cat, objective, lr, max_leaves,
                min_leaf, min_hess, lam, cat_smooth, max_rounds, es_rounds, es_tol,
                smoothing_rounds, seed):  # fmt: skip
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
    best_loss = _loss(F_va, yva, objective) if n_va > 0 else np.inf
    best_round = 0
    rounds_done = 0
    E_tr = np.ones(n_tr)
    ed = np.ones(maxb)
    for r in range(max_rounds):
        random = r < smoothing_rounds
        _resync(F_tr, E_tr, objective)
        for j in range(p):
            nb = nbins[j]
            G[:nb] = 0.0
            H[:nb] = 0.0
            C[:nb] = 0.0
            for i in range(n_tr):
                b = Btr[i, j]
                g, h = _grad_hess_e(E_tr[i], F_tr[i], ytr[i], objective)
                G[b] += g
                H[b] += h
                C[b] += 1.0
            n_order = nb - 2  # value bins 1 .. nb-2 (0 is missing, nb-1 unseen)
            if n_order <= 0:
                continue
            if is_cat[j]:
                for t in range(n_order):
                    ratio[t] = G[t + 1] / (H[t + 1] + cat_smooth)
                idx = np.argsort(ratio[:n_order])
                for t in range(n_order):
                    order[t] = idx[t] + 1
            else:
                for t in range(n_order):
                    order[t] = t + 1
            _fit_tree(G, H, C, order, n_order, max_leaves, min_leaf, min_hess, lam, lr, random,
                      state, delta, seg_s, seg_e, seg_k, seg_gain)  # fmt: skip
            for b in range(nb):
                scores[j, b] += delta[b]
            _exp_neg(delta, ed, nb)
            for i in range(n_tr):
                b = Btr[i, j]
                F_tr[i] += delta[b]
                E_tr[i] *= ed[b]
            for i in range(n_va):
                F_va[i] += delta[Bva[i, j]]
        rounds_done = r + 1
        if use_es:
            loss = _loss(F_va, yva, objective)
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
def _best_pair_cut(G2, H2, C2, na, nb, min_leaf, min_hess, lam, Lg, Lh, Lc, Tg, Th, Tc):
    """Best tree "cut a at i, then cut b within each side"; returns (gain, i, j_left, j_right).

    ``j_left`` / ``j_right`` are -1 where a side is better left as one leaf. Cuts next to
    empty bins repeat the neighbouring cut and are skipped.
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
            Tg[b] += G2[a, b]
            Th[b] += H2[a, b]
            Tc[b] += C2[a, b]
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
            g = G2[i, b]
            h = H2[i, b]
            c = C2[i, b]
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
        # best cut on b within each side, or none
        side_l = sGL * sGL / (sHL + lam)
        side_r = sGR * sGR / (sHR + lam)
        jl = -1
        jr = -1
        cg_l = 0.0
        ch_l = 0.0
        cc_l = 0.0
        cg_r = 0.0
        ch_r = 0.0
        cc_r = 0.0
        for b in range(nb - 1):
            c_l = Lc[b]
            c_r = Tc[b] - c_l
            if c_l > 0.0:
                cg_l += Lg[b]
                ch_l += Lh[b]
                cc_l += c_l
                if cc_l >= min_leaf and sCL - cc_l >= min_leaf and ch_l >= min_hess:
                    if sHL - ch_l >= min_hess:
                        v = cg_l * cg_l / (ch_l + lam) + (sGL - cg_l) ** 2 / (sHL - ch_l + lam)
                        if v > side_l:
                            side_l = v
                            jl = b
            if c_r > 0.0:
                cg_r += Tg[b] - Lg[b]
                ch_r += Th[b] - Lh[b]
                cc_r += c_r
                if cc_r >= min_leaf and sCR - cc_r >= min_leaf and ch_r >= min_hess:
                    if sHR - ch_r >= min_hess:
                        v = cg_r * cg_r / (ch_r + lam) + (sGR - cg_r) ** 2 / (sHR - ch_r + lam)
                        if v > side_r:
                            side_r = v
                            jr = b
        gain = side_l + side_r - parent
        if gain > best_gain:
            best_gain = gain
            best_i = i
            best_jl = jl
            best_jr = jr
    return best_gain, best_i, best_jl, best_jr


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_leaves(G2, H2, na, nb, i, jl, jr, lam, lr, delta2):
    """Newton steps of the (up to) four leaves of a pair tree, written to delta2 (na, nb)."""
    for side in range(2):
        a0 = 0 if side == 0 else i + 1
        a1 = i + 1 if side == 0 else na
        j = jl if side == 0 else jr
        for part in range(2):
            if j < 0 and part == 1:
                break
            b0 = 0 if (part == 0) else j + 1
            b1 = (j + 1 if part == 0 else nb) if j >= 0 else nb
            Gs = 0.0
            Hs = 0.0
            for a in range(a0, a1):
                for b in range(b0, b1):
                    Gs += G2[a, b]
                    Hs += H2[a, b]
            v = -lr * Gs / (Hs + lam) if Hs + lam > 1e-300 else 0.0
            for a in range(a0, a1):
                for b in range(b0, b1):
                    delta2[a, b] = v


@njit(cache=True, nogil=True, error_model="numpy")
def boost_pairs(Ptr, ytr, Pva, yva, F_tr, F_va, pairs, nbins, objective, lr, min_leaf,
                min_hess, lam, max_rounds, es_rounds, es_tol, smoothing_rounds, seed):  # fmt: skip
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
    G2 = np.zeros((m, m))
    H2 = np.zeros((m, m))
    C2 = np.zeros((m, m))
    G2t = np.zeros((m, m))
    H2t = np.zeros((m, m))
    C2t = np.zeros((m, m))
    delta2 = np.zeros((m, m))
    Lg = np.zeros(m)
    Lh = np.zeros(m)
    Lc = np.zeros(m)
    Tg = np.zeros(m)
    Th = np.zeros(m)
    Tc = np.zeros(m)
    state = np.array([np.uint64(seed)], dtype=np.uint64)
    use_es = n_va > 0 and es_rounds > 0
    best_loss = _loss(F_va, yva, objective) if n_va > 0 else np.inf
    best_round = 0
    rounds_done = 0
    E_tr = np.ones(n_tr)
    ed2 = np.ones((m, m))
    for r in range(max_rounds):
        random = r < smoothing_rounds
        _resync(F_tr, E_tr, objective)
        for t in range(q):
            fa = pairs[t, 0]
            fb = pairs[t, 1]
            na = nbins[fa]
            nb = nbins[fb]
            G2[:na, :nb] = 0.0
            H2[:na, :nb] = 0.0
            C2[:na, :nb] = 0.0
            for i in range(n_tr):
                a = Ptr[i, fa]
                b = Ptr[i, fb]
                g, h = _grad_hess_e(E_tr[i], F_tr[i], ytr[i], objective)
                G2[a, b] += g
                H2[a, b] += h
                C2[a, b] += 1.0
            gain_a, ia, jla, jra = _best_pair_cut(G2[:na, :nb], H2[:na, :nb], C2[:na, :nb],
                                                  na, nb, min_leaf, min_hess, lam,
                                                  Lg, Lh, Lc, Tg, Th, Tc)  # fmt: skip
            for a in range(na):
                for b in range(nb):
                    G2t[b, a] = G2[a, b]
                    H2t[b, a] = H2[a, b]
                    C2t[b, a] = C2[a, b]
            gain_b, ib, jlb, jrb = _best_pair_cut(G2t[:nb, :na], H2t[:nb, :na], C2t[:nb, :na],
                                                  nb, na, min_leaf, min_hess, lam,
                                                  Lg, Lh, Lc, Tg, Th, Tc)  # fmt: skip
            if random:
                transposed = _next_uniform(state) < 0.5
            else:
                transposed = gain_b > gain_a
            if (ia < 0 and not transposed) or (ib < 0 and transposed):
                transposed = ib >= 0
            if (ib < 0 and transposed) or (ia < 0 and not transposed):
                continue
            d = delta2[:na, :nb]
            if transposed:
                _pair_leaves(G2t[:nb, :na], H2t[:nb, :na], nb, na, ib, jlb, jrb, lam, lr, d.T)
            else:
                _pair_leaves(G2[:na, :nb], H2[:na, :nb], na, nb, ia, jla, jra, lam, lr, d)
            for a in range(na):
                for b in range(nb):
                    scores[t, a, b] += d[a, b]
                _exp_neg(d[a], ed2[a], nb)
            for i in range(n_tr):
                a = Ptr[i, fa]
                b = Ptr[i, fb]
                F_tr[i] += d[a, b]
                E_tr[i] *= ed2[a, b]
            for i in range(n_va):
                F_va[i] += d[Pva[i, fa], Pva[i, fb]]
        rounds_done = r + 1
        if use_es:
            loss = _loss(F_va, yva, objective)
            if loss < best_loss - es_tol * abs(best_loss):
                best_loss = loss
                best_round = rounds_done
                best[:, :, :] = scores
            elif rounds_done - best_round >= es_rounds:
                break
    if not use_es:
        return scores, rounds_done
    return best, best_round
