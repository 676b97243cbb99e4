"""numba kernels of TreeSHAP on the flat tree layout of :mod:`whybox.tabular.trees`.

Path-dependent TreeSHAP by quadrature
-------------------------------------
For a leaf ``l`` with value ``v_l`` whose root path splits on the (merged) features ``F``,
let ``p_j`` be 1 when ``x`` follows every split on ``j`` along the path, else 0, and ``q_j``
the product of the cover fractions of those splits. The leaf's game is
``v_l(S) = v_l prod_{j in S} p_j prod_{j not in S} q_j`` and, with the Beta-integral form of
the Shapley weights ``|S|! (d - |S| - 1)! / d! = int_0^1 t^|S| (1 - t)^(d - |S| - 1) dt``,

    phi_i = v_l (p_i - q_i) int_0^1 prod_{j in F, j != i} (q_j + t (p_j - q_j)) dt.

The integrand is a polynomial of degree ``d - 1 <= depth - 1``, so Gauss-Legendre quadrature
with ``ceil(depth / 2)`` points is exact. Instead of visiting every leaf for every feature
(``O(L D Q)`` per tree and row), the kernel walks the tree once: top-down it carries the
product of the edge factors evaluated at the quadrature points, bottom-up it returns
``S(t) = sum_{leaves below} v_l prod(t)``, and at each split on feature ``j`` it adds
``(p_j - q_j) sum_k w_k S(t_k) / f_j(t_k)`` over the leaves for which that split is the
deepest on ``j`` (deeper splits on the same feature merge their factors and are attributed
there; their sums are subtracted from the shallower split). That is ``O(N Q)`` per tree and
row, ``N`` the number of nodes: linear in the tree size, like Linear TreeSHAP, with the
well-conditioned quadrature representation of Quadrature-TreeSHAP instead of polynomial
coefficients.

Conditioning a feature on "always present" (factor ``p``) or "always absent" (factor ``q``)
gives the pieces of SHAP interaction values (Lundberg et al. 2020).

References
----------
Lundberg, S. M., Erion, G., Chen, H. et al. (2020). From local explanations to global
understanding with explainable AI for trees. Nature Machine Intelligence 2.

Yu, P., Bifet, A., Read, J. and Xu, C. (2022). Linear TreeShap. NeurIPS. arXiv:2209.08192.

Quadrature-TreeSHAP: Gauss-Legendre evaluation of the TreeSHAP path integral.
arXiv:2605.04497.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["gauss_legendre_01", "path_dependent_interactions", "path_dependent_shap"]


def gauss_legendre_01(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree < 2 n."""
    x, w = np.polynomial.legendre.leggauss(max(1, int(n_points)))
    return (x + 1.0) / 2.0, w / 2.0


@njit(cache=True, inline="always")
def _goes_left(
    xv: float,
    node: int,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
) -> bool:
    if np.isnan(xv):
        return missing_left[node]
    if is_categorical[node]:
        s = cat_start[node]
        for i in range(s, s + cat_len[node]):
            if cat_values[i] == xv:
                return True
        return False
    return xv < threshold[node]


@njit(cache=True)
def _tree_shap_one(
    x: np.ndarray,
    root: int,
    out_lo: int,
    out_hi: int,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tq: np.ndarray,
    wq: np.ndarray,
    cond_feature: int,
    cond_sign: int,
    phi: np.ndarray,
    # work arrays (depth+2 rows)
    fnode: np.ndarray,
    fstate: np.ndarray,
    fprev: np.ndarray,
    fpold: np.ndarray,
    fqold: np.ndarray,
    ep: np.ndarray,
    eq: np.ndarray,
    P: np.ndarray,
    Stot: np.ndarray,
    excl: np.ndarray,
    sret: np.ndarray,
    last_occ: np.ndarray,
) -> None:
    """Add one tree's path-dependent SHAP values for row ``x`` to ``phi`` (p, K).

    With ``cond_feature >= 0`` that feature is conditioned: its edge factor is the constant
    ``p`` (``cond_sign = 1``, always present) or ``q`` (``cond_sign = -1``, always absent) and
    it receives no attribution.
    """
    Q = tq.shape[0]
    if left[root] < 0:
        return
    d = 0
    fnode[0] = root
    fstate[0] = 0
    for q in range(Q):
        P[0, q] = 1.0
    for q in range(Q):
        for k in range(out_lo, out_hi):
            Stot[0, q, k] = 0.0
    j0 = feature[root]
    fprev[0] = last_occ[j0]
    fpold[0] = 1.0
    fqold[0] = 1.0
    while d >= 0:
        node = fnode[d]
        returning = False
        if left[node] < 0:
            # leaf: S = v * P
            for q in range(Q):
                for k in range(out_lo, out_hi):
                    sret[q, k] = value[node, k] * P[d, q]
            d -= 1
            returning = True
        elif fstate[d] < 2:
            state = fstate[d]
            fstate[d] = state + 1
            j = feature[node]
            goes_left = _goes_left(
                x[j],
                node,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
            )
            c = left[node] if state == 0 else right[node]
            follows = goes_left if state == 0 else not goes_left
            p_c = fpold[d] if follows else 0.0
            q_c = fqold[d] * cover[c] / cover[node] if cover[node] > 0 else 0.0
            if p_c == 0.0 and q_c == 0.0:
                continue  # this subtree is worth 0 in every coalition
            ep[d] = p_c
            eq[d] = q_c
            for q in range(Q):
                for k in range(out_lo, out_hi):
                    excl[d, q, k] = 0.0
            if j == cond_feature:
                old = fpold[d] if cond_sign > 0 else fqold[d]
                new = p_c if cond_sign > 0 else q_c
                if old == 0.0 or new == 0.0:
                    continue  # the conditioned factor is 0: this subtree adds nothing
                last_occ[j] = d
                for q in range(Q):
                    P[d + 1, q] = P[d, q] / old * new
            else:
                last_occ[j] = d
                for q in range(Q):
                    f_old = fqold[d] + tq[q] * (fpold[d] - fqold[d])
                    f_new = q_c + tq[q] * (p_c - q_c)
                    P[d + 1, q] = P[d, q] / f_old * f_new
            d += 1
            fnode[d] = c
            fstate[d] = 0
            for q in range(Q):
                for k in range(out_lo, out_hi):
                    Stot[d, q, k] = 0.0
            if left[c] >= 0:
                jc = feature[c]
                prev = last_occ[jc]
                fprev[d] = prev
                if prev >= 0:
                    fpold[d] = ep[prev]
                    fqold[d] = eq[prev]
                else:
                    fpold[d] = 1.0
                    fqold[d] = 1.0
        else:
            # internal node done: return its total
            last_occ[feature[node]] = fprev[d]
            for q in range(Q):
                for k in range(out_lo, out_hi):
                    sret[q, k] = Stot[d, q, k]
            prev = fprev[d]
            if prev >= 0:
                for q in range(Q):
                    for k in range(out_lo, out_hi):
                        excl[prev, q, k] += sret[q, k]
            d -= 1
            returning = True
        if returning and d >= 0:
            parent = fnode[d]
            j = feature[parent]
            last_occ[j] = fprev[d]
            if j != cond_feature:
                p_c = ep[d]
                q_c = eq[d]
                for k in range(out_lo, out_hi):
                    acc = 0.0
                    for q in range(Q):
                        f = q_c + tq[q] * (p_c - q_c)
                        acc += wq[q] * (sret[q, k] - excl[d, q, k]) / f
                    phi[j, k] += (p_c - q_c) * acc
            for q in range(Q):
                for k in range(out_lo, out_hi):
                    Stot[d, q, k] += sret[q, k]


