"""LIME: local weighted sparse linear surrogates, and SP-LIME's submodular pick.

A row ``x`` is perturbed, the model is called on the perturbations, and a kernel-weighted
ridge regression on a few *interpretable* features is fitted around ``x`` (Ribeiro, Singh and
Guestrin 2016). This module holds LIME's numerical core; the explainer users construct,
:class:`whybox.agnostic.lime.Lime`, applies it to each row and follows lime's
``LimeTabularExplainer``:

* **Interpretable features.** With ``discretize="quartile"`` (lime's default) or ``"decile"``
  the bin edges of a numeric feature are the background's percentiles (repeated edges dropped,
  as ``lime.discretize``), and a sample's feature ``j`` is 1 when its value falls in ``x_j``'s
  bin (``np.searchsorted(edges, v)``: a value on an edge is in the bin below), else 0. A
  categorical feature (categorical / string / object / bool columns, and
  ``categorical_features``) is 1 when the sample's category equals ``x_j``'s. With
  ``discretize=None`` a numeric feature is its standardised value ``(v - mean) / std``.
* **Perturbations.** Sample 0 is ``x``; in the others each feature independently takes its
  value from a randomly drawn background row (its empirical marginal). Bins then occur with
  their training frequencies, as in lime, which draws a bin by frequency and then a value from
  a normal truncated to the bin. We keep real values instead: the interpretable samples and
  kernel weights have exactly lime's distribution (the surrogate estimates the same quantity),
  values stay valid for the model (integers stay integers, bounded features in range, string
  columns work; lime returns a z-score for a zero-width bin), and sampling is one vectorised
  gather. Only a model that varies *within* bins sees a difference. Without discretisation,
  numeric features are drawn as lime does (``sample_around_instance=False``): normal with the
  background's mean and standard deviation (rounded for integer columns).
* **Kernel.** ``sqrt(exp(-d^2 / width^2))`` of the Euclidean distance between a sample's
  interpretable vector and ``x``'s, ``width = 0.75 sqrt(p)`` by default.
* **Surrogate.** lime's feature selection, then a weighted ridge regression with intercept; its
  weighted R^2 is the local fidelity. All regressions of a row are solved from one weighted
  Gram matrix (forward selection scores every candidate of a step at once) instead of
  refitting scikit-learn models, with the same selected features and coefficients.

Many rows at once (what :class:`~whybox.agnostic.lime.Lime` does): :meth:`InterpretableSpace.
sample_batch` draws every row's perturbations from its own generator into one batch of model
inputs (one model call for many rows), and :func:`whybox.games._lime_batch.fit_batch` fits all
their surrogates with stacked solves, equal to :func:`fit_surrogates` row by row.

Unlike lime, results are seeded per row (identical for identical ``random_state`` whatever the
batching or backend) and carry standard errors.

References
----------
Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD, 1135-1144.

White, H. (1980). A heteroskedasticity-consistent covariance matrix estimator and a direct test
for heteroskedasticity. Econometrica 48(4). (The standard errors.)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in, check_int
from ..errors import InvalidInputError, InvalidParameterError
from ..parallel import one_blas_thread
from .maskers import Masker

__all__ = [
    "InterpretableSpace",
    "SurrogateFit",
    "bin_edges",
    "default_kernel_width",
    "fit_surrogate",
    "fit_surrogates",
    "kernel_weights",
    "submodular_pick",
]

SELECTIONS = ("auto", "forward_selection", "highest_weights", "lasso_path", "none")
DISCRETIZERS = ("quartile", "decile", None)
_PERCENTILES = {"quartile": [25, 50, 75], "decile": [10, 20, 30, 40, 50, 60, 70, 80, 90]}


# ------------------------------------------------------------------ pure building blocks
def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and bool(np.isfinite(v))


def default_kernel_width(n_features: int) -> float:
    """lime's default kernel width, ``0.75 sqrt(p)``."""
    return 0.75 * float(np.sqrt(n_features))


