"""Regression-adjusted Monte Carlo: surrogate games whose values are known exactly.

A surrogate ``f`` is fitted to the coalition values a sampling estimator has already paid for;
its Shapley (or Banzhaf) values are computed exactly, and the estimator is applied only to the
*residual game* ``v - f`` (Witter, Liu and Musco 2025):

    phi(v) = phi(f) + phi(v - f),   phi(v - f) estimated from the same samples.

The estimate stays unbiased when the residual at a sample comes from a surrogate that did not
see that sample (*cross-fitting*: the samples are split into folds, the fold-``k`` surrogate
is fitted on the other folds and ``phi(f)`` is the folds' average), and efficiency holds
exactly because the residual estimators keep it. Standard errors are those of the residual
game, so a surrogate that explains the game well gives both a better estimate and a smaller
standard error.

Surrogates (``surrogate=``):

* ``"linear"``: an additive game ``f(S) = sum_{j in S} beta_j`` fitted by weighted least
  squares; ``phi_j(f) = beta_j``.
* ``"tree"``: a small gradient-boosted ensemble of depth-3 trees on the coalition
  indicators (depth-1 splits are additive terms, deeper paths interactions). On binary inputs every leaf of a tree is a
  conjunction ``c * prod_{j in P} 1[j in S] * prod_{j in Q} 1[j not in S]`` whose Shapley
  values are closed-form: ``c (p-1)! q! / (p+q)!`` for ``j in P`` and
  ``-c p! (q-1)! / (p+q)!`` for ``j in Q`` (``p = |P|``, ``q = |Q|``); its Banzhaf values are
  ``+-c / 2^(p+q-1)``. These are the interventional TreeSHAP values of the ensemble explained
  at the all-ones point against the all-zeros reference (tested against
  :mod:`whybox.trees`).
* ``"kernel"``: kernel ridge regression with the product kernel
  ``exp(-gamma Hamming(z, t))`` (:mod:`whybox.games._product_kernel`), every fitted centre
  a product game with closed-form Shapley and Banzhaf values (Owen's multilinear
  extension). It carries interactions of every order, which is what KernelSHAP needs: paired
  KernelSHAP is already exact on games of order at most two. KernelSHAP gives it one width
  per player (:func:`relevance_widths`, from the enumerated sizes 1 and ``n - 1``) when it
  has them: measured on bench_kernel_sweep's games, 0.48 -> 0.36x shap's error on the SVC
  at 128 evaluations, 0.99 -> 0.57x on the GBC.
* ``"auto"``: the candidates are cross-fitted, and the one whose residual game has the
  smallest estimated variance is kept (the choice is reported). KernelSHAP's candidates are
  none, kernel and its sigmoid surrogate (:mod:`whybox.games.kernel`; the tree by name
  only, for its cost); the Monte Carlo forms' none, linear and tree (``"kernel"`` is
  available to them by name).

References
----------
Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849 (NeurIPS 2025).

Chernozhukov, V. et al. (2018). Double/debiased machine learning for treatment and structural
parameters. The Econometrics Journal 21(1). (Cross-fitting.)

Owen, G. (1972). Multilinear extensions of games. Management Science 18(5). (Product-kernel
surrogate's values.)

Neal, R. M. (1996). Bayesian learning for neural networks. Springer. (Automatic relevance
determination: one kernel width per input.)

Lundberg, S. M. et al. (2020). From local explanations to global understanding with
explainable AI for trees. Nature Machine Intelligence 2. (Interventional TreeSHAP.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = [
    "KERNEL_SURROGATES",
    "SURROGATES",
    "BinaryBoostedTrees",
    "adjusted_banzhaf",
    "adjusted_permutation_shapley",
    "check_surrogate",
    "choose",
    "fold_of_pairs",
    "negligible",
    "relevance_widths",
]

#: Accepted values of ``surrogate=``.
SURROGATES = ("auto", "none", "linear", "kernel", "tree")

#: Gradient-boosting settings of the tree surrogate.
N_TREES = 20
DEPTH = 3
LEARNING_RATE = 0.5
MIN_LEAF = 4
#: At most this many coalitions train a surrogate (enumerated ones are subsampled first).
MAX_TRAIN = 1536
#: Cross-fitting folds.
N_FOLDS = 4
#: Product-kernel surrogate: (gamma * n, ridge penalty, coalitions training each fold).
#: Chosen on the sweep's SVC, k-NN, GBC and MLP games at 128-1024 evaluations (2 seeds):
#: gamma * n in 0.6-2 and ridge 1e-5-1e-3 were within noise of each other; 3 and 0.3 worse.
KERNEL_SETTINGS = {"kernel": (1.0, 1e-4, 512)}
#: Relevance-weighted kernel (:func:`relevance_widths`): share of the total width spread evenly
#: over the players, the rest in proportion to their relevance. Measured on the sweep's SVC,
#: k-NN, GBC, MLP and Pipeline games at 128-256 evaluations (8 seeds): 0.1-0.2 best, 0 and 0.5
#: up to 20% worse on GBC / k-NN; a total width (``gamma * n``) of 1 or 2 within noise.
RELEVANCE_FLOOR = 0.2


#: KernelShap's values of ``surrogate=``: also the sigmoid (link) surrogate of probability
#: games (:mod:`whybox.games._link_surrogate`).
KERNEL_SURROGATES = (*SURROGATES, "sigmoid")


def check_surrogate(surrogate: str, allowed: tuple[str, ...] = SURROGATES) -> str:
    """Validate ``surrogate=`` against ``allowed``; returns it."""
    if surrogate not in allowed:
        sigmoid = ", 'sigmoid' (a sigmoid per background row, for probability outputs)" * (
            "sigmoid" in allowed
        )
        raise InvalidParameterError(
            f"surrogate={surrogate!r} is not one of {allowed}. Pass surrogate='auto' (the "
            "surrogate with the smallest held-out residual variance), 'linear', 'kernel', "
            f"'tree'{sigmoid}, or 'none' (no regression adjustment)."
        )
    return surrogate


def fold_of_pairs(rng: np.random.Generator, n_pairs: int, n_folds: int = N_FOLDS) -> np.ndarray:
    """Balanced random fold of each of ``n_pairs`` items: int (n_pairs,)."""
    folds = np.arange(n_pairs) % n_folds
    return rng.permutation(folds)


@dataclass
class BinaryBoostedTrees:
    """Gradient-boosted regression trees on boolean inputs, stored as leaf conjunctions.

    Leaf ``l`` adds ``values[l]`` (k,) to coalitions containing every player of
    ``P[l]`` and none of ``Q[l]`` (bool masks (L, n)); ``beta`` (n, k) and ``intercept`` (k,)
    are an additive part ``intercept + Z @ beta``.
    """

    beta: np.ndarray
    intercept: np.ndarray
    P: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    Q: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def n_leaves(self) -> int:
        return int(self.values.shape[0])

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Surrogate values of coalitions ``Z`` bool (m, n): float (m, k)."""
        Zf = Z.astype(float)
        out = Zf @ self.beta + self.intercept
        if self.n_leaves:
            sat = (Zf @ self.P.T.astype(float) == self.P.sum(1)) & (
                Zf @ self.Q.T.astype(float) == 0
            )
            out += sat.astype(float) @ self.values
        return out

    def shapley(self, n: int) -> np.ndarray:
        """Exact Shapley values of the surrogate game: (n, k).

        A leaf's conjunction credits ``c (p-1)! q! / (p+q)!`` to each player of ``P`` and
        ``-c p! (q-1)! / (p+q)!`` to each player of ``Q``.
        """
        phi = self.beta.copy()
        if self.n_leaves:
            p = self.P.sum(1)
            q = self.Q.sum(1)
            fact = np.cumprod(np.concatenate([[1.0], np.arange(1.0, n + 1)]))
            cp = np.where(p > 0, fact[np.maximum(p - 1, 0)] * fact[q] / fact[p + q], 0.0)
            cq = np.where(q > 0, fact[p] * fact[np.maximum(q - 1, 0)] / fact[p + q], 0.0)
            phi += self.P.T.astype(float) @ (self.values * cp[:, None])
            phi -= self.Q.T.astype(float) @ (self.values * cq[:, None])
        return phi

    def banzhaf(self, n: int) -> np.ndarray:
        """Exact Banzhaf values of the surrogate game: (n, k) (``+-c / 2^(p+q-1)``)."""
        phi = self.beta.copy()
        if self.n_leaves:
            c = self.values / 2.0 ** (self.P.sum(1) + self.Q.sum(1) - 1)[:, None]
            phi += (self.P.astype(float) - self.Q.astype(float)).T @ c
        return phi


