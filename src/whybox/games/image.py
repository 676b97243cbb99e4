"""Image regions as players: superpixels, image maskers and the image game.

An image is explained through the same cooperative-game engine as a table: the players are
regions of the image (superpixels from SLIC or quickshift, or the cells of a grid), and a
coalition's worth is the model's output on the image in which the regions outside the
coalition are replaced by a *fill*: a baseline colour, a blurred copy of the image, or each
region's mean colour (:class:`ImageMasker`). Every Shapley, Banzhaf and LIME estimator of
:mod:`whybox.games` then explains images unchanged.

Layouts
-------
Images come in batches, as numpy arrays or torch tensors, in one of three layouts:

* ``channels="first"``: (n, c, h, w), torch's layout;
* ``channels="last"``: (n, h, w, c), the numpy / PIL / scikit-image layout;
* ``channels="none"``: (n, h, w), grayscale without a channel axis.

``channels="auto"`` (the default) picks ``"first"`` for 4-D torch tensors, and for 4-D arrays
whichever of axis 1 or axis 3 alone has 1, 3 or 4 entries (else the one smaller than both
other image axes); 3-D batches are ``"none"``. A
segment map is always (h, w) and applies to every channel. Composed images keep the input's
layout and dtype, so the model sees exactly what it was trained on.

References
----------
Achanta, R., Shaji, A., Smith, K., Lucchi, A., Fua, P. and Suesstrunk, S. (2012). SLIC
superpixels compared to state-of-the-art superpixel methods. IEEE TPAMI 34(11).

Vedaldi, A. and Soatto, S. (2008). Quick shift and kernel methods for mode seeking. ECCV.

Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD. (Superpixels as interpretable features; LIME for images.)

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS. (KernelSHAP over superpixels.)

Covert, I., Lundberg, S. and Lee, S.-I. (2021). Explaining by removing: a unified framework
for model explanation. JMLR 22(209). (Blurring and baseline fills as removal operators.)
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_in, check_int
from ..errors import InvalidInputError, InvalidParameterError, MissingDependencyError
from .game import DEFAULT_CHUNK_BYTES, BaseGame

__all__ = [
    "CHANNELS",
    "DEFAULT_BATCH_SIZE",
    "FILLS",
    "SEGMENTERS",
    "ImageGame",
    "ImageMasker",
    "RegionGame",
    "as_image_batch",
    "grid_segments",
    "lime_image",
    "segment",
    "spread_to_pixels",
]

CHANNELS = ("auto", "first", "last", "none")
SEGMENTERS = ("slic", "quickshift", "grid")
FILLS = ("baseline", "blur", "mean")
_CHANNEL_COUNTS = (1, 3, 4)
#: images per model call of image games and Occlusion (a CPU sweet spot for small CNNs)
DEFAULT_BATCH_SIZE = 256


# ------------------------------------------------------------------ layouts
def _is_tensor(x: Any) -> bool:
    return any(c.__module__.startswith("torch") and c.__name__ == "Tensor" for c in type(x).__mro__)


def _to_numpy(x: Any) -> np.ndarray:
    if _is_tensor(x):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def _infer_channels(shape: tuple[int, ...], tensor: bool, batch: bool = True) -> str:
    """Layout of an image batch (``batch``) or of one image, from its shape."""
    nd = len(shape) - (1 if batch else 0)
    dims = shape[1:] if batch else shape
    if nd == 2:
        return "none"
    if nd != 3:
        what = "a batch of images" if batch else "one image"
        raise InvalidInputError(
            f"{what} must have shape "
            + (
                "(n, c, h, w), (n, h, w, c) or (n, h, w)"
                if batch
                else "(c, h, w), (h, w, c) or (h, w)"
            )
            + f"; got shape {tuple(shape)}. "
            + ("Add a batch axis to explain a single image (x[None])." if batch and nd == 2 else "")
        )
    if tensor:
        return "first"
    first, last = dims[0] in _CHANNEL_COUNTS, dims[2] in _CHANNEL_COUNTS
    if first and not last:
        return "first"
    if last and not first:
        return "last"
    if not first and not last:  # e.g. 2 or 5 channels: the axis smaller than both others
        if dims[0] < min(dims[1], dims[2]):
            return "first"
        if dims[2] < min(dims[0], dims[1]):
            return "last"
    raise InvalidInputError(
        f"cannot tell where the channel axis of images of shape {tuple(shape)} is: "
        + ("both" if first else "neither")
        + " of the first and last image axes has 1, 3 or 4 entries. Pass channels='first' "
        "for (n, c, h, w) images or channels='last' for (n, h, w, c)."
    )


def _spatial(shape: tuple[int, ...], channels: str) -> tuple[int, int]:
    """(h, w) of one image of ``shape`` in the given layout."""
    if channels == "first":
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def _n_channels(shape: tuple[int, ...], channels: str) -> int:
    if channels == "first":
        return int(shape[0])
    if channels == "last":
        return int(shape[2])
    return 1


def _expand(mask: np.ndarray, channels: str) -> np.ndarray:
    """Spatial masks (m, h, w) broadcastable against images (m, *image_shape)."""
    if channels == "first":
        return mask[:, None, :, :]
    if channels == "last":
        return mask[:, :, :, None]
    return mask


def _to_hwc(image: np.ndarray, channels: str) -> np.ndarray:
    """One image as (h, w, c) (or (h, w) for ``"none"``), for scikit-image and scipy."""
    if channels == "first":
        return np.moveaxis(image, 0, -1)
    return image


def as_image_batch(X: Any, channels: str = "auto", name: str = "images") -> tuple[np.ndarray, str]:
    """A batch of images as a finite float numpy array, and its layout.

    Parameters
    ----------
    X : array or torch.Tensor of shape (n, c, h, w), (n, h, w, c) or (n, h, w)
    channels : {"auto", "first", "last", "none"}
        Where the channel axis is (see the module docstring).

    Returns
    -------
    images : ndarray, same shape, float dtype (float32 inputs stay float32)
    channels : str
        ``"first"``, ``"last"`` or ``"none"``.
    """
    check_in("channels", channels, CHANNELS)
    tensor = _is_tensor(X)
    arr = _to_numpy(X)
    if arr.dtype.kind not in "fiub":
        raise InvalidInputError(
            f"{name} must be numeric (float pixel values), got dtype {arr.dtype}. Convert "
            "them, e.g. np.asarray(images, dtype=np.float32)."
        )
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InvalidInputError(
            f"{name} is empty (shape {tuple(arr.shape)}): pass at least one image, as a batch "
            "of shape (n, c, h, w), (n, h, w, c) or (n, h, w)."
        )
    if channels == "auto":
        channels = _infer_channels(tuple(arr.shape), tensor)
    want = 3 if channels == "none" else 4
    if arr.ndim != want:
        layout = {"first": "(n, c, h, w)", "last": "(n, h, w, c)", "none": "(n, h, w)"}[channels]
        raise InvalidInputError(
            f"{name} of shape {tuple(arr.shape)} do not match channels={channels!r}, which "
            f"expects a batch of shape {layout}. Add a batch axis for a single image (x[None]) "
            "or pass the right channels=."
        )
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    if bad.any():
        raise InvalidInputError(
            f"{name} contain NaN or infinite pixel values in {int(bad.sum())} of "
            f"{arr.shape[0]} images (first: image {int(np.flatnonzero(bad)[0])}). Replace them "
            "with finite values before explaining."
        )
    return np.ascontiguousarray(arr), channels


# ------------------------------------------------------------------ segmentation
def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..S-1 in order of first appearance (row-major)."""
    flat = labels.reshape(-1)
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].reshape(labels.shape).astype(np.int32)


