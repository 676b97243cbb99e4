"""LIME's local surrogates of many rows and outputs at once: stacked weighted ridge problems.

:func:`whybox.games.lime.fit_surrogates` fits the surrogates of one row; :func:`fit_batch`
fits those of ``R`` rows and ``K`` outputs together, with the same arithmetic. The passes over
the samples (kernel weights, weighted-centred design, Gram matrix ``Z_c^T W Z_c`` and
``Z_c^T W y_c``) run row by row on reused buffers that stay in cache; everything on the small
(p, p) systems is stacked over all R K problems: lime's forward selection scores every
candidate of every problem of a step at once (one stacked ``np.linalg.solve`` of the chosen
features' normal equations per step), the final ridge fits are one stacked solve and their
sandwich covariances one stacked pseudo-inverse. Per-problem work is only the
``"lasso_path"`` selection (scikit-learn's ``lars_path``, as lime).

Every operation treats each row (and each output) on its own, with the shapes of a batch of
one, so a row's result does not depend on the rows batched with it (bit for bit: the tests
compare batches of 1, 7 and all rows) and equals the per-row fit to 1e-12 (the tests' bound;
the forward selection solves where the per-row code takes least squares, the rest is the
same arithmetic).

References
----------
Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD, 1135-1144.

White, H. (1980). A heteroskedasticity-consistent covariance matrix estimator and a direct test
for heteroskedasticity. Econometrica 48(4). (The standard errors.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..parallel import one_blas_thread
from .lime import _fit, _Gram, kernel_weights

__all__ = ["BatchFit", "fit_batch"]


@dataclass(frozen=True)
class BatchFit:
    """The surrogates of R rows and K outputs.

    ``used_list[r][o]`` the features selected for row ``r`` and output ``o`` in selection
    order (``"lasso_path"`` selections may differ in size), ``values`` (R, p, K) coefficient times the row's interpretable value (0 for unselected
    features), ``std`` (R, p, K) their standard errors, ``intercept``, ``score`` (weighted
    R^2) and ``local_prediction`` (R, K).
    """

    used_list: list[list[np.ndarray]]
    values: np.ndarray
    std: np.ndarray
    intercept: np.ndarray
    score: np.ndarray
    local_prediction: np.ndarray


def _stacked_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``solve(A[i], B[i])`` for a stack (n, s, s), (n, s, c); a singular matrix falls back to
    least squares on its own (the others keep their LU solution, whatever the batch)."""
    try:
        return np.linalg.solve(A, B)
    except np.linalg.LinAlgError:
        out = np.empty(B.shape)
        for i in range(A.shape[0]):
            try:
                out[i] = np.linalg.solve(A[i : i + 1], B[i : i + 1])[0]
            except np.linalg.LinAlgError:
                out[i] = np.linalg.lstsq(A[i], B[i], rcond=None)[0]
        return out


