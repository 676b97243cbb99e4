"""Faithfulness: does the model's output move the way the explanation says it should?

* :func:`deletion` / :func:`insertion` — remove (insert) players most-important-first and
  follow the model's output: the deletion curve should fall fast, the insertion curve rise
  fast (Petsiuk, Das and Saenko 2018; Samek et al. 2017's "most relevant first" region
  perturbation; Bach et al. 2015's pixel flipping). The cores :func:`deletion_curve` and
  :func:`insertion_curve` need only a :class:`~whybox.games.game.Game` and a ranking of its
  players, so the same code scores tabular rows, image regions and tokens: "removing" a
  player means exactly what it means for the game's Shapley values (its masker).
* :func:`faithfulness_correlation` — Pearson correlation, over random subsets ``S`` of a
  fixed size, between the attributions summed over ``S`` and the drop in output when ``S`` is
  removed (Bhatt, Weller and Moura 2020).
* :func:`infidelity` (module :mod:`whybox.metrics.infidelity`) — expected squared error between the attribution-predicted change
  ``I . a`` and the actual change ``f(x) - f(x - I)`` under random perturbations ``I``, with the
  optional optimal scaling of the attributions (Yeh et al. 2019).

Curves and their AUC
--------------------
A :class:`Curve` holds the raw model output (on the explained output's scale, e.g. log-odds)
against the fraction of players removed (deletion) or inserted (insertion), from 0 to 1, and
its trapezoid AUC over [0, 1]. Raw AUCs depend on the output's scale and level, so the curve
is also reported normalised per row: ``(v - v(empty)) / (v(full) - v(empty))``, which runs
from 1 to 0 for deletion and from 0 to 1 for insertion; its AUC is comparable across rows,
models and explanations (lower is better for deletion, higher for insertion; a random ranking
of an additive model scores 0.5 in expectation). Rows whose full and empty coalitions have
(nearly) the same value have no normalised curve (NaN). A row whose prediction is close to the
background level divides by almost nothing, so a set of rows is summarised by the *pooled*
normalised curve, the rows' normalised curves weighted by ``|v(full) - v(empty)|``
(:attr:`Curve.pooled_normalized_auc`).

References
----------
Petsiuk, V., Das, A. and Saenko, K. (2018). RISE: randomized input sampling for explanation of
black-box models. BMVC.

Samek, W., Binder, A., Montavon, G., Lapuschkin, S. and Mueller, K.-R. (2017). Evaluating the
visualization of what a deep neural network has learned. IEEE TNNLS 28(11).

Bach, S. et al. (2015). On pixel-wise explanations for non-linear classifier decisions by
layer-wise relevance propagation. PLoS ONE 10(7).

Bhatt, U., Weller, A. and Moura, J. M. F. (2020). Evaluating and aggregating feature-based
model explanations. IJCAI.

Yeh, C.-K., Hsieh, C.-Y., Suggala, A. S., Inouye, D. I. and Ravikumar, P. (2019). On the
(in)fidelity and sensitivity of explanations. NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_in, check_int
from ..errors import InvalidInputError, InvalidParameterError
from ..games.game import Game, as_value_matrix
from ..parallel import row_generator
from ._inputs import image_setup, is_image_masker, setup
from .infidelity import LOCAL_METHODS, infidelity, infidelity_from_perturbations

__all__ = [
    "LOCAL_METHODS",
    "Curve",
    "deletion",
    "deletion_curve",
    "faithfulness_correlation",
    "infidelity",
    "infidelity_from_perturbations",
    "insertion",
    "insertion_curve",
    "ranking",
]

#: relative size below which v(full) - v(empty) is treated as zero (no normalised curve)
_FLAT = 1e-12
#: default number of steps of a curve when a game has more players than this
_MAX_DEFAULT_STEPS = 100


# ------------------------------------------------------------------------- curves
@dataclass
class Curve:
    """A deletion or insertion curve for each explained row.

    Parameters
    ----------
    kind : {"deletion", "insertion"}
        Which curve it is.
    fractions : ndarray of shape (m,)
        Fraction of players removed (deletion) or inserted (insertion), from 0 to 1.
    values : ndarray of shape (n_rows, m)
        The game's value (the model output) after each step.
    full, empty : ndarray of shape (n_rows,)
        Value with every player present, and with none.
    meta : dict, optional
        What the curve was computed with (ranking rule, masker, ...).

    Notes
    -----
    Derived properties: ``auc`` (shape (n_rows,)), ``normalized_values``
    (``(values - empty) / (full - empty)``, shape (n_rows, m)), ``normalized_auc`` (shape
    (n_rows,)), ``pooled_normalized_values`` and ``pooled_normalized_auc`` (the rows
    averaged with weights ``|full - empty|``) and ``higher_is_better`` (True for insertion).
    ``curve.plot()`` draws it.

    Examples
    --------
    >>> f = lambda Z: np.asarray(Z) @ np.array([1.0, 2.0, 3.0])
    >>> game = wb.TabularGame(f, np.ones(3), wb.Independent(np.zeros((1, 3))))
    >>> curve = wb.metrics.deletion_curve(game, np.array([2, 1, 0]))
    >>> curve.kind, curve.fractions.round(3).tolist(), curve.values.tolist()
    ('deletion', [0.0, 0.333, 0.667, 1.0], [[6.0, 3.0, 1.0, 0.0]])
    >>> curve.normalized_values.round(3).tolist(), curve.higher_is_better
    ([[1.0, 0.5, 0.167, 0.0]], False)
    """

    kind: str
    fractions: np.ndarray
    values: np.ndarray
    full: np.ndarray
    empty: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        """Insertion curves should rise fast (high AUC), deletion curves fall fast."""
        return self.kind == "insertion"

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def auc(self) -> np.ndarray:
        """Trapezoid area under the raw curve over [0, 1], shape (n_rows,)."""
        return _trapezoid(self.values, self.fractions)

    @property
    def normalized_values(self) -> np.ndarray:
        """``(values - empty) / (full - empty)`` per row, shape (n_rows, m); NaN rows if flat."""
        span = self.full - self.empty
        scale = np.maximum(np.abs(self.full), np.abs(self.empty))
        flat = np.abs(span) <= _FLAT * np.maximum(scale, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (self.values - self.empty[:, None]) / span[:, None]
        out[flat] = np.nan
        return out

    @property
    def normalized_auc(self) -> np.ndarray:
        """AUC of the normalised curve, shape (n_rows,): comparable across rows and models."""
        return _trapezoid(self.normalized_values, self.fractions)

    @property
    def weights(self) -> np.ndarray:
        """``|full - empty|`` per row: the size of the change the curve normalises by."""
        w = np.abs(self.full - self.empty)
        return np.where(np.isfinite(self.normalized_values).all(axis=1), w, 0.0)

    @property
    def pooled_normalized_values(self) -> np.ndarray:
        """The rows' normalised curves averaged with weights ``|full - empty|``, shape (m,).

        Equal to ``sum_i (v_i - empty_i) sign(full_i - empty_i) / sum_i |full_i - empty_i|``:
        rows whose prediction is close to the background level (where the per-row
        normalisation divides by almost nothing) weigh little.
        """
        w = self.weights
        if w.sum() <= 0:
            return np.full(self.fractions.shape, np.nan)
        return (np.nan_to_num(self.normalized_values) * w[:, None]).sum(axis=0) / w.sum()

    @property
    def pooled_normalized_auc(self) -> float:
        """AUC of :attr:`pooled_normalized_values`: the summary of a set of rows."""
        return float(_trapezoid(self.pooled_normalized_values[None], self.fractions)[0])

    def plot(self, ax: Any = None, *, rows: Any = None, normalized: bool = True) -> Any:
        """Plot the curves: each row thin (at most 50), their summary bold. Returns the Axes.

        The summary is the pooled normalised curve (``normalized=True``) or the mean raw
        curve.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        curve = self if rows is None else self._rows(np.atleast_1d(rows))
        vals = curve.normalized_values if normalized else curve.values
        for v in vals[:50]:
            ax.plot(self.fractions, v, color="0.75", lw=0.7)
        if normalized:
            summary, auc = curve.pooled_normalized_values, curve.pooled_normalized_auc
            label = f"pooled (AUC {auc:.3f})"
            ax.set_ylim(-0.5, 1.5)
        else:
            summary = vals.mean(axis=0)
            label = f"mean (AUC {float(_trapezoid(summary[None], self.fractions)[0]):.3g})"
        ax.plot(self.fractions, summary, color="C0", lw=2, label=label)
        verb = "removed" if self.kind == "deletion" else "inserted"
        ax.set_xlabel(f"fraction of features {verb}, most important first")
        ax.set_ylabel("normalised output" if normalized else "model output")
        ax.set_title(f"{self.kind} curve")
        ax.legend(frameon=False)
        return ax

    def _rows(self, rows: np.ndarray) -> Curve:
        return Curve(
            self.kind,
            self.fractions,
            self.values[rows],
            self.full[rows],
            self.empty[rows],
            dict(self.meta),
        )

    def __repr__(self) -> str:
        return (
            f"Curve(kind={self.kind!r}, n_rows={self.n_rows}, steps={self.fractions.size}, "
            f"mean auc={float(np.mean(self.auc)):.4g}, "
            f"pooled normalized_auc={self.pooled_normalized_auc:.4g})"
        )