def grid_segments(h: int, w: int, n_segments: int) -> np.ndarray:
    """A grid of about ``n_segments`` near-square cells over an (h, w) image.

    The grid has ``r`` rows and ``c`` columns with ``r / c`` close to ``h / w`` and ``r c``
    close to ``n_segments`` (at most h rows and w columns); cell ``(a, b)`` is label
    ``a c + b`` and pixel ``(y, x)`` lies in row ``floor(y r / h)`` and column
    ``floor(x c / w)``.

    Returns
    -------
    ndarray of int32, shape (h, w), labels 0..r c - 1
    """
    h = check_int("image height", h, minimum=1)
    w = check_int("image width", w, minimum=1)
    n_segments = check_int("n_segments", n_segments, minimum=1)
    rows = int(min(h, max(1, round(np.sqrt(n_segments * h / w)))))
    cols = int(min(w, max(1, round(n_segments / rows))))
    ry = (np.arange(h) * rows) // h
    cx = (np.arange(w) * cols) // w
    return (ry[:, None] * cols + cx[None, :]).astype(np.int32)


def _skimage_segmentation() -> Any:
    try:
        from skimage import segmentation
    except ImportError as exc:
        raise MissingDependencyError("scikit-image", "torch", "superpixel segmentation") from exc
    return segmentation


