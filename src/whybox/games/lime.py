"""LIME: local weighted sparse linear surrogates, and SP-LIME's submodular pick.

A row ``x`` is perturbed in an interpretable space, the model is called on the perturbations,
and a weighted ridge regression on a few interpretable features is fitted locally
(Ribeiro et al. 2016). This module follows lime's ``LimeTabularExplainer`` so that lime users
get the numbers they expect:

* interpretable features: with ``discretize="quartile"`` (lime's default) or ``"decile"``,
  a numeric feature is 1 when the perturbed value falls in the same bin as ``x``'s (bins from
  the background's percentiles), a categorical one when it equals ``x``'s category; without
  discretisation a numeric feature is its standardised value;
* perturbations: each feature independently takes the value of a random background row (the
  empirical marginal: bins then occur with their training frequencies, as in lime, and values
  inside a bin follow the data instead of lime's truncated normal, so integer and bounded
  features stay valid); without discretisation numeric features are drawn from a normal with
  the background's mean and standard deviation, as lime does; the first sample is ``x``;
* kernel ``sqrt(exp(-d^2 / width^2))`` on the Euclidean distance in interpretable space,
  ``width = 0.75 sqrt(p)`` by default;
* feature selection ``"auto"``, ``"forward_selection"``, ``"highest_weights"``,
  ``"lasso_path"``, ``"none"`` with lime's semantics, then a ridge fit (``alpha = 1``) on the
  selected features; its weighted R^2 is the local fidelity.

Unlike lime it is seeded per row (identical output for identical ``random_state``, whatever
the batch or backend), calls the model once per row, and solves every regression of the
forward selection from one weighted Gram matrix instead of refitting scikit-learn models.

References
----------
Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in, check_int
from ..errors import InvalidParameterError
from ..explainer import TabularGameExplainer
from ..explanation import Explanation
from ..parallel import row_generator
from .maskers import Masker

__all__ = ["Lime", "SubmodularPick", "fit_surrogate", "kernel_weights", "submodular_pick"]

SELECTIONS = ("auto", "forward_selection", "highest_weights", "lasso_path", "none")
DISCRETIZERS = ("quartile", "decile", None)


def kernel_weights(distances: np.ndarray, width: float) -> np.ndarray:
    """lime's default kernel: ``sqrt(exp(-d^2 / width^2))``."""
    return np.sqrt(np.exp(-(np.asarray(distances) ** 2) / width**2))


