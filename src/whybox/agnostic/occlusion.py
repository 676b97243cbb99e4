"""Occlusion: the output drop when a sliding window of the input is replaced by a baseline.

A window of shape ``window`` slides over each input with steps ``stride``; every position is
a player of a :class:`WindowGame` (an image game whose regions overlap), and its score is the
leave-one-out difference ``f(x) - f(x with the window set to the baseline)``. A pixel's
attribution is the mean score of the windows that cover it (Zeiler and Fergus 2014), which is
Captum's ``Occlusion`` to rounding: the same window positions (``ceil((d - window) / stride) +
1`` per axis, the last window cropped at the border), the same average.

All window positions of an input are composed and evaluated in batches bounded by
``chunk_bytes``, for numpy callables and torch modules alike (through
:func:`whybox.models.wrap_model`).

References
----------
Zeiler, M. D. and Fergus, R. (2014). Visualizing and understanding convolutional networks.
ECCV.

Kokhlikyan, N. et al. (2020). Captum: a unified and generic model interpretability library
for PyTorch. arXiv:2009.07896. (The ``Occlusion`` conventions matched here.)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._targets import PER_ROW_NAME, is_per_row_target
from .._validation import check_in, check_int, check_keywords
from ..errors import InvalidInputError, InvalidParameterError, ModelCallError
from ..explainer import Explainer, ProgressFn
from ..explanation import ROW_KEYS, Explanation
from ..games.game import DEFAULT_CHUNK_BYTES
from ..games.image import CHANNELS, DEFAULT_BATCH_SIZE, _to_numpy, as_image_batch
from ..games.occlusion import _as_shape, window_boxes
from ..models import ModelFunction, eval_mode, is_torch_module, wrap_model

__all__ = ["Occlusion"]


class Occlusion(Explainer):
    """Sliding-window occlusion of images (or any array inputs), as Captum's ``Occlusion``.

    Parameters
    ----------
    model : object
        A torch module, a callable on arrays, or anything :func:`whybox.wrap_model`
        supports.
    window : int or tuple of int, default (1, 3, 3)
        Window shape over one input (no batch axis), e.g. ``(1, 3, 3)`` for (1, h, w) images
        (Captum's ``sliding_window_shapes``). An int is used along every axis.
    stride : int or tuple of int, default 1
        Steps of the window along each axis (Captum's ``strides``); at most the window.
    baseline : float, array broadcastable to one input, or array of shape ``(n, *input_shape)``
        What occluded entries show (Captum's ``baselines``); a batch gives one per input.
        Default 0.0.
    channels : {"auto", "first", "last", "none"}, default "auto"
        Layout of image inputs, recorded for plots (the windows cover every axis, so any
        array input ``(n, *shape)`` works, a table (n, p) included).
    link : {"identity", "logit"}, default "identity"
        Default output scale.
    chunk_bytes : int, default 268435456
        Memory bound of one batch of occluded inputs (256 MB).
    batch_size : int or None, default 256
        At most this many inputs per model call (as Captum's
        ``perturbations_per_eval`` bounds its batches); None: the memory bound alone. The
        values do not depend on it.
    output : int or str, optional
        For a torch module (or callable) whose forward returns a tuple, list or dict: the
        index or key of the prediction. A dict or Hugging Face ``ModelOutput`` defaults to
        its ``"logits"``; a tuple has no default (an error says so).
    output_names : sequence of str, optional
        Names of the outputs of a torch module or callable (e.g. class names), usable as
        ``target=`` and shown in ``exp.output_names``.

    Notes
    -----
    ``.explain(X, target=None, link=None, progress=None)`` returns values of X's shape
    (plus an output axis for several outputs): the mean output drop over the windows that
    cover each entry. ``base_values`` is the output on the baseline and ``predictions`` the
    output on X; occlusion scores do not add up to their difference, so
    ``completeness_gap()`` measures how far from additive the model is at this window size.
    ``n_evals`` is the number of windows plus two.

    ``target`` means what it means for every explainer: a scalar is one output (a class
    label, an output name of ``output_names``, or an index), a list several (trailing axis),
    ``"all"`` every output, and a 1-D tensor, array or Series of length n one output per
    row, as in Captum (values ``(n, *input_shape)``, ``output_names == ["per-example target"]``,
    each row's output name in ``params["target"]`` and ``meta["targets"]``).

    A torch module is evaluated in eval mode for the whole explanation (a ``UserWarning``
    if it was training) and every submodule's mode is restored afterwards, also after an
    exception; its parameters and buffers are never changed.

    Examples
    --------
    One bright pixel and a model that sums the pixels: only the 2 x 2 window that holds it
    changes the output when occluded.

    >>> image = np.zeros((1, 1, 4, 4))
    >>> image[0, 0, 0, 0] = 1.0
    >>> f = lambda X: np.asarray(X).reshape(len(X), -1).sum(axis=1)
    >>> exp = wb.Occlusion(f, window=(1, 2, 2), stride=(1, 2, 2)).explain(image)
    >>> exp.values[0, 0].tolist()
    [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    >>> exp.n_evals  # 4 windows, plus the input and the baseline
    6

    References
    ----------
    Zeiler and Fergus (2014), ECCV.
    """

    method = "occlusion"

    def __init__(
        self,
        model: Any,
        window: int | Sequence[int] = (1, 3, 3),
        stride: int | Sequence[int] = 1,
        baseline: Any = 0.0,
        *,
        channels: str = "auto",
        link: str = "identity",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        output: Any = None,
        output_names: Sequence[Any] | None = None,
    ) -> None:
        self.model = model
        if output is not None and (
            isinstance(output, bool) or not isinstance(output, (numbers.Integral, str))
        ):
            raise InvalidParameterError(
                f"output= selects the prediction in what the model returns: an int (element "
                f"of a tuple) or a str (key of a dict); got {output!r}."
            )
        self.output = output
        self.output_names = None if output_names is None else [str(o) for o in output_names]
        self.window = window
        self.stride = stride
        self.baseline = baseline
        self.channels = check_in("channels", channels, CHANNELS)
        self.link = link
        self.chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=1)
        self.batch_size = (
            None if batch_size is None else check_int("batch_size", batch_size, minimum=1)
        )

    def explain(  # type: ignore[override]
        self,
        X: Any,
        target: Any = None,
        *,
        link: str | None = None,
        progress: ProgressFn | None = None,
        **kwargs: Any,
    ) -> Explanation:
        """Occlusion attributions of each input of ``X``, ``(n, *input_shape)``; see the class.

        Parameters
        ----------
        X : tensor or array of shape ``(n, *input_shape)``
        target : label, name, int, list, "all", or 1-D tensor / array / Series of length n
            The explained output(s); a 1-D tensor / array / Series gives one per row.
        link : {"identity", "logit"}, optional
            Output scale (default: the constructor's).
        progress : callable(done, total), optional

        Raises
        ------
        InvalidParameterError
            For an unknown keyword (Captum's names are pointed to whybox's), target or link.
        ModelCallError
            When the model returns NaN or inf, naming the explained rows.
        """
        check_keywords(
            kwargs,
            ["target", "link", "progress"],
            where="Occlusion.explain",
            constructor=[
                "window",
                "stride",
                "baseline",
                "channels",
                "chunk_bytes",
                "batch_size",
                "output",
                "output_names",
            ],
            constructor_name="Occlusion",
            spellings=_CAPTUM_SPELLINGS,
        )
        if is_torch_module(self.model):
            with eval_mode(self.model):
                return self._explain(X, target, link, progress)
        return self._explain(X, target, link, progress)

    def _target_indices(self, target: Any) -> Any:
        """``target`` with names of ``output_names`` replaced by their indices."""
        names = self.output_names
        if names is None:
            return target

        def one(t: Any) -> Any:
            t = t.item() if isinstance(t, np.generic) else t
            if isinstance(t, str) and t != "all":
                if t in names:
                    return names.index(t)
                raise InvalidParameterError(
                    f"unknown target {t!r}: the outputs are named {names}. Pass one of these "
                    f"names or an output index between 0 and {len(names) - 1}."
                )
            return t

        if is_per_row_target(target):
            arr = (
                target.detach().cpu().numpy()
                if hasattr(target, "detach")
                else np.asarray(getattr(target, "to_numpy", lambda: target)())
            )
            if arr.ndim == 1 and arr.dtype.kind in "OUS":
                return np.array([one(t) for t in arr.tolist()], dtype=np.int64)
            return target
        if isinstance(target, (list, tuple)):
            return [one(t) for t in target]
        return one(target)

    def _wrap(self, target: Any, link: str, images: Any, n: int) -> ModelFunction:
        fn = wrap_model(
            self.model,
            target=self._target_indices(target),
            link=link,
            X=images[:1],
            n_rows=n,
            output=self.output,
        )
        if self.output_names is not None:
            every = wrap_model(self.model, target="all", X=images[:1], output=self.output)
            k = len(every.output_names)
            if k != len(self.output_names):
                raise InvalidParameterError(
                    f"output_names has {len(self.output_names)} names but the model has {k} "
                    "outputs; give one name per output."
                )
        return fn

    def _name(self, fn: ModelFunction, j: int, default: str) -> str:
        """The name of output ``j`` (an index among all outputs)."""
        return self.output_names[j] if self.output_names is not None else default

    def _explain(
        self, X: Any, target: Any, link: str | None, progress: ProgressFn | None
    ) -> Explanation:
        columns = _numeric_columns(X)
        images, channels = _as_inputs(X, self.channels)
        n, shape = images.shape[0], images.shape[1:]

        def call(batch: np.ndarray) -> Any:
            # a table goes to the model as a DataFrame under the caller's names, so that the
            # model function matches its columns to the fitted ones by name (contract 2)
            return fn(batch if columns is None else pd.DataFrame(batch, columns=columns))

        window = _as_shape("window", self.window, len(shape))
        stride = _as_shape("stride", self.stride, len(shape))
        boxes = window_boxes(shape, window, stride)
        base = np.asarray(_to_numpy(self.baseline), dtype=images.dtype)
        per_row = base.ndim == images.ndim and base.shape[0] == n and base.shape[1:] == shape
        if not per_row:
            try:
                np.broadcast_to(base, shape)
            except ValueError:
                raise InvalidParameterError(
                    f"baseline of shape {base.shape} does not broadcast to one input of shape "
                    f"{shape}; pass a scalar, an array broadcastable to {shape}, or one "
                    f"baseline per input, shape {(n, *shape)}."
                ) from None
        fn = self._wrap(
            target,
            link or self.link,
            images if columns is None else pd.DataFrame(images[:1], columns=columns),
            n,
        )
        fills = np.broadcast_to(base if per_row else base[None], (n, *shape)).astype(images.dtype)
        n_win = len(boxes)
        rows_budget = max(1, int(self.chunk_bytes // max(1, images[0].nbytes)))
        if self.batch_size is not None:
            rows_budget = min(rows_budget, self.batch_size)
        block = max(1, min(n_win, rows_budget - 2))  # windows per model call and input
        per_call = max(1, rows_budget // (block + 2))  # inputs per model call
        coverage = np.zeros(shape, dtype=float)
        for box in boxes:
            coverage[box] += 1.0
        values, bases, preds = [], [], []
        for start in range(0, n, per_call):
            x = images[start : start + per_call]
            fill = fills[start : start + per_call]
            m = x.shape[0]
            drops, ends = [], None
            for w0 in range(0, n_win, block):
                js = range(w0, min(n_win, w0 + block))
                occ = np.repeat(x[:, None], len(js), axis=1)  # (m, |js|, *shape)
                for t, j in enumerate(js):
                    occ[(slice(None), t, *boxes[j])] = fill[(slice(None), *boxes[j])]
                parts = [x[:, None], fill[:, None], occ] if w0 == 0 else [occ]
                batch = np.concatenate(parts, axis=1).reshape(-1, *shape)
                y = _evaluate(call, batch, m, start)
                y = y.reshape(m, len(parts) - 1 + len(js), -1)
                if w0 == 0:
                    ends, y = y[:, :2], y[:, 2:]
                drops.append(ends[:, :1] - y)  # type: ignore[index]
            d = np.concatenate(drops, axis=1)  # (m, n_windows, k)
            total = np.zeros((m, *shape, d.shape[2]))
            lead = (m,) + (1,) * len(shape) + (d.shape[2],)
            for j, box in enumerate(boxes):
                total[(slice(None), *box)] += d[:, j].reshape(lead)
            values.append(total / coverage[None, ..., None])
            preds.append(ends[:, 0])  # type: ignore[index]
            bases.append(ends[:, 1])  # type: ignore[index]
            if progress is not None:
                progress(min(start + per_call, n), n)
        vals = np.concatenate(values)
        base_values, predictions = np.concatenate(bases), np.concatenate(preds)
        meta: dict[str, Any] = {"n_windows": len(boxes)}
        if fn.per_row:
            cols = np.array([fn.output_indices.index(t) for t in fn.row_targets or []])
            rows = np.arange(n)
            vals = np.moveaxis(vals, -1, 1)[rows, cols]  # (n, k, *shape) -> (n, *shape)
            base_values, predictions = base_values[rows, cols], predictions[rows, cols]
            row_names = [
                self._name(fn, t, nm)
                for t, nm in zip(fn.row_targets or [], fn.row_target_names or [], strict=True)
            ]
            output_names: list[str] = [PER_ROW_NAME]
            target_param: Any = row_names
            meta.update(targets=row_names)
            meta[ROW_KEYS] = ["targets"]
        else:
            output_names = [
                self._name(fn, j, nm)
                for j, nm in zip(fn.output_indices, fn.output_names, strict=True)
            ]
            target_param = output_names[0] if fn.single_output else output_names
            if fn.single_output:
                vals, base_values, predictions = vals[..., 0], base_values[:, 0], predictions[:, 0]
        description = fn.output_description
        if self.output_names is not None and not fn.per_row:
            description = ", ".join(f"output {nm}" for nm in output_names) + " (raw model output)"
        return Explanation(
            vals,
            base_values,
            data=images if columns is None else X,
            feature_names=None if columns is None else columns,
            output_names=output_names,
            predictions=predictions,
            method=self.method,
            params={
                "output": description,
                "link": fn.link,
                "target": target_param,
                "model_type": fn.model_type,
                "window": list(window),
                "stride": list(stride),
                "baseline": "per input" if per_row else _baseline_repr(base),
                "channels": channels,
                **({"output_selector": self.output} if self.output is not None else {}),
            },
            n_evals=len(boxes) + 2,
            meta=meta,
        )


#: Captum's ``Occlusion.attribute`` keywords, and what whybox calls them
_CAPTUM_SPELLINGS = {
    "sliding_window_shapes": "window= on the wb.Occlusion constructor",
    "strides": "stride= on the wb.Occlusion constructor",
    "baselines": "baseline= on the wb.Occlusion constructor",
    "perturbations_per_eval": "batch_size= on the wb.Occlusion constructor",
    "show_progress": "progress= a callable(done, total)",
    "additional_forward_args": (
        "nothing: whybox calls model(X) with one input; wrap the model so that its forward "
        "passes the extra arguments"
    ),
}


def _numeric_columns(X: Any) -> list[str] | None:
    """The column names of a DataFrame of numbers (None for other inputs); a DataFrame with
    other columns is refused: occlusion fills windows with a numeric baseline."""
    if not isinstance(X, pd.DataFrame):
        return None
    other = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
    if other:
        raise InvalidInputError(
            f"Occlusion fills windows of the input with a numeric baseline, but X has "
            f"non-numeric columns {other}. Explain such a table with a model-agnostic game "
            "(wb.ExactShap / wb.KernelShap with background= rows), whose absent features take "
            "real values from the background."
        )
    names = [str(c) for c in X.columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise InvalidInputError(
            f"X has duplicated column names {dup}; each feature must appear once. Rename or "
            "drop the duplicates."
        )
    return names


def _evaluate(
    call: Callable[[np.ndarray], Any], batch: np.ndarray, m: int, start: int
) -> np.ndarray:
    """``call(batch)`` for the occluded copies of inputs ``start .. start + m``; a NaN or inf
    output is a ModelCallError naming the explained rows whose copies gave it."""
    try:
        return np.asarray(call(batch), dtype=float)
    except ModelCallError as exc:
        if "NaN" not in str(exc) and "inf" not in str(exc):
            raise
        per = batch.shape[0] // m
        bad = []
        for r in range(m):
            try:
                call(batch[r * per : (r + 1) * per])
            except ModelCallError:
                bad.append(start + r)
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise ModelCallError(
            f"the model returned NaN or infinite outputs on rows [{shown}] of X (on the row, "
            "its baseline or one of its occluded copies); occlusion scores of such outputs "
            "are meaningless. Check those inputs, the baseline= and the model."
        ) from exc


def _as_inputs(X: Any, channels: str) -> tuple[np.ndarray, str | None]:
    """Inputs (n, *shape) as a finite float array, and their image layout when they have one.

    Occlusion needs no layout (its windows cover every axis); it is kept for plots. Inputs
    that are not images (a table (n, p), sequences (n, L)) have none.
    """
    arr = _to_numpy(X)
    if channels == "auto" and arr.ndim not in (3, 4) and arr.ndim >= 2:
        images, _ = as_image_batch(arr.reshape(arr.shape[0], 1, 1, -1), "first", name="X")
        return images.reshape(arr.shape), None
    if channels == "auto":
        try:
            return as_image_batch(X, "auto", name="X")
        except InvalidInputError as exc:
            if "channel axis" not in str(exc):
                raise
            images, _ = as_image_batch(X, "first", name="X")
            return images, None
    return as_image_batch(X, channels, name="X")


def _baseline_repr(base: np.ndarray) -> Any:
    return float(base) if base.ndim == 0 else f"array of shape {list(base.shape)}"