@njit(cache=True)
def _alloc(depth: int, Q: int, K: int, p: int):
    D = depth + 2
    return (
        np.zeros(D, np.int64),
        np.zeros(D, np.int64),
        np.zeros(D, np.int64),
        np.zeros(D),
        np.zeros(D),
        np.zeros(D),
        np.zeros(D),
        np.zeros((D, Q)),
        np.zeros((D, Q, K)),
        np.zeros((D, Q, K)),
        np.zeros((Q, K)),
        np.full(p, -1, np.int64),
    )


@njit(parallel=True, cache=True)
def path_dependent_shap(
    X: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
    tq: np.ndarray,
    wq: np.ndarray,
) -> np.ndarray:
    """Path-dependent SHAP values: float64 (n, p, K), summed over the trees."""
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    out = np.zeros((n, p, K))
    for i in prange(n):
        (fnode, fstate, fprev, fpold, fqold, ep, eq, P, Stot, excl, sret, last_occ) = _alloc(
            max_depth, Q, K, p
        )
        x = X[i]
        phi = out[i]
        for t in range(T):
            lo = 0 if tree_output[t] < 0 else tree_output[t]
            hi = K if tree_output[t] < 0 else tree_output[t] + 1
            _tree_shap_one(
                x,
                tree_start[t],
                lo,
                hi,
                left,
                right,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
                value,
                cover,
                tq,
                wq,
                -1,
                0,
                phi,
                fnode,
                fstate,
                fprev,
                fpold,
                fqold,
                ep,
                eq,
                P,
                Stot,
                excl,
                sret,
                last_occ,
            )
    return out


@njit(parallel=True, cache=True)
def path_dependent_interactions(
    X: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
    tq: np.ndarray,
    wq: np.ndarray,
    tree_features: np.ndarray,
    tree_features_start: np.ndarray,
) -> np.ndarray:
    """SHAP interaction values: float64 (n, p, p, K).

    Off the diagonal ``(phi_j | i present - phi_j | i absent) / 2``; on it, the SHAP value
    minus the row's other entries, so that rows add up to the SHAP values.
    """
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    out = np.zeros((n, p, p, K))
    for r in prange(n):
        (fnode, fstate, fprev, fpold, fqold, ep, eq, P, Stot, excl, sret, last_occ) = _alloc(
            max_depth, Q, K, p
        )
        x = X[r]
        phi = np.zeros((p, K))
        on = np.zeros((p, K))
        off = np.zeros((p, K))
        inter = out[r]
        for t in range(T):
            lo = 0 if tree_output[t] < 0 else tree_output[t]
            hi = K if tree_output[t] < 0 else tree_output[t] + 1
            _tree_shap_one(
                x,
                tree_start[t],
                lo,
                hi,
                left,
                right,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
                value,
                cover,
                tq,
                wq,
                -1,
                0,
                phi,
                fnode,
                fstate,
                fprev,
                fpold,
                fqold,
                ep,
                eq,
                P,
                Stot,
                excl,
                sret,
                last_occ,
            )
            for a in range(tree_features_start[t], tree_features_start[t + 1]):
                i = tree_features[a]
                on[:, :] = 0.0
                off[:, :] = 0.0
                _tree_shap_one(
                    x,
                    tree_start[t],
                    lo,
                    hi,
                    left,
                    right,
                    feature,
                    threshold,
                    missing_left,
                    is_categorical,
                    cat_start,
                    cat_len,
                    cat_values,
                    value,
                    cover,
                    tq,
                    wq,
                    i,
                    1,
                    on,
                    fnode,
                    fstate,
                    fprev,
                    fpold,
                    fqold,
                    ep,
                    eq,
                    P,
                    Stot,
                    excl,
                    sret,
                    last_occ,
                )
                _tree_shap_one(
                    x,
                    tree_start[t],
                    lo,
                    hi,
                    left,
                    right,
                    feature,
                    threshold,
                    missing_left,
                    is_categorical,
                    cat_start,
                    cat_len,
                    cat_values,
                    value,
                    cover,
                    tq,
                    wq,
                    i,
                    -1,
                    off,
                    fnode,
                    fstate,
                    fprev,
                    fpold,
                    fqold,
                    ep,
                    eq,
                    P,
                    Stot,
                    excl,
                    sret,
                    last_occ,
                )
                for j in range(p):
                    if j != i:
                        for k in range(lo, hi):
                            inter[i, j, k] += (on[j, k] - off[j, k]) / 2.0
        for i in range(p):
            for k in range(K):
                s = 0.0
                for j in range(p):
                    if j != i:
                        s += inter[i, j, k]
                inter[i, i, k] = phi[i, k] - s
    return out


