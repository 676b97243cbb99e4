"""Adapters shared by the metrics: from (Explanation, model, X) to games and arrays.

The metrics' cores take games, attribution arrays and model functions; this module turns the
public arguments into those, with the checks every metric needs: the explanation and ``X``
describe the same rows and features, the model is evaluated on the output the explanation
explains (``exp.params["target"]`` and ``["link"]``, checked against ``exp.predictions``), and
absent features mean what they mean for the explainers (a :mod:`whybox.games.maskers` masker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_2d_input, check_finite, check_nonempty, feature_names_of
from ..errors import InvalidInputError, InvalidParameterError
from ..explanation import Explanation
from ..games.game import TabularGame
from ..games.maskers import Baseline, Independent, Masker
from ..models import LINKS, ModelFunction, wrap_model

__all__ = [
    "Setup",
    "attribution_matrix",
    "numeric_matrix",
    "output_values",
    "rebuild_like",
    "setup",
]


def _select_output(exp: Explanation, target: Any) -> tuple[Explanation, Any]:
    """A single-output view of ``exp`` and the model target that goes with it."""
    if not exp.multi_output:
        params_target = exp.params.get("target")
        if target is None and isinstance(params_target, (str, int)):
            target = params_target
        return exp, target
    names = list(exp.output_names or [])
    if target is None:
        raise InvalidParameterError(
            f"this Explanation explains {exp.n_outputs} outputs ({names}); the metrics score "
            "one output at a time. Pass target= with one of these names (or its index)."
        )
    one = exp[:, :, target]
    name = names[target] if isinstance(target, (int, np.integer)) else target
    return one, name


def attribution_matrix(exp: Any, name: str = "exp", *, target: Any = None) -> np.ndarray:
    """Attributions as a float matrix (n, p): from an Explanation or an array.

    Multi-output Explanations need ``target`` (an output name or index).
    """
    if isinstance(exp, Explanation):
        if exp.is_ragged:
            raise InvalidParameterError(
                f"{name} is ragged (rows with different numbers of features); this metric "
                "needs the same features in every row."
            )
        exp, _ = _select_output(exp, target)
        vals = np.asarray(exp.values, dtype=float)
    else:
        try:
            vals = np.asarray(exp, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{name} must be an Explanation or a numeric array of attributions (n, p); got "
                f"{type(exp).__name__}."
            ) from exc
    if vals.ndim < 2:
        raise InvalidInputError(
            f"{name} has shape {vals.shape}; expected attributions of shape (n_rows, n_features)."
        )
    vals = vals.reshape(vals.shape[0], -1)
    if not np.all(np.isfinite(vals)):
        bad = int((~np.isfinite(vals)).any(axis=1).sum())
        raise InvalidInputError(
            f"{name} contains NaN or infinite attributions in {bad} row(s); every attribution "
            "must be a finite number. Recompute the explanation or drop those rows."
        )
    return vals


def output_values(result: Any, n: int, name: str) -> np.ndarray:
    """Attributions (n, p) returned by a user's ``explain_fn`` (Explanation or array)."""
    vals = attribution_matrix(result, name=name)
    if vals.shape[0] != n:
        raise InvalidInputError(
            f"{name} returned attributions for {vals.shape[0]} rows but was given {n}; it must "
            "return one row of attributions per input row."
        )
    return vals


def as_masker(background: Any, X: Any, random_state: Any = 0) -> Masker:
    """The masker that says what "absent" means: like the explainers' ``background=``.

    ``None`` uses (up to 100 rows of) ``X`` itself; a DataFrame or 2-D array is an
    :class:`Independent` background; a scalar, 1-D array or mapping is a :class:`Baseline`
    reference; a masker is used as it is.
    """
    if isinstance(background, Baseline):
        return background.bound(X)
    if isinstance(background, Masker):
        return background
    if background is None:
        return Independent(X, max_samples=100, random_state=random_state)
    if isinstance(background, pd.DataFrame) or np.ndim(background) == 2:
        return Independent(background, max_samples=100, random_state=random_state)
    return Baseline(background).bound(X)


@dataclass
class Setup:
    """Everything a tabular metric needs for one call."""

    fn: ModelFunction
    X: Any  # aligned to the model's and the masker's columns
    values: np.ndarray  # (n, n_players)
    masker: Masker | None
    groups: dict[str, list[str]] | None
    players: list[str]

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def row(self, i: int) -> Any:
        return self.X.iloc[[i]] if isinstance(self.X, pd.DataFrame) else self.X[i]

    def game(self, i: int) -> TabularGame:
        """The interventional game of row ``i`` (the same game KernelShap explains)."""
        if self.masker is None:  # pragma: no cover - set up without a masker on purpose
            raise InvalidParameterError("this metric was set up without a background.")
        return TabularGame(self.fn, self.row(i), self.masker, groups=self.groups)

    def predict(self) -> np.ndarray:
        """Model output on the explained rows, shape (n,)."""
        return self.fn(self.X)[:, 0]


def _matches(pred: np.ndarray, ref: np.ndarray) -> bool:
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    return bool(np.allclose(pred, ref, rtol=1e-4, atol=1e-4 * scale))


