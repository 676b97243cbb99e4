"""Global feature importance: permutation importance and mean absolute attribution.

:func:`permutation_importance` (Breiman 2001; Fisher, Rudin & Dominici 2019) measures how much
a score drops when a feature's column (or a group of columns, permuted together with one
permutation) is shuffled across rows: ``importance = score(X) - score(X permuted)``, repeated
``n_repeats`` times. Feature (group) ``g`` draws its permutations from
``numpy.random.default_rng(random_state).spawn(n_players)[g]``, ``n_repeats`` calls of
``permutation(n)``, so results do not depend on ``n_jobs``; ``g`` is the player's position
in the model's fitted column order (X's order for arrays and models fitted without names),
so a DataFrame with its columns in another order gives the same values per name.
``importances_std`` is the standard deviation over repeats (``ddof=0``, as scikit-learn
reports it); ``lower`` and ``upper`` a Student-t confidence interval of the mean.

:func:`global_importance` turns any tabular :class:`~whybox.explanation.Explanation` (SHAP,
LIME, gradients, ...) into the mean absolute attribution per feature, with a bootstrap over
rows: replicate ``b`` draws ``rng.integers(0, n, n)`` with
``rng = numpy.random.default_rng(random_state)`` and averages ``|values|`` over the drawn rows;
``importances_std`` is the standard deviation of the replicates (the bootstrap standard error)
and ``lower`` / ``upper`` their ``(1 -+ confidence) / 2`` quantiles.

References
----------
Breiman, L. (2001). Random forests. Machine Learning 45(1), 5-32.
Fisher, A., Rudin, C. and Dominici, F. (2019). All models are wrong, but many are useful:
learning a variable's importance by studying an entire class of prediction models
simultaneously. Journal of Machine Learning Research 20(177), 1-81.
Lundberg, S. M. et al. (2020). From local explanations to global understanding with
explainable AI for trees. Nature Machine Intelligence 2, 56-67 (mean |SHAP| importance).
Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import (
    as_2d_input,
    check_int,
    check_nonempty,
    check_random_state,
    feature_names_of,
)
from ..errors import InvalidInputError, InvalidParameterError, WhyboxError
from ..games.game import group_matrix
from ..models import _raw_adapter, wrap_model
from ..parallel import map_chunks

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..explanation import Explanation

__all__ = ["FeatureImportance", "global_importance", "permutation_importance"]


@dataclass
class FeatureImportance:
    """Global importance of features (or groups of features).

    Attributes
    ----------
    feature_names : list of str
    importances_mean : ndarray (p,), or (p, k) for several outputs
    importances_std : ndarray like ``importances_mean``
    lower, upper : ndarray like ``importances_mean``, or None
        Confidence interval at level ``confidence``.
    importances : ndarray (p, n_repeats) or None
        Every repeat of permutation importance.
    method : {"permutation", "mean_abs"}
    confidence : float
    baseline_score : float or None
        Score on the unpermuted data (permutation importance).
    scoring : str or None
    output : str or None
        What the importance is of (the Explanation's output / the scored response).
    output_names : list of str or None
        Names of the columns when the arrays have an output axis.
    """

    feature_names: list[str]
    importances_mean: np.ndarray
    importances_std: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    importances: np.ndarray | None
    method: str
    confidence: float
    baseline_score: float | None = None
    scoring: str | None = None
    output: str | None = None
    output_names: list[str] | None = None

    @property
    def multi_output(self) -> bool:
        return self.importances_mean.ndim == 2

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (and output): ``mean``, ``std``, ``lower``, ``upper``."""
        cols = self.output_names if self.multi_output else [None]
        frames = []
        for k, name in enumerate(cols):

            def pick(a: np.ndarray | None, k: int = k) -> Any:
                if a is None:
                    return np.nan
                return a[:, k] if self.multi_output else a

            f = pd.DataFrame(
                {
                    "feature": self.feature_names,
                    "mean": pick(self.importances_mean),
                    "std": pick(self.importances_std),
                    "lower": pick(self.lower),
                    "upper": pick(self.upper),
                }
            )
            if name is not None:
                f.insert(1, "output", name)
            frames.append(f)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def plot(
        self, ax: Axes | None = None, max_display: int = 10, output: Any = None, **kwargs: Any
    ) -> Axes:
        """Horizontal bars, largest first, with error bars; see
        :func:`whybox.viz.effects.plot_importance`."""
        from ..viz.effects import plot_importance
        from .partial_dependence import check_plot_keywords

        check_plot_keywords(kwargs, plot_importance, "FeatureImportance.plot")
        return plot_importance(self, ax=ax, max_display=max_display, output=output, **kwargs)


# ------------------------------------------------------------------ scoring adapters
def _has_sklearn_api(model: Any) -> bool:
    return hasattr(model, "fit") and hasattr(model, "predict")


def _adapter(model: Any, X: Any, target: Any, link: str | None) -> Any:
    """An object with the scikit-learn prediction API over ``wrap_model``'s outputs."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    mf = wrap_model(model, target=target, link="identity" if link is None else link, X=X)
    if mf.kind == "probability" and target is None and link in (None, "identity"):
        full = wrap_model(model, target="all", X=X)
        labels = _raw_adapter(model).output_names or list(range(full.n_outputs))

        class _Classifier(ClassifierMixin, BaseEstimator):
            def fit(self, X: Any, y: Any = None) -> Any:  # pragma: no cover - never refitted
                raise InvalidParameterError("this adapter wraps a fitted model; it cannot fit.")

            def predict_proba(self, X: Any) -> np.ndarray:
                return full(X)

            def predict(self, X: Any) -> np.ndarray:
                return self.classes_[np.argmax(full(X), axis=1)]

        est = _Classifier()
        est.classes_ = np.asarray(labels)
        return est, full.output_description

    class _Regressor(RegressorMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Any:  # pragma: no cover - never refitted
            raise InvalidParameterError("this adapter wraps a fitted model; it cannot fit.")

        def predict(self, X: Any) -> np.ndarray:
            out = mf(X)
            return out[:, 0] if out.shape[1] == 1 else out

    return _Regressor(), mf.output_description


def _scorer(estimator: Any, scoring: Any) -> Any:
    from sklearn.metrics import check_scoring

    if scoring is not None and not isinstance(scoring, str) and not callable(scoring):
        raise InvalidParameterError(
            "scoring must be None (the estimator's default score), a scikit-learn scorer name "
            f"such as 'roc_auc' or 'neg_mean_squared_error', or a callable "
            f"scorer(estimator, X, y) -> float; got {type(scoring).__name__}."
        )
    try:
        return check_scoring(estimator, scoring=scoring)
    except (ValueError, TypeError) as exc:
        from sklearn.metrics import get_scorer_names

        raise InvalidParameterError(
            f"scoring={scoring!r} is not usable ({exc}). Pass one of scikit-learn's scorer "
            f"names (e.g. {', '.join(sorted(get_scorer_names())[:6])}, ...) or a callable "
            "scorer(estimator, X, y) -> float."
        ) from exc


def _streams(mf: Any, X: Any, names: list[str], players: list[str], groups: Any) -> list[int]:
    """Each player's random stream: its position among the players of the model's fitted
    column order, so that reordering X's columns leaves every player's draws unchanged."""
    if not isinstance(X, pd.DataFrame) or mf.feature_names_in is None:
        return list(range(len(players)))
    order, _ = mf._column_order([str(c) for c in X.columns])
    canonical, _ = group_matrix([names[j] for j in order], groups)
    return [canonical.index(g) for g in players]


def _same(X: Any) -> Any:
    return X


def _permuted(X: Any, cols: np.ndarray, perm: np.ndarray) -> Any:
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        for c in cols:
            out.isetitem(int(c), X.iloc[:, int(c)].iloc[perm].set_axis(X.index))
        return out
    out = np.array(X, copy=True)
    out[:, cols] = np.asarray(X)[perm][:, cols]
    return out


def _score(scorer: Any, est: Any, X: Any, y: Any) -> float:
    try:
        return float(scorer(est, X, y))
    except WhyboxError:
        raise
    except Exception as exc:
        from ..errors import ModelCallError

        raise ModelCallError(
            f"scoring the model raised {type(exc).__name__}: {exc}. Check that scoring suits "
            "the model (e.g. 'roc_auc' needs predict_proba or decision_function) and that y "
            "matches its outputs."
        ) from exc


# ------------------------------------------------------------------ permutation importance
def permutation_importance(
    model: Any,
    X: Any,
    y: Any,
    *,
    scoring: Any = None,
    n_repeats: int = 5,
    groups: Mapping[str, Sequence[str]] | None = None,
    target: Any = None,
    link: str | None = None,
    confidence: float = 0.95,
    random_state: Any = 0,
    n_jobs: int | None = None,
    client: Any = None,
) -> FeatureImportance:
    """Permutation importance of every feature (or group of features).

    Parameters
    ----------
    model : object
        A fitted scikit-learn-API estimator (scored directly), or any model
        :func:`whybox.wrap_model` accepts (scored through an adapter: a classifier with
        ``predict_proba`` for probability outputs, else a regressor over the selected output).
    X : DataFrame or array (n, p)
        A DataFrame's columns are matched to the model's fitted feature names by name, in
        any order (LightGBM's renaming of spaces to underscores included); results are in X's
        order under X's names. An array is positional (the model's order). Missing values
        go to the model as they are (for models that handle NaN, e.g. XGBoost, LightGBM,
        HistGradientBoosting; other models refuse them with their own error).
    y : array (n,) or (n, k)
        True targets.
    scoring : None, str or callable
        None: the estimator's ``score`` (accuracy for classifiers, R^2 for regressors); a
        scikit-learn scorer name; or ``scorer(estimator, X, y) -> float`` (higher is better).
    n_repeats : int, default 5
    groups : mapping of group name to column names, optional
        Columns permuted together; ungrouped columns stay single features.
    target, link
        Output selection (models scored through the adapter): a class label or index
        (``"0"`` for the label 0), a list of them, or ``"all"``; class 0 of a binary margin
        model is the negated margin. One target for all rows: a per-row array is refused.
    confidence : float, default 0.95
    random_state : int, Generator or None
    n_jobs : int or None
        Worker processes over features (results do not depend on it).
    client : distributed.Client, optional
        Evaluate the model partition by partition on this Dask cluster (a Dask DataFrame or
        Array as ``X`` selects the default client by itself); bit-identical to the serial
        result.

    Returns
    -------
    FeatureImportance
        ``importances`` has shape (n_features_or_groups, n_repeats); ``importances_mean``,
        ``importances_std``, ``lower`` and ``upper`` shape (n_features_or_groups,);
        ``baseline_score`` the score on the unpermuted data.

    Raises
    ------
    InvalidParameterError
        For a bad ``n_repeats``, ``confidence`` or ``scoring``, or a per-row ``target``.
    InvalidInputError
        For an empty X, duplicated or missing columns, or a ``y`` of another length.
    ModelCallError
        If the model or the scorer raises.

    References
    ----------
    Breiman, L. (2001). Random forests. Machine Learning 45(1).
    Fisher, A., Rudin, C. and Dominici, F. (2019). All models are wrong, but many are
    useful. Journal of Machine Learning Research 20(177).

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> imp = wb.permutation_importance(model, X, y, n_repeats=3, random_state=0)
    >>> imp.importances.shape, round(imp.baseline_score, 3)  # baseline: R^2 on X
    ((10, 3), 0.518)
    >>> bool((imp.importances_mean >= imp.lower).all())
    True
    """
    from .._dask_explain import is_dask_collection
    from .._validation import check_unique_columns
    from .partial_dependence import check_global_target

    if client is not None or is_dask_collection(X):
        from .._dask_inspect import permutation_importance_dask

        target = check_global_target(target, "permutation_importance")
        return permutation_importance_dask(
            sys.modules[__name__],
            model,
            X,
            y,
            client=client,
            scoring=scoring,
            n_repeats=n_repeats,
            groups=groups,
            target=target,
            link=link,
            confidence=confidence,
            random_state=random_state,
        )
    n_repeats = check_int("n_repeats", n_repeats, minimum=1)
    confidence = _check_confidence(confidence)
    target = check_global_target(target, "permutation_importance")
    X = as_2d_input(X)
    check_nonempty(X)
    check_unique_columns(X)
    n = len(X)
    y_arr = np.asarray(y)
    if y_arr.ndim == 0 or y_arr.shape[0] != n:
        raise InvalidInputError(
            f"y has {0 if y_arr.ndim == 0 else y_arr.shape[0]} entries but X has {n} rows; "
            "pass one target per row of X."
        )
    if _has_sklearn_api(model) and target is None and link is None:
        est, output = model, None
        # scored directly: the estimator gets its columns in its fitted order and names
        mf = wrap_model(model)
        scored = mf._to_model
    else:
        est, output = _adapter(model, X, target, link)
        mf = wrap_model(model, target="all", X=X)
        scored = _same
    mf.prepare(X)  # missing / unexpected columns: an error listing them

    scorer = _scorer(est, scoring)
    names = feature_names_of(X)
    players, membership = group_matrix(names, groups)
    baseline = _score(scorer, est, scored(X), y)
    spawned = check_random_state(random_state).spawn(len(players))
    rngs = [spawned[g] for g in _streams(mf, X, names, players, groups)]

    def work(start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, n_repeats))
        for g in range(start, stop):
            cols = np.flatnonzero(membership[g])
            for r in range(n_repeats):
                perm = rngs[g].permutation(n)
                Xp = scored(_permuted(X, cols, perm))
                out[g - start, r] = baseline - _score(scorer, est, Xp, y)
        return out

    parts = map_chunks(work, len(players), backend="processes", n_jobs=n_jobs, chunk_size=1)
    imp = np.concatenate(parts) if parts else np.empty((0, n_repeats))
    mean, std = imp.mean(axis=1), imp.std(axis=1)
    lower = upper = None
    if n_repeats > 1:
        from scipy.stats import t

        half = t.ppf((1 + confidence) / 2, n_repeats - 1) * imp.std(axis=1, ddof=1)
        half /= np.sqrt(n_repeats)
        lower, upper = mean - half, mean + half
    return FeatureImportance(
        feature_names=players,
        importances_mean=mean,
        importances_std=std,
        lower=lower,
        upper=upper,
        importances=imp,
        method="permutation",
        confidence=confidence,
        baseline_score=baseline,
        scoring=scoring if isinstance(scoring, str) else (None if scoring is None else "custom"),
        output=output,
    )


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise InvalidParameterError(f"confidence must be a number in (0, 1), got {confidence!r}.")
    if not 0 < float(confidence) < 1:
        raise InvalidParameterError(f"confidence must be in (0, 1), got {confidence}.")
    return float(confidence)


# ------------------------------------------------------------------ attribution importance
def global_importance(
    exp: Explanation,
    *,
    output: Any = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    random_state: Any = 0,
) -> FeatureImportance:
    """Mean absolute attribution per feature of a tabular Explanation, with a bootstrap CI.

    Parameters
    ----------
    exp : Explanation
        Any tabular Explanation (values of shape (n, p) or (n, p, k)).
    output : None, str or int
        With several outputs: the output to keep (name or index); None keeps all of them
        (arrays of shape (p, k)).
    confidence : float, default 0.95
        Level of the confidence interval.
    n_bootstrap : int, default 1000
        Bootstrap replicates over rows; 0 gives the normal-approximation interval from the
        standard error ``std(|values|, ddof=1) / sqrt(n)``.
    random_state : int, Generator or None, default 0
        Seeds the bootstrap.

    Returns
    -------
    FeatureImportance
        ``importances_mean`` (the mean of ``|values|`` over rows), ``importances_std``,
        ``lower`` and ``upper``, each of shape (p,), or (p, k) for several outputs.

    Raises
    ------
    InvalidParameterError
        If ``exp`` is not a tabular Explanation, for an unknown ``output``, or a bad
        ``confidence`` or ``n_bootstrap``.

    References
    ----------
    Lundberg, S. M. et al. (2020). From local explanations to global understanding with
    explainable AI for trees. Nature Machine Intelligence 2.
    Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> exp = wb.explain(model, X.iloc[:100], background=X)
    >>> imp = wb.global_importance(exp, n_bootstrap=200)
    >>> imp.importances_mean.shape
    (10,)
    >>> bool(np.allclose(imp.importances_mean, np.abs(exp.values).mean(axis=0)))
    True
    """
    from ..explanation import Explanation

    if not isinstance(exp, Explanation):
        raise InvalidParameterError(
            f"global_importance needs a whybox Explanation, got {type(exp).__name__}. Explain "
            "the rows first, e.g. exp = wb.explain(model, X)."
        )
    if not exp.is_tabular:
        raise InvalidParameterError(
            "global_importance needs a tabular Explanation (one flat feature axis, the same "
            "features in every row); this one is "
            + ("ragged." if exp.is_ragged else f"of feature shape {exp.feature_shape}.")
        )
    confidence = _check_confidence(confidence)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    V = np.abs(np.asarray(exp.values, dtype=float))
    out_names = list(exp.output_names) if exp.output_names else None
    desc = exp.params.get("output") if isinstance(exp.params, dict) else None
    if exp.multi_output and output is not None:
        k = _output_index(output, out_names or [], exp.n_outputs)
        V = V[:, :, k]
        desc = f"{desc}: {out_names[k]}" if desc and out_names else desc
        out_names = None
    elif not exp.multi_output:
        if output is not None and output not in (0, -1) and output not in (out_names or []):
            raise InvalidParameterError(
                f"output={output!r} does not match this Explanation, which explains a single "
                "output. Leave output=None."
            )
        out_names = None
    n = V.shape[0]
    mean = V.mean(axis=0)
    if n_bootstrap:
        rng = check_random_state(random_state)
        reps = np.empty((n_bootstrap, *mean.shape))
        for b in range(n_bootstrap):
            w = np.bincount(rng.integers(0, n, n), minlength=n) / n
            reps[b] = np.tensordot(w, V, axes=1)
        std = reps.std(axis=0, ddof=1) if n_bootstrap > 1 else np.zeros_like(mean)
        a = (1 - confidence) / 2
        lower, upper = np.quantile(reps, a, axis=0), np.quantile(reps, 1 - a, axis=0)
    else:
        from scipy.stats import norm

        std = V.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
        z = norm.ppf((1 + confidence) / 2)
        lower, upper = mean - z * std, mean + z * std
    return FeatureImportance(
        feature_names=list(exp.feature_names),
        importances_mean=mean,
        importances_std=std,
        lower=lower,
        upper=upper,
        importances=None,
        method="mean_abs",
        confidence=confidence,
        output=desc,
        output_names=out_names,
    )


def _output_index(output: Any, names: list[str], k: int) -> int:
    if isinstance(output, str) and output in names:
        return names.index(output)
    if isinstance(output, numbers.Integral) and not isinstance(output, bool) and -k <= output < k:
        return int(output) % k
    raise InvalidParameterError(
        f"output={output!r} is not one of this Explanation's outputs {names}; pass a name or "
        f"an index between 0 and {k - 1}, or None for all of them."
    )