@njit(cache=True)
def _tree_shap_single(
    x: np.ndarray,
    root: int,
    kout: int,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tq: np.ndarray,
    wq: np.ndarray,
    phi: np.ndarray,
    fnode: np.ndarray,
    fstate: np.ndarray,
    fprev: np.ndarray,
    fpold: np.ndarray,
    fqold: np.ndarray,
    ep: np.ndarray,
    eq: np.ndarray,
    P: np.ndarray,
    Stot: np.ndarray,
    excl: np.ndarray,
    sret: np.ndarray,
    last_occ: np.ndarray,
) -> None:
    """:func:`_tree_shap_one` for one output column ``kout`` and no conditioning (hot path)."""
    Q = tq.shape[0]
    if left[root] < 0:
        return
    d = 0
    fnode[0] = root
    fstate[0] = 0
    for q in range(Q):
        P[0, q] = 1.0
        Stot[0, q] = 0.0
    fprev[0] = -1
    fpold[0] = 1.0
    fqold[0] = 1.0
    while d >= 0:
        node = fnode[d]
        returning = False
        lc = left[node]
        if lc < 0:
            v = value[node, kout]
            for q in range(Q):
                sret[q] = v * P[d, q]
            d -= 1
            returning = True
        elif fstate[d] < 2:
            state = fstate[d]
            fstate[d] = state + 1
            j = feature[node]
            xv = x[j]
            if np.isnan(xv):
                gl = missing_left[node]
            elif is_categorical[node]:
                gl = False
                s0 = cat_start[node]
                for ci in range(s0, s0 + cat_len[node]):
                    if cat_values[ci] == xv:
                        gl = True
                        break
            else:
                gl = xv < threshold[node]
            if state == 0:
                c = lc
                follows = gl
            else:
                c = right[node]
                follows = not gl
            pold = fpold[d]
            qold = fqold[d]
            p_c = pold if follows else 0.0
            q_c = qold * cover[c] / cover[node] if cover[node] > 0 else 0.0
            if p_c == 0.0 and q_c == 0.0:
                continue
            ep[d] = p_c
            eq[d] = q_c
            last_occ[j] = d
            dp = p_c - q_c
            if fprev[d] >= 0:
                dold = pold - qold
                for q in range(Q):
                    excl[d, q] = 0.0
                    P[d + 1, q] = P[d, q] * (q_c + tq[q] * dp) / (qold + tq[q] * dold)
                    Stot[d + 1, q] = 0.0
            else:
                for q in range(Q):
                    excl[d, q] = 0.0
                    P[d + 1, q] = P[d, q] * (q_c + tq[q] * dp)
                    Stot[d + 1, q] = 0.0
            d += 1
            fnode[d] = c
            fstate[d] = 0
            if left[c] >= 0:
                prev = last_occ[feature[c]]
                fprev[d] = prev
                if prev >= 0:
                    fpold[d] = ep[prev]
                    fqold[d] = eq[prev]
                else:
                    fpold[d] = 1.0
                    fqold[d] = 1.0
        else:
            last_occ[feature[node]] = fprev[d]
            prev = fprev[d]
            if prev >= 0:
                for q in range(Q):
                    sret[q] = Stot[d, q]
                    excl[prev, q] += Stot[d, q]
            else:
                for q in range(Q):
                    sret[q] = Stot[d, q]
            d -= 1
            returning = True
        if returning and d >= 0:
            parent = fnode[d]
            j = feature[parent]
            last_occ[j] = fprev[d]
            p_c = ep[d]
            q_c = eq[d]
            dp = p_c - q_c
            acc = 0.0
            for q in range(Q):
                acc += wq[q] * (sret[q] - excl[d, q]) / (q_c + tq[q] * dp)
                Stot[d, q] += sret[q]
            phi[j, kout] += dp * acc


