"""Occlusion's game: every position of a sliding window is a player (:class:`WindowGame`),
scored by the leave-one-out drop ``f(x) - f(x with the window set to the baseline)``; a pixel's
attribution is the mean score of the windows that cover it (:func:`occlusion_attributions`).
The explainer users construct is :class:`whybox.agnostic.occlusion.Occlusion`.

References
----------
Zeiler, M. D. and Fergus, R. (2014). Visualizing and understanding convolutional networks.
ECCV.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError
from .game import DEFAULT_CHUNK_BYTES
from .image import DEFAULT_BATCH_SIZE, RegionGame

__all__ = ["WindowGame", "occlusion_attributions", "window_boxes"]


def _as_shape(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * ndim
    try:
        out = tuple(check_int(name, v, minimum=1) for v in value)
    except TypeError:
        raise InvalidParameterError(
            f"{name} must be an int or a tuple of {ndim} positive ints, got {value!r}."
        ) from None
    if len(out) != ndim:
        raise InvalidParameterError(
            f"{name}={value!r} has {len(out)} entries but one input has {ndim} axes; give one "
            f"per axis of an input without its batch axis, e.g. (1, 3, 3) for (1, 8, 8) images."
        )
    return out


def window_boxes(
    shape: Sequence[int], window: Sequence[int], stride: Sequence[int]
) -> list[tuple[slice, ...]]:
    """The window positions of an input of ``shape``, as Captum's ``Occlusion`` places them.

    Along axis ``a`` there are ``ceil((shape[a] - window[a]) / stride[a]) + 1`` positions
    starting at ``0, stride[a], 2 stride[a], ...``; the last one is cropped at the border.

    Returns
    -------
    list of tuples of slices, one box per window (C order over the axes)
    """
    shape, window, stride = tuple(shape), tuple(window), tuple(stride)
    for a, (d, win, st) in enumerate(zip(shape, window, stride, strict=True)):
        if win > d:
            raise InvalidParameterError(
                f"window {window} is larger than the input {shape} along axis {a}; pass a "
                "window no larger than the input."
            )
        if st > win and win < d:
            raise InvalidParameterError(
                f"stride {stride} is larger than the window {window} along axis {a}, which "
                "would leave inputs uncovered; pass stride <= window."
            )
    counts = [
        int(np.ceil((d - win) / st)) + 1 for d, win, st in zip(shape, window, stride, strict=True)
    ]
    boxes = []
    for idx in itertools.product(*(range(c) for c in counts)):
        boxes.append(
            tuple(
                slice(i * st, min(i * st + win, d))
                for i, st, win, d in zip(idx, stride, window, shape, strict=True)
            )
        )
    return boxes


class WindowGame(RegionGame):
    """The game of one input whose players are (overlapping) occlusion windows.

    A pixel is shown when every window covering it is in the coalition; otherwise it takes
    the baseline. For a coalition missing one window this is that window occluded.

    Parameters
    ----------
    model_fn : callable
        ``f(inputs (m, *shape)) -> (m,) or (m, k)`` (see :class:`RegionGame`).
    image : ndarray of shape ``shape``
    baseline : ndarray broadcastable to ``shape``
    boxes : list of tuples of slices
        The windows (see :func:`window_boxes`).
    channels : {"first", "last", "none"}
    chunk_bytes : int
    """

    def __init__(
        self,
        model_fn: Callable[[Any], Any],
        image: np.ndarray,
        baseline: np.ndarray,
        boxes: list[tuple[slice, ...]],
        channels: str,
        *,
        target: Any = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        cache: bool = True,
    ) -> None:
        fill = np.ascontiguousarray(np.broadcast_to(baseline, image.shape).astype(image.dtype))
        super().__init__(
            model_fn,
            image,
            fill,
            len(boxes),
            [f"window {j}" for j in range(len(boxes))],
            channels,
            target=target,
            chunk_bytes=chunk_bytes,
            batch_size=batch_size,
            cache=cache,
        )
        self.boxes = boxes

    def present(self, coalitions: np.ndarray) -> np.ndarray:
        out = np.ones((coalitions.shape[0], *self.image.shape), dtype=bool)
        for r, c in enumerate(coalitions):
            for j in np.flatnonzero(~c):
                out[(r, *self.boxes[j])] = False
        return out

    def coverage(self) -> np.ndarray:
        """Number of windows covering each pixel, shape ``image.shape``."""
        count = np.zeros(self.image.shape, dtype=np.int64)
        for box in self.boxes:
            count[box] += 1
        return count


def occlusion_attributions(game: WindowGame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out window scores averaged over the windows covering each pixel.

    Returns
    -------
    values : ndarray (*shape, k)
        ``sum_j (v(N) - v(N - j)) 1[pixel in window j] / #windows covering the pixel``.
    v_full : ndarray (k,)
        The model output on the input.
    v_empty : ndarray (k,)
        The model output on the baseline (everything occluded).
    """
    n = game.n_players
    C = ~np.eye(n, dtype=bool)
    ends = np.array([np.ones(n, dtype=bool), np.zeros(n, dtype=bool)])
    v_ends = game.value(ends)
    v_full, v_empty = v_ends[0], v_ends[1]
    drops = v_full[None, :] - game.value(C)  # (n_windows, k)
    total = np.zeros((*game.image.shape, drops.shape[1]))
    for box, d in zip(game.boxes, drops, strict=True):
        total[box] += d
    values = total / game.coverage()[..., None]
    return values, v_full, v_empty
