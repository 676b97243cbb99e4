"""Link surrogate for probability-valued games: ``f(z) = sigmoid(a + beta . z)``.

Games whose values are probabilities (a classifier's ``p(class)`` averaged over a background
sample) are sigmoid-like in the coalition: a logistic model explained interventionally is a
mixture of sigmoids of linear scores, and paired KernelSHAP, exact on games of order at most
two, pays for every higher-order term of the sigmoid. The surrogate

    f(z) = sigmoid(a + sum_j beta_j z_j)                     (one per output column)

is fitted to the coalition values already paid for by ridge-stabilised weighted quasi-binomial
regression (Newton's method / iteratively reweighted least squares on the Bernoulli
log-likelihood with fractional targets in [0, 1]; McCullagh and Nelder 1989), cross-fitted by
folds exactly like the surrogates of :mod:`whybox.games._regression_adjusted`, and enters the
regression-adjusted estimate ``phi(f) + KernelSHAP(v - f)`` (Witter, Liu and Musco 2025).

Its Shapley values have no closed form, but the adjustment only needs an *unbiased* estimate
of ``phi(f)`` that adds up to ``f(N) - f(empty)``. Up to :data:`EXACT_MAX_PLAYERS` players it
is computed exactly by enumerating the ``2^n`` coalitions of the surrogate (no model calls).
Beyond, it is a Monte Carlo estimate on the surrogate, stratified by coalition size
(Castro, Gomez and Tejada 2009; Maleki et al. 2013): ``phi_j = (1/n) sum_s E[f(S + j) - f(S)]``
over uniform ``S`` of size ``s`` not containing ``j``. Along the players sorted by one uniform
draw, the ``s`` first of the others are such a set for every ``j`` at once, and their score is
a prefix sum of ``beta``, so a replicate costs ``O(n^2)`` sigmoids for all players and sizes;
each replicate also uses the complement set in ``N \\ {j}`` (antithetic, as in Mitchell et al.
2022), and subtracts the first-order Taylor term of each difference around its stratum's mean
summed slope (a control variate of known mean zero). Each replicate's estimate is shifted
by ``(f(N) - f(empty) - sum_j phi_j) / n``, a term of mean zero, so the estimate stays
unbiased and is exactly efficient. The spread over replicates gives its variance
(``var_phi``), to be added to the residual game's.

Banzhaf values (``value="banzhaf"``) use the same strata weighted by ``C(n-1, s) / 2^(n-1)``.

Multi-output games (``k`` columns) get one surrogate per column. Where the game's value is a
mean over background rows of a model's probability, giving the surrogate one column per
background row (the model is evaluated on those rows anyway) lets each column be fitted
separately: for a logistic model every such column *is* a sigmoid of a linear score.

References
----------
Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849 (NeurIPS 2025).

McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed. Chapman & Hall.
(Iteratively reweighted least squares; quasi-likelihood for fractional responses.)

Castro, J., Gomez, D. and Tejada, J. (2009). Polynomial calculation of the Shapley value
based on sampling. Computers & Operations Research 36(5).

Maleki, S., Tran-Thanh, L., Hines, G., Rahwan, T. and Rogers, A. (2013). Bounding the
estimation error of sampling-based Shapley value approximation. arXiv:1306.4265.
(Stratification by coalition size.)

Mitchell, R., Cooper, J., Frank, E. and Holmes, G. (2022). Sampling permutations for
Shapley value estimation. Journal of Machine Learning Research 23. (Antithetic sampling.)
"""

from __future__ import annotations

from math import comb, factorial

import numpy as np
from scipy.special import expit

__all__ = [
    "EXACT_MAX_PLAYERS",
    "cross_fit_link",
    "fit_link",
    "link_values",
    "link_values_exact",
    "link_values_mc",
]

