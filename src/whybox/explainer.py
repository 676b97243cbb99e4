"""The Explainer base classes shared by every method.

Every explainer is constructed once with the model (and whatever it needs, e.g. a
background) and then called as ``.explain(inputs, ...)`` as often as needed, returning an
:class:`~whybox.explanation.Explanation`.

:class:`TabularGameExplainer` is the machinery of model-agnostic tabular methods: it checks
the inputs, wraps the model, builds one :class:`~whybox.games.game.TabularGame` per explained
row and hands it to the method's estimator (:meth:`_estimate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ._validation import (
    as_2d_input,
    check_finite,
    check_in,
    check_int,
    check_nonempty,
)
from .explanation import Explanation
from .games.game import DEFAULT_CHUNK_BYTES, TabularGame, group_matrix
from .games.maskers import Baseline, Independent, Masker
from .models import ModelFunction, wrap_model
from .parallel import BACKENDS, map_chunks, row_generator

__all__ = ["Explainer", "TabularGameExplainer"]

ProgressFn = Callable[[int, int], None]


class Explainer:
    """Base class of all explainers: construct once, then ``.explain(inputs, ...)``."""

    #: registry name of the method, e.g. ``"exact"``
    method: ClassVar[str] = ""

    def explain(self, X: Any, **kwargs: Any) -> Explanation:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r})"


class TabularGameExplainer(Explainer):
    """Model-agnostic explainer of tabular rows through interventional games.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.models.wrap_model` supports.
    background : DataFrame, array, or Masker, optional
        Rows that stand in for absent features. Defaults to (a sample of) the explained X.
    groups : mapping, optional
        Feature groups explained as single players, e.g. ``{"address": ["zip", "city"]}``.
    max_background : int
        Background rows kept (subsampled with ``random_state`` above this).
    link : {"identity", "logit"}
        Default output scale; ``.explain(link=...)`` overrides it.
    random_state : int or None
        Seed of every random choice (background subsampling and sampling estimators).
    allow_nan : bool
        Accept NaN in X and background, for models that handle missing values themselves.
    chunk_bytes : int
        Memory bound of one batch of model inputs.
    n_jobs : int or None
        Worker processes for ``backend="processes"`` (-1 or None: all cores); an ``n_jobs``
        above 1 alone selects the process backend.
    backend : {"serial", "processes", "dask"}
        Where rows are explained; results are bit-identical whichever is used.
    client : dask.distributed.Client, optional
        Cluster for ``backend="dask"`` (default: the current default client); a client
        alone selects the Dask backend.
    chunk_size : int, optional
        Rows per task sent to a worker (default: an even split over the workers).
    """

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        groups: Mapping[str, Sequence[str]] | None = None,
        max_background: int = 100,
        link: str = "identity",
        random_state: int | None = 0,
        allow_nan: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        n_jobs: int | None = None,
        backend: str = "serial",
        client: Any = None,
        chunk_size: int | None = None,
    ) -> None:
        self.model = model
        self.background = background
        self.groups = groups
        self.max_background = check_int("max_background", max_background, minimum=1)
        self.link = link
        self.random_state = random_state
        self.allow_nan = allow_nan
        self.chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=1)
        check_in("backend", backend, BACKENDS)
        if client is not None and backend == "serial":
            backend = "dask"  # a client given means: run on that cluster
        if backend == "serial" and n_jobs not in (None, 1):
            backend = "processes"
        if backend == "processes" and n_jobs is None:
            n_jobs = -1  # processes asked for without a count: all cores
        self.n_jobs = n_jobs
        self.backend = backend
        self.client = client
        self.chunk_size = (
            None if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
        )

    # hooks for subclasses -------------------------------------------------------------
    def _check_players(self, n_players: int, **kwargs: Any) -> None:
        """Refuse problems the method cannot handle, before any model call."""

    def _estimate(
        self, game: TabularGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Return (phi (n_players, k), base (k,), std (n_players, k) or None, info).

        ``rng`` is seeded by ``random_state`` and the row's content (see
        :func:`whybox.parallel.row_generator`): use it for every random draw.
        """
        raise NotImplementedError

    def _explain_row(
        self, fn: ModelFunction, masker: Masker, x: Any, kwargs: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        game = TabularGame(fn, x, masker, groups=self.groups, chunk_bytes=self.chunk_bytes)
        rng = row_generator(self.random_state, x)
        phi, base, std, info = self._estimate(game, rng, **kwargs)
        info = {**info, "n_evals": game.n_evaluated}
        return phi, base, std, info

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def _value_names(self, players: list[str]) -> list[str]:
        """Names of the value entries of one row (the players; pairs for interactions)."""
        return players

    # shared machinery -----------------------------------------------------------------
    def _masker(self, X: Any) -> Masker:
        bg = self.background
        if isinstance(bg, Baseline):
            return bg.bound(X)
        if isinstance(bg, Masker):
            return bg
        if bg is None:
            bg = X
        return Independent(
            bg,
            max_samples=self.max_background,
            random_state=self.random_state,
            allow_nan=self.allow_nan,
        )

    def _prepare(self, X: Any, target: Any, link: str | None) -> tuple[Any, ModelFunction]:
        X = as_2d_input(X)
        check_nonempty(X)
        # before the model is first called (wrap_model may probe it on one row)
        check_finite(X, allow_nan=self.allow_nan)
        fn = wrap_model(self.model, target=target, link=link or self.link, X=X)
        X = fn.prepare(X)
        return X, fn

    def explain(
        self,
        X: Any,
        *,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Explain each row of ``X``.

        Parameters
        ----------
        X : DataFrame or array of shape (n, p)
            Rows to explain (a 1-D array is one row).
        target : optional
            Output(s) to explain: class label or index, list, or ``"all"``.
        link : {"identity", "logit"}, optional
            Output scale; defaults to the explainer's ``link``.
        progress : callable(done, total), optional
            Called after each explained row.

        Returns
        -------
        Explanation
            ``values`` of shape (n, n_players) or (n, n_players, k).
        """
        X, fn = self._prepare(X, target, link)
        masker = self._masker(X)
        X = masker.check_compatible(X, allow_nan=self.allow_nan)
        players, _ = group_matrix(masker.feature_names, self.groups)
        self._check_players(len(players), **kwargs)
        n = X.shape[0]
        task = _RowTask(self, fn, masker, X, kwargs)
        chunks = map_chunks(
            task,
            n,
            backend=self.backend,
            n_jobs=self.n_jobs,
            client=self.client,
            chunk_size=self.chunk_size,
            progress=progress,
        )
        rows = [r for chunk in chunks for r in chunk]
        phis = [r[0] for r in rows]
        bases = [r[1] for r in rows]
        stds = [r[2] for r in rows]
        infos = [r[3] for r in rows]
        n_evals = max(info["n_evals"] for info in infos)
        values = np.stack(phis)  # (n, P, k)
        base_values = np.stack(bases)  # (n, k)
        std = None if any(s is None for s in stds) else np.stack(stds)  # type: ignore[arg-type]
        predictions = fn(X)
        if fn.single_output:
            values, base_values, predictions = values[..., 0], base_values[:, 0], predictions[:, 0]
            std = None if std is None else std[..., 0]
        params = {
            "output": fn.output_description,
            "link": fn.link,
            "target": fn.output_names if not fn.single_output else fn.output_names[0],
            "model_type": fn.model_type,
            "background_rows": masker.n_rows,
            "masker": type(masker).__name__,
            "groups": {str(k): list(v) for k, v in (self.groups or {}).items()} or None,
            **self._params(**kwargs),
        }
        return Explanation(
            values,
            base_values,
            # a group of features has no single data value: grouped explanations keep no data
            data=None if self.groups else X,
            feature_names=self._value_names(players),
            output_names=fn.output_names,
            std=std,
            predictions=predictions,
            method=self.method,
            params=params,
            n_evals=n_evals,
            random_state=self.random_state,
            meta=self._meta(infos),
        )

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def __getstate__(self) -> dict[str, Any]:
        # a dask Client cannot be pickled, and workers never need it
        state = self.__dict__.copy()
        state["client"] = None
        return state


class _RowTask:
    """Explain rows ``start:stop`` of X: the picklable unit of work of every backend."""

    def __init__(
        self,
        explainer: TabularGameExplainer,
        fn: ModelFunction,
        masker: Masker,
        X: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self.explainer = explainer
        self.fn = fn
        self.masker = masker
        self.X = X
        self.kwargs = kwargs

    def __call__(self, start: int, stop: int) -> list[Any]:
        X = self.X
        out = []
        for i in range(start, stop):
            x = X.iloc[[i]] if isinstance(X, pd.DataFrame) else X[i]
            out.append(self.explainer._explain_row(self.fn, self.masker, x, self.kwargs))
        return out
