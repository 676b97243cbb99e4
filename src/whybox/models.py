"""Adapters that turn any supported model into ``f(X) -> float[m, k]``.

Estimators never see a model object: they call a :class:`ModelFunction`, which knows how to
call scikit-learn estimators and Pipelines (DataFrames with categorical and string columns
included), XGBoost and LightGBM (scikit-learn API and native Boosters), torch modules and
plain callables, which output(s) to return (``target=``) and on which scale (``link=``).

Output selection (``target=``)
------------------------------
One meaning for every explainer and model type (:mod:`whybox._targets`):

* ``None``: a binary classifier's positive class (``classes_[1]``); a multiclass
  classifier's every class; a regressor's prediction (every column of a multi-output one);
  a torch module's or callable's single output, or all of them;
* a scalar: ONE output, a class label (matched before an index, so for classes
  ``[1, 2, 3]`` ``target=1`` is the class labelled 1; ``"0"`` matches the label ``0``) or an
  output index; an unknown one is an error listing the labels;
* a list, tuple or ``pd.Index``: SEVERAL outputs (a trailing output axis);
* ``"all"``: every output the model computes on the explained scale (a binary margin
  model computes one margin: ``"all"`` is class 1's);
* a 1-D numpy array, ``torch.Tensor`` or ``pd.Series`` with one entry per explained row:
  ONE TARGET PER ROW (Captum's meaning). :attr:`ModelFunction.row_targets` holds the output
  of each row and :meth:`ModelFunction.for_row` the single-output function of one row.

Class 0 of a binary margin model (one margin for class 1: XGBoost / LightGBM /
HistGradientBoosting log-odds, ``LogisticRegression.decision_function``, an SVC's decision
function) is the NEGATED margin; on probabilities it is ``1 - p``.

Output scale (``link=``)
------------------------
* ``"identity"`` (default): a classifier with probabilities -> the class probability; a
  classifier without (SVC, RidgeClassifier, LinearSVC) -> its decision function; a regressor
  -> its prediction; a torch module or callable -> its raw output.
* ``"logit"``: the log-odds ``log(p / (1 - p))`` of the class probability, for every
  classifier. Where the model's margin IS the log-odds (LogisticRegression, binary logistic
  XGBoost / LightGBM / HistGradientBoosting / GradientBoosting, SGDClassifier with log loss)
  the margin itself is used (exact, no clipping); otherwise ``logit(p)`` of the probability
  clipped to ``[1e-15, 1 - 1e-15]``. Torch modules and callables: only when every output is a
  probability in [0, 1] (checked on every call: a logit of logits is refused).
  Decision-only classifiers and regressors refuse ``"logit"``.

What is explained, in words (``ModelFunction.output_description``, which explainers copy to
``Explanation.params["output"]``):

=====================================  ===================================================
``"probability of class 1"``           a classifier's ``predict_proba`` column
``"log-odds of class 1"``              the model's own margin (it is the log-odds)
``"log-odds of class 0 (negated        class 0 of a binary margin model under
margin)"``                             ``link="logit"``
``"log-odds of class 1 (logit of the   ``link="logit"`` on a model without a log-odds
probability)"``                        margin (a random forest)
``"decision function of class 1"``     a classifier without probabilities; class 0 is
                                       ``"decision function of class 0 (negated)"``
``"prediction"``                       a regressor (``"prediction 0, prediction 1"``)
``"output 3 (raw model output)"``      a torch module or callable
``"logit of output 1"``                ``link="logit"`` on a probability output of one
``"<scale> of each row's target        per-row targets
(per-example targets)"``
=====================================  ===================================================

Columns
-------
A DataFrame is matched to the model's fitted feature names on EVERY call: columns are
reordered by name (LightGBM's renaming rule -- each space becomes ``_`` -- is applied to the
caller's names before matching) and passed to the model under the model's names, so
explainers keep the caller's column order and names throughout. :meth:`ModelFunction.prepare`
validates a DataFrame (missing, unexpected or duplicated columns are an
:class:`~whybox.errors.InvalidInputError` listing them) and returns it in the caller's order.
A numpy array is positional: its columns must be in the model's order.

Torch modules are evaluated in eval mode (a ``UserWarning``, once per wrapped model, when
they were in training mode) and their mode is restored afterwards, also after an exception.
A dict or Hugging Face ``ModelOutput`` output resolves to its ``"logits"``; a tuple or list
output needs ``output=`` (an index or key) -- it is never silently element 0.

A model output of NaN or inf is a :class:`~whybox.errors.ModelCallError` naming the rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._adapters import (  # noqa: F401 - re-exported: the trees and inspection modules use them
    _CLIP,
    LINKS,
    _has_base,
    _is_lgb_booster,
    _is_lightgbm,
    _is_xgb_booster,
    _n_outputs_without_call,
    _Raw,
    _raw_adapter,
    _two_columns,
    eval_mode,
    is_torch_module,
    lightgbm_feature_name,
    model_type_name,
)
from ._targets import PER_ROW_NAME, resolve_target
from ._validation import check_in
from .errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    WhyboxError,
)


@dataclass
class ModelFunction:
    """A model as a function ``f(X) -> float[m, k]`` on the selected outputs.

    Attributes
    ----------
    model : object
        The wrapped model.
    model_type : str
        ``module.ClassName`` of the model.
    kind : str
        ``"probability"``, ``"decision"``, ``"regression"`` or ``"output"``: what the model
        computes (the explained scale is ``link`` and ``output_description``).
    output_indices : list of int
        Indices of the selected outputs among all model outputs (per-row targets: all).
    output_names : list of str
        Names of the selected outputs (class labels as strings, or ``"prediction"``); for
        per-row targets the names of all outputs (each row's is in ``row_target_names``).
    single_output : bool
        True when one output was asked for: explainers then drop the output axis.
    link : str
        ``"identity"`` or ``"logit"`` (log-odds of a probability).
    output_description : str
        Plain description of what is explained, e.g. ``"log-odds of class 1"`` (see the
        module docstring for every form).
    feature_names_in, n_features_in
        What the model was fitted on (the library's names: LightGBM's renamed ones), when it
        says so; DataFrames are matched to them by name on every call.
    row_targets : list of int or None
        For a per-row target (a 1-D array / tensor / Series): the output index of each row;
        None otherwise.
    row_target_names : list of str or None
        The output name of each row, for ``Explanation.params["target"]`` and
        ``meta["targets"]``.
    """

    model: Any
    model_type: str
    kind: str
    output_indices: list[int]
    output_names: list[str]
    single_output: bool
    link: str
    output_description: str
    feature_names_in: list[str] | None = None
    n_features_in: int | None = None
    _raw: Callable[[Any], np.ndarray] = field(default=lambda X: np.empty(0), repr=False)
    n_calls: int = 0
    n_rows_evaluated: int = 0
    #: number of columns every model output must have (all outputs, before selection)
    _n_outputs_total: int | None = field(default=None, repr=False)
    row_targets: list[int] | None = None
    row_target_names: list[str] | None = None
    #: "none", "clip" (logit of a probability) or "check" (logit of a callable's output)
    _transform: str = field(default="none", repr=False)
    #: all output names (str), for per-output descriptions
    _all_names: list[str] = field(default_factory=list, repr=False)
    _describe: Callable[..., str] | None = field(default=None, repr=False)
    _rename: Callable[[Any], str] | None = field(default=None, repr=False)
    _orders: dict[tuple[str, ...], tuple[list[int], bool]] = field(default_factory=dict, repr=False)

    @property
    def n_outputs(self) -> int:
        return len(self.output_indices)

    @property
    def per_row(self) -> bool:
        """True when each row has its own target (:attr:`row_targets`)."""
        return self.row_targets is not None

    def for_row(self, i: int) -> ModelFunction:
        """The single-output function of row ``i``'s target (a copy with fresh counters).

        Raises
        ------
        InvalidParameterError
            When this function has no per-row targets, or ``i`` is not a row.
        """
        if self.row_targets is None:
            raise InvalidParameterError(
                "for_row() needs per-row targets: wrap the model with a 1-D array / tensor / "
                "Series target with one entry per row."
            )
        n = len(self.row_targets)
        if not -n <= int(i) < n:
            raise InvalidParameterError(f"row {i} is out of range for {n} per-row targets.")
        t = self.row_targets[int(i)]
        return dataclasses.replace(
            self,
            output_indices=[t],
            output_names=[self._all_names[t]],
            single_output=True,
            output_description=self._describe([t]) if self._describe else self._all_names[t],
            row_targets=None,
            row_target_names=None,
            n_calls=0,
            n_rows_evaluated=0,
            _orders=self._orders,
        )

    def row_outputs(self, X: Any) -> np.ndarray:
        """Each row's own target output on the rows ``X``: float array of shape (n,).

        ``X`` must be the rows the per-row targets were given for, in the same order.
        """
        if self.row_targets is None:
            raise InvalidParameterError("row_outputs() needs per-row targets (see for_row).")
        out = self(X)
        m = out.shape[0]
        if m != len(self.row_targets):
            raise InvalidParameterError(
                f"{m} rows were given for {len(self.row_targets)} per-row targets."
            )
        cols = [self.output_indices.index(t) for t in self.row_targets]
        return out[np.arange(m), cols]

    # ---------------------------------------------------------------- columns
    def _column_order(self, have: list[str]) -> tuple[list[int], bool]:
        """Positions of the model's columns among ``have`` and whether names change."""
        key = tuple(have)
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        expected = list(self.feature_names_in or [])
        dup = sorted({c for c in have if have.count(c) > 1})
        if dup:
            raise InvalidInputError(
                f"X has duplicated column names: {dup}. Each feature must appear once; the "
                f"model was fitted on {expected}."
            )
        pos = {c: j for j, c in enumerate(have)}
        if self._rename is not None:
            for j, c in enumerate(have):
                pos.setdefault(self._rename(c), j)
        missing = [c for c in expected if c not in pos]
        used = {pos[c] for c in expected if c in pos}
        unexpected = [c for j, c in enumerate(have) if j not in used]
        if missing or unexpected:
            raise InvalidInputError(self._columns_message("X", expected, missing, unexpected))
        order = [pos[c] for c in expected]
        renamed = [have[j] for j in order] != expected
        self._orders[key] = (order, renamed)
        return order, renamed

    def _columns_message(
        self, name: str, expected: list[str], missing: list[str], unexpected: list[str]
    ) -> str:
        parts = []
        if missing:
            parts.append(f"missing columns: {missing}")
        if unexpected:
            parts.append(f"unexpected columns: {unexpected}")
        note = (
            " (LightGBM stores each space of a column name as '_': 'a b' matches 'a_b')"
            if self._rename is not None
            else ""
        )
        return (
            f"{name} does not have the columns the model was fitted on ("
            + "; ".join(parts)
            + f"). Expected exactly: {expected}{note}. Rename or select the columns to match; "
            "their order does not matter."
        )

    def _to_model(self, X: Any) -> Any:
        """``X`` as the model takes it: a DataFrame in the model's column order and names."""
        if not isinstance(X, pd.DataFrame) or self.feature_names_in is None:
            return X
        have = [str(c) for c in X.columns]
        if have == self.feature_names_in:
            return X
        order, renamed = self._column_order(have)
        Xm = X.iloc[:, order]
        if renamed or [str(c) for c in Xm.columns] != list(Xm.columns):
            Xm = Xm.set_axis(self.feature_names_in, axis=1)
        return Xm

    def prepare(self, X: Any, name: str = "X") -> Any:
        """Check ``X`` against the features the model was fitted on; return it unchanged.

        A DataFrame may have its columns in any order (they are matched by name on every
        call, LightGBM's renaming included) but must have exactly the model's columns; a
        numpy array is positional and must have the model's number of columns.

        Raises
        ------
        InvalidInputError
            Listing missing, unexpected or duplicated columns, or for a wrong number of
            features.
        """
        if isinstance(X, pd.DataFrame):
            have = [str(c) for c in X.columns]
            dup = sorted({c for c in have if have.count(c) > 1})
            if dup:
                raise InvalidInputError(
                    f"{name} has duplicated column names: {dup}. Each feature must appear "
                    "once; rename or drop the copies"
                    + (
                        f" (the model was fitted on {self.feature_names_in})."
                        if self.feature_names_in is not None
                        else "."
                    )
                )
            if self.feature_names_in is not None:
                try:
                    self._column_order(have)
                except InvalidInputError:
                    expected = list(self.feature_names_in)
                    pos = set(have)
                    if self._rename is not None:
                        pos |= {self._rename(c) for c in have}
                    missing = [c for c in expected if c not in pos]
                    unexpected = [
                        c
                        for c in have
                        if c not in expected
                        and (self._rename is None or self._rename(c) not in expected)
                    ]
                    raise InvalidInputError(
                        self._columns_message(name, expected, missing, unexpected)
                    ) from None
                return X
        p = X.shape[1] if np.ndim(X) > 1 else 1
        expected = self.feature_names_in
        n_exp = len(expected) if expected is not None else self.n_features_in
        if n_exp is not None and p != n_exp:
            raise InvalidInputError(
                f"{name} has {p} features but the model expects {n_exp}"
                + (f" ({list(expected)})" if expected is not None else "")
                + ". A numpy array is read by position: pass the same features, in the same "
                "order, as at fit time (or a DataFrame, matched by column name)."
            )
        return X

    # ---------------------------------------------------------------- evaluation
    def __call__(self, X: Any) -> np.ndarray:
        """Evaluate the selected outputs on the link scale: float array of shape (m, k)."""
        m = X.shape[0] if hasattr(X, "shape") else len(X)
        Xm = self._to_model(X)
        try:
            out = self._raw(Xm)
        except WhyboxError:
            raise
        except Exception as exc:
            shape = tuple(X.shape) if hasattr(X, "shape") else (m,)
            raise ModelCallError(
                f"the model ({self.model_type}) raised {type(exc).__name__}: {exc} while "
                f"whybox evaluated it on a batch of shape {shape}"
                + (f" with columns {list(X.columns)[:20]}" if isinstance(X, pd.DataFrame) else "")
                + ". Check that the model accepts inputs like X (the same columns and dtypes "
                "as at fit time); the original error is chained above."
            ) from exc
        try:
            out = np.asarray(out, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {type(out).__name__}, which is not a "
                f"numeric array, for a batch of {m} rows; expected an array of shape (m,) or "
                "(m, k)."
            ) from exc
        if out.ndim == 0:
            if m != 1:
                raise ModelCallError(
                    f"the model ({self.model_type}) returned a single number for a batch of "
                    f"{m} rows; expected one output row per input row."
                )
            out = out.reshape(1, 1)
        elif out.ndim == 1:
            out = out[:, None]
        elif out.ndim > 2:
            out = out.reshape(out.shape[0], -1)
        if out.shape[0] != m:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {out.shape[0]} rows for a batch of "
                f"{m} rows; expected one output row per input row."
            )
        if self._n_outputs_total is not None and out.shape[1] != self._n_outputs_total:
            raise ModelCallError(
                f"the model ({self.model_type}) returned {out.shape[1]} output column(s) but "
                f"whybox expected {self._n_outputs_total}. If the model has several outputs, "
                "pass example inputs X= to wrap_model so that whybox can count them."
            )
        sel = out[:, self.output_indices]
        _check_finite_outputs(sel, X, self.model_type)
        self.n_calls += 1
        self.n_rows_evaluated += m
        if self._transform == "check":
            outside = (sel < 0.0) | (sel > 1.0)
            if outside.any():
                r, c = np.argwhere(outside)[0]
                raise InvalidParameterError(
                    f"link='logit' takes the log-odds of probabilities, but the model "
                    f"({self.model_type}) returned {sel[r, c]:.6g} for "
                    f"{self.output_names[c]!r} (outside [0, 1]): these outputs are already "
                    "unbounded scores, e.g. logits; use link='identity'."
                )
        if self._transform in ("clip", "check"):
            p = np.clip(sel, _CLIP, 1 - _CLIP)
            sel = np.log(p) - np.log1p(-p)
        return sel