@njit(parallel=True, cache=True)
def path_dependent_shap_fast(
    X: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
    tq: np.ndarray,
    wq: np.ndarray,
) -> np.ndarray:
    """Path-dependent SHAP values (n, p, K) for ensembles whose trees each feed one output."""
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    D = max_depth + 2
    out = np.zeros((n, p, K))
    for i in prange(n):
        fnode = np.zeros(D, np.int64)
        fstate = np.zeros(D, np.int64)
        fprev = np.zeros(D, np.int64)
        fpold = np.zeros(D)
        fqold = np.zeros(D)
        ep = np.zeros(D)
        eq = np.zeros(D)
        P = np.zeros((D, Q))
        Stot = np.zeros((D, Q))
        excl = np.zeros((D, Q))
        sret = np.zeros(Q)
        last_occ = np.full(p, -1, np.int64)
        x = X[i]
        phi = out[i]
        for t in range(T):
            _tree_shap_single(
                x,
                tree_start[t],
                tree_output[t],
                left,
                right,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
                value,
                cover,
                tq,
                wq,
                phi,
                fnode,
                fstate,
                fprev,
                fpold,
                fqold,
                ep,
                eq,
                P,
                Stot,
                excl,
                sret,
                last_occ,
            )
    return out


#: rows traversed together: every row visits every node, so the node bookkeeping is shared
ROW_BLOCK = 32


@njit(cache=True)
def _tree_shap_block(
    X: np.ndarray,
    r0: int,
    B: int,
    root: int,
    k_lo: int,
    k_hi: int,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tq: np.ndarray,
    wq: np.ndarray,
    out: np.ndarray,
    fnode: np.ndarray,
    fstate: np.ndarray,
    fprev: np.ndarray,
    fpold: np.ndarray,
    fqold: np.ndarray,
    ep: np.ndarray,
    eq: np.ndarray,
    inv0: np.ndarray,
    inv1: np.ndarray,
    P: np.ndarray,
    Stot: np.ndarray,
    excl: np.ndarray,
    sret: np.ndarray,
    last_occ: np.ndarray,
    gl: np.ndarray,
) -> None:
    """One tree's path-dependent SHAP values for rows ``r0 : r0 + B`` at once.

    Every row visits every node, so the traversal and the per-edge factors (which depend on
    the covers only: ``p`` is 0 or 1) are computed once for the block. Arrays indexed
    ``[depth, quadrature point, output * B + row]``.
    """
    Q = tq.shape[0]
    Kt = k_hi - k_lo
    if left[root] < 0:
        return
    d = 0
    fnode[0] = root
    fstate[0] = 0
    fprev[0] = -1
    fqold[0] = 1.0
    for b in range(B):
        fpold[0, b] = 1.0
    for q in range(Q):
        for b in range(B):
            P[0, q, b] = 1.0
        for kb in range(Kt * B):
            Stot[0, q, kb] = 0.0
    while d >= 0:
        node = fnode[d]
        returning = False
        lc = left[node]
        if lc < 0:
            for q in range(Q):
                for kk in range(Kt):
                    v = value[node, k_lo + kk]
                    for b in range(B):
                        sret[q, kk * B + b] = v * P[d, q, b]
            d -= 1
            returning = True
        elif fstate[d] < 2:
            state = fstate[d]
            fstate[d] = state + 1
            j = feature[node]
            if state == 0:
                c = lc
                for b in range(B):
                    xv = X[r0 + b, j]
                    if np.isnan(xv):
                        g = missing_left[node]
                    elif is_categorical[node]:
                        g = False
                        s0 = cat_start[node]
                        for ci in range(s0, s0 + cat_len[node]):
                            if cat_values[ci] == xv:
                                g = True
                                break
                    else:
                        g = xv < threshold[node]
                    gl[d, b] = g
            else:
                c = right[node]
            qold = fqold[d]
            q_c = qold * cover[c] / cover[node] if cover[node] > 0 else 0.0
            any_p = False
            for b in range(B):
                follows = gl[d, b] if state == 0 else not gl[d, b]
                pc = fpold[d, b] if follows else 0.0
                ep[d, b] = pc
                if pc != 0.0:
                    any_p = True
            if q_c == 0.0 and not any_p:
                continue
            eq[d] = q_c
            last_occ[j] = d
            has_prev = fprev[d] >= 0
            for q in range(Q):
                t = tq[q]
                f0 = q_c * (1.0 - t)
                f1 = q_c + t * (1.0 - q_c)
                inv0[d, q] = 1.0 / f0 if f0 != 0.0 else 0.0
                inv1[d, q] = 1.0 / f1
                if has_prev:
                    o0 = qold * (1.0 - t)
                    o1 = qold + t * (1.0 - qold)
                    r00 = f0 / o0 if o0 != 0.0 else 0.0
                    r01 = f1 / o0 if o0 != 0.0 else 0.0
                    r10 = f0 / o1
                    r11 = f1 / o1
                    for b in range(B):
                        if fpold[d, b] != 0.0:
                            r = r11 if ep[d, b] != 0.0 else r10
                        else:
                            r = r01 if ep[d, b] != 0.0 else r00
                        P[d + 1, q, b] = P[d, q, b] * r
                else:
                    for b in range(B):
                        P[d + 1, q, b] = P[d, q, b] * (f1 if ep[d, b] != 0.0 else f0)
                for kb in range(Kt * B):
                    excl[d, q, kb] = 0.0
                    Stot[d + 1, q, kb] = 0.0
            d += 1
            fnode[d] = c
            fstate[d] = 0
            if left[c] >= 0:
                prev = last_occ[feature[c]]
                fprev[d] = prev
                if prev >= 0:
                    fqold[d] = eq[prev]
                    for b in range(B):
                        fpold[d, b] = ep[prev, b]
                else:
                    fqold[d] = 1.0
                    for b in range(B):
                        fpold[d, b] = 1.0
        else:
            last_occ[feature[node]] = fprev[d]
            prev = fprev[d]
            for q in range(Q):
                for kb in range(Kt * B):
                    sret[q, kb] = Stot[d, q, kb]
                if prev >= 0:
                    for kb in range(Kt * B):
                        excl[prev, q, kb] += Stot[d, q, kb]
            d -= 1
            returning = True
        if returning and d >= 0:
            parent = fnode[d]
            j = feature[parent]
            last_occ[j] = fprev[d]
            q_c = eq[d]
            for b in range(B):
                dp = ep[d, b] - q_c
                if dp == 0.0:
                    continue
                on = ep[d, b] != 0.0
                for kk in range(Kt):
                    acc = 0.0
                    for q in range(Q):
                        inv = inv1[d, q] if on else inv0[d, q]
                        acc += wq[q] * (sret[q, kk * B + b] - excl[d, q, kk * B + b]) * inv
                    out[r0 + b, j, k_lo + kk] += dp * acc
            for q in range(Q):
                for kb in range(Kt * B):
                    Stot[d, q, kb] += sret[q, kb]


