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

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..parallel import one_blas_thread

__all__ = ["ProductKernelGame", "fit_product_kernel"]

#: Kernel widths tried, as ``gamma * n`` (the typical Hamming distance is ``n / 2``).
GAMMA_N = (1.0, 3.0)
#: Ridge penalties tried, relative to the mean diagonal of the kernel matrix (which is 1).
RIDGES = (1e-3, 1e-1)
#: Rows of a kernel matrix computed at a time (the distances' buffers stay in cache).
CHUNK_ROWS = 64
#: Largest workspace (bytes) a thread keeps between fits; larger ones are allocated afresh.
MAX_WORKSPACE = 64 * 2**20

_WORK = threading.local()


def _workspace(slot: int, size: int) -> np.ndarray:
    """``size`` float64 values from this thread's workspace ``slot``, reused between calls
    (contents undefined): fresh arrays the size of a kernel matrix cost more in page faults
    than filling them. A slot's array is only valid until the next call for that slot."""
    if size * 8 > MAX_WORKSPACE:
        return np.empty(size)
    slots = getattr(_WORK, "slots", None)
    if slots is None:
        slots = _WORK.slots = {}
    buf = slots.get(slot)
    if buf is None or buf.size < size:
        buf = slots[slot] = np.empty(size)
    return buf[:size]