def _check_finite_outputs(sel: np.ndarray, X: Any, model_type: str) -> None:
    """A NaN or inf output is a ModelCallError naming the rows (positions in the batch)."""
    bad = ~np.isfinite(sel)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    kinds = " and ".join(
        k for k, on in (("NaN", np.isnan(sel).any()), ("inf", np.isinf(sel).any())) if on
    )
    shown = rows[:10].tolist()
    labels = ""
    if isinstance(X, (pd.DataFrame, pd.Series)):
        labels = f" (index labels {list(X.index[rows[:10]])})"
    raise ModelCallError(
        f"the model ({model_type}) returned {kinds} for {len(rows)} of {sel.shape[0]} rows of "
        f"the batch: rows {shown}{' ...' if len(rows) > 10 else ''}{labels}. Attributions of "
        "a non-finite output are meaningless: check these inputs (missing or extreme values "
        "the model cannot handle) or make the model return finite numbers."
    )


def _probe_outputs(raw: _Raw, X_example: Any, align: Callable[[Any], Any]) -> int:
    if X_example is None:
        raise InvalidParameterError(
            "the number of model outputs is not known before calling the model; pass X."
        )
    sample = X_example.iloc[:1] if isinstance(X_example, pd.DataFrame) else X_example[:1]
    try:
        out = np.asarray(raw.fn(align(sample)), dtype=float)
    except WhyboxError:
        raise
    except Exception as exc:
        raise ModelCallError(
            f"the model raised {type(exc).__name__}: {exc} while whybox evaluated it on one "
            f"row of shape {tuple(np.shape(sample))} to find its number of outputs. Check that "
            "it accepts inputs like X; the original error is chained above."
        ) from exc
    return 1 if out.ndim <= 1 else int(np.prod(out.shape[1:]))