#: Up to this many players the surrogate's values are computed by enumeration.
EXACT_MAX_PLAYERS = 14
#: Values may leave [0, 1] by this much (rounding) and still count as probabilities.
RANGE_TOL = 1e-9
#: Ridge penalty on ``beta`` (the intercept is not penalised), relative to the weights
#: normalised to sum to one. Chosen on the sweep's probability games fitted one column per
#: background row, 128 and 512 coalitions, 3 seeds: 1e-8 .. 1e-4 within 15% of each other on
#: GBC, SVC and k-NN; on the logistic model (exact sigmoids) error 0.003 / 0.008 / 0.037 at
#: 1e-6 / 1e-5 / 1e-4 and 128 coalitions; 1e-2 worse everywhere.
RIDGE = 1e-5
#: About this many coalitions train each fold's surrogate (as in the other surrogates).
MAX_TRAIN = 1536
#: Monte Carlo replicates of the surrogate's values (each covers every player and size).
N_REPLICATES = 256
#: Newton iterations (at most) and step tolerance of each fold's fit in :func:`cross_fit_link`.
#: Measured on bench_kernel_sweep's games (8 seeds, 128-512 coalitions): on GBC (sigmoid
#: surrogate alone) 4 / 6 / 8 iterations at tolerance 1e-6 gave errors 1.27-1.45 / 1.03-1.06 /
#: 0.99-1.00x those of the fits run to 1e-10 (~13 iterations for the slowest of the batched
#: columns); on the logistic Pipeline (exact sigmoids, steep) 8 iterations gave 1.18x at 128
#: coalitions, 12 and 20 the same error as the converged fits.
CROSS_FIT_ITER = 12
CROSS_FIT_TOL = 1e-6