def _trapezoid(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    dx = np.diff(x)
    return ((values[:, 1:] + values[:, :-1]) * 0.5 * dx).sum(axis=1)


def _steps(n_players: int, n_steps: int | None) -> np.ndarray:
    """Numbers of players removed / inserted at each point of a curve (0 ... n_players)."""
    if n_steps is None:
        n_steps = min(n_players, _MAX_DEFAULT_STEPS)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    return np.unique(np.round(np.linspace(0, n_players, n_steps + 1)).astype(int))


def _check_order(order: Any, n_players: int) -> np.ndarray:
    o = np.asarray(order)
    if o.ndim != 1 or o.shape[0] != n_players or o.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"order must be an integer array of shape ({n_players},): the game's players, most "
            f"important first; got {o.dtype} of shape {o.shape}."
        )
    if not np.array_equal(np.sort(o), np.arange(n_players)):
        raise InvalidParameterError(
            f"order must be a permutation of 0..{n_players - 1} (each player exactly once)."
        )
    return o.astype(np.int64)


def _game_curve(game: Game, order: np.ndarray, kind: str, counts: np.ndarray) -> np.ndarray:
    """Values (m,) of one game along the ranking, plus the full and empty coalitions."""
    P = game.n_players
    rank = np.empty(P, dtype=np.int64)
    rank[order] = np.arange(P)
    first = rank[None, :] < counts[:, None]  # the first counts[t] players of the ranking
    coalitions = ~first if kind == "deletion" else first
    ends = np.stack([np.ones(P, dtype=bool), np.zeros(P, dtype=bool)])
    v = as_value_matrix(game.value(np.concatenate([coalitions, ends])), counts.size + 2)
    if v.shape[1] != 1:
        raise InvalidParameterError(
            f"the game has {v.shape[1]} outputs; curves score one output at a time. Build "
            "the game for a single output (e.g. target= one class)."
        )
    return v[:, 0]


