"""The Explainer base classes shared by every method.

Every explainer is constructed once with the model (and whatever it needs, e.g. a
background) and then called as ``.explain(inputs, ...)`` as often as needed, returning an
:class:`~whybox.explanation.Explanation`.

:class:`TabularGameExplainer` is the machinery of model-agnostic tabular methods: it checks
the inputs, wraps the model, builds one :class:`~whybox.games.game.TabularGame` per explained
row and hands it to the method's estimator (:meth:`_estimate`).

Images go through the same explainers: with an :class:`~whybox.games.image.ImageMasker` as the
background (``KernelShap(model, ImageMasker(segments="slic", fill="blur"))``), each image
becomes an :class:`~whybox.games.image.ImageGame` whose players are its segments, the same
``_estimate`` computes per-segment values, and the Explanation keeps the images' shape (see
:meth:`TabularGameExplainer.explain`).
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
from .errors import InvalidParameterError
from .explanation import ROW_KEYS, Explanation
from .games.game import DEFAULT_CHUNK_BYTES, TabularGame, group_matrix
from .games.image import ImageGame, ImageMasker, as_image_batch, lime_image, spread_to_pixels
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
    background : DataFrame, array, Masker or ImageMasker, optional
        Rows that stand in for absent features. Defaults to (a sample of) the explained X.
        An :class:`~whybox.games.image.ImageMasker` makes the explainer explain images: its
        segments are the players and its fill is what absent segments show.
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

        Notes
        -----
        With an :class:`~whybox.games.image.ImageMasker` as background, ``X`` is a batch of
        images ((n, c, h, w), (n, h, w, c) or (n, h, w); numpy or torch) and each image is an
        :class:`~whybox.games.image.ImageGame` of its segments. The Explanation keeps the
        input's shape: ``values`` is (n, *image_shape) or (n, *image_shape, k), every pixel
        and channel holding its segment's value divided by the segment's pixels times
        channels, so that the pixel values add up to the segment values (completeness is
        that of the estimator). ``exp.meta["segments"]`` holds the (n, h, w) label maps,
        ``exp.meta["segment_values"]`` / ``["segment_std"]`` the per-segment values and
        standard errors of each row ((S_i,) or (S_i, k); S_i may differ between images),
        ``exp.params["channels"]`` the layout.
        """
        if isinstance(self.background, ImageMasker):
            return self._explain_images(X, target=target, link=link, progress=progress, **kwargs)
        X, fn = self._prepare(X, target, link)
        masker = self._masker(X)
        X = masker.check_compatible(X, allow_nan=self.allow_nan)
        players, _ = group_matrix(masker.feature_names, self.groups)
        self._check_players(len(players), **kwargs)
        n = X.shape[0]
        rows = self._map_rows(_RowTask(self, fn, masker, X, kwargs), n, progress)
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

    def _map_rows(self, task: Any, n: int, progress: ProgressFn | None) -> list[Any]:
        """Run ``task`` over rows ``0..n`` on the explainer's backend: the per-row results in
        row order, whatever the backend, ``n_jobs`` or chunk size."""
        chunks = map_chunks(
            task,
            n,
            backend=self.backend,
            n_jobs=self.n_jobs,
            client=self.client,
            chunk_size=self.chunk_size,
            progress=progress,
        )
        return [r for chunk in chunks for r in chunk]

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    # images ---------------------------------------------------------------------------
    def _estimate_image(
        self, game: ImageGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Per-segment estimate of one image: the method's ``_estimate`` on its game.

        Methods whose tabular estimator is not a game estimator (LIME's draws from the
        background's marginals) are looked up in ``_IMAGE_ESTIMATORS`` by method name.
        """
        special = _IMAGE_ESTIMATORS.get(self.method)
        if special is not None:
            return special[0](self, game, rng, **kwargs)
        return self._estimate(game, rng, **kwargs)

    def _explain_images(
        self,
        X: Any,
        *,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        masker = self.background
        if self.groups:
            raise InvalidParameterError(
                "groups= does not apply to images: the players are the ImageMasker's segments. "
                "Drop groups=, or pass segments= a label map that joins the regions you want "
                "explained together."
            )
        images, channels = as_image_batch(X, masker.channels)
        # before the model is first called (wrap_model may probe it on one image)
        fn = wrap_model(self.model, target=target, link=link or self.link, X=images[:1])
        n = images.shape[0]
        rows = self._map_rows(_ImageTask(self, fn, masker, images, channels, kwargs), n, progress)
        image_shape = images.shape[1:]
        values = np.stack(
            [spread_to_pixels(r["phi"], r["segments"], image_shape, channels) for r in rows]
        )  # (n, *image_shape, k)
        stds = None
        if all(r["std"] is not None for r in rows):
            stds = np.stack(
                [spread_to_pixels(r["std"], r["segments"], image_shape, channels) for r in rows]
            )
        base_values = np.stack([r["base"] for r in rows])  # (n, k)
        predictions = np.stack([r["prediction"] for r in rows])  # (n, k)
        seg_values = [r["phi"] for r in rows]
        seg_std = [r["std"] for r in rows]
        if fn.single_output:
            values, base_values, predictions = values[..., 0], base_values[:, 0], predictions[:, 0]
            stds = None if stds is None else stds[..., 0]
            seg_values = [v[:, 0] for v in seg_values]
            seg_std = [None if s is None else s[:, 0] for s in seg_std]
        infos = [r["info"] for r in rows]
        special = _IMAGE_ESTIMATORS.get(self.method)
        params = {
            "output": fn.output_description,
            "link": fn.link,
            "target": fn.output_names if not fn.single_output else fn.output_names[0],
            "model_type": fn.model_type,
            "masker": "ImageMasker",
            "segments": masker.segments if isinstance(masker.segments, str) else "given",
            "n_segments": masker.n_segments,
            "fill": masker.fill,
            "channels": channels,
            "pixel_values": "segment value / (segment pixels x channels)",
            **self._params(**kwargs),
            **(special[1](self, **kwargs) if special is not None else {}),
        }
        meta = self._meta(infos)
        meta = {
            **meta,
            "segments": np.stack([r["segments"] for r in rows]),
            "segment_values": seg_values,
            "segment_std": seg_std,
            "n_segments": [int(r["phi"].shape[0]) for r in rows],
            ROW_KEYS: [
                *meta.get(ROW_KEYS, []),
                "segments",
                "segment_values",
                "segment_std",
                "n_segments",
            ],
        }
        return Explanation(
            values,
            base_values,
            data=images,
            output_names=fn.output_names,
            std=stds,
            predictions=predictions,
            method=self.method,
            params=params,
            n_evals=max(int(info["n_evals"]) for info in infos),
            random_state=self.random_state,
            meta=meta,
        )

    def __getstate__(self) -> dict[str, Any]:
        # a dask Client cannot be pickled, and workers never need it
        state = self.__dict__.copy()
        state["client"] = None
        return state


def _lime_image_estimate(
    explainer: Any, game: ImageGame, rng: np.random.Generator, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    phi, intercept, std, info = lime_image(
        game,
        rng,
        budget=int(kwargs["budget"]),
        n_features=explainer.n_features,
        kernel_width=_lime_image_width(explainer),
        feature_selection=explainer.feature_selection,
        alpha=explainer.ridge_alpha,
    )
    info = {
        **info,
        "single": bool(getattr(game.model_fn, "single_output", phi.shape[1] == 1)),
        "conditions": list(game.player_names),
    }
    return phi, intercept, std, info


def _lime_image_width(explainer: Any) -> float:
    return float(explainer.kernel_width or 0.25)


#: image estimators of methods whose tabular ``_estimate`` is not a game estimator:
#: method name -> (estimate(explainer, game, rng, **kw), params(explainer, **kw))
_IMAGE_ESTIMATORS: dict[str, tuple[Callable[..., Any], Callable[..., dict[str, Any]]]] = {
    "lime": (
        _lime_image_estimate,
        lambda explainer, **kw: {
            "kernel_width": _lime_image_width(explainer),
            "distance": "cosine (lime's LimeImageExplainer)",
            "discretize": None,
        },
    ),
}


class _ImageTask:
    """Explain images ``start:stop``: the picklable unit of work of the image path."""

    def __init__(
        self,
        explainer: TabularGameExplainer,
        fn: ModelFunction,
        masker: ImageMasker,
        images: np.ndarray,
        channels: str,
        kwargs: dict[str, Any],
    ) -> None:
        self.explainer = explainer
        self.fn = fn
        self.masker = masker
        self.images = images
        self.channels = channels
        self.kwargs = kwargs

    def __call__(self, start: int, stop: int) -> list[dict[str, Any]]:
        ex = self.explainer
        out = []
        for i in range(start, stop):
            x = self.images[i]
            game = ImageGame(
                self.fn, x, self.masker, channels=self.channels, row=i, chunk_bytes=ex.chunk_bytes
            )
            ex._check_players(game.n_players, **self.kwargs)
            rng = row_generator(ex.random_state, x)
            phi, base, std, info = ex._estimate_image(game, rng, **self.kwargs)
            phi = np.asarray(phi, dtype=float)
            if phi.ndim != 2 or phi.shape[0] != game.n_players:
                raise InvalidParameterError(
                    f"{type(ex).__name__} returns values of shape {phi.shape} for an image of "
                    f"{game.n_players} segments, one value per segment being needed to give "
                    "each pixel its segment's share; it cannot explain images. Use ExactShap, "
                    "KernelShap, PermutationShap, Banzhaf or Lime."
                )
            prediction = game.value(np.ones((1, game.n_players), dtype=bool))[0]
            out.append(
                {
                    "phi": phi,
                    "base": np.asarray(base, dtype=float),
                    "std": None if std is None else np.asarray(std, dtype=float),
                    "info": {**info, "n_evals": game.n_evaluated},
                    "segments": game.segments,
                    "prediction": prediction,
                }
            )
        return out


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
