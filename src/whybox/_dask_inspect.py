"""Partial dependence / ICE and permutation importance of a Dask DataFrame or Array.

Both are global summaries over all rows, so they are split where the work is (the model
calls, partition by partition on the workers) and reduced in the caller exactly as the
serial code reduces them, which keeps the results bit-identical to the serial functions:

* :func:`partial_dependence_dask`: the caller reads only the explained feature column(s)
  (one or two columns of ``n`` values) to build the grid as scikit-learn does (quantiles over
  every row); each partition's ICE curves on that grid are computed on a worker with the
  serial :func:`~whybox.inspection.partial_dependence.partial_dependence`; the caller
  concatenates them in row order and averages (weighted) as the serial code does. The ICE
  matrix (n, grid[, k]) is held in the caller.
* :func:`permutation_importance_dask`: the score is a black box over all rows
  (``scorer(estimator, X, y)``), so the scorer is called in the caller on a stand-in
  estimator whose ``predict`` / ``predict_proba`` / ``decision_function`` /
  ``score_samples`` evaluate the model partition by partition on the workers and
  concatenate the outputs. A permuted column is the whole column reindexed by one
  permutation of all ``n`` rows (drawn as the serial code draws it); each partition receives
  its slice of the permuted column(s). The model is scattered once per call.

References
----------
Friedman, J. H. (2001). Greedy function approximation: a gradient boosting machine. Annals
of Statistics 29(5). Goldstein, A. et al. (2015). Peeking inside the black box: visualizing
statistical learning with plots of individual conditional expectation. JCGS 24(1).
Breiman, L. (2001). Random forests. Machine Learning 45. Fisher, A., Rudin, C. and
Dominici, F. (2019). All models are wrong, but many are useful. JMLR 20(177).
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ._dask_explain import _check_partition, is_dask_collection, partitions
from .errors import InvalidInputError, InvalidParameterError
from .parallel import DASK_RETRIES, _dask_client, _dumps, _loads

__all__ = ["partial_dependence_dask", "permutation_importance_dask"]

_MODELS: dict[str, Any] = {}


class _Shipped:
    """An object pickled once in the caller, unpickled once per worker and token."""

    def __init__(self, obj: Any, token: str) -> None:
        self.payload = _dumps(obj)
        self.token = token

    def get(self) -> Any:
        found = _MODELS.get(self.token)
        if found is None:
            found = _loads(self.payload)
            while len(_MODELS) >= 4:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[self.token] = found
        return found


def _run(client: Any, fn: Any, parts: list[Any], extra: list[Any], token: str) -> list[Any]:
    """``fn(part_i, *extra_i)`` for every partition, results in partition order."""
    from dask import delayed

    task = delayed(fn, pure=True)
    step = uuid.uuid4().hex[:8]
    tasks = [
        task(part, *ext, dask_key_name=f"whybox-{fn.__name__.strip('_')}-{token}-{step}-{i}")
        for i, (part, ext) in enumerate(zip(parts, extra, strict=True))
    ]
    futures = client.compute(tasks, retries=DASK_RETRIES)
    try:
        return client.gather(futures)
    finally:
        try:
            client.cancel(futures)
        except Exception:  # a closed client has released its keys already
            pass


def _meta_frame(X: Any) -> Any:
    """An empty pandas frame / numpy array with X's columns and dtypes (no data read)."""
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise InvalidInputError(f"X must have shape (n, p), got a {X.ndim}-d Dask Array.")
        return np.empty((0, X.shape[1]), dtype=X.dtype)
    return X._meta


def _columns(X: Any, positions: list[int]) -> Any:
    """The columns at ``positions`` of X, computed: a DataFrame, or an (n, m) array."""
    import dask.array as da

    if isinstance(X, da.Array):
        return np.asarray(X[:, positions].compute())
    return X[[X.columns[j] for j in positions]].compute()


# ------------------------------------------------------------------ partial dependence
def _ice_partition(
    part: Any,
    i: int,
    columns: Any,
    shipped: _Shipped,
    partial_dependence: Any,
    feature: Any,
    kw: dict[str, Any],
) -> tuple[np.ndarray, str, str, list[str]]:
    part = _check_partition(part, i, columns)
    with warnings.catch_warnings():
        # the grid was checked against all rows in the caller; a partition's narrower
        # range is no reason to warn again
        warnings.simplefilter("ignore", UserWarning)
        pd_ = partial_dependence(shipped.get(), part, feature, kind="individual", **kw)
    return pd_.individual, pd_.method, pd_.output, pd_.output_names