def _curve(games: Any, orders: Any, kind: str, n_steps: int | None) -> Curve:
    if isinstance(games, Game) or hasattr(games, "value"):
        games = [games]
        orders = [orders]
    games = list(games)
    orders = list(orders) if not isinstance(orders, np.ndarray) or orders.ndim == 2 else [orders]
    if not games:
        raise InvalidInputError("no games given; pass at least one game and its ranking.")
    if len(orders) != len(games):
        raise InvalidParameterError(
            f"got {len(orders)} rankings for {len(games)} games; give one ranking per game."
        )
    P = games[0].n_players
    if any(g.n_players != P for g in games):
        raise InvalidParameterError(
            "all games of one curve must have the same number of players; score games with "
            "different numbers of players (ragged rows) one at a time."
        )
    counts = _steps(P, n_steps)
    rows = [
        _game_curve(g, _check_order(o, P), kind, counts) for g, o in zip(games, orders, strict=True)
    ]
    arr = np.stack(rows)
    return Curve(
        kind=kind,
        fractions=counts / P,
        values=arr[:, :-2],
        full=arr[:, -2],
        empty=arr[:, -1],
        meta={"n_players": P, "counts": counts.tolist()},
    )


def deletion_curve(game: Any, order: Any, *, n_steps: int | None = None) -> Curve:
    """Deletion curve of one game (or a list of games) along a ranking of its players.

    Parameters
    ----------
    game : Game or sequence of Games
        Any game (tabular row, image, text): ``value(bool (m, P)) -> (m,) or (m, 1)``.
    order : int array of shape (P,), or one per game (n_games, P)
        The players, most important first.
    n_steps : int, optional
        Points after the start (default: one per player, at most 100); the numbers of
        removed players are ``round(linspace(0, P, n_steps + 1))``.

    Returns
    -------
    Curve
        ``values[:, t]`` is the value of the coalition without the first
        ``fractions[t] * P`` players of the ranking.

    Examples
    --------
    >>> f = lambda Z: np.asarray(Z) @ np.array([1.0, 2.0, 3.0])
    >>> game = wb.TabularGame(f, np.ones(3), wb.Independent(np.zeros((1, 3))))
    >>> curve = wb.metrics.deletion_curve(game, np.array([2, 1, 0]))
    >>> curve.values.tolist()  # remove x2 (-3), then x1 (-2), then x0 (-1)
    [[6.0, 3.0, 1.0, 0.0]]
    """
    return _curve(game, order, "deletion", n_steps)