def setup(
    exp: Any,
    model: Any,
    X: Any,
    *,
    target: Any = None,
    link: str | None = None,
    background: Any = None,
    random_state: Any = 0,
    need_masker: bool = True,
) -> Setup:
    """Check and align the public arguments of a tabular metric.

    The model is evaluated on the output the explanation explains: ``target`` and ``link``
    default to ``exp.params["target"]`` and ``exp.params["link"]``; where the explanation
    does not record its link, the link under which the model reproduces ``exp.predictions``
    is used. A model that reproduces neither is refused, since scoring another output than
    the one explained gives meaningless numbers.
    """
    explanation = exp if isinstance(exp, Explanation) else None
    if explanation is not None:
        explanation, target = _select_output(explanation, target)
    values = attribution_matrix(explanation if explanation is not None else exp, "exp")
    if X is None:
        X = explanation.data if explanation is not None else None
        if X is None:
            raise InvalidParameterError(
                "X is None and the explanation holds no data; pass the explained rows as X."
            )
    X = as_2d_input(X)
    check_nonempty(X)
    check_finite(X)
    if X.shape[0] != values.shape[0]:
        raise InvalidInputError(
            f"X has {X.shape[0]} rows but the explanation has {values.shape[0]}; pass the rows "
            "that were explained, in the same order."
        )
    groups = None
    if explanation is not None and explanation.params.get("groups"):
        groups = {str(k): list(v) for k, v in explanation.params["groups"].items()}
    if link is None and explanation is not None:
        recorded = explanation.params.get("link")
        link = recorded if recorded in LINKS else None
    candidates = [link] if link is not None else list(LINKS)
    fn: ModelFunction | None = None
    for cand in candidates:
        try:
            f = wrap_model(model, target=target, link=cand, X=X)
        except InvalidParameterError:
            if cand == "identity" or len(candidates) == 1:
                raise
            continue  # log-odds asked of a model without probabilities
        if fn is None:
            fn = f
        if explanation is None or explanation.predictions is None:
            break
        Xc = f.prepare(X)
        if _matches(f(Xc)[:, 0], np.asarray(explanation.predictions, dtype=float)):
            fn = f
            break
    else:
        if explanation is not None and explanation.predictions is not None:
            raise InvalidParameterError(
                "the model's outputs on X do not reproduce exp.predictions, so the metric would "
                "score another output than the one explained ("
                + repr(explanation.params.get("output", "unknown output"))
                + "). Pass the model and rows that were explained, and target= and link= "
                "naming the explained output (e.g. link='logit' for log-odds)."
            )
    if fn is None:  # pragma: no cover - wrap_model raised for every candidate
        raise InvalidParameterError("the model could not be wrapped; pass target= and link=.")
    if not fn.single_output:
        raise InvalidParameterError(
            f"the model has {fn.n_outputs} outputs ({fn.output_names}); the metrics score one "
            "output at a time. Pass target= naming one of them."
        )
    X = fn.prepare(X)
    masker = None
    players = list(explanation.feature_names) if explanation is not None else feature_names_of(X)
    if need_masker:
        masker = as_masker(background, X, random_state)
        X = masker.check_compatible(X)
        from ..games.game import group_matrix

        players, _ = group_matrix(masker.feature_names, groups)
    if values.shape[1] != len(players):
        raise InvalidInputError(
            f"the explanation has {values.shape[1]} attributions per row but X has "
            f"{len(players)} features"
            + (" (groups counted as one)" if groups else "")
            + ". Pass the rows that were explained, with the same columns."
        )
    return Setup(fn=fn, X=X, values=values, masker=masker, groups=groups, players=players)