@njit(parallel=True, cache=True)
def path_dependent_shap_blocked(
    X: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
    tq: np.ndarray,
    wq: np.ndarray,
) -> np.ndarray:
    """Path-dependent SHAP values (n, p, K), rows traversed in blocks of ``ROW_BLOCK``."""
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    D = max_depth + 2
    Bm = ROW_BLOCK
    out = np.zeros((n, p, K))
    n_blocks = (n + Bm - 1) // Bm
    for blk in prange(n_blocks):
        r0 = blk * Bm
        B = min(Bm, n - r0)
        fnode = np.zeros(D, np.int64)
        fstate = np.zeros(D, np.int64)
        fprev = np.zeros(D, np.int64)
        fpold = np.zeros((D, Bm))
        fqold = np.zeros(D)
        ep = np.zeros((D, Bm))
        eq = np.zeros(D)
        inv0 = np.zeros((D, Q))
        inv1 = np.zeros((D, Q))
        P = np.zeros((D, Q, Bm))
        Stot = np.zeros((D, Q, K * Bm))
        excl = np.zeros((D, Q, K * Bm))
        sret = np.zeros((Q, K * Bm))
        last_occ = np.full(p, -1, np.int64)
        gl = np.zeros((D, Bm), np.bool_)
        for t in range(T):
            k_lo = 0 if tree_output[t] < 0 else tree_output[t]
            k_hi = K if tree_output[t] < 0 else tree_output[t] + 1
            _tree_shap_block(
                X,
                r0,
                B,
                tree_start[t],
                k_lo,
                k_hi,
                left,
                right,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
                value,
                cover,
                tq,
                wq,
                out,
                fnode,
                fstate,
                fprev,
                fpold,
                fqold,
                ep,
                eq,
                inv0,
                inv1,
                P,
                Stot,
                excl,
                sret,
                last_occ,
                gl,
            )
    return out


# ------------------------------------------------------------------ interventional
@njit(cache=True)
def _shapley_weight(a: int, b: int) -> float:
    """a! b! / (a + b + 1)!: Shapley weight of a player joining a coalition of size a when b
    other players stay out."""
    w = 1.0
    # a! b! / (a+b+1)! = 1 / ((a+b+1) * C(a+b, a))
    n = a + b
    c = 1.0
    for i in range(1, a + 1):
        c = c * (n - a + i) / i
    w = 1.0 / ((n + 1) * c)
    return w