def insertion_curve(game: Any, order: Any, *, n_steps: int | None = None) -> Curve:
    """Insertion curve: the value of the first ``fractions[t] * P`` players of the ranking.

    Parameters
    ----------
    game : Game or sequence of Games
        Any game (tabular row, image, text): ``value(bool (m, P)) -> (m,) or (m, 1)``.
    order : int array of shape (P,), or one per game (n_games, P)
        The players, most important first.
    n_steps : int, optional
        Points after the start (default: one per player, at most 100).

    Returns
    -------
    Curve
        ``values[:, t]`` is the value of the coalition of the first ``fractions[t] * P``
        players of the ranking; shape (n_games, n_steps + 1).

    Examples
    --------
    >>> f = lambda Z: np.asarray(Z) @ np.array([1.0, 2.0, 3.0])
    >>> game = wb.TabularGame(f, np.ones(3), wb.Independent(np.zeros((1, 3))))
    >>> curve = wb.metrics.insertion_curve(game, np.array([2, 1, 0]))
    >>> curve.values.tolist()  # x2 first (+3), then x1 (+2), then x0 (+1)
    [[0.0, 3.0, 5.0, 6.0]]
    """
    return _curve(game, order, "insertion", n_steps)


def ranking(values: np.ndarray, by: str = "value", direction: Any = None) -> np.ndarray:
    """Players most important first, per row: stable descending sort, shape (n, p).

    ``by="value"`` ranks by signed attribution (the players that push the output up most
    come first, as in pixel flipping); ``by="abs"`` by magnitude; ``by="prediction"`` by
    signed attribution times ``direction`` (n,), the sign of ``v(full) - v(empty)``: the
    players that moved the output from its background level towards the prediction first.
    """
    check_in("by", by, ("prediction", "value", "abs"))
    if by == "abs":
        key = -np.abs(values)
    elif by == "prediction":
        if direction is None:
            raise InvalidParameterError("by='prediction' needs the direction of each row.")
        sign = np.where(np.asarray(direction, dtype=float) < 0, -1.0, 1.0)
        key = -values * sign[:, None]
    else:
        key = -values
    return np.argsort(key, axis=1, kind="stable")


