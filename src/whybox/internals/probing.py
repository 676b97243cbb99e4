"""Probes: scikit-learn estimators fitted on activations, with control tasks and selectivity.

A probe asks whether a property ``y`` can be read off a layer's activations ``X`` (shape
``(n_examples, d)``). A high accuracy alone says little: a probe with enough capacity may
*memorise* the answer from the identity of the input (the word) rather than read a property
the model represents. :class:`Probe` therefore reports, with every fit, the accuracy of the same
probe on a **control task** (Hewitt & Liang 2019): every word type (every group of examples,
``groups=``) gets a random label drawn from the empirical label distribution, so the control
labels are a function of identity only. **Selectivity** = task accuracy - control accuracy,
both on the same held-out split. A selective probe reads the property; an unselective one
could have memorised it.

Two probe families:

- linear probes: ``kind="logistic"`` (L2-penalised logistic regression, ``C``) or
  ``kind="ridge"`` (:class:`sklearn.linear_model.RidgeClassifier`, ``alpha``);
  :class:`RegressionProbe` fits ridge regression to a continuous target;
- k-sparse probes (``k=``): the ``k`` neurons ranked first by the difference of class means
  (``select="mean_diff"``) or by entry along an L1 path (``select="l1"``), then the linear probe
  on those only (Gurnee et al. 2023).

Layer sweeps (:meth:`Probe.sweep`, :func:`probe_layers`) fit one probe per layer on the same
split and report held-out accuracy with a Wilson score interval (Wilson 1927; Brown, Cai &
DasGupta 2001), or R² with a percentile bootstrap over the held-out examples (Efron & Tibshirani
1993).

References
----------
Hewitt, J. & Liang, P. (2019). Designing and interpreting probes with control tasks. EMNLP.
Gurnee, W., Nanda, N., Pauly, M., Harvey, K., Troitskii, D. & Bertsimas, D. (2023). Finding
neurons in a haystack: case studies with sparse probing. TMLR.
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
JASA 22, 209-212.
Brown, L. D., Cai, T. T. & DasGupta, A. (2001). Interval estimation for a binomial proportion.
Statistical Science 16, 101-133.
Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
Alain, G. & Bengio, Y. (2017). Understanding intermediate layers using linear classifier
probes. ICLR workshop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier, lars_path
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.svm import l1_min_c
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.internals._probe_support import (
    _to_numpy,
    bootstrap_interval,
    control_labels,
    group_codes,
    wilson_interval,
)

__all__ = [
    "Probe",
    "ProbeReport",
    "ProbeSweep",
    "RegressionProbe",
    "bootstrap_interval",
    "control_labels",
    "probe_layers",
    "wilson_interval",
]


def _accept_tensors(X: Any) -> Any:
    return _to_numpy(X) if type(X).__module__.startswith("torch") else X


# ------------------------------------------------------------------ the report
@dataclass(frozen=True)
class ProbeReport:
    """What a fitted probe reports: held-out score, control score, selectivity.

    Attributes
    ----------
    metric : str
        ``"accuracy"`` (:class:`Probe`) or ``"r2"`` (:class:`RegressionProbe`).
    score, score_ci : float, (float, float)
        Held-out score of the probe on the task, and its confidence interval.
    control_score : float
        Held-out score of the same probe family on the control task (NaN with ``control=False``).
    selectivity : float
        ``score - control_score`` (Hewitt & Liang 2019).
    baseline : float
        Held-out score of always predicting the training majority class (R² 0 for regression).
    n_train, n_test, n_groups : int
    selected : ndarray or None
        Columns a k-sparse probe uses (fitted on all examples when ``refit=True``).
    confidence : float
    note : str
        Why a score is NaN, if one is.
    """

    metric: str
    score: float
    score_ci: tuple[float, float]
    control_score: float
    selectivity: float
    baseline: float
    n_train: int
    n_test: int
    n_groups: int
    selected: np.ndarray | None = None
    confidence: float = 0.95
    note: str = ""

    def __str__(self) -> str:
        lo, hi = self.score_ci
        pct = f"{100 * self.confidence:g}%"
        text = (
            f"{self.metric} {self.score:.3f} [{pct} CI {lo:.3f}, {hi:.3f}] on {self.n_test} "
            f"held-out examples; control {self.control_score:.3f} ({self.n_groups} groups); "
            f"selectivity {self.selectivity:.3f}; majority baseline {self.baseline:.3f}"
        )
        if self.selected is not None:
            text += f"; {len(self.selected)} neurons {list(map(int, self.selected))}"
        return text + (f" ({self.note})" if self.note else "")


class _Fitted:
    """One fitted probe: optional standardisation, a column selection, a linear model."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, selected: np.ndarray, model: Any):
        self.mean, self.scale, self.selected, self.model = mean, scale, selected, model

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X[:, self.selected] - self.mean) / self.scale


