"""Toy Models of Superposition (Elhage et al. 2022): sparse features packed into fewer dimensions.

:func:`toy_superposition_model` trains (or loads from the cache) the paper's ReLU output model:
``n`` features ``x`` in ``R^n``, each independently active with probability ``1 - S`` (``S`` the
*sparsity*) and then uniform on ``[0, 1]``; a hidden layer ``h = W x`` of ``m < n`` dimensions
(``W``: ``m x n``, its column ``W_i`` the embedding of feature ``i``); the reconstruction
``x' = ReLU(W^T h + b)``; the loss ``sum_i I_i (x_i - x'_i)^2`` weighted by the feature
importances ``I_i``, averaged over samples. Dense features (``S = 0``) are stored the way PCA
would: the ``m`` most important ones on orthogonal directions, the rest dropped. Sparse features
are stored in *superposition*, more features than dimensions, on directions that interfere
little when few features are active at once: antipodal pairs (``W_j = -W_i``), then regular
polygons (a pentagon of 5 features in 2 dimensions).

Geometry helpers read a weight matrix ``W`` (m, n): :func:`feature_norms` (``||W_i||``: 1 for a
represented feature, 0 for a dropped one), :func:`feature_dimensionality` (Elhage's
``D_i = ||W_i||^4 / sum_j (W_i . W_j)^2``: 1 for a feature with a dimension of its own, 1/2 in an
antipodal pair, 2/5 in a pentagon, 0 when dropped), :func:`dimensions_per_feature`
(``m / ||W||_F^2``), :func:`feature_angles` (the angles between feature directions) and
:func:`classify_geometry` (orthogonal / antipodal / pentagon or another regular polygon).

References
----------
Elhage, N., Hume, T., Olsson, C., Schiefer, N., Henighan, T., Kravec, S., Hatfield-Dodds, Z.,
Lasenby, R., Drain, D., Chen, C., Grosse, R., McCandlish, S., Kaplan, J., Amodei, D.,
Wattenberg, M., & Olah, C. (2022). Toy Models of Superposition. Transformer Circuits Thread.
https://transformer-circuits.pub/2022/toy_model/index.html (arXiv:2209.10652).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.zoo._training import check_flag, require, training_scope
from whybox.zoo.cache import cached_model

__all__ = [
    "Geometry",
    "ToyModel",
    "classify_geometry",
    "dimensions_per_feature",
    "feature_angles",
    "feature_dimensionality",
    "feature_norms",
    "sample_sparse_features",
    "toy_superposition_model",
]

_VERSION = "1"  # bump when the training recipe changes
_FEATURE = "the toy model of superposition"
_EVAL_ROWS = 100_000  # rows of the fixed sample on which the instances' losses are compared
_POLYGONS = {3: "triangle", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}


# ------------------------------------------------------------------ inputs


def _float(name: str, value: Any, *, low: float, high: float, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"{name} must be a number, got {value!r} of type {type(value).__name__}."
        )
    value = float(value)
    bad = not math.isfinite(value) or value < low or value > high or (high_open and value == high)
    if bad:
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise InvalidParameterError(f"{name} must lie in {interval}, got {value}.")
    return value


def _importance(importance: Any, n_features: int) -> np.ndarray:
    """A ratio ``r`` (importances ``r**i``) or ``n_features`` positive importances."""
    if isinstance(importance, numbers.Real) and not isinstance(importance, bool):
        r = _float("importance", importance, low=0.0, high=math.inf)
        if r <= 0.0:
            raise InvalidParameterError(
                f"importance as a ratio r (importances r**i) must be > 0, got {r}; pass e.g. "
                "0.9 (the paper's 5-feature example) or 1.0 for equal importances."
            )
        return r ** np.arange(n_features, dtype=np.float64)
    arr = np.asarray(importance, dtype=np.float64) if importance is not None else None
    if arr is None or arr.shape != (n_features,) or not np.all(np.isfinite(arr)) or arr.min() <= 0:
        raise InvalidParameterError(
            f"importance must be a ratio r > 0 (importances r**i) or {n_features} positive "
            f"finite numbers (one per feature), got {importance!r}."
        )
    return arr


def _weights(W: Any) -> np.ndarray:
    arr = np.asarray(W, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidInputError(
            f"W must be a 2-d array (d_hidden, n_features), one column per feature, got shape "
            f"{arr.shape}; pass ToyModel.W."
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("W holds NaN or infinite values; pass finite weights.")
    return arr


def sample_sparse_features(
    n: int, n_features: int, sparsity: float, random_state: Any = None
) -> np.ndarray:
    """Rows of the toy models' input distribution.

    Each feature is independently zero with probability ``sparsity`` and otherwise uniform on
    ``[0, 1]``.

    Parameters
    ----------
    n : int
        Rows to draw.
    n_features : int
        Features per row.
    sparsity : float
        Probability ``S`` in ``[0, 1)`` that a feature is zero.
    random_state : None, int, SeedSequence or numpy Generator
        Source of randomness.

    Returns
    -------
    ndarray of shape (n, n_features), float32

    Raises
    ------
    InvalidParameterError
        A negative ``n``, ``n_features`` below 1, ``sparsity`` outside [0, 1).

    Examples
    --------
    >>> X = wb.zoo.sample_sparse_features(10_000, 5, sparsity=0.9, random_state=0)
    >>> X.shape, X.dtype, round(float((X == 0).mean()), 2)   # 90% zeros
    ((10000, 5), dtype('float32'), 0.9)

    References
    ----------
    Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
    """
    n = check_int("n", n, minimum=0)
    n_features = check_int("n_features", n_features, minimum=1)
    sparsity = _float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
    rng = check_random_state(random_state)
    values = rng.random((n, n_features))
    active = rng.random((n, n_features)) >= sparsity
    return np.where(active, values, 0.0).astype(np.float32)


# ------------------------------------------------------------------ geometry


def feature_norms(W: Any) -> np.ndarray:
    """``||W_i||`` (n_features,): the length of each feature's embedding (the columns of W).

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
        The embedding, one column per feature (``ToyModel.W``).

    Returns
    -------
    ndarray of shape (n_features,)

    Raises
    ------
    InvalidInputError
        ``W`` not 2-d, or holding NaN or infinite values.

    Examples
    --------
    >>> wb.zoo.feature_norms(np.array([[3.0, 0.0], [4.0, 0.0]]))   # a 3-4-5 column, a zero one
    array([5., 0.])

    References
    ----------
    Elhage et al. (2022), Toy Models of Superposition (a feature is represented when its
    norm is near 1).
    """
    return np.linalg.norm(_weights(W), axis=0)


def feature_dimensionality(W: Any) -> np.ndarray:
    """Elhage et al.'s feature dimensionality ``D_i = ||W_i||^4 / sum_j (W_i^T W_j)^2``.

    The fraction of a dimension feature ``i`` owns: 1 alone on its direction, 1/2 in an
    antipodal pair, 2/5 in a pentagon, ``k/n`` for ``n`` features evenly in ``k`` dimensions
    (a tegum product of such), 0 for a dropped feature (``W_i = 0``; defined as 0).

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
        The embedding, one column per feature (``ToyModel.W``).

    Returns
    -------
    ndarray of shape (n_features,)

    Raises
    ------
    InvalidInputError
        ``W`` not 2-d, or holding NaN or infinite values.

    Examples
    --------
    >>> angle = 2 * np.pi * np.arange(5) / 5
    >>> W = np.stack([np.cos(angle), np.sin(angle)])     # 5 unit features on a pentagon
    >>> np.round(wb.zoo.feature_dimensionality(W), 3)   # 2 dimensions shared by 5
    array([0.4, 0.4, 0.4, 0.4, 0.4])

    References
    ----------
    Elhage et al. (2022), Toy Models of Superposition, section "Feature Dimensionality".
    """
    W = _weights(W)
    gram = W.T @ W  # (n, n): W_i . W_j
    num = np.diag(gram) ** 2
    den = (gram**2).sum(axis=1)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def dimensions_per_feature(W: Any) -> float:
    """``d_hidden / ||W||_F^2``: hidden dimensions per (unit-norm) embedded feature.

    1 when ``m`` features are stored orthogonally, 1/2 for antipodal pairs, below 1/2 for
    polygons (Elhage et al. 2022, "The Geometry of Superposition").

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
        The embedding, one column per feature (``ToyModel.W``).

    Returns
    -------
    float
        ``inf`` when every feature is dropped (``W = 0``).

    Raises
    ------
    InvalidInputError
        ``W`` not 2-d, or holding NaN or infinite values.

    Examples
    --------
    >>> angle = 2 * np.pi * np.arange(5) / 5
    >>> W = np.stack([np.cos(angle), np.sin(angle)])     # 5 unit features on a pentagon
    >>> round(wb.zoo.dimensions_per_feature(W), 3)      # 2 / 5
    0.4

    References
    ----------
    Elhage et al. (2022), Toy Models of Superposition, section "The Geometry of
    Superposition".
    """
    W = _weights(W)
    total = float((W**2).sum())
    return math.inf if total == 0.0 else W.shape[0] / total


def feature_angles(W: Any) -> np.ndarray:
    """Angles in degrees between the feature directions ``W_i`` and ``W_j``.

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
        The embedding, one column per feature (``ToyModel.W``).

    Returns
    -------
    ndarray of shape (n_features, n_features)
        ``arccos(W_i . W_j / (||W_i|| ||W_j||))`` in ``[0, 180]``; NaN in the rows and columns
        of features whose embedding is zero (no direction).

    Raises
    ------
    InvalidInputError
        ``W`` not 2-d, or holding NaN or infinite values.

    Examples
    --------
    >>> angle = 2 * np.pi * np.arange(5) / 5
    >>> W = np.stack([np.cos(angle), np.sin(angle)])     # 5 unit features on a pentagon
    >>> np.round(wb.zoo.feature_angles(W)[0], 1)        # neighbours 72 degrees apart
    array([  0.,  72., 144., 144.,  72.])

    References
    ----------
    Elhage et al. (2022), Toy Models of Superposition, section "The Geometry of
    Superposition".
    """
    W = _weights(W)
    norms = np.linalg.norm(W, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = W / norms
        cos = np.clip(unit.T @ unit, -1.0, 1.0)
    cos[norms == 0, :] = np.nan
    cos[:, norms == 0] = np.nan
    return np.degrees(np.arccos(cos))


@dataclass(frozen=True)
class Geometry:
    """How a toy model stores its features (the result of :func:`classify_geometry`).

    Parameters
    ----------
    kind : str
        ``"none"`` (no feature represented), ``"orthogonal"`` (represented features pairwise
        orthogonal), ``"antipodal"`` (at least one antipodal pair, every other pair of
        represented features orthogonal; a square of four is two antipodal pairs),
        ``"triangle"``, ``"pentagon"``, ``"hexagon"``, ... (``k >= 3`` features evenly spaced
        on a plane, adjacent angles ``360 / k``; ``"<k>-gon"`` past 8), or ``"other"``.
    represented : tuple of int
        Features whose norm is at least ``norm_threshold`` times the largest.
    pairs : tuple of (int, int)
        The antipodal pairs (angle within ``tol_degrees`` of 180).
    adjacent_angles : ndarray
        For features spanning a plane (always when ``d_hidden == 2``): the angles in degrees
        between neighbours going round the plane, in that order (they sum to 360); empty
        otherwise.
    order : tuple of int
        The represented features in the order round the plane that ``adjacent_angles`` follows
        (empty when they do not span a plane).

    Examples
    --------
    >>> angle = 2 * np.pi * np.arange(5) / 5
    >>> g = wb.zoo.classify_geometry(np.stack([np.cos(angle), np.sin(angle)]))
    >>> g.kind, g.represented, g.adjacent_angles.round(1).tolist()
    ('pentagon', (0, 1, 2, 3, 4), [72.0, 72.0, 72.0, 72.0, 72.0])
    """

    kind: str
    represented: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...] = ()
    adjacent_angles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order: tuple[int, ...] = ()


def _plane_order(U: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(order, adjacent angles) of unit columns U (m, k) lying on a plane, else None.

    In 2 dimensions the order is counter-clockwise in W's own coordinates; in more, along the
    plane's first two principal directions. Either way it starts at the first column and, past
    2 dimensions (where the plane has no given orientation), goes first to the lower-numbered
    of its two neighbours.
    """
    if U.shape[1] < 2:
        return None
    if U.shape[0] == 2:
        coords = U
    else:
        left, s, _ = np.linalg.svd(U, full_matrices=False)
        if len(s) > 2 and s[2] > math.sin(math.radians(tol)) * s[0]:
            return None
        coords = left[:, :2].T @ U  # (2, k)
    polar = np.degrees(np.arctan2(coords[1], coords[0])) % 360.0
    order = np.argsort(polar, kind="stable")
    order = np.roll(order, -int(np.flatnonzero(order == 0)[0]))  # start at the first column
    sign = 1.0
    if U.shape[0] > 2 and len(order) > 2 and order[-1] < order[1]:
        order, sign = np.roll(order[::-1], 1), -1.0  # the other way round
    turned = polar[order]
    gaps = (sign * (np.roll(turned, -1) - turned)) % 360.0
    return order, gaps