def _describer(raw: _Raw, names: list[str], link: str, margin: bool) -> Callable[..., str]:
    """``indices -> output_description`` (see the module docstring)."""
    binary = raw.is_classifier and len(names) == 2

    def label(j: int, negated: str) -> str:
        return names[j] + (f" ({negated})" if j == 0 and binary and negated else "")

    def describe(idx: list[int], per_row: bool = False) -> str:
        cls = "each row's target class" if per_row else None
        out = "each row's target output" if per_row else None
        if raw.kind == "probability":
            if link == "logit" and margin:
                return "log-odds of " + (
                    cls or "class " + ", ".join(label(j, "negated margin") for j in idx)
                )
            if link == "logit":
                return (
                    "log-odds of "
                    + (cls or "class " + ", ".join(names[j] for j in idx))
                    + " (logit of the probability)"
                )
            return "probability of " + (cls or "class " + ", ".join(names[j] for j in idx))
        if raw.kind == "decision":
            neg = "negated" if raw.binary_margin else ""
            return "decision function of " + (
                cls or "class " + ", ".join(label(j, neg) for j in idx)
            )
        if raw.kind == "regression":
            return out or ", ".join(names[j] for j in idx)
        if link == "logit":
            return "logit of " + (out or ", ".join(names[j] for j in idx))
        return (out or ", ".join(names[j] for j in idx)) + " (raw model output)"

    return describe


