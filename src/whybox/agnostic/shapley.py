"""Shapley-value explainers of any model: exact enumeration and permutation sampling.

:class:`ExactShap` and :class:`PermutationShap` apply :func:`whybox.games.shapley.exact_shapley`
and :func:`whybox.games.shapley.permutation_shapley` to the interventional game of each
explained row (:class:`~whybox.games.game.TabularGame`) or image
(:class:`~whybox.games.image.ImageGame`). :class:`SamplingShapExplainer` is the shared base of
the sampling explainers (this one and :class:`whybox.agnostic.kernel.KernelShap`).

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.

Castro, J., Gomez, D. and Tejada, J. (2009). Polynomial calculation of the Shapley value
based on sampling. Computers & Operations Research 36(5).

Mitchell, R., Cooper, J., Frank, E. and Holmes, G. (2022). Sampling permutations for Shapley
value estimation. JMLR 23(43).

Witter, R. T., Liu, Y. and Musco, C. (2025). Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values. arXiv:2506.11849.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from ..explainer import ProgressFn
from ..explanation import Explanation
from ..games._regression_adjusted import adjusted_permutation_shapley, check_surrogate
from ..games.game import TabularGame
from ..games.shapley import (
    MAX_EXACT_PLAYERS,
    _check_budget,
    default_budget,
    exact_shapley,
    permutation_min_budget,
    permutation_shapley,
)
from ._base import TabularGameExplainer

__all__ = ["ExactShap", "PermutationShap", "SamplingShapExplainer"]


class ExactShap(TabularGameExplainer):
    """Interventional Shapley values of any model, exactly, for up to ~16 features.

    Every coalition of features (or feature groups) is evaluated against the background,
    all coalitions of a row going to the model in as few calls as the memory bound allows.
    Efficiency holds to rounding: ``exp.completeness_gap()`` is ~1e-15.

    Parameters
    ----------
    model : object
        Any model ``whybox.models.wrap_model`` supports.
    background : DataFrame, array, Masker or ImageMasker
        Rows that stand for the data: absent features take their values (e.g.
        ``X_train.sample(100, random_state=0)``), ``wb.Baseline(value)`` for a fixed
        reference, or ``wb.kmeans(X_train, k)`` for a weighted summary. Required. An
        ``ImageMasker`` explains images, its segments being the players.
    groups : mapping, optional
        Feature groups explained as single players, e.g. ``{"address": ["zip", "city"]}``.
    max_background : int, optional
        Background rows to keep (default: all); fewer are sampled with ``random_state`` and
        a warning gives the effect on the base value.
    link : {"identity", "logit"}, default "identity"
        Default output scale; ``.explain(link=...)`` overrides it.
    random_state : int or None, default 0
        Seed of the background sample.
    allow_nan : bool, default False
        Accept NaN in X and background, for models that handle missing values themselves.
    chunk_bytes : int
        Memory bound of one batch of model inputs.
    n_jobs : int or None
        Worker processes for ``backend="processes"``; above 1 alone selects that backend.
    backend : {"serial", "processes", "dask"}, default "serial"
        Where rows are explained; results are bit-identical whichever is used.
    client : dask.distributed.Client, optional
        Cluster for ``backend="dask"``; a client alone selects the Dask backend.
    chunk_size : int, optional
        Rows per task sent to a worker (default: an even split over the workers).

    Raises
    ------
    InvalidParameterError
        Without ``background``, or with more players than enumeration allows (use
        ``groups=`` or :class:`whybox.KernelShap`).

    Examples
    --------
    Every coalition of the 10 diabetes features is evaluated; the values add up to the
    prediction minus the background's mean prediction:

    >>> from sklearn.ensemble import RandomForestRegressor
    >>> X, y = wb.zoo.diabetes()
    >>> model = RandomForestRegressor(n_estimators=20, max_depth=4, random_state=0).fit(X, y)
    >>> exp = wb.ExactShap(model, background=X.iloc[:25]).explain(X.iloc[100:103])
    >>> exp.values.shape
    (3, 10)
    >>> bool(np.allclose(exp.values.sum(1) + exp.base_values, model.predict(X.iloc[100:103])))
    True

    References
    ----------
    Shapley (1953); Lundberg and Lee (2017), NeurIPS.
    """

    method = "exact"

    def explain(
        self,
        X: Any,
        *,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Exact Shapley values of each row of ``X`` (or image, with an ImageMasker).

        ``target``, ``link`` and ``progress`` are as
        :meth:`whybox.agnostic._base.TabularGameExplainer.explain`; no other keyword is read
        (``groups=`` belongs to the constructor; nothing is sampled, so there is no budget).
        """
        self._check_keywords(kwargs)
        return self._run(X, target=target, link=link, progress=progress, options={})

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        check_int("number of players", n_players, minimum=1)
        if n_players > MAX_EXACT_PLAYERS:
            raise InvalidParameterError(
                f"ExactShap enumerates all 2**n coalitions and refuses more than "
                f"{MAX_EXACT_PLAYERS} players; this problem has {n_players}. Use KernelShap or "
                "PermutationShap (sampling estimators with standard errors), or pass groups= to "
                "explain groups of features as single players."
            )

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        phi, v_empty, _ = exact_shapley(game)
        return phi, v_empty, np.zeros_like(phi), {}  # exact: no sampling error

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {"estimator": "exact enumeration of all coalitions"}