def _tabular_curve(
    kind: str,
    exp: Any,
    model: Any,
    X: Any,
    background: Any,
    target: Any,
    link: str | None,
    n_steps: int | None,
    by: str,
    allow_nan: bool = False,
) -> Curve:
    check_in("by", by, ("prediction", "value", "abs"))
    if is_image_masker(background):
        games, values = image_setup(exp, model, X, background, target=target, link=link)
        players = None
        output = games[0].model_fn.output_description
    else:
        s = setup(
            exp, model, X, target=target, link=link, background=background, allow_nan=allow_nan
        )
        games, values = [s.game(i) for i in range(s.n)], list(s.values)
        players, output = s.players, s.outputs.description
    if len({g.n_players for g in games}) > 1:
        # images cut into different numbers of segments: one curve per image, stacked
        if n_steps is None:
            raise InvalidParameterError(
                "the images have different numbers of segments, so their curves have "
                "different steps; pass n_steps= to put them on one grid of fractions."
            )
    orders = []
    for g, v in zip(games, values, strict=True):
        direction = None
        if by == "prediction":  # the full and empty coalitions, cached for the curve
            ends = np.stack([np.ones(g.n_players, bool), np.zeros(g.n_players, bool)])
            direction = np.array([np.subtract(*as_value_matrix(g.value(ends), 2)[:, 0])])
        orders.append(ranking(v[None], by, direction)[0])
    if len({g.n_players for g in games}) > 1:
        parts = [_curve([g], [o], kind, n_steps) for g, o in zip(games, orders, strict=True)]
        curve = _stack_curves(parts, kind, n_steps)
    else:
        curve = _curve(games, np.stack(orders), kind, n_steps)
    curve.meta.update({"players": players, "by": by, "output": output})
    return curve


def _stack_curves(parts: list[Curve], kind: str, n_steps: int) -> Curve:
    """Curves of games with different numbers of players, on the grid of ``n_steps``."""
    grid = np.linspace(0.0, 1.0, n_steps + 1)
    values = np.stack([np.interp(grid, c.fractions, c.values[0]) for c in parts])
    return Curve(
        kind=kind,
        fractions=grid,
        values=values,
        full=np.concatenate([c.full for c in parts]),
        empty=np.concatenate([c.empty for c in parts]),
        meta={"n_players": [c.meta["n_players"] for c in parts], "interpolated": True},
    )


def deletion(
    exp: Any,
    model: Any,
    X: Any = None,
    *,
    background: Any = None,
    target: Any = None,
    link: str | None = None,
    n_steps: int | None = None,
    by: str = "prediction",
    allow_nan: bool = False,
) -> Curve:
    """Deletion curve of a tabular explanation: remove features most-important-first.

    Parameters
    ----------
    exp : Explanation or array (n, p)
        The attributions scored.
    model : object
        The explained model (anything :func:`whybox.wrap_model` accepts).
    X : DataFrame or array (n, p), optional
        The explained rows (default: ``exp.data``).
    background : DataFrame, array, scalar, mapping, Masker or ImageMasker, optional
        What a removed feature becomes, as for the explainers: background rows (interventional:
        the output averaged over them), a baseline value, or a masker. Default: up to 100
        rows of X. With an :class:`~whybox.games.image.ImageMasker`, X is a batch of images,
        the players are the masker's segments (pixel attributions are summed per segment) and
        removed segments show the masker's fill.
    target, link : optional
        The output scored; default: the one the explanation explains.
    n_steps : int, optional
        Points of the curve (default: one per feature, at most 100).
    allow_nan : bool, default False
        Accept missing values (NaN) in X and the background, for models that handle them
        (XGBoost, LightGBM, HistGradientBoosting): a missing value stays missing while present
        and is replaced like any other value when removed.
    by : {"prediction", "value", "abs"}
        How "most important" is read. ``"prediction"`` (default): the features that moved
        this row's output from the background level towards its prediction come first
        (signed attribution times the sign of ``f(x) - v(empty)``), so the normalised curve
        falls from 1 to 0 for every row. ``"value"``: the largest signed attribution first,
        whatever the prediction (pixel flipping; Quantus's ``PixelFlipping``). ``"abs"``: by
        magnitude.

    Returns
    -------
    Curve
        Lower ``normalized_auc`` is better.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> exp = wb.explain(model, X.iloc[:5], background=bg)  # exact Shapley values
    >>> curve = wb.metrics.deletion(exp, model, background=bg)
    >>> curve.values.shape  # 5 rows, 10 features removed one by one
    (5, 11)
    >>> bool(np.allclose(curve.values[:, 0], curve.full)), bool(np.allclose(curve.values[:, -1], curve.empty))
    (True, True)
    """
    return _tabular_curve(
        "deletion", exp, model, X, background, target, link, n_steps, by, allow_nan
    )