def segment(
    image: Any,
    method: str = "slic",
    *,
    n_segments: int = 50,
    compactness: float | None = None,
    channels: str = "auto",
    random_state: int | None = 0,
    **options: Any,
) -> np.ndarray:
    """Segment one image into superpixels (or grid cells).

    Parameters
    ----------
    image : array or torch.Tensor of shape (c, h, w), (h, w, c) or (h, w)
        One image (no batch axis).
    method : {"slic", "quickshift", "grid"}
        ``"slic"``: scikit-image's SLIC k-means superpixels (Achanta et al. 2012);
        ``"quickshift"``: scikit-image's quick shift (lime's default segmenter, with lime's
        ``kernel_size=4, max_dist=200, ratio=0.2``); ``"grid"``: near-square cells, pure
        numpy. Default ``"slic"``.
    n_segments : int, default 50
        Approximate number of segments (SLIC and grid; quick shift has no target count).
    compactness : float, optional
        SLIC's colour/space trade-off. Default 10 for 3-channel images (SLIC works in CIELAB
        there) and 0.1 otherwise (intensities in [0, 1]); larger is more square.
    channels : {"auto", "first", "last", "none"}, default "auto"
        Layout of ``image``; ``"auto"`` reads it from the shape (a 2-D array is one
        grey-scale image; a 3-D one has its channels on the short axis, first or last).
    random_state : int or None, default 0
        Seed of quick shift's random tie-breaking (SLIC and the grid are deterministic).
    **options
        Passed on to ``skimage.segmentation.slic`` / ``quickshift``.

    Returns
    -------
    ndarray of int32, shape (h, w)
        Segment labels 0..S-1, numbered in order of first appearance.

    Raises
    ------
    MissingDependencyError
        For ``"slic"`` / ``"quickshift"`` without scikit-image (``pip install 'whybox[torch]'``).
    InvalidParameterError
        For an unknown ``method`` or ``channels``, or ``n_segments`` below 1.
    InvalidInputError
        If ``image`` is a batch rather than one image.

    Examples
    --------
    >>> labels = wb.segment(np.zeros((8, 8)), "grid", n_segments=4)
    >>> labels.shape, np.unique(labels).tolist()
    ((8, 8), [0, 1, 2, 3])
    >>> labels[::4, ::4].tolist()  # one 4x4 cell per label
    [[0, 1], [2, 3]]
    """
    check_in("method", method, SEGMENTERS)
    check_in("channels", channels, CHANNELS)
    arr = _to_numpy(image)
    if channels == "auto":
        channels = _infer_channels(tuple(arr.shape), _is_tensor(image), batch=False)
    if arr.ndim != (2 if channels == "none" else 3):
        raise InvalidInputError(
            f"segment() takes one image; got shape {tuple(arr.shape)} with channels={channels!r}."
            " Pass images[i], not the batch."
        )
    arr = arr.astype(np.float64)
    h, w = _spatial(arr.shape, channels)
    if method == "grid":
        return grid_segments(h, w, n_segments)
    check_int("n_segments", n_segments, minimum=1)
    seg = _skimage_segmentation()
    hwc = _to_hwc(arr, channels)
    if hwc.ndim == 3 and hwc.shape[2] == 1:
        hwc = hwc[:, :, 0]
    colour = hwc.ndim == 3 and hwc.shape[2] == 3
    if method == "slic":
        comp = (10.0 if colour else 0.1) if compactness is None else float(compactness)
        kw = {"n_segments": n_segments, "compactness": comp, "start_label": 0}
        kw["channel_axis"] = -1 if hwc.ndim == 3 else None
        kw["convert2lab"] = colour
        kw.update(options)
        labels = seg.slic(hwc, **kw)
    else:
        kw = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "convert2lab": colour}
        seed = "rng" if "rng" in inspect.signature(seg.quickshift).parameters else "random_seed"
        kw[seed] = 0 if random_state is None else int(random_state)
        kw.update(options)
        img3 = hwc if hwc.ndim == 3 else np.repeat(hwc[:, :, None], 3, axis=2)
        labels = seg.quickshift(img3, channel_axis=-1, **kw)
    return _relabel(np.asarray(labels))