def classify_geometry(
    W: Any, *, norm_threshold: float = 0.5, tol_degrees: float = 10.0
) -> Geometry:
    """Name the arrangement of a toy model's feature embeddings.

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
        The embedding, one column per feature (``ToyModel.W``).
    norm_threshold : float, default 0.5
        A feature is *represented* when ``||W_i||`` is at least this fraction of the largest
        norm (trained toy models give ~1 or ~0).
    tol_degrees : float, default 10
        How far an angle may be from 90 (orthogonal), 180 (antipodal) or ``360 / k``
        (a polygon's adjacent angle), and how far the features may stick out of a plane.

    Returns
    -------
    Geometry

    Raises
    ------
    InvalidInputError
        ``W`` not 2-d, or holding NaN or infinite values.
    InvalidParameterError
        ``norm_threshold`` or ``tol_degrees`` out of range.

    Examples
    --------
    >>> wb.zoo.classify_geometry(np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])).pairs
    ((0, 1),)
    >>> angle = 2 * np.pi * np.arange(5) / 5
    >>> wb.zoo.classify_geometry(np.stack([np.cos(angle), np.sin(angle)])).kind
    'pentagon'

    References
    ----------
    Elhage et al. (2022), Toy Models of Superposition, sections "Superposition as a Phase
    Change" and "The Geometry of Superposition" (digons, triangles, pentagons).
    """
    W = _weights(W)
    norm_threshold = _float("norm_threshold", norm_threshold, low=0.0, high=1.0)
    tol = _float("tol_degrees", tol_degrees, low=0.0, high=45.0)
    norms = np.linalg.norm(W, axis=0)
    if norms.max() == 0.0:
        return Geometry("none", ())
    rep = np.flatnonzero(norms >= norm_threshold * norms.max())
    represented = tuple(int(i) for i in rep)
    U = W[:, rep] / norms[rep]
    angles = np.degrees(np.arccos(np.clip(U.T @ U, -1.0, 1.0)))
    k = len(rep)
    plane = _plane_order(U, tol)
    adjacent = plane[1] if plane is not None else np.zeros(0)
    order = tuple(represented[i] for i in plane[0]) if plane is not None else ()
    off = ~np.eye(k, dtype=bool)
    antipodal = angles >= 180.0 - tol
    right = np.abs(angles - 90.0) <= tol
    pairs = tuple(
        (represented[a], represented[b])
        for a, b in zip(*np.nonzero(np.triu(antipodal, 1)), strict=True)
    )
    if np.all(right[off]):
        kind = "orthogonal"
    elif pairs and np.all(antipodal.sum(1) <= 1) and np.all((antipodal | right)[off]):
        kind = "antipodal"
    elif k >= 3 and plane is not None and np.all(np.abs(adjacent - 360.0 / k) <= tol):
        kind = _POLYGONS.get(k, f"{k}-gon")
    else:
        kind = "other"
    return Geometry(kind, represented, pairs, adjacent, order)


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class ToyModel:
    """A trained toy model of superposition: ``x' = ReLU(W^T W x + b)``.

    Parameters
    ----------
    W : ndarray of shape (d_hidden, n_features)
        The embedding; column ``W_i`` is feature ``i``'s direction in the hidden layer.
    b : ndarray of shape (n_features,)
        The output bias.
    importance : ndarray of shape (n_features,)
        The loss weights ``I_i``.
    sparsity : float
        Probability that a feature is zero in ``sample(n)``.
    loss : float
        The importance-weighted loss of the kept instance on a fixed sample of 100,000 rows.
    losses : ndarray of shape (n_instances,)
        The same loss for every instance trained (the kept one is the smallest).
    config : dict
        The training settings (the cache key, with ``seed``).
    seed : int
        The seed it was trained with.

    Raises
    ------
    InvalidInputError
        ``hidden`` / ``reconstruct`` / ``loss_on`` of rows that are not (n, n_features).

    Examples
    --------
    >>> toy = wb.zoo.toy_superposition_model(sparsity=0.9)   # cached after the first run
    >>> toy.W.shape, toy.geometry().kind                      # 5 features in 2 dimensions
    ((2, 5), 'pentagon')
    >>> x = toy.sample(3, random_state=0)
    >>> toy.hidden(x).shape, toy.reconstruct(x).shape         # (n, d_hidden), (n, n_features)
    ((3, 2), (3, 5))

    References
    ----------
    Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
    """

    W: np.ndarray
    b: np.ndarray
    importance: np.ndarray
    sparsity: float
    loss: float
    losses: np.ndarray
    config: dict
    seed: int

    @property
    def n_features(self) -> int:
        """Features ``n``."""
        return int(self.W.shape[1])

    @property
    def d_hidden(self) -> int:
        """Hidden dimensions ``m``."""
        return int(self.W.shape[0])

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` inputs (n, n_features) from the training distribution (see
        :func:`sample_sparse_features`)."""
        return sample_sparse_features(n, self.n_features, self.sparsity, random_state)

    def _rows(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features or not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"x must be a finite 2-d array (rows, {self.n_features}) of feature values, got "
                f"shape {arr.shape}; draw rows with ToyModel.sample(n)."
            )
        return arr

    def hidden(self, x: Any) -> np.ndarray:
        """The hidden layer ``h = W x`` (rows, d_hidden), float32: the activations an SAE reads."""
        return (self._rows(x) @ self.W.T).astype(np.float32)

    def reconstruct(self, x: Any) -> np.ndarray:
        """``x' = ReLU(W^T W x + b)`` (rows, n_features)."""
        x = self._rows(x)
        return np.maximum(x @ self.W.T @ self.W + self.b, 0.0)

    def loss_on(self, x: Any) -> float:
        """The importance-weighted loss ``mean_rows sum_i I_i (x_i - x'_i)^2`` on ``x``."""
        x = self._rows(x)
        return float((self.importance * (x - self.reconstruct(x)) ** 2).sum(1).mean())

    def norms(self) -> np.ndarray:
        """:func:`feature_norms` of ``W``."""
        return feature_norms(self.W)

    def dimensionality(self) -> np.ndarray:
        """:func:`feature_dimensionality` of ``W``."""
        return feature_dimensionality(self.W)

    def angles(self) -> np.ndarray:
        """:func:`feature_angles` of ``W`` (degrees)."""
        return feature_angles(self.W)

    def geometry(self, **kwargs: Any) -> Geometry:
        """:func:`classify_geometry` of ``W`` (keywords passed on)."""
        return classify_geometry(self.W, **kwargs)


def _train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    """Train ``n_instances`` models side by side; keep the one with the lowest loss."""
    torch = require("torch", "torch", _FEATURE)
    n, m, k = config["n_features"], config["d_hidden"], config["n_instances"]
    steps, batch, lr = config["steps"], config["batch_size"], config["lr"]
    p = 1.0 - config["sparsity"]
    with training_scope(torch, seed):
        imp = torch.tensor(config["importance"], dtype=torch.float32)
        W = torch.empty(k, m, n)
        for i in range(k):
            torch.nn.init.xavier_normal_(W[i])
        W.requires_grad_(True)
        b = torch.zeros(k, 1, n, requires_grad=True)
        opt = torch.optim.Adam([W, b], lr=lr)
        decay_from = steps // 2  # constant, then linear decay to 0 over the second half

        def draw(rows: int, instances: int = k) -> Any:
            u = torch.rand(instances, rows, n)  # active with probability p, then uniform on [0, 1]
            return torch.where(u < p, u / p, torch.zeros(()))

        def losses(x: Any) -> Any:
            out = torch.relu(torch.bmm(torch.bmm(x, W.transpose(1, 2)), W) + b)
            return (imp * (x - out) ** 2).sum(-1).mean(-1)  # (k,)

        for step in range(steps):
            if step >= decay_from:
                for group in opt.param_groups:
                    group["lr"] = lr * (steps - step) / (steps - decay_from)
            opt.zero_grad(set_to_none=True)
            losses(draw(batch)).sum().backward()
            opt.step()
        with torch.no_grad():
            x = draw(_EVAL_ROWS, 1).expand(k, -1, -1)  # one sample, the same for every instance
            final = losses(x)
    best = int(torch.argmin(final))
    return {
        "W": W.detach()[best].numpy().copy(),
        "b": b.detach()[best, 0].numpy().copy(),
        "losses": final.numpy().astype(np.float64),
        "best": np.array([best]),
    }


def toy_superposition_model(
    n_features: int = 5,
    d_hidden: int = 2,
    sparsity: float = 0.0,
    importance: Any = 0.9,
    seed: int = 0,
    *,
    n_instances: int = 8,
    steps: int = 3000,
    batch_size: int = 1024,
    lr: float = 1e-2,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ToyModel:
    """Train (once, then load from the cache) a toy model of superposition.

    The ReLU output model of Elhage et al. (2022): ``h = W x``, ``x' = ReLU(W^T h + b)``,
    loss ``sum_i I_i (x_i - x'_i)^2`` on fresh batches of :func:`sample_sparse_features`.
    As in the paper, several instances are trained from different initialisations and the one
    with the lowest loss is kept (training can stall in a local minimum, e.g. a pentagon's
    feature left out). Recipe: Xavier-normal ``W``, zero ``b``, Adam at ``lr`` for half the
    steps then linearly decayed to 0, all instances batched into one tensor, one CPU thread,
    seeded (the 5-feature defaults take ~5 s).

    With the defaults (5 features in 2 dimensions, importance ``0.9**i``, the paper's opening
    example): sparsity 0 keeps features 0 and 1 orthogonal and drops the rest; sparsity 0.8
    stores 4 features as two antipodal pairs; sparsity 0.9 all 5 as a pentagon.

    Parameters
    ----------
    n_features : int, default 5
        Features ``n``.
    d_hidden : int, default 2
        Hidden dimensions ``m``.
    sparsity : float, default 0.0
        Probability ``S`` in ``[0, 1)`` that a feature is zero.
    importance : float or array of shape (n_features,), default 0.9
        A ratio ``r`` giving importances ``r**i``, or the importances themselves (> 0).
    seed : int, default 0
        Seed of the initialisations and the batches.
    n_instances : int, default 8
        Models trained side by side; the lowest-loss one is returned.
    steps : int, default 3000
        Optimiser steps.
    batch_size : int, default 1024
        Rows per step (per instance).
    lr : float, default 1e-2
        Adam's learning rate before the decay.
    cache : bool, default True
        Load from / store to the cache (:func:`~whybox.zoo.cached_model`).
    cache_dir : path, optional
        The cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    ToyModel

    Raises
    ------
    InvalidParameterError
        Counts below 1, ``sparsity`` outside [0, 1), non-positive importances or ``lr``, a
        negative seed.
    MissingDependencyError
        Without torch (the training runs in torch; a cached model also needs it).

    Examples
    --------
    >>> toy = wb.zoo.toy_superposition_model(sparsity=0.8)      # ~5 s the first time
    >>> toy.geometry().kind, len(toy.geometry().pairs)          # two antipodal pairs
    ('antipodal', 2)

    References
    ----------
    Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
    arXiv:2209.10652.
    """
    require("torch", "torch", _FEATURE)
    n_features = check_int("n_features", n_features, minimum=1)
    d_hidden = check_int("d_hidden", d_hidden, minimum=1)
    sparsity = _float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
    imp = _importance(importance, n_features)
    seed = check_int("seed", seed, minimum=0)
    lr = _float("lr", lr, low=0.0, high=math.inf)
    if lr == 0.0:
        raise InvalidParameterError("lr must be > 0, got 0.0; the default is 1e-2.")
    config = {
        "n_features": n_features,
        "d_hidden": d_hidden,
        "sparsity": sparsity,
        "importance": [float(v) for v in imp],
        "n_instances": check_int("n_instances", n_instances, minimum=1),
        "steps": check_int("steps", steps, minimum=1),
        "batch_size": check_int("batch_size", batch_size, minimum=1),
        "lr": lr,
    }
    arrays = cached_model(
        "toy_superposition",
        _train,
        config,
        seed,
        version=_VERSION,
        cache_dir=cache_dir,
        cache=check_flag("cache", cache),
    )
    losses = arrays["losses"].astype(np.float64)
    return ToyModel(
        W=arrays["W"].astype(np.float64),
        b=arrays["b"].astype(np.float64),
        importance=imp,
        sparsity=sparsity,
        loss=float(losses[int(arrays["best"][0])]),
        losses=losses,
        config=config,
        seed=seed,
    )