def partial_dependence_dask(
    pdp: Any,
    model: Any,
    X: Any,
    feature: Any,
    *,
    client: Any = None,
    grid: Any = None,
    grid_resolution: int = 20,
    percentiles: tuple[float, float] = (0.05, 0.95),
    kind: str = "average",
    centered: bool = False,
    target: Any = None,
    link: str | None = None,
    categorical: Any = None,
    method: str = "auto",
    sample: int | None = None,
    sample_weight: Any = None,
    random_state: Any = 0,
) -> Any:
    """:func:`~whybox.inspection.partial_dependence.partial_dependence` of a Dask ``X``.

    Parameters are those of the serial function (``X`` a Dask DataFrame or 2-D Array, a
    numpy array or DataFrame with ``client=``); ``sample=`` is refused (sample the Dask
    collection first, e.g. ``X.sample(frac=0.1, random_state=0)``). ``pdp`` is the module
    :mod:`whybox.inspection.partial_dependence` (passed in: this module sits below it).

    Returns
    -------
    PartialDependence
        Bit-identical to the serial function on ``X.compute()``.
    """
    from ._validation import check_in, check_int

    column, resolve_feature = pdp.column, pdp.resolve_feature
    check_in("kind", kind, pdp.KINDS)
    grid_resolution = check_int("grid_resolution", grid_resolution, minimum=2)
    percentiles = pdp._check_percentiles(percentiles)
    target = pdp.check_global_target(target, "partial_dependence")
    if sample is not None:
        raise InvalidParameterError(
            "sample= draws rows of an in-memory X; on Dask sample the collection first "
            "(X.sample(frac=..., random_state=0)) and pass sample=None."
        )
    client = _dask_client(client)
    if not is_dask_collection(X):
        from ._dask_explain import _as_dask

        X = _as_dask(X, client)
    meta = _meta_frame(X)
    pair = isinstance(feature, (tuple, list))
    feats = list(feature) if pair else [feature]
    if pair and len(feats) != 2:
        raise InvalidParameterError(
            f"feature must be one column or a pair of two, got {len(feats)}: {feature!r}."
        )
    resolved = [resolve_feature(meta, f) for f in feats]
    names, positions = [r[0] for r in resolved], [r[1] for r in resolved]
    if pair and positions[0] == positions[1]:
        raise InvalidParameterError(f"the pair names the same feature twice: {feature!r}.")
    flags = pdp._categorical_flags(meta, positions, names, categorical)
    cols = _columns(X, positions)
    n = len(cols)
    if n == 0:
        raise InvalidInputError("X has no rows; pass at least one row to explain.")
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=float).reshape(-1)
        if weights.shape[0] != n or not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise InvalidParameterError(
                f"sample_weight must hold {n} finite non-negative numbers, one per row of X."
            )
        if weights.sum() <= 0:
            raise InvalidParameterError("sample_weight sums to 0; give some row a weight.")
    grids = pdp._grids_for(
        [column(cols, a) for a in range(len(names))],
        names,
        flags,
        grid,
        grid_resolution,
        percentiles,
        pair,
    )
    parts, columns = partitions(X)
    token = uuid.uuid4().hex
    shipped = client.scatter(_Shipped(model, token), broadcast=True, hash=False)
    kw = {
        "grid": tuple(grids) if pair else grids[0],
        "centered": centered,
        "target": target,
        "link": link,
        "categorical": categorical,
        "method": method,
    }
    try:
        results = _run(
            client,
            _ice_partition,
            parts,
            [(i, columns, shipped, pdp.partial_dependence, feature, kw) for i in range(len(parts))],
            token,
        )
    finally:
        client.cancel([shipped])
    ice = np.concatenate([r[0] for r in results], axis=0)
    average = np.average(ice, axis=0, weights=weights)
    values = [column(cols, a) for a in range(len(names))]
    values = [v.to_numpy() if isinstance(v, pd.Series) else v for v in values]
    _, used, output, output_names = results[0]
    return pdp.PartialDependence(
        feature=tuple(names) if pair else names[0],
        grid=tuple(grids) if pair else grids[0],
        average=average,
        individual=None if kind == "average" else ice,
        kind=kind,
        output=output,
        output_names=list(output_names),
        categorical=tuple(flags) if pair else flags[0],
        centered=bool(centered),
        method=used,
        feature_values=tuple(values) if pair else values[0],
    )


# ------------------------------------------------------------------ permutation importance
_RESPONSES = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")


def _respond(
    part: Any,
    i: int,
    columns: Any,
    shipped: _Shipped,
    response: str,
    cols: Any,
    replaced: Any,
) -> np.ndarray:
    """One partition's ``est.<response>(scored(part with columns ``cols`` replaced))``."""
    part = _check_partition(part, i, columns)
    est, scored = shipped.get()
    if cols is not None:
        if isinstance(part, pd.DataFrame):
            part = part.copy()
            for a, c in enumerate(cols):
                part.isetitem(int(c), replaced.iloc[:, a].set_axis(part.index))
        else:
            part = np.array(part, copy=True)
            part[:, cols] = replaced
    return np.asarray(getattr(est, response)(scored(part)))


class _Permutation:
    """What the scorer is given as X: which columns are replaced by which permutation."""

    def __init__(self, cols: Any = None, perm: Any = None) -> None:
        self.cols, self.perm = cols, perm