def insertion(
    exp: Any,
    model: Any,
    X: Any = None,
    *,
    background: Any = None,
    target: Any = None,
    link: str | None = None,
    n_steps: int | None = None,
    by: str = "prediction",
    allow_nan: bool = False,
) -> Curve:
    """Insertion curve: start from the background and insert features most-important-first.

    Parameters
    ----------
    exp : Explanation or array (n, p)
        The attributions scored.
    model : object
        The explained model (anything :func:`whybox.wrap_model` accepts).
    X : DataFrame or array (n, p), optional
        The explained rows (default: ``exp.data``).
    background : DataFrame, array, scalar, mapping, Masker or ImageMasker, optional
        What a feature not yet inserted is, as for :func:`whybox.metrics.deletion` (default:
        up to 100 rows of X).
    target, link : optional
        The output scored; default: the one the explanation explains.
    n_steps : int, optional
        Points of the curve (default: one per feature, at most 100).
    by : {"prediction", "value", "abs"}, default "prediction"
        How "most important" is read, as for :func:`whybox.metrics.deletion`.
    allow_nan : bool, default False
        Accept missing values (NaN) in X and the background, for models that handle them.

    Returns
    -------
    Curve
        Values of shape (n, n_steps + 1); higher ``normalized_auc`` is better.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> exp = wb.explain(model, X.iloc[:5], background=bg)  # exact Shapley values
    >>> curve = wb.metrics.insertion(exp, model, background=bg)
    >>> curve.values.shape, curve.higher_is_better
    ((5, 11), True)
    >>> bool(np.allclose(curve.values[:, 0], curve.empty))  # starts from the background
    True
    """
    return _tabular_curve(
        "insertion", exp, model, X, background, target, link, n_steps, by, allow_nan
    )


# ------------------------------------------------------------ faithfulness correlation
def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den <= 1e-300 or not np.isfinite(den):
        return float("nan")
    return float((a * b).sum() / den)


def faithfulness_correlation_game(
    game: Game, attributions: np.ndarray, subsets: np.ndarray
) -> float:
    """Bhatt et al.'s correlation for one game.

    Parameters
    ----------
    game : Game
    attributions : array of shape (P,)
    subsets : bool array of shape (s, P)
        The removed subsets, True where a player is removed.

    Returns
    -------
    float
        Pearson correlation between ``subsets @ attributions`` and
        ``v(all) - v(all minus subset)``; NaN when either has no variance.
    """
    S = np.asarray(subsets, dtype=bool)
    full = np.ones((1, game.n_players), dtype=bool)
    v = as_value_matrix(game.value(np.concatenate([full, ~S])), S.shape[0] + 1)[:, 0]
    drops = v[0] - v[1:]
    return _pearson(S @ np.asarray(attributions, dtype=float), drops)