def wrap_model(
    model: Any,
    *,
    target: Any = None,
    link: str = "identity",
    X: Any = None,
    n_rows: int | None = None,
    output: Any = None,
) -> ModelFunction:
    """Wrap ``model`` as a ``ModelFunction`` returning the outputs selected by ``target``.

    Every explainer calls models through this function, so ``target`` and ``link`` mean the
    same for every method and model type.

    Parameters
    ----------
    model : object
        A scikit-learn estimator or Pipeline, an XGBoost / LightGBM model (scikit-learn API
        or native Booster), a ``torch.nn.Module``, or a callable ``f(X) -> (m,) | (m, k)``.
    target : None, label, index, list, "all", or a 1-D array / tensor / Series, optional
        Output(s) to explain. None (default): a binary classifier's positive class, a
        multiclass classifier's every class, a regressor's prediction, every output of a
        torch module or callable. A scalar: one output, a class label (matched before an
        index) or an output index. A list: several outputs. ``"all"``: every output the
        model computes. A 1-D array with one entry per explained row: one target per row
        (held in ``ModelFunction.row_targets``). Class 0 of a binary margin model is the
        negated margin.
    link : {"identity", "logit"}, default "identity"
        Output scale: ``"identity"`` is the class probability (the decision function of a
        classifier without probabilities, the prediction of a regressor, the raw output of a
        torch module or callable); ``"logit"`` is the log-odds of a class probability, the
        model's own margin where that is the log-odds.
    X : array or DataFrame, optional
        Example inputs, used to find the number of outputs of callables and torch modules.
    n_rows : int, optional
        Number of rows to be explained: a per-row target must have this length.
    output : int or str, optional
        For torch modules and callables whose output is a tuple, list or dict: the element
        (index) or key to explain. A dict or Hugging Face ``ModelOutput`` defaults to its
        ``"logits"``; a tuple or list has no default.

    Returns
    -------
    ModelFunction
        Callable ``f(X) -> ndarray of shape (m, k)`` with the ``k`` selected outputs (``k`` is
        ``f.n_outputs``); a DataFrame ``X`` is matched to the model's columns by name.

    Raises
    ------
    InvalidParameterError
        For an unknown target, a per-row target of the wrong length, or a link that does not
        fit the model (``"logit"`` of a regressor or of a decision-only classifier).
    UnsupportedModelError
        If ``model`` has no ``predict`` method and is not callable.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = wb.zoo.breast_cancer()
    >>> model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    >>> f = wb.wrap_model(model, target=1, link="logit")
    >>> f(X.iloc[:3]).shape, f.n_outputs
    ((3, 1), 1)
    >>> bool(np.allclose(f(X.iloc[:3])[:, 0], model.decision_function(X.iloc[:3])))
    True
    """
    check_in("link", link, LINKS)
    raw = _raw_adapter(model, output)
    rename = lightgbm_feature_name if _is_lightgbm(model) else None
    probe_fn = ModelFunction(
        model=model,
        model_type=model_type_name(model),
        kind=raw.kind,
        output_indices=[],
        output_names=[],
        single_output=False,
        link="identity",
        output_description="",
        feature_names_in=raw.feature_names_in,
        n_features_in=raw.n_features_in,
        _rename=rename,
    )
    labels = raw.output_names
    if labels is None:
        if raw.kind == "regression" and X is None:
            k = _n_outputs_without_call(model) or 1
        else:
            k = _probe_outputs(raw, X, probe_fn._to_model)
        if raw.kind == "regression":
            labels = ["prediction"] if k == 1 else [f"prediction {j}" for j in range(k)]
        elif raw.kind == "probability":
            labels = list(range(k))
        else:
            labels = ["output"] if k == 1 else [f"output {j}" for j in range(k)]
    k = len(labels)
    names = [str(c) for c in labels]

    fn, transform, margin = raw.fn, "none", False
    if link == "logit":
        if raw.kind == "regression":
            raise InvalidParameterError(
                f"link='logit' is the log-odds of a class probability, but this model "
                f"({model_type_name(model)}) is a regressor: its prediction is not a "
                "probability. Use link='identity'."
            )
        if raw.kind == "decision":
            raise InvalidParameterError(
                f"link='logit' is the log-odds of a class probability, but this classifier "
                f"({model_type_name(model)}) has no predict_proba and does not output "
                "probabilities: its decision function is not a log-odds. Use link='identity' "
                "to explain the decision function, or a calibrated classifier (e.g. "
                "sklearn.calibration.CalibratedClassifierCV, SVC(probability=True)) for "
                "log-odds."
            )
        if raw.kind == "probability" and raw.margin_fn is not None and k == 2:
            margin_fn = raw.margin_fn
            fn, margin = (lambda Z: _two_columns(margin_fn(Z))), True
        elif raw.kind == "probability":
            transform = "clip"
        else:
            transform = "check"

    one_margin = raw.binary_margin or margin
    sel = resolve_target(
        target,
        labels,
        is_classifier=raw.is_classifier,
        n_rows=n_rows,
        all_indices=[1] if one_margin else None,
    )
    describe = _describer(raw, names, link, margin)
    if sel.row_targets is not None:
        indices = list(range(k))
        out_names = names
        desc = describe([], per_row=True) + f" ({PER_ROW_NAME}s)"
        single = False
    else:
        indices, single = sel.indices, sel.single
        out_names = [names[j] for j in indices]
        desc = describe(indices)
    return ModelFunction(
        model=model,
        model_type=model_type_name(model),
        kind=raw.kind,
        output_indices=indices,
        output_names=out_names,
        single_output=single,
        link=link,
        output_description=desc,
        feature_names_in=raw.feature_names_in,
        n_features_in=raw.n_features_in,
        _raw=fn,
        _n_outputs_total=k,
        row_targets=sel.row_targets,
        row_target_names=(None if sel.row_targets is None else [names[j] for j in sel.row_targets]),
        _transform=transform,
        _all_names=names,
        _describe=describe,
        _rename=rename,
    )


def describe_outputs(model: Any) -> Sequence[Any] | None:
    """Class labels or output names of ``model`` when known without calling it."""
    return _raw_adapter(model).output_names
