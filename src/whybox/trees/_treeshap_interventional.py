"""numba kernels of interventional TreeSHAP on the flat tree layout of
:mod:`whybox.trees.parse`.

Two forms give the same values (the average over background rows ``z`` of the SHAP values of
the game ``v(S) = f(x_S, z_{-S})``, Lundberg et al. 2020):

* :func:`interventional_shap` walks each tree once per explained row with *all* background
  rows, splitting them into groups that take the same decisions; cost grows with the
  background size (like shap's), but only with the nodes the rows actually reach, so it is
  the choice for deep trees.
* :func:`interventional_shap_masks` summarises the background once per leaf by the set of
  path features each background row satisfies (distinct masks with summed weights); a row
  then costs ``O(leaves x distinct masks)``, independent of the background size: the choice
  for shallow boosted trees.

:func:`interventional_shap_per_reference` keeps every (row, background row) pair apart, for
a non-linear output transform (``model_output="probability"``).

References
----------
Lundberg, S. M., Erion, G., Chen, H. et al. (2020). From local explanations to global
understanding with explainable AI for trees. Nature Machine Intelligence 2.

Laberge, G. and Pequignot, Y. (2022). Understanding interventional TreeSHAP: how and why it
works. arXiv:2209.15123.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parse import goes_left as _goes_left

__all__ = [
    "background_masks",
    "interventional_shap",
    "interventional_shap_masks",
    "interventional_shap_per_reference",
    "leaf_paths",
]


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
    layout: tuple,
    scale: np.ndarray,
    phi: np.ndarray,
    work: tuple,
) -> None:
    """Add one tree's interventional SHAP values of ``x`` against background rows ``Z[idx]``
    to ``phi`` (p, K), each background row weighted by ``scale`` (its weight).

    Background rows that take the same decisions are processed together: a frame holds a
    segment of ``idx`` and the features assigned so far to ``x`` (side 1) or to the
    background (side 2); a leaf reached with ``a`` features from ``x`` and ``b`` from the
    background gives ``+v a-1! b! / (a+b)!`` to each of the former and ``-v a! b-1! /
    (a+b)!`` to each of the latter (Lundberg et al. 2020, independent TreeSHAP).
    """
    (left, right, feature, threshold, missing_left, is_categorical, cat_start, cat_len,
     cat_values, value) = layout[:10]  # fmt: skip
    side_of, fnode, fs, fe, fm, fphase, fassigned, path_feat, path_side = work
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
    layout: tuple,
    max_depth: int,
) -> np.ndarray:
    """Interventional SHAP values (n, p, K) of the raw output against weighted background
    rows ``Z`` (weights sum to one)."""
    n, p = X.shape
    value, tree_start, tree_output = layout[9], layout[11], layout[12]
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    D = max_depth + 2
    n_bg = Z.shape[0]
    out = np.zeros((n, p, K))
    for i in prange(n):
        work = (
            np.zeros(p, np.int64),  # side_of: 1 from x, 2 from the background, 0 open
            np.zeros(D, np.int64),  # fnode
            np.zeros(D, np.int64),  # fs: segment start in idx
            np.zeros(D, np.int64),  # fe: segment end
            np.zeros(D, np.int64),  # fm: segment split point
            np.zeros(D, np.int64),  # fphase
            np.zeros(D, np.int64),  # fassigned
            np.zeros(D, np.int64),  # path_feat
            np.zeros(D, np.int64),  # path_side
        )
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
                layout,
                weights,
                out[i],
                work,
            )
    return out


@njit(parallel=True, cache=True)
def interventional_shap_per_reference(
    X: np.ndarray,
    Z: np.ndarray,
    layout: tuple,
    max_depth: int,
) -> np.ndarray:
    """Interventional SHAP values of the raw output for every (row, background row) pair:
    float64 (n, n_bg, p, K). Used when a non-linear output transform is explained."""
    n, p = X.shape
    value, tree_start, tree_output = layout[9], layout[11], layout[12]
    K = value.shape[1]
    T = tree_start.shape[0] - 1
    D = max_depth + 2
    n_bg = Z.shape[0]
    out = np.zeros((n, n_bg, p, K))
    one = np.ones(1)
    for i in prange(n):
        work = (
            np.zeros(p, np.int64),  # side_of: 1 from x, 2 from the background, 0 open
            np.zeros(D, np.int64),  # fnode
            np.zeros(D, np.int64),  # fs: segment start in idx
            np.zeros(D, np.int64),  # fe: segment end
            np.zeros(D, np.int64),  # fm: segment split point
            np.zeros(D, np.int64),  # fphase
            np.zeros(D, np.int64),  # fassigned
            np.zeros(D, np.int64),  # path_feat
            np.zeros(D, np.int64),  # path_side
        )
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
                    layout,
                    one,
                    out[i, b],
                    work,
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
def leaf_paths(layout: tuple):
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
    left, right, feature, tree_start = layout[0], layout[1], layout[2], layout[11]
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
    layout: tuple,
) -> int:
    """Bits of the path features for which ``x`` fails at least one split on the path."""
    feature, threshold, missing_left, is_categorical = layout[2:6]
    cat_start, cat_len, cat_values = layout[6:9]
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
    paths: tuple,
    layout: tuple,
):
    """Per leaf, the distinct masks of path features the background rows satisfy, with the
    summed weights of the rows: ``(mask_start (L+1,), mask (M,), mask_weight (M,))``.
    ``paths`` is the output of :func:`leaf_paths`.
    """
    path_start, path_node, path_dir, path_bit, feat_start = paths[2:7]
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
                layout,
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
    paths: tuple,
    masks: tuple,
    layout: tuple,
) -> np.ndarray:
    """Interventional SHAP values (n, p, K) from per-leaf background masks.

    For a leaf with distinct path features ``F``, ``x`` fails the features ``R`` and a
    background row satisfies ``M``; the pair reaches the leaf in some coalition iff
    ``M`` contains ``R``. Then the features in ``R`` must come from the background (``b =
    |R|``) and those in ``F \\ M`` from ``x`` (``a``), and the leaf adds ``+v (a-1)! b! /
    (a+b)!`` to each of the latter and ``-v a! (b-1)! / (a+b)!`` to each of the former. The
    work per row is independent of the background size, only of the distinct masks.
    """
    leaf_node, leaf_tree, path_start, path_node, path_dir, path_bit, feat_start, feat = paths
    mask_start, mask, mask_weight = masks
    feature, threshold, missing_left, is_categorical = layout[2:6]
    cat_start, cat_len, cat_values, value = layout[6:10]
    tree_start, tree_output = layout[11], layout[12]
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
    # Shapley weights of a leaf's pair with a features from x and b from the background:
    # Wp[a, b] = (a-1)! b! / (a+b)! for each x feature, Wn[a, b] = a! (b-1)! / (a+b)! for
    # each background one; 0 where there is no such feature
    Wp = np.zeros((max_f + 1, max_f + 1))
    Wn = np.zeros((max_f + 1, max_f + 1))
    for a in range(max_f + 1):
        for b in range(max_f + 1):
            if a > 0:
                Wp[a, b] = _shapley_weight(a - 1, b)
            if b > 0:
                Wn[a, b] = _shapley_weight(a, b - 1)
    for i in prange(n):
        x = X[i]
        pos = np.zeros(max_f)
        dec = np.zeros(N, np.bool_)
        li = 0
        for t in range(T):
            for node in range(tree_start[t], tree_start[t + 1]):
                j = feature[node]
                if j < 0:
                    continue
                if is_categorical[node]:
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
                else:  # branch-free form of the decision rule
                    xv = x[j]
                    dec[node] = (xv < threshold[node]) | ((xv != xv) & missing_left[node])
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
                    R |= np.int64(dec[path_node[s_]] == (path_dir[s_] != 0)) << path_bit[s_]
                if (mask_or[li] & R) != R:
                    li += 1
                    continue
                b = _popcount(R)
                neg = 0.0
                for u in range(nf):
                    pos[u] = 0.0
                for mi in range(mask_start[li], mask_start[li + 1]):
                    M = mask[mi]
                    if (M & R) != R:  # rows failing a feature of R never reach the leaf
                        continue
                    w = mask_weight[mi]
                    a = mask_a[mi]
                    neg += w * Wn[a, b]
                    wp = w * Wp[a, b]
                    for u in range(nf):
                        pos[u] += wp * (1 - ((M >> u) & 1))
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
