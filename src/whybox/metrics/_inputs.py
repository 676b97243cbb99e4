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
from ..explanation import PER_ROW_OUTPUT, Explanation
from ..games.game import TabularGame
from ..games.maskers import Baseline, Independent, Masker
from ..models import LINKS, ModelFunction, wrap_model

__all__ = [
    "Outputs",
    "RowTargets",
    "Setup",
    "attribution_matrix",
    "numeric_matrix",
    "output_values",
    "rebuild_like",
    "setup",
]


#: ``target=`` of the metrics that scores each row for the class the model predicts for it
PREDICTED = "predicted"


def _recorded_target(exp: Explanation) -> Any:
    """The single output a single-output Explanation explains, as ``target=`` for the model."""
    t = exp.params.get("target")
    if t is not None and not isinstance(t, (list, tuple, dict)) and t != "all":
        return t
    names = exp.output_names or []
    if len(names) == 1 and names[0] != PER_ROW_OUTPUT:
        return names[0]
    return None


def _is_class_output(exp: Explanation) -> bool:
    """True when the outputs of a multi-output Explanation are classes of a classifier."""
    out = str(exp.params.get("output", ""))
    return "class" in out or "decision function" in out


def _select_output(exp: Explanation, target: Any) -> tuple[Explanation, Any]:
    """A single-output view of ``exp`` and the model target that goes with it.

    The target is read from the Explanation when ``target`` is None: the class it explains,
    or one target per row (a list). A multiclass explanation of every class is scored for
    each row's predicted class (``target="predicted"``, the argmax of ``exp.predictions``).
    """
    if exp.multi_output:
        names = list(exp.output_names or [])
        if target is None and _is_class_output(exp) and PREDICTED not in names:
            target = PREDICTED
        if target is None:
            raise InvalidParameterError(
                f"this Explanation explains {exp.n_outputs} outputs ({names}); the metrics score "
                "one output at a time. Pass target= with one of these names (or its index), or "
                f"target={PREDICTED!r} for each row's largest output."
            )
        if isinstance(target, str) and target == PREDICTED and PREDICTED not in names:
            if exp.predictions is None:
                raise InvalidParameterError(
                    f"target={PREDICTED!r} scores each row for its predicted class, read from "
                    "exp.predictions, and this Explanation has none. Pass target= naming one "
                    f"output of {names}."
                )
            one = exp.per_row_output(np.argmax(exp.predictions, axis=1))
            return one, RowTargets(one.row_targets or [])
        if _is_per_row(target, exp.n_rows):
            one = exp.per_row_output(list(np.asarray(target).reshape(-1)))
            return one, RowTargets(one.row_targets or [])
        one = exp[:, :, target]
        name = names[target] if isinstance(target, (int, np.integer)) else target
        return one, name
    if target is None:
        rows = exp.row_targets
        return exp, RowTargets(rows) if rows is not None else _recorded_target(exp)
    if _is_per_row(target, exp.n_rows):
        arr = target.detach().cpu().numpy() if hasattr(target, "detach") else target
        return exp, RowTargets(np.asarray(arr).reshape(-1).tolist())
    return exp, target


class RowTargets(list):
    """One model target per explained row (an output name or index each)."""


def _is_per_row(target: Any, n: int) -> bool:
    """A 1-D array, Series or tensor of one target per row (a list names several outputs)."""
    if isinstance(target, (str, list, tuple)) or not hasattr(target, "__len__"):
        return False
    try:
        arr = np.asarray(target.detach().cpu() if hasattr(target, "detach") else target)
    except Exception:
        return False
    return arr.ndim == 1 and arr.shape[0] == n


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


def as_masker(background: Any, X: Any, random_state: Any = 0, *, allow_nan: bool = False) -> Masker:
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
        return Independent(X, max_samples=100, random_state=random_state, allow_nan=allow_nan)
    if isinstance(background, pd.DataFrame) or np.ndim(background) == 2:
        return Independent(
            background, max_samples=100, random_state=random_state, allow_nan=allow_nan
        )
    return Baseline(background).bound(X)


def _wrap_one(model: Any, target: Any, link: str, X: Any, recorded: bool) -> ModelFunction:
    """``wrap_model`` for one target; a target recorded as a string of an index resolves.

    A ``recorded`` target (read from the Explanation, not passed by the user) that the model
    does not name, on a model with a single output, falls back to that output: whether it is
    the output explained is then checked against ``exp.predictions``.
    """
    try:
        return wrap_model(model, target=target, link=link, X=X)
    except InvalidParameterError:
        if isinstance(target, str) and target.lstrip("-").isdigit():
            try:
                return wrap_model(model, target=int(target), link=link, X=X)
            except InvalidParameterError:
                pass
        if recorded:
            fn = wrap_model(model, link=link, X=X)
            if fn.single_output:
                return fn
        raise


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]