class SamplingShapExplainer(TabularGameExplainer):
    """Shared machinery of the sampling Shapley explainers (budget, tolerance, errors).

    Subclasses set ``estimator`` (``(game, rng, budget=, tolerance=) -> (phi, std, v_empty,
    info)``), ``min_budget`` (players -> fewest coalitions) and ``description``.
    """

    estimator: ClassVar[Callable[..., Any]]
    min_budget: ClassVar[Callable[[int], int]]
    description: ClassVar[str] = ""
    precision_parameter = "budget= (or tolerance=)"

    def explain(
        self,
        X: Any,
        *,
        budget: int | None = None,
        tolerance: float | None = None,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Shapley values of each row of ``X`` (or image, with an ImageMasker), sampled.

        Parameters
        ----------
        X : DataFrame, array (n, p), or images with an ImageMasker
        budget : int, optional
            Coalitions evaluated per row (default ``2 n + 2048``, shap's ``nsamples`` /
            ``max_evals``).
        tolerance : float, optional
            Stop early once the largest standard error is below this.
        target, link, progress
            As :meth:`whybox.agnostic._base.TabularGameExplainer.explain`.
        """
        self._check_keywords(kwargs)
        options = {"budget": budget, "tolerance": tolerance}
        return self._run(X, target=target, link=link, progress=progress, options=options)

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        budget = kwargs.get("budget")
        if budget is not None:
            _check_budget(budget, type(self).min_budget(n_players), n_players, type(self).__name__)

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        phi, std, v0, info = type(self).estimator(
            game, rng, budget=kwargs.get("budget"), tolerance=kwargs.get("tolerance")
        )
        return phi, v0, std, info

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "estimator": self.description,
            "budget": kwargs.get("budget"),
            "tolerance": kwargs.get("tolerance"),
        }

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [k for k in (infos[0] if infos else {}) if k != "n_evals"]
        return {k: [i.get(k) for i in infos] for k in keys}


class PermutationShap(SamplingShapExplainer):
    """Interventional Shapley values by antithetic permutation sampling, with standard errors.

    Efficiency holds exactly whatever the budget; ``exp.std`` holds standard errors and
    ``.explain(X, tolerance=...)`` stops early once the largest is below the tolerance.

    Parameters
    ----------
    model : object
        Any model ``whybox.models.wrap_model`` supports.
    background : DataFrame, array or Masker
        Rows whose values absent features take (required), as for :class:`whybox.ExactShap`.
    surrogate : {"none", "auto", "tree", "linear", "kernel"}
        Regression-adjusted Monte Carlo (Witter, Liu and Musco 2025): a surrogate game fitted
        with cross-fitting to the coalitions of the sampled chains (linear, small boosted
        trees, or ``"kernel"``: product-kernel ridge regression), its Shapley values exact,
        the permutations estimating only the residual game. Exactly unbiased and efficient;
        ``"auto"`` keeps, per row, whichever of none, linear and tree has the smallest
        estimated variance (``exp.meta["surrogate"]``). Default ``"none"``: plain antithetic
        sampling (the adjusted standard errors, from few permutation pairs, cover a little
        less than nominal). With ``tolerance=`` the plain sequential estimator runs (the
        adjustment needs the whole sample).
    **kwargs
        ``groups``, ``max_background``, ``link``, ``random_state``, ``allow_nan``,
        ``chunk_bytes``, ``n_jobs``, ``backend``, ``client``, ``chunk_size``: as for
        :class:`whybox.ExactShap`.

    Notes
    -----
    ``.explain(X, budget=None, tolerance=None, target=None, link=None)``: ``budget`` is the
    number of coalitions per row (default ``2 n + 2048``).

    Examples
    --------
    Sampled values land near the exact ones, within a few of their standard errors, and
    still add up exactly:

    >>> from sklearn.ensemble import RandomForestRegressor
    >>> X, y = wb.zoo.diabetes()
    >>> model = RandomForestRegressor(n_estimators=20, max_depth=4, random_state=0).fit(X, y)
    >>> bg, rows = X.iloc[:25], X.iloc[100:102]
    >>> exact = wb.ExactShap(model, background=bg).explain(rows)
    >>> exp = wb.PermutationShap(model, background=bg, random_state=0).explain(rows, budget=400)
    >>> bool((np.abs(exp.values - exact.values) <= 5 * exp.std + 1e-9).all())
    True
    >>> bool(np.allclose(exp.values.sum(1), exact.values.sum(1)))
    True

    References
    ----------
    Castro et al. (2009); Mitchell et al. (2022), JMLR 23(43); Witter, Liu and Musco (2025),
    arXiv:2506.11849.
    """

    method = "permutation"
    estimator = staticmethod(permutation_shapley)
    min_budget = staticmethod(permutation_min_budget)
    description = "antithetic permutation sampling"

    def __init__(
        self, model: Any, background: Any = None, *, surrogate: str = "none", **kwargs: Any
    ):
        super().__init__(model, background, **kwargs)
        self.surrogate = check_surrogate(surrogate)

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        if self.surrogate == "none" or kwargs.get("tolerance") is not None or game.n_players < 3:
            return super()._estimate(game, rng, **kwargs)
        n = game.n_players
        budget = kwargs.get("budget")
        budget = default_budget(n) if budget is None else budget
        _check_budget(budget, permutation_min_budget(n), n, "PermutationShap")
        phi, std, v0, info = adjusted_permutation_shapley(
            game, rng, budget=budget, surrogate=self.surrogate
        )
        return phi, v0, std, info

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {**super()._params(**kwargs), "surrogate": self.surrogate}