@njit(cache=True)
def _interventional_tree(
    x: np.ndarray,
    Z: np.ndarray,
    idx: np.ndarray,
    root: int,
    k_lo: int,
    k_hi: int,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    scale: np.ndarray,
    phi: np.ndarray,
    side_of: np.ndarray,
    fnode: np.ndarray,
    fs: np.ndarray,
    fe: np.ndarray,
    fm: np.ndarray,
    fphase: np.ndarray,
    fassigned: np.ndarray,
    path_feat: np.ndarray,
    path_side: np.ndarray,
) -> None:
    """Add one tree's interventional SHAP values of ``x`` against background rows ``Z[idx]``
    to ``phi`` (p, K), each background row weighted by ``scale`` (its weight).

    Background rows that take the same decisions are processed together: a frame holds a
    segment of ``idx`` and the features assigned so far to ``x`` (side 1) or to the
    background (side 2); a leaf reached with ``a`` features from ``x`` and ``b`` from the
    background gives ``+v a-1! b! / (a+b)!`` to each of the former and ``-v a! b-1! /
    (a+b)!`` to each of the latter (Lundberg et al. 2020, independent TreeSHAP).
    """
    n_bg = idx.shape[0]
    d = 0
    fnode[0] = root
    fs[0] = 0
    fe[0] = n_bg
    fphase[0] = 0
    fassigned[0] = -1
    na = 0  # features assigned to x along the path
    nb = 0  # features assigned to the background
    plen = 0
    while d >= 0:
        node = fnode[d]
        s = fs[d]
        e = fe[d]
        if left[node] < 0:
            if na + nb > 0:
                wsum = 0.0
                for r in range(s, e):
                    wsum += scale[idx[r]]
                wpos = _shapley_weight(na - 1, nb) if na > 0 else 0.0
                wneg = _shapley_weight(na, nb - 1) if nb > 0 else 0.0
                for k in range(k_lo, k_hi):
                    v = value[node, k] * wsum
                    for a in range(plen):
                        if path_side[a] == 1:
                            phi[path_feat[a], k] += v * wpos
                        else:
                            phi[path_feat[a], k] -= v * wneg
            phase = 99
        else:
            phase = fphase[d]
        if phase == 99 or phase >= 3:
            # pop: undo this frame's assignment
            f = fassigned[d]
            if f >= 0:
                if side_of[f] == 1:
                    na -= 1
                else:
                    nb -= 1
                side_of[f] = 0
                plen -= 1
            d -= 1
            continue
        j = feature[node]
        xl = _goes_left(
            x[j], node, threshold, missing_left, is_categorical, cat_start, cat_len, cat_values
        )
        xc = left[node] if xl else right[node]
        side = side_of[j]
        child = -1
        cs = 0
        ce = 0
        assign = 0
        if side == 1:
            if phase == 0:
                child, cs, ce = xc, s, e
            fphase[d] = 3
        elif side == 2:
            if phase == 0:
                # partition by the background rows' own direction: left-goers first
                lo = s
                hi = e - 1
                while lo <= hi:
                    zr = idx[lo]
                    if _goes_left(
                        Z[zr, j],
                        node,
                        threshold,
                        missing_left,
                        is_categorical,
                        cat_start,
                        cat_len,
                        cat_values,
                    ):
                        lo += 1
                    else:
                        idx[lo], idx[hi] = idx[hi], idx[lo]
                        hi -= 1
                fm[d] = lo
                child, cs, ce = left[node], s, lo
                fphase[d] = 1
            else:
                child, cs, ce = right[node], fm[d], e
                fphase[d] = 3
        else:
            if phase == 0:
                # rows deciding like x first ("same"), then the others ("differ")
                lo = s
                hi = e - 1
                while lo <= hi:
                    zr = idx[lo]
                    zl = _goes_left(
                        Z[zr, j],
                        node,
                        threshold,
                        missing_left,
                        is_categorical,
                        cat_start,
                        cat_len,
                        cat_values,
                    )
                    if zl == xl:
                        lo += 1
                    else:
                        idx[lo], idx[hi] = idx[hi], idx[lo]
                        hi -= 1
                fm[d] = lo
                child, cs, ce = xc, s, lo
                fphase[d] = 1
            elif phase == 1:
                child, cs, ce = xc, fm[d], e  # differ, feature j taken from x
                assign = 1
                fphase[d] = 2
            else:
                child = right[node] if xl else left[node]  # differ, j from the background
                cs, ce = fm[d], e
                assign = 2
                fphase[d] = 3
        if child < 0 or ce <= cs:
            continue
        d += 1
        fnode[d] = child
        fs[d] = cs
        fe[d] = ce
        fphase[d] = 0
        if assign > 0:
            side_of[j] = assign
            fassigned[d] = j
            path_feat[plen] = j
            path_side[plen] = assign
            plen += 1
            if assign == 1:
                na += 1
            else:
                nb += 1
        else:
            fassigned[d] = -1


@njit(parallel=True, cache=True)
def interventional_shap(
    X: np.ndarray,
    Z: np.ndarray,
    weights: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
) -> np.ndarray:
    """Interventional SHAP values (n, p, K) of the raw output against weighted background
    rows ``Z`` (weights sum to one)."""
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    D = max_depth + 2
    n_bg = Z.shape[0]
    out = np.zeros((n, p, K))
    for i in prange(n):
        side_of = np.zeros(p, np.int64)
        fnode = np.zeros(D, np.int64)
        fs = np.zeros(D, np.int64)
        fe = np.zeros(D, np.int64)
        fm = np.zeros(D, np.int64)
        fphase = np.zeros(D, np.int64)
        fassigned = np.zeros(D, np.int64)
        path_feat = np.zeros(D, np.int64)
        path_side = np.zeros(D, np.int64)
        idx = np.arange(n_bg)
        for t in range(T):
            k_lo = 0 if tree_output[t] < 0 else tree_output[t]
            k_hi = K if tree_output[t] < 0 else tree_output[t] + 1
            _interventional_tree(
                X[i],
                Z,
                idx,
                tree_start[t],
                k_lo,
                k_hi,
                left,
                right,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
                value,
                weights,
                out[i],
                side_of,
                fnode,
                fs,
                fe,
                fm,
                fphase,
                fassigned,
                path_feat,
                path_side,
            )
    return out