@dataclass
class Outputs:
    """The explained output of each row as model functions: ``fns[cols[i]]`` is row i's.

    One function per distinct target: a single one for an Explanation of one output, one per
    class for one target per row (e.g. each row's predicted class).
    """

    fns: list[ModelFunction]
    cols: np.ndarray  # (n,) int: which function explains row i

    @property
    def description(self) -> str:
        d = self.fns[0].output_description
        return d if len(self.fns) == 1 else f"{d} (one output per row)"

    def row(self, i: int) -> ModelFunction:
        return self.fns[int(self.cols[i])]

    def __call__(self, X: Any, rows: np.ndarray) -> np.ndarray:
        """Outputs (m,) on inputs ``X`` whose row ``r`` belongs to explained row ``rows[r]``."""
        which = self.cols[np.asarray(rows)]
        if len(self.fns) == 1:
            return self.fns[0](X)[:, 0]
        out = np.empty(which.shape[0])
        for g, f in enumerate(self.fns):
            sel = np.flatnonzero(which == g)
            if sel.size:
                out[sel] = f(_take(X, sel))[:, 0]
        return out


def model_outputs(
    model: Any, target: Any, link: str, X: Any, n: int, *, recorded: bool = False
) -> Outputs:
    """The model functions of the explained output(s): one target, or one per row."""
    if isinstance(target, RowTargets):
        if len(target) != n:
            raise InvalidParameterError(
                f"one target per row needs {n} targets (the explained rows); got {len(target)}."
            )
        distinct = list(dict.fromkeys(target))
        cols = np.array([distinct.index(t) for t in target], dtype=np.int64)
    else:
        distinct, cols = [target], np.zeros(n, dtype=np.int64)
    fns = [_wrap_one(model, t, link, X, recorded) for t in distinct]
    for f in fns:
        if not f.single_output:
            raise InvalidParameterError(
                f"the model has {f.n_outputs} outputs ({f.output_names}); the metrics score one "
                "output at a time. Pass target= naming one of them, or one target per row."
            )
    return Outputs(fns, cols)


@dataclass
class Setup:
    """Everything a tabular metric needs for one call."""

    outputs: Outputs
    X: Any  # aligned to the model's and the masker's columns
    values: np.ndarray  # (n, n_players)
    masker: Masker | None
    groups: dict[str, list[str]] | None
    players: list[str]

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def fn(self) -> ModelFunction:
        """The model function of the first row (the only one for a single target)."""
        return self.outputs.row(0)

    def row(self, i: int) -> Any:
        return self.X.iloc[[i]] if isinstance(self.X, pd.DataFrame) else self.X[i]

    def game(self, i: int) -> TabularGame:
        """The interventional game of row ``i`` (the same game KernelShap explains)."""
        if self.masker is None:  # pragma: no cover - set up without a masker on purpose
            raise InvalidParameterError("this metric was set up without a background.")
        return TabularGame(self.outputs.row(i), self.row(i), self.masker, groups=self.groups)

    def predict(self) -> np.ndarray:
        """Model output on the explained rows, shape (n,)."""
        return self.outputs(self.X, np.arange(self.n))


def _matches(pred: np.ndarray, ref: np.ndarray) -> bool:
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    return bool(np.allclose(pred, ref, rtol=1e-4, atol=1e-4 * scale, equal_nan=True))