def kernel_weights(distances: np.ndarray, width: float) -> np.ndarray:
    """lime's default kernel ``sqrt(exp(-d^2 / width^2))`` of distances (m,): weights (m,)."""
    d = np.asarray(distances, dtype=float)
    return np.sqrt(np.exp(-(d**2) / width**2))


def bin_edges(values: Any, discretize: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Bin edges of one numeric column, as ``lime.discretize``'s Quartile/DecileDiscretizer.

    ``values`` (n,) is the column (NaN ignored), ``weights`` (n,) optional row weights
    (non-uniform: weighted ``inverted_cdf`` percentiles). Returns the sorted unique percentiles
    (n_edges,); a value ``v`` is in bin ``np.searchsorted(edges, v)``.
    """
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    if not ok.any():
        return np.empty(0)
    q = _PERCENTILES[discretize]
    if weights is None or np.all(weights[ok] == weights[ok][0]):
        edges = np.percentile(v[ok], q)
    else:
        edges = np.percentile(v[ok], q, weights=weights[ok], method="inverted_cdf")
    return np.unique(edges)


def bin_descriptions(name: str, edges: np.ndarray) -> list[str]:
    """lime's names of the bins of a feature (``"x <= 1.00"``, ``"1.00 < x <= 2.00"``, ...)."""
    if len(edges) == 0:
        return [str(name)]
    out = [f"{name} <= {edges[0]:.2f}"]
    out += [f"{lo:.2f} < {name} <= {hi:.2f}" for lo, hi in pairwise(edges)]
    return [*out, f"{name} > {edges[-1]:.2f}"]


@dataclass(frozen=True)
class SurrogateFit:
    """One fitted local surrogate (one row, one output).

    ``used`` (k,) the selected features in selection order, ``coef`` (k,) their ridge
    coefficients, ``std`` (k,) standard errors (see :func:`fit_surrogate`), ``intercept``,
    ``score`` the weighted R^2 (lime's score: the local fidelity) and ``local_prediction`` the
    surrogate at the explained row (sample 0).
    """

    used: np.ndarray
    coef: np.ndarray
    std: np.ndarray
    intercept: float
    score: float
    local_prediction: float


class _Gram:
    """Weighted-centred design of one row's samples, shared by every output and fit."""

    def __init__(self, Z: np.ndarray, w: np.ndarray) -> None:
        self.Z, self.w = Z, w
        self.zbar = (w @ Z) / w.sum()
        self.Zc = Z - self.zbar
        self.Zw = self.Zc * w[:, None]
        self.G = self.Zw.T @ self.Zc  # Z_c^T W Z_c, (p, p)


def _solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(A, B)
    except np.linalg.LinAlgError:  # singular (alpha = 0): least squares, as scikit-learn falls back
        return np.linalg.lstsq(A, B, rcond=None)[0]


def _forward_selection(gram: _Gram, b: np.ndarray, k: int) -> list[int]:
    """lime's forward selection: add, ``k`` times, the feature that most raises the weighted
    R^2 of an unregularised fit (first feature on ties, as lime's strict ``>``).

    Adding ``f`` to the chosen set ``S`` raises the explained sum of squares by
    ``(b_f - G_fS G_SS^-1 b_S)^2 / (G_ff - G_fS G_SS^-1 G_Sf)``: every candidate of a step is
    scored at once from the Gram matrix. A constant candidate, or one that is a combination of
    ``S``, adds nothing (lime's least-squares fallback gives it the score of ``S``). Gains equal
    to rounding (1e-10 relative) are ties.
    """
    G = gram.G
    p = G.shape[0]
    diag = np.diag(G).copy()
    # centred norm ~ rounding of the raw norm: a constant column
    usable = diag > 1e-20 * (gram.w @ gram.Z**2)
    used: list[int] = []
    for _ in range(min(k, p)):
        if used:
            sol = np.linalg.lstsq(G[np.ix_(used, used)], np.column_stack([G[used], b[used]]), None)
            sol = sol[0]
            g_res = diag - np.einsum("uj,uj->j", G[used], sol[:, :p])
            b_res = b - G[:, used] @ sol[:, p]
        else:
            g_res, b_res = diag, b
        ok = usable & (g_res > 1e-10 * diag)
        gain = np.where(ok, b_res**2 / np.where(ok, g_res, 1.0), 0.0)
        gain[used] = -np.inf
        best = gain.max()
        used.append(int(np.flatnonzero(gain >= best - 1e-10 * abs(best))[0]))
    return used


def _select(gram: _Gram, yc: np.ndarray, b: np.ndarray, k: int, method: str) -> np.ndarray:
    p = gram.G.shape[0]
    if method == "auto":
        method = "forward_selection" if k <= 6 else "highest_weights"
    if method == "none":
        return np.arange(p)
    if method == "forward_selection":
        return np.array(_forward_selection(gram, b, k), dtype=int)
    if method == "highest_weights":
        coef = _solve(gram.G + 0.01 * np.eye(p), b)  # lime: Ridge(alpha=0.01) on all features
        weighted = np.abs(coef * gram.Z[0])
        return np.argsort(-weighted, kind="stable")[:k]
    from sklearn.linear_model import lars_path  # "lasso_path", as lime

    sw = np.sqrt(gram.w)
    _, _, coefs = lars_path(gram.Zc * sw[:, None], yc * sw, method="lasso", verbose=False)
    nonzero = np.arange(p)
    for i in range(coefs.shape[1] - 1, 0, -1):
        nonzero = coefs[:, i].nonzero()[0]
        if len(nonzero) <= k:
            break
    return np.asarray(nonzero, dtype=int)


def _fit(gram: _Gram, y: np.ndarray, k: int, method: str, alpha: float) -> SurrogateFit:
    w = gram.w
    ybar = float(w @ y) / float(w.sum())
    yc = y - ybar
    b = gram.Zw.T @ yc  # Z_c^T W y_c
    used = _select(gram, yc, b, k, method)
    n_used = len(used)
    A = gram.G[np.ix_(used, used)] + alpha * np.eye(n_used)
    coef = _solve(A, b[used]) if n_used else np.zeros(0)
    resid = yc - gram.Zc[:, used] @ coef
    sse, sst = float(w @ resid**2), float(w @ yc**2)
    score = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)  # sklearn's r2_score
    m = len(y)
    if n_used:
        M = gram.Zw[:, used] * resid[:, None]
        A_inv = np.linalg.pinv(A)
        cov = A_inv @ (M.T @ M) @ A_inv * (m / max(m - n_used - 1, 1))
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    else:
        std = np.zeros(0)
    intercept = ybar - float(gram.zbar[used] @ coef)
    return SurrogateFit(
        used=used,
        coef=coef,
        std=std,
        intercept=intercept,
        score=score,
        local_prediction=intercept + float(gram.Z[0, used] @ coef),
    )


