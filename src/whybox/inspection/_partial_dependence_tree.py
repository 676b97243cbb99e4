"""Exact ICE curves of tree ensembles in one traversal per tree and row (numba).

With every feature but the ones of interest fixed at a row's values, a tree's output is a
function of those features alone, constant between the thresholds of the tree's splits on
them. :func:`tree_ice` walks each tree once per row: at a split on another feature it follows
the row, at a split on a feature of interest it sends every grid point the way the layout's
decision rule (:func:`whybox.trees.parse.goes_left`) sends it, so the grid points reaching
a leaf are exactly those whose modified row would reach it. The set of grid points travelling
down a branch is the discrete form of the interval of ``x_j`` that branch allows; NaN and
categorical grid values follow the same rule as in prediction.

Each grid point's sum runs over the trees in order, as :meth:`TreeEnsemble.predict_raw`
does, so ``tree_ice(...)[i, g]`` equals the raw prediction of row ``i`` with its features of
interest set to grid point ``g``, bit for bit.

References
----------
Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals of
Statistics 29(5), 1189-1232 (partial dependence).
Goldstein, A., Kapelner, A., Bleich, J. and Pitkin, E. (2015). Peeking inside the black box:
visualizing statistical learning with plots of individual conditional expectation. Journal of
Computational and Graphical Statistics 24(1), 44-65.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..trees.parse import TreeEnsemble, goes_left

__all__ = ["ensemble_ice"]


@njit(parallel=True, cache=True)
def tree_ice(Z, G, feats, left, right, feature, threshold, missing_left, is_cat, cs, cl, cv,
             tree_start, value, tree_output, base_offset, max_depth):  # fmt: skip
    """Raw ensemble output of every row at every grid point.

    Parameters
    ----------
    Z : float64 (n, p)
        Encoded rows (:meth:`TreeEnsemble.encode`).
    G : float64 (n_grid, m)
        Encoded grid points: column ``a`` holds the values of feature ``feats[a]``.
    feats : int64 (m,)
        Encoded columns replaced by the grid.
    left ... base_offset
        The :class:`TreeEnsemble` arrays.
    max_depth : int

    Returns
    -------
    float64 (n, n_grid, K)
    """
    n, ng, m, K = Z.shape[0], G.shape[0], feats.shape[0], value.shape[1]
    T = tree_start.shape[0] - 1
    out = np.empty((n, ng, K))
    for i in prange(n):
        # region d of buf holds the grid points of nodes at depth d that were split off
        buf = np.empty((max_depth + 2) * ng, np.int64)
        s_node = np.empty(max_depth + 2, np.int64)
        s_depth = np.empty(max_depth + 2, np.int64)
        s_start = np.empty(max_depth + 2, np.int64)
        s_len = np.empty(max_depth + 2, np.int64)
        for g in range(ng):
            buf[g] = g
            for k in range(K):
                out[i, g, k] = base_offset[k]
        for t in range(T):
            top = 1
            s_node[0], s_depth[0], s_start[0], s_len[0] = tree_start[t], 0, 0, ng
            while top > 0:
                top -= 1
                node, d, s, L = s_node[top], s_depth[top], s_start[top], s_len[top]
                while left[node] >= 0:
                    f = feature[node]
                    q = -1
                    for a in range(m):
                        if feats[a] == f:
                            q = a
                    if q < 0:
                        if goes_left(Z[i, f], node, threshold, missing_left, is_cat, cs, cl, cv):
                            node = left[node]
                        else:
                            node = right[node]
                        d += 1
                        continue
                    base = (d + 1) * ng
                    nl = 0
                    nr = 0
                    for r in range(L):  # left points from the front, right ones from the back
                        g = buf[s + r]
                        if goes_left(G[g, q], node, threshold, missing_left, is_cat, cs, cl, cv):
                            buf[base + nl] = g
                            nl += 1
                        else:
                            nr += 1
                            buf[base + L - nr] = g
                    d += 1
                    if nl == 0:
                        node, s = right[node], base
                    elif nr == 0:
                        node, s = left[node], base
                    else:
                        s_node[top], s_depth[top] = right[node], d
                        s_start[top], s_len[top] = base + nl, nr
                        top += 1
                        node, s, L = left[node], base, nl
                col = tree_output[t]
                for r in range(L):
                    g = buf[s + r]
                    if col < 0:
                        for k in range(K):
                            out[i, g, k] += value[node, k]
                    else:
                        out[i, g, col] += value[node, col]
    return out


def ensemble_ice(ens: TreeEnsemble, Z: np.ndarray, G: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Raw output (n, n_grid, K) of encoded rows ``Z`` with columns ``feats`` set to ``G``."""
    return tree_ice(
        np.ascontiguousarray(Z, dtype=np.float64),
        np.ascontiguousarray(G, dtype=np.float64),
        np.ascontiguousarray(feats, dtype=np.int64),
        ens.left,
        ens.right,
        ens.feature,
        ens.threshold,
        ens.missing_left,
        ens.is_categorical,
        ens.cat_start,
        ens.cat_len,
        ens.cat_values,
        ens.tree_start,
        ens.value,
        ens.tree_output,
        ens.base_offset,
        int(ens.max_depth),
    )