@dataclass
class ProductKernelGame:
    """``f(z) = intercept + sum_t alpha[t] exp(-gamma Hamming(z, centres[t]))``.

    centres : bool (m, n); alpha : float (m, k); intercept : float (k,); gamma : float, or
    float (n,) for one width per player (``exp(-sum_j gamma_j [z_j != t_j])``).
    """

    centres: np.ndarray
    alpha: np.ndarray
    intercept: np.ndarray
    gamma: float | np.ndarray

    def _kernel(self, Z: np.ndarray) -> np.ndarray:
        return _kernel(Z, self.centres, self.gamma)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Surrogate values of coalitions ``Z`` bool (q, n): float (q, k)."""
        return _kernel_product(Z, self.centres, self.gamma, self.alpha) + self.intercept

    def shapley(self, n: int) -> np.ndarray:
        """Exact Shapley values (n, k) (Owen's diagonal integral, Gauss-Legendre).

        Every factor is ``rho + (1 - rho) x`` (centre has the player) or ``1 - (1 - rho) x``
        (it has not), so the integral depends only on how many of the other players the
        centre has: ``J[s] = int_0^1 (rho + (1 - rho) x)^s (1 - (1 - rho) x)^(n - 1 - s) dx``.
        """
        return _shapley_operator(self.centres, self.gamma).T @ self.alpha

    def banzhaf(self, n: int) -> np.ndarray:
        """Exact Banzhaf values (n, k): the extension's gradient at the centre of the cube,
        ``(1 - rho) (2 t_i - 1) ((1 + rho) / 2)^(n - 1)`` per centre ``t``."""
        return _banzhaf_operator(self.centres, self.gamma).T @ self.alpha


@lru_cache(maxsize=32)
def _gauss_legendre(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes on [0, 1] and weights summing to one (read-only)."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    x, wt = 0.5 * (nodes + 1.0), 0.5 * weights
    x.flags.writeable = False
    wt.flags.writeable = False
    return x, wt


def _shapley_operator(centres: np.ndarray, gamma: float | np.ndarray) -> np.ndarray:
    """Shapley values of each centre's kernel game ``z -> K(z, t)``: float (m, n)."""
    n = centres.shape[1]
    widths = _widths(gamma)
    if widths is not None:
        return _owen_operator(centres, widths, *_gauss_legendre(max(1, (n + 1) // 2)))
    rho = np.exp(-gamma)
    x, wt = _gauss_legendre(max(1, (n + 1) // 2))
    s = np.arange(n)[:, None]
    J = ((rho + (1.0 - rho) * x) ** s * (1.0 - (1.0 - rho) * x) ** (n - 1 - s)) @ wt
    t = centres.astype(np.intp)
    others = t.sum(axis=1, keepdims=True) - t  # (m, n)
    return (1.0 - rho) * (2.0 * t - 1.0) * J[others]


def _banzhaf_operator(centres: np.ndarray, gamma: float | np.ndarray) -> np.ndarray:
    """Banzhaf values of each centre's kernel game: float (m, n)."""
    n = centres.shape[1]
    widths = _widths(gamma)
    if widths is not None:
        return _owen_operator(centres, widths, np.array([0.5]), np.array([1.0]))
    rho = np.exp(-gamma)
    return (1.0 - rho) * (2.0 * centres - 1.0) * ((1.0 + rho) / 2.0) ** (n - 1)


def _owen_operator(
    centres: np.ndarray, widths: np.ndarray, x: np.ndarray, wt: np.ndarray
) -> np.ndarray:
    """Values of each centre's kernel game with one width per player: float (m, n).

    The game of centre ``t`` is ``prod_j (a_j + b_j z_j)`` with ``rho_j = exp(-widths_j)``,
    ``(a_j, b_j) = (rho_j, 1 - rho_j)`` where ``t_j = 1`` and ``(1, rho_j - 1)`` where
    ``t_j = 0``; player ``i``'s value is ``b_i sum_q wt_q prod_{j != i} (a_j + b_j x_q)``
    (Owen's diagonal integral by quadrature ``(x, wt)``; Banzhaf: ``x = 1/2``, ``wt = 1``).
    The products over the other players are prefix times suffix products (no division).
    """
    T = np.asarray(centres, dtype=bool)
    rho = np.exp(-widths)
    a = np.where(T, rho, 1.0)
    b = np.where(T, 1.0 - rho, rho - 1.0)
    factor = a[:, :, None] + b[:, :, None] * x  # (m, n, q)
    before = np.ones_like(factor)
    after = np.ones_like(factor)
    np.cumprod(factor[:, :-1], axis=1, out=before[:, 1:])
    np.cumprod(factor[:, :0:-1], axis=1, out=after[:, -2::-1])
    return b * ((before * after) @ wt)


def _kernel(
    Z: np.ndarray, T: np.ndarray, gamma: float | np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``exp(-gamma Hamming(z, t))`` for the rows of ``Z`` (q, n) and ``T`` (p, n): (q, p)
    (from a table of the ``n + 1`` distances), or ``exp(-sum_j gamma_j [z_j != t_j])`` for
    widths ``gamma`` (n,); written into ``out`` when given."""
    rows = _KernelRows(T, gamma)
    out = np.empty((Z.shape[0], T.shape[0])) if out is None else out
    A = rows.encode(Z)
    for start in range(0, Z.shape[0], CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, Z.shape[0])
        rows.fill(A[start:stop], out[start:stop])
    return out


def _encode(Z: np.ndarray) -> np.ndarray:
    """``[z, 1 - z]`` as float32 (q, 2n): its product with ``[1 - t, t]`` is the Hamming
    distance, exact (integers below ``2**24``)."""
    Zb = np.asarray(Z, dtype=bool)
    return np.concatenate([Zb, ~Zb], axis=1).astype(np.float32)


def _hamming(Z: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Hamming distances between the rows of bool ``Z`` (q, n) and ``T`` (p, n): int (q, p)."""
    Tb = np.asarray(T, dtype=bool)
    return (_encode(Z) @ np.concatenate([~Tb, Tb], axis=1).astype(np.float32).T).astype(np.intp)


class _KernelRows:
    """Kernel rows against fixed centres ``T`` (p, n), :data:`CHUNK_ROWS` at a time.

    The distances go through small buffers reused from chunk to chunk: fresh arrays the size
    of the whole kernel matrix cost more in page faults than the arithmetic itself.
    """

    def __init__(self, T: np.ndarray, gamma: float | np.ndarray) -> None:
        Tb = np.asarray(T, dtype=bool)
        n, p = Tb.shape[1], Tb.shape[0]
        self.widths = _widths(gamma)
        if self.widths is None:  # one width: a table of the n + 1 distances
            self.table = np.exp(-float(gamma) * np.arange(n + 1.0))
            self.Bt = np.ascontiguousarray(np.concatenate([~Tb, Tb], axis=1).astype(np.float32).T)
            self.dist = np.empty((CHUNK_ROWS, p), dtype=np.float32)
            self.index = np.empty((CHUNK_ROWS, p), dtype=np.intp)
        else:  # one per player: the weighted distance in float64, then its exponential
            self.Bt = np.ascontiguousarray(np.concatenate([~Tb, Tb], axis=1).astype(float).T)

    def encode(self, Z: np.ndarray) -> np.ndarray:
        """Coalitions (q, n) as the rows whose product with ``Bt`` is their distance to each
        centre: ``[z, 1 - z]`` (float32, exact integers below ``2**24``), times the widths
        when they differ by player."""
        Zb = np.asarray(Z, dtype=bool)
        if self.widths is None:
            return _encode(Zb)
        return np.concatenate([Zb, ~Zb], axis=1) * np.concatenate([self.widths, self.widths])

    def fill(self, A: np.ndarray, out: np.ndarray) -> None:
        """Kernel rows of encoded coalitions ``A`` (r <= CHUNK_ROWS, 2n) into ``out`` (r, p)."""
        r = A.shape[0]
        if self.widths is not None:
            np.matmul(A, self.Bt, out=out)
            np.negative(out, out=out)
            np.exp(out, out=out)
            return
        np.matmul(A, self.Bt, out=self.dist[:r])
        np.copyto(self.index[:r], self.dist[:r], casting="unsafe")
        np.take(self.table, self.index[:r], out=out, mode="clip")


def _widths(gamma: float | np.ndarray) -> np.ndarray | None:
    """Per-player widths as float (n,), or None for one width shared by every player."""
    return None if np.ndim(gamma) == 0 else np.asarray(gamma, dtype=float)


def _kernel_product(
    Z: np.ndarray, T: np.ndarray, gamma: float | np.ndarray, A: np.ndarray
) -> np.ndarray:
    """``K(Z, T) @ A`` for ``A`` (p, c), never holding more than :data:`CHUNK_ROWS` rows of
    the kernel matrix."""
    rows = _KernelRows(T, gamma)
    block = np.empty((CHUNK_ROWS, T.shape[0]))
    out = np.empty((Z.shape[0], A.shape[1]))
    E = rows.encode(Z)
    for start in range(0, Z.shape[0], CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, Z.shape[0])
        rows.fill(E[start:stop], block[: stop - start])
        np.matmul(block[: stop - start], A, out=out[start:stop])
    return out


class _FoldSolver:
    """Kernel ridge fits on subsets of the coalitions of one kernel matrix ``K`` (u, u),
    each solved by LAPACK's Cholesky ``potrf`` / ``potrs`` in place.

    :meth:`solve_without` (cross-fitting, the held-out fold a contiguous block of ``K``)
    assembles its matrix from four slices of ``K`` in a per-thread workspace: fresh
    matrices cost more in page faults than the copy, and gathering arbitrary rows and
    columns more than slicing.
    """

    def __init__(self, K: np.ndarray, ridge: float) -> None:
        self.K, self.ridge = K, ridge

    def solve(
        self, cols: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit on the coalitions ``cols`` of ``K`` with values ``y`` (t, k) and weights ``w``
        (t,): ``(alpha (t, k), intercept (k,))``."""
        return self._fit(self.K[np.ix_(cols, cols)], y, w)

    def solve_without(
        self, a: int, b: int, y: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit on every coalition of ``K`` but ``a .. b - 1``, with their values ``y``
        (t, k) and weights ``w`` (t,), ``t = u - (b - a)``."""
        K = self.K
        u = K.shape[0]
        t = u - (b - a)
        Kf = _workspace(1, t * t).reshape(t, t)
        Kf[:a, :a] = K[:a, :a]
        Kf[:a, a:] = K[:a, b:]
        Kf[a:, :a] = K[b:, :a]
        Kf[a:, a:] = K[b:, b:]
        return self._fit(Kf, y, w)

    def _fit(self, Kf: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg.lapack import dpotrf, dpotrs

        t = Kf.shape[0]
        wf = w / w.mean()
        c = (wf @ y) / wf.sum()
        Kf.reshape(-1)[:: t + 1] += self.ridge / wf
        # Kf is symmetric: its transpose is the same matrix in LAPACK's (Fortran) order
        chol, info = dpotrf(Kf.T, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(
                f"kernel matrix is not positive definite (LAPACK potrf info={info})."
            )
        alpha, info = dpotrs(chol, y - c, lower=1)
        if info != 0:  # pragma: no cover - potrs fails only on invalid arguments
            raise np.linalg.LinAlgError(f"LAPACK potrs failed (info={info}).")
        return alpha, c


def _pairs_intact(partner: np.ndarray, w: np.ndarray, fold: np.ndarray) -> bool:
    """Whether ``partner`` pairs the rows up (an involution without fixed points) with one
    weight and one fold per pair."""
    m = len(partner)
    if partner.shape != (m,) or m % 2:
        return False
    if partner.min() < 0 or partner.max() >= m:
        return False
    idx = np.arange(m)
    return bool(
        np.all(partner[partner] == idx)
        and np.all(partner != idx)
        and np.all(w[partner] == w)
        and np.all(fold[partner] == fold)
    )


def _paired_kernel(Zu: np.ndarray, gamma: float | np.ndarray, out: np.ndarray) -> np.ndarray:
    """Kernel matrix of coalitions laid out ``[members (h); complements (h)]``: ``[[A, B],
    [B, A]]`` from ``A = K(members, members)`` and ``B = exp(-sum(widths)) / A``."""
    u = Zu.shape[0]
    h = u // 2
    n = Zu.shape[1]
    widths = _widths(gamma)
    total = float(gamma) * n if widths is None else float(widths.sum())
    A = _kernel(Zu[:h], Zu[:h], gamma, out=_workspace(2, h * h).reshape(h, h))
    out[:h, :h] = A
    out[h:, h:] = A
    np.divide(np.exp(-total), A, out=out[:h, h:])
    out[h:, :h] = out[:h, h:]
    return out


class _PairSolver:
    """Kernel ridge fits on complementary pairs of coalitions (:func:`cross_fit_kernel`):
    the ``[[A, B], [B, A]]`` system split into its sum and difference halves."""

    def __init__(self, K: np.ndarray, ridge: float) -> None:
        self.K, self.ridge = K, ridge

    def solve_without(
        self, a: int, b: int, y: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit on every pair but ``a .. b - 1`` (indices among the members), with the values
        ``y`` (t, k) and weights ``w`` (t,) of ``[kept members; their complements]``:
        ``(alpha (t, k), intercept (k,))``."""
        from scipy.linalg.lapack import dpotrf, dpotrs

        K = self.K
        h = K.shape[0] // 2
        t = h - (b - a)
        wf = w / w.mean()
        c = (wf @ y) / wf.sum()
        r = y - c
        r1, r2 = r[:t], r[t:]
        D = self.ridge / wf[:t]
        A, B = K[:h, :h], K[:h, h:]
        out = []
        for slot, (op, rhs) in enumerate(((np.add, r1 + r2), (np.subtract, r1 - r2))):
            # A -+ B less rows and columns a .. b - 1, by four slices into a workspace
            S = _workspace(3 + slot, t * t).reshape(t, t)
            op(A[:a, :a], B[:a, :a], out=S[:a, :a])
            op(A[:a, b:], B[:a, b:], out=S[:a, a:])
            op(A[b:, :a], B[b:, :a], out=S[a:, :a])
            op(A[b:, b:], B[b:, b:], out=S[a:, a:])
            S.reshape(-1)[:: t + 1] += D
            chol, info = dpotrf(S.T, lower=1, clean=0, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError(
                    f"kernel matrix is not positive definite (LAPACK potrf info={info})."
                )
            x, info = dpotrs(chol, rhs, lower=1)
            if info != 0:  # pragma: no cover - potrs fails only on invalid arguments
                raise np.linalg.LinAlgError(f"LAPACK potrs failed (info={info}).")
            out.append(x)
        s_, d_ = out
        return np.concatenate([(s_ + d_) / 2, (s_ - d_) / 2]), c


def fit_product_kernel(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    gamma: float | np.ndarray,
    ridge: float,
    max_train: int,
) -> list[ProductKernelGame]:
    """Weighted kernel ridge fits, one per row of ``w`` (F, m) (zero weight: left out).

    Minimises ``sum_i w_i (y_i - f(z_i))^2 / mean(w) + ridge ||f - c||_K^2`` over the span of
    the kernel at the training coalitions, with ``c`` the weighted mean of ``y``. A fit with
    more than ``max_train`` coalitions of positive weight uses ``max_train`` of them, evenly
    spaced in their order (which depends on the coalitions only, never on their values). The
    fits share one kernel matrix over the coalitions any of them uses, and each solves its
    system by a Cholesky factorisation (with one BLAS thread: the matrices are small).

    Parameters
    ----------
    Z : bool (m, n)
    y : float (m, k)
    w : float (F, m)
        Non-negative weights, one row per fit.
    gamma : float or float (n,)
        Kernel width (``rho = exp(-gamma)`` per disagreeing player), or one per player.
    ridge : float
        Penalty, relative to weights scaled to mean one.
    max_train : int

    Returns
    -------
    list of ProductKernelGame, one per row of ``w``.
    """
    fits = []
    for f in range(w.shape[0]):
        rows = np.flatnonzero(w[f] > 0)
        if len(rows) > max_train:
            rows = rows[np.linspace(0, len(rows) - 1, max_train).round().astype(np.intp)]
        fits.append(rows)
    used = np.unique(np.concatenate(fits)) if fits else np.zeros(0, dtype=np.intp)
    where = np.full(Z.shape[0], -1)
    where[used] = np.arange(len(used))
    out = []
    with one_blas_thread():
        u = len(used)
        K = _kernel(Z[used], Z[used], gamma, out=_workspace(0, u * u).reshape(u, u))
        solver = _FoldSolver(K, ridge)
        for f, rows in enumerate(fits):
            alpha, c = solver.solve(where[rows], y[rows], w[f, rows])
            out.append(ProductKernelGame(Z[rows], alpha, c, gamma))
    return out


def cross_fit_kernel(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    fold: np.ndarray,
    gamma: float | np.ndarray,
    ridge: float,
    rng: np.random.Generator,
    max_train: int,
    value: str = "shapley",
    partner: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross-fitted kernel ridge surrogate (one kernel matrix shared by the folds).

    Same contract as :func:`whybox.games._regression_adjusted.cross_fit`: ``fold`` (m,) in
    ``0 .. K-1`` for sampled coalitions, ``-1`` for enumerated ones (they train every fold and
    are predicted by the folds' average). Each fold's surrogate is fitted on the coalitions of
    the other folds, about ``max_train`` of them (a subset drawn with ``rng`` when there are
    more), never on its own. ``gamma`` is the kernel's width, or one width per player (float
    (n,): ``K(z, t) = exp(-sum_j gamma_j [z_j != t_j])``, still a product game per centre).

    The folds share the kernel matrix of the training coalitions; each solves its own
    system by a Cholesky factorisation (one BLAS thread: the matrices are small). Their
    coefficients are laid out over all training coalitions (zero off the fold's own), so that
    every held-out prediction, the folds' average and its exact values are one matrix
    product each.

    With ``partner`` (int (m,): the row holding each coalition's complement), where every
    pair has one fold and one weight, the pairs train together (a random subset of *pairs*
    when there are too many) and each fold's system is solved in two halves: over pairs
    ordered ``[members; complements]`` the kernel matrix is ``[[A, B], [B, A]]`` with
    ``B = exp(-sum(widths)) / A`` elementwise (a complement disagrees exactly where the
    coalition agrees), and so is the system ``K + ridge W^-1`` (equal weights within a pair),
    which the sum and difference of the halves split into ``(A + B + D) s = r1 + r2`` and
    ``(A - B + D) d = r1 - r2``: two Cholesky factorisations of half the size, a quarter of
    the work, same solution.

    Returns
    -------
    pred : float (m, k)
        Each coalition predicted by a surrogate that did not see its value.
    phi_f : float (n, k)
        Mean over folds of the surrogates' exact values.
    ends : float (2, k)
        Mean over folds of the surrogates' values at the empty and full coalitions.
    """
    m, n = Z.shape
    k = y.shape[1]
    K_folds = max(int(fold.max()) + 1, 1)
    # one random subset of the coalitions trains every fold (less its own fold's), so that
    # all folds share the kernel columns: about max_train coalitions per fold
    size = -(-max_train * K_folds // max(K_folds - 1, 1))
    paired = partner is not None and _pairs_intact(partner, w, fold)
    if paired:
        # complementary pairs train together: the canonical member of each pair (the lower
        # index), a random subset of pairs when there are too many
        heads = np.flatnonzero((w > 0) & (np.arange(m) < partner))
        if 2 * len(heads) > size:
            heads = np.sort(rng.choice(heads, size=size // 2, replace=False))
        heads = heads[np.argsort(fold[heads], kind="stable")]
        used = np.concatenate([heads, partner[heads]])
        bounds = np.searchsorted(fold[heads], np.arange(K_folds + 1))
    else:
        pool = np.flatnonzero(w > 0)
        if len(pool) > size:
            pool = np.sort(rng.choice(pool, size=size, replace=False))
        train_sets = [pool[fold[pool] != f] for f in range(K_folds)]
        # the training coalitions, enumerated ones first, then fold by fold: each fold's
        # training set is all of them but one contiguous block
        used = np.unique(np.concatenate(train_sets))
        used = used[np.argsort(fold[used], kind="stable")]
        bounds = np.searchsorted(fold[used], np.arange(K_folds + 1))
    u = len(used)
    where = np.full(m, -1)
    where[used] = np.arange(u)
    Zu, yu, wu = Z[used], y[used], w[used]
    # coefficients of fold f in column f, over all training coalitions; column K_folds: the
    # folds' average (it predicts the enumerated coalitions)
    coef = np.zeros((u, K_folds + 1, k))
    intercepts = np.zeros((K_folds + 1, k))
    with one_blas_thread():
        # rho ** Hamming, from a table of the distances
        if paired:
            Kuu = _paired_kernel(Zu, gamma, _workspace(0, u * u).reshape(u, u))
            solver = _PairSolver(Kuu, ridge)
            h = u // 2
            for f in range(K_folds):
                a, b = bounds[f], bounds[f + 1]
                keep = np.r_[0:a, b:h]
                keep = np.concatenate([keep, keep + h])
                coef[keep, f], intercepts[f] = solver.solve_without(a, b, yu[keep], wu[keep])
        else:
            Kuu = _kernel(Zu, Zu, gamma, out=_workspace(0, u * u).reshape(u, u))
            solver = _FoldSolver(Kuu, ridge)
            for f in range(K_folds):
                a, b = bounds[f], bounds[f + 1]
                keep = np.r_[0:a, b:u]
                coef[keep, f], intercepts[f] = solver.solve_without(a, b, yu[keep], wu[keep])
        coef[:, K_folds] = coef[:, :K_folds].sum(axis=1) / K_folds
        intercepts[K_folds] = intercepts[:K_folds].sum(axis=0) / K_folds
        flat = coef.reshape(u, -1)
        # each coalition is predicted by its own fold's surrogate, an enumerated one by the
        # average: column fold (or K_folds) of K(z, training coalitions) @ coef
        col = np.where(fold >= 0, fold, K_folds)
        pred = np.empty_like(y, dtype=float)
        every = (Kuu @ flat).reshape(u, K_folds + 1, k)
        pred[used] = every[np.arange(u), col[used]]
        rest = np.flatnonzero(where < 0)
        if len(rest):
            every = _kernel_product(Z[rest], Zu, gamma, flat).reshape(len(rest), K_folds + 1, k)
            pred[rest] = every[np.arange(len(rest)), col[rest]]
        pred += intercepts[col]
        operator = _shapley_operator if value == "shapley" else _banzhaf_operator
        if paired:
            # the game of a complement's kernel is the member's with every coalition
            # complemented, whose Shapley and Banzhaf values are the member's negated
            ops = operator(Zu[: u // 2], gamma)
            phi_f = ops.T @ (coef[: u // 2, K_folds] - coef[u // 2 :, K_folds])
        else:
            phi_f = operator(Zu, gamma).T @ coef[:, K_folds]
        corners = np.zeros((2, n), dtype=bool)
        corners[1] = True
        ends = _kernel(corners, Zu, gamma) @ coef[:, K_folds] + intercepts[K_folds]
    return pred, phi_f, ends