def fit_surrogate(
    Z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    n_features: int,
    feature_selection: str = "auto",
    alpha: float = 1.0,
) -> SurrogateFit:
    """Fit LIME's local surrogate as ``lime.lime_base.LimeBase.explain_instance_with_data``.

    Parameters
    ----------
    Z : ndarray (m, p)
        Interpretable samples (lime's ``neighborhood_data``); row 0 is the explained row.
    y, weights : ndarray (m,)
        Model outputs (one output) and kernel weights of the samples.
    n_features : int
        Features to select (lime's ``num_features``).
    feature_selection : {"auto", "forward_selection", "highest_weights", "lasso_path", "none"}
    alpha : float
        Ridge penalty of the final fit (lime: 1).

    Returns
    -------
    SurrogateFit
        Minimising ``sum_i w_i (y_i - c - z_i . beta)^2 + alpha |beta|^2`` over the selected
        features. With ``A = Z_c^T W Z_c + alpha I`` (``Z_c`` centred by the weighted means) and
        residuals ``r``, ``std = sqrt(diag(A^-1 (sum_i w_i^2 r_i^2 z_ci z_ci^T) A^-1 m / (m-k-1)))``:
        the heteroscedasticity-consistent (HC1 sandwich) standard error of the weighted
        estimate, which stays valid when the linear surrogate is misspecified (it measures the
        sampling noise of the perturbations, not the lack of fit; that is ``score``).
    """
    Z = np.asarray(Z, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.asarray(weights, dtype=float)
    if Z.ndim != 2 or y.shape != (Z.shape[0],) or w.shape != (Z.shape[0],):
        raise InvalidInputError(
            f"fit_surrogate needs Z of shape (m, p) and y, weights of shape (m,); got Z "
            f"{Z.shape}, y {y.shape}, weights {w.shape}. Pass one output column of y."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidInputError(
            "weights must be finite, non-negative and not all zero; pass kernel weights such "
            "as kernel_weights(distances, width)."
        )
    n_features = check_int("n_features", n_features, minimum=1)
    check_in("feature_selection", feature_selection, SELECTIONS)
    return _fit(_Gram(Z, w), y, n_features, feature_selection, float(alpha))


def fit_surrogates(
    Z: np.ndarray,
    Y: np.ndarray,
    width: float,
    n_features: int,
    feature_selection: str = "auto",
    alpha: float = 1.0,
) -> list[SurrogateFit]:
    """One surrogate per output column of ``Y`` (m, k) around sample 0 of ``Z`` (m, p).

    The kernel weights are :func:`kernel_weights` of each sample's Euclidean distance to
    ``Z[0]`` with ``width``; all fits share one weighted Gram matrix and run on one BLAS
    thread (tiny problems: threads only add overhead, and one thread keeps results
    bit-identical across machines and workers).
    """
    with one_blas_thread():
        gram = _Gram(Z, kernel_weights(np.sqrt(((Z - Z[0]) ** 2).sum(axis=1)), width))
        return [
            _fit(gram, Y[:, o], n_features, feature_selection, alpha) for o in range(Y.shape[1])
        ]


# ------------------------------------------------------------------ interpretable space
class InterpretableSpace:
    """The interpretable representation of one background and its perturbation sampler.

    ``masker`` holds the background (lime's training data), ``discretize`` the numeric
    features' representation and ``categorical`` the positions of features compared by
    equality.
    """

    def __init__(self, masker: Masker, discretize: str | None, categorical: set[int]) -> None:
        bg = masker.background
        self.masker = masker
        self.discretize = discretize
        self.frame = isinstance(bg, pd.DataFrame)
        self.names = list(masker.feature_names)
        w = np.asarray(masker.weights, dtype=float)
        self.weights = w
        self.uniform = bool(np.all(w == w[0]))
        p = self.p = len(self.names)
        # a numeric array: one dtype, every column read from one float copy (no Series)
        block = not self.frame and bg.dtype.kind in "iuf"
        cols = (
            []
            if block
            else [bg.iloc[:, j] if self.frame else pd.Series(bg[:, j]) for j in range(p)]
        )
        self.cat = np.array(
            [j in categorical for j in range(p)]
            if block
            else [
                j in categorical
                or not pd.api.types.is_numeric_dtype(s.dtype)
                or pd.api.types.is_bool_dtype(s.dtype)
                for j, s in enumerate(cols)
            ],
            dtype=bool,
        )
        self.cont = np.flatnonzero(~self.cat)
        self.codes = np.zeros((len(w), p), dtype=np.int32)  # category codes / bins
        self.lookup: dict[int, tuple[dict[Any, int], int]] = {}
        self.edges: dict[int, np.ndarray] = {}
        self.bin_names: dict[int, list[str]] = {}
        self.mean, self.std = np.zeros(p), np.ones(p)
        self.is_int = np.zeros(p, dtype=bool)
        V = np.ascontiguousarray(bg.T, dtype=float) if block else None  # (p, n_bg)
        binned_values = []  # (n_bg,) of each binned feature, in column order
        quick = {}  # edges of complete columns, all at once (np.percentile along an axis)
        if V is not None and discretize is not None and self.uniform and len(self.cont):
            full = [j for j in self.cont if not np.isnan(V[j]).any()]
            if full:
                E = np.percentile(V[full], _PERCENTILES[discretize], axis=1)
                quick = {j: np.unique(E[:, i]) for i, j in enumerate(full)}
        for j in range(p):
            s = None if block else cols[j]
            if self.cat[j]:
                s = pd.Series(bg[:, j]) if s is None else s
                codes, uniques = pd.factorize(s.astype(object), use_na_sentinel=False)
                self.codes[:, j] = codes
                na = [i for i, u in enumerate(uniques) if pd.isna(u)]
                self.lookup[j] = (
                    {u: i for i, u in enumerate(uniques) if not pd.isna(u)},
                    na[0] if na else -1,
                )
                continue
            if V is not None:
                self.is_int[j] = bg.dtype.kind in "iu"
                v = V[j]
            else:
                self.is_int[j] = pd.api.types.is_integer_dtype(s.dtype)
                v = s.to_numpy(dtype=float, na_value=np.nan)
            ok = ~np.isnan(v)
            if ok.any():
                self.mean[j] = np.average(v[ok], weights=w[ok])
                sd = float(np.sqrt(np.average((v[ok] - self.mean[j]) ** 2, weights=w[ok])))
                self.std[j] = sd if sd > 0 else 1.0  # as StandardScaler
            if discretize is not None:
                e = quick.get(j)
                if e is None:
                    e = bin_edges(v, discretize, None if self.uniform else w)
                self.edges[j] = e
                self.bin_names[j] = bin_descriptions(self.names[j], e)
                binned_values.append(v)
        # the edges padded with +inf, one row per binned feature: a value's bin is the count
        # of edges below it (np.searchsorted(e, v, side="left")), for all of them at once
        self._binned = np.array(sorted(self.edges), dtype=np.intp)  # ascending: as the loop
        width = max((len(e) for e in self.edges.values()), default=0)
        self._edge_table = np.full((len(self._binned), width), np.inf)
        for i, j in enumerate(self._binned):
            self._edge_table[i, : len(self.edges[j])] = self.edges[j]
        if binned_values:
            self.codes[:, self._binned] = self._bins(np.stack(binned_values)).T

    def _bins(self, values: np.ndarray) -> np.ndarray:
        """Bins (n_binned, n) of values (n_binned, n) of the binned features, -1 for NaN: the
        count of each feature's edges below the value (``np.searchsorted(edges, v)``)."""
        below = np.zeros(values.shape, dtype=np.int32)
        for i in range(self._edge_table.shape[1]):  # one pass per edge: memory stays (n_binned, n)
            below += self._edge_table[:, i : i + 1] < values
        return np.where(np.isnan(values), -1, below)

    def row_values(self, x: Any) -> list[Any]:
        return list(x.iloc[0]) if isinstance(x, pd.DataFrame) else list(np.asarray(x).ravel())

    def x_codes(self, xv: list[Any]) -> np.ndarray:
        """The codes (category / bin) of the explained row's values, (p,)."""
        out = np.full(self.p, -2, dtype=np.int64)
        for j, (table, na) in self.lookup.items():
            v = xv[j]
            try:
                out[j] = na if pd.isna(v) else table.get(v, -2)
            except TypeError:  # unhashable: unseen
                out[j] = -2
        if len(self._binned):
            out[self._binned] = self._bins(np.array([[float(xv[j])] for j in self._binned]))[:, 0]
        return out

    def describe(self, xv: list[Any]) -> list[str]:
        """lime's readable condition of each interpretable feature of ``x``."""
        codes, out = self.x_codes(xv), []
        for j, name in enumerate(self.names):
            if self.cat[j]:
                out.append(f"{name}={xv[j]}")
            elif j in self.edges:
                out.append(f"{name} is missing" if codes[j] < 0 else self.bin_names[j][codes[j]])
            else:
                out.append(name)
        return out

    def sample(self, x: Any, m: int, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
        """``m`` perturbations of ``x``: (model inputs, interpretable matrix (m, p)).

        Row 0 is ``x``. Each other sample takes each feature from an independently drawn
        background row (numeric features without discretisation: a normal draw).
        """
        data, Z = self.sample_batch([x], m, [rng])
        return data, Z[0]

    def sample_batch(
        self, xs: list[Any], m: int, rngs: list[np.random.Generator], compact: bool = False
    ) -> tuple[Any, np.ndarray]:
        """``m`` perturbations of each row of ``xs`` (R rows), drawn from its own generator.

        Returns the model inputs of all rows, stacked (R * m rows: row ``r``'s samples are
        ``r * m : (r + 1) * m``, its sample 0 being ``xs[r]``), and the interpretable samples
        (R, m, p). Row ``r``'s draws come from ``rngs[r]`` alone, in the order of
        :meth:`sample`, so a row's samples do not depend on the rows batched with it. Each
        sample's feature ``j`` is read from background row ``idx[i, j]`` through the flat
        position ``idx[i, j] * p + j``, shared by the interpretable value (a table of
        "background value in x's bin") and the model input (one ``np.take`` each).
        ``compact=True`` with discretisation returns ``Z`` as uint8 (the same 0/1 values in an
        eighth of the memory; float64 otherwise).
        """
        p, n_bg, R = self.p, len(self.weights), len(xs)
        xvs = [self.row_values(x) for x in xs]
        xcodes = [self.x_codes(xv) for xv in xvs]
        cols = np.arange(p)
        numeric = self.discretize is None and len(self.cont)
        Z = np.empty((R, m, p), dtype=np.uint8 if compact and not numeric else float)
        block = self._flat_block()
        data = None if block is None else np.empty((R * m, p), dtype=block.dtype)
        idxs, drawn_rows = [], []
        c = self.cont
        for r, rng in enumerate(rngs):
            if self.uniform:
                idx = rng.integers(0, n_bg, size=(m, p))
            else:
                idx = rng.choice(n_bg, size=(m, p), p=self.weights)
            if block is None:
                idxs.append(idx.copy())
            idx *= p
            idx += cols  # flat positions in the (n_bg, p) tables
            match = (self.codes == xcodes[r]).astype(Z.dtype)  # (n_bg, p): in x's bin?
            # positions are in range by construction: "clip" skips the bounds check
            np.take(match.ravel(), idx, out=Z[r], mode="clip")
            if data is not None:
                np.take(block, idx, out=data[r * m : (r + 1) * m], mode="clip")
            if numeric:
                drawn_rows.append(self._draw_numeric(xvs[r], m, rng, Z[r]))
        Z[:, 0] = 1
        if numeric:
            Z[:, 0, c] = [(d[0] - self.mean[c]) / self.std[c] for d in drawn_rows]
        drawn = np.concatenate(drawn_rows) if numeric else None
        firsts = np.arange(R) * m  # each row's sample 0
        if data is not None:
            if drawn is not None:
                data[:, c] = drawn
            data[firsts] = np.asarray(xvs, dtype=data.dtype)
            if not self.frame:
                return data, Z
            return pd.DataFrame(data, columns=self.masker.background.columns, copy=False), Z
        return self._columns_inputs(np.concatenate(idxs), xvs, firsts, drawn), Z

    def _flat_block(self) -> np.ndarray | None:
        """The background as one contiguous flat array (None: columns of several dtypes)."""
        if not hasattr(self, "_flat"):
            bg = self.masker.background
            block = bg if not self.frame else getattr(self.masker, "_block", None)
            self._flat = None if block is None else np.ascontiguousarray(block).ravel()
        return self._flat

    def _draw_numeric(
        self, xv: list[Any], m: int, rng: np.random.Generator, Zr: np.ndarray
    ) -> np.ndarray:
        """Numeric features without discretisation: normal draws (m, |cont|), as lime's
        ``sample_around_instance=False``; writes their standardised values into ``Zr``."""
        c = self.cont
        x_num = np.array([float(xv[j]) for j in c])
        if np.isnan(x_num).any():
            bad = [self.names[j] for j in c[np.isnan(x_num)]]
            raise InvalidInputError(
                f"the explained row has missing values in numeric features {bad}, which "
                "discretize=None cannot standardise. Use discretize='quartile' (missing "
                "values then form their own bin) or impute them."
            )
        drawn = self.mean[c] + rng.standard_normal((m, len(c))) * self.std[c]
        drawn = np.where(self.is_int[c], np.rint(drawn), drawn)
        drawn[0] = x_num
        Zr[:, c] = (drawn - self.mean[c]) / self.std[c]
        return drawn

    def _columns_inputs(
        self, idx: np.ndarray, xvs: list[list[Any]], firsts: np.ndarray, drawn: np.ndarray | None
    ) -> Any:
        """Model inputs of a background of several dtypes, column by column."""
        out = {}
        where = {j: i for i, j in enumerate(self.cont)}
        for j, col in enumerate(self.masker._columns):  # type: ignore[attr-defined]
            if drawn is not None and j in where:
                arr = drawn[:, where[j]].astype(col.values.dtype, copy=False)
            else:
                arr = col.values[idx[:, j]]
            for r, xv in zip(firsts, xvs, strict=True):
                arr[r] = col.encode(xv[j])
            out[col.name] = col.rebuild(arr)
        return pd.DataFrame(out)


# ------------------------------------------------------------------ SP-LIME
def submodular_pick(W: Any, n_picks: int) -> tuple[list[int], list[float], np.ndarray]:
    """SP-LIME's greedy pick (Ribeiro et al. 2016, Algorithm 2), as ``lime.submodular_pick``.

    ``W`` (n, d) is the explanation matrix (weight of feature ``j`` in row ``i``'s
    explanation). Each of ``n_picks`` (<= n) steps adds the row that most raises the coverage
    ``c(V) = sum_j I_j [exists i in V: W_ij != 0]``, the highest row index on ties (lime's
    ``>=`` over its candidate set). Returns the picked rows in pick order, the coverage after
    each pick (non-decreasing) and the global importance ``I_j = sqrt(sum_i |W_ij|)`` (d,).
    """
    A = np.abs(np.asarray(W, dtype=float))
    if A.ndim != 2 or A.shape[0] == 0 or not np.all(np.isfinite(A)):
        raise InvalidInputError(
            f"W must be a finite 2-D array (n_rows, n_features) with at least one row, got "
            f"shape {A.shape}."
        )
    n = A.shape[0]
    n_picks = check_int("n_picks", n_picks, minimum=1)
    if n_picks > n:
        raise InvalidParameterError(
            f"n_picks={n_picks} is more than the {n} explained rows; pass n_picks <= {n}."
        )
    importance = np.sqrt(A.sum(axis=0))
    present = A > 0
    covered = np.zeros(A.shape[1], dtype=bool)
    left = np.ones(n, dtype=bool)
    picked: list[int] = []
    coverage: list[float] = []
    for _ in range(n_picks):
        cov = np.where(covered | present, importance, 0.0).sum(axis=1)
        cov[~left] = -np.inf
        best = int(np.flatnonzero(cov == cov.max())[-1])
        picked.append(best)
        coverage.append(float(cov[best]))
        covered |= present[best]
        left[best] = False
    return picked, coverage, importance