@njit(parallel=True, cache=True)
def interventional_shap_per_reference(
    X: np.ndarray,
    Z: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    max_depth: int,
) -> np.ndarray:
    """Interventional SHAP values of the raw output for every (row, background row) pair:
    float64 (n, n_bg, p, K). Used when a non-linear output transform is explained."""
    n, p = X.shape
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    D = max_depth + 2
    n_bg = Z.shape[0]
    out = np.zeros((n, n_bg, p, K))
    one = np.ones(1)
    for i in prange(n):
        side_of = np.zeros(p, np.int64)
        fnode = np.zeros(D, np.int64)
        fs = np.zeros(D, np.int64)
        fe = np.zeros(D, np.int64)
        fm = np.zeros(D, np.int64)
        fphase = np.zeros(D, np.int64)
        fassigned = np.zeros(D, np.int64)
        path_feat = np.zeros(D, np.int64)
        path_side = np.zeros(D, np.int64)
        idx = np.zeros(1, np.int64)
        for b in range(n_bg):
            idx[0] = 0
            Zb = Z[b : b + 1]
            for t in range(T):
                k_lo = 0 if tree_output[t] < 0 else tree_output[t]
                k_hi = K if tree_output[t] < 0 else tree_output[t] + 1
                _interventional_tree(
                    X[i],
                    Zb,
                    idx,
                    tree_start[t],
                    k_lo,
                    k_hi,
                    left,
                    right,
                    feature,
                    threshold,
                    missing_left,
                    is_categorical,
                    cat_start,
                    cat_len,
                    cat_values,
                    value,
                    one,
                    out[i, b],
                    side_of,
                    fnode,
                    fs,
                    fe,
                    fm,
                    fphase,
                    fassigned,
                    path_feat,
                    path_side,
                )
    return out


# ------------------------------------------------- interventional, leaf-mask form
@njit(cache=True, inline="always")
def _popcount(v: int) -> int:
    c = 0
    while v:
        v &= v - 1
        c += 1
    return c


@njit(cache=True)
def leaf_paths(left: np.ndarray, right: np.ndarray, feature: np.ndarray, tree_start: np.ndarray):
    """Root-to-leaf paths of every leaf: for the leaf-mask form of interventional TreeSHAP.

    Returns
    -------
    leaf_node, leaf_tree : int64 (L,)
    path_start : int64 (L + 1,) offsets into the path arrays
    path_node, path_dir, path_bit : int64 (sum of path lengths,) the split node, the side
        taken (0 left, 1 right) and the index of the split's feature among the leaf's
        distinct path features
    feat_start : int64 (L + 1,) offsets into ``feat``: the leaf's distinct path features
    feat : int64
    """
    N = left.shape[0]
    parent = np.full(N, -1, np.int64)
    for i in range(N):
        if left[i] >= 0:
            parent[left[i]] = i
            parent[right[i]] = i
    T = tree_start.shape[0] - 1
    n_leaves = 0
    for i in range(N):
        if left[i] < 0:
            n_leaves += 1
    leaf_node = np.zeros(n_leaves, np.int64)
    leaf_tree = np.zeros(n_leaves, np.int64)
    a = 0
    for t in range(T):
        for i in range(tree_start[t], tree_start[t + 1]):
            if left[i] < 0:
                leaf_node[a] = i
                leaf_tree[a] = t
                a += 1
    path_start = np.zeros(n_leaves + 1, np.int64)
    feat_start = np.zeros(n_leaves + 1, np.int64)
    for li in range(n_leaves):
        depth = 0
        node = leaf_node[li]
        while parent[node] >= 0:
            depth += 1
            node = parent[node]
        path_start[li + 1] = path_start[li] + depth
    total = path_start[n_leaves]
    path_node = np.zeros(total, np.int64)
    path_dir = np.zeros(total, np.int64)
    path_bit = np.zeros(total, np.int64)
    feat = np.zeros(total, np.int64)
    n_feat = 0
    for li in range(n_leaves):
        node = leaf_node[li]
        k = path_start[li + 1] - 1
        while parent[node] >= 0:
            par = parent[node]
            path_node[k] = par
            path_dir[k] = 0 if left[par] == node else 1
            k -= 1
            node = par
        f0 = n_feat
        for s in range(path_start[li], path_start[li + 1]):
            j = feature[path_node[s]]
            bit = -1
            for u in range(f0, n_feat):
                if feat[u] == j:
                    bit = u - f0
                    break
            if bit < 0:
                feat[n_feat] = j
                bit = n_feat - f0
                n_feat += 1
            path_bit[s] = bit
        feat_start[li + 1] = n_feat
    return (
        leaf_node,
        leaf_tree,
        path_start,
        path_node,
        path_dir,
        path_bit,
        feat_start,
        feat[:n_feat],
    )


@njit(cache=True)
def _violations(
    x: np.ndarray,
    s0: int,
    s1: int,
    path_node: np.ndarray,
    path_dir: np.ndarray,
    path_bit: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
) -> int:
    """Bits of the path features for which ``x`` fails at least one split on the path."""
    bad = 0
    for s in range(s0, s1):
        node = path_node[s]
        gl = _goes_left(
            x[feature[node]],
            node,
            threshold,
            missing_left,
            is_categorical,
            cat_start,
            cat_len,
            cat_values,
        )
        if gl != (path_dir[s] == 0):
            bad |= 1 << path_bit[s]
    return bad