def _gather(G: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``G[n][rows[n]][:, cols[n]]`` for a stack of matrices G (n, a, b): (n, len r, len c)."""
    n = np.arange(G.shape[0])[:, None, None]
    return G[n, rows[:, :, None], cols[:, None, :]]


def _forward_selection(G: np.ndarray, b: np.ndarray, usable: np.ndarray, k: int) -> np.ndarray:
    """lime's forward selection of n problems at once (see
    :func:`whybox.games.lime._forward_selection`): G (n, p, p), b (n, p), usable (n, p)
    (non-constant columns). Returns the chosen features (n, min(k, p)) in selection order."""
    n, p = b.shape
    diag = np.diagonal(G, axis1=1, axis2=2).copy()  # (n, p)
    used = np.zeros((n, 0), dtype=np.intp)
    chosen = np.zeros((n, p), dtype=bool)
    rows = np.arange(n)
    for _ in range(min(k, p)):
        if used.shape[1]:
            G_S = np.take_along_axis(G, used[:, :, None], axis=1)  # (n, s, p): rows of S
            G_SS = np.take_along_axis(G_S, used[:, None, :], axis=2)  # (n, s, s)
            b_S = np.take_along_axis(b, used, axis=1)  # (n, s)
            sol = _stacked_solve(G_SS, np.concatenate([G_S, b_S[:, :, None]], axis=2))
            g_res = diag - np.einsum("nuj,nuj->nj", G_S, sol[:, :, :p])
            b_res = b - (np.swapaxes(G_S, 1, 2) @ sol[:, :, p:])[:, :, 0]
        else:
            g_res, b_res = diag, b
        ok = usable & (g_res > 1e-10 * diag)
        gain = np.where(ok, b_res**2 / np.where(ok, g_res, 1.0), 0.0)
        gain[chosen] = -np.inf
        best = gain.max(axis=1, keepdims=True)
        pick = np.argmax(gain >= best - 1e-10 * np.abs(best), axis=1)  # first on ties
        chosen[rows, pick] = True
        used = np.concatenate([used, pick[:, None]], axis=1)
    return used


def fit_batch(
    Z: np.ndarray,
    Y: np.ndarray,
    width: float,
    n_features: int,
    feature_selection: str = "auto",
    alpha: float = 1.0,
    binary: bool = False,
) -> BatchFit:
    """Fit the surrogates of R rows and K outputs (lime's ``explain_instance_with_data``).

    Parameters
    ----------
    Z : ndarray (R, m, p)
        Interpretable samples of each row; sample 0 is the explained row. With ``binary``
        they may be uint8 (:meth:`~whybox.games.lime.InterpretableSpace.sample_batch`'s
        ``compact=True``): each row is converted to floats in one reused buffer.
    Y : ndarray (R, m, K)
        Model outputs of the samples.
    width : float
        Kernel width: sample weights are ``kernel_weights(|z - z_0|, width)``.
    n_features, feature_selection, alpha
        As :func:`whybox.games.lime.fit_surrogate`.
    binary : bool
        Whether every entry of ``Z`` is 0 or 1 with ``Z[:, 0] == 1`` (discretised features):
        the squared distance to sample 0 is then ``p - sum(z)``, the same number, and takes
        only ``p + 1`` values, whose kernel weights are computed once and looked up by each
        sample's sum (exact in any order: a count).

    Returns
    -------
    BatchFit
        Problem ``(r, o)`` equals ``fit_surrogates(Z[r], Y[r], ...)[o]`` to rounding.

    Notes
    -----
    Three passes. (1) Per row, over its samples (m, p), kept in cache: kernel weights, the
    weighted-centred design, its Gram matrix ``G = Z_c^T W Z_c`` and ``b = Z_c^T W y_c`` for
    every output. (2) Over all problems at once, on (R K, p, p) stacks: feature selection and
    the ridge solve ``(G_SS + alpha I) beta = b_S``. (3) Per row, on the selected columns only
    (m, k): residuals, weighted R^2 and the sandwich standard errors.
    """
    R, m, p = Z.shape
    K = Y.shape[2]
    method = feature_selection
    if method == "auto":
        method = "forward_selection" if n_features <= 6 else "highest_weights"
    with one_blas_thread():
        if method == "lasso_path" or not binary:
            Z = np.asarray(Z, dtype=float)
            if binary:
                w = kernel_weights(np.sqrt(p - Z.sum(axis=2)), width)  # the count of zeros
            else:
                w = kernel_weights(np.sqrt(((Z - Z[:, :1]) ** 2).sum(axis=2)), width)  # (R, m)
            if method == "lasso_path":
                return _per_problem(Z, Y, w, n_features, alpha)
        else:  # p - sum(z) takes p + 1 values: their weights, looked up by each sample's sum
            table = kernel_weights(np.sqrt(float(p) - np.arange(p + 1, dtype=float)), width)
            w = np.empty((R, m))
        Z0 = Z[:, 0].astype(float)  # (R, p): the explained rows' interpretable values
        G = np.empty((R, p, p))
        b = np.empty((R, K, p))
        zbar = np.empty((R, p))
        ybar = np.empty((R, K))
        usable = np.empty((R, p), dtype=bool)
        Zc, Zw = np.empty((m, p)), np.empty((m, p))  # reused: stay in cache, no page faults
        Zf = np.empty((m, p)) if Z.dtype != np.float64 else None  # a row of uint8 Z as floats
        ones = np.ones(p)
        for r in range(R):  # (1): the arithmetic of _Gram and _fit, on one row's samples
            Zr = Z[r]
            if Zf is not None:
                np.copyto(Zf, Zr)
                Zr = Zf
            if binary:  # sums of 0/1 (exact in any order): the weights' positions in table
                np.take(table, (Zr @ ones).astype(np.intp), out=w[r])
            wr = w[r]
            wZ = wr @ Zr
            wsum = wr.sum()
            zbar[r] = wZ / wsum
            np.subtract(Zr, zbar[r], out=Zc)
            np.multiply(Zc, wr[:, None], out=Zw)
            np.matmul(Zw.T, Zc, out=G[r])
            for o in range(K):
                ybar[r, o] = float(wr @ Y[r, :, o]) / float(wsum)
                b[r, o] = Zw.T @ (Y[r, :, o] - ybar[r, o])
            if method == "forward_selection":  # raw norms (binary: z^2 = z, the same numbers)
                raw = wZ if binary else wr @ Zr**2
                usable[r] = np.diag(G[r]) > 1e-20 * raw
        n = R * K  # (2): problem (r, o) at r * K + o
        Gn = np.repeat(G, K, axis=0)
        bn = b.reshape(n, p)
        if method == "none":
            used = np.broadcast_to(np.arange(p), (n, p)).copy()
        elif method == "forward_selection":
            used = _forward_selection(Gn, bn, np.repeat(usable, K, axis=0), n_features)
        else:  # highest_weights: lime's Ridge(alpha=0.01) on all features
            coef = _stacked_solve(Gn + 0.01 * np.eye(p), bn[:, :, None])[:, :, 0]
            z0 = np.repeat(Z0, K, axis=0)
            used = np.argsort(-np.abs(coef * z0), axis=1, kind="stable")[:, :n_features]
        k = used.shape[1]
        A = _gather(Gn, used, used) + alpha * np.eye(k)  # (n, k, k)
        b_S = np.take_along_axis(bn, used, axis=1)
        coef = _stacked_solve(A, b_S[:, :, None])[:, :, 0] if k else np.zeros((n, 0))
        A_inv = np.linalg.pinv(A) if k else np.zeros((n, 0, 0))
        ru, coef_rk, A_inv = used.reshape(R, K, k), coef.reshape(R, K, k), A_inv.reshape(R, K, k, k)
        values, std = np.zeros((R, p, K)), np.zeros((R, p, K))
        intercept, score, local = np.zeros((R, K)), np.zeros((R, K)), np.zeros((R, K))
        dof = m / max(m - k - 1, 1)
        for r in range(R):  # (3): the selected columns of each row's samples
            for o in range(K):
                u, c = ru[r, o], coef_rk[r, o]
                Zc_u = Z[r][:, u] - zbar[r, u]
                yc = Y[r, :, o] - ybar[r, o]
                resid = yc - Zc_u @ c
                sse, sst = float(w[r] @ resid**2), float(w[r] @ yc**2)
                score[r, o] = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)
                if k:
                    M = (Zc_u * w[r][:, None]) * resid[:, None]
                    cov = A_inv[r, o] @ (M.T @ M) @ A_inv[r, o] * dof
                    std[r, u, o] = np.sqrt(np.maximum(np.diag(cov), 0.0)) * np.abs(Z0[r, u])
                z0 = Z0[r, u]
                values[r, u, o] = c * z0
                intercept[r, o] = ybar[r, o] - float(zbar[r, u] @ c)
                local[r, o] = intercept[r, o] + float(z0 @ c)
    return BatchFit(
        used_list=[[ru[r, o] for o in range(K)] for r in range(R)],
        values=values,
        std=std,
        intercept=intercept,
        score=score,
        local_prediction=local,
    )


def _per_problem(Z: np.ndarray, Y: np.ndarray, w: np.ndarray, k: int, alpha: float) -> BatchFit:
    """``"lasso_path"``: scikit-learn's ``lars_path`` per problem (selections differ in size)."""
    R, _, p = Z.shape
    K = Y.shape[2]
    values, std = np.zeros((R, p, K)), np.zeros((R, p, K))
    intercept, score, local = np.zeros((R, K)), np.zeros((R, K)), np.zeros((R, K))
    used_list = []
    for r in range(R):
        gram = _Gram(Z[r], w[r])
        row_used = []
        for o in range(K):
            fit = _fit(gram, Y[r, :, o], k, "lasso_path", alpha)
            values[r, fit.used, o] = fit.coef * Z[r, 0, fit.used]
            std[r, fit.used, o] = fit.std * np.abs(Z[r, 0, fit.used])
            intercept[r, o], score[r, o] = fit.intercept, fit.score
            local[r, o] = fit.local_prediction
            row_used.append(fit.used)
        used_list.append(row_used)
    return BatchFit(used_list, values, std, intercept, score, local)
