"""Conformance helpers for explainers and games, reusable by plugins and by whybox's tests.

``check_explainer`` runs the contract every whybox explainer meets (see the README's
"explainer contract"): the shape of the result, efficiency (completeness), determinism for a
fixed ``random_state``, independence of the batch an input is explained in, DataFrames in and
out, and, where the explainer and model allow it, ``target=`` (class 0 of a binary model, one
target per row), columns matched by name, keywords read or refused, backgrounds used whole or
required, NaN model outputs refused, and the user's torch model left exactly as it was.
``check_game`` checks the Game protocol and its cache. Both raise ``AssertionError`` with a
message saying what failed: this module is a test helper, and that is its documented
behaviour. ``check_game`` and the Shapley property suite (``check_shapley_estimator`` and the
closed-form games ``MobiusGame``, ``additive_game``, ``unanimity_game``, ``pairwise_game``,
``random_game``) live in ``whybox.games.properties`` and are served from here on first use
(a module ``__getattr__``, so this file also loads beside an older whybox).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidParameterError, ModelCallError
from .explainer import Explainer
from .explanation import Explanation

__all__ = [
    "ALL_CHECKS",
    "BASIC_CHECKS",
    "NAN_SENTINEL",
    "InjectedModelFailure",
    "check_explainer",
    "nan_sentinel_model",
]

#: the checks ``check_explainer`` runs by default (every explainer keeps them)
BASIC_CHECKS: tuple[str, ...] = ("shape", "completeness", "determinism", "batch")
#: every check, in the order they run; each is switched on by name in ``checks=``
ALL_CHECKS: tuple[str, ...] = (
    *BASIC_CHECKS,
    "binary_target",
    "row_targets",
    "column_order",
    "keywords",
    "background_whole",
    "background_required",
    "nan_output",
    "model_unchanged",
)
#: written into one input of the explained rows by the ``nan_output`` check; exact in float32
NAN_SENTINEL = 4242.5


def _fail(msg: str) -> None:
    raise AssertionError(msg)


# ----------------------------------------------------------------------- small helpers
def _is_torch_module(obj: Any) -> bool:
    return any(
        c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__
    )


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _numpy(a: Any) -> np.ndarray:
    if _is_tensor(a):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _take(X: Any, rows: Any) -> Any:
    """Rows of X (DataFrame, array or tensor), keeping its type."""
    if isinstance(X, pd.DataFrame):
        return X.iloc[rows]
    return X[rows]


def _n_rows(X: Any) -> int:
    return int(X.shape[0])


def _scale(a: Any) -> float:
    a = np.abs(_numpy(a).astype(float))
    return float(a.max()) if a.size else 0.0


def _close(a: Any, b: Any, rtol: float, atol: float) -> tuple[bool, float]:
    """Whether ``a`` and ``b`` agree (``atol`` relative to their scale); the largest gap."""
    a, b = _numpy(a).astype(float), _numpy(b).astype(float)
    if a.shape != b.shape:
        return False, float("inf")
    tol = atol * max(1.0, _scale(a), _scale(b))
    ok = bool(np.allclose(a, b, rtol=rtol, atol=tol, equal_nan=False))
    return ok, float(np.max(np.abs(a - b))) if a.size else 0.0


def _output_scale(predictions: Any) -> float:
    """The contract's output scale: std of the predictions (max |prediction| for one row)."""
    p = _numpy(predictions).astype(float)
    if p.shape[0] > 1:
        s = float(np.max(p.std(axis=0)))
        if s > 0:
            return s
    return float(np.max(np.abs(p))) if p.size else 0.0


