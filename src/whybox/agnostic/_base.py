"""The machinery shared by the model-agnostic explainers (one game per explained row).

:class:`TabularGameExplainer` checks the inputs, wraps the model, builds one
:class:`~whybox.games.game.TabularGame` per explained row and hands it to the method's
estimator (:meth:`TabularGameExplainer._estimate`, a function of :mod:`whybox.games`).

Images go through the same explainers: with an :class:`~whybox.games.image.ImageMasker` as the
background (``KernelShap(model, ImageMasker(segments="slic", fill="blur"))``), each image
becomes an :class:`~whybox.games.image.ImageGame` whose players are its segments, the same
estimator computes per-segment values, and the Explanation keeps the images' shape (see
:meth:`TabularGameExplainer.explain`).

The contract every explainer here keeps:

* **Background.** The rows given as ``background=`` are used whole; ``max_background=`` draws
  a sample only when asked, with a ``UserWarning`` that measures its effect on the mean model
  output (:func:`~whybox.games.maskers.summarise_background`). No background is an error: the
  explained rows never stand in for the data.
* **Columns by name.** A DataFrame background is matched to X's columns by name; values,
  ``exp.data`` and ``exp.feature_names`` keep X's order and names (the model function matches
  them to the model's fitted names on every call). An array is positional.
* **Targets.** A scalar ``target`` is one output, a list several (values ``(n, p, k)``), a 1-D
  array / tensor / Series of length n one target per row (values ``(n, p)``,
  ``output_names == ["per-example target"]``, the rows' outputs in ``params["target"]`` and
  ``meta["targets"]``).
* **Keywords.** ``.explain`` refuses a keyword it does not read, naming the closest one.
* **The model is left as it was.** A torch module is evaluated in eval mode (warning if it was
  training) and its modes are restored afterwards, also after an error.
* **Completeness.** For efficient estimators, a gap between the prediction and base value plus
  values beyond 1% of the output scale (and beyond 4 standard errors of a sampled estimate)
  warns with the figure.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._targets import PER_ROW_NAME
from .._validation import (
    as_2d_input,
    check_finite,
    check_in,
    check_int,
    check_keywords,
    check_nonempty,
)
from ..errors import InvalidParameterError
from ..explainer import Explainer, ProgressFn
from ..explanation import ROW_KEYS, Explanation
from ..games.game import DEFAULT_CHUNK_BYTES, TabularGame, group_matrix
from ..games.image import ImageGame, ImageMasker, as_image_batch, spread_to_pixels
from ..games.maskers import Baseline, Independent, Masker, summarise_background
from ..models import ModelFunction, eval_mode, is_torch_module, wrap_model
from ..parallel import BACKENDS, map_chunks, row_generator

__all__ = ["COMPLETENESS_TOLERANCE", "TabularGameExplainer"]

#: Completeness gaps above this fraction of the output scale warn (see :meth:`_check_gap`).
COMPLETENESS_TOLERANCE = 0.01
#: ... and, for sampled estimates, above this many standard errors of the gap.
GAP_STANDARD_ERRORS = 4.0
#: ... and above rounding: this fraction of the predictions' magnitude.
ROUNDING = 1e-9


def _row_fn(fn: ModelFunction, i: int) -> ModelFunction:
    """The model function that row ``i`` is explained with (its own target, if any)."""
    return fn.for_row(i) if fn.per_row else fn


class TabularGameExplainer(Explainer):
    """Model-agnostic explainer of tabular rows (and images) through interventional games.

    Parameters
    ----------
    model : object
        Any model :func:`whybox.models.wrap_model` supports.
    background : DataFrame, array, Masker or ImageMasker
        Rows that stand for the data: absent features take their values (e.g.
        ``X_train.sample(100, random_state=0)``), or ``wb.Baseline(value)`` for a fixed
        reference, or ``wb.kmeans(X_train, k)`` for a weighted summary. Required: without it
        the explainer raises (the explained rows never stand in for the data). A DataFrame is
        matched to X's columns by name. An :class:`~whybox.games.image.ImageMasker` makes the
        explainer explain images: its segments are the players and its fill is what absent
        segments show.
    groups : mapping, optional
        Feature groups explained as single players, e.g. ``{"address": ["zip", "city"]}``.
    max_background : int, optional
        Background rows to keep. Default None: every row (as given). A smaller number draws a
        sample with ``random_state`` and warns with its measured effect on the base value.
        Above 1000 rows a warning says run time grows with them.
    link : {"identity", "logit"}
        Default output scale; ``.explain(link=...)`` overrides it.
    random_state : int or None
        Seed of every random choice (background sample and sampling estimators).
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

    #: whether the estimator adds up to ``v(N) - v(empty)`` (completeness is checked)
    efficient: ClassVar[bool] = True
    #: the parameter that makes a sampled estimate more precise, named in warnings
    precision_parameter: ClassVar[str] = ""
    #: whether each coalition costs one model row per background row (large ones warn)
    cost_grows_with_background: ClassVar[bool] = True

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        groups: Mapping[str, Sequence[str]] | None = None,
        max_background: int | None = None,
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
        self.max_background = (
            None
            if max_background is None
            else check_int("max_background", max_background, minimum=1)
        )
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

    def _estimate_image(
        self, game: ImageGame, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Per-segment estimate of one image: by default the method's ``_estimate``."""
        return self._estimate(game, rng, **kwargs)  # type: ignore[arg-type]

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

    def _image_params(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def _value_names(self, players: list[str]) -> list[str]:
        """Names of the value entries of one row (the players; pairs for interactions)."""
        return players

    def _meta(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def _reorder(self, values: np.ndarray, order: list[int] | None) -> np.ndarray:
        """Per-row values (n, P, ...) with their players in ``order`` (None: as they are)."""
        return values if order is None else values[:, order]

    def _reorder_info(self, info: dict[str, Any], order: list[int] | None) -> dict[str, Any]:
        """A row's ``info`` with its per-player entries in ``order`` (None: as it is)."""
        return info

    # keywords -------------------------------------------------------------------------
    def _check_keywords(self, kwargs: Mapping[str, Any]) -> None:
        """Refuse keywords ``.explain`` does not read (see :func:`check_keywords`)."""
        if not kwargs:
            return
        cls = type(self)
        skip = {"self", "X", "kwargs"}
        allowed = [p for p in inspect.signature(cls.explain).parameters if p not in skip]
        ctor = [p for p in inspect.signature(cls.__init__).parameters if p not in skip | {"model"}]
        check_keywords(kwargs, allowed, where=f"{cls.__name__}.explain", constructor=ctor)

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
            Output(s) to explain: a class label or index (one output), a list (several), a
            1-D array / tensor / Series of length n (one target per row) or ``"all"``.
        link : {"identity", "logit"}, optional
            Output scale; defaults to the explainer's ``link``.
        progress : callable(done, total), optional
            Called after each explained row.

        Returns
        -------
        Explanation
            ``values`` of shape (n, n_players), or (n, n_players, k) for several outputs.

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
        self._check_keywords(kwargs)
        return self._run(X, target=target, link=link, progress=progress, options={})

    def _run(
        self,
        X: Any,
        *,
        target: Any,
        link: str | None,
        progress: ProgressFn | None,
        options: dict[str, Any],
    ) -> Explanation:
        """Explain ``X`` with the method's ``options`` (checked keywords of ``.explain``)."""
        if self.background is None:
            raise InvalidParameterError(
                f"{type(self).__name__} needs background= rows that stand for the data (e.g. "
                "background=X_train.sample(100, random_state=0)) or "
                "background=wb.Baseline(...) for a fixed reference; for images, "
                "background=wb.ImageMasker(...). The explained rows are never used in their "
                "place: with one row every value would be 0."
            )
        # a torch module in eval mode for the whole explanation (one warning if it was
        # training); every submodule's mode restored afterwards, also after an error
        with eval_mode(self.model) if is_torch_module(self.model) else nullcontext():
            if isinstance(self.background, ImageMasker):
                exp = self._explain_images(
                    X, target=target, link=link, progress=progress, **options
                )
            else:
                exp = self._explain_table(X, target=target, link=link, progress=progress, **options)
        self._check_gap(exp)
        return exp

    # tabular --------------------------------------------------------------------------
    def _masker(self, X: Any, fn: ModelFunction) -> Masker:
        bg = self.background
        if isinstance(bg, Baseline):
            return bg.bound(X).aligned_to(X)
        if isinstance(bg, Masker) and not isinstance(bg, Independent):
            return bg.aligned_to(X)  # a custom masker: used as it is
        masker = summarise_background(
            bg,
            self.max_background,
            random_state=self.random_state,
            allow_nan=self.allow_nan,
            evaluate=fn,  # every explained output (each per-row target's among them)
            warn_large=self.cost_grows_with_background,
        )
        return masker.aligned_to(X)

    def _prepare(self, X: Any, target: Any, link: str | None) -> tuple[Any, ModelFunction]:
        X = as_2d_input(X)
        check_nonempty(X)
        # before the model is first called (wrap_model may probe it on one row)
        check_finite(X, allow_nan=self.allow_nan)
        fn = wrap_model(self.model, target=target, link=link or self.link, X=X, n_rows=X.shape[0])
        X = fn.prepare(X)
        return X, fn

    def _explain_table(
        self,
        X: Any,
        *,
        target: Any = None,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        X, fn = self._prepare(X, target, link)
        n = X.shape[0]
        masker = self._masker(X, fn)
        X = masker.check_compatible(X, allow_nan=self.allow_nan)
        players, _ = group_matrix(masker.feature_names, self.groups)
        self._check_players(len(players), **kwargs)
        # rows are explained with their columns in the model's order, so that sampled
        # estimates, whose draws follow the players' positions and the row's content, do not
        # depend on the caller's column order; values come back in the caller's order
        Xc, masker_c, back = _in_model_order(X, masker, fn, self.groups, players)
        rows = self._map_rows(_RowTask(self, fn, masker_c, Xc, kwargs), n, progress)
        infos = [self._reorder_info(r[3], back) for r in rows]
        values = self._reorder(np.stack([r[0] for r in rows]), back)  # (n, P, k)
        base_values = np.stack([r[1] for r in rows])  # (n, k)
        stds = [r[2] for r in rows]
        std = (
            None if any(s is None for s in stds) else self._reorder(np.stack(stds), back)  # type: ignore[arg-type]
        )
        predictions = fn.row_outputs(X)[:, None] if fn.per_row else fn(X)
        params = {
            **self._output_params(fn),
            "background_rows": masker.n_rows,
            "masker": type(masker).__name__,
            "groups": {str(k): list(v) for k, v in (self.groups or {}).items()} or None,
            **self._params(**kwargs),
        }
        values, base_values, predictions, std, output_names = _drop_output_axis(
            fn, values, base_values, predictions, std
        )
        return Explanation(
            values,
            base_values,
            # a group of features has no single data value: grouped explanations keep no data
            data=None if self.groups else X,
            feature_names=self._value_names(players),
            output_names=output_names,
            std=std,
            predictions=predictions,
            method=self.method,
            params=params,
            n_evals=max(info["n_evals"] for info in infos),
            random_state=self.random_state,
            meta=_with_targets(self._meta(infos), fn),
        )

    @staticmethod
    def _output_params(fn: ModelFunction) -> dict[str, Any]:
        if fn.per_row:
            target: Any = list(fn.row_target_names or [])
        else:
            target = fn.output_names if not fn.single_output else fn.output_names[0]
        return {
            "output": fn.output_description,
            "link": fn.link,
            "target": target,
            "model_type": fn.model_type,
        }

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

    # completeness ---------------------------------------------------------------------
    def _check_gap(self, exp: Explanation) -> None:
        """Warn when the values of an efficient estimator do not add up to the prediction.

        The gap ``prediction - base value - sum of values`` of each row and output is compared
        with ``COMPLETENESS_TOLERANCE`` times the output scale (the standard deviation of the
        predictions over the rows, or ``max |prediction|`` for one row or constant
        predictions), with rounding (``ROUNDING`` times the predictions' magnitude) and, for
        sampled estimates, with ``GAP_STANDARD_ERRORS`` standard errors of the sum of values.
        Exact and efficiency-constrained estimators leave only rounding (~1e-15), so a warning
        means that the model's outputs changed between calls (a stochastic model) or that the
        estimate did not settle.
        """
        if not self.efficient or exp.predictions is None:
            return
        pred = np.asarray(exp.predictions, dtype=float).reshape(exp.n_rows, -1)
        gap = np.abs(np.asarray(exp.completeness_gap(), dtype=float).reshape(exp.n_rows, -1))
        if not np.all(np.isfinite(gap)):
            return
        magnitude = np.abs(pred).max(axis=0)
        scale = pred.std(axis=0) if exp.n_rows > 1 else np.zeros_like(magnitude)
        scale = np.where(scale > ROUNDING * magnitude, scale, magnitude)
        scale = np.where(scale > 0, scale, 1.0)
        bound = np.maximum(COMPLETENESS_TOLERANCE * scale, ROUNDING * np.maximum(magnitude, 1.0))
        bound = np.broadcast_to(bound[None, :], gap.shape)
        if exp.std is not None:
            var = np.nansum(np.asarray(exp.std, dtype=float) ** 2, axis=exp.feature_axes)
            se = np.sqrt(var).reshape(gap.shape)
            bound = np.maximum(bound, GAP_STANDARD_ERRORS * se)
        bad = gap > bound
        if not bad.any():
            return
        worst = np.unravel_index(np.argmax(np.where(bad, gap / scale[None, :], -np.inf)), gap.shape)
        rel = float(gap[worst] / scale[worst[1]])
        more = (
            f" A larger {self.precision_parameter} gives a more settled estimate."
            if self.precision_parameter
            else ""
        )
        warnings.warn(
            f"{type(self).__name__}: the values of {int(bad.any(axis=1).sum())} of "
            f"{exp.n_rows} rows do not add up to prediction - base value: the largest gap is "
            f"{float(gap[worst]):.3g} (row {int(worst[0])}), {rel:.1%} of the output scale "
            f"{float(scale[worst[1]]):.3g}, beyond the {COMPLETENESS_TOLERANCE:.0%} tolerance. "
            "The estimator adds up exactly, so the model returned different outputs for the "
            "same inputs (is it stochastic, e.g. dropout or sampling? seed it or make it "
            f"deterministic).{more} Read exp.completeness_gap() for every row.",
            UserWarning,
            stacklevel=3,
        )

    # images ---------------------------------------------------------------------------
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
        n = images.shape[0]
        # every image, so per-row targets are counted (the model is probed on one image only)
        fn = wrap_model(self.model, target=target, link=link or self.link, X=images, n_rows=n)
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
        if fn.per_row or fn.single_output:
            seg_values = [v[:, 0] for v in seg_values]
            seg_std = [None if s is None else s[:, 0] for s in seg_std]
        values, base_values, predictions, stds, output_names = _drop_output_axis(
            fn, values, base_values, predictions, stds
        )
        infos = [r["info"] for r in rows]
        params = {
            **self._output_params(fn),
            "masker": "ImageMasker",
            "segments": masker.segments if isinstance(masker.segments, str) else "given",
            "n_segments": masker.n_segments,
            "fill": masker.fill,
            "channels": channels,
            "pixel_values": "segment value / (segment pixels x channels)",
            **self._params(**kwargs),
            **self._image_params(**kwargs),
        }
        meta = _with_targets(self._meta(infos), fn)
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
            output_names=output_names,
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


def _in_model_order(
    X: Any, masker: Masker, fn: ModelFunction, groups: Any, players: list[str]
) -> tuple[Any, Masker, list[int] | None]:
    """X and the masker with their columns in the order the model was fitted on, and the
    positions of the caller's players among the reordered ones (None when nothing moves: an
    array, a model that knows no feature names, or columns already in its order)."""
    if not isinstance(X, pd.DataFrame) or fn.feature_names_in is None:
        return X, masker, None
    names = [str(c) for c in X.columns]
    order, _ = fn._column_order(names)  # the model's columns among X's, LightGBM's renaming too
    if order == list(range(len(names))):
        return X, masker, None
    Xc = X.iloc[:, order]
    canon, _ = group_matrix([names[j] for j in order], groups)
    return Xc, masker.aligned_to(Xc), [canon.index(p) for p in players]


def _with_targets(meta: dict[str, Any], fn: ModelFunction) -> dict[str, Any]:
    """``meta`` with the per-row targets, sliced with the rows (``meta["row_keys"]``)."""
    if not fn.per_row:
        return meta
    return {
        **meta,
        "targets": list(fn.row_target_names or []),
        ROW_KEYS: [*meta.get(ROW_KEYS, []), "targets"],
    }


def _drop_output_axis(
    fn: ModelFunction,
    values: np.ndarray,
    base_values: np.ndarray,
    predictions: np.ndarray,
    std: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Drop the trailing output axis for one output (or one per row); the output names."""
    if not fn.per_row and not fn.single_output:
        return values, base_values, predictions, std, list(fn.output_names)
    names = [PER_ROW_NAME] if fn.per_row else list(fn.output_names)
    return (
        values[..., 0],
        base_values[:, 0],
        predictions[:, 0],
        None if std is None else std[..., 0],
        names,
    )


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
                _row_fn(self.fn, i),
                x,
                self.masker,
                channels=self.channels,
                row=i,
                chunk_bytes=ex.chunk_bytes,
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
            out.append(
                self.explainer._explain_row(_row_fn(self.fn, i), self.masker, x, self.kwargs)
            )
        return out