def fit_surrogate(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, kind: str, *, ridge: float = 1e-8
) -> BinaryBoostedTrees:
    """Fit a linear (``kind="linear"``) or boosted-tree (``"tree"``) surrogate.

    Parameters
    ----------
    Z : bool (m, n)
        Coalitions.
    y : float (m, k)
        Their values (any offset).
    w : float (m,)
        Non-negative weights of the squared errors (zero: the row is left out).
    kind : {"linear", "tree", "kernel"}

    Returns
    -------
    BinaryBoostedTrees or ProductKernelGame
    """
    return fit_surrogates(Z, y, np.asarray(w, dtype=float)[None, :], kind, ridge=ridge)[0]


def fit_surrogates(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, kind: str, *, ridge: float = 1e-8
) -> list[BinaryBoostedTrees]:
    """Fit one surrogate per row of weights ``w`` (F, m), all at once (the folds of
    cross-fitting are weight vectors with zeros on the held-out fold)."""
    m, n = Z.shape
    if kind.startswith("kernel"):
        from ._product_kernel import fit_product_kernel

        g_n, lam, cap = KERNEL_SETTINGS[kind]
        return fit_product_kernel(Z, y, w, g_n / n, lam, max_train=cap)  # type: ignore[return-value]
    Zf = Z.astype(float)
    sw = w / w.sum(axis=1, keepdims=True)
    if kind == "linear":
        # weighted least squares on centred data (the intercept unpenalised, so a constant
        # game gives exactly zero slopes)
        out = []
        for f in range(sw.shape[0]):
            zbar = sw[f] @ Zf
            ybar = sw[f] @ y
            Zc = Zf - zbar
            ZtW = Zc.T * sw[f]
            G = ZtW @ Zc
            G[np.diag_indices(n)] += ridge * (np.trace(G) / n + 1e-300)
            beta = np.linalg.solve(G, ZtW @ (y - ybar))
            out.append(BinaryBoostedTrees(beta=beta, intercept=ybar - zbar @ beta))
        return out
    # trees are boosted from the weighted mean, not from a linear fit: the residual of a
    # least-squares additive fit is uncorrelated with every single indicator, which would hide
    # every interaction from a greedy first split
    F = sw.shape[0]
    mean = sw @ y  # (F, k)
    r = y[None, :, :] - mean[:, None, :]
    Ps: list[np.ndarray] = []
    Qs: list[np.ndarray] = []
    Vs: list[np.ndarray] = []
    for _ in range(N_TREES):
        tree = _fit_trees(Zf, r, sw, DEPTH)
        if tree is None:
            break
        P, Q, val, node = tree
        val = LEARNING_RATE * val
        r = r - np.take_along_axis(val, node[:, :, None], axis=1)
        Ps.append(P)
        Qs.append(Q)
        Vs.append(val)
    # an additive least-squares correction of what the trees left (main effects the greedy
    # splits spread thinly over many leaves)
    lin = fit_surrogates(Z, r.transpose(1, 0, 2).reshape(m, -1), sw, "linear", ridge=ridge)
    out = []
    k = y.shape[1]
    for f in range(F):
        model = BinaryBoostedTrees(
            beta=lin[f].beta.reshape(n, F, k)[:, f],
            intercept=mean[f] + lin[f].intercept.reshape(F, k)[f],
        )
        if Vs:
            P = np.concatenate([p_[f] for p_ in Ps])
            Q = np.concatenate([q_[f] for q_ in Qs])
            V = np.concatenate([v_[f] for v_ in Vs])
            keep = np.any(V != 0, axis=1)
            model.P, model.Q, model.values = P[keep], Q[keep], V[keep]
        out.append(model)
    return out