def _outputs_for(
    explanation: Explanation | None,
    model: Any,
    target: Any,
    link: str | None,
    X: Any,
    prepare: Callable[[ModelFunction, Any], Any],
    *,
    recorded: bool = False,
) -> Outputs:
    """The model functions of the explained output, checked against ``exp.predictions``.

    ``link`` defaults to ``exp.params["link"]``; where the explanation does not record its
    link, the link under which the model reproduces ``exp.predictions`` is used. A model that
    reproduces neither is refused: scoring another output than the one explained gives
    meaningless numbers.
    """
    if link is None and explanation is not None:
        recorded_link = explanation.params.get("link")
        link = recorded_link if recorded_link in LINKS else None
    candidates = [link] if link is not None else list(LINKS)
    n = explanation.n_rows if explanation is not None else len(X)
    found: Outputs | None = None
    for cand in candidates:
        try:
            outs = model_outputs(model, target, cand, X, n, recorded=recorded)
            if found is None:
                found = outs
            if explanation is None or explanation.predictions is None:
                break
            pred = outs(prepare(outs.fns[0], X), np.arange(n))
        except InvalidParameterError:
            if cand == "identity" or len(candidates) == 1:
                raise
            continue  # log-odds asked of a model without probabilities
        if _matches(pred, np.asarray(explanation.predictions, dtype=float)):
            return outs
    else:
        if explanation is not None and explanation.predictions is not None:
            raise InvalidParameterError(
                "the model's outputs on X do not reproduce exp.predictions, so the metric would "
                "score another output than the one explained ("
                + repr(explanation.params.get("output", "unknown output"))
                + "). Pass the model and rows that were explained, and target= and link= "
                "naming the explained output (e.g. link='logit' for log-odds)."
            )
    if found is None:  # pragma: no cover - model_outputs raised for every candidate
        raise InvalidParameterError("the model could not be wrapped; pass target= and link=.")
    return found


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
    allow_nan: bool = False,
) -> Setup:
    """Check and align the public arguments of a tabular metric.

    The model is evaluated on the output the explanation explains (see
    :func:`_select_output` and :func:`_outputs_for`): the class it explains, each row's own
    target, or each row's predicted class for an explanation of every class. ``allow_nan``
    accepts missing values in X (and the background) for models that handle them.
    """
    explanation = exp if isinstance(exp, Explanation) else None
    recorded = target is None
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
    check_finite(X, allow_nan=allow_nan)
    if X.shape[0] != values.shape[0]:
        raise InvalidInputError(
            f"X has {X.shape[0]} rows but the explanation has {values.shape[0]}; pass the rows "
            "that were explained, in the same order."
        )
    groups = None
    if explanation is not None and explanation.params.get("groups"):
        groups = {str(k): list(v) for k, v in explanation.params["groups"].items()}
    outputs = _outputs_for(
        explanation, model, target, link, X, lambda f, Z: f.prepare(Z), recorded=recorded
    )
    X = outputs.fns[0].prepare(X)
    masker = None
    players = list(explanation.feature_names) if explanation is not None else feature_names_of(X)
    if need_masker:
        masker = as_masker(background, X, random_state, allow_nan=allow_nan)
        X = masker.check_compatible(X, allow_nan=allow_nan)
        from ..games.game import group_matrix

        players, _ = group_matrix(masker.feature_names, groups)
    if values.shape[1] != len(players):
        raise InvalidInputError(
            f"the explanation has {values.shape[1]} attributions per row but X has "
            f"{len(players)} features"
            + (" (groups counted as one)" if groups else "")
            + ". Pass the rows that were explained, with the same columns."
        )
    return Setup(outputs=outputs, X=X, values=values, masker=masker, groups=groups, players=players)


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
        s = np.nanstd(Xf, axis=0, ddof=1) if np.isnan(Xf).any() else Xf.std(axis=0, ddof=1)
        return np.where(np.isfinite(s) & (s > 0), s, 1.0)
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


def is_image_batch(exp: Any, X: Any) -> bool:
    """True for an image Explanation (feature shape of 2+ axes) or a batch of images."""
    if isinstance(exp, Explanation) and not exp.is_ragged:
        return len(exp.feature_shape) >= 2
    return X is not None and not isinstance(X, pd.DataFrame) and len(np.shape(X)) >= 3


def default_image_masker(exp: Any, X: Any) -> Any:
    """What "removed" means for image metrics when no ImageMasker is given.

    The explanation's own segments when it has them (``meta["segments"]``, e.g. image
    KernelSHAP), else every pixel its own player; removed pixels show 0 (a black image, the
    usual Integrated Gradients baseline), or the explanation's recorded ``fill``.
    """
    from ..games.image import FILLS, ImageMasker, as_image_batch

    explanation = exp if isinstance(exp, Explanation) else None
    fill = explanation.params.get("fill", "baseline") if explanation is not None else "baseline"
    fill = fill if fill in FILLS else "baseline"
    segments = explanation.meta.get("segments") if explanation is not None else None
    if segments is not None:
        return ImageMasker(segments=np.asarray(segments), fill=fill)
    data = X if X is not None else (explanation.data if explanation is not None else None)
    if data is None:
        raise InvalidParameterError(
            "X is None and the explanation holds no data; pass the explained images as X."
        )
    images, channels = as_image_batch(data, "auto", name="X")
    shape = images.shape[1:]
    h, w = shape if channels == "none" else (shape[1:] if channels == "first" else shape[:-1])
    return ImageMasker(segments=np.arange(h * w).reshape(h, w), fill=fill, channels=channels)


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
    recorded = target is None
    if explanation is not None:
        explanation, target = _select_output(explanation, target)
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
    outputs = _outputs_for(
        explanation, model, target, link, images, lambda f, Z: Z, recorded=recorded
    )
    games, per_player = [], []
    for i in range(images.shape[0]):
        game = ImageGame(outputs.row(i), images[i], masker, channels=channels, row=i)
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