class _ClusterEstimator:
    """Stands in for the estimator in ``scorer(estimator, X, y)``: its response methods
    evaluate the model on the workers, partition by partition; other methods (``score``)
    run the estimator class's own code with this object as ``self``; attributes
    (``classes_``, tags) are the estimator's."""

    def __init__(self, est: Any, evaluate: Any) -> None:
        self._est = est
        self._evaluate = evaluate

    def __getattr__(self, name: str) -> Any:
        if name in _RESPONSES:
            getattr(self._est, name)  # AttributeError where the estimator has none

            def response(X: Any, *args: Any, **kwargs: Any) -> np.ndarray:
                return self._evaluate(name, X)

            response.__name__ = name  # scikit-learn's scorers look methods up by name
            return response
        if name == "score":  # the mixins' score(X, y) calls self.predict(X): ours
            import types

            return types.MethodType(type(self._est).score, self)
        return getattr(self._est, name)


def permutation_importance_dask(
    imp_mod: Any,
    model: Any,
    X: Any,
    y: Any,
    *,
    client: Any = None,
    scoring: Any = None,
    n_repeats: int = 5,
    groups: Any = None,
    target: Any = None,
    link: str | None = None,
    confidence: float = 0.95,
    random_state: Any = 0,
) -> Any:
    """:func:`~whybox.inspection.importance.permutation_importance` of a Dask ``X``.

    Parameters are those of the serial function; ``y`` may be a Dask Series / Array (it is
    read into the caller: the score needs all of it). The caller also holds, one group at a
    time, the permuted column(s) (``n`` values each). ``imp_mod`` is the module
    :mod:`whybox.inspection.importance` (passed in: this module sits below it); ``target``
    was checked there.

    Returns
    -------
    FeatureImportance
        Bit-identical to the serial function on ``X.compute()`` for models whose rows do not
        interact.
    """
    from ._validation import check_int, check_random_state, feature_names_of
    from .games.game import group_matrix
    from .models import wrap_model

    m = imp_mod
    _score, _scorer = m._score, m._scorer
    n_repeats = check_int("n_repeats", n_repeats, minimum=1)
    confidence = m._check_confidence(confidence)
    client = _dask_client(client)
    if not is_dask_collection(X):
        from ._dask_explain import _as_dask

        X = _as_dask(X, client)
    import dask.array as da

    head = X[:5].compute() if isinstance(X, da.Array) else X.head(5, npartitions=-1)
    parts, columns = partitions(X)
    y_arr = np.asarray(y.compute() if is_dask_collection(y) else y)
    lengths = client.gather(client.compute([_length(p) for p in parts]))
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    n = int(bounds[-1])
    if n == 0:
        raise InvalidInputError("X has no rows; pass at least one row.")
    if y_arr.ndim == 0 or y_arr.shape[0] != n:
        raise InvalidInputError(
            f"y has {0 if y_arr.ndim == 0 else y_arr.shape[0]} entries but X has {n} rows; "
            "pass one target per row of X."
        )
    if m._has_sklearn_api(model) and target is None and link is None:
        est, output = model, None
        mf = wrap_model(model)
        scored = mf._to_model
    else:
        est, output = m._adapter(model, head, target, link)
        mf = wrap_model(model, target="all", X=head)
        scored = m._same
    mf.prepare(head)
    scorer = _scorer(est, scoring)
    names = feature_names_of(head)
    players, membership = group_matrix(names, groups)
    token = uuid.uuid4().hex
    shipped = client.scatter(_Shipped((est, scored), token), broadcast=True, hash=False)

    def evaluate(response: str, stub: Any) -> np.ndarray:
        if not isinstance(stub, _Permutation):
            raise InvalidParameterError(
                "a scorer on Dask must pass its X to the estimator unchanged (whybox stands "
                "in for X); compute X, or use a scikit-learn scorer."
            )
        extra = []
        full = None if stub.cols is None else _columns(X, [int(c) for c in stub.cols])
        for i in range(len(parts)):
            rows = None if full is None else stub.perm[bounds[i] : bounds[i + 1]]
            if full is None:
                replaced = None
            elif isinstance(full, pd.DataFrame):
                replaced = full.iloc[rows]
            else:
                replaced = full[rows]
            extra.append((i, columns, shipped, response, stub.cols, replaced))
        outs = _run(client, _respond, parts, extra, token)
        return np.concatenate(outs, axis=0)

    proxy = _ClusterEstimator(est, evaluate)
    try:
        baseline = _score(scorer, proxy, _Permutation(), y_arr)
        spawned = check_random_state(random_state).spawn(len(players))
        rngs = [spawned[g] for g in m._streams(mf, head, names, players, groups)]
        imp = np.empty((len(players), n_repeats))
        for g in range(len(players)):
            cols = np.flatnonzero(membership[g])
            for r in range(n_repeats):
                perm = rngs[g].permutation(n)
                imp[g, r] = baseline - _score(scorer, proxy, _Permutation(cols, perm), y_arr)
    finally:
        client.cancel([shipped])
    mean, std = imp.mean(axis=1), imp.std(axis=1)
    lower = upper = None
    if n_repeats > 1:
        from scipy.stats import t

        half = t.ppf((1 + confidence) / 2, n_repeats - 1) * imp.std(axis=1, ddof=1)
        half /= np.sqrt(n_repeats)
        lower, upper = mean - half, mean + half
    return m.FeatureImportance(
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


def _length(part: Any) -> Any:
    from dask import delayed

    return delayed(len, pure=True)(part)