def _fit_trees(
    Zf: np.ndarray, r: np.ndarray, sw: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One least-squares regression tree per weight vector, on 0/1 inputs, grown level by
    level (multi-output: squared-error gains summed over outputs).

    Parameters
    ----------
    Zf : float (m, n) of 0/1
    r : float (F, m, k)
        Residuals to fit, one set per tree.
    sw : float (F, m)
        Weights (summing to one per tree).
    depth : int

    Returns
    -------
    ``(P, Q, leaf mean residual (F, L, k), leaf of each row (F, m))`` with ``P``/``Q`` bool
    (F, L, n) the players required present/absent on each leaf's path (``L = 2**levels``;
    unreached leaves have value 0); None when no split reduces the error in any tree.
    """
    m, n = Zf.shape
    F, _, k = r.shape
    rows = np.arange(m)
    node = np.zeros((F, m), dtype=np.intp)
    P = np.zeros((F, 1, n), dtype=bool)
    Q = np.zeros((F, 1, n), dtype=bool)
    wr = sw[:, :, None] * r  # (F, m, k)
    Zr = (Zf[None, :, :, None] * wr[:, :, None, :]).reshape(F, m, n * k)
    total = (wr * r).sum(axis=(1, 2))  # (F,)
    split_any = False
    fidx = np.arange(F)
    for _ in range(depth):
        nn = P.shape[1]
        Ht = (node[:, None, :] == np.arange(nn)[None, :, None]).astype(float)  # (F, nn, m)
        W = np.einsum("ftm,fm->ft", Ht, sw)
        S = Ht @ wr  # (F, nn, k)
        W1 = ((Ht * sw[:, None, :]).reshape(F * nn, m) @ Zf).reshape(F, nn, n)
        c1 = (Ht.reshape(F * nn, m) @ Zf).reshape(F, nn, n)
        cnt = Ht.sum(axis=2)  # (F, nn)
        S1 = (Ht @ Zr).reshape(F, nn, n, k)
        W0 = W[:, :, None] - W1
        ok = (c1 >= MIN_LEAF) & (cnt[:, :, None] - c1 >= MIN_LEAF) & (W1 > 0) & (W0 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.where(W > 0, (S**2).sum(2) / np.where(W > 0, W, 1.0), 0.0)
            gain = (
                (S1**2).sum(3) / W1 + ((S[:, :, None, :] - S1) ** 2).sum(3) / W0 - base[:, :, None]
            )
        gain[~ok] = -np.inf
        # gains rounded to 1e-9 of the largest before the argmax, so that rounding noise in
        # the values (a probability and one minus it) cannot flip a tie between players
        top = np.max(np.where(np.isfinite(gain), gain, 0.0), axis=2, keepdims=True)
        gain = np.round(gain / np.where(top > 0, top, 1.0), 9)
        j = np.argmax(gain, axis=2)  # (F, nn)
        g = gain[fidx[:, None], np.arange(nn)[None, :], j]
        with np.errstate(invalid="ignore"):
            split = np.isfinite(g) & (g * top[:, :, 0] > 1e-12 * np.maximum(total, 1e-300)[:, None])
        if not split.any():
            break
        split_any = True
        # children: node 2t (player absent, or node not split) and 2t+1 (player present)
        newP = np.repeat(P, 2, axis=1)
        newQ = np.repeat(Q, 2, axis=1)
        fi, ti = np.nonzero(split)
        newQ[fi, 2 * ti, j[fi, ti]] = True
        newP[fi, 2 * ti + 1, j[fi, ti]] = True
        at = split[fidx[:, None], node]
        jn = j[fidx[:, None], node]
        bit = at & (Zf[rows[None, :], jn] > 0)
        node = 2 * node + bit
        P, Q = newP, newQ
    if not split_any:
        return None
    nn = P.shape[1]
    Ht = (node[:, None, :] == np.arange(nn)[None, :, None]).astype(float)
    W = np.einsum("ftm,fm->ft", Ht, sw)
    S = Ht @ wr
    val = np.where(W[:, :, None] > 0, S / np.where(W > 0, W, 1.0)[:, :, None], 0.0)
    return P, Q, val, node


def cross_fit(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    fold: np.ndarray,
    kind: str,
    value: str = "shapley",
    rng: np.random.Generator | None = None,
    widths: np.ndarray | None = None,
    partner: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross-fitted surrogate: held-out predictions and the folds' average exact values.

    Parameters
    ----------
    Z : bool (m, n)
    y : float (m, k)
    w : float (m,)
    fold : int (m,)
        Fold of each sampled coalition (``0 .. K-1``); ``-1`` marks coalitions that were
        enumerated, not sampled: they train every fold's surrogate and are predicted by the
        folds' average (no sampling error to keep unbiased there).
    kind : {"linear", "tree", "kernel"}
    value : {"shapley", "banzhaf"}
    rng : numpy Generator, optional
        Draws which enumerated coalitions train the surrogates when there are more than
        :data:`MAX_TRAIN` coalitions (the sampled ones always do); without it all train.
    widths : float (n,), optional
        For ``kind="kernel"``: one width per player (:func:`relevance_widths`), the kernel
        ``exp(-sum_j widths_j [z_j != t_j])``; without it every player has ``gamma``.
    partner : int (m,), optional
        For ``kind="kernel"``: the row of each coalition's complement (pairs share their fold
        and weight); the kernel ridge systems are then solved in halves
        (:func:`whybox.games._product_kernel.cross_fit_kernel`).

    Returns
    -------
    pred : float (m, k)
        ``f_{-fold(i)}(z_i)``: each coalition predicted by the surrogate that did not see it.
    phi_f : float (n, k)
        Mean over folds of the surrogates' exact values.
    ends : float (2, k)
        Mean over folds of the surrogates' values at the empty and full coalitions.
    """
    n = Z.shape[1]
    if kind.startswith("kernel"):
        from ._product_kernel import cross_fit_kernel

        g_n, lam, cap = KERNEL_SETTINGS[kind]
        gamma = g_n / n if widths is None else widths
        return cross_fit_kernel(
            Z, y, w, fold, gamma, lam, rng or np.random.default_rng(0), cap, value, partner
        )
    K = int(fold.max()) + 1
    pred = np.empty_like(y)
    phi_f = np.zeros((n, y.shape[1]))
    ends = np.zeros((2, y.shape[1]))
    corners = np.zeros((2, n), dtype=bool)
    corners[1] = True
    K = max(K, 1)
    train = np.ones(len(Z), dtype=bool)
    enumerated = fold < 0
    spare = MAX_TRAIN - int((~enumerated).sum())
    if rng is not None and len(Z) > MAX_TRAIN and enumerated.sum() > max(spare, 0):
        keep = rng.choice(np.flatnonzero(enumerated), size=max(spare, 0), replace=False)
        train[enumerated] = False
        train[keep] = True
    Zt, ft = Z[train], fold[train]
    models = fit_surrogates(
        Zt, y[train], w[train][None, :] * (ft[None, :] != np.arange(K)[:, None]), kind
    )
    for k, model in enumerate(models):
        test = fold == k
        pred[test] = model.predict(Z[test])
        phi_f += (model.shapley(n) if value == "shapley" else model.banzhaf(n)) / K
        ends += model.predict(corners) / K
    if enumerated.any():
        pred[enumerated] = sum(model.predict(Z[enumerated]) for model in models) / K
    return pred, phi_f, ends