def fit_link(
    Z: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    *,
    ridge: float = RIDGE,
    max_iter: int = 60,
    tol: float = 1e-10,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ridge logistic fit of targets in [0, 1], one per output column.

    Maximises ``sum_i w_i [t_i log mu_i + (1 - t_i) log(1 - mu_i)] - ridge / 2 |beta|^2``
    with ``mu_i = sigmoid(a + z_i . beta)`` and ``w`` normalised to sum to one, by Newton's
    method (IRLS) with step halving, all columns at once (stacked normal equations; each
    column halves and stops on its own; a step whose predicted gain is below the objective's
    rounding is taken whole). A column whose targets are all equal (up to 1e-12) gets
    ``beta = 0`` and the intercept of that value (clipped to logits of ``[1e-12, 1 - 1e-12]``).

    Parameters
    ----------
    Z : bool (m, n)
        Coalitions.
    t : float (m, k)
        Their values, in [0, 1].
    w : float (m,)
        Non-negative weights (zero: the row is left out).
    ridge : float
        Penalty on ``beta``.
    max_iter, tol : int, float
        Newton iterations at most; stop when the largest step is below ``tol``.
    init : (a (k,), beta (n, k)), optional
        Starting point (e.g. another fold's fit); by default the logit of the weighted mean
        and zero slopes. The objective is strictly concave, so the start changes only the
        number of iterations.

    Returns
    -------
    a : float (k,)
    beta : float (n, k)

    References
    ----------
    McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed., ch. 2 and 9.
    """
    return _fit_columns(Z, t, np.asarray(w, dtype=float)[:, None], ridge, max_iter, tol, init)


def _fit_columns(
    Z: np.ndarray,
    t: np.ndarray,
    W: np.ndarray,
    ridge: float,
    max_iter: int,
    tol: float,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_link` with weights per column: ``W`` (m, k) or (m, 1) shared."""
    n = Z.shape[1]
    k = t.shape[1]
    W = np.broadcast_to(W, (W.shape[0], k))
    keep = np.any(W > 0, axis=1)
    X = np.concatenate([np.ones((int(keep.sum()), 1)), Z[keep].astype(float)], axis=1)
    sw = W[keep] / W[keep].sum(0)
    tt = np.clip(t[keep], 0.0, 1.0)
    pen = np.full(n + 1, ridge)
    pen[0] = 0.0
    mean = np.einsum("ic,ic->c", sw, tt)
    flat = np.einsum("ic,ic->c", sw, (tt - mean) ** 2) <= 1e-24
    # a column whose targets are all equal: beta = 0 and the (clipped) logit of the value
    p = np.clip(mean, 1e-12, 1.0 - 1e-12)
    a = np.where(flat, np.log(p / (1.0 - p)), 0.0)
    beta = np.zeros((n, k))
    fit = np.flatnonzero(~flat)
    if not len(fit):
        return a, beta
    p0 = np.clip(mean[fit], 1e-6, 1.0 - 1e-6)
    theta = np.zeros((n + 1, len(fit)))
    theta[0] = np.log(p0 / (1.0 - p0))
    if init is not None:
        b0 = init[1][:, fit]
        warm = np.all(np.isfinite(b0), axis=0) & np.any(b0 != 0, axis=0)
        theta[0, warm] = init[0][fit][warm]
        theta[1:, warm] = b0[:, warm]
    theta = _newton(X, tt[:, fit], sw[:, fit], pen, theta, max_iter, tol)
    a[fit], beta[:, fit] = theta[0], theta[1:]
    return a, beta


def _objective(X: np.ndarray, T: np.ndarray, W: np.ndarray, pen: np.ndarray, th: np.ndarray):
    """Penalised log-likelihood of each column: (C,) for ``th`` (d, C)."""
    eta = X @ th
    # log-likelihood of fractional targets: t eta - log(1 + e^eta)
    return np.einsum("ic,ic->c", W, T * eta - np.logaddexp(0.0, eta)) - 0.5 * (pen @ th**2)


#: Step halvings tried per batch of objective evaluations: [lo, hi) exponents of 1/2.
_HALVINGS = ((0, 1), (1, 4), (4, 30))


def _newton(
    X: np.ndarray,
    T: np.ndarray,
    W: np.ndarray,
    pen: np.ndarray,
    theta: np.ndarray,
    max_iter: int,
    tol: float,
) -> np.ndarray:
    """Newton's method with step halving for ``C`` columns at once.

    ``X`` (m, d), targets ``T`` (m, C), weights ``W`` (m, C) summing to one per column,
    ``pen`` (d,), start ``theta`` (d, C). Each column runs its own iterations (its own step
    halving and stopping rule) on stacked (C, d, d) normal equations; a column stops when its
    largest step is below ``tol``. Returns the fitted (d, C).
    """
    d = X.shape[1]
    # the Hessians' upper triangles: products of pairs of columns of X, (m, d (d + 1) / 2)
    iu, ju = np.triu_indices(d)
    XX = X[:, iu] * X[:, ju]
    diag = pen + 1e-12
    theta = theta.copy()
    act = np.arange(theta.shape[1])
    obj = _objective(X, T, W, pen, theta)
    for _ in range(max_iter):
        th, Ta, Wa = theta[:, act], T[:, act], W[:, act]
        mu = expit(X @ th)
        grad = X.T @ (Wa * (Ta - mu)) - pen[:, None] * th  # (d, Ca)
        upper = (Wa * mu * (1.0 - mu)).T @ XX  # (Ca, d (d + 1) / 2)
        H = np.empty((len(act), d, d))
        H[:, iu, ju] = upper
        H[:, ju, iu] = upper
        H[:, np.arange(d), np.arange(d)] += diag
        step = np.linalg.solve(H, grad.T[:, :, None])[:, :, 0].T  # (d, Ca)
        # step halving: the largest of 1, 1/2, .. 1/2^29 that does not lower the column's
        # objective (else 1/2^30); the trial steps are evaluated a few halvings at a time
        # for all the columns still searching
        # (a column whose predicted gain, half the Newton decrement grad . step, is below the
        # objective's rounding takes its full Newton step without the search: the search
        # would compare values that differ by rounding alone, and halve 30 times)
        ob = obj[act]
        gain = 0.5 * np.einsum("dc,dc->c", grad, step)
        small = gain <= 1e-15 * np.abs(ob)
        scale = np.where(small, 1.0, 0.5**30)
        new = np.where(small, ob + gain, 0.0)
        pending = np.flatnonzero(~small)
        for lo, hi in _HALVINGS:
            if not len(pending):
                break
            trial = 0.5 ** np.arange(lo, hi)  # (h,)
            P, h = len(pending), hi - lo
            cand = th[:, pending, None] + step[:, pending, None] * trial  # (d, P, h)
            val = _objective(
                X,
                np.repeat(Ta[:, pending], h, axis=1),
                np.repeat(Wa[:, pending], h, axis=1),
                pen,
                cand.reshape(d, P * h),
            ).reshape(P, h)
            ok = val >= (ob[pending] - 1e-15 * np.abs(ob[pending]))[:, None]
            hit = ok.any(1)
            first = np.argmax(ok, axis=1)
            got = pending[hit]
            scale[got] = trial[first[hit]]
            new[got] = val[hit, first[hit]]
            new[pending[~hit]] = val[~hit, -1]
            pending = pending[~hit]
        taken = scale * step
        theta[:, act] = th + taken
        obj[act] = new
        act = act[np.max(np.abs(taken), axis=0) >= tol]
        if not len(act):
            break
    return theta


def _shapley_weights(n: int) -> np.ndarray:
    """``s! (n - 1 - s)! / n!`` for ``s = 0 .. n-1``: (n,)."""
    return np.array([factorial(s) * factorial(n - 1 - s) / factorial(n) for s in range(n)])


def _bits(n: int) -> np.ndarray:
    """All ``2^n`` coalitions of ``n`` players, coalition ``i`` holding player ``j`` when bit
    ``j`` of ``i`` is set: float (2^n, n)."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(float)


#: Largest half score for which ``exp(-score)`` products stay finite (else plain sigmoids).
_EXP_SAFE = 300.0


def _mixture_values(a: np.ndarray, beta: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """``sum_c mix[c, o] sigmoid(a_c + beta_c . z)`` for all ``2^n`` coalitions: (2^n, k_out).

    The players are split into low and high bits, ``z = (z_lo, z_hi)``, and
    ``exp(-(a + beta . z)) = exp(-(a + beta_hi . z_hi)) exp(-beta_lo . z_lo)``: one product
    per coalition and column instead of an exponential, in blocks of high bits that stay in
    cache, each block reduced over the columns by one product with ``mix`` (k, k_out).
    """
    n, k = beta.shape
    n_lo = n // 2
    s_lo = _bits(n_lo) @ beta[:n_lo]  # (2^n_lo, k)
    s_hi = _bits(n - n_lo) @ beta[n_lo:] + a  # (2^n_hi, k)
    out = np.empty((2**n, mix.shape[1]))
    size_lo = 2**n_lo
    if max(np.abs(s_lo).max(initial=0.0), np.abs(s_hi).max(initial=0.0)) > _EXP_SAFE:
        for h in range(2 ** (n - n_lo)):
            out[h * size_lo : (h + 1) * size_lo] = expit(s_hi[h] + s_lo) @ mix
        return out
    e_lo = np.exp(-s_lo)
    e_hi = np.exp(-s_hi)
    rows = max(1, 65536 // (size_lo * k))
    for h in range(0, len(e_hi), rows):
        block = e_hi[h : h + rows, None, :] * e_lo[None]  # (rows, 2^n_lo, k)
        block += 1.0
        np.reciprocal(block, out=block)
        out[h * size_lo : (h + rows) * size_lo] = block.reshape(-1, k) @ mix
    return out


def link_values_exact(
    a: np.ndarray,
    beta: np.ndarray,
    value: str = "shapley",
    mix: np.ndarray | None = None,
) -> np.ndarray:
    """Exact Shapley (or Banzhaf) values of ``sigmoid(a + beta . z)`` by enumeration.

    Parameters
    ----------
    a : float (k,)
    beta : float (n, k)
    value : {"shapley", "banzhaf"}
    mix : float (k, k_out), optional
        Values of the ``k_out`` linear combinations ``sum_c mix[c, o] f_c`` of the columns
        (the values are linear in the game); default the columns themselves.

    Returns
    -------
    phi : float (n, k) or (n, k_out)

    References
    ----------
    Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games
    II, Annals of Mathematics Studies 28.
    """
    n, k = beta.shape
    if mix is None:
        mix = np.eye(k)
    f = _mixture_values(np.asarray(a, dtype=float), np.asarray(beta, dtype=float), mix)
    Z = _bits(n)
    size = Z.sum(1).astype(int)
    # phi_j = sum_{T containing j} w(|T| - 1) f(T) - sum_{S without j} w(|S|) f(S)
    #       = sum_T (w_in(T) + w_out(T)) z_j f(T) - sum_T w_out(T) f(T)
    if value == "shapley":
        wts = _shapley_weights(n)
    else:
        wts = np.full(n, 1.0 / 2 ** (n - 1))
    w_in = np.concatenate([[0.0], wts])[size]  # weight of T as "S + j"
    w_out = np.concatenate([wts, [0.0]])[size]  # weight of S as "S"
    return Z.T @ ((w_in + w_out)[:, None] * f) - (w_out @ f)[None, :]


def _taylor(a: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per surrogate, size ``s`` and player ``j``: the mean ``mu`` of the summed slopes of a
    uniform ``s``-subset of the other players, and the derivative at ``mu`` of
    ``B -> sigmoid(a + beta_j + B) - sigmoid(a + B)``; each (F, n, n, k) indexed ``[f, s, j]``."""
    n = beta.shape[1]
    mean_o = (beta.sum(1)[:, None, :] - beta) / max(n - 1, 1)  # (F, n, k)
    mu = np.arange(n, dtype=float)[None, :, None, None] * mean_o[:, None]
    x0 = a[:, None, None, :] + mu
    p1 = expit(x0 + beta[:, None])
    p0 = expit(x0)
    return mu, p1 * (1 - p1) - p0 * (1 - p0)


def link_values_mc(
    a: np.ndarray,
    beta: np.ndarray,
    rng: np.random.Generator,
    n_replicates: int = N_REPLICATES,
    value: str = "shapley",
    combine: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased size-stratified antithetic Monte Carlo values of sigmoid surrogates.

    The value of the mean of several surrogates (the folds of cross-fitting) is estimated by
    giving each surrogate an equal share of the replicates (independent draws).

    Parameters
    ----------
    a : float (F, k)
        Intercepts of ``F`` surrogates.
    beta : float (F, n, k)
        Their slopes.
    rng : numpy Generator
    n_replicates : int
        Independent replicates in all, rounded up to a multiple of ``F`` (at least 2 per
        surrogate); each one evaluates ``4 n^2`` sigmoids per column.
    value : {"shapley", "banzhaf"}
    combine : float (k, k_out), optional
        Values wanted for ``k_out`` linear combinations of the columns (e.g. a weighted mean
        over background rows); the variance is then that of the combinations.

    Returns
    -------
    phi : float (n, k) or (n, k_out)
        Mean over the surrogates of their estimated values; for Shapley values
        ``phi.sum(0)`` equals the mean of ``f(N) - f(empty)`` to rounding.
    var_phi : float (n, k) or (n, k_out)
        Estimated variance of ``phi`` (spread over replicates / replicates).

    References
    ----------
    Castro, J., Gomez, D. and Tejada, J. (2009). Polynomial calculation of the Shapley value
    based on sampling. Computers & Operations Research 36(5).

    Mitchell, R. et al. (2022). Sampling permutations for Shapley value estimation. JMLR 23.
    """
    F, n, k = beta.shape
    if value == "shapley":
        ws = np.full(n, 1.0 / n)
    else:
        ws = np.array([comb(n - 1, s) for s in range(n)], dtype=float) / 2 ** (n - 1)
    sizes = np.arange(n)
    # replicate r estimates surrogate r mod F: each surrogate gets the same number of
    # replicates, so the mean over replicates is unbiased for the surrogates' mean value
    per = max(2, -(-n_replicates // F))
    which = np.repeat(np.arange(F), per)
    # at most ~200k sigmoid arguments per chunk (its arrays stay in cache; the draws do not
    # depend on the chunks)
    chunk = max(1, 200_000 // (4 * n * n * k))
    mu, h1 = _taylor(a, beta)
    muc, h1c = mu[:, ::-1], h1[:, ::-1]  # the complement has size n-1-s
    reps = np.empty((len(which), n, k))
    for lo in range(0, len(which), chunk):
        fr = which[lo : lo + chunk]
        R = len(fr)
        u = rng.random((R, n, n))  # one uniform order per replicate and size
        order = np.argsort(u, axis=2)
        rank = np.argsort(order, axis=2)  # (R, s, j)
        bf = beta[fr]  # (R, n, k)
        bs = np.take_along_axis(bf[:, None, :, :], order[:, :, :, None], axis=2)  # (R, s, n, k)
        C = np.concatenate([np.zeros((R, n, 1, k)), np.cumsum(bs, axis=2)], axis=2)
        # sum of beta over the s first of the others, for every player j: (R, s, j, k)
        pre_s = np.take_along_axis(C, sizes[None, :, None, None], axis=2)  # C[s]
        pre_s1 = np.take_along_axis(C, (sizes + 1)[None, :, None, None], axis=2)
        inside = (rank < sizes[None, :, None])[:, :, :, None]  # j among the s first
        bj = bf[:, None, :, :]  # (R, 1, n, k)
        B = np.where(inside, pre_s1 - bj, pre_s)
        total = bf.sum(1)[:, None, None, :]
        aa = a[fr][:, None, None, :]
        # f(S + j) - f(S) needs one sigmoid per (s, j): the other end is a prefix of the
        # order, shared by all j (C[s] for j outside the s first, C[s + 1] for j inside)
        base = np.where(inside, pre_s1, pre_s)
        sgn = np.where(inside, -1.0, 1.0)
        shared = np.where(inside, expit(aa + pre_s1), expit(aa + pre_s))
        shared_c = np.where(inside, expit(aa + total - pre_s1), expit(aa + total - pre_s))
        # control variate of known mean zero: the first-order Taylor term of each difference
        # around the mean summed slope of its stratum
        d = sgn * (expit(aa + base + sgn * bj) - shared) - h1[fr] * (B - mu[fr])
        # the complement of the set in N \ {j}: summed slope total - beta_j - B
        e = total - bj - B - muc[fr]
        dc = -sgn * (expit(aa + total - base - sgn * bj) - shared_c) - h1c[fr] * e
        est = np.einsum("s,rsjk->rjk", ws, 0.5 * (d + dc))  # (R, n, k)
        if value == "shapley":
            gap = expit(a[fr] + bf.sum(1)) - expit(a[fr]) - est.sum(1)  # (R, k)
            est = est + gap[:, None, :] / n
        reps[lo : lo + R] = est
    if combine is not None:
        reps = reps @ combine
    reps = reps.reshape(F, per, n, -1)
    var = reps.var(1, ddof=1).sum(0) / (F * F * per)
    return reps.mean((0, 1)), var


def link_values(
    a: np.ndarray,
    beta: np.ndarray,
    rng: np.random.Generator,
    value: str = "shapley",
    n_replicates: int = N_REPLICATES,
    combine: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean values of ``F`` sigmoid surrogates: exact up to :data:`EXACT_MAX_PLAYERS`
    players (variance 0), else :func:`link_values_mc`.

    Parameters
    ----------
    a : float (F, k)
    beta : float (F, n, k)
    combine : float (k, k_out), optional
        See :func:`link_values_mc`.

    Returns
    -------
    phi : float (n, k) or (n, k_out)
    var_phi : float (n, k) or (n, k_out)
    """
    n = beta.shape[1]
    if n <= EXACT_MAX_PLAYERS:
        F, k = a.shape
        # all surrogates' columns in one enumeration, reduced to the mean over the
        # surrogates (and the combinations) before the Shapley weights: (n, k_out)
        mix = np.tile(np.eye(k) if combine is None else np.asarray(combine, float), (F, 1)) / F
        phi = link_values_exact(a.reshape(-1), beta.transpose(1, 0, 2).reshape(n, -1), value, mix)
        return phi, np.zeros_like(phi)
    return link_values_mc(a, beta, rng, n_replicates, value, combine)


def cross_fit_link(
    Z: np.ndarray,
    y: np.ndarray,
    v0: np.ndarray,
    w: np.ndarray,
    fold: np.ndarray,
    rng: np.random.Generator,
    value: str = "shapley",
    *,
    ridge: float = RIDGE,
    n_replicates: int | None = None,
    combine: np.ndarray | None = None,
    max_iter: int = CROSS_FIT_ITER,
    tol: float = CROSS_FIT_TOL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Cross-fitted sigmoid surrogate, or None when the game's values are not probabilities.

    Same contract as :func:`whybox.games._regression_adjusted.cross_fit` plus the variance of
    the surrogate's estimated values.

    Parameters
    ----------
    Z : bool (m, n)
        Coalitions.
    y : float (m, k)
        Their values minus ``v0``.
    v0 : float (k,)
        Value of the empty coalition; ``y + v0`` and ``v0`` must lie in [0, 1] (up to
        :data:`RANGE_TOL`), else None is returned.
    w : float (m,)
        Fit weights (non-negative).
    fold : int (m,)
        Fold ``0 .. K-1`` of each sampled coalition, ``-1`` for enumerated ones (they train
        every fold and are predicted by the folds' average).
    rng : numpy Generator
        Draws the training coalitions when there are more than about :data:`MAX_TRAIN` per
        fold, and the Monte Carlo replicates (beyond :data:`EXACT_MAX_PLAYERS` players).
    value : {"shapley", "banzhaf"}
    ridge : float
        Penalty on the slopes (:func:`fit_link`).
    n_replicates : int, optional
        Monte Carlo replicates of the surrogate's values; default ``m // 32`` clipped to
        ``[64, 128]`` (on the 30-player sweep model, 64 / 256 / 1024 replicates gave the
        same error at 128 coalitions and 0.0020 / 0.0013 / 0.0009 at 4096, where the best
        peer's is 0.031).
    combine : float (k, k_out), optional
        Fit one surrogate per column of ``y`` but return the game of ``k_out`` linear
        combinations of the columns: ``pred @ combine``, ``ends @ combine`` and the values
        and variance of the combined surrogate. With ``y`` holding one column per background
        row and ``combine`` the background weights (k_out = 1), the surrogate is a weighted
        mixture of sigmoids, one fitted per background row, for the game
        ``v = y_per_row @ combine``.
    max_iter, tol : int, float
        Newton iterations at most, and the step below which a column stops, of each fold's
        fit (:data:`CROSS_FIT_ITER`, :data:`CROSS_FIT_TOL`). All folds' columns are fitted in
        one batched Newton iteration from the same start, so each fold's surrogate depends on
        the other folds' values only, however early it stops.

    Returns
    -------
    pred : float (m, k) (or (m, k_out) with ``combine``, likewise below)
        ``f_{-fold(i)}(z_i) - v0``: each coalition predicted by the surrogate that did not see
        it (same offset as ``y``).
    phi_f : float (n, k)
        Unbiased estimate of the mean over folds of the surrogates' values (exact up to
        :data:`EXACT_MAX_PLAYERS` players); for Shapley values
        ``phi_f.sum(0) == ends[1] - ends[0]`` to rounding.
    ends : float (2, k)
        Mean over folds of ``f(empty) - v0`` and ``f(N) - v0``.
    var_phi : float (n, k)
        Variance of ``phi_f`` given the surrogates (0 when exact): add it to the residual
        estimate's variance.

    None when a value is non-finite or outside [0, 1].

    References
    ----------
    Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators
    for Shapley values and probabilistic values. arXiv:2506.11849.
    """
    y = np.asarray(y, dtype=float)
    v0 = np.asarray(v0, dtype=float).reshape(-1)
    t = y + v0[None, :]
    lo, hi = -RANGE_TOL, 1.0 + RANGE_TOL
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v0))):
        return None
    if t.min() < lo or t.max() > hi or v0.min() < lo or v0.max() > hi:
        return None
    m, n = Z.shape
    k = y.shape[1]
    K = max(int(fold.max()) + 1, 1)
    enumerated = fold < 0
    # about MAX_TRAIN coalitions train each fold's surrogate (n + 1 parameters per column):
    # a random subset, drawn independently of the values, when there are more
    pool = np.flatnonzero(np.asarray(w) > 0)
    size = -(-MAX_TRAIN * K // max(K - 1, 1))
    if len(pool) > size:
        pool = rng.choice(pool, size=size, replace=False)
    train = np.zeros(m, dtype=bool)
    train[pool] = True
    w = np.asarray(w, dtype=float)
    # every fold's columns in one batched Newton fit (column (f, c): output c weighted by the
    # training coalitions outside fold f), each from the same default start and stopped
    # after max_iter iterations or a step below tol: a deterministic function of the other
    # folds' values, which is all cross-fitting needs (no warm start from another fold's
    # fit, which saw this fold's values)
    Wf = np.empty((m, K, k))
    for f in range(K):
        wf = np.where(train & (fold != f), w, 0.0)
        if not np.any(wf > 0):
            wf = np.where(train, w, 0.0)
        Wf[:, f, :] = wf[:, None]
    a_all, b_all = _fit_columns(Z, np.tile(t, (1, K)), Wf.reshape(m, K * k), ridge, max_iter, tol)
    A = a_all.reshape(K, k)
    Bt = b_all.reshape(n, K, k).transpose(1, 0, 2)
    Zf = Z.astype(float)
    pred = np.empty_like(y)
    for f in range(K):
        test = fold == f
        pred[test] = expit(Zf[test] @ Bt[f] + A[f])
    if enumerated.any():
        pred[enumerated] = sum(expit(Zf[enumerated] @ Bt[f] + A[f]) for f in range(K)) / K
    ends = np.stack([expit(A).mean(0), expit(A + Bt.sum(1)).mean(0)])
    if n_replicates is None:
        n_replicates = int(np.clip(m // 32, 64, 128))
    phi_f, var_phi = link_values(A, Bt, rng, value, n_replicates, combine)
    pred, ends = pred - v0, ends - v0
    if combine is not None:
        pred, ends = pred @ combine, ends @ combine
    return pred, phi_f, ends, var_phi