def _subsets(
    subsets: Any, n: int, P: int, n_samples: int, size: int, X: Any, rows: Any, random_state: Any
) -> np.ndarray:
    """Removed subsets, bool (n, s, P): given, or drawn per row (seeded by its content)."""
    if subsets is not None:
        S = np.asarray(subsets)
        if S.dtype == bool:
            if S.ndim != 3 or S.shape[0] != n or S.shape[2] != P:
                raise InvalidParameterError(
                    f"subsets given as a boolean mask must have shape ({n}, n_samples, {P}); "
                    f"got {S.shape}."
                )
            return S
        if S.ndim != 3 or S.shape[0] != n or S.dtype.kind not in "iu":
            raise InvalidParameterError(
                f"subsets must be player indices of shape ({n}, n_samples, subset_size) or a "
                f"boolean mask ({n}, n_samples, {P}); got {S.dtype} of shape {S.shape}."
            )
        if S.min(initial=0) < 0 or S.max(initial=0) >= P:
            raise InvalidParameterError(f"subsets hold player indices outside 0..{P - 1}.")
        mask = np.zeros((n, S.shape[1], P), dtype=bool)
        np.put_along_axis(mask, S.astype(np.int64), True, axis=2)
        return mask
    out = np.zeros((n, n_samples, P), dtype=bool)
    for i in range(n):
        rng = row_generator(random_state, rows(i))
        idx = np.argsort(rng.random((n_samples, P)), axis=1)[:, :size]
        np.put_along_axis(out[i], idx, True, axis=1)
    return out


def faithfulness_correlation(
    exp: Any,
    model: Any,
    X: Any = None,
    *,
    background: Any = None,
    subset_size: int | None = None,
    n_samples: int = 50,
    target: Any = None,
    link: str | None = None,
    random_state: int | None = 0,
    subsets: Any = None,
    allow_nan: bool = False,
) -> np.ndarray:
    """Faithfulness correlation of Bhatt, Weller and Moura (2020), one number per row.

    For ``n_samples`` random subsets ``S`` of ``subset_size`` features, the Pearson
    correlation between ``sum_{j in S} a_j`` and ``f(x) - v(N \\ S)``, the drop in output
    when ``S`` is removed (replaced as the masker says: ``background=``). 1 is perfect.

    Parameters
    ----------
    exp, model, X, background, target, link
        As for :func:`deletion`.
    subset_size : int, optional
        Features removed per sample (default: a quarter of the features, at least 1).
    n_samples : int
        Random subsets per row.
    random_state : int or None
        Seed; each row's subsets are drawn from a generator seeded by ``random_state`` and the
        row's content, so a row scores the same alone or in a batch.
    subsets : array, optional
        The subsets to use instead of random ones: player indices (n, n_samples, subset_size)
        or a boolean mask (n, n_samples, P), True where removed.
    allow_nan : bool, default False
        Accept missing values in X, as for :func:`deletion`.

    Returns
    -------
    ndarray of shape (n,)
        Higher is better; NaN for a row whose attribution sums or output drops do not vary.

    Examples
    --------
    Exact Shapley values of a linear model are perfectly faithful: removing a subset drops
    the output by exactly the sum of its values.

    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = wb.zoo.diabetes()
    >>> model = LinearRegression().fit(X, y)
    >>> bg = X.iloc[:50]
    >>> exp = wb.explain(model, X.iloc[:5], background=bg)  # exact Shapley values
    >>> wb.metrics.faithfulness_correlation(exp, model, background=bg).round(3).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    if is_image_masker(background):
        games, values = image_setup(exp, model, X, background, target=target, link=link)
        if len({g.n_players for g in games}) > 1:
            raise InvalidParameterError(
                "the images have different numbers of segments; score them one at a time."
            )
        rows = lambda i: games[i].image  # noqa: E731 - the content that seeds row i's draws
    else:
        s = setup(
            exp, model, X, target=target, link=link, background=background, allow_nan=allow_nan
        )
        games, values, rows = [s.game(i) for i in range(s.n)], list(s.values), s.row
    n, P = len(games), games[0].n_players
    if P < 2:
        raise InvalidParameterError(
            "faithfulness correlation needs at least two features (it correlates over subsets)."
        )
    n_samples = check_int("n_samples", n_samples, minimum=2)
    size = max(1, round(P / 4)) if subset_size is None else subset_size
    size = check_int("subset_size", size, minimum=1, maximum=P - 1)
    masks = _subsets(subsets, n, P, n_samples, size, None, rows, random_state)
    return np.array(
        [faithfulness_correlation_game(games[i], values[i], masks[i]) for i in range(n)]
    )