def relevance_widths(
    y_single: np.ndarray, y_leave_one_out: np.ndarray, delta: np.ndarray
) -> np.ndarray | None:
    """Per-player widths of the product kernel from the enumerated sizes 1 and ``n - 1``.

    A player's relevance is ``sum_k |v({j}) - v(empty)| + |v(N) - v(N - j)|`` (its effect
    alone and its effect last); the widths share a total ``gamma * n`` of
    ``KERNEL_SETTINGS["kernel"]``, :data:`RELEVANCE_FLOOR` of it evenly, the rest in
    proportion to the relevance. Players that barely move the game then barely separate
    coalitions in the kernel (automatic relevance determination, Neal 1996, with a plug-in
    relevance instead of a fitted one), so the surrogate spends its few coalitions on the
    players that matter.

    Parameters
    ----------
    y_single : float (n, k)
        ``v({j}) - v(empty)``, player ``j`` in row ``j``.
    y_leave_one_out : float (n, k)
        ``v(N - j) - v(empty)``.
    delta : float (k,)
        ``v(N) - v(empty)``.

    Returns
    -------
    float (n,) summing to ``gamma * n``, or None when no player moves the game (the
    uniform kernel is used then).
    """
    n = y_single.shape[0]
    relevance = (np.abs(y_single) + np.abs(delta[None, :] - y_leave_one_out)).sum(axis=1)
    total = float(relevance.sum())
    if not np.isfinite(total) or total <= 0.0:
        return None
    g_n = KERNEL_SETTINGS["kernel"][0]
    return g_n * (RELEVANCE_FLOOR / n + (1.0 - RELEVANCE_FLOOR) * relevance / total)