def _typo(word: str) -> str:
    """A plausible typo of ``word``: two inner letters swapped (``target`` -> ``tagret``)."""
    if len(word) < 4:
        return word + word[-1]
    i = len(word) // 2 - 1
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _call(
    make: Callable[..., Explainer], X: Any, kw: Mapping[str, Any], **overrides: Any
) -> tuple[Explanation, list[warnings.WarningMessage]]:
    """Build an explainer (with ``overrides`` passed to the factory) and explain X, recording
    every warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer = make(**overrides) if overrides else make()
        exp = explainer.explain(X, **kw)
    if not isinstance(exp, Explanation):
        _fail(f"explain() returned {type(exp).__name__}, expected an Explanation.")
    return exp, list(caught)


def _warned(caught: list[warnings.WarningMessage], *words: str) -> list[str]:
    """Messages of the UserWarnings in ``caught`` that contain one of ``words``."""
    out = []
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, UserWarning) and any(k in msg.lower() for k in words):
            out.append(msg)
    return out


def _feature_values(exp: Explanation, j: int) -> np.ndarray:
    return np.asarray(exp.values)[:, j]


# ------------------------------------------------------------------------ the checker
def check_explainer(
    make_explainer: Callable[..., Explainer],
    X: Any,
    *,
    explain_kwargs: dict[str, Any] | None = None,
    efficiency_atol: float = 1e-8,
    n_sigma: float = 4.0,
    checks: Collection[str] | str | None = None,
    efficiency_rtol: float = 0.0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    binary_targets: tuple[Any, Any] = (0, 1),
    row_targets: Any = None,
    background: Any = None,
    model: Any = None,
    typo_of: str = "target",
    shap_spellings: Mapping[str, str | None] | None = None,
    collect_failures: bool = False,
) -> Explanation:
    """Check an explainer against the whybox contract; return its Explanation of ``X``.

    Parameters
    ----------
    make_explainer : callable returning an Explainer
        Called more than once: each call must build a fresh explainer with the same
        settings (including ``random_state``). The checks that rebuild the explainer with
        something else call it with keywords: ``make_explainer(background=...)``
        (``background_whole``, ``background_required``: ``background=None``) and
        ``make_explainer(model=...)`` (``nan_output`` on a plain callable model).
    X : DataFrame, array or tensor of shape (n, ...), n >= 2
        Rows to explain.
    explain_kwargs : dict, optional
        Passed to every ``.explain`` (the checks that set ``target=`` replace it).
    efficiency_atol, efficiency_rtol : float
        Largest completeness gap allowed: ``efficiency_atol + efficiency_rtol * scale``,
        scale being the contract's output scale (std of the predictions over the rows; max
        ``|prediction|`` for one row), e.g. ``efficiency_rtol=0.01`` for the contract's 1%. A
        larger gap passes only if the explainer warned (UserWarning) about it with the
        figure.
    n_sigma : float
        With ``efficiency_rtol == 0`` (the default) and ``std`` filled (sampled methods),
        the gap may instead be within ``n_sigma`` times the standard error of the sum of the
        values (treating rows' errors as independent), plus ``efficiency_atol``. The
        column-order check compares values within ``n_sigma`` combined standard errors.
    checks : collection of str, "all" or None
        The checks to run, by name (``whybox.testing.ALL_CHECKS``); None runs
        ``whybox.testing.BASIC_CHECKS`` (shape, completeness, determinism, batch).
        Switch a check off where the explainer or model makes it meaningless (no background
        for a gradient method, no completeness for saliency, text explainers, ...):

        * ``shape`` -- an Explanation with n rows, values shaped as documented, predictions,
          ``params["output"]``; a DataFrame's columns and dtypes kept in ``exp.data``;
        * ``completeness`` -- efficiency within the tolerance, or a warning with the figure;
        * ``determinism`` -- two explainers with the same settings give identical values;
        * ``batch`` -- the first and last rows explained alone give the batch's values;
        * ``binary_target`` -- ``target=binary_targets[0]`` vs ``[1]`` on a binary model:
          values negate; predictions and base values negate (margin / log-odds) or
          complement (``1 - p``, probabilities); the output names differ and name the class;
        * ``row_targets`` -- ``target=row_targets`` (one target per row: an array, tensor or
          Series of length n) equals one run per distinct scalar target, row by row, with
          ``output_names == ["per-example target"]``, ``params["target"]`` and
          ``meta["targets"]`` the per-row output names (a row key of ``meta["row_keys"]``);
          n - 1 targets raise InvalidParameterError;
        * ``column_order`` -- X's columns reversed (a DataFrame): the same values, base
          values and predictions per column name, returned in the reversed (user's) order;
        * ``keywords`` -- a typo of the keyword ``typo_of`` raises InvalidParameterError
          naming it; each of ``shap_spellings`` (shap's name -> the whybox name the message
          must give, or None) raises InvalidParameterError too;
        * ``background_whole`` -- built with ``background`` (N rows, more than any default
          summary size), ``params["background_rows"] == N``, or fewer with a UserWarning
          saying it was summarised;
        * ``background_required`` -- built with ``background=None``, explaining raises
          InvalidParameterError mentioning ``background``;
        * ``nan_output`` -- the model returns NaN on the rows holding ``NAN_SENTINEL``
          (written into one input of row 0): explaining raises ModelCallError;
        * ``model_unchanged`` -- the torch ``model``'s parameters, buffers and every
          module's training flag are bit-identical after an explain, and after an explain
          during which the model raised; a model in training mode is warned about (a
          UserWarning mentioning "training mode").
    rtol, atol : float
        Tolerance of the "same values" comparisons (batch, targets, column order); ``atol``
        is relative to the values' scale. Float32 models need about ``1e-5``.
    binary_targets : pair
        The two classes of a binary model, class 0's first.
    row_targets : array, tensor or Series of length n
        One target per row, for ``row_targets``.
    background : DataFrame, array or tensor
        A background larger than the explainer's default summary, for ``background_whole``.
    model : object
        The user's model the explainer was built on: needed by ``model_unchanged`` (a torch
        module) and ``nan_output`` (torch modules get a forward hook, models with
        ``predict``/``predict_proba``/``decision_function`` get those methods patched on the
        instance for the check, plain callables are rebuilt through
        ``make_explainer(model=...)``); always restored afterwards.
    typo_of : str
        A keyword every ``.explain`` of this explainer accepts.
    shap_spellings : mapping, optional
        shap keyword -> the whybox keyword the error message should name (None: any message).
    collect_failures : bool
        Run every check and raise one AssertionError listing all failures (one line each,
        ``"<check>: <message>"``) instead of stopping at the first.

    Returns
    -------
    Explanation
        The explanation of ``X`` with ``explain_kwargs``.

    Raises
    ------
    AssertionError
        Naming the check that failed (``"<check>: ..."``) and what was wrong. An exception
        raised by the explainer inside a check is reported the same way (its type and
        message), except in the first explain of ``X``, which propagates.
    InvalidParameterError
        For an unknown name in ``checks`` (the message lists the checks), or ``"nan_output"``
        asked of an ``X`` without a float column.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from whybox.testing import check_explainer
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> def make(model=model, background=X.iloc[:30]):
    ...     return wb.ExactShap(model, background)
    >>> checks = ["shape", "completeness", "batch", "column_order", "nan_output"]
    >>> exp = check_explainer(make, X.iloc[:4], checks=checks, model=model)  # passes silently
    >>> exp.values.shape
    (4, 10)
    """
    if checks is None:
        selected = list(BASIC_CHECKS)
    elif checks == "all":
        selected = list(ALL_CHECKS)
    else:
        selected = list(checks)
    unknown = sorted(set(selected) - set(ALL_CHECKS))
    if unknown:
        raise InvalidParameterError(
            f"unknown check(s) {unknown}; the checks are {list(ALL_CHECKS)}: pass names from "
            "that list in checks=."
        )
    kw = dict(explain_kwargs or {})
    initial = _torch_state(model) if _is_torch_module(model) else None
    exp, caught = _call(make_explainer, X, kw)
    ctx = _Context(
        make=make_explainer,
        X=X,
        kw=kw,
        exp=exp,
        caught=caught,
        efficiency_atol=efficiency_atol,
        efficiency_rtol=efficiency_rtol,
        n_sigma=n_sigma,
        rtol=rtol,
        atol=atol,
        binary_targets=binary_targets,
        row_targets=row_targets,
        background=background,
        model=model,
        initial_state=initial,
        typo_of=typo_of,
        shap_spellings=dict(shap_spellings or {}),
    )
    failures: list[str] = []
    for name in ALL_CHECKS:
        if name not in selected:
            continue
        try:
            _CHECKS[name](ctx)
        except AssertionError as e:
            if not collect_failures:
                raise AssertionError(f"{name}: {e}") from e
            failures.append(f"{name}: {e}")
        except Exception as e:  # the explainer broke inside a check: that check fails
            msg = f"{name}: raised {type(e).__name__}: {_one_line(e)}"
            if not collect_failures:
                raise AssertionError(msg) from e
            failures.append(msg)
    if failures:
        raise AssertionError("\n".join(failures))
    return exp


def _one_line(e: BaseException, limit: int = 300) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class _Context:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    @property
    def n(self) -> int:
        return _n_rows(self.X)

    def explain(self, X: Any = None, **kw: Any) -> tuple[Explanation, list[Any]]:
        merged = {**self.kw, **kw}
        return _call(self.make, self.X if X is None else X, merged)


# ------------------------------------------------------------------------- the checks
def _check_shape(c: _Context) -> None:
    exp, X, n = c.exp, c.X, c.n
    if exp.n_rows != n:
        _fail(f"explained {n} rows but the Explanation has {exp.n_rows}.")
    if exp.is_ragged:
        _fail("a tabular explainer returned a ragged Explanation.")
    values = np.asarray(exp.values)
    if np.ndim(X) == 2:
        expected_ndim = 3 if exp.multi_output else 2
        if values.ndim != expected_ndim:
            _fail(f"values have shape {values.shape}; expected {expected_ndim} dimensions.")
    elif values.shape[0] != n:
        _fail(f"values have shape {values.shape} for {n} inputs.")
    if exp.std is not None and np.shape(exp.std) != values.shape:
        _fail("std does not have the shape of values.")
    if exp.predictions is None:
        _fail("the Explanation has no predictions, so completeness cannot be checked.")
    if "output" not in exp.params:
        _fail("params['output'] does not say which output was explained.")
    if isinstance(X, pd.DataFrame) and exp.data is not None:
        if not isinstance(exp.data, pd.DataFrame):
            _fail("a DataFrame was explained but exp.data is not a DataFrame.")
        if list(exp.data.columns) != list(X.columns):
            _fail("exp.data does not keep the columns of X.")
        if not exp.data.dtypes.equals(X.dtypes):
            _fail("exp.data does not keep the dtypes of X.")


def _check_completeness(c: _Context) -> None:
    exp = c.exp
    gap = np.abs(np.asarray(exp.completeness_gap(), dtype=float))
    if np.isnan(gap).any():
        _fail("the completeness gap is NaN (NaN values, base values or predictions).")
    if exp.std is None or c.efficiency_rtol > 0:  # the contract's rule: a fraction of scale
        bound = c.efficiency_atol + c.efficiency_rtol * _output_scale(exp.predictions)
        ok = gap.max() <= bound
        detail = f"largest completeness gap {gap.max():.3e} > {bound:.3e}"
    else:
        se = np.sqrt((np.asarray(exp.std) ** 2).sum(axis=exp.feature_axes))
        ok = bool(np.all(gap <= c.n_sigma * se + c.efficiency_atol))
        detail = (
            f"completeness gap {gap.max():.3e} exceeds {c.n_sigma} standard errors of the sum "
            "of values"
        )
    if ok:
        return
    figures = [
        m
        for m in _warned(c.caught, "complete", "gap", "efficien", "additiv")
        if re.search(r"\d", m)
    ]
    if figures:
        return  # a poor result that says so, with its figure (contract 7)
    _fail(f"efficiency fails: {detail}, and no warning gave the figure.")


def _check_determinism(c: _Context) -> None:
    again, _ = c.explain()
    if not np.array_equal(np.asarray(again.values), np.asarray(c.exp.values)):
        _fail("two explainers with the same settings gave different values (not deterministic).")


def _check_batch(c: _Context) -> None:
    for i in sorted({0, c.n - 1}):
        alone, _ = c.explain(_take(c.X, slice(i, i + 1)))
        ok, worst = _close(np.asarray(alone.values)[0], np.asarray(c.exp.values)[i], c.rtol, c.atol)
        if not ok:
            _fail(
                f"row {i} explained alone differs from row {i} explained in a batch "
                f"(largest difference {worst:.3e})."
            )


def _check_binary_target(c: _Context) -> None:
    t0, t1 = c.binary_targets
    e0, _ = c.explain(target=t0)
    e1, _ = c.explain(target=t1)
    if e0.multi_output or e1.multi_output:
        _fail(f"a scalar target explained several outputs: values of shape {e0.values.shape}.")
    p0, p1 = _numpy(e0.predictions).astype(float), _numpy(e1.predictions).astype(float)
    if _close(p0, -p1, c.rtol, c.atol)[0]:
        kind, base_ok = "margin", _close(e0.base_values, -_numpy(e1.base_values), c.rtol, c.atol)
    elif _close(p0, 1.0 - p1, c.rtol, c.atol)[0]:
        kind = "probability"
        base_ok = _close(e0.base_values, 1.0 - _numpy(e1.base_values), c.rtol, c.atol)
    else:
        _fail(
            f"target={t0!r} explains an output that is neither the negation (margin) nor the "
            f"complement (1 - p) of target={t1!r}'s: predictions {p0[:3].round(6).tolist()} vs "
            f"{p1[:3].round(6).tolist()} (output {e0.params.get('output')!r} vs "
            f"{e1.params.get('output')!r})."
        )
    ok, worst = _close(e0.values, -np.asarray(e1.values), c.rtol, c.atol)
    if not ok:
        _fail(
            f"values of target={t0!r} are not the negated values of target={t1!r} "
            f"({kind} output; largest difference {worst:.3e})."
        )
    no_reference = not np.any(_numpy(e0.base_values)) and not np.any(_numpy(e1.base_values))
    if not base_ok[0] and not no_reference:  # all-zero base values: no reference output
        rule = "-base" if kind == "margin" else "1 - base"
        _fail(f"base values of target={t0!r} are not {rule} of target={t1!r}'s ({kind} output).")
    n0, n1 = list(e0.output_names or []), list(e1.output_names or [])
    if n0 == n1:
        _fail(f"target={t0!r} and target={t1!r} give the same output_names {n0}.")
    if not n0 or str(t0) not in str(n0[0]):
        _fail(f"target={t0!r} gives output_names {n0}, which do not name class {t0!r}.")


def _check_row_targets(c: _Context) -> None:
    targets = c.row_targets
    if targets is None:
        _fail("row_targets= (one target per row) was not given to check_explainer.")
    labels = _numpy(targets).tolist()
    if len(labels) != c.n:
        _fail(f"row_targets has {len(labels)} entries for {c.n} rows.")
    exp, _ = c.explain(target=targets)
    if exp.multi_output:
        _fail(
            f"one target per row explained {exp.n_outputs} outputs for every row (values of "
            f"shape {np.shape(exp.values)}); expected one output per row, no output axis."
        )
    if list(exp.output_names or []) != ["per-example target"]:
        _fail(f"output_names is {exp.output_names}, expected ['per-example target'].")
    per_row = exp.params.get("target")
    if not isinstance(per_row, list) or len(per_row) != c.n:
        _fail(f"params['target'] is {per_row!r}, expected a list of {c.n} per-row output names.")
    for label in dict.fromkeys(labels):
        one, _ = c.explain(target=label)
        rows = [i for i, t in enumerate(labels) if t == label]
        for what in ("values", "base_values", "predictions"):
            a = _numpy(getattr(exp, what))[rows]
            b = _numpy(getattr(one, what))[rows]
            ok, worst = _close(a, b, c.rtol, c.atol)
            if not ok:
                _fail(
                    f"{what} of the rows with per-row target {label!r} differ from a run with "
                    f"target={label!r} (largest difference {worst:.3e})."
                )
        name = str((one.output_names or [label])[0])
        wrong = [i for i in rows if str(per_row[i]) != name]
        if wrong:
            _fail(f"params['target'] names rows {wrong} {per_row[wrong[0]]!r}, expected {name!r}.")
    meta = exp.meta or {}
    if meta.get("targets") != per_row or "targets" not in meta.get("row_keys", ()):
        _fail(
            "meta['targets'] must hold the per-row output names and be listed in "
            f"meta['row_keys'] (so exp[rows] slices it); got {meta.get('targets')!r} and "
            f"{meta.get('row_keys')!r}."
        )
    short = _take(targets, slice(0, c.n - 1))
    try:
        c.explain(target=short)
    except InvalidParameterError:
        return
    except Exception as e:
        _fail(
            f"{c.n - 1} per-row targets for {c.n} rows raised {type(e).__name__} "
            f"({_one_line(e, 150)}), not InvalidParameterError."
        )
    _fail(f"{c.n - 1} per-row targets for {c.n} rows were accepted without an error.")


def _check_column_order(c: _Context) -> None:
    X, exp = c.X, c.exp
    if not isinstance(X, pd.DataFrame):
        _fail("column_order needs X as a DataFrame.")
    names = [str(col) for col in X.columns]
    order = list(X.columns)[::-1]
    swapped, _ = c.explain(X[order])
    got = list(swapped.feature_names)
    if got != [str(col) for col in order]:
        _fail(f"with X's columns reversed the values come back as {got}, not in X's order.")
    if isinstance(swapped.data, pd.DataFrame) and list(swapped.data.columns) != order:
        _fail("with X's columns reversed, exp.data does not keep the user's column order.")
    sampled = exp.std is not None and bool(np.any(np.asarray(exp.std) > 0))
    # a sampled surrogate's intercept (LIME's) is itself an estimate: only values have errors
    for what in ("predictions",) if sampled else ("predictions", "base_values"):
        ok, worst = _close(getattr(swapped, what), getattr(exp, what), c.rtol, c.atol)
        if not ok:
            _fail(
                f"{what} change when X's columns are reversed (largest difference {worst:.3e}): "
                "the columns reach the model by position, not by name."
            )
    for j, name in enumerate(names):
        a = _feature_values(exp, j)
        b = _feature_values(swapped, got.index(name))
        if exp.std is not None and swapped.std is not None:
            sa = np.asarray(exp.std)[:, j]
            sb = np.asarray(swapped.std)[:, got.index(name)]
            tol = c.n_sigma * np.sqrt(sa**2 + sb**2) + c.atol * max(1.0, _scale(a))
            bad = np.abs(a - b) > tol
            ok, worst = not bad.any(), float(np.max(np.abs(a - b)))
        else:
            ok, worst = _close(a, b, c.rtol, c.atol)
        if not ok:
            _fail(
                f"the values of {name!r} change when X's columns are reversed (largest "
                f"difference {worst:.3e})."
            )


def _check_keywords(c: _Context) -> None:
    typo = _typo(c.typo_of)
    cases: dict[str, str | None] = {typo: c.typo_of, **c.shap_spellings}
    for word, expected in cases.items():
        try:
            c.explain(**{word: 1})
        except InvalidParameterError as e:
            if expected is not None and expected not in str(e):
                _fail(f"the error for the keyword {word!r} does not name {expected!r}: {e}")
            continue
        except Exception as e:
            _fail(
                f"the unknown keyword {word!r} raised {type(e).__name__} ({_one_line(e, 150)}), "
                "not InvalidParameterError."
            )
        _fail(f"the unknown keyword {word!r} was accepted without an error.")


def _check_background_whole(c: _Context) -> None:
    bg = c.background
    if bg is None:
        _fail("background= (a background of more rows than the default summary) was not given.")
    N = _n_rows(bg)
    exp, caught = _call(c.make, _take(c.X, slice(0, 1)), c.kw, background=bg)
    rows = exp.params.get("background_rows")
    if rows == N:
        return
    said = _warned(caught, "max_background", "summar", "sample", "kmeans")
    if rows is not None and rows < N and said:
        return
    _fail(
        f"a background of {N} rows was given but params['background_rows'] is {rows!r}"
        + ("" if said else " and no warning said it was summarised")
        + "."
    )


def _check_background_required(c: _Context) -> None:
    try:
        _call(c.make, c.X, c.kw, background=None)
    except InvalidParameterError as e:
        if "background" not in str(e):
            _fail(f"the error without a background does not mention background=: {e}")
        return
    _fail(
        "explained without a background (standing in other rows); a model-agnostic method "
        "must raise InvalidParameterError saying how to pass background=."
    )


@contextmanager
def nan_sentinel_model(model: Any, sentinel: float = NAN_SENTINEL) -> Iterator[Any]:
    """Make ``model`` return NaN on every input row that holds ``sentinel``, temporarily.

    A torch module gets a forward hook; a model with ``predict`` / ``predict_proba`` /
    ``decision_function`` / ``predict_log_proba`` gets those replaced on the instance; a plain
    callable is wrapped. Yields the model to explain (the same object, except for a plain
    callable). Everything is restored on exit.

    Parameters
    ----------
    model : object
        A torch module, a model with ``predict``-style methods, or a callable.
    sentinel : float, default NAN_SENTINEL (4242.5)
        The input value that makes a row's output NaN (exact in float32).

    Yields
    ------
    object
        The model to explain while the context is open.

    Examples
    --------
    >>> from whybox.testing import NAN_SENTINEL, nan_sentinel_model
    >>> f = lambda X: np.asarray(X).sum(axis=1)
    >>> with nan_sentinel_model(f) as poisoned:
    ...     print(poisoned(np.array([[1.0, NAN_SENTINEL], [1.0, 2.0]])))
    [nan  3.]
    """

    def poison(X: Any, out: Any) -> Any:
        if isinstance(X, pd.DataFrame):
            num = X.select_dtypes("number")
            mask = (num.to_numpy(dtype=float) == sentinel).any(axis=1)
        else:
            arr = _numpy(X)
            mask = (arr.reshape(arr.shape[0], -1) == sentinel).any(axis=1)
        if not mask.any():
            return out
        out = np.array(out, dtype=float, copy=True)
        out[mask] = np.nan
        return out

    if _is_torch_module(model):
        import torch

        def hook(module: Any, args: Any, out: Any) -> Any:
            x = args[0]
            mask = (x.reshape(x.shape[0], -1) == sentinel).any(dim=1)
            if not bool(mask.any()):
                return None
            shape = (-1,) + (1,) * (out.dim() - 1)
            return torch.where(mask.reshape(shape), torch.full_like(out, float("nan")), out)

        handle = model.register_forward_hook(hook)
        try:
            yield model
        finally:
            handle.remove()
        return
    methods = [
        m
        for m in ("predict", "predict_proba", "decision_function", "predict_log_proba")
        if hasattr(model, m)
    ]
    if not methods:
        if not callable(model):
            raise TypeError(f"cannot make a {type(model).__name__} return NaN.")
        yield lambda X, *a, **k: poison(X, model(X, *a, **k))
        return
    for m in methods:
        original = getattr(model, m)
        setattr(model, m, lambda X, *a, _f=original, **k: poison(X, _f(X, *a, **k)))
    try:
        yield model
    finally:
        for m in methods:
            try:
                delattr(model, m)
            except AttributeError:  # pragma: no cover - a class that forbids it
                pass


def _with_sentinel(X: Any, row: int = 0) -> Any:
    """A copy of X whose row ``row`` holds :data:`NAN_SENTINEL` in its first numeric input."""
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        num = [col for col in out.columns if pd.api.types.is_float_dtype(out[col])]
        if not num:
            raise InvalidParameterError(
                "nan_output needs a float column in X to hold the sentinel; give X a float "
                "column, or leave 'nan_output' out of checks=."
            )
        out.loc[out.index[row], num[0]] = NAN_SENTINEL
        return out
    out = X.clone() if _is_tensor(X) else np.array(X, copy=True)
    out[row].reshape(-1)[0] = NAN_SENTINEL
    if not _is_tensor(X) and out[row].reshape(-1)[0] != NAN_SENTINEL:  # a non-contiguous row
        flat = out[row].copy().reshape(-1)
        flat[0] = NAN_SENTINEL
        out[row] = flat.reshape(out[row].shape)
    return out


def _check_nan_output(c: _Context) -> None:
    if c.model is None:
        _fail("nan_output needs model= (the model the explainer was built on).")
    X = _with_sentinel(c.X)
    with nan_sentinel_model(c.model) as poisoned:
        overrides = {} if poisoned is c.model else {"model": poisoned}
        try:
            exp, _ = _call(c.make, X, c.kw, **overrides)
        except ModelCallError:
            return
        except Exception as e:
            _fail(
                f"a model output of NaN raised {type(e).__name__} ({_one_line(e, 150)}), not "
                "ModelCallError naming the rows."
            )
    nan_values = bool(np.isnan(_numpy(exp.values).astype(float)).any())
    _fail(
        "a model output of NaN (row 0) did not raise ModelCallError; the explanation "
        + ("holds NaN values." if nan_values else "has no NaN values (the output was not used?).")
    )


def _torch_state(model: Any) -> dict[str, Any]:
    state = {f"parameter {k}": v.detach().clone() for k, v in model.named_parameters()}
    state.update({f"buffer {k}": v.detach().clone() for k, v in model.named_buffers()})
    modes = {f"module {k or '<root>'}": m.training for k, m in model.named_modules()}
    grads = {f"requires_grad {k}": v.requires_grad for k, v in model.named_parameters()}
    return {"tensors": state, "modes": modes, "grads": grads}


def _state_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    import torch

    out = []
    for k, v in before["tensors"].items():
        w = after["tensors"].get(k)
        if w is None or w.shape != v.shape or w.dtype != v.dtype or not torch.equal(w, v):
            out.append(f"{k} changed")
    for key in ("modes", "grads"):
        for k, v in before[key].items():
            if after[key].get(k) != v:
                out.append(f"{k}: {v} -> {after[key].get(k)}")
    return out


class InjectedModelFailure(RuntimeError):
    """Raised by the model (through a hook) in the ``model_unchanged`` check.

    The check makes the user's torch model raise this in the middle of an explanation, then
    verifies that the model's parameters, buffers and training flags were restored; an
    explainer may let it propagate (it is a ``RuntimeError``) but must not leave the model
    changed.

    Examples
    --------
    >>> from whybox.testing import InjectedModelFailure
    >>> issubclass(InjectedModelFailure, RuntimeError)
    True
    >>> str(InjectedModelFailure("injected by check_explainer"))
    'injected by check_explainer'
    """


def _check_model_unchanged(c: _Context) -> None:
    model = c.model
    if not _is_torch_module(model):
        _fail("model_unchanged needs model= a torch module.")
    before = c.initial_state  # taken before the first explain of X
    if before["modes"].get("module <root>") and not _warned(c.caught, "training mode"):
        _fail("the model was in training mode and explain did not warn (UserWarning) about it.")
    c.explain()
    diff = _state_diff(before, _torch_state(model))
    if diff:
        _fail("explain changed the user's model: " + "; ".join(diff[:4]) + ".")
    calls = [0]

    def fail_after_first(module: Any, args: Any) -> None:
        calls[0] += 1
        if calls[0] > 1:
            raise InjectedModelFailure("failure injected by whybox.testing")

    handle = model.register_forward_pre_hook(fail_after_first)
    try:
        c.explain()
    except Exception:  # the model raised: the explainer may wrap it in its own error
        pass
    finally:
        handle.remove()
    diff = _state_diff(before, _torch_state(model))
    if diff:
        _fail(
            "after the model raised inside explain, the user's model was left changed: "
            + "; ".join(diff[:4])
            + "."
        )


_CHECKS: dict[str, Callable[[_Context], None]] = {
    "shape": _check_shape,
    "completeness": _check_completeness,
    "determinism": _check_determinism,
    "batch": _check_batch,
    "binary_target": _check_binary_target,
    "row_targets": _check_row_targets,
    "column_order": _check_column_order,
    "keywords": _check_keywords,
    "background_whole": _check_background_whole,
    "background_required": _check_background_required,
    "nan_output": _check_nan_output,
    "model_unchanged": _check_model_unchanged,
}


#: the game-level property suite lives in :mod:`whybox.games.properties` (numpy only); its names
#: are served from here too, imported on first use
_PROPERTY_SUITE = (
    "MobiusGame",
    "additive_game",
    "check_game",
    "check_shapley_estimator",
    "pairwise_game",
    "random_game",
    "unanimity_game",
)


def __getattr__(name: str) -> Any:
    if name in _PROPERTY_SUITE:
        import importlib

        return getattr(importlib.import_module("whybox.games.properties"), name)
    raise AttributeError(f"module 'whybox.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PROPERTY_SUITE])
