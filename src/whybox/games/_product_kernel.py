"""Kernel ridge surrogate games whose Shapley and Banzhaf values are exact.

The surrogate is a kernel ridge regression on the coalition indicators with the product
(exponentiated Hamming) kernel

    K(z, t) = prod_j rho^{[z_j != t_j]} = exp(-gamma * Hamming(z, t)),   rho = exp(-gamma).

For a fixed centre ``t``, ``z -> K(z, t)`` is a *product game* ``prod_j (a_j + b_j z_j)``
(``a_j = rho, b_j = 1 - rho`` where ``t_j = 1``; ``a_j = 1, b_j = rho - 1`` where
``t_j = 0``), whose multilinear extension is ``prod_j (a_j + b_j x_j)``. By Owen's formula the
Shapley value of player ``i`` is the integral of the extension's partial derivative along
the diagonal,

    phi_i = b_i * int_0^1 prod_{j != i} (a_j + b_j x) dx,

a polynomial of degree ``n - 1`` in ``x`` integrated exactly by Gauss-Legendre quadrature with
``ceil(n / 2)`` nodes; the Banzhaf value is the partial derivative at ``x = 1/2``,
``b_i prod_{j != i} (a_j + b_j / 2)``. A surrogate ``f = c + sum_t alpha_t K(., t)`` therefore
has exact values in ``O(m n^2)`` for ``m`` centres.

Why this family: KernelSHAP with paired sampling is already exact on games with interactions
of order at most two, so a surrogate helps it only through higher-order interactions, which
the product kernel carries at every order. Models that are themselves sums of products over
features (an RBF SVM, whose kernel is a product over features of terms that switch between
the explained row's and a background row's value) give games that are sums of product games.

References
----------
Owen, G. (1972). Multilinear extensions of games. Management Science 18(5).

Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849.

Scholkopf, B. and Smola, A. J. (2002). Learning with Kernels. MIT Press. (Kernel ridge
regression.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ProductKernelGame", "fit_product_kernel"]

#: Kernel widths tried, as ``gamma * n`` (the typical Hamming distance is ``n / 2``).
GAMMA_N = (1.0, 3.0)
#: Ridge penalties tried, relative to the mean diagonal of the kernel matrix (which is 1).
RIDGES = (1e-3, 1e-1)


@dataclass
class ProductKernelGame:
    """``f(z) = intercept + sum_t alpha[t] exp(-gamma Hamming(z, centres[t]))``.

    centres : bool (m, n); alpha : float (m, k); intercept : float (k,); gamma : float.
    """

    centres: np.ndarray
    alpha: np.ndarray
    intercept: np.ndarray
    gamma: float

    def _kernel(self, Z: np.ndarray) -> np.ndarray:
        return _kernel(Z, self.centres, self.gamma)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Surrogate values of coalitions ``Z`` bool (q, n): float (q, k)."""
        return self._kernel(Z) @ self.alpha + self.intercept

    def shapley(self, n: int) -> np.ndarray:
        """Exact Shapley values (n, k) (Owen's diagonal integral, Gauss-Legendre).

        Every factor is ``rho + (1 - rho) x`` (centre has the player) or ``1 - (1 - rho) x``
        (it has not), so the integral depends only on how many of the other players the
        centre has: ``J[s] = int_0^1 (rho + (1 - rho) x)^s (1 - (1 - rho) x)^(n - 1 - s) dx``.
        """
        rho = np.exp(-self.gamma)
        nodes, weights = np.polynomial.legendre.leggauss(max(1, (n + 1) // 2))
        x = 0.5 * (nodes + 1.0)  # on [0, 1]
        s = np.arange(n)[:, None]
        J = ((rho + (1.0 - rho) * x) ** s * (1.0 - (1.0 - rho) * x) ** (n - 1 - s)) @ (
            0.5 * weights
        )
        t = self.centres.astype(np.intp)
        others = t.sum(axis=1, keepdims=True) - t  # (m, n)
        op = (1.0 - rho) * (2.0 * t - 1.0) * J[others]  # (m, n)
        return op.T @ self.alpha

    def banzhaf(self, n: int) -> np.ndarray:
        """Exact Banzhaf values (n, k): the extension's gradient at the centre of the cube,
        ``(1 - rho) (2 t_i - 1) ((1 + rho) / 2)^(n - 1)`` per centre ``t``."""
        rho = np.exp(-self.gamma)
        op = (1.0 - rho) * (2.0 * self.centres - 1.0) * ((1.0 + rho) / 2.0) ** (n - 1)
        return op.T @ self.alpha


def _kernel(Z: np.ndarray, T: np.ndarray, gamma: float) -> np.ndarray:
    n = Z.shape[1]
    return np.exp(-gamma * np.arange(n + 1.0))[_hamming(Z, T)]


def _hamming(Z: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Hamming distances between the rows of bool ``Z`` (q, n) and ``T`` (p, n): int (q, p)."""
    Zf = Z.astype(np.float32)
    Tf = T.astype(np.float32)
    both = Zf @ Tf.T
    return (Zf.sum(1)[:, None] + Tf.sum(1)[None, :] - 2.0 * both + 0.5).astype(np.intp)


def fit_product_kernel(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, gamma: float, ridge: float, max_train: int
) -> list[ProductKernelGame]:
    """Weighted kernel ridge fits, one per row of ``w`` (F, m) (zero weight: left out).

    Minimises ``sum_i w_i (y_i - f(z_i))^2 / mean(w) + ridge ||f - c||_K^2`` over the span of
    the kernel at the training coalitions, with ``c`` the weighted mean of ``y``. A fit with
    more than ``max_train`` coalitions of positive weight uses ``max_train`` of them, evenly
    spaced in their order (which depends on the coalitions only, never on their values).

    Parameters
    ----------
    Z : bool (m, n)
    y : float (m, k)
    w : float (F, m)
        Non-negative weights, one row per fit.
    gamma : float
        Kernel width (``rho = exp(-gamma)`` per disagreeing player).
    ridge : float
        Penalty, relative to weights scaled to mean one.
    max_train : int

    Returns
    -------
    list of ProductKernelGame, one per row of ``w``.
    """
    from scipy.linalg import cho_factor, cho_solve

    out = []
    for f in range(w.shape[0]):
        rows = np.flatnonzero(w[f] > 0)
        if len(rows) > max_train:
            rows = rows[np.linspace(0, len(rows) - 1, max_train).round().astype(np.intp)]
        wf = w[f, rows] / w[f, rows].mean()
        c = (wf @ y[rows]) / wf.sum()
        Kf = _kernel(Z[rows], Z[rows], gamma)
        Kf[np.diag_indices(len(rows))] += ridge / wf
        alpha = cho_solve(cho_factor(Kf, lower=True, check_finite=False), y[rows] - c)
        out.append(ProductKernelGame(Z[rows], alpha, c, gamma))
    return out


def cross_fit_kernel(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    fold: np.ndarray,
    gamma: float,
    ridge: float,
    rng: np.random.Generator,
    max_train: int,
    value: str = "shapley",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross-fitted kernel ridge surrogate (one kernel matrix shared by the folds).

    Same contract as :func:`whybox.games._regression_adjusted.cross_fit`: ``fold`` (m,) in
    ``0 .. K-1`` for sampled coalitions, ``-1`` for enumerated ones (they train every fold and
    are predicted by the folds' average). Each fold's surrogate is fitted on the coalitions of
    the other folds, about ``max_train`` of them (a subset drawn with ``rng`` when there are
    more), never on its own.

    Returns
    -------
    pred : float (m, k)
        Each coalition predicted by a surrogate that did not see its value.
    phi_f : float (n, k)
        Mean over folds of the surrogates' exact values.
    ends : float (2, k)
        Mean over folds of the surrogates' values at the empty and full coalitions.
    """
    from scipy.linalg import cho_factor, cho_solve

    m, n = Z.shape
    K_folds = max(int(fold.max()) + 1, 1)
    # one random subset of the coalitions trains every fold (less its own fold's), so that
    # all folds share the kernel columns: about max_train coalitions per fold
    pool = np.flatnonzero(w > 0)
    size = -(-max_train * K_folds // max(K_folds - 1, 1))
    if len(pool) > size:
        pool = np.sort(rng.choice(pool, size=size, replace=False))
    train_sets = [pool[fold[pool] != k] for k in range(K_folds)]
    used = np.unique(np.concatenate(train_sets))
    where = np.full(m, -1)
    where[used] = np.arange(len(used))
    corners = np.zeros((2, n), dtype=bool)
    corners[1] = True
    Zu = Z[used]
    # kernel between every coalition (and the two corners) and the training coalitions:
    # rho ** Hamming, from a table of the n + 1 possible distances
    K = _kernel(np.concatenate([Z, corners]), Zu, gamma)  # (m + 2, u)
    # values operator of each training coalition's kernel game: (n, u)
    ops = ProductKernelGame(Zu, np.eye(len(used)), np.zeros(len(used)), gamma)
    Phi = ops.shapley(n) if value == "shapley" else ops.banzhaf(n)
    pred = np.empty_like(y)
    pred_enum = np.zeros_like(y)
    enumerated = fold < 0
    phi_f = np.zeros((n, y.shape[1]))
    ends = np.zeros((2, y.shape[1]))
    for k, rows in enumerate(train_sets):
        cols = where[rows]
        wf = w[rows] / w[rows].mean()
        c = (wf @ y[rows]) / wf.sum()
        Kf = K[rows][:, cols]
        Kf[np.diag_indices(len(rows))] += ridge / wf
        alpha = cho_solve(cho_factor(Kf, lower=True, check_finite=False), y[rows] - c)
        test = fold == k
        pred[test] = K[:m][test][:, cols] @ alpha + c
        if enumerated.any():
            pred_enum[enumerated] += (K[:m][enumerated][:, cols] @ alpha + c) / K_folds
        phi_f += Phi[:, cols] @ alpha / K_folds
        ends += (K[m:][:, cols] @ alpha + c) / K_folds
    pred[enumerated] = pred_enum[enumerated]
    return pred, phi_f, ends
