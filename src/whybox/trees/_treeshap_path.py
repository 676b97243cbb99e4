"""numba kernels of path-dependent TreeSHAP on the flat tree layout of :mod:`whybox.trees.parse`.

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

The quadrature takes ``ceil(d / 2)`` points for ``d`` the most distinct features on any
root-to-leaf path (:func:`max_path_features`), which is often below the depth. Rows are
walked in blocks (:func:`path_dependent_shap`): every row visits every node, so the
traversal and the cover-only factors are shared, decisions are 0/1 numbers, and the per-row
work is branch-free arithmetic over the block (a branch per row and node costs more than the
arithmetic when half the rows go each way).

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

from .parse import goes_left

__all__ = [
    "ROW_BLOCK",
    "expected_values",
    "gauss_legendre_01",
    "max_path_features",
    "path_dependent_interactions",
    "path_dependent_shap",
]


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
    layout: tuple,
    tq: np.ndarray,
    wq: np.ndarray,
    cond_feature: int,
    cond_sign: int,
    phi: np.ndarray,
    work: tuple,
) -> None:
    """Add one tree's path-dependent SHAP values for row ``x`` to ``phi`` (p, K).

    With ``cond_feature >= 0`` that feature is conditioned: its edge factor is the constant
    ``p`` (``cond_sign = 1``, always present) or ``q`` (``cond_sign = -1``, always absent) and
    it receives no attribution.
    """
    (left, right, feature, threshold, missing_left, is_categorical, cat_start, cat_len,
     cat_values, value, cover) = layout[:11]  # fmt: skip
    fnode, fstate, fprev, fpold, fqold, ep, eq, P, Stot, excl, sret, last_occ = work
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
    layout: tuple,
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
    value, tree_start, tree_output = layout[9], layout[11], layout[12]
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    out = np.zeros((n, p, p, K))
    for r in prange(n):
        work = _alloc(max_depth, Q, K, p)
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
                layout,
                tq,
                wq,
                -1,
                0,
                phi,
                work,
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
                    layout,
                    tq,
                    wq,
                    i,
                    1,
                    on,
                    work,
                )
                _tree_shap_one(
                    x,
                    tree_start[t],
                    lo,
                    hi,
                    layout,
                    tq,
                    wq,
                    i,
                    -1,
                    off,
                    work,
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
ROW_BLOCK = 64


@njit(cache=True)
def max_path_features(
    left: np.ndarray, right: np.ndarray, feature: np.ndarray, tree_start: np.ndarray
) -> int:
    """Most distinct features on any root-to-leaf path of the ensemble.

    A leaf whose path splits on ``d`` distinct features has a path integrand of degree
    ``d - 1``, so ``ceil(d / 2)`` Gauss-Legendre points are exact. Trees often split on a
    feature twice along a path, so this is often below the depth (a 100-tree depth-12
    random forest on 20 features: 10).
    """
    best = 0
    count = np.zeros(max(1, feature.max() + 1), np.int64)
    stack = np.empty(left.shape[0] + 2, np.int64)  # node, or -(node + 1): leave the node
    for t in range(tree_start.shape[0] - 1):
        top = 0
        stack[0] = tree_start[t]
        distinct = 0
        while top >= 0:
            s = stack[top]
            top -= 1
            if s < 0:
                j = feature[-s - 1]
                count[j] -= 1
                if count[j] == 0:
                    distinct -= 1
            elif left[s] < 0:
                best = max(best, distinct)
            else:
                j = feature[s]
                if count[j] == 0:
                    distinct += 1
                count[j] += 1
                stack[top + 1] = -s - 1
                stack[top + 2] = right[s]
                stack[top + 3] = left[s]
                top += 3
    return best


@njit(cache=True)
def _tree_shap_block(
    Xt: np.ndarray,
    B: int,
    root: int,
    k_lo: int,
    k_hi: int,
    layout: tuple,
    tq: np.ndarray,
    wq: np.ndarray,
    phi: np.ndarray,
    work: tuple,
) -> None:
    """Add one tree's path-dependent SHAP values of a block of ``B`` rows to ``phi``.

    ``Xt`` (p, B) holds the rows' features column-wise and ``phi`` (p, K * B) their values,
    output ``k`` of row ``b`` in column ``k * B + b``. Every row visits every node, so the
    traversal and the cover-only quantities (``q`` and its quadrature factors) are shared by
    the block, and the per-row work is straight-line arithmetic over ``b``: decisions are 0/1
    numbers, ``p`` is a product of them, and no branch depends on a row.

    Per depth level ``d`` (the node ``fnode[d]`` and the edge to its current child): the
    path product ``P[d, q, b]`` at each quadrature point, the subtree total ``Stot[d]`` summed
    over the children done so far, and ``excl[d]``: the totals of deeper splits on the same
    feature (attributed there, subtracted here), valid when ``dirty[d]``. Leaf children are
    settled inline: their contribution needs the path product without this edge's factor,
    ``G``, and adds ``v G f_edge`` to the total.
    """
    (left, right, feature, threshold, missing_left, is_categorical, cat_start, cat_len,
     cat_values, value, cover) = layout[:11]  # fmt: skip
    (fnode, fstate, fprev, fpold, fqold, ep, eq, inv0, inv1, P, Stot, excl, dirty, last_occ,
     gl, G, acc) = work  # fmt: skip
    Q = tq.shape[0]
    Kt = k_hi - k_lo
    KB = Kt * B
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
        for kb in range(KB):
            Stot[0, q, kb] = 0.0
    while d >= 0:
        node = fnode[d]
        state = fstate[d]
        if state == 2:  # both children done: Stot[d] is this subtree's total
            prev = fprev[d]
            last_occ[feature[node]] = prev
            if prev >= 0:  # its leaves' factors of this feature replace those at prev
                if dirty[prev]:
                    for q in range(Q):
                        for kb in range(KB):
                            excl[prev, q, kb] += Stot[d, q, kb]
                else:
                    dirty[prev] = True
                    for q in range(Q):
                        for kb in range(KB):
                            excl[prev, q, kb] = Stot[d, q, kb]
            d -= 1
            if d < 0:
                break
            # back at the parent: attribute the edge to the child, S = Stot[d + 1]
            j = feature[fnode[d]]
            last_occ[j] = fprev[d]
            q_c = eq[d]
            for kb in range(KB):
                acc[kb] = 0.0
            for q in range(Q):
                w0 = wq[q] * inv0[d, q]
                w1 = wq[q] * inv1[d, q] - w0
                for kk in range(Kt):
                    o = kk * B
                    if dirty[d]:
                        for b in range(B):
                            s = Stot[d + 1, q, o + b] - excl[d, q, o + b]
                            acc[o + b] += s * (w0 + ep[d, b] * w1)
                    else:
                        for b in range(B):
                            acc[o + b] += Stot[d + 1, q, o + b] * (w0 + ep[d, b] * w1)
                for kb in range(KB):
                    Stot[d, q, kb] += Stot[d + 1, q, kb]
            for kk in range(Kt):
                o = (k_lo + kk) * B
                for b in range(B):
                    phi[j, o + b] += (ep[d, b] - q_c) * acc[kk * B + b]
            continue
        fstate[d] = state + 1
        j = feature[node]
        any_p = 0.0
        if state == 0:
            c = left[node]
            if is_categorical[node]:
                for b in range(B):
                    gl[d, b] = goes_left(
                        Xt[j, b],
                        node,
                        threshold,
                        missing_left,
                        is_categorical,
                        cat_start,
                        cat_len,
                        cat_values,
                    )
            else:  # branch-free form of goes_left: NaN < t is False
                thr = threshold[node]
                ml = 1.0 if missing_left[node] else 0.0
                for b in range(B):
                    xv = Xt[j, b]
                    gl[d, b] = (1.0 if xv < thr else 0.0) + (ml if xv != xv else 0.0)
            for b in range(B):
                ep[d, b] = fpold[d, b] * gl[d, b]
                any_p += ep[d, b]
        else:
            c = right[node]
            for b in range(B):
                ep[d, b] = fpold[d, b] * (1.0 - gl[d, b])
                any_p += ep[d, b]
        qold = fqold[d]
        q_c = qold * cover[c] / cover[node] if cover[node] > 0 else 0.0
        if q_c == 0.0 and any_p == 0.0:
            continue  # this subtree is worth 0 in every coalition of every row
        eq[d] = q_c
        has_prev = fprev[d] >= 0
        if left[c] < 0:  # leaf child: settle it here
            for b in range(B):
                acc[b] = 0.0
            for q in range(Q):
                t = tq[q]
                f0 = q_c * (1.0 - t)
                df = q_c + t * (1.0 - q_c) - f0
                if has_prev:
                    o0 = qold * (1.0 - t)
                    i0 = 1.0 / o0 if o0 != 0.0 else 0.0
                    di = 1.0 / (qold + t * (1.0 - qold)) - i0
                    for b in range(B):
                        G[b] = P[d, q, b] * (i0 + fpold[d, b] * di)
                else:
                    for b in range(B):
                        G[b] = P[d, q, b]
                w = wq[q]
                for b in range(B):
                    acc[b] += w * G[b]
                    G[b] *= f0 + ep[d, b] * df
                for kk in range(Kt):
                    v = value[c, k_lo + kk]
                    o = kk * B
                    for b in range(B):
                        Stot[d, q, o + b] += v * G[b]
            for kk in range(Kt):
                v = value[c, k_lo + kk]
                o = (k_lo + kk) * B
                for b in range(B):
                    phi[j, o + b] += (ep[d, b] - q_c) * v * acc[b]
            continue
        last_occ[j] = d
        dirty[d] = False
        for q in range(Q):
            t = tq[q]
            f0 = q_c * (1.0 - t)
            f1 = q_c + t * (1.0 - q_c)
            inv0[d, q] = 1.0 / f0 if f0 != 0.0 else 0.0
            inv1[d, q] = 1.0 / f1
            df = f1 - f0
            if has_prev:  # the new factor replaces the feature's factor at prev
                o0 = qold * (1.0 - t)
                i0 = 1.0 / o0 if o0 != 0.0 else 0.0
                di = 1.0 / (qold + t * (1.0 - qold)) - i0
                for b in range(B):
                    P[d + 1, q, b] = P[d, q, b] * (f0 + ep[d, b] * df) * (i0 + fpold[d, b] * di)
            else:
                for b in range(B):
                    P[d + 1, q, b] = P[d, q, b] * (f0 + ep[d, b] * df)
            for kb in range(KB):
                Stot[d + 1, q, kb] = 0.0
        d += 1
        fnode[d] = c
        fstate[d] = 0
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


@njit(parallel=True, cache=True)
def path_dependent_shap(
    X: np.ndarray,
    layout: tuple,
    max_depth: int,
    tq: np.ndarray,
    wq: np.ndarray,
    block: int,
) -> np.ndarray:
    """Path-dependent SHAP values (n, p, K), rows traversed in blocks of ``block``.

    ``layout`` is :attr:`whybox.trees.parse.TreeEnsemble.layout`; ``tq``, ``wq`` the
    quadrature of :func:`gauss_legendre_01`. A row's arithmetic does not depend on the other
    rows of its block, so the values do not depend on ``block`` or the number of threads.
    """
    n, p = X.shape
    value, tree_start, tree_output = layout[9], layout[11], layout[12]
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    Q = tq.shape[0]
    D = max_depth + 2
    Bm = max(1, block)
    out = np.zeros((n, p, K))
    n_blocks = (n + Bm - 1) // Bm
    for blk in prange(n_blocks):
        r0 = blk * Bm
        B = min(Bm, n - r0)
        work = (
            np.zeros(D, np.int64),  # fnode
            np.zeros(D, np.int64),  # fstate
            np.zeros(D, np.int64),  # fprev: level of the previous split on the feature
            np.zeros((D, Bm)),  # fpold: p of the feature before this split
            np.zeros(D),  # fqold: q of the feature before this split
            np.zeros((D, Bm)),  # ep: p after the edge
            np.zeros(D),  # eq: q after the edge
            np.zeros((D, Q)),  # inv0: 1 / edge factor where p = 0
            np.zeros((D, Q)),  # inv1: 1 / edge factor where p = 1
            np.zeros((D, Q, Bm)),  # P
            np.zeros((D, Q, K * Bm)),  # Stot
            np.zeros((D, Q, K * Bm)),  # excl
            np.zeros(D, np.bool_),  # dirty
            np.full(p, -1, np.int64),  # last_occ: level of the feature's last split
            np.zeros((D, Bm)),  # gl: goes left (0/1)
            np.zeros(Bm),  # G
            np.zeros(K * Bm),  # acc
        )
        Xt = np.empty((p, B))
        for b in range(B):
            for j in range(p):
                Xt[j, b] = X[r0 + b, j]
        phi = np.zeros((p, K * B))
        for t in range(T):
            k_lo = 0 if tree_output[t] < 0 else tree_output[t]
            k_hi = K if tree_output[t] < 0 else tree_output[t] + 1
            _tree_shap_block(Xt, B, tree_start[t], k_lo, k_hi, layout, tq, wq, phi, work)
        for b in range(B):
            for j in range(p):
                for k in range(K):
                    out[r0 + b, j, k] = phi[j, k * B + b]
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