class _hybridmethod:
    """``Probe.sweep(...)`` uses the default probe; ``Probe(k=8).sweep(...)`` that one."""

    def __init__(self, func: Any) -> None:
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj: Any, cls: type) -> Any:
        return functools.partial(self.func, obj if obj is not None else cls())


# ------------------------------------------------------------------ the shared machinery
class _ProbeBase(BaseEstimator):
    _metric = "accuracy"
    _selectors: tuple[str, ...] = ()

    # -- parameter checks (in fit, as scikit-learn does)
    def _check_params(self, n_features: int) -> None:
        if self.k is not None:
            if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
                raise InvalidParameterError(
                    f"k must be None (a dense probe) or a positive int (neurons kept), got "
                    f"{self.k!r}."
                )
            if self.k > n_features:
                raise InvalidParameterError(
                    f"k={self.k} neurons asked for, but the activations have only "
                    f"n_features={n_features} columns. Pass k <= {n_features}, or k=None for a dense probe."
                )
        if self.select not in self._selectors:
            raise InvalidParameterError(
                f"select={self.select!r} is not supported. Expected one of: "
                + ", ".join(repr(s) for s in self._selectors)
                + "."
            )
        if not isinstance(self.test_size, (float, int)) or not 0 < self.test_size < 1:
            raise InvalidParameterError(
                f"test_size must be a fraction in (0, 1) of the examples held out for the "
                f"report, got {self.test_size!r}."
            )
        if not 0 < self.confidence < 1:
            raise InvalidParameterError(
                f"confidence must be in (0, 1), e.g. 0.95, got {self.confidence!r}."
            )

    def _fit_one(self, X: np.ndarray, y: np.ndarray) -> _Fitted:
        if self.k is None:
            selected = np.arange(X.shape[1])
        else:
            selected = self._select(X, y, int(self.k))
        Xs = X[:, selected]
        if self.standardize:
            mean = Xs.mean(axis=0)
            scale = Xs.std(axis=0)
            scale[scale == 0] = 1.0
        else:
            mean = np.zeros(Xs.shape[1], dtype=Xs.dtype)
            scale = np.ones(Xs.shape[1], dtype=Xs.dtype)
        model = self._make_model().fit((Xs - mean) / scale, y)
        return _Fitted(mean, scale, selected, model)

    def _split(self, y: np.ndarray, rs: Any) -> tuple[np.ndarray, np.ndarray] | str:
        n = len(y)
        n_test = math.ceil(self.test_size * n)
        if n < 4 or n_test < 1 or n - n_test < 2:
            return f"{n} examples are too few to hold out a test split"
        stratify = None
        if self._metric == "accuracy":
            _, counts = np.unique(y, return_counts=True)
            if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
                stratify = y
        idx = np.arange(n)
        train, test = train_test_split(
            idx, test_size=self.test_size, random_state=rs, stratify=stratify
        )
        if self._metric == "accuracy" and len(np.unique(y[train])) < 2:
            return "the training split holds a single class"
        return np.sort(train), np.sort(test)

    def _fit(self, X: Any, y: Any, groups: Any) -> Any:
        X, y = validate_data(self, _accept_tensors(X), _accept_tensors(y), dtype="numeric")
        y = self._check_targets(y)
        self._check_params(X.shape[1])
        codes = group_codes(groups, len(y))
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        split = self._split(y, seed)
        note = ""
        score = control = baseline = math.nan
        ci = (math.nan, math.nan)
        if isinstance(split, str):
            note = split
            train = np.arange(len(y))
            self.test_index_ = np.array([], dtype=int)
        else:
            train, test = split
            self.test_index_ = test
            held = self._fit_one(X[train], y[train])
            y_hat = held.model.predict(held.transform(X[test]))
            score, ci = self._score_with_ci(y[test], y_hat, seed)
            baseline = self._baseline(y[train], y[test])
            if self.control:
                y_ctrl = control_labels(y, codes, random_state=seed + 1)
                self.control_y_ = y_ctrl
                if self._metric == "accuracy" and len(np.unique(y_ctrl[train])) < 2:
                    # one control class in training: the probe can only predict it
                    control = float(np.mean(y_ctrl[test] == y_ctrl[train][0]))
                else:
                    ctrl = self._fit_one(X[train], y_ctrl[train])
                    y_ctrl_hat = ctrl.model.predict(ctrl.transform(X[test]))
                    control = self._metric_fn(y_ctrl[test], y_ctrl_hat)
        fitted = self._fit_one(X, y) if (self.refit or isinstance(split, str)) else held
        self._set_fitted(fitted, X.shape[1])
        self.report_ = ProbeReport(
            metric=self._metric,
            score=float(score),
            score_ci=(float(ci[0]), float(ci[1])),
            control_score=float(control),
            selectivity=float(score - control),
            baseline=float(baseline),
            n_train=len(train),
            n_test=len(self.test_index_),
            n_groups=int(codes.max() + 1) if len(codes) else 0,
            selected=None if self.k is None else fitted.selected.copy(),
            confidence=self.confidence,
            note=note or ("" if self.control else "control=False"),
        )
        self.score_ = self.report_.score
        self.score_ci_ = self.report_.score_ci
        self.control_score_ = self.report_.control_score
        self.selectivity_ = self.report_.selectivity
        return self

    def _set_fitted(self, fitted: _Fitted, n_features: int) -> None:
        self.fitted_ = fitted
        self.estimator_ = fitted.model
        # iterations of the final fit (1 for ridge's direct solvers), as scikit-learn reports
        n_iter = getattr(fitted.model, "n_iter_", None)
        self.n_iter_ = int(np.max(n_iter)) if n_iter is not None else 1
        self.selected_ = fitted.selected
        # coefficients in the space of the activations as given (zeros off the selection)
        coef = np.atleast_2d(fitted.model.coef_) / fitted.scale
        full = np.zeros((coef.shape[0], n_features), dtype=np.float64)
        full[:, fitted.selected] = coef
        intercept = np.atleast_1d(fitted.model.intercept_) - coef @ fitted.mean
        if np.ndim(fitted.model.coef_) == 1:
            full, intercept = full[0], intercept[0]
        self.coef_ = full
        self.intercept_ = intercept

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        X = validate_data(self, _accept_tensors(X), dtype="numeric", reset=False)
        return X, self.fitted_.transform(X)

    @property
    def direction_(self) -> np.ndarray:
        """Unit vector along the probe's weights (binary / regression), shape (d,)."""
        check_is_fitted(self, "fitted_")
        w = np.atleast_2d(self.coef_)
        if w.shape[0] != 1:
            raise InvalidParameterError(
                f"direction_ is defined for a binary or regression probe; this one has "
                f"{w.shape[0]} classes. Read coef_[c] for the direction of class c."
            )
        return w[0] / np.linalg.norm(w[0])

    @_hybridmethod
    def sweep(
        self, activations_by_layer: Any, y: Any, groups: Any = None, **params: Any
    ) -> ProbeSweep:
        """Fit one probe per layer on the same held-out split.

        Parameters
        ----------
        activations_by_layer : mapping layer -> array (n, d), sequence of arrays, or an
            array / tensor of shape (n_layers, n, d)
        y : array of shape (n,)
        groups : array of shape (n,), optional
            Word type / identity of each example for the control task.
        **params
            Probe parameters that override this probe's (``k=8``, ``C=0.1``, ...).

        Returns
        -------
        ProbeSweep
            Per layer: held-out score with its confidence interval, control score, selectivity.
        """
        if isinstance(activations_by_layer, Mapping):
            layers = list(activations_by_layer)
            arrays = [activations_by_layer[k] for k in layers]
        else:
            arrays = list(activations_by_layer)
            layers = list(range(len(arrays)))
        if not arrays:
            raise InvalidInputError("activations_by_layer is empty: pass one array per layer.")
        probes = []
        for layer, acts in zip(layers, arrays, strict=True):
            probe = clone(self).set_params(**params)
            try:
                probe.fit(acts, y, groups=groups)
            except InvalidInputError as exc:
                raise InvalidInputError(f"layer {layer!r}: {exc}") from exc
            probes.append(probe)
        return ProbeSweep.from_probes(layers, probes)