# ------------------------------------------------------------------ masker
class ImageMasker:
    """What "absent" means for image regions: which regions, and what replaces them.

    Parameters
    ----------
    segments : {"slic", "quickshift", "grid"}, int array, or callable
        How each image is cut into players: a method of :func:`segment`, one (h, w) label map
        for every image, an (n, h, w) array of maps row-aligned with the explained batch, or a
        callable ``f(image_hwc) -> (h, w) labels`` (``image_hwc`` is (h, w, c) or (h, w)).
    n_segments : int
        Approximate segments per image for ``"slic"`` and ``"grid"``.
    compactness : float, optional
        SLIC's compactness (see :func:`segment`).
    fill : {"baseline", "blur", "mean"}
        What absent regions show: ``"baseline"`` the constant ``value``; ``"blur"`` the image
        blurred by a Gaussian of standard deviation ``sigma`` pixels (over the spatial axes,
        per channel); ``"mean"`` each segment's own mean colour (lime's ``hide_color=None``).
    value : float, sequence of float (one per channel), or array of one image's shape
        The baseline colour or image for ``fill="baseline"``.
    sigma : float, optional
        Blur width in pixels for ``fill="blur"``; default ``max(1, min(h, w) / 8)``.
    channels : {"auto", "first", "last", "none"}
        Layout of the explained images (see the module docstring).
    random_state : int or None
        Seed of the segmenter where it is random (quick shift).
    segment_options : dict, optional
        Extra keyword arguments for the scikit-image segmenter.

    Examples
    --------
    An image whose top-left quarter is bright, and a model that sums the pixels: only the
    top-left cell of a 2 x 2 grid gets credit, spread over its pixels.

    >>> image = np.zeros((8, 8))
    >>> image[:4, :4] = 1.0
    >>> f = lambda images: np.asarray(images).reshape(len(images), -1).sum(axis=1)
    >>> masker = wb.ImageMasker("grid", n_segments=4, fill="baseline", value=0.0)
    >>> exp = wb.ExactShap(f, masker).explain(image[None])
    >>> exp.values.shape, float(exp.values[0, :4, :4].sum()), float(exp.values[0, 4:].sum())
    ((1, 8, 8), 16.0, 0.0)
    """

    def __init__(
        self,
        segments: Any = "slic",
        *,
        n_segments: int = 50,
        compactness: float | None = None,
        fill: str = "baseline",
        value: Any = 0.0,
        sigma: float | None = None,
        channels: str = "auto",
        random_state: int | None = 0,
        segment_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(segments, str):
            check_in("segments", segments, SEGMENTERS)
        elif not callable(segments):
            arr = _to_numpy(segments)
            if arr.ndim not in (2, 3) or arr.dtype.kind not in "iu":
                raise InvalidParameterError(
                    f"segments must be 'slic', 'quickshift', 'grid', an integer label map of "
                    f"shape (h, w) or (n, h, w), or a callable; got an array of shape "
                    f"{tuple(arr.shape)} and dtype {arr.dtype}."
                )
            segments = arr
        self.segments = segments
        self.n_segments = check_int("n_segments", n_segments, minimum=1)
        self.compactness = compactness
        self.fill = check_in("fill", fill, FILLS)
        self.value = value
        if sigma is not None and not (
            isinstance(sigma, numbers.Real) and np.isfinite(sigma) and sigma > 0
        ):
            raise InvalidParameterError(
                f"sigma must be a positive number of pixels, got {sigma!r}."
            )
        self.sigma = None if sigma is None else float(sigma)
        self.channels = check_in("channels", channels, CHANNELS)
        self.random_state = random_state
        self.segment_options = dict(segment_options or {})

    def __repr__(self) -> str:
        seg = self.segments if isinstance(self.segments, str) else type(self.segments).__name__
        return f"ImageMasker(segments={seg!r}, n_segments={self.n_segments}, fill={self.fill!r})"

    def describe(self) -> str:
        """One line for reports: segmenter and fill."""
        seg = self.segments if isinstance(self.segments, str) else "given label maps"
        fill = {
            "baseline": f"baseline value {self.value if np.ndim(self.value) == 0 else 'array'}",
            "blur": "blurred image" + (f" (sigma {self.sigma:g})" if self.sigma else ""),
            "mean": "segment mean colour",
        }[self.fill]
        return f"{seg} segments (~{self.n_segments}), absent regions show the {fill}"

    # ------------------------------------------------------------------ per image
    def segment_image(self, image: np.ndarray, channels: str, row: int | None = None) -> np.ndarray:
        """Segment labels (h, w) of one image (0..S-1)."""
        h, w = _spatial(image.shape, channels)
        seg = self.segments
        if isinstance(seg, str):
            return segment(
                image,
                seg,
                n_segments=self.n_segments,
                compactness=self.compactness,
                channels=channels,
                random_state=self.random_state,
                **self.segment_options,
            )
        if callable(seg):
            labels = _to_numpy(seg(_to_hwc(image, channels)))
        elif seg.ndim == 3:
            if row is None or not 0 <= row < seg.shape[0]:
                raise InvalidParameterError(
                    f"segments has {seg.shape[0]} label maps (one per image), but image {row} "
                    "was asked for; pass one (h, w) map, or one map per explained image."
                )
            labels = seg[row]
        else:
            labels = seg
        if labels.shape != (h, w) or labels.dtype.kind not in "iu":
            raise InvalidInputError(
                f"a segment map must be an integer array of the image's spatial shape {(h, w)}; "
                f"got shape {tuple(labels.shape)} and dtype {labels.dtype}."
            )
        return _relabel(labels)

    def fill_image(self, image: np.ndarray, labels: np.ndarray, channels: str) -> np.ndarray:
        """What absent pixels show, as an array of the image's shape and dtype."""
        if self.fill == "baseline":
            v = np.asarray(_to_numpy(self.value), dtype=image.dtype)
            if v.ndim == 1 and channels != "none":
                c = _n_channels(image.shape, channels)
                if v.shape[0] != c:
                    raise InvalidParameterError(
                        f"value has {v.shape[0]} entries but the images have {c} channels; "
                        "pass one value per channel, a scalar, or an array of an image's shape."
                    )
                v = v[:, None, None] if channels == "first" else v[None, None, :]
            try:
                return np.ascontiguousarray(np.broadcast_to(v, image.shape))
            except ValueError:
                raise InvalidParameterError(
                    f"value of shape {v.shape} does not broadcast to the image shape "
                    f"{image.shape}; pass a scalar, one value per channel, or an image-shaped "
                    "array."
                ) from None
        if self.fill == "blur":
            from scipy.ndimage import gaussian_filter

            h, w = _spatial(image.shape, channels)
            sigma = self.sigma if self.sigma is not None else max(1.0, min(h, w) / 8.0)
            s = {"first": (0, sigma, sigma), "last": (sigma, sigma, 0), "none": (sigma, sigma)}
            out = gaussian_filter(image.astype(np.float64), sigma=s[channels], mode="nearest")
            return out.astype(image.dtype)
        # segment mean colour
        n_seg = int(labels.max()) + 1
        counts = np.bincount(labels.ravel(), minlength=n_seg).astype(np.float64)
        hwc = _to_hwc(image, channels).astype(np.float64)
        flat = hwc.reshape(labels.size, -1)
        sums = np.stack(
            [
                np.bincount(labels.ravel(), weights=flat[:, j], minlength=n_seg)
                for j in range(flat.shape[1])
            ],
            axis=1,
        )
        means = sums / counts[:, None]
        out = means[labels.ravel()].reshape(hwc.shape)
        if channels == "first":
            out = np.moveaxis(out, -1, 0)
        return out.astype(image.dtype)


# ------------------------------------------------------------------ games
class RegionGame(BaseGame):
    """A game whose players are regions of one image: present regions show the image, the
    others a fill image.

    Subclasses define :meth:`present`, the pixel masks of coalitions. Evaluation is batched
    with at most ``chunk_bytes`` of composed images per model call, and cached.

    Parameters
    ----------
    model_fn : callable
        ``f(images (m, *image_shape)) -> (m,) or (m, k)``; anything that is not already a
        :class:`whybox.models.ModelFunction` (a torch module, a plain callable) is wrapped
        with :func:`whybox.models.wrap_model` and ``target``.
    image : ndarray of shape image_shape
        The explained image (no batch axis), in layout ``channels``.
    fill : ndarray of shape image_shape
        What absent pixels show.
    n_players : int
    player_names : list of str
    channels : {"first", "last", "none"}
    target : optional
        Output selection when ``model_fn`` is wrapped here.
    chunk_bytes : int
        Memory bound of one batch of composed images.
    batch_size : int or None
        At most this many images per model call (default 256: CNNs on a CPU run fastest on
        moderate batches); None for the memory bound alone. Values do not depend on it.
    cache : bool
    """

    def __init__(
        self,
        model_fn: Callable[[Any], Any],
        image: np.ndarray,
        fill: np.ndarray,
        n_players: int,
        player_names: list[str],
        channels: str,
        *,
        target: Any = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        cache: bool = True,
    ) -> None:
        from ..models import ModelFunction, wrap_model

        super().__init__(n_players, player_names, cache=cache)
        self.image = image
        self.fill = fill
        self.channels = channels
        if not isinstance(model_fn, ModelFunction):
            model_fn = wrap_model(model_fn, target=target, X=image[None])
        self.model_fn = model_fn
        chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=1)
        self.chunk_rows = max(1, int(chunk_bytes // max(1, image.nbytes)))
        if batch_size is not None:
            self.chunk_rows = min(self.chunk_rows, check_int("batch_size", batch_size, minimum=1))

    def present(self, coalitions: np.ndarray) -> np.ndarray:
        """Pixels shown for each coalition: bool, broadcastable against (m, *image_shape)."""
        raise NotImplementedError

    def images(self, coalitions: np.ndarray) -> np.ndarray:
        """The composed images of coalitions (m, n_players): shape (m, *image_shape)."""
        C = np.asarray(coalitions, dtype=bool)
        if C.ndim == 1:
            C = C[None, :]
        return np.where(self.present(C), self.image[None], self.fill[None])

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, coalitions.shape[0], self.chunk_rows):
            batch = self.images(coalitions[start : start + self.chunk_rows])
            y = np.asarray(self.model_fn(batch), dtype=float)
            out.append(y.reshape(batch.shape[0], -1))
        return np.concatenate(out, axis=0)


class ImageGame(RegionGame):
    """The game of one image whose players are its segments (superpixels or grid cells).

    ``v(S)`` is the model output on the image in which the segments outside ``S`` show the
    masker's fill (baseline colour, blur, or segment mean). Any of whybox's game
    estimators (exact Shapley values, KernelSHAP, permutation sampling, Banzhaf, LIME) takes
    it as it is; :class:`whybox.ExactShap` and :class:`whybox.KernelShap` build it for you
    when their background is an :class:`whybox.ImageMasker`.

    Parameters
    ----------
    model_fn : callable or model
        ``f(images) -> (m,) or (m, k)``, a torch module or anything
        :func:`whybox.wrap_model` supports.
    image : array or torch.Tensor of shape (c, h, w), (h, w, c) or (h, w)
        One image (no batch axis).
    masker : ImageMasker, optional
        Segments and fill (default ``ImageMasker()``: SLIC, baseline 0).
    channels : {"auto", "first", "last", "none"}, optional
        Layout of ``image``; default the masker's.
    target : optional
        Output(s) of the model when it is wrapped here (see :func:`whybox.wrap_model`).
    row : int, optional
        Which of the masker's per-image label maps to use, when it holds one per image.
    chunk_bytes : int, default 268435456
        Memory bound of one model call's batch of composed images (256 MB).
    batch_size : int or None, default 256
        At most this many images per model call; None: the memory bound alone.
    cache : bool, default True
        Never evaluate the same coalition twice.

    Attributes
    ----------
    segments : ndarray of int32, shape (h, w)
        Segment label of every pixel; player ``j`` is segment ``j``.
    fill : ndarray of the image's shape
        What absent pixels show.
    sizes : ndarray (n_players,)
        Pixels per segment.

    Notes
    -----
    ``game.value(coalitions)`` takes a boolean array of shape (m, n_players) and returns the
    model's outputs on the composed images, shape (m, k).

    Examples
    --------
    >>> image = np.zeros((8, 8))
    >>> image[:4, :4] = 1.0
    >>> f = lambda images: np.asarray(images).reshape(len(images), -1).sum(axis=1)
    >>> game = wb.ImageGame(f, image, wb.ImageMasker("grid", n_segments=4))
    >>> game.n_players, game.sizes.tolist()
    (4, [16, 16, 16, 16])
    >>> game.value(np.eye(4, dtype=bool)).ravel().tolist()  # one cell shown at a time
    [16.0, 0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        model_fn: Any,
        image: Any,
        masker: ImageMasker | None = None,
        *,
        channels: str | None = None,
        target: Any = None,
        row: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        cache: bool = True,
    ) -> None:
        masker = ImageMasker() if masker is None else masker
        if not isinstance(masker, ImageMasker):
            raise InvalidParameterError(
                f"masker must be an ImageMasker, got {type(masker).__name__}."
            )
        channels = masker.channels if channels is None else check_in("channels", channels, CHANNELS)
        arr, channels = as_image_batch(_to_numpy(image)[None], channels, name="image")
        img = arr[0]
        labels = masker.segment_image(img, channels, row)
        fill = masker.fill_image(img, labels, channels)
        n = int(labels.max()) + 1
        super().__init__(
            model_fn,
            img,
            fill,
            n,
            [f"segment {j}" for j in range(n)],
            channels,
            target=target,
            chunk_bytes=chunk_bytes,
            batch_size=batch_size,
            cache=cache,
        )
        self.segments = labels
        self.sizes = np.bincount(labels.ravel(), minlength=n)

    def present(self, coalitions: np.ndarray) -> np.ndarray:
        return _expand(coalitions[:, self.segments], self.channels)

    def to_pixels(self, phi: np.ndarray) -> np.ndarray:
        """Per-segment values (n_players,) or (n_players, k) spread over the image's pixels.

        Each pixel (and channel) gets its segment's value divided by the segment's number of
        pixels times channels, so the pixel values add up to the segment values.

        Returns
        -------
        ndarray of shape image_shape or (*image_shape, k)
        """
        return spread_to_pixels(phi, self.segments, self.image.shape, self.channels)


def spread_to_pixels(
    phi: np.ndarray, segments: np.ndarray, image_shape: tuple[int, ...], channels: str
) -> np.ndarray:
    """Spread segment values evenly over their pixels and channels.

    Parameters
    ----------
    phi : ndarray (S,) or (S, k)
    segments : int ndarray (h, w), labels 0..S-1
    image_shape : tuple
        One image's shape in layout ``channels``.

    Returns
    -------
    ndarray of shape image_shape (+ (k,) when phi is 2-D); sums over the image equal
    ``phi.sum(axis=0)``.
    """
    phi = np.asarray(phi, dtype=float)
    squeeze = phi.ndim == 1
    P = phi[:, None] if squeeze else phi
    c = _n_channels(image_shape, channels)
    sizes = np.bincount(segments.ravel(), minlength=P.shape[0]).astype(float)
    per = P / (np.maximum(sizes, 1.0) * c)[:, None]  # (S, k)
    hw = per[segments]  # (h, w, k)
    if channels == "first":
        out = np.broadcast_to(hw[None], (c, *hw.shape))
    elif channels == "last":
        out = np.broadcast_to(hw[:, :, None, :], (hw.shape[0], hw.shape[1], c, hw.shape[2]))
    else:
        out = hw
    out = np.ascontiguousarray(out)
    return out[..., 0] if squeeze else out


# ------------------------------------------------------------------ LIME on images
def lime_image(
    game: Any,
    rng: np.random.Generator,
    *,
    budget: int = 1000,
    n_features: int = 10,
    kernel_width: float = 0.25,
    feature_selection: str = "auto",
    alpha: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """LIME over the players of a game, as lime's ``LimeImageExplainer``.

    Sample 0 is the grand coalition; every other sample switches each player on with
    probability 1/2 (lime's ``randint(0, 2)``). A sample's weight is
    ``sqrt(exp(-d^2 / kernel_width^2))`` of its cosine distance ``d`` to the grand coalition
    (the empty coalition has distance 1, as scikit-learn's ``pairwise_distances`` gives it),
    and the surrogate is :func:`whybox.games.lime.fit_surrogate` on the 0/1 samples.

    Parameters
    ----------
    game : Game
    rng : numpy Generator
    budget : int
        Samples (lime's ``num_samples``), the grand coalition included.
    n_features, feature_selection, alpha
        As :func:`whybox.games.lime.fit_surrogate` (lime's ``num_features``,
        ``feature_selection`` and ``Ridge(alpha=1)``).
    kernel_width : float
        lime's image kernel width (0.25).

    Returns
    -------
    phi : ndarray (n_players, k)
        Surrogate coefficients (0 for unselected players).
    intercept : ndarray (k,)
    std : ndarray (n_players, k)
        Standard errors of the coefficients.
    info : dict
        ``fidelity`` (weighted R^2), ``local_prediction`` and ``selected`` players per output.
    """
    from .game import as_value_matrix
    from .lime import fit_surrogate

    n = int(game.n_players)
    budget = check_int("budget", budget, minimum=2)
    Z = rng.integers(0, 2, size=(budget, n)).astype(bool)
    Z[0] = True
    y = as_value_matrix(game.value(Z), budget)
    Zf = Z.astype(float)
    norms = np.sqrt(Zf.sum(axis=1))
    cos = (Zf @ Zf[0]) / np.where(norms > 0, norms * norms[0], 1.0)
    d = 1.0 - np.where(norms > 0, cos, 0.0)
    w = np.sqrt(np.exp(-(d**2) / kernel_width**2))
    k = y.shape[1]
    phi, std = np.zeros((n, k)), np.zeros((n, k))
    intercept = np.zeros(k)
    fits = []
    for o in range(k):
        fit = fit_surrogate(Zf, y[:, o], w, n_features, feature_selection, alpha)
        phi[fit.used, o] = fit.coef
        std[fit.used, o] = fit.std
        intercept[o] = fit.intercept
        fits.append(fit)
    names = list(game.player_names)
    info = {
        "fidelity": [f.score for f in fits],
        "local_prediction": [f.local_prediction for f in fits],
        "selected": [[names[j] for j in f.used] for f in fits],
    }
    return phi, intercept, std, info
