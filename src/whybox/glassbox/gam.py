"""Explainable boosting machines: GA2M models by cyclic boosting, as scikit-learn estimators.

An explainable boosting machine (EBM) is a generalised additive model with pairwise
interactions, ``g(E[y]) = b + sum_j f_j(x_j) + sum_(a,c) f_ac(x_a, x_c)``, whose shape
functions are piecewise constant on bins and learnt by cyclic gradient boosting of shallow
trees, one feature at a time, with a small learning rate and outer bagging; the pairs are
chosen by FAST. Because the model *is* its terms, the local explanation is exact: each term's
contribution is read off its table, and they add up to the decision function.

Pipeline (one module per step):

* :mod:`._ebm_binning` -- quantile bins per numeric feature (``max_bins``, and coarser
  ``max_interaction_bins`` for pairs), one bin per category, a missing bin, an unseen bin;
* :mod:`._ebm_boost` -- numba kernels: histograms, trees on bins, cyclic boosting per bag;
* :mod:`._ebm_fast` -- FAST ranking of all pairs on the main-effects residuals;
* :mod:`._ebm_fit` -- bags (seeded stratified train / validation splits with early
  stopping), the two stages, centring and bag averaging;
* :mod:`._ebm_multi`, :mod:`._ebm_multi_pairs`, :mod:`._ebm_fit_multi` -- the same for
  k > 2 classes: softmax boosting of one score per class and bin, trees whose cuts all classes
  share (the pair stage's kernels in :mod:`._ebm_multi_pairs`);
* :mod:`._ebm_purify` -- pair terms purified into the mains and the intercept;
* :mod:`._ebm_weights` -- ``sample_weight`` checks (rows of weight 0 dropped);
* :mod:`._ebm_terms` -- the global explanation (shape functions with bagging error bars);
* :mod:`._ebm_input`, :mod:`._ebm_targets` -- input checks and ``target=`` selection.

The defaults mirror interpret's ``ExplainableBoostingClassifier`` / ``Regressor`` (0.7):
1024 bins, 64 interaction bins, 14 outer bags, 15 % validation rows, learning rate 0.015
(0.04 for regression), two-leaf trees, ``interactions="3x"`` (``"5x"`` for regression: three
(five) times as many pairs as features, chosen by FAST). Unlike interpret, every step is
cyclic (no greedy rounds) and pair terms are purified (:mod:`._ebm_purify`, Lengerich et al.
2020): every pair has zero weighted row and column means, its marginal mass moved into the
main terms and the intercept, predictions unchanged.

References
----------
Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals of
Statistics 29(5).

Lengerich, B., Tan, S., Chang, C.-H., Hooker, G. and Caruana, R. (2020). Purifying Interaction
Effects with the Functional ANOVA. AISTATS.

Lou, Y., Caruana, R. and Gehrke, J. (2012). Intelligible models for classification and
regression. KDD.

Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
pairwise interactions. KDD.

Nori, H., Jenkins, S., Koch, P. and Caruana, R. (2019). InterpretML: A Unified Framework for
Machine Learning Interpretability. arXiv:1909.09223.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_int
from ..errors import InvalidInputError, InvalidParameterError
from ..explanation import ROW_KEYS, Explanation
from ._ebm_binning import FeatureBins, bin_matrix, fit_feature_bins, is_categorical_column
from ._ebm_boost import LOGLOSS, SQUARED
from ._ebm_fit import BoostSettings, FittedTerms, fit_ebm
from ._ebm_fit_multi import fit_ebm_multi
from ._ebm_input import (
    _align_by_name,
    _as_table,
    _as_target,
    _check_feature_names,
    _check_real,
    _column,
    _feature_index,
    _n_jobs,
)
from ._ebm_purify import purify_terms
from ._ebm_targets import _plain, _resolve_ebm_target, ebm_outputs
from ._ebm_terms import EBMGlobal, EBMTerm, avg_weight_importance
from ._ebm_weights import check_sample_weight

__all__ = ["ExplainableBoostingClassifier", "ExplainableBoostingRegressor"]


class _EBMBase(BaseEstimator):
    """Shared fit / predict / explain of both EBM estimators."""

    _objective: int = SQUARED

    def __init__(
        self,
        *,
        max_bins: int = 1024,
        max_interaction_bins: int = 64,
        interactions: int | float | str | Sequence[Sequence[int | str]] = "3x",
        categorical_features: str | Sequence[int | str] | None = "auto",
        validation_size: int | float = 0.15,
        outer_bags: int = 14,
        learning_rate: float = 0.015,
        max_rounds: int = 50000,
        early_stopping_rounds: int = 100,
        early_stopping_tolerance: float = 1e-5,
        smoothing_rounds: int = 75,
        interaction_smoothing_rounds: int = 75,
        min_samples_leaf: int = 4,
        min_hessian: float = 1e-4,
        reg_lambda: float = 0.0,
        max_leaves: int = 2,
        cat_smooth: float = 10.0,
        n_jobs: int | None = None,
        random_state: int | None = 42,
    ) -> None:
        self.max_bins = max_bins
        self.max_interaction_bins = max_interaction_bins
        self.interactions = interactions
        self.categorical_features = categorical_features
        self.validation_size = validation_size
        self.outer_bags = outer_bags
        self.learning_rate = learning_rate
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.early_stopping_tolerance = early_stopping_tolerance
        self.smoothing_rounds = smoothing_rounds
        self.interaction_smoothing_rounds = interaction_smoothing_rounds
        self.min_samples_leaf = min_samples_leaf
        self.min_hessian = min_hessian
        self.reg_lambda = reg_lambda
        self.max_leaves = max_leaves
        self.cat_smooth = cat_smooth
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ---------------------------------------------------------------- sklearn tags
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"allow_nan": True}

    # ---------------------------------------------------------------- parameters
    def _settings(self, names: list[str]) -> BoostSettings:
        p = len(names)
        check_int("max_bins", self.max_bins, minimum=3)
        check_int("max_interaction_bins", self.max_interaction_bins, minimum=3)
        bags = check_int("outer_bags", self.outer_bags, minimum=1)
        _check_real("learning_rate", self.learning_rate, low=0.0, low_open=True)
        rounds = check_int("max_rounds", self.max_rounds, minimum=1)
        es = check_int("early_stopping_rounds", self.early_stopping_rounds, minimum=0)
        tol = _check_real("early_stopping_tolerance", self.early_stopping_tolerance)
        sm = check_int("smoothing_rounds", self.smoothing_rounds, minimum=0)
        ism = check_int("interaction_smoothing_rounds", self.interaction_smoothing_rounds, minimum=0)  # fmt: skip
        leaf = check_int("min_samples_leaf", self.min_samples_leaf, minimum=1)
        mh = _check_real("min_hessian", self.min_hessian, low=0.0)
        lam = _check_real("reg_lambda", self.reg_lambda, low=0.0)
        leaves = check_int("max_leaves", self.max_leaves, minimum=2)
        cs = _check_real("cat_smooth", self.cat_smooth, low=0.0)
        vs = self.validation_size
        if isinstance(vs, bool) or not isinstance(vs, numbers.Real) or not math.isfinite(vs) or vs < 0:  # fmt: skip
            raise InvalidParameterError(
                f"validation_size must be a fraction in [0, 1) or a count of rows >= 1, got "
                f"{vs!r}. Use 0 to turn off early stopping."
            )
        if vs >= 1 and float(vs) != int(vs):
            raise InvalidParameterError(
                f"validation_size={vs!r}: from 1 on it is a count of rows and must be an integer."
            )
        n_pairs, explicit = self._parse_interactions(names)
        return BoostSettings(
            objective=self._objective,
            learning_rate=float(self.learning_rate),
            max_leaves=leaves,
            min_samples_leaf=leaf,
            min_hessian=mh,
            reg_lambda=lam,
            cat_smooth=cs,
            max_rounds=rounds,
            early_stopping_rounds=es,
            early_stopping_tolerance=tol,
            smoothing_rounds=sm,
            interaction_smoothing_rounds=ism,
            validation_size=float(vs),
            outer_bags=bags,
            n_interactions=min(n_pairs, p * (p - 1) // 2),
            explicit_pairs=explicit,
            n_jobs=_n_jobs(self.n_jobs, bags),
        )

    def _parse_interactions(self, names: list[str]) -> tuple[int, list[tuple[int, int]] | None]:
        inter = self.interactions
        p = len(names)
        what = (
            'interactions must be a count >= 0, a fraction in (0, 1) of the number of features, '
            'a string like "3x" (three times as many pairs as features), or a list of feature '
            f"pairs; got {inter!r}."
        )  # fmt: skip
        if inter is None:
            return 0, None
        if isinstance(inter, bool):
            raise InvalidParameterError(what)
        if isinstance(inter, numbers.Integral):
            if inter < 0:
                raise InvalidParameterError(what)
            return int(inter), None
        if isinstance(inter, numbers.Real):
            if not 0 <= inter < 1:
                raise InvalidParameterError(what)
            return math.ceil(p * float(inter)), None
        if isinstance(inter, str):
            s = inter.strip().lower()
            try:
                mult = float(s[:-1]) if s.endswith("x") else float("nan")
            except ValueError:
                mult = float("nan")
            if not math.isfinite(mult) or mult < 0:
                raise InvalidParameterError(what)
            return math.ceil(p * mult), None
        pairs: list[tuple[int, int]] = []
        for item in inter:
            if isinstance(item, str) or len(item) != 2:
                raise InvalidParameterError(
                    f"each explicit interaction must be a pair of two features, got {item!r}."
                )
            a, c = (_feature_index(f, names, "interactions") for f in item)
            if a == c:
                raise InvalidParameterError(
                    f"interaction {item!r} pairs a feature with itself; give two features."
                )
            key = (min(a, c), max(a, c))
            if key not in pairs:
                pairs.append(key)
        return len(pairs), pairs

    def _categorical_mask(self, X: np.ndarray | pd.DataFrame, names: list[str]) -> np.ndarray:
        cf = self.categorical_features
        auto = np.array([is_categorical_column(_column(X, j)) for j in range(len(names))])
        if cf is None or (isinstance(cf, str) and cf == "auto"):
            return auto
        if isinstance(cf, str):
            raise InvalidParameterError(
                f"categorical_features must be 'auto', None, a list of feature names or indices "
                f"or a boolean mask, got {cf!r}."
            )
        arr = np.asarray(cf)
        if arr.dtype == bool:
            if arr.shape != (len(names),):
                raise InvalidParameterError(
                    f"a boolean categorical_features mask must have one entry per feature "
                    f"({len(names)}), got shape {arr.shape}."
                )
            return auto | arr
        mask = auto.copy()
        for f in cf:
            mask[_feature_index(f, names, "categorical_features")] = True
        return mask

    # ---------------------------------------------------------------- fit
    def _weighted_rows(
        self, X: Any, y: np.ndarray, sample_weight: Any
    ) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """(X, y, weights) without the rows of weight zero; weights None when not given."""
        X = _as_table(X)
        if y.shape[0] != X.shape[0]:
            raise InvalidInputError(
                f"X has {X.shape[0]} rows but y has {y.shape[0]} entries; pass one target per row."
            )
        w = check_sample_weight(sample_weight, X.shape[0])
        if w is None or (w > 0).all():
            return X, y, w
        keep = w > 0
        X = X.iloc[np.flatnonzero(keep)] if isinstance(X, pd.DataFrame) else X[keep]
        return X, y[keep], w[keep]

    def _fit(
        self, X: Any, y: np.ndarray, sample_weight: np.ndarray | None = None, n_classes: int = 2
    ) -> None:
        X = _as_table(X)
        _check_feature_names(self, X, reset=True)
        names = (
            [str(c) for c in self.feature_names_in_]
            if hasattr(self, "feature_names_in_")
            else [f"x{j}" for j in range(X.shape[1])]
        )
        if y.shape[0] != X.shape[0]:
            raise InvalidInputError(
                f"X has {X.shape[0]} rows but y has {y.shape[0]} entries; pass one target per row."
            )
        settings = self._settings(names)
        is_cat = self._categorical_mask(X, names)
        specs = [
            fit_feature_bins(
                _column(X, j),
                names[j],
                categorical=bool(is_cat[j]),
                max_bins=int(self.max_bins),
                max_interaction_bins=int(self.max_interaction_bins),
            )
            for j in range(len(names))
        ]
        B = bin_matrix(X, specs)
        P = bin_matrix(X, specs, interaction=True)
        nbins = np.array([s.n_bins() for s in specs], dtype=np.int64)
        nbins_int = np.array([s.n_bins(interaction=True) for s in specs], dtype=np.int64)
        if n_classes > 2:
            fitted = fit_ebm_multi(
                B, P, y.astype(np.int64), n_classes, nbins, nbins_int, is_cat, settings,
                self.random_state, sample_weight,
            )  # fmt: skip
        else:
            fitted = fit_ebm(
                B, P, y, nbins, nbins_int, is_cat, settings, self.random_state, sample_weight
            )
        self._store(specs, names, purify_terms(fitted, specs))

    def _store(self, specs: list[FeatureBins], names: list[str], f: FittedTerms) -> None:
        self.bins_ = specs
        self.feature_types_in_ = [s.kind for s in specs]
        self.term_features_ = [(j,) for j in range(len(specs))] + [tuple(pr) for pr in f.pairs]
        self.term_names_ = list(names) + [f"{names[a]} & {names[c]}" for a, c in f.pairs]
        self.term_scores_ = [*f.main_scores, *f.pair_scores]
        self.standard_deviations_ = [*f.main_std, *f.pair_std]
        self.bagged_scores_ = [*f.bagged_main_scores, *f.bagged_pair_scores]
        self.bin_weights_ = [*f.main_weights, *f.pair_weights]
        self.intercept_ = f.intercept
        self.bagged_intercept_ = f.bagged_intercept
        self.best_iteration_ = f.best_iteration

    # ---------------------------------------------------------------- predict
    def _check_X(self, X: Any) -> np.ndarray | pd.DataFrame:
        check_is_fitted(self, "term_scores_")
        X = _as_table(X)
        X = _align_by_name(self, X)
        _check_feature_names(self, X, reset=False)
        return X

    def _contributions(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        B = bin_matrix(X, self.bins_)
        P = bin_matrix(X, self.bins_, interaction=True) if len(self.term_features_) > len(self.bins_) else None  # fmt: skip
        # (n, n_terms), or (n, n_terms, k) for a multiclass model (one score per class)
        out = np.empty((B.shape[0], len(self.term_features_), *self.term_scores_[0].shape[1:]))
        for t, feats in enumerate(self.term_features_):
            sc = self.term_scores_[t]
            if len(feats) == 1:
                out[:, t] = sc[B[:, feats[0]]]
            else:
                out[:, t] = sc[P[:, feats[0]], P[:, feats[1]]]  # type: ignore[index]
        return out

    def _decision(self, X: Any) -> np.ndarray:
        contributions = self._contributions(self._check_X(X))
        return self.intercept_ + contributions.sum(axis=1)

    def term_contributions(self, X: Any) -> np.ndarray:
        """Per-term contributions of each row, shape (n, n_terms), in ``term_names_`` order."""
        return self._contributions(self._check_X(X))

    # ---------------------------------------------------------------- explain
    def _output_name(self) -> str:
        return "prediction"

    def _output_labels(self) -> list[Any]:
        """What ``target=`` picks from: the class labels, or ``["prediction"]``."""
        return ["prediction"]

    def _describe(self, j: int) -> str:
        return "prediction"

    def explain_local(self, X: Any, target: Any = None) -> Explanation:
        """Exact local explanation: each term's contribution to the decision function.

        DataFrame columns are matched to the fitted feature names (any order); an array is
        read by position.

        Parameters
        ----------
        X : DataFrame or array (n, p)
        target : None, label, index, list, "all" or a 1-D array of length n
            The classifier explains the log-odds of ``classes_[1]`` by default; class 0 (by
            label, index or the string of its label) is the negated log-odds, so its terms
            are the negated terms. A list (or ``"all"``) explains several classes (a trailing
            output axis); a 1-D array, Series or tensor of length n gives one class per row
            (``output_names == ["per-example target"]``, the names in
            ``params["target"]`` and ``meta["targets"]``). The regressor has one output,
            ``"prediction"`` (target None, 0 or ``"prediction"``).

        Returns
        -------
        Explanation
            ``values`` (n, n_terms) with pair terms named ``"a & b"``, ``base_values`` the
            intercept, ``predictions`` the decision function (log-odds for the classifier);
            ``values.sum(axis=1) + base_values == predictions`` to rounding.
            ``data`` holds the rows with one column per term: the feature values for main
            terms and NaN for pair terms (a pair has no single value).

        Raises
        ------
        InvalidParameterError
            For a target that is not a class (listing the classes) or a per-row target
            whose length is not n.
        """
        Xc = self._check_X(X)
        raw = self._contributions(Xc)
        order = self._user_term_order(X, Xc)
        term_names = [self.term_names_[t] for t in order]
        raw = raw[:, order]
        if order != list(range(len(order))):
            Xc = X  # the caller's column order (main terms follow it; pairs stay last)
        n = raw.shape[0]
        labels = self._output_labels()
        if target is None and raw.ndim == 3:
            target = "all"  # a multiclass model explains every class by default
        picks, kind = _resolve_ebm_target(target, labels, n)
        values, base = ebm_outputs(raw, self.intercept_, picks, kind, len(labels))
        names = [str(_plain(labels[j])) for j in picks]
        params: dict[str, Any] = {"terms": [list(map(int, t)) for t in self.term_features_]}
        meta: dict[str, Any] | None = None
        if kind == "single":
            output_names: list[str] | None = names
            params["output"] = self._describe(picks[0])
        elif kind == "several":
            output_names = names
            params["output"] = "; ".join(self._describe(j) for j in picks)
        else:  # one target per row
            output_names = ["per-example target"]
            params["output"] = "per-example target: " + "; ".join(
                self._describe(j) for j in sorted(set(picks))
            )
            params["target"] = names
            meta = {"targets": list(names), ROW_KEYS: ["targets"]}
        return Explanation(
            values,
            base,
            data=self._term_data(Xc),
            feature_names=term_names,
            output_names=output_names,
            predictions=base + values.sum(axis=1),
            method="ebm",
            params=params,
            n_evals=1,
            meta=meta,
        )

    def _user_term_order(self, X: Any, aligned: Any) -> list[int]:
        """Term indices in the caller's order: the main terms of a DataFrame whose columns
        came in another order than at fit time follow the caller's columns (values come back
        under the caller's order, as every whybox explainer returns them); pairs stay last."""
        n_terms = len(self.term_features_)
        if not isinstance(X, pd.DataFrame) or aligned is X:
            return list(range(n_terms))
        fitted = [str(c) for c in aligned.columns]
        main = {feats[0]: t for t, feats in enumerate(self.term_features_) if len(feats) == 1}
        pos = {c: j for j, c in enumerate(fitted)}
        firsts = [main[pos[str(c)]] for c in X.columns if pos[str(c)] in main]
        rest = [t for t in range(n_terms) if t not in set(firsts)]
        return firsts + rest

    def _term_data(self, X: np.ndarray | pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """The explained rows with one column per term: the features, then NaN per pair."""
        pair_names = self.term_names_[len(self.bins_) :]
        if not pair_names:
            return X
        if isinstance(X, pd.DataFrame):
            pad = pd.DataFrame(np.nan, index=X.index, columns=pair_names)
            return pd.concat([X, pad], axis=1)
        if X.dtype.kind in "biuf":
            return np.column_stack(
                [X.astype(float), np.full((X.shape[0], len(pair_names)), np.nan)]
            )
        pad_obj = np.full((X.shape[0], len(pair_names)), None, dtype=object)
        return np.column_stack([X.astype(object), pad_obj])

    def explain_global(self) -> EBMGlobal:
        """Per-term shape functions with bagging error bars; see :class:`EBMGlobal`."""
        check_is_fitted(self, "term_scores_")
        terms = []
        for t, feats in enumerate(self.term_features_):
            inter = len(feats) == 2
            specs = [self.bins_[j] for j in feats]
            terms.append(
                EBMTerm(
                    name=self.term_names_[t],
                    features=tuple(s.name for s in specs),
                    kinds=tuple(s.kind for s in specs),
                    bin_labels=tuple(s.bin_labels(interaction=inter) for s in specs),
                    cuts=tuple(s.interaction_cuts if inter else s.cuts for s in specs),
                    scores=self.term_scores_[t],
                    std=self.standard_deviations_[t],
                    weights=self.bin_weights_[t],
                )
            )
        return EBMGlobal(self.intercept_, terms, self._output_name())

    def term_importances(self) -> np.ndarray:
        """Mean absolute contribution of each term over the training rows, shape (n_terms,).

        interpret's "avg_weight" importance: the (sample-)weighted mean over the training
        rows of the term's absolute score, for a multiclass model averaged over classes.
        """
        check_is_fitted(self, "term_scores_")
        pairs = zip(self.term_scores_, self.bin_weights_, strict=True)
        return np.array([avg_weight_importance(sc, w) for sc, w in pairs])


class ExplainableBoostingClassifier(ClassifierMixin, _EBMBase):
    """Explainable boosting machine for classification: binary (log-loss on the log-odds) or
    multiclass (softmax boosting of one score per class and bin; Friedman 2001).

    Parameters
    ----------
    max_bins : int, default=1024
        Largest number of bins per numeric feature for the main terms, counting the missing
        and unseen bins (as interpret counts them).
    max_interaction_bins : int, default=64
        The same for pair terms.
    interactions : int, float, str or list of pairs, default="3x"
        Pairs to add after the main terms: a count, a fraction of the number of features,
        ``"<k>x"`` for ``ceil(k * n_features)`` pairs chosen by FAST, or explicit pairs of
        feature names or indices. 0 gives a pure additive model.
    categorical_features : "auto", None, list or bool mask, default="auto"
        Features to treat as nominal. "auto" picks pandas categorical, object and string
        columns; a list adds the named (or indexed) features to those.
    validation_size : float or int, default=0.15
        Fraction (or count) of each bag's rows held out for early stopping; 0 disables it.
    outer_bags : int, default=14
        Bags; the final scores are their mean and the error bars their standard deviation.
    learning_rate : float, default=0.015
    max_rounds : int, default=50000
        Most rounds per stage (one round boosts every term once).
    early_stopping_rounds : int, default=100
        Stop a stage after this many rounds without a validation improvement (0: never).
        With more than two classes the pair stage follows interpret's window rule: no
        stopping during the smoothing rounds, then stop when the lowest validation loss of
        the last ``early_stopping_rounds`` rounds is not below the lowest before them by more
        than the tolerance; the round with the lowest validation loss is kept.
    early_stopping_tolerance : float, default=1e-5
        Relative validation-loss improvement that counts as progress.
    smoothing_rounds, interaction_smoothing_rounds : int, default=75
        First rounds of each stage whose cuts are drawn at random (smoother shapes).
    min_samples_leaf : int, default=4
    min_hessian : float, default=1e-4
    reg_lambda : float, default=0.0
        L2 penalty on leaf values.
    max_leaves : int, default=2
        Leaves per main-term tree.
    cat_smooth : float, default=10.0
        Added to the hessian when ordering categories by gradient ratio.
    n_jobs : int or None, default=None
        Threads over bags; None or -1 uses all cores. Results do not depend on it.
    random_state : int or None, default=42
        Seeds the bags and the smoothing rounds.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when fitted on a DataFrame
    term_names_, term_features_ : lists, one entry per term
    term_scores_, standard_deviations_, bin_weights_ : lists of arrays, one per term
    bagged_scores_ : list of arrays of shape ``(outer_bags, *bins)``
    intercept_ : float, or ndarray of shape (k,) with k > 2 classes
        With k > 2 classes every ``term_scores_`` array has a trailing class axis (k,),
        ``decision_function`` gives (n, k) logits and ``explain_local`` explains every class
        by default (values (n, n_terms, k)).
    bins_ : list of FeatureBins
    best_iteration_ : ndarray of shape (2, outer_bags)

    References
    ----------
    Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
    pairwise interactions. KDD.

    Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals
    of Statistics 29(5).

    Examples
    --------
    Three wine cultivars: every term carries one score per class.

    >>> X, y = wb.zoo.wine()
    >>> ebm = wb.ExplainableBoostingClassifier(outer_bags=2, interactions=2).fit(X, y)
    >>> ebm.predict_proba(X).shape, len(ebm.term_names_)  # 13 mains + 2 pairs
    ((178, 3), 15)
    >>> ebm.explain_local(X.iloc[:5]).values.shape  # rows x terms x classes
    (5, 15, 3)
    >>> bool((ebm.predict(X) == y).mean() > 0.9)
    True
    """

    _objective = LOGLOSS

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ExplainableBoostingClassifier:
        """Fit on X (n, p) and class labels y (n,) (two classes or more).

        ``sample_weight`` (n,): non-negative weights, a row of weight w counting w times
        (rows of weight 0 are dropped); None weighs every row 1.
        """
        from sklearn.utils.multiclass import check_classification_targets

        X, yv, w = self._weighted_rows(X, _as_target(y), sample_weight)
        try:
            check_classification_targets(yv)
        except ValueError as exc:
            raise InvalidInputError(
                f"{exc}. ExplainableBoostingClassifier needs class labels; for a numeric "
                "target use ExplainableBoostingRegressor."
            ) from exc
        if pd.isna(yv).any():
            raise InvalidInputError("y contains missing labels; drop or label those rows first.")
        classes, codes = np.unique(yv, return_inverse=True)
        if classes.size < 2:
            raise InvalidInputError(
                f"y has only one class ({classes.tolist()!r}); a classifier needs two classes "
                "to learn from. Check the labels or the rows selected."
            )
        if classes.size > 2:
            counts = np.bincount(codes, minlength=classes.size)
            if counts.min() < 2:
                few = [_plain(c) for c in classes[counts < 2]]
                raise InvalidInputError(
                    f"class(es) {few!r} of y have a single row; a multiclass EBM needs at "
                    "least two rows per class (each bag keeps one for training and stratifies "
                    "its validation rows by class). Add rows of those classes, or drop them "
                    "(or give those rows sample_weight=0)."
                )
        self.classes_ = classes
        self._fit(X, codes.astype(float), w, n_classes=classes.size)
        return self

    def _output_name(self) -> str:
        if len(self.classes_) > 2:
            return "softmax scores (logits) of the classes " + ", ".join(map(str, self._output_labels()))  # fmt: skip
        return self._describe(1)

    def _output_labels(self) -> list[Any]:
        return [_plain(c) for c in self.classes_]

    def _describe(self, j: int) -> str:
        label = _plain(self.classes_[j])
        if len(self.classes_) > 2:
            return f"softmax score (logit) of class {label}"
        if j == 1:
            return f"log-odds of class {label}"
        return f"log-odds of class {label} (negated margin: the log-odds of class 1 times -1)"

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of ``classes_[1]``, shape (n,); with k > 2 classes the softmax scores
        (logits) of every class, shape (n, k)."""
        return self._decision(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, k) (k = 2 for a binary model)."""
        f = self._decision(X)
        if f.ndim == 2:
            z = np.exp(f - f.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        p1 = 1.0 / (1.0 + np.exp(-f))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, shape (n,)."""
        f = self._decision(X)
        if f.ndim == 2:
            return self.classes_[np.argmax(f, axis=1)]
        return self.classes_[(f > 0).astype(int)]


class ExplainableBoostingRegressor(RegressorMixin, _EBMBase):
    """Explainable boosting machine for regression (squared error).

    Parameters are those of :class:`ExplainableBoostingClassifier`, with interpret's
    regression defaults where they differ.

    Parameters
    ----------
    interactions : int, float, str or list of pairs, default="5x"
        Pairs to add after the main terms (as for the classifier).
    learning_rate : float, default=0.04
    smoothing_rounds : int, default=500
    interaction_smoothing_rounds : int, default=100
        First rounds of each stage whose cuts are drawn at random.
    min_hessian : float, default=0.0
    max_bins, max_interaction_bins, categorical_features, validation_size, outer_bags : see classifier
        As for :class:`ExplainableBoostingClassifier`.
    max_rounds, early_stopping_rounds, early_stopping_tolerance, min_samples_leaf : see classifier
        As for :class:`ExplainableBoostingClassifier`.
    reg_lambda, max_leaves, cat_smooth, n_jobs, random_state : see classifier
        As for :class:`ExplainableBoostingClassifier`.

    References
    ----------
    Lou, Y., Caruana, R., Gehrke, J. and Hooker, G. (2013). Accurate intelligible models with
    pairwise interactions. KDD.

    Examples
    --------
    >>> X, y = wb.zoo.diabetes()
    >>> ebm = wb.ExplainableBoostingRegressor(outer_bags=2, interactions=1).fit(X, y)
    >>> len(ebm.term_names_), ebm.predict(X).shape  # 10 mains + 1 pair
    (11, (442,))
    >>> e = ebm.explain_local(X.iloc[:3])  # terms add up to the prediction
    >>> bool(np.allclose(e.values.sum(axis=1) + e.base_values, ebm.predict(X.iloc[:3])))
    True
    """

    _objective = SQUARED

    def __init__(
        self,
        *,
        max_bins: int = 1024,
        max_interaction_bins: int = 64,
        interactions: int | float | str | Sequence[Sequence[int | str]] = "5x",
        categorical_features: str | Sequence[int | str] | None = "auto",
        validation_size: int | float = 0.15,
        outer_bags: int = 14,
        learning_rate: float = 0.04,
        max_rounds: int = 50000,
        early_stopping_rounds: int = 100,
        early_stopping_tolerance: float = 1e-5,
        smoothing_rounds: int = 500,
        interaction_smoothing_rounds: int = 100,
        min_samples_leaf: int = 4,
        min_hessian: float = 0.0,
        reg_lambda: float = 0.0,
        max_leaves: int = 2,
        cat_smooth: float = 10.0,
        n_jobs: int | None = None,
        random_state: int | None = 42,
    ) -> None:
        super().__init__(
            max_bins=max_bins,
            max_interaction_bins=max_interaction_bins,
            interactions=interactions,
            categorical_features=categorical_features,
            validation_size=validation_size,
            outer_bags=outer_bags,
            learning_rate=learning_rate,
            max_rounds=max_rounds,
            early_stopping_rounds=early_stopping_rounds,
            early_stopping_tolerance=early_stopping_tolerance,
            smoothing_rounds=smoothing_rounds,
            interaction_smoothing_rounds=interaction_smoothing_rounds,
            min_samples_leaf=min_samples_leaf,
            min_hessian=min_hessian,
            reg_lambda=reg_lambda,
            max_leaves=max_leaves,
            cat_smooth=cat_smooth,
            n_jobs=n_jobs,
            random_state=random_state,
        )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ExplainableBoostingRegressor:
        """Fit on X (n, p) and a numeric target y (n,), with optional ``sample_weight`` (n,)
        as in :meth:`ExplainableBoostingClassifier.fit`."""
        X, yv, w = self._weighted_rows(X, _as_target(y), sample_weight)
        try:
            yf = yv.astype(float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"y must be numeric for a regressor ({exc}); for class labels use "
                "ExplainableBoostingClassifier."
            ) from exc
        if not np.isfinite(yf).all():
            raise InvalidInputError(
                f"y contains {int((~np.isfinite(yf)).sum())} NaN or infinite values; the "
                "target must be finite. Drop or impute those rows."
            )
        self._fit(X, yf, w)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n,)."""
        return self._decision(X)