#: A more complex surrogate is kept only if it cuts the estimated variance below this
#: fraction of the simpler one's (a tie, e.g. between a game and its negation, must not flip
#: the choice; the margin also tempers picking a variance estimate that happens to be low).
CHOICE_MARGIN = 0.9
#: A preferred candidate (KernelSHAP's kernel surrogate with relevance widths) is replaced
#: only by one whose estimated variance is below this fraction of its own. Measured on
#: bench_kernel_sweep's games at 128-512 evaluations (8 seeds x 3 rows): with few sampled
#: pairs the variance estimates are too noisy to rank close candidates (choosing by them
#: kept 'none' on 1/3 of the k-NN and MLP rows at 128, 0.46 and 0.37x shap's error, where
#: the relevance kernel alone gives 0.42 and 0.33); with this margin the choice is within 3%
#: of the kernel's error or better on every game.
PREFERRED_MARGIN = 0.7


def negligible(var: np.ndarray, y: np.ndarray) -> bool:
    """Whether the plain estimate's variance is rounding noise (an additive game for
    KernelSHAP, a constant one for the Monte Carlo forms): no surrogate is then fitted."""
    return float(var.sum()) <= 1e-24 * max(float(np.mean(y**2)), 1e-300)


def choose(
    candidates: dict[str, tuple[np.ndarray, np.ndarray]],
    surrogate: str,
    prefer: str | None = None,
) -> tuple[str, np.ndarray, np.ndarray]:
    """The candidate kept: ``surrogate`` itself, or for ``"auto"`` the one of ``none``,
    ``linear``, ``tree`` (in that order of complexity) with the smallest summed variance,
    a more complex one only if below :data:`CHOICE_MARGIN` times the best simpler one.

    With ``prefer`` (a candidate's name), that candidate is kept unless another's summed
    variance is below :data:`PREFERRED_MARGIN` times its own (then the rule above among the
    others)."""
    if surrogate != "auto":
        est, var = candidates[surrogate]
        return surrogate, est, var
    if prefer in candidates:
        floor = PREFERRED_MARGIN * float(candidates[prefer][1].sum())
        others = {k: v for k, v in candidates.items() if k != prefer}
        if "none" in others:
            name, est, var = choose(others, "auto")
            if float(var.sum()) < floor:
                return name, est, var
        est, var = candidates[prefer]
        return prefer, est, var
    best = ("none", float(candidates["none"][1].sum()))  # always a candidate
    for name in ("linear", "kernel", "tree"):
        if name in candidates:
            total = float(candidates[name][1].sum())
            if total < CHOICE_MARGIN * best[1]:
                best = (name, total)
    est, var = candidates[best[0]]
    return best[0], est, var


