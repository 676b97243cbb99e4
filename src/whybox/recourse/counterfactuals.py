"""Counterfactual recourse: the nearest, sparse, diverse changes that flip a model's decision.

``Counterfactuals(model, X_train, ...)`` learns the feature types, ranges and scales from the
training rows; ``.explain(x, n=3)`` then searches for ``n`` rows ``x'`` near ``x`` whose model
outcome is the desired one, under user constraints: ``immutable`` features never change,
``ranges`` bound the values a feature may be changed to (numeric features stay inside the
training range unless a range says otherwise), ``monotone`` features only increase (or only
decrease), categorical features take only categories seen in training (or the ones listed),
and integer-valued columns stay integers. Constraints are enforced on every candidate before
the model sees it, and checked again on the rows returned.

The search is model-agnostic: seeds are the real training rows nearest to the query that
already have the desired outcome (projected onto the constraints), then a line search from the
query toward them, growing spheres around the query when the seeds are not enough, greedy
sparsification (features reverted one by one to the query's value while the row stays valid),
coordinate shrinking toward the query, and a few generations of crossover and mutation; every
step evaluates its candidates in one batched model call, and no batch starts after the time
budget. For ``torch.nn.Module`` models with numeric features, Wachter et al.'s gradient search
runs first. ``n`` counterfactuals are picked by a greedy quality-weighted determinant (DiCE's
diversity), so they differ from each other.

Distances
---------
Proximity is the L1 distance to the query with each numeric feature divided by its median
absolute deviation (MAD) over the training rows (its standard deviation where the MAD is
zero, e.g. mostly-zero counts; 1 for constant columns); a changed categorical feature counts
1. Sparsity is the number of features changed. Plausibility is the mean proximity-scaled L1
distance to the 5 nearest training rows; ``lof`` is scikit-learn's local outlier factor of the
row against the training rows (about 1 for inliers, larger for outliers).

Columns and missing values
--------------------------
The model is called with rows like ``X_train``: the user's columns, names and order; the
model function matches a DataFrame's columns to the model's fitted names on every call (any
order, LightGBM's renamed columns included), and a query DataFrame is matched to
``X_train``'s columns by name. Missing numeric values (NaN) follow the model: ranges and
scales use the values present, rows of ``X_train`` with a missing value are left out of the
reference rows (seeds and plausibility), and a feature missing in the query stays missing in
every counterfactual (it is not searched; the model, e.g. XGBoost, LightGBM or
HistGradientBoosting, decides what a missing value means; a model that refuses NaN raises
its own error). Missing categories are refused.

References
----------
Wachter, S., Mittelstadt, B. and Russell, C. (2017). Counterfactual explanations without
opening the black box: automated decisions and the GDPR. Harvard Journal of Law & Technology
31(2).

Laugel, T., Lesot, M.-J., Marsala, C., Renard, X. and Detyniecki, M. (2018). Comparison-based
inverse classification for interpretability in machine learning. IPMU.

Mothilal, R. K., Sharma, A. and Tan, C. (2020). Explaining machine learning classifiers
through diverse counterfactual explanations. FAT* 2020.

Breunig, M. M., Kriegel, H.-P., Ng, R. T. and Sander, J. (2000). LOF: identifying
density-based local outliers. SIGMOD 2000.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import (
    as_2d_input,
    check_in,
    check_int,
    check_nonempty,
    check_random_state,
    check_unique_columns,
)
from ..errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from ..inspection.partial_dependence import is_per_row_target
from ..models import ModelFunction, eval_mode, is_torch_module, wrap_model
from ._cf_outcome import resolve_outcome
from ._cf_schema import Schema, build_schema
from ._cf_search import (
    Oracle,
    Outcome,
    Pool,
    Space,
    gradient_starts,
    run_gradient,
    run_search,
)

__all__ = ["CounterfactualResult", "Counterfactuals"]

_METHODS = ("auto", "search", "gradient")
_DIRECTIONS = ("increase", "decrease")


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


class CounterfactualResult:
    """Counterfactuals for one query row.

    Attributes
    ----------
    query : DataFrame of shape (1, p)
        The explained row, with the dtypes of the training data.
    counterfactuals : DataFrame of shape (k, p)
        The counterfactual rows (``k <= n``; may be empty), same columns and dtypes.
    found : bool
        True when all ``n`` requested counterfactuals were found.
    status : str
        ``"found"``, ``"partial: k of n found"`` or
        ``"no counterfactual found within the time budget (...)"``; when the query already
        has the desired outcome, a status saying so (no rows, ``found`` False).
    valid, prediction, proximity, sparsity, plausibility, lof : ndarray of shape (k,)
        Per-counterfactual metrics (see the module docstring).
    query_prediction : float
        The judged model output at the query.
    desired : str
        What the counterfactuals achieve, e.g. ``"class 0 (probability >= 0.5)"``.
    method : str
        ``"gradient"`` when Wachter's gradient path ran (its results are then refined, and
        with ``method="auto"`` joined by the model-agnostic search's), else ``"search"``.
    elapsed : float
        Wall time of the explain call, in seconds.
    n_evals : int
        Rows evaluated by the model during the search.
    """

    def __init__(self, **kw: Any) -> None:
        self.query: pd.DataFrame = kw["query"]
        self.counterfactuals: pd.DataFrame = kw["counterfactuals"]
        self.n_requested: int = kw["n_requested"]
        self.valid: np.ndarray = kw["valid"]
        self.prediction: np.ndarray = kw["prediction"]
        self.proximity: np.ndarray = kw["proximity"]
        self.sparsity: np.ndarray = kw["sparsity"]
        self.plausibility: np.ndarray = kw["plausibility"]
        self.lof: np.ndarray = kw["lof"]
        self.query_prediction: float = kw["query_prediction"]
        self.desired: str = kw["desired"]
        self.method: str = kw["method"]
        self.elapsed: float = kw["elapsed"]
        self.n_evals: int = kw["n_evals"]
        self.time_budget: float = kw["time_budget"]
        self.status: str = kw.get("status") or self._status(kw.get("exhausted", False))

    @property
    def found(self) -> bool:
        return len(self.counterfactuals) >= self.n_requested

    def _status(self, exhausted: bool) -> str:
        k = len(self.counterfactuals)
        if k >= self.n_requested:
            return "found"
        if k > 0:
            return f"partial: {k} of {self.n_requested} found"
        how = (
            f"{self.elapsed:.2f}s used of {self.time_budget:g}s; every feasible region was searched"
            if exhausted
            else f"{self.time_budget:g}s"
        )
        return f"no counterfactual found within the time budget ({how})"

    def changes(self) -> list[dict[str, tuple[Any, Any]]]:
        """For each counterfactual, ``{feature: (old, new)}`` for the features it changes."""
        out = []
        q = self.query.iloc[0]
        for i in range(len(self.counterfactuals)):
            row = self.counterfactuals.iloc[i]
            out.append(
                {
                    str(c): (_item(q[c]), _item(row[c]))
                    for c in self.counterfactuals.columns
                    if not _equal(q[c], row[c])
                }
            )
        return out

    def table(self) -> pd.DataFrame:
        """One row per counterfactual: ``old -> new`` for each changed feature, then metrics."""
        changes = self.changes()
        cols = [c for c in map(str, self.query.columns) if any(c in ch for ch in changes)]
        data: dict[str, list[Any]] = {
            c: [f"{_fmt(ch[c][0])} -> {_fmt(ch[c][1])}" if c in ch else "" for ch in changes]
            for c in cols
        }
        data.update(
            valid=list(self.valid),
            prediction=list(self.prediction),
            proximity=list(self.proximity),
            sparsity=list(self.sparsity),
            plausibility=list(self.plausibility),
            lof=list(self.lof),
        )
        return pd.DataFrame(data, index=pd.RangeIndex(len(changes), name="counterfactual"))

    def to_frame(self) -> pd.DataFrame:
        """The counterfactual rows (original dtypes) with the metric columns appended."""
        df = self.counterfactuals.reset_index(drop=True).copy()
        for name in ("valid", "prediction", "proximity", "sparsity", "plausibility", "lof"):
            df[name] = getattr(self, name)
        return df

    def __repr__(self) -> str:
        return (
            f"CounterfactualResult(status={self.status!r}, desired={self.desired!r}, "
            f"k={len(self.counterfactuals)}, elapsed={self.elapsed:.3f}s)"
        )


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _names_check(param: str, names: Sequence[Any], schema: Schema) -> list[int]:
    idx, unknown = [], []
    for name in names:
        j = schema.index(name)
        if j is None:
            unknown.append(name)
        else:
            idx.append(j)
    if unknown:
        raise InvalidParameterError(
            f"{param} names feature(s) {unknown} that are not columns of X_train. The columns "
            f"are: {schema.columns}. Use these names (or integer positions)."
        )
    return idx


class Counterfactuals:
    """Counterfactual recourse for any model, with constraints and diverse sets.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` supports. The model is called with rows
        like ``X_train`` (DataFrames keep their columns and dtypes).
    X_train : DataFrame or array of shape (n, p)
        Training (or reference) rows: feature types, ranges, scales, seeds and plausibility.
    immutable : sequence of str
        Features that never change (e.g. ``["age", "loan_purpose"]``).
    ranges : mapping, optional
        ``{feature: (lo, hi)}`` bounds for numeric features, which replace the training range
        (``None`` keeps the training bound at that end; ``float("inf")`` lifts it), or
        ``{feature: [categories]}`` for categorical ones.
    monotone : mapping, optional
        ``{feature: "increase" | "decrease"}``: the feature may only move that way.
    categorical : sequence or mapping, optional
        Extra categorical features (pandas categorical, string, object and bool columns are
        categorical already); a mapping ``{feature: [categories]}`` lists the allowed ones.
    target : optional
        Output to judge: for classifiers the desired class (as ``desired``); for multi-output
        regressors and callables, which output (index or name).
    desired : optional
        Default desired outcome: a class label for classifiers (binary: the other class than
        the query's by default), ``(lo, hi)`` for regressors and single-output callables.
    desired_proba : float, optional
        Probability the desired class must reach (classifiers with ``predict_proba``). By
        default the desired class must be the most probable one (for a binary classifier,
        probability above 0.5, as ``predict`` decides).
    method : {"auto", "search", "gradient"}
        ``"auto"``: for torch modules with numeric features the gradient path, whose results
        join the model-agnostic search's; ``"gradient"``: the gradient path only (then
        sparsified and shrunk); ``"search"``: the model-agnostic search only.
    time_budget : float
        Seconds per explained row. No model batch starts that would end, judged by the
        slowest batch of this call so far, after 95% of it, so a call returns within the
        budget unless a batch is slower than every earlier one; when the budget binds, the
        result may depend on the machine's speed (otherwise it depends only on
        ``random_state``). Running out is a normal outcome, reported in ``status``.
    max_reference : int or None
        Training rows kept for seeds and plausibility: above this, a seeded sample, with a
        ``UserWarning`` naming it (ranges and scales always use every row); None keeps all.
    random_state : int or None, default 0
        Seed of every random choice.

    Raises
    ------
    InvalidParameterError
        For an unknown feature in ``immutable``, ``ranges``, ``monotone`` or
        ``categorical``, an empty range, an unknown ``method`` or ``desired`` outcome, or
        a non-positive ``time_budget``.
    InvalidInputError
        If ``X_train`` is empty or a query does not have its columns.

    Notes
    -----
    ``.explain(x, n=3)`` searches for up to ``n`` diverse counterfactuals of one row and
    returns a ``CounterfactualResult``: ``counterfactuals`` (a DataFrame of shape (k, p),
    ``k <= n``), ``found``, ``status``, and per-counterfactual ``valid``, ``prediction``,
    ``proximity``, ``sparsity``, ``plausibility`` and ``lof`` arrays of shape (k,).
    ``.explain_many(X, n=3)`` returns one result per row.

    References
    ----------
    Wachter, S., Mittelstadt, B. and Russell, C. (2017). Counterfactual explanations without
    opening the black box. Harvard Journal of Law & Technology 31(2).
    Mothilal, R. K., Sharma, A. and Tan, C. (2020). Explaining machine learning classifiers
    through diverse counterfactual explanations. FAT* 2020.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["income", "debt", "age"])
    >>> model = LogisticRegression().fit(X, X["income"] > X["debt"])
    >>> x = pd.DataFrame({"income": [-1.0], "debt": [1.0], "age": [0.5]})  # denied
    >>> res = wb.Counterfactuals(model, X, immutable=["age"]).explain(x, n=1)
    >>> res.found, model.predict(res.counterfactuals).tolist(), res.counterfactuals["age"].tolist()
    (True, [True], [0.5])
    """

    def __init__(
        self,
        model: Any,
        X_train: Any,
        *,
        immutable: Sequence[Any] = (),
        ranges: Mapping[Any, Any] | None = None,
        monotone: Mapping[Any, str] | None = None,
        categorical: Sequence[Any] | Mapping[Any, Sequence[Any]] | None = None,
        target: Any = None,
        desired: Any = None,
        desired_proba: float | None = None,
        method: str = "auto",
        time_budget: float = 2.0,
        max_reference: int | None = 20_000,
        random_state: int | None = 0,
    ) -> None:
        check_in("method", method, _METHODS)
        for what, value in (("target", target), ("desired", desired)):
            if is_per_row_target(value):
                raise InvalidParameterError(
                    f"{what}= is one outcome (a class label or index, or (lo, hi) for a "
                    f"regressor); got a 1-D {type(value).__name__}. Counterfactuals explain "
                    "one row at a time: pass each row's desired class to explain(x, desired=)."
                )
        self.time_budget = _check_budget(time_budget)
        self.max_reference = (
            None if max_reference is None else check_int("max_reference", max_reference, minimum=2)
        )
        check_random_state(random_state)
        self.model, self.method, self.random_state = model, method, random_state
        self.target, self.desired, self.desired_proba = target, desired, desired_proba
        X = as_2d_input(X_train, "X_train")
        check_nonempty(X, "X_train")
        check_unique_columns(X, "X_train")
        if len(X) < 2:
            raise InvalidInputError(
                "X_train has 1 row; counterfactual search needs the training (or reference) "
                "rows to learn ranges and scales. Pass at least 2 rows, ideally hundreds."
            )
        cat_spec = categorical if categorical is not None else ()
        self.schema = build_schema(X, cat_spec, _names_check)
        schema = self.schema
        self.immutable = _names_check("immutable", list(immutable), schema)
        if len(set(self.immutable)) == schema.p:
            raise InvalidParameterError(
                f"immutable covers every feature of X_train ({schema.columns}): nothing can "
                "change, so no counterfactual can exist. Leave at least one feature mutable."
            )
        self.ranges = schema.parse_ranges(ranges or {}, _names_check)
        self.monotone: dict[int, str] = {}
        for name, direction in (monotone or {}).items():
            (j,) = _names_check("monotone", [name], schema)
            if direction not in _DIRECTIONS:
                raise InvalidParameterError(
                    f"monotone[{name!r}]={direction!r} is not a direction. Expected "
                    f"'increase' or 'decrease' (the feature may only move that way)."
                )
            if schema.is_cat[j] and not schema.ordered[j]:
                raise InvalidParameterError(
                    f"monotone[{name!r}]: {name!r} is an unordered categorical feature, which "
                    "has no direction. Make it an ordered pandas Categorical, or drop it from "
                    "monotone (use immutable to freeze it)."
                )
            self.monotone[j] = direction
        if method == "gradient" and not is_torch_module(model):
            raise UnsupportedModelError(
                f"method='gradient' needs a torch.nn.Module, got {type(model).__name__}. Use "
                "method='search' (model-agnostic) for other models."
            )
        if method == "gradient" and schema.is_cat.any():
            raise InvalidParameterError(
                "method='gradient' needs numeric features only, but X_train has categorical "
                f"features {[schema.columns[j] for j in np.flatnonzero(schema.is_cat)]}. Use "
                "method='search' or 'auto'."
            )
        head = X.iloc[:1] if isinstance(X, pd.DataFrame) else X[:1]
        self.model_fn: ModelFunction = wrap_model(model, target="all", X=head)
        rng = check_random_state(random_state)
        Z = schema.encode(X, "X_train")
        complete = ~np.isnan(Z).any(axis=1)
        if complete.sum() < 2:
            raise InvalidInputError(
                f"X_train has {int(complete.sum())} row(s) without a missing value; the "
                "reference rows (seeds and plausibility) need at least 2 complete rows. Pass "
                "more rows, or impute the missing values."
            )
        Z = Z[complete]
        if self.max_reference is not None and len(Z) > self.max_reference:
            import warnings

            warnings.warn(
                f"X_train has {len(Z)} complete rows; Counterfactuals keeps a seeded sample of "
                f"max_reference={self.max_reference} of them as reference rows (seeds and "
                "plausibility; ranges and scales use every row). Pass max_reference=None to "
                "use them all (slower).",
                UserWarning,
                stacklevel=2,
            )
            Z = Z[np.sort(rng.choice(len(Z), self.max_reference, replace=False))]
        self._Z_ref = Z
        self._out_ref = self._call(Z)
        self._fit_plausibility()
        if desired is not None or target is not None:
            self._outcome(self._out_ref[:1], desired, desired_proba)  # validate early

    # ------------------------------------------------------------------ model calls
    def _call(self, Z: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(Z), 8192):
            out.append(self.model_fn(self.schema.decode(Z[start : start + 8192])))
        return np.vstack(out)

    def _outcome(self, out_query: np.ndarray, desired: Any, desired_proba: Any) -> Outcome:
        return resolve_outcome(
            self.model_fn, self.model, out_query, desired, desired_proba, self.target
        )

    # ------------------------------------------------------------------ plausibility
    def _fit_plausibility(self) -> None:
        from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

        E = self.schema.embed(self._Z_ref)
        k = min(5, len(E))
        self._nn = NearestNeighbors(n_neighbors=k, metric="manhattan").fit(E)
        self._lof = LocalOutlierFactor(
            n_neighbors=min(20, len(E) - 1), novelty=True, metric="manhattan"
        ).fit(E)

    def _plausibility(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(Z) == 0:
            return np.empty(0), np.empty(0)
        E = self.schema.embed(Z)
        dist, _ = self._nn.kneighbors(E)
        return dist.mean(axis=1), -self._lof.score_samples(E)

    # ------------------------------------------------------------------ the query
    def _space(self, x0: np.ndarray, missing: np.ndarray | None = None) -> Space:
        s = self.schema
        lo, hi = s.lo.copy(), s.hi.copy()
        allowed = {j: a.copy() for j, a in s.allowed.items()}
        for j, r in self.ranges.items():
            if s.is_cat[j]:
                allowed[j] = r.copy()
            else:
                lo[j] = r[0] if r[0] is not None else lo[j]
                hi[j] = r[1] if r[1] is not None else hi[j]
        for j, d in self.monotone.items():
            if s.is_cat[j]:
                codes = np.arange(len(allowed[j]))
                allowed[j] &= codes >= x0[j] if d == "increase" else codes <= x0[j]
            elif d == "increase":
                lo[j] = max(lo[j], x0[j])
            else:
                hi[j] = min(hi[j], x0[j])
        frozen = list(self.immutable)
        if missing is not None:  # missing in the query: not searched, stays missing
            frozen += [j for j in np.flatnonzero(missing) if j not in frozen]
        for j in frozen:
            name = s.columns[j]
            if j in self.ranges and (missing is None or not missing[j]):
                r = self.ranges[j]
                inside = (
                    bool(r[int(x0[j])])
                    if s.is_cat[j]
                    else ((r[0] is None or x0[j] >= r[0]) and (r[1] is None or x0[j] <= r[1]))
                )
                if not inside:
                    raise InvalidParameterError(
                        f"ranges[{name!r}] excludes the query's value "
                        f"{_fmt(s.value_of(j, x0[j]))}, but {name!r} is immutable: the "
                        "constraints contradict each other. Drop the range or the immutability."
                    )
            if s.is_cat[j]:
                allowed[j][:] = False
            else:
                lo[j], hi[j] = np.inf, -np.inf
        ints = s.is_int
        lo = np.where(ints & np.isfinite(lo), np.ceil(lo), lo)
        hi = np.where(ints & np.isfinite(hi), np.floor(hi), hi)
        return Space(x0, s.is_cat, ints, s.scale, lo, hi, allowed)

    def _seeds(self, space: Space, outcome: Outcome, strict: bool, k: int = 64) -> np.ndarray:
        m = outcome.margin(self._out_ref)
        ok = m > 0 if strict else m >= 0
        if not ok.any():
            return np.empty((0, space.p))
        S = space.project(self._Z_ref[ok])
        S = np.unique(S, axis=0)
        d = space.distance(S)
        order = np.lexsort((np.arange(len(S)), d))[:k]
        return S[order]

    def explain(
        self,
        x: Any,
        n: int = 3,
        desired: Any = None,
        time_budget: float | None = None,
        *,
        desired_proba: float | None = None,
    ) -> CounterfactualResult:
        """Find up to ``n`` diverse counterfactuals for one row ``x``.

        Parameters
        ----------
        x : 1-row DataFrame, Series or 1-D array
            The query, with the columns of ``X_train``.
        n : int
            Number of counterfactuals wanted.
        desired, desired_proba : optional
            Override the constructor's desired outcome for this row.
        time_budget : float, optional
            Override the constructor's time budget (seconds).

        Returns
        -------
        CounterfactualResult
        """
        t0 = time.perf_counter()
        n = check_int("n", n, minimum=1)
        budget = self.time_budget if time_budget is None else _check_budget(time_budget)
        deadline = t0 + 0.95 * budget  # the rest is for the metrics of the rows found
        s = self.schema
        q = self._query(x)
        x_query = s.encode(q, "x")[0]
        missing = np.isnan(x_query)
        # a missing value is not searched: the search sees a placeholder (the training
        # median) that never changes, and the model sees NaN there on every call
        x0 = np.where(missing, s.center, x_query)
        if missing.any() and self.method == "gradient":
            raise InvalidParameterError(
                f"method='gradient' needs a complete query, but x has missing values in "
                f"{[s.columns[j] for j in np.flatnonzero(missing)]}. Use method='search' "
                "(missing values stay missing) or fill them."
            )
        space = self._space(x0, missing)

        def call(Z: np.ndarray) -> np.ndarray:
            return self._call(_with_missing(Z, missing))

        out_q = call(x0[None, :])
        outcome = self._outcome(
            out_q,
            self.desired if desired is None else desired,
            self.desired_proba if desired_proba is None else desired_proba,
        )
        strict = outcome.strict
        rng = check_random_state(self.random_state)

        def evaluate(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            o = call(Z)
            return outcome.margin(o), outcome.value(o)

        oracle = Oracle(evaluate, deadline, strict)
        seeds = self._seeds(space, outcome, strict)
        already = bool(oracle.valid(outcome.margin(out_q))[0])
        use_gradient = (
            not already
            and not missing.any()
            and (
                self.method == "gradient"
                or (self.method == "auto" and is_torch_module(self.model) and not s.is_cat.any())
            )
        )
        method = "search"
        pool = None
        if use_gradient and outcome.torch_margin is not None:
            starts = gradient_starts(space, seeds, n, rng)
            # the gradient gets 60% of the time left, the evaluation and refinement the rest
            g_deadline = time.perf_counter() + 0.6 * (deadline - time.perf_counter())
            with eval_mode(self.model):  # CONTRACT §6: eval mode, restored afterwards
                G = run_gradient(self.model, space, starts, outcome.torch_margin, g_deadline)
            G = space.project(G)
            m, v = oracle(G)
            ok = oracle.valid(m)
            pool = Pool(space.p)
            pool.add(G[ok], m[ok], v[ok])
            method = "gradient"
        explore = self.method != "gradient" and not already
        if already:  # nothing to search for: report it rather than return the query itself
            pool = Pool(space.p)
        res = run_search(space, oracle, seeds, n, rng, pool=pool, explore=explore)
        Zc = res.Z
        plaus, lof = self._plausibility(Zc)
        frame = s.to_frame(s.decode(_with_missing(Zc, missing)))
        qf = s.to_frame(s.decode(x_query[None, :]))  # the query with the dtypes of X_train
        return CounterfactualResult(
            query=qf,
            counterfactuals=frame,
            n_requested=n,
            valid=oracle.valid(res.margin),
            prediction=res.value,
            proximity=space.distance(Zc),
            sparsity=space.changed(Zc).sum(axis=1),
            plausibility=plaus,
            lof=lof,
            query_prediction=float(outcome.value(out_q)[0]),
            desired=outcome.description,
            method=method,
            elapsed=time.perf_counter() - t0,
            n_evals=oracle.n_rows,
            time_budget=budget,
            exhausted=res.exhausted,
            status=(
                f"the query already has the desired outcome ({outcome.description}); nothing "
                "needs to change"
                if already
                else None
            ),
        )

    def explain_many(
        self,
        X: Any,
        n: int = 3,
        desired: Any = None,
        time_budget: float | None = None,
        *,
        desired_proba: float | None = None,
    ) -> list[CounterfactualResult]:
        """:meth:`explain` for each row of ``X`` (each row gets its own time budget)."""
        X = as_2d_input(X, "X")
        check_nonempty(X, "X")
        rows = (X.iloc[[i]] for i in range(len(X))) if isinstance(X, pd.DataFrame) else X
        return [self.explain(r, n, desired, time_budget, desired_proba=desired_proba) for r in rows]

    def _query(self, x: Any) -> Any:
        q = as_2d_input(x, "x")
        check_nonempty(q, "x")
        if len(q) != 1:
            raise InvalidInputError(
                f"x has {len(q)} rows; explain() takes one row (a 1-row DataFrame, a Series or "
                "a 1-D array). Use explain_many(X) for several rows."
            )
        return self.schema.check_query(q)

    def __repr__(self) -> str:
        return (
            f"Counterfactuals(model={self.model_fn.model_type}, p={self.schema.p}, "
            f"immutable={[self.schema.columns[j] for j in self.immutable]}, "
            f"time_budget={self.time_budget:g})"
        )


def _with_missing(Z: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``Z`` with the query's missing features set back to NaN (a copy when any)."""
    if not missing.any():
        return Z
    Z = np.array(Z, dtype=float, copy=True)
    Z[:, missing] = np.nan
    return Z


def _check_budget(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise InvalidParameterError(
            f"time_budget must be a positive number of seconds, got {value!r}. The search "
            "stops when it is spent; 2.0 is plenty for most tabular models."
        )
    return float(value)
