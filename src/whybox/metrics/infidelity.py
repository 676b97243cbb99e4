"""Infidelity (Yeh et al. 2019): does ``I . a`` predict the model's change under perturbations?

``E_I[(I . a - (f(x) - f(x - I)))^2]`` over random perturbations ``I``, for tabular rows and
for images (every pixel and channel a feature), with any background a metric is offered:
rows, a baseline value, a masker (:class:`~whybox.games.maskers.Baseline`,
:class:`~whybox.games.maskers.Independent`, ``wb.kmeans``) or an
:class:`~whybox.games.image.ImageMasker`.

References
----------
Yeh, C.-K., Hsieh, C.-Y., Suggala, A. S., Inouye, D. I. and Ravikumar, P. (2019). On the
(in)fidelity and sensitivity of explanations. NeurIPS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_2d_input, check_in, check_int
from ..errors import InvalidInputError, InvalidParameterError
from ..explanation import Explanation
from ..games.maskers import Baseline, Masker
from ..parallel import row_generator
from ._inputs import (
    _outputs_for,
    _select_output,
    is_image_batch,
    is_image_masker,
    noise_scale,
    numeric_matrix,
    rebuild_like,
    setup,
)

__all__ = ["LOCAL_METHODS", "infidelity", "infidelity_from_perturbations"]

#: methods whose attributions are local slopes (no factor x - baseline): infidelity compares
#: them with the raw perturbation
LOCAL_METHODS = frozenset({"saliency", "gradient", "smoothgrad", "vargrad", "guided_backprop"})


def infidelity_from_perturbations(
    f_x: np.ndarray,
    f_perturbed: np.ndarray,
    attributions: np.ndarray,
    perturbations: np.ndarray,
    *,
    inputs: np.ndarray | None = None,
    baselines: np.ndarray | None = None,
    optimal_scaling: bool = False,
) -> np.ndarray:
    """Yeh et al.'s infidelity from given perturbations and model outputs.

    Parameters
    ----------
    f_x : array of shape (n,)
        Outputs on the explained inputs.
    f_perturbed : array of shape (n, s)
        Outputs on ``x - I`` for each perturbation ``I``.
    attributions : array of shape (n, p)
    perturbations : array of shape (n, s, p)
        The perturbations ``I``.
    inputs, baselines : arrays of shape (n, p) and (p,) or (n, p), optional
        For attributions that already multiply by ``x - baseline`` (Shapley values,
        integrated gradients, input x gradient): the perturbation is divided by
        ``x - baseline`` before the dot product, as Captum's ``multiply_by_inputs`` does, so
        that ``I . a`` predicts the change of an additive model exactly. Where
        ``x = baseline`` the perturbation is divided by 1 (as in Captum).
    optimal_scaling : bool
        Scale each row's attributions by ``beta = E[(I.a) df] / E[(I.a)^2]`` first (the
        scale minimising the error; Yeh et al. report infidelity after it).

    Returns
    -------
    ndarray of shape (n,)
        ``E[(I.a - (f(x) - f(x - I)))^2]``; lower is better.
    """
    pert = perturbations
    if baselines is not None:
        if inputs is None:
            raise InvalidParameterError("baselines need the inputs they are subtracted from.")
        span = inputs - np.broadcast_to(baselines, inputs.shape)
        safe = np.isfinite(span) & (span != 0)  # a missing input (NaN) divides by 1 too
        pert = pert / np.where(safe, span, 1.0)[:, None, :]  # as Captum's safe_div
    dots = np.einsum("nsp,np->ns", pert, attributions)
    drops = f_x[:, None] - f_perturbed
    if optimal_scaling:
        num = (dots * drops).mean(axis=1)
        den = (dots * dots).mean(axis=1)
        beta = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        dots = beta[:, None] * dots
    return ((dots - drops) ** 2).mean(axis=1)


def infidelity(
    exp: Any,
    model: Any,
    X: Any = None,
    *,
    perturbation: Any = "gaussian",
    noise: float = 0.1,
    n_samples: int = 50,
    scale: Any = None,
    multiply_by_inputs: bool | None = None,
    optimal_scaling: bool = False,
    background: Any = None,
    target: Any = None,
    link: str | None = None,
    random_state: int | None = 0,
    allow_nan: bool = False,
) -> np.ndarray:
    """Infidelity of Yeh et al. (2019), one number per row (lower is better).

    ``E_I[(I . a - (f(x) - f(x - I)))^2]`` over random perturbations ``I``.

    Parameters
    ----------
    exp, model, X, target, link
        As for :func:`deletion`. Perturbations are differences of inputs, so only numeric
        features are perturbed; categorical, string and bool columns keep their values (their
        attributions are then not tested by this metric).
    perturbation : {"gaussian", "subset"} or array of shape (n, n_samples, p)
        ``"gaussian"``: ``I ~ N(0, (noise * scale)^2)`` per feature. ``"subset"``: a random
        subset of features (each with probability 1/2) is replaced by a random background
        row ``z``, ``I = (x - z)`` on the subset and 0 elsewhere (Yeh et al.'s noisy-baseline
        removal). An array gives the perturbations ``I`` themselves.
    noise : float
        Standard deviation of the Gaussian perturbation.
    n_samples : int
        Perturbations per row.
    scale : None, "std" or array of shape (p,)
        Unit of ``noise`` per feature: the features' own units (None), their standard
        deviation over X ("std"), or given numbers.
    multiply_by_inputs : bool, optional
        Whether the attributions already multiply by ``x - baseline`` (Shapley values, LIME,
        integrated gradients, input x gradient). Then ``I`` is divided by ``x - baseline``
        before the dot product (Captum's ``multiply_by_inputs``), with the baseline the mean
        of ``background``; otherwise (saliency-style slopes; Quantus's form) ``I`` is used
        as it is. Default: True unless ``exp.method`` is a gradient-only method
        (saliency, SmoothGrad, VarGrad, guided backprop).
    optimal_scaling : bool
        Rescale the attributions of each row by the error-minimising factor first (Yeh et
        al.'s reported variant; Captum's ``normalize=True``).
    background : DataFrame, array, scalar, Masker or ImageMasker, optional
        Reference rows: their mean is the baseline of ``multiply_by_inputs`` and they are
        the replacement rows of ``perturbation="subset"`` (default: up to 100 rows of X;
        pass the explainer's background so the baseline is the one the values are
        measured from). A masker is read for its rows (``wb.Baseline(0.0)``: the one
        reference row; ``wb.Independent`` / ``wb.kmeans``: its background rows). With an
        :class:`~whybox.games.image.ImageMasker` (or a batch of images as X), the inputs
        are images: see below.
    random_state : int or None
        Seed; each row draws from a generator seeded by it and the row's content.
    allow_nan : bool, default False
        Accept missing values in X for models that handle them: a missing value is never
        perturbed (it stays missing in every perturbed input).

    Notes
    -----
    Images (X of shape (n, c, h, w), (n, h, w, c) or (n, h, w), or an ImageMasker as
    ``background``): every pixel and channel is a feature. Attributions of the image's shape
    are used as they are; spatial ones (h, w), e.g. Grad-CAM's, apply to every channel of
    their pixel. ``"gaussian"`` adds noise to every pixel; ``"subset"`` needs an ImageMasker
    and replaces each segment with probability 1/2 by the masker's fill. The baseline of
    ``multiply_by_inputs`` is the masker's fill (default: a black image, 0).

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    Exact Shapley values of a linear model have zero infidelity: every perturbation
    changes the output by exactly the attributions' share of it.

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> exp = wb.explain(model, X.iloc[:5], background=bg)
    >>> np.round(wb.metrics.infidelity(exp, model, background=bg), 6).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    if is_image_masker(background) or is_image_batch(exp, X):
        return _image_infidelity(
            exp,
            model,
            X,
            background if is_image_masker(background) else None,
            perturbation=perturbation,
            noise=noise,
            n_samples=n_samples,
            scale=scale,
            multiply_by_inputs=multiply_by_inputs,
            optimal_scaling=optimal_scaling,
            target=target,
            link=link,
            random_state=random_state,
        )
    s = setup(
        exp,
        model,
        X,
        target=target,
        link=link,
        background=None,
        need_masker=False,
        allow_nan=allow_nan,
    )
    Xf, numeric = numeric_matrix(s.X, "infidelity")
    n, p = Xf.shape
    if s.values.shape[1] != p:
        raise InvalidInputError(
            f"infidelity needs one attribution per input feature; got {s.values.shape[1]} for "
            f"{p} features (grouped explanations cannot be scored by infidelity)."
        )
    if multiply_by_inputs is None:
        multiply_by_inputs = _multiplies_by_inputs(exp)
    present = ~np.isnan(Xf)  # a missing value (allow_nan) is never perturbed
    bg = _background_matrix(background, s.X, Xf)
    if isinstance(perturbation, str):
        check_in("perturbation", perturbation, ("gaussian", "subset"))
        n_samples = check_int("n_samples", n_samples, minimum=1)
        if perturbation == "gaussian":
            sd = _noise_sd(noise, scale, Xf)
            pert = np.stack(
                [
                    row_generator(random_state, np.nan_to_num(Xf[i])).normal(size=(n_samples, p))
                    for i in range(n)
                ]
            )
            pert = np.where(present[:, None, :], pert * (sd * numeric), 0.0)
        else:
            pert = np.empty((n, n_samples, p))
            for i in range(n):
                rng = row_generator(random_state, np.nan_to_num(Xf[i]))
                mask = rng.random((n_samples, p)) < 0.5
                z = bg[rng.integers(bg.shape[0], size=n_samples)]
                diff = Xf[i] - z
                pert[i] = np.where(mask & numeric & np.isfinite(diff), diff, 0.0)
    else:
        pert = _given_perturbation(perturbation, n, p)
        if np.any(pert[:, :, ~numeric] != 0):
            raise InvalidParameterError(
                "perturbation is non-zero on non-numeric features "
                f"{[str(c) for c in np.asarray(s.players)[~numeric]]}; perturb numeric "
                "features only."
            )
    n_s = pert.shape[1]
    perturbed = (Xf[:, None, :] - pert).reshape(n * n_s, p)
    f_x = s.predict()
    rows = np.repeat(np.arange(n), n_s)
    f_pert = s.outputs(rebuild_like(s.X, perturbed, rows), rows).reshape(n, n_s)
    return infidelity_from_perturbations(
        f_x,
        f_pert,
        s.values,
        pert,
        inputs=Xf if multiply_by_inputs else None,
        baselines=_nanmean_rows(bg) if multiply_by_inputs else None,
        optimal_scaling=bool(optimal_scaling),
    )


def _multiplies_by_inputs(exp: Any) -> bool:
    return str(getattr(exp, "method", "")).lower() not in LOCAL_METHODS


def _nanmean_rows(bg: np.ndarray) -> np.ndarray:
    """Column means ignoring missing values (0 for a column with none present)."""
    ok = np.isfinite(bg)
    count = ok.sum(axis=0)
    return np.divide(np.where(ok, bg, 0.0).sum(axis=0), np.maximum(count, 1))


def _noise_sd(noise: float, scale: Any, Xf: np.ndarray) -> np.ndarray:
    if not (np.isfinite(noise) and noise > 0):
        raise InvalidParameterError(f"noise must be a positive number, got {noise!r}.")
    return float(noise) * noise_scale(scale, Xf)


def _given_perturbation(perturbation: Any, n: int, p: int) -> np.ndarray:
    pert = np.asarray(perturbation, dtype=float)
    if pert.ndim > 3 and pert.shape[0] == n:  # images: (n, s, *image_shape)
        pert = pert.reshape(n, pert.shape[1], -1)
    if pert.ndim != 3 or pert.shape[0] != n or pert.shape[2] != p:
        raise InvalidParameterError(
            f"perturbation given as an array must have shape ({n}, n_samples, {p}); got "
            f"{pert.shape}."
        )
    if not np.all(np.isfinite(pert)):
        raise InvalidParameterError("perturbation contains NaN or infinite values.")
    return pert


def _background_matrix(background: Any, X: Any, Xf: np.ndarray) -> np.ndarray:
    """Reference rows of infidelity as a float matrix with X's columns."""
    if background is None:
        return Xf[:100]
    if isinstance(background, Baseline):
        background = background.bound(X).background  # the one reference row
    elif isinstance(background, Masker):
        background = background.background
    elif not isinstance(background, pd.DataFrame) and np.ndim(background) < 2:
        background = Baseline(background).bound(X).background  # a scalar or one row
    bg = as_2d_input(background, name="background")
    if isinstance(bg, pd.DataFrame) and isinstance(X, pd.DataFrame):
        missing = [c for c in X.columns if c not in bg.columns]
        if missing:
            raise InvalidInputError(
                f"background lacks X's columns {missing}; pass rows with X's columns."
            )
        bg = bg[list(X.columns)]
    out, _ = numeric_matrix(bg, "infidelity")
    if out.shape[1] != Xf.shape[1]:
        raise InvalidInputError(
            f"background has {out.shape[1]} columns but X has {Xf.shape[1]}; they must match."
        )
    return out


# ------------------------------------------------------------------------- images
def _image_infidelity(
    exp: Any,
    model: Any,
    X: Any,
    masker: Any,
    *,
    perturbation: Any,
    noise: float,
    n_samples: int,
    scale: Any,
    multiply_by_inputs: bool | None,
    optimal_scaling: bool,
    target: Any,
    link: str | None,
    random_state: Any,
) -> np.ndarray:
    """Infidelity of image attributions: every pixel and channel is a feature."""
    from ..games.image import as_image_batch

    explanation = exp if isinstance(exp, Explanation) else None
    recorded = target is None
    if explanation is not None:
        explanation, target = _select_output(explanation, target)
        vals = np.asarray(explanation.values, dtype=float)
        X = explanation.data if X is None else X
    else:
        vals = np.asarray(exp, dtype=float)
    if X is None:
        raise InvalidParameterError(
            "X is None and the explanation holds no data; pass the explained images as X."
        )
    images, channels = as_image_batch(X, masker.channels if masker is not None else "auto", "X")
    n, shape = images.shape[0], images.shape[1:]
    if vals.shape[0] != n:
        raise InvalidInputError(
            f"X has {n} images but the explanation has {vals.shape[0]} rows; pass the images "
            "that were explained, in the same order."
        )
    if vals.shape[1:] != shape:
        spatial = (
            shape if channels == "none" else (shape[1:] if channels == "first" else shape[:-1])
        )
        if vals.shape[1:] != spatial:
            raise InvalidInputError(
                f"infidelity needs one attribution per pixel: shape {shape} or {spatial} per "
                f"image; got {vals.shape[1:]}."
            )
        axis = 1 if channels == "first" else -1
        vals = np.broadcast_to(np.expand_dims(vals, axis), (n, *shape))
    if not np.all(np.isfinite(vals)):
        raise InvalidInputError("the explanation contains NaN or infinite attributions.")
    outputs = _outputs_for(
        explanation, model, target, link, images, lambda f, Z: Z, recorded=recorded
    )
    D = int(np.prod(shape))
    Xf = images.reshape(n, D).astype(float)
    if masker is not None:
        fills = np.stack(
            [
                masker.fill_image(images[i], masker.segment_image(images[i], channels, i), channels)
                for i in range(n)
            ]
        ).reshape(n, D)
    else:
        fills = np.zeros((n, D))
    if isinstance(perturbation, str):
        check_in("perturbation", perturbation, ("gaussian", "subset"))
        n_samples = check_int("n_samples", n_samples, minimum=1)
        if perturbation == "gaussian":
            if scale is not None and not isinstance(scale, str):
                raise InvalidParameterError(
                    "for images scale must be None (noise in pixel units) or 'std' (in units "
                    "of the pixels' standard deviation over X)."
                )
            sd = _noise_sd(noise, None, Xf) * (Xf.std() if scale == "std" else 1.0)
            pert = np.stack(
                [row_generator(random_state, Xf[i]).normal(size=(n_samples, D)) for i in range(n)]
            )
            pert = pert * sd
        else:
            if masker is None:
                raise InvalidParameterError(
                    "perturbation='subset' on images removes segments: pass "
                    "background=wb.ImageMasker(...) saying how images are cut and filled."
                )
            pert = np.empty((n, n_samples, D))
            for i in range(n):
                labels = masker.segment_image(images[i], channels, i)
                rng = row_generator(random_state, Xf[i])
                removed = rng.random((n_samples, int(labels.max()) + 1)) < 0.5
                pix = removed[:, labels]  # (s, h, w)
                pix = (
                    np.expand_dims(pix, 1 if channels == "first" else -1)
                    if channels != "none"
                    else pix
                )
                pix = np.broadcast_to(pix, (n_samples, *shape)).reshape(n_samples, D)
                pert[i] = np.where(pix, Xf[i] - fills[i], 0.0)
    else:
        pert = _given_perturbation(perturbation, n, D)
    if multiply_by_inputs is None:
        multiply_by_inputs = _multiplies_by_inputs(exp)
    n_s = pert.shape[1]
    perturbed = (Xf[:, None, :] - pert).reshape(n * n_s, *shape).astype(images.dtype)
    rows = np.repeat(np.arange(n), n_s)
    f_x = outputs(images, np.arange(n))
    f_pert = outputs(perturbed, rows).reshape(n, n_s)
    return infidelity_from_perturbations(
        f_x,
        f_pert,
        vals.reshape(n, D),
        pert,
        inputs=Xf if multiply_by_inputs else None,
        baselines=fills if multiply_by_inputs else None,
        optimal_scaling=bool(optimal_scaling),
    )