def adjusted_banzhaf(
    game: Any, rng: np.random.Generator, *, budget: int, surrogate: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Banzhaf values by regression-adjusted maximum sample reuse (exactly unbiased).

    Coalitions are drawn uniformly in complementary pairs ``(z, ~z)``; with ``r = v - f`` the
    residual of the surrogate that did not see the pair,

        beta_j = beta_j(f) + mean over pairs of (r(z) - r(~z)) (2 z_j - 1),

    since ``beta_j(g) = 2 E[g(S) (2 [j in S] - 1)]`` for ``S`` uniform. Standard errors from
    the spread over pairs. ``surrogate="none"`` is plain paired MSR.

    Returns
    -------
    beta : (n, k)
    std : (n, k)
    v_empty : (k,)
    info : dict with ``surrogate`` (the choice) and ``pairs``.
    """
    from .game import as_value_matrix

    n = int(game.n_players)
    pairs = max(2, budget // 2)
    Z1 = rng.random((pairs, n)) < 0.5
    Z = np.concatenate([Z1, ~Z1])
    y = as_value_matrix(game.value(Z), len(Z))
    v0 = as_value_matrix(game.value(np.zeros((1, n), dtype=bool)), 1)[0]
    sign = 2.0 * Z1 - 1.0  # (P, n)
    pair_fold = fold_of_pairs(rng, pairs)
    fold = np.concatenate([pair_fold, pair_fold])
    K = int(pair_fold.max()) + 1
    share = np.bincount(pair_fold, minlength=K) / pairs

    def estimate(pred: np.ndarray, beta_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = y - pred
        g = sign[:, :, None] * (r[:pairs] - r[pairs:])[:, None, :]  # (P, n, k)
        return beta_f + g.mean(axis=0), g.var(axis=0, ddof=1) / pairs

    candidates = {"none": estimate(np.zeros_like(y), np.zeros((n, y.shape[1])))}
    kinds = (
        ["tree", "linear"] if surrogate == "auto" else [] if surrogate == "none" else [surrogate]
    )
    for kind in kinds:
        models = fit_surrogates(
            Z, y, np.ones(len(Z))[None, :] * (fold[None, :] != np.arange(K)[:, None]), kind
        )
        pred = np.empty_like(y)
        beta_f = np.zeros((n, y.shape[1]))
        for k, model in enumerate(models):
            pred[fold == k] = model.predict(Z[fold == k])
            beta_f += share[k] * model.banzhaf(n)
        candidates[kind] = estimate(pred, beta_f)
    choice, beta, var = choose(candidates, surrogate)
    return beta, np.sqrt(var), v0, {"surrogate": choice, "pairs": int(pairs)}


def adjusted_permutation_shapley(
    game: Any, rng: np.random.Generator, *, budget: int, surrogate: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Shapley values by regression-adjusted antithetic permutation sampling.

    Each pair (a permutation and its reverse) gives the mean marginal contributions of the
    residual game ``v - f`` along its two chains, ``f`` being the surrogate fitted on the
    other folds' pairs; the estimate is ``sum_k share_k phi(f_k)`` plus the mean over pairs,
    exactly unbiased (pairs are independent of the surrogate that corrects them) and exactly
    efficient (every chain of the residual game adds up to its ``v(N) - v(empty)``, and the
    surrogates' values to theirs). Standard errors from the spread over pairs.

    Returns
    -------
    phi : (n, k)
    std : (n, k)
    v_empty : (k,)
    info : dict with ``surrogate`` (the choice) and ``pairs``.
    """
    from .game import as_value_matrix

    n = int(game.n_players)
    ends = np.zeros((2, n), dtype=bool)
    ends[1] = True
    v_ends = as_value_matrix(game.value(ends), 2)
    v0 = v_ends[0]
    k = v0.shape[0]
    b = max(2, (budget - 2) // (2 * (n - 1)))
    ranks = np.argsort(np.argsort(rng.random((b, n)), axis=1), axis=1)
    sizes = np.arange(1, n)
    fwd = ranks[:, None, :] < sizes[None, :, None]  # (b, n-1, n)
    rev = ranks[:, None, :] >= (n - sizes)[None, :, None]
    Z = np.concatenate([fwd, rev]).reshape(-1, n)
    y = as_value_matrix(game.value(Z), len(Z))
    pair_fold = fold_of_pairs(rng, b)
    fold = np.tile(np.repeat(pair_fold, n - 1), 2)
    K = int(pair_fold.max()) + 1
    share = np.bincount(pair_fold, minlength=K) / b

    def estimate(
        pred: np.ndarray, pred_ends: np.ndarray, phi_f: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        r = (y - pred).reshape(2, b, n - 1, k)
        re = v_ends[None, :, :] - pred_ends  # (b, 2, k): residual at empty and full
        chain_f = np.concatenate([re[:, :1], r[0], re[:, 1:]], axis=1)
        chain_r = np.concatenate([re[:, :1], r[1], re[:, 1:]], axis=1)
        cf = np.take_along_axis(np.diff(chain_f, axis=1), ranks[:, :, None], axis=1)
        cr = np.take_along_axis(np.diff(chain_r, axis=1), (n - 1 - ranks)[:, :, None], axis=1)
        per_pair = 0.5 * (cf + cr)  # (b, n, k)
        return phi_f + per_pair.mean(axis=0), per_pair.var(axis=0, ddof=1) / b

    zero_ends = np.zeros((b, 2, k))
    candidates = {"none": estimate(np.zeros_like(y), zero_ends, np.zeros((n, k)))}
    kinds = (
        ["tree", "linear"] if surrogate == "auto" else [] if surrogate == "none" else [surrogate]
    )
    for kind in kinds:
        models = fit_surrogates(
            Z, y, np.ones(len(Z))[None, :] * (fold[None, :] != np.arange(K)[:, None]), kind
        )
        pred = np.empty_like(y)
        pred_ends = np.empty((b, 2, k))
        phi_f = np.zeros((n, k))
        for f_, model in enumerate(models):
            pred[fold == f_] = model.predict(Z[fold == f_])
            pred_ends[pair_fold == f_] = model.predict(ends)
            phi_f += share[f_] * model.shapley(n)
        candidates[kind] = estimate(pred, pred_ends, phi_f)
    choice, phi, var = choose(candidates, surrogate)
    return phi, np.sqrt(var), v0, {"surrogate": choice, "pairs": int(b)}
