"""numba kernels of path-dependent TreeSHAP on the flat tree layout of :mod:`whybox.tabular.trees`.

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

from .trees import goes_left

__all__ = ["gauss_legendre_01", "path_dependent_interactions", "path_dependent_shap"]


def gauss_legendre_01(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree < 2 n."""
    x, w = np.polynomial.legendre.leggauss(max(1, int(n_points)))
    return (x + 1.0) / 2.0, w / 2.0


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
            gl_x = goes_left(
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
            follows = gl_x if state == 0 else not gl_x
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
                    gl[d, b] = goes_left(
                        X[r0 + b, j],
                        node,
                        threshold,
                        missing_left,
                        is_categorical,
                        cat_start,
                        cat_len,
                        cat_values,
                    )
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
                df = f1 - f0
                if has_prev:
                    o0 = qold * (1.0 - t)
                    o1 = qold + t * (1.0 - qold)
                    i0 = 1.0 / o0 if o0 != 0.0 else 0.0
                    di = 1.0 / o1 - i0
                    for b in range(B):
                        P[d + 1, q, b] = P[d, q, b] * (f0 + ep[d, b] * df) * (i0 + fpold[d, b] * di)
                else:
                    for b in range(B):
                        P[d + 1, q, b] = P[d, q, b] * (f0 + ep[d, b] * df)
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
                e_b = ep[d, b]
                dp = e_b - q_c
                if dp == 0.0:
                    continue
                for kk in range(Kt):
                    acc = 0.0
                    for q in range(Q):
                        inv = inv0[d, q] + e_b * (inv1[d, q] - inv0[d, q])
                        acc += wq[q] * (sret[q, kk * B + b] - excl[d, q, kk * B + b]) * inv
                    out[r0 + b, j, k_lo + kk] += dp * acc
            for q in range(Q):
                for kb in range(Kt * B):
                    Stot[d, q, kb] += sret[q, kb]


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


@njit(cache=True)
def expected_values(
    left: np.ndarray,
    right: np.ndarray,
    cover: np.ndarray,
    value: np.ndarray,
    tree_start: np.ndarray,
    tree_output: np.ndarray,
    base_offset: np.ndarray,
) -> np.ndarray:
    """Path-dependent base value ``base_offset + sum_t sum_leaves v_l prod(cover fractions)``.

    The products of the cover fractions along the root paths are the ``q`` factors of
    path-dependent TreeSHAP, so this base makes its values add up exactly. Shape (K,).
    """
    K = value.shape[1]
    out = base_offset.copy()
    N = left.shape[0]
    frac = np.zeros(N)
    for t in range(tree_start.shape[0] - 1):
        root = tree_start[t]
        frac[root] = 1.0
        # nodes are stored parents before children in every layout: one forward pass
        stack = [root]
        while len(stack) > 0:
            node = stack.pop()
            if left[node] < 0:
                if tree_output[t] < 0:
                    for k in range(K):
                        out[k] += frac[node] * value[node, k]
                else:
                    out[tree_output[t]] += frac[node] * value[node, tree_output[t]]
                continue
            c = cover[node]
            for child in (left[node], right[node]):
                frac[child] = frac[node] * (cover[child] / c if c > 0 else 0.0)
                stack.append(child)
    return out