# ------------------------------------------------------------------ classifier
class Probe(ClassifierMixin, _ProbeBase):
    """A linear or k-sparse classifier probe on activations, reporting its selectivity.

    Parameters
    ----------
    kind : {"logistic", "ridge"}, default "logistic"
        :class:`~sklearn.linear_model.LogisticRegression` (L2, ``C``) or
        :class:`~sklearn.linear_model.RidgeClassifier` (``alpha``).
    C : float, default 1.0
        Inverse L2 strength of the logistic probe.
    alpha : float, default 1.0
        L2 strength of the ridge probe.
    k : int or None, default None
        Keep only ``k`` neurons (columns): a k-sparse probe (Gurnee et al. 2023).
    select : {"mean_diff", "l1"}, default "mean_diff"
        How a k-sparse probe ranks neurons: largest ``|mean(x_j | y=c) - mean(x_j | y!=c)|``
        (maximised over classes ``c``), or order of entry along an L1-penalised logistic
        regularisation path (one-vs-rest for several classes).
    standardize : bool, default False
        Standardise the kept columns (training mean and std) before the linear model.
        ``coef_`` and ``intercept_`` are always in the units of the activations as passed.
    control : bool, default True
        Fit the same probe on a control task and report ``control_score_`` / ``selectivity_``.
    test_size : float, default 0.25
        Fraction of examples held out (stratified when each class has two members) for
        ``score_``, ``control_score_`` and the interval.
    refit : bool, default True
        After the report, refit on all examples (``predict`` uses that fit); ``False`` keeps
        the fit on the training split.
    max_iter : int, default 1000
        Iterations of the solver.
    confidence : float, default 0.95
        Level of the Wilson interval ``score_ci_``.
    random_state : int, RandomState or None
        Seeds the split and the control labels.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    coef_ : ndarray (1, d) for two classes, else (n_classes, d)
        In the units of the activations, zero off the selected neurons (scikit-learn's
        layout, as ``LogisticRegression.coef_``).
    intercept_ : ndarray (1,) or (n_classes,)
    selected_ : ndarray of int
        The columns the probe reads (all of them for a dense probe).
    estimator_ : the fitted scikit-learn model on the selected (standardised) columns.
    n_iter_ : int, iterations of the final fit (1 for the ridge probe's direct solver).
    score_, score_ci_, control_score_, selectivity_ : held-out report, also ``report_``.
    test_index_ : ndarray of int, the held-out examples; ``control_y_`` the control labels.

    Raises
    ------
    InvalidParameterError
        From ``fit``: an unknown ``kind`` or ``select``, a ``k`` that is not a positive int
        or is larger than the width, ``test_size`` or ``confidence`` outside (0, 1).
    InvalidInputError
        From ``fit``: labels of a single class, ``groups`` not one id per example.

    Examples
    --------
    Activations in which one neuron (column 3) encodes the label:

    >>> rng = np.random.default_rng(0)
    >>> acts = rng.normal(size=(400, 32))                      # (n_examples, d)
    >>> labels = (acts[:, 3] > 0).astype(int)
    >>> probe = wb.Probe(k=1, random_state=0).fit(acts, labels)   # a 1-sparse probe
    >>> probe.selected_.tolist(), probe.score_ > 0.9, probe.selectivity_ > 0.3
    ([3], True, True)

    References
    ----------
    Alain & Bengio (2017); Hewitt & Liang (2019); Gurnee et al. (2023).
    """

    _selectors = ("mean_diff", "l1")

    def __init__(
        self,
        kind: str = "logistic",
        *,
        C: float = 1.0,
        alpha: float = 1.0,
        k: int | None = None,
        select: str = "mean_diff",
        standardize: bool = False,
        control: bool = True,
        test_size: float = 0.25,
        refit: bool = True,
        max_iter: int = 1000,
        confidence: float = 0.95,
        random_state: Any = None,
    ) -> None:
        self.kind = kind
        self.C = C
        self.alpha = alpha
        self.k = k
        self.select = select
        self.standardize = standardize
        self.control = control
        self.test_size = test_size
        self.refit = refit
        self.max_iter = max_iter
        self.confidence = confidence
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> Probe:
        """Fit the probe, and report its held-out score, control score and selectivity.

        Parameters
        ----------
        X : array or tensor of shape (n, d)
            Activations, one row per example.
        y : array of shape (n,)
            Class labels.
        groups : array of shape (n,), optional
            Identity of each example (word type / token id) for the control task.
        """
        if self.kind not in ("logistic", "ridge"):
            raise InvalidParameterError(
                f"kind={self.kind!r} is not supported. Expected 'logistic' or 'ridge' (for a "
                "continuous target use RegressionProbe)."
            )
        return self._fit(X, y, groups)

    def _check_targets(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InvalidInputError(
                f"y holds 1 class ({self.classes_[0]!r}); a probe needs examples of at least "
                "two classes."
            )
        return y

    def _make_model(self) -> Any:
        if self.kind == "logistic":
            return LogisticRegression(C=self.C, max_iter=self.max_iter)
        return RidgeClassifier(alpha=self.alpha)

    def _select(self, X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        classes = np.unique(y)
        if self.select == "mean_diff":
            diffs = [X[y == c].mean(axis=0) - X[y != c].mean(axis=0) for c in classes]
            score = np.max(np.abs(diffs), axis=0)
            return np.sort(np.argsort(-score, kind="stable")[:k])
        return np.sort(_l1_path_select(X, y, k, classes))

    _metric_fn = staticmethod(accuracy_score)

    def _score_with_ci(self, y_true: np.ndarray, y_pred: np.ndarray, seed: int) -> Any:
        correct = int(np.sum(y_true == y_pred))
        return correct / len(y_true), wilson_interval(correct, len(y_true), self.confidence)

    def _baseline(self, y_train: np.ndarray, y_test: np.ndarray) -> float:
        values, counts = np.unique(y_train, return_counts=True)
        return float(np.mean(y_test == values[np.argmax(counts)]))

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values of the linear model, shape (n,) for two classes else (n, n_classes)."""
        _, Z = self._decision(X)
        return self.estimator_.decision_function(Z)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, shape (n,)."""
        _, Z = self._decision(X)
        return self.estimator_.predict(Z)

    @available_if(lambda self: self.kind == "logistic")
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the logistic probe, shape (n, n_classes)."""
        _, Z = self._decision(X)
        return self.estimator_.predict_proba(Z)

    @available_if(lambda self: self.kind == "logistic")
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities of the logistic probe, shape (n, n_classes)."""
        _, Z = self._decision(X)
        return self.estimator_.predict_log_proba(Z)


def _l1_path_select(X: np.ndarray, y: np.ndarray, k: int, classes: np.ndarray) -> np.ndarray:
    """The first ``k`` columns to enter an L1-penalised logistic path (one-vs-rest).

    ``C`` grows geometrically from the smallest value with a non-empty support
    (:func:`sklearn.svm.l1_min_c`); at the first ``C`` whose support (union over classes)
    reaches ``k`` columns, the ``k`` with the largest ``|coef|`` are kept.
    """
    targets = [y == classes[1]] if len(classes) == 2 else [y == c for c in classes]
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Xs = (X - X.mean(axis=0)) / scale
    c0 = min(l1_min_c(Xs, t.astype(int), loss="log") for t in targets)
    best = np.zeros(X.shape[1])
    for C in c0 * np.logspace(0.01, 4, 40):
        weight = np.zeros(X.shape[1])
        for t in targets:
            model = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=1000)
            weight = np.maximum(weight, np.abs(model.fit(Xs, t.astype(int)).coef_[0]))
        best = weight
        if np.count_nonzero(weight) >= k:
            break
    return np.argsort(-best, kind="stable")[:k]


# ------------------------------------------------------------------ regressor
class RegressionProbe(RegressorMixin, _ProbeBase):
    """A ridge (optionally k-sparse) regression probe for a continuous property.

    Parameters as :class:`Probe`, with ``alpha`` the ridge strength and ``select`` one of
    ``"corr"`` (largest ``|Pearson r|`` with the target) or ``"l1"`` (order of entry on the
    lasso path, :func:`sklearn.linear_model.lars_path`). The control task gives each group a
    target drawn from the empirical target distribution; ``score_`` is held-out R² with a
    percentile bootstrap interval over the held-out examples (``n_boot`` resamples).

    References
    ----------
    Hewitt & Liang (2019); Gurnee et al. (2023); Efron & Tibshirani (1993).
    """

    _metric = "r2"
    _selectors = ("corr", "l1")

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        k: int | None = None,
        select: str = "corr",
        standardize: bool = False,
        control: bool = True,
        test_size: float = 0.25,
        refit: bool = True,
        confidence: float = 0.95,
        n_boot: int = 1000,
        random_state: Any = None,
    ) -> None:
        self.alpha = alpha
        self.k = k
        self.select = select
        self.standardize = standardize
        self.control = control
        self.test_size = test_size
        self.refit = refit
        self.confidence = confidence
        self.n_boot = n_boot
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> RegressionProbe:
        """Fit the probe and report held-out R², control R² and selectivity (see :class:`Probe`)."""
        return self._fit(X, y, groups)

    def _check_targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def _make_model(self) -> Any:
        return Ridge(alpha=self.alpha)

    def _select(self, X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        if self.select == "corr":
            Xc, yc = X - X.mean(axis=0), y - y.mean()
            denom = np.sqrt((Xc**2).sum(axis=0) * (yc**2).sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(denom > 0, (Xc * yc[:, None]).sum(axis=0) / denom, 0.0)
            return np.sort(np.argsort(-np.abs(r), kind="stable")[:k])
        _, active, _ = lars_path(X.astype(np.float64), y, method="lasso", max_iter=4 * k)
        order = list(dict.fromkeys(int(a) for a in active))
        if len(order) < k:  # the path stopped early: fill by |correlation|
            rest = [
                j for j in np.argsort(-np.abs((X - X.mean(0)).T @ (y - y.mean()))) if j not in order
            ]
            order += [int(j) for j in rest]
        return np.sort(np.array(order[:k]))

    @staticmethod
    def _metric_fn(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        if len(y_true) < 2 or np.all(y_true == y_true[0]):
            return math.nan
        return float(r2_score(y_true, y_pred))

    def _score_with_ci(self, y_true: np.ndarray, y_pred: np.ndarray, seed: int) -> Any:
        score = self._metric_fn(y_true, y_pred)
        ci = bootstrap_interval(
            y_true,
            y_pred,
            self._metric_fn,
            confidence=self.confidence,
            n_boot=self.n_boot,
            random_state=seed,
        )
        return score, ci

    def _baseline(self, y_train: np.ndarray, y_test: np.ndarray) -> float:
        return self._metric_fn(y_test, np.full(len(y_test), y_train.mean()))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n,)."""
        _, Z = self._decision(X)
        return self.estimator_.predict(Z)


# ------------------------------------------------------------------ sweeps
@dataclass(frozen=True)
class ProbeSweep:
    """Per-layer probe results of :meth:`Probe.sweep` / :func:`probe_layers`.

    Attributes
    ----------
    layers : list
    metric : str
    score, ci_low, ci_high, control_score, selectivity : ndarray (n_layers,)
    n_test : ndarray of int (n_layers,)
    probes : list of fitted probes, one per layer.
    """

    layers: list[Any]
    metric: str
    score: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    control_score: np.ndarray
    selectivity: np.ndarray
    n_test: np.ndarray
    probes: list[Any] = field(repr=False)
    confidence: float = 0.95

    @classmethod
    def from_probes(cls, layers: Sequence[Any], probes: Sequence[Any]) -> ProbeSweep:
        reports = [p.report_ for p in probes]
        return cls(
            layers=list(layers),
            metric=reports[0].metric,
            score=np.array([r.score for r in reports]),
            ci_low=np.array([r.score_ci[0] for r in reports]),
            ci_high=np.array([r.score_ci[1] for r in reports]),
            control_score=np.array([r.control_score for r in reports]),
            selectivity=np.array([r.selectivity for r in reports]),
            n_test=np.array([r.n_test for r in reports]),
            probes=list(probes),
            confidence=reports[0].confidence,
        )

    @property
    def best_layer(self) -> Any:
        """The layer with the highest held-out score."""
        return self.layers[int(np.nanargmax(self.score))]

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: score, ci_low, ci_high, control_score, selectivity, n_test."""
        return pd.DataFrame(
            {
                "layer": self.layers,
                self.metric: self.score,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "control": self.control_score,
                "selectivity": self.selectivity,
                "n_test": self.n_test,
            }
        ).set_index("layer")


# ------------------------------------------------------------------ layers of a model
def probe_layers(
    model: Any,
    inputs: Any,
    labels: Any,
    *,
    layers: Sequence[int] | None = None,
    site: str = "resid_post",
    position: Any = -1,
    tokenizer: Any = None,
    groups: Any = None,
    probe: Any = None,
    anatomy: Any = None,
    batch_size: int = 32,
    **params: Any,
) -> ProbeSweep:
    """Probe a property at every layer of a model: one probe per layer, same held-out split.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` model (or any model :class:`~whybox.internals.anatomy.Anatomy`
        understands).
    inputs : list of str, tensor of token ids (batch, pos), list of token-id lists, or a
        ``BatchEncoding`` (pads dropped by its attention mask)
    labels : array (n,) for one label per example; for ``position="all"`` one label per
        token, as a list of per-example sequences (or a (batch, pos) array)
    layers : sequence of int, optional
        Default: every layer.
    site : str, default "resid_post"
        The hook name inside a block: ``"resid_pre"``, ``"resid_mid"``, ``"resid_post"``,
        ``"attn.out"``, ``"mlp.out"``, ``"mlp.post"`` (neurons, for k-sparse probes) ...
    position : int, "mean" or "all", default -1
        Which token's activation represents an example: an index (``-1`` the last), the mean
        over tokens, or every token as its own example (``"all"``, a token-level probe).
    tokenizer : tokenizer, optional
        Needed when ``inputs`` are texts.
    groups : array, optional
        Identity of each example for the control task. Default: the id of the token read
        (Hewitt & Liang's word type) for an int position or ``"all"``; the whole token
        sequence for ``"mean"``. A property that is a function of the token read is then
        matched by the control task, and its selectivity is low.
    probe : Probe or RegressionProbe, optional
        The probe to fit at each layer (default ``Probe()``); ``**params`` override its
        parameters (``k=8``, ``random_state=0``).
    anatomy : Anatomy, optional
    batch_size : int, default 32

    Returns
    -------
    ProbeSweep
        Per-layer held-out score with its interval, control score and selectivity; each
        fitted probe carries ``hook_name_`` and ``position_`` (where it reads), which
        :meth:`whybox.internals.steering.SteeringVector.effect` uses.

    References
    ----------
    Alain & Bengio (2017); Hewitt & Liang (2019).
    """
    from whybox.internals._probe_support import check_layer, collect, sequences
    from whybox.internals.anatomy import Anatomy

    anat = Anatomy.for_model(model, anatomy)
    if layers is None:
        layers = list(range(anat.n_layers))
    layers = [check_layer(layer, anat.n_layers) for layer in layers]
    points = [anat.point(f"blocks.{layer}.{site}") for layer in layers]
    seqs = sequences(inputs, tokenizer)
    acts = collect(model, seqs, points, position, batch_size=batch_size, vocab_size=anat.vocab_size)
    if position == "all":
        per_example = [np.asarray(_to_numpy(lab)).reshape(-1) for lab in labels]
        lengths = [len(s) for s in seqs]
        if len(per_example) != len(seqs) or any(
            len(a) < n for a, n in zip(per_example, lengths, strict=True)
        ):
            raise InvalidInputError(
                f"position='all' needs one label per token: {len(seqs)} label sequences of "
                f"lengths {lengths[:8]}{'...' if len(lengths) > 8 else ''}, got "
                f"{len(per_example)} sequences of lengths {[len(a) for a in per_example[:8]]}."
            )
        y = np.concatenate([a[:n] for a, n in zip(per_example, lengths, strict=True)])
        if groups is None:
            groups = np.concatenate([s.cpu().numpy() for s in seqs])
    else:
        y = _to_numpy(labels).reshape(-1) if np.ndim(_to_numpy(labels)) > 1 else _to_numpy(labels)
        if len(y) != len(seqs):
            raise InvalidInputError(
                f"labels has {len(y)} entries for {len(seqs)} inputs: pass one label per input "
                "(or position='all' with one label per token)."
            )
        if groups is None and position == "mean":
            groups = np.array([",".join(map(str, s.tolist())) for s in seqs])
        elif groups is None:
            groups = np.array([int(s[position]) for s in seqs])
    template = probe if probe is not None else Probe()
    sweep = template.sweep(
        {int(layer): acts[p.name] for layer, p in zip(layers, points, strict=True)},
        y,
        groups=groups,
        **params,
    )
    for p, fitted in zip(points, sweep.probes, strict=True):
        fitted.hook_name_ = p.name
        fitted.position_ = position
    return sweep
