"""LIME explainers of any model: :class:`Lime` (lime's ``LimeTabularExplainer``, and lime's
``LimeImageExplainer`` with an ImageMasker) and :class:`SubmodularPick` (SP-LIME).

The numerical core (interpretable space, kernel, surrogate fits, the submodular pick) is
:mod:`whybox.games.lime`; see its docstring for how whybox follows lime.

References
----------
Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD, 1135-1144.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_in, check_int, check_keywords
from ..errors import InvalidParameterError
from ..explainer import Explainer, ProgressFn
from ..explanation import ROW_KEYS, Explanation
from ..games._lime_batch import fit_batch
from ..games.game import DEFAULT_CHUNK_BYTES
from ..games.image import ImageGame, lime_image
from ..games.lime import (
    DISCRETIZERS,
    SELECTIONS,
    InterpretableSpace,
    _is_real,
    default_kernel_width,
    submodular_pick,
)
from ..games.maskers import Masker
from ..models import ModelFunction
from ..parallel import map_chunks, row_generator
from ._base import TabularGameExplainer, _RowTask

__all__ = ["Lime", "SubmodularPick"]

#: lime's kernel width for images (``LimeImageExplainer(kernel_width=0.25)``)
IMAGE_KERNEL_WIDTH = 0.25


class Lime(TabularGameExplainer):
    """LIME for tabular models: faithful to lime's defaults, seeded, fast, with standard errors.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` supports.
    background : DataFrame, array of shape (n_bg, p), Masker, or ImageMasker
        lime's training data: bin edges, means, standard deviations and the marginals that
        perturbations are drawn from (required; lime's ``training_data``). With an
        :class:`~whybox.games.image.ImageMasker`, LIME explains images as lime's
        ``LimeImageExplainer``.
    n_features : int
        Features in each explanation (lime's ``num_features``).
    kernel_width : float, optional
        Width of the exponential kernel; default ``0.75 sqrt(p)``.
    discretize : {"quartile", "decile", None}
        Interpretable representation of numeric features (lime's ``discretizer``, ``None``
        for ``discretize_continuous=False``).
    feature_selection : {"auto", "forward_selection", "highest_weights", "lasso_path", "none"}
        lime's feature selection (``"auto"``: forward selection up to 6 features, else highest
        weights; ``"none"``: every feature).
    ridge_alpha : float
        Penalty of the final ridge surrogate (lime's ``Ridge(alpha=1)``).
    categorical_features : list of int or str, optional
        Numeric columns (positions or names) to treat as categorical; non-numeric and bool
        columns always are.
    link, random_state, allow_nan, n_jobs, backend, client, chunk_size, chunk_bytes
        As for :class:`whybox.ExactShap`: output scale (default ``"identity"``), seed (default
        0), NaN accepted (default False), worker processes, ``"serial"`` / ``"processes"`` /
        ``"dask"`` backend, Dask client, rows per task. ``chunk_bytes`` (default 256 MB)
        bounds the memory of one batch: the model inputs of its perturbations and the
        surrogate fit's working arrays (a row's ``budget`` samples are sent in pieces above
        it).
    max_batch_rows : int, optional
        Most perturbed rows in one model call. The perturbations of consecutive explained rows
        are sent to the model together, as many rows as fit (at least one explained row's;
        its samples are split above this), and their surrogates are fitted together. Default:
        what ``chunk_bytes`` allows. Results do not depend on it.
    max_background : int or None
        Background rows kept (a sample with a warning below the rows given); None keeps all,
        as lime does.
    groups : None
        Not supported: LIME explains single features.

    Notes
    -----
    ``exp.values[i, j]`` is the surrogate coefficient of feature ``j`` times ``x_j``'s
    interpretable value: the coefficient itself with discretisation (``x``'s own value is 1),
    coefficient times ``(x_j - mean_j) / std_j`` without; 0 for unselected features.
    ``exp.base_values`` is the intercept, ``exp.std`` the standard errors (same scaling),
    ``exp.meta["fidelity"]`` the weighted R^2 per row, ``exp.meta["local_prediction"]`` the
    surrogate's prediction at ``x``, ``exp.meta["selected_features"]`` the chosen features in
    selection order and ``exp.meta["conditions"]`` lime's readable interpretable features
    (``"mean radius <= 13.37"``).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = wb.zoo.breast_cancer()
    >>> X = (X - X.mean()) / X.std()
    >>> model = LogisticRegression().fit(X, y)
    >>> exp = wb.Lime(model, X, n_features=5).explain(X.iloc[:2], budget=1000)
    >>> exp.values.shape, (exp.values != 0).sum(axis=1).tolist()  # 5 features per row
    ((2, 30), [5, 5])
    >>> len(exp.meta["fidelity"]), len(exp.meta["selected_features"][0])
    (2, 5)
    """

    method = "lime"
    efficient = False  # a local surrogate: prediction - intercept - values is its misfit at x
    cost_grows_with_background = False  # perturbations are drawn from it: budget rows a row

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
        categorical_features: Sequence[int | str] | None = None,
        link: str = "identity",
        random_state: int | None = 0,
        allow_nan: bool = False,
        n_jobs: int | None = None,
        backend: str = "serial",
        client: Any = None,
        chunk_size: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_background: int | None = None,
        groups: Any = None,
        max_batch_rows: int | None = None,
    ) -> None:
        if groups:
            raise InvalidParameterError(
                "Lime does not support groups=: its interpretable features are single columns. "
                "Drop groups=, or use KernelShap / ExactShap to explain feature groups."
            )
        super().__init__(
            model,
            background,
            max_background=max_background,
            link=link,
            random_state=random_state,
            allow_nan=allow_nan,
            chunk_bytes=chunk_bytes,
            n_jobs=n_jobs,
            backend=backend,
            client=client,
            chunk_size=chunk_size,
        )
        self.n_features = check_int("n_features", n_features, minimum=1)
        if kernel_width is not None and not (_is_real(kernel_width) and kernel_width > 0):
            raise InvalidParameterError(
                f"kernel_width must be a positive finite number or None (lime's default "
                f"0.75 * sqrt(n_features)), got {kernel_width!r}."
            )
        self.kernel_width = None if kernel_width is None else float(kernel_width)
        self.discretize = check_in("discretize", discretize, DISCRETIZERS)
        self.feature_selection = check_in("feature_selection", feature_selection, SELECTIONS)
        if not (_is_real(ridge_alpha) and ridge_alpha >= 0):
            raise InvalidParameterError(
                f"ridge_alpha must be a finite number >= 0 (lime uses 1.0), got {ridge_alpha!r}."
            )
        self.ridge_alpha = float(ridge_alpha)
        cats = list(categorical_features or [])
        for c in cats:
            if isinstance(c, bool) or not isinstance(c, (numbers.Integral, str)):
                raise InvalidParameterError(
                    "categorical_features must list column positions (int) or names (str); "
                    f"got {c!r} of type {type(c).__name__}."
                )
        self.categorical_features = cats
        self.max_batch_rows = (
            None
            if max_batch_rows is None
            else check_int("max_batch_rows", max_batch_rows, minimum=1)
        )
        self._space: tuple[Masker, InterpretableSpace] | None = None
        self._categorical_names: set[str] = set()
        self._width = self.kernel_width

    def explain(  # type: ignore[override]
        self,
        X: Any,
        *,
        budget: int = 5000,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Explain each row of ``X`` (DataFrame or array (n, p)) with a local surrogate.

        ``budget`` is the number of perturbation samples per row, the row itself being the
        first (lime's ``num_samples``): the model sees ``budget`` rows per explained row, the
        samples of several rows in one call (see ``max_batch_rows``).
        ``target``, ``link`` and ``progress`` are as for every explainer. Returns an
        Explanation with ``values`` (n, p), or (n, p, k) for several outputs (each fitted
        separately), ``base_values`` the intercepts, ``std`` the standard errors and
        ``n_evals == budget``.
        """
        self._check_keywords(kwargs)
        budget = check_int("budget", budget, minimum=2)
        options = {"budget": budget}
        return self._run(X, target=target, link=link, progress=progress, options=options)

    def _masker(self, X: Any, fn: ModelFunction) -> Masker:
        masker = super()._masker(X, fn)
        # positions refer to the caller's columns: resolved to names before rows are explained
        self._categorical_names = self._resolve_categorical(list(masker.feature_names))
        self._space = (masker, self._build_space(masker))
        return masker

    def _build_space(self, masker: Masker) -> InterpretableSpace:
        if masker.n_rows < 2:
            raise InvalidParameterError(
                f"Lime draws perturbations from the background's distribution, but the "
                f"background has {masker.n_rows} row (a Baseline?): every sample would be the "
                "same. Pass training rows as background (lime's training_data)."
            )
        names = list(masker.feature_names)
        cats = {names.index(c) for c in self._categorical_names}
        return InterpretableSpace(masker, self.discretize, cats)

    def _resolve_categorical(self, names: list[str]) -> set[str]:
        """The names of ``categorical_features`` (positions in ``names``), checked."""
        cats = set()
        for c in self.categorical_features:
            if isinstance(c, str) and c not in names:
                raise InvalidParameterError(
                    f"categorical_features names {c!r}, which is not a column; columns are {names}."
                )
            if not isinstance(c, str) and not -len(names) <= c < len(names):
                raise InvalidParameterError(
                    f"categorical_features has position {c}, but X has {len(names)} columns "
                    f"(positions 0..{len(names) - 1})."
                )
            cats.add(c if isinstance(c, str) else names[int(c) % len(names)])
        return cats

    def _reorder_info(self, info: dict[str, Any], order: list[int] | None) -> dict[str, Any]:
        if order is None:
            return info
        return {**info, "conditions": [info["conditions"][j] for j in order]}

    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        budget = kwargs["budget"]
        n_coef = n_players if self.feature_selection == "none" else min(self.n_features, n_players)
        minimum = n_coef + 2
        if budget < minimum:
            raise InvalidParameterError(
                f"budget={budget} is below the minimum of {minimum} samples: the surrogate has "
                f"{n_coef} coefficients and an intercept, and its standard errors need one "
                f"more sample. Pass budget >= {minimum} (lime's default is 5000)."
            )
        self._width = self.kernel_width or default_kernel_width(n_players)

    def _explain_row(
        self, fn: ModelFunction, masker: Masker, x: Any, kwargs: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        return self._explain_rows(fn, masker, [x], None, kwargs)[0]

    def _batch_rows(self, masker: Masker, budget: int, n_outputs: int) -> int:
        """Perturbed rows of one batch: ``max_batch_rows``, or what ``chunk_bytes`` allows
        for the model inputs, the interpretable samples (counted as a float per feature: an
        upper bound, they are one byte per feature with discretisation) and the outputs of
        each sample (the fit's other working arrays are per row)."""
        if self.max_batch_rows is not None:
            return self.max_batch_rows
        p = len(masker.feature_names)
        per_row = masker.row_nbytes + 8 * (p + 2 * n_outputs + 2)
        return max(1, int(self.chunk_bytes // per_row))

    def _map_rows(self, task: Any, n: int, progress: ProgressFn | None) -> list[Any]:
        if not isinstance(task, _RowTask):
            return super()._map_rows(task, n, progress)
        batched = _LimeRows(task)
        if progress is None or self.chunk_size is not None or self.backend != "serial":
            return super()._map_rows(batched, n, progress)
        # serially with progress: one chunk per batch (not per row), so rows stay batched
        budget = int(task.kwargs["budget"])
        rows = max(1, self._batch_rows(task.masker, budget, task.fn.n_outputs) // budget)
        chunks = map_chunks(batched, n, backend="serial", chunk_size=rows, progress=progress)
        return [r for chunk in chunks for r in chunk]

    def _explain_rows(
        self,
        fn: ModelFunction,
        masker: Masker,
        xs: list[Any],
        rows: list[int] | None,
        kwargs: dict[str, Any],
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]]:
        """Explain the rows ``xs`` (positions ``rows`` in X, for per-row targets; None: ``fn``
        is each row's own function) in batches: their perturbations in as few model calls as
        the batch size allows, their surrogates in one stacked fit per batch."""
        if self._space is None or self._space[0] is not masker:
            self._space = (masker, self._build_space(masker))
        space = self._space[1]
        budget = int(kwargs["budget"])
        per_row = fn.per_row and rows is not None
        cap = self._batch_rows(masker, budget, fn.n_outputs)
        group = max(1, cap // budget)
        width = self.kernel_width or default_kernel_width(space.p)
        out = []
        for g in range(0, len(xs), group):
            xg = xs[g : g + group]
            rngs = [row_generator(self.random_state, x) for x in xg]
            data, Z = space.sample_batch(xg, budget, rngs, compact=True)  # uint8 Z when binary
            y = _call_in_pieces(fn, data, cap)  # (len(xg) * budget, outputs)
            y = y.reshape(len(xg), budget, -1)
            if per_row:
                cols = [fn.output_indices.index(fn.row_targets[i]) for i in rows[g : g + group]]  # type: ignore[index]
                y = np.take_along_axis(y, np.array(cols)[:, None, None], axis=2)
            fit = fit_batch(
                Z,
                y,
                width,
                self.n_features,
                self.feature_selection,
                self.ridge_alpha,
                binary=space.discretize is not None,  # every feature a bin / category
            )
            for r, x in enumerate(xg):
                xv = space.row_values(x)
                info = {
                    "n_evals": budget,
                    "single": per_row or fn.single_output,
                    "fidelity": [float(s) for s in fit.score[r]],
                    "local_prediction": [float(v) for v in fit.local_prediction[r]],
                    "selected": [[space.names[j] for j in u] for u in fit.used_list[r]],
                    "conditions": space.describe(xv),
                }
                out.append((fit.values[r], fit.intercept[r], fit.std[r], info))
        return out

    def _estimate_image(
        self, game: ImageGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        """lime's ``LimeImageExplainer`` over the image's segments (:func:`lime_image`)."""
        phi, intercept, std, info = lime_image(
            game,
            rng,
            budget=int(kwargs["budget"]),
            n_features=self.n_features,
            kernel_width=self._image_width(),
            feature_selection=self.feature_selection,
            alpha=self.ridge_alpha,
        )
        info = {
            **info,
            "single": bool(getattr(game.model_fn, "single_output", phi.shape[1] == 1)),
            "conditions": list(game.player_names),
        }
        return phi, intercept, std, info

    def _image_width(self) -> float:
        return float(self.kernel_width or IMAGE_KERNEL_WIDTH)

    def _image_params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "kernel_width": self._image_width(),
            "distance": "cosine (lime's LimeImageExplainer)",
            "discretize": None,
        }

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "estimator": "LIME: kernel-weighted ridge surrogate on interpretable features",
            "budget": int(kwargs["budget"]),
            "n_features": self.n_features,
            "kernel_width": self._width,
            "discretize": self.discretize,
            "feature_selection": self.feature_selection,
            "ridge_alpha": self.ridge_alpha,
            "categorical_features": [str(c) for c in self.categorical_features],
        }

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        def per_row(key: str) -> list[Any]:
            return [i[key][0] if i["single"] else i[key] for i in infos]

        fidelity = per_row("fidelity")
        return {
            "fidelity": fidelity,
            "fidelity_mean": float(np.mean([i["fidelity"] for i in infos])),
            "local_prediction": per_row("local_prediction"),
            "selected_features": per_row("selected"),
            "conditions": [i["conditions"] for i in infos],
            ROW_KEYS: ["fidelity", "local_prediction", "selected_features", "conditions"],
        }


class SubmodularPick(Explainer):
    """SP-LIME: explain every row with :class:`whybox.Lime`, then pick a few non-redundant
    rows that together cover the globally important features (Ribeiro et al. 2016,
    Algorithm 2).

    Parameters
    ----------
    model : object
        Any model :func:`whybox.wrap_model` supports.
    background : DataFrame or array of shape (n_bg, p)
        lime's training data (required), as for :class:`whybox.Lime`.
    random_state : int or None, default 0
        Seed of the perturbations.
    **lime_kwargs
        Further keywords of :class:`whybox.Lime` (``n_features``, ``discretize``, ...).

    Notes
    -----
    ``.explain(X, n_picks=5, budget=5000, target=None, link=None, progress=None)`` explains
    every row of ``X`` with ``budget`` perturbations each and returns the Explanation of the
    ``n_picks`` picked rows in pick order (values of shape (n_picks, p)), with
    ``meta["picked_indices"]`` (positions in ``X``), ``meta["coverage"]`` (after each pick)
    and ``meta["global_importance"]`` (per feature). ``n_picks`` above the number of rows
    raises :class:`~whybox.InvalidParameterError`.

    The explanation matrix ``W`` is ``exp.values`` (one column per feature). lime keys its
    columns by the explanation's text instead, so with discretisation two rows in different
    bins of a feature count as different columns there; whybox reports per-feature global
    importance. lime's ``method="sample"`` explains a random subset: pass that subset as X.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = wb.zoo.breast_cancer()
    >>> model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    >>> exp = wb.SubmodularPick(model, X, n_features=5).explain(X.iloc[:20], n_picks=2, budget=200)
    >>> exp.values.shape, len(exp.meta["picked_indices"])
    ((2, 30), 2)
    >>> bool(exp.meta["coverage"][1] >= exp.meta["coverage"][0])  # coverage only grows
    True
    """

    method = "lime"

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        random_state: int | None = 0,
        **lime_kwargs: Any,
    ) -> None:
        self.lime = Lime(model, background, random_state=random_state, **lime_kwargs)
        self.random_state = random_state

    def explain(  # type: ignore[override]
        self,
        X: Any,
        *,
        n_picks: int = 5,
        budget: int = 5000,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Explain every row of ``X`` (arguments as ``Lime.explain``); return the
        Explanation of the ``n_picks`` picked rows in pick order, with ``meta["picked_indices"]``
        (positions in X), ``meta["coverage"]`` (after each pick), ``meta["global_importance"]``
        (per feature) and Lime's per-row meta of the picked rows.
        """
        if kwargs:
            skip = {"self", "X", "kwargs", "model", "lime_kwargs"}
            check_keywords(
                kwargs,
                ["n_picks", "budget", "target", "link", "progress"],
                where="SubmodularPick.explain",
                constructor=[
                    "background",
                    "random_state",
                    *(p for p in inspect.signature(Lime.__init__).parameters if p not in skip),
                ],
            )
        n_picks = check_int("n_picks", n_picks, minimum=1)
        budget = check_int("budget", budget, minimum=2)
        Xp, fn = self.lime._prepare(X, target, link)
        if n_picks > Xp.shape[0]:
            raise InvalidParameterError(
                f"n_picks={n_picks} is more than the {Xp.shape[0]} rows of X; pass n_picks <= "
                f"{Xp.shape[0]} or more rows."
            )
        if not fn.single_output and getattr(fn, "row_targets", None) is None:
            raise InvalidParameterError(
                f"SP-LIME picks rows for one output, but target={target!r} selects "
                f"{fn.output_names}. Pass one class or output as target=."
            )
        exp = self.lime.explain(X, budget=budget, target=target, link=link, progress=progress)
        picked, coverage, importance = submodular_pick(exp.values, n_picks)
        out = exp[picked]
        meta = {
            k: [v[i] for i in picked] if isinstance(v, list) and len(v) == exp.n_rows else v
            for k, v in exp.meta.items()
        }
        meta.update(
            picked_indices=picked,
            coverage=coverage,
            global_importance=importance.tolist(),
            candidates=exp.n_rows,
        )
        out.meta = meta
        out.params["pick"] = f"SP-LIME submodular pick of {n_picks} of {exp.n_rows} rows"
        return out


def _call_in_pieces(fn: ModelFunction, data: Any, step: int) -> np.ndarray:
    """``fn(data)`` in calls of at most ``step`` rows, concatenated."""
    n = data.shape[0]
    if n <= step:
        return fn(data)
    take = data.iloc if isinstance(data, pd.DataFrame) else data
    return np.concatenate([fn(take[s : s + step]) for s in range(0, n, step)])


class _LimeRows:
    """Explain rows ``start:stop`` of X in batches (:meth:`Lime._explain_rows`): the picklable
    unit of work that replaces the one-row-at-a-time task on every backend."""

    def __init__(self, task: _RowTask) -> None:
        self.task = task

    def __call__(self, start: int, stop: int) -> list[Any]:
        t = self.task
        X = t.X
        xs = [X.iloc[[i]] if isinstance(X, pd.DataFrame) else X[i] for i in range(start, stop)]
        rows = list(range(start, stop)) if t.fn.per_row else None
        return t.explainer._explain_rows(t.fn, t.masker, xs, rows, t.kwargs)  # type: ignore[attr-defined]