def numeric_matrix(X: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The numeric features of ``X`` as floats, for metrics that add noise to inputs.

    Returns
    -------
    Xf : ndarray of shape (n, p)
        The inputs as floats; non-numeric columns (categorical, string, bool) hold 0 and are
        never perturbed.
    numeric : bool ndarray of shape (p,)
        Which features are numeric.
    """
    if isinstance(X, pd.DataFrame):
        numeric = np.array(
            [
                pd.api.types.is_numeric_dtype(X[c].dtype)
                and not pd.api.types.is_bool_dtype(X[c].dtype)
                for c in X.columns
            ],
            dtype=bool,
        )
        Xf = np.zeros(X.shape, dtype=float)
        for j in np.flatnonzero(numeric):
            Xf[:, j] = X.iloc[:, j].to_numpy(dtype=float)
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"{what} adds noise to the inputs, which needs numeric features; X has dtype "
                f"{arr.dtype}. Pass a DataFrame (non-numeric columns are then left as they are) "
                "or a numeric array."
            )
        Xf = arr.astype(float)
        numeric = np.ones(Xf.shape[1], dtype=bool)
    if not numeric.any():
        raise InvalidInputError(
            f"{what} adds noise to the numeric features, and X has none. Use a metric that "
            "removes features instead (deletion, insertion, faithfulness_correlation)."
        )
    return Xf, numeric


def rebuild_like(X: Any, arr: np.ndarray, rows: np.ndarray | None = None) -> Any:
    """Perturbed float rows ``arr`` (m, p) laid out like ``X``.

    For a DataFrame, row ``i`` of the result is row ``rows[i]`` of X (default: the same row)
    with its numeric columns replaced by ``arr[i]``; other columns keep their values and dtype.
    """
    if isinstance(X, pd.DataFrame):
        base = X if rows is None else X.iloc[rows]
        out = base.reset_index(drop=True).copy()
        for j, c in enumerate(X.columns):
            dtype = X[c].dtype
            if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                out[c] = arr[:, j]
        return out
    return arr


def noise_scale(scale: Any, Xf: np.ndarray) -> np.ndarray:
    """Per-feature noise scale (p,): 1 (None), the features' std ("std"), or given numbers."""
    p = Xf.shape[1]
    if scale is None:
        return np.ones(p)
    if isinstance(scale, str):
        if scale != "std":
            raise InvalidParameterError(
                f"scale={scale!r} is not supported. Expected None (noise in the features' own "
                "units), 'std' (in units of each feature's standard deviation over X) or an "
                "array of p positive numbers."
            )
        if Xf.shape[0] < 2:
            raise InvalidParameterError(
                "scale='std' needs at least two rows of X to estimate each feature's spread; "
                "pass scale as an array of p numbers instead."
            )
        s = Xf.std(axis=0, ddof=1)
        return np.where(s > 0, s, 1.0)
    s = np.asarray(scale, dtype=float).reshape(-1)
    if s.shape != (p,) or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise InvalidParameterError(
            f"scale must be None, 'std' or {p} finite non-negative numbers (one per feature); "
            f"got shape {s.shape}."
        )
    return s


def call_explain_fn(explain_fn: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a user's explanation function; its own errors pass through unchanged."""
    if not callable(explain_fn):
        raise InvalidParameterError(
            f"{name} must be a function returning an Explanation or an (n, p) array; got "
            f"{type(explain_fn).__name__}."
        )
    return explain_fn(*args, **kwargs)


def is_image_masker(background: Any) -> bool:
    """True for a :class:`whybox.games.image.ImageMasker` (checked without importing it)."""
    return type(background).__name__ == "ImageMasker" and hasattr(background, "segment_image")


def image_setup(
    exp: Any, model: Any, X: Any, masker: Any, *, target: Any = None, link: str | None = None
) -> tuple[list[Any], list[np.ndarray]]:
    """Image games (players: the masker's segments) and each game's segment attributions.

    Pixel attributions (the image's shape, or its spatial shape) are summed over each
    segment's pixels and channels; attributions with one value per segment are used as they
    are.

    Returns
    -------
    games : list of ImageGame, one per image
    values : list of arrays of shape (n_players_i,)
    """
    from ..games.image import ImageGame, as_image_batch

    explanation = exp if isinstance(exp, Explanation) else None
    if explanation is not None:
        explanation, target = _select_output(explanation, target)
        if link is None:
            recorded = explanation.params.get("link")
            link = recorded if recorded in LINKS else None
        vals = np.asarray(explanation.values, dtype=float)
    else:
        vals = np.asarray(exp, dtype=float)
    if X is None:
        X = explanation.data if explanation is not None else None
        if X is None:
            raise InvalidParameterError(
                "X is None and the explanation holds no data; pass the explained images as X."
            )
    images, channels = as_image_batch(X, masker.channels, name="X")
    if vals.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"X has {images.shape[0]} images but the explanation has {vals.shape[0]} rows; pass "
            "the images that were explained, in the same order."
        )
    if not np.all(np.isfinite(vals)):
        raise InvalidInputError(
            "the explanation contains NaN or infinite attributions; every attribution must be "
            "a finite number."
        )
    fn = wrap_model(model, target=target, link=link or "identity", X=images[:1])
    if not fn.single_output:
        raise InvalidParameterError(
            f"the model has {fn.n_outputs} outputs ({fn.output_names}); the metrics score one "
            "output at a time. Pass target= naming one of them."
        )
    if explanation is not None and explanation.predictions is not None:
        if not _matches(fn(images)[:, 0], np.asarray(explanation.predictions, dtype=float)):
            raise InvalidParameterError(
                "the model's outputs on X do not reproduce exp.predictions, so the metric would "
                "score another output than the one explained. Pass the model and images that "
                "were explained, and target= and link= naming the explained output."
            )
    games, per_player = [], []
    for i in range(images.shape[0]):
        game = ImageGame(fn, images[i], masker, channels=channels, row=i)
        v = vals[i]
        if v.shape == (game.n_players,):
            phi = v
        else:
            spatial = game.segments.shape
            if v.shape == images[i].shape and channels != "none":
                v = v.sum(axis=0 if channels == "first" else -1)
            if v.shape != spatial:
                raise InvalidInputError(
                    f"image {i} has attributions of shape {vals[i].shape}; expected the image's "
                    f"shape {images[i].shape}, its spatial shape {spatial}, or one value per "
                    f"segment ({game.n_players})."
                )
            phi = np.bincount(game.segments.ravel(), weights=v.ravel(), minlength=game.n_players)
        games.append(game)
        per_player.append(phi)
    return games, per_player