def _weighted_fit(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, cols: list[int], alpha: float
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Weighted ridge with intercept on columns ``cols``: (coef, intercept, R^2, cov)."""
    sw = w.sum()
    zbar = (w @ Z[:, cols]) / sw if cols else np.zeros(0)
    ybar = float(w @ y) / sw
    Zc = Z[:, cols] - zbar
    yc = y - ybar
    G = (Zc * w[:, None]).T @ Zc
    A = G + alpha * np.eye(len(cols))
    coef = np.linalg.solve(A, (Zc * w[:, None]).T @ yc) if cols else np.zeros(0)
    resid = yc - Zc @ coef
    sse = float(w @ resid**2)
    sst = float(w @ yc**2)
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    dof = max(sw - len(cols) - 1, 1.0)
    sigma2 = sse / dof
    Ainv = np.linalg.inv(A) if cols else np.zeros((0, 0))
    cov = sigma2 * Ainv @ G @ Ainv if cols else np.zeros((0, 0))
    return coef, ybar - float(zbar @ coef), r2, cov


def _forward_selection(Z: np.ndarray, y: np.ndarray, w: np.ndarray, k: int) -> list[int]:
    """lime's forward selection: repeatedly add the feature that most raises the weighted
    R^2 of an unregularised fit (ties to the lowest index, as lime's loop does).

    All candidates of a step are scored at once from the weighted Gram matrix: after
    projecting out the chosen features, adding ``f`` raises the explained sum of squares by
    ``b_f^2 / G_ff`` of the residual Gram matrix (a Schur complement).
    """
    sw = w.sum()
    Zc = Z - (w @ Z) / sw
    yc = y - (w @ y) / sw
    G = (Zc * w[:, None]).T @ Zc
    b = (Zc * w[:, None]).T @ yc
    used: list[int] = []
    p = Z.shape[1]
    for _ in range(min(k, p)):
        if used:
            Guu = G[np.ix_(used, used)]
            sol = np.linalg.lstsq(Guu, np.column_stack([G[used, :], b[used]]), rcond=None)[0]
            G_res = np.diag(G) - np.einsum("uj,uj->j", G[used, :], sol[:, :p])
            b_res = b - G[:, used] @ sol[:, p]
        else:
            G_res, b_res = np.diag(G).copy(), b.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(
                G_res > 1e-12 * max(1.0, float(np.max(np.diag(G)))), b_res**2 / G_res, -np.inf
            )
        gain[used] = -np.inf
        used.append(int(np.argmax(gain)))
    return used


def _select(Z: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, method: str) -> list[int]:
    p = Z.shape[1]
    if method == "none":
        return list(range(p))
    if method == "auto":
        method = "forward_selection" if k <= 6 else "highest_weights"
    if method == "forward_selection":
        return _forward_selection(Z, y, w, k)
    if method == "highest_weights":
        coef, _, _, _ = _weighted_fit(Z, y, w, list(range(p)), 0.01)
        weighted = coef * Z[0]
        order = sorted(range(p), key=lambda j: np.abs(weighted[j]), reverse=True)
        return order[:k]
    from sklearn.linear_model import lars_path

    zbar = np.average(Z, axis=0, weights=w)
    ybar = np.average(y, weights=w)
    wd = (Z - zbar) * np.sqrt(w[:, None])
    wl = (y - ybar) * np.sqrt(w)
    _, _, coefs = lars_path(wd, wl, method="lasso", verbose=False)
    nonzero = np.arange(p)
    for i in range(coefs.shape[1] - 1, 0, -1):
        nonzero = coefs[:, i].nonzero()[0]
        if len(nonzero) <= k:
            break
    return [int(j) for j in nonzero]


def fit_surrogate(
    Z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    n_features: int,
    feature_selection: str = "auto",
    alpha: float = 1.0,
) -> dict[str, Any]:
    """Fit LIME's local surrogate on interpretable samples, as lime's ``LimeBase``.

    Parameters
    ----------
    Z : ndarray (m, p)
        Interpretable samples, row 0 the explained row.
    y : ndarray (m,)
        Model outputs for the samples.
    weights : ndarray (m,)
        Kernel weights.

    Returns
    -------
    dict
        ``used`` (selected feature indices in order), ``coef`` (m_used,), ``intercept``,
        ``score`` (weighted R^2), ``local_prediction``, ``std`` (coefficient standard
        errors from weighted least squares).
    """
    used = _select(Z, y, weights, n_features, feature_selection)
    coef, intercept, r2, cov = _weighted_fit(Z, y, weights, used, alpha)
    return {
        "used": used,
        "coef": coef,
        "intercept": intercept,
        "score": r2,
        "local_prediction": intercept + float(Z[0, used] @ coef),
        "std": np.sqrt(np.maximum(np.diag(cov), 0.0)),
    }


class _Space:
    """The interpretable representation and the sampler of one background."""

    def __init__(self, masker: Masker, discretize: str | None, categorical: list[int]) -> None:
        bg = masker.background
        self.frame = isinstance(bg, pd.DataFrame)
        self.masker = masker
        self.columns = (
            [bg[c] for c in bg.columns]
            if self.frame
            else [pd.Series(bg[:, j]) for j in range(bg.shape[1])]
        )
        self.p = len(self.columns)
        self.categorical = set(categorical)
        for j, s in enumerate(self.columns):
            if not (
                pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
            ):
                self.categorical.add(j)
        self.discretize = discretize
        w = masker.weights
        self.edges: dict[int, np.ndarray] = {}
        self.mean = np.zeros(self.p)
        self.std = np.ones(self.p)
        q = {"quartile": [25, 50, 75], "decile": list(range(10, 100, 10))}.get(discretize or "")
        for j, s in enumerate(self.columns):
            if j in self.categorical:
                continue
            v = s.to_numpy(dtype=float, na_value=np.nan)
            self.mean[j] = np.average(v, weights=w)
            sd = np.sqrt(np.average((v - self.mean[j]) ** 2, weights=w))
            self.std[j] = sd if sd > 0 else 1.0
            if q is not None:
                self.edges[j] = np.unique(np.percentile(v, q))
        self.uniform = bool(np.allclose(w, w[0]))
        # the bin of every background value, so samples need no search
        self.bins = {
            j: np.searchsorted(e, self.columns[j].to_numpy(dtype=float), side="left")
            for j, e in self.edges.items()
        }

    def interpretable_column(self, j: int, v: np.ndarray, xv: Any) -> np.ndarray:
        """Interpretable values (m,) of sampled values ``v`` of feature ``j`` against ``xv``."""
        if j in self.categorical:
            return (pd.Series(v).astype(object).to_numpy() == xv).astype(float)
        if self.discretize is not None:
            e = self.edges[j]
            return (
                np.searchsorted(e, v.astype(float), side="left")
                == np.searchsorted(e, float(xv), side="left")
            ).astype(float)
        return (v.astype(float) - self.mean[j]) / self.std[j]

    def sample(self, x: Any, m: int, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
        """``m`` samples (model inputs, interpretable matrix); sample 0 is ``x``."""
        w = self.masker.weights
        n_bg = len(w)
        x_vals = list(x.iloc[0]) if isinstance(x, pd.DataFrame) else list(np.asarray(x))
        if self.uniform:
            idx = rng.integers(0, n_bg, size=(m, self.p))
        else:
            idx = rng.choice(n_bg, size=(m, self.p), p=w)
        cols = []
        Zi = np.empty((m, self.p))
        for j, s in enumerate(self.columns):
            if j not in self.categorical and self.discretize is None:
                v = rng.normal(self.mean[j], self.std[j], size=m)
            else:
                v = s.to_numpy()[idx[:, j]].copy()
            v[0] = x_vals[j]
            cols.append(v)
            if j in self.bins:
                xb = np.searchsorted(self.edges[j], float(x_vals[j]), side="left")
                Zi[:, j] = self.bins[j][idx[:, j]] == xb
                Zi[0, j] = 1.0
            else:
                Zi[:, j] = self.interpretable_column(j, v, x_vals[j])
        if self.frame:
            bg = self.masker.background
            data = pd.DataFrame(
                {c: pd.Series(v).astype(bg[c].dtype) for c, v in zip(bg.columns, cols, strict=True)}
            )
        else:
            data = np.column_stack(cols).astype(float)
        return data, Zi


class Lime(TabularGameExplainer):
    """LIME for tabular models, seeded and fast, faithful to lime's defaults.

    Parameters
    ----------
    model, background, link, random_state, allow_nan, n_jobs, backend, client, chunk_size
        See :class:`whybox.explainer.TabularGameExplainer`; the background plays lime's
        training data (its rows are the marginals perturbations are drawn from).
    n_features : int
        Features in each explanation (lime's ``num_features``).
    kernel_width : float, optional
        Default ``0.75 sqrt(p)``.
    discretize : {"quartile", "decile", None}
    feature_selection : {"auto", "forward_selection", "highest_weights", "lasso_path", "none"}
    ridge_alpha : float
        Regularisation of the final surrogate (lime's ``Ridge(alpha=1)``).
    categorical_features : list of int or str, optional
        Numeric columns to treat as categorical (non-numeric columns always are).

    Notes
    -----
    ``.explain(X, budget=5000, target=None, link=None)``: ``budget`` perturbations per row.
    ``exp.values`` holds the surrogate's coefficient times ``x``'s interpretable value for
    the selected features (0 elsewhere), ``exp.base_values`` its intercept, ``exp.std`` the
    coefficients' standard errors, ``exp.meta["fidelity"]`` the weighted R^2 per row.
    """

    method = "lime"

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        n_features: int = 10,
        kernel_width: float | None = None,
        discretize: str | None = "quartile",
        feature_selection: str = "auto",
        ridge_alpha: float = 1.0,
        categorical_features: list[Any] | None = None,
        max_background: int = 100_000,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("groups"):
            raise InvalidParameterError("Lime does not take groups=; explain features.")
        super().__init__(model, background, max_background=max_background, **kwargs)
        self.n_features = check_int("n_features", n_features, minimum=1)
        if kernel_width is not None and not (np.isfinite(kernel_width) and kernel_width > 0):
            raise InvalidParameterError(
                f"kernel_width must be a positive number, got {kernel_width!r}."
            )
        self.kernel_width = kernel_width
        self.discretize = check_in("discretize", discretize, DISCRETIZERS)
        self.feature_selection = check_in("feature_selection", feature_selection, SELECTIONS)
        if not ridge_alpha >= 0:
            raise InvalidParameterError(f"ridge_alpha must be >= 0, got {ridge_alpha!r}.")
        self.ridge_alpha = float(ridge_alpha)
        self.categorical_features = list(categorical_features or [])

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        budget = kwargs.get("budget", 5000)
        minimum = self.n_features + 2
        check_int("budget", budget, minimum=1)
        if budget < minimum:
            raise InvalidParameterError(
                f"budget={budget} is below the minimum of {minimum} samples LIME needs to fit "
                f"{self.n_features} features and an intercept; pass budget >= {minimum} "
                "(lime's default is 5000)."
            )

    def _explain_row(
        self, fn: Any, masker: Masker, x: Any, kwargs: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        space = self._space(masker)
        budget = int(kwargs.get("budget", 5000))
        rng = row_generator(self.random_state, x)
        data, Zi = space.sample(x, budget, rng)
        y = fn(data)  # (m, k)
        width = self.kernel_width or 0.75 * np.sqrt(space.p)
        d = np.sqrt(((Zi - Zi[0]) ** 2).sum(axis=1))
        w = kernel_weights(d, width)
        k = y.shape[1]
        values = np.zeros((space.p, k))
        std = np.zeros((space.p, k))
        intercept = np.zeros(k)
        info: dict[str, Any] = {"fidelity": [], "local_prediction": [], "n_evals": budget}
        for o in range(k):
            fit = fit_surrogate(
                Zi, y[:, o], w, self.n_features, self.feature_selection, self.ridge_alpha
            )
            used = fit["used"]
            values[used, o] = fit["coef"] * Zi[0, used]
            std[used, o] = fit["std"] * np.abs(Zi[0, used])
            intercept[o] = fit["intercept"]
            info["fidelity"].append(fit["score"])
            info["local_prediction"].append(fit["local_prediction"])
        return values, intercept, std, info

    def _space(self, masker: Masker) -> _Space:
        cached = getattr(self, "_space_cache", None)
        if cached is not None and cached[0] is masker:
            return cached[1]
        cats = []
        names = masker.feature_names
        for c in self.categorical_features:
            cats.append(names.index(str(c)) if not isinstance(c, (int, np.integer)) else int(c))
        space = _Space(masker, self.discretize, cats)
        self._space_cache = (masker, space)
        return space

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_space_cache", None)
        return state

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "estimator": "LIME (weighted ridge surrogate)",
            "budget": int(kwargs.get("budget", 5000)),
            "n_features": self.n_features,
            "kernel_width": self.kernel_width,
            "discretize": self.discretize,
            "feature_selection": self.feature_selection,
            "ridge_alpha": self.ridge_alpha,
        }

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        fid = [i["fidelity"] for i in infos]
        return {
            "fidelity": [f[0] if len(f) == 1 else f for f in fid],
            "local_prediction": [
                i["local_prediction"][0]
                if len(i["local_prediction"]) == 1
                else i["local_prediction"]
                for i in infos
            ],
        }


def submodular_pick(W: np.ndarray, n_picks: int) -> tuple[list[int], list[float], np.ndarray]:
    """SP-LIME's greedy pick (Ribeiro et al. 2016, Algorithm 2).

    Parameters
    ----------
    W : ndarray (n, p)
        Explanation weights of each row.
    n_picks : int

    Returns
    -------
    picked : list of row indices, in pick order
    coverage : coverage after each pick
    importance : ndarray (p,) the global importance ``sqrt(sum_i |W_ij|)``
    """
    W = np.abs(np.asarray(W, dtype=float))
    importance = np.sqrt(W.sum(axis=0))
    picked: list[int] = []
    coverage: list[float] = []
    covered = np.zeros(W.shape[1], dtype=bool)
    remaining = list(range(W.shape[0]))
    for _ in range(min(n_picks, W.shape[0])):
        best, best_cov = remaining[0], -1.0
        for i in remaining:
            cov = float(importance[covered | (W[i] > 0)].sum())
            if cov > best_cov:
                best, best_cov = i, cov
        picked.append(best)
        remaining.remove(best)
        covered |= W[best] > 0
        coverage.append(best_cov)
    return picked, coverage, importance


class SubmodularPick(Lime):
    """SP-LIME: explain every row with LIME, then pick a few that cover the important
    features (Ribeiro et al. 2016, Algorithm 2).

    ``.explain(X, n_picks=5, budget=5000, target=None)`` returns the Explanation of the
    picked rows in pick order, with ``meta["picked_indices"]``, ``meta["coverage"]`` and
    ``meta["global_importance"]``.
    """

    method = "sp_lime"

    def explain(self, X: Any, *, n_picks: int = 5, **kwargs: Any) -> Explanation:
        exp = super().explain(X, **kwargs)
        if exp.multi_output:
            raise InvalidParameterError(
                f"SP-LIME picks rows for one output; this model has {exp.output_names}: "
                "pass target= to choose one."
            )
        n_picks = check_int("n_picks", n_picks, minimum=1)
        if n_picks > exp.n_rows:
            raise InvalidParameterError(
                f"n_picks={n_picks} is more than the {exp.n_rows} rows given; pass at most "
                f"{exp.n_rows}."
            )
        picked, coverage, importance = submodular_pick(exp.values, n_picks)
        out = exp[picked]
        out.meta.update(
            picked_indices=picked,
            coverage=coverage,
            global_importance=importance.tolist(),
        )
        return out