@njit(parallel=True, cache=True)
def background_masks(
    Z: np.ndarray,
    weights: np.ndarray,
    path_start: np.ndarray,
    path_node: np.ndarray,
    path_dir: np.ndarray,
    path_bit: np.ndarray,
    feat_start: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
):
    """Per leaf, the distinct masks of path features the background rows satisfy, with the
    summed weights of the rows: ``(mask_start (L+1,), mask (M,), mask_weight (M,))``."""
    L = path_start.shape[0] - 1
    n_bg = Z.shape[0]
    counts = np.zeros(L, np.int64)
    tmp_masks = np.zeros((L, n_bg), np.int64)
    tmp_w = np.zeros((L, n_bg))
    for li in prange(L):
        full = (1 << (feat_start[li + 1] - feat_start[li])) - 1
        ms = np.zeros(n_bg, np.int64)
        for b in range(n_bg):
            bad = _violations(
                Z[b],
                path_start[li],
                path_start[li + 1],
                path_node,
                path_dir,
                path_bit,
                feature,
                threshold,
                missing_left,
                is_categorical,
                cat_start,
                cat_len,
                cat_values,
            )
            ms[b] = full & ~bad
        order = np.argsort(ms)
        c = -1
        last = -1
        for r in range(n_bg):
            m = ms[order[r]]
            if m != last:
                c += 1
                tmp_masks[li, c] = m
                tmp_w[li, c] = 0.0
                last = m
            tmp_w[li, c] += weights[order[r]]
        counts[li] = c + 1
    mask_start = np.zeros(L + 1, np.int64)
    for li in range(L):
        mask_start[li + 1] = mask_start[li] + counts[li]
    mask = np.zeros(mask_start[L], np.int64)
    mask_weight = np.zeros(mask_start[L])
    for li in range(L):
        mask[mask_start[li] : mask_start[li + 1]] = tmp_masks[li, : counts[li]]
        mask_weight[mask_start[li] : mask_start[li + 1]] = tmp_w[li, : counts[li]]
    return mask_start, mask, mask_weight


@njit(parallel=True, cache=True)
def interventional_shap_masks(
    X: np.ndarray,
    leaf_node: np.ndarray,
    leaf_tree: np.ndarray,
    path_start: np.ndarray,
    path_node: np.ndarray,
    path_dir: np.ndarray,
    path_bit: np.ndarray,
    feat_start: np.ndarray,
    feat: np.ndarray,
    mask_start: np.ndarray,
    mask: np.ndarray,
    mask_weight: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    is_categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_values: np.ndarray,
    value: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
) -> np.ndarray:
    """Interventional SHAP values (n, p, K) from per-leaf background masks.

    For a leaf with distinct path features ``F``, ``x`` fails the features ``R`` and a
    background row satisfies ``M``; the pair reaches the leaf in some coalition iff
    ``M`` contains ``R``. Then the features in ``R`` must come from the background (``b =
    |R|``) and those in ``F \\ M`` from ``x`` (``a``), and the leaf adds ``+v (a-1)! b! /
    (a+b)!`` to each of the latter and ``-v a! (b-1)! / (a+b)!`` to each of the former. The
    work per row is independent of the background size, only of the distinct masks.
    """
    n, p = X.shape
    K = value.shape[1]
    L = leaf_node.shape[0]
    N = feature.shape[0]
    T = tree_start.shape[0] - 1
    out = np.zeros((n, p, K))
    max_f = 0
    for li in range(L):
        max_f = max(max_f, feat_start[li + 1] - feat_start[li])
    # per mask entry: the number of path features the background row fails
    mask_a = np.zeros(mask.shape[0], np.int64)
    mask_or = np.zeros(L, np.int64)
    for li in range(L):
        full = (1 << (feat_start[li + 1] - feat_start[li])) - 1
        for mi in range(mask_start[li], mask_start[li + 1]):
            mask_a[mi] = _popcount(full & ~mask[mi])
            mask_or[li] |= mask[mi]
    # Shapley weights w(a, b) = a! b! / (a + b + 1)! for a, b < max_f + 1
    W = np.zeros((max_f + 1, max_f + 1))
    for a in range(max_f + 1):
        for b in range(max_f + 1):
            W[a, b] = _shapley_weight(a, b)
    for i in prange(n):
        x = X[i]
        pos = np.zeros(max_f)
        dec = np.zeros(N, np.bool_)
        li = 0
        for t in range(T):
            for node in range(tree_start[t], tree_start[t + 1]):
                j = feature[node]
                if j >= 0:
                    dec[node] = _goes_left(
                        x[j],
                        node,
                        threshold,
                        missing_left,
                        is_categorical,
                        cat_start,
                        cat_len,
                        cat_values,
                    )
            k_lo = 0 if tree_output[t] < 0 else tree_output[t]
            k_hi = K if tree_output[t] < 0 else tree_output[t] + 1
            while li < L and leaf_tree[li] == t:
                f0 = feat_start[li]
                nf = feat_start[li + 1] - f0
                if nf == 0:
                    li += 1
                    continue
                R = 0
                for s_ in range(path_start[li], path_start[li + 1]):
                    if dec[path_node[s_]] != (path_dir[s_] == 0):
                        R |= 1 << path_bit[s_]
                if (mask_or[li] & R) != R:
                    li += 1
                    continue
                b = _popcount(R)
                neg = 0.0
                for u in range(nf):
                    pos[u] = 0.0
                hit = False
                for mi in range(mask_start[li], mask_start[li + 1]):
                    M = mask[mi]
                    if (M & R) != R:
                        continue
                    a = mask_a[mi]
                    if a + b == 0:
                        continue
                    hit = True
                    w = mask_weight[mi]
                    if b > 0:
                        neg += w * W[a, b - 1]
                    if a > 0:
                        wp = w * W[a - 1, b]
                        for u in range(nf):
                            if not (M >> u) & 1:
                                pos[u] += wp
                if hit:
                    node = leaf_node[li]
                    for k in range(k_lo, k_hi):
                        v = value[node, k]
                        for u in range(nf):
                            j = feat[f0 + u]
                            if (R >> u) & 1:
                                out[i, j, k] -= v * neg
                            else:
                                out[i, j, k] += v * pos[u]
                li += 1
    return out
