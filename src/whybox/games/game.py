"""Cooperative games: the shared core of every Shapley, Banzhaf and LIME estimator.

A game has ``n_players`` players and a value function ``value(coalitions)`` that maps a
boolean matrix of coalitions, shape (m, n_players), to their worth, shape (m, k) with one
column per explained output. Tabular features, groups of features, text tokens, image regions
and retrieved documents are all players; what differs is how "absent" is represented, which is
the job of a masker (:mod:`whybox.games.maskers`).

:class:`BaseGame` adds what every game needs: validation, a cache so that the same coalition
is never evaluated twice, and evaluation in chunks bounded in rows so memory stays bounded.

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS. (The interventional coalition value used by :class:`TabularGame`.)

Covert, I., Lundberg, S. and Lee, S.-I. (2021). Explaining by removing: a unified framework
for model explanation. JMLR 22(209).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "BaseGame",
    "Game",
    "TabularGame",
    "group_matrix",
]

DEFAULT_CHUNK_BYTES = 256 * 2**20


@runtime_checkable
class Game(Protocol):
    """What an estimator needs from a cooperative game."""

    n_players: int
    player_names: list[str]

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        """Worth of each coalition: bool (m, n_players) -> float (m,) or (m, k)."""
        ...


def as_value_matrix(values: Any, m: int) -> np.ndarray:
    """Return game values as a float matrix (m, k), accepting (m,) from simple games."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != m:
        raise InvalidInputError(
            f"a game returned values of shape {v.shape} for {m} coalitions; expected (m,) or "
            "(m, k)."
        )
    return v


class BaseGame:
    """A game with validated, cached, chunked evaluation.

    Subclasses implement :meth:`_evaluate` on coalitions that have not been seen before.

    Parameters
    ----------
    n_players : int
    player_names : sequence of str, optional
    cache : bool
        Remember every evaluated coalition so that it is never evaluated twice.
    """

    def __init__(
        self, n_players: int, player_names: Sequence[str] | None = None, *, cache: bool = True
    ) -> None:
        if n_players < 1:
            raise InvalidParameterError(f"a game needs at least one player, got {n_players}.")
        self.n_players = int(n_players)
        self.player_names = (
            [str(p) for p in player_names]
            if player_names is not None
            else [f"player {j}" for j in range(n_players)]
        )
        if len(self.player_names) != self.n_players:
            raise InvalidParameterError(
                f"got {len(self.player_names)} player names for {self.n_players} players."
            )
        self._use_cache = cache
        self._cache: dict[bytes, np.ndarray] = {}
        self.n_evaluated = 0  # distinct coalitions evaluated so far

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        """Worth of distinct, unseen coalitions: bool (m, n) -> float (m, k)."""
        raise NotImplementedError

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        """Worth of each coalition, shape (m, k); repeated coalitions are evaluated once."""
        C = np.asarray(coalitions)
        if C.ndim == 1:
            C = C[None, :]
        if C.ndim != 2 or C.shape[1] != self.n_players:
            raise InvalidInputError(
                f"coalitions must have shape (m, {self.n_players}), got {C.shape}."
            )
        C = C.astype(bool, copy=False)
        m = C.shape[0]
        if m == 0:
            return np.zeros((0, 0))
        packed = np.packbits(C, axis=1)
        uniq, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        keys = [row.tobytes() for row in uniq]
        if self._use_cache:
            todo = [i for i, key in enumerate(keys) if key not in self._cache]
        else:
            todo = list(range(len(keys)))
        fresh = None
        if todo:
            fresh = as_value_matrix(self._evaluate(C[first[todo]]), len(todo))
            self.n_evaluated += len(todo)
        if self._use_cache:
            if fresh is not None:
                for row, i in enumerate(todo):
                    self._cache[keys[i]] = fresh[row]
            out_u = np.stack([self._cache[key] for key in keys])
        else:
            out_u = fresh  # type: ignore[assignment]
        return out_u[inverse]


def group_matrix(
    feature_names: Sequence[str], groups: Mapping[str, Sequence[str]] | None
) -> tuple[list[str], np.ndarray]:
    """Players and their feature membership for optional feature groups.

    Parameters
    ----------
    feature_names : sequence of str, length p
    groups : mapping from group name to the feature names it contains, or None
        Features not named by any group stay players of their own, in their original order;
        a group takes the position of its first feature.

    Returns
    -------
    player_names : list of str, length n_players
    membership : bool array of shape (n_players, p)
    """
    names = [str(f) for f in feature_names]
    p = len(names)
    if not groups:
        return names, np.eye(p, dtype=bool)
    if not isinstance(groups, Mapping):
        raise InvalidParameterError(
            "groups must be a mapping from a group name to a list of feature names, e.g. "
            "groups={'address': ['zip', 'city']}."
        )
    owner: dict[str, str] = {}
    for gname, members in groups.items():
        if isinstance(members, str):
            members = [members]
        members = [str(m) for m in members]
        if not members:
            raise InvalidParameterError(f"group {gname!r} is empty; give it at least one feature.")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise InvalidParameterError(
                f"group {gname!r} names unknown feature(s) {unknown}. Known features: {names}."
            )
        for m in members:
            if m in owner:
                raise InvalidParameterError(
                    f"feature {m!r} is in two groups ({owner[m]!r} and {gname!r}); groups must "
                    "not overlap. Put each feature in at most one group."
                )
            owner[m] = str(gname)
    clash = [g for g in groups if str(g) in names and str(g) not in owner]
    if clash:
        raise InvalidParameterError(
            f"group name(s) {clash} are also names of ungrouped features; rename the groups."
        )
    players: list[str] = []
    rows: list[np.ndarray] = []
    for name in names:
        player = owner.get(name, name)
        if player in players:
            continue
        players.append(player)
        members = [m for m in names if owner.get(m, m) == player]
        rows.append(np.isin(names, members))
    return players, np.array(rows, dtype=bool)


class TabularGame(BaseGame):
    """Interventional game of one tabular row: absent features come from background rows.

    ``v(S) = sum_b w_b f(x_S, z^b_{-S})`` over background rows ``z^b`` with weights ``w_b``
    (Lundberg & Lee 2017; Janzing et al. 2020), evaluated with as few model calls as the
    chunk size allows.

    Parameters
    ----------
    model_fn : callable
        ``f(X) -> float (m,) or (m, k)``, usually the result of :func:`whybox.wrap_model`.
    x : DataFrame of one row, or array of shape (p,)
        The explained row.
    masker : Independent or Baseline
        Supplies the rows that stand in for absent features (:class:`whybox.Independent`,
        :class:`whybox.Baseline`).
    groups : mapping of str to list of str, optional
        Feature groups acting as single players (name -> its features); features in no
        group stay players of their own.
    chunk_bytes : int, default 268435456
        Upper bound on the memory of one batch of masked rows (256 MB).
    cache : bool, default True
        Remember every evaluated coalition so that it is never evaluated twice.

    Attributes
    ----------
    n_players : int
        Number of players (features, or groups).
    player_names : list of str
        Their names.

    Notes
    -----
    ``game.value(coalitions)`` takes a boolean array of shape (m, n_players) and returns the
    worths, shape (m, k); a coalition of the wrong width raises
    :class:`~whybox.InvalidInputError`.

    Examples
    --------
    >>> f = lambda X: np.asarray(X) @ np.array([1.0, 2.0, 3.0])
    >>> game = wb.TabularGame(f, np.ones(3), wb.Independent(np.zeros((1, 3))))
    >>> game.n_players, game.player_names
    (3, ['x0', 'x1', 'x2'])
    >>> game.value(np.array([[0, 0, 0], [1, 0, 1], [1, 1, 1]], dtype=bool)).tolist()
    [[0.0], [4.0], [6.0]]
    """

    def __init__(
        self,
        model_fn: Callable[[Any], np.ndarray],
        x: Any,
        masker: Any,
        *,
        groups: Mapping[str, Sequence[str]] | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        cache: bool = True,
    ) -> None:
        self.model_fn = model_fn
        self.masker = masker
        self.x = x
        feature_names = masker.feature_names
        players, membership = group_matrix(feature_names, groups)
        super().__init__(len(players), players, cache=cache)
        self.membership = membership
        self.chunk_rows = max(1, int(chunk_bytes // max(1, masker.row_nbytes)))
        #: Keep each evaluated coalition's outputs per background row (the regression
        #: adjustment's per-background link surrogate reads them); off by default.
        self.keep_background = False
        self._by_background: dict[bytes, np.ndarray] = {}

    def feature_mask(self, coalitions: np.ndarray) -> np.ndarray:
        """Features present for each coalition: bool (m, p)."""
        return (coalitions.astype(np.int64) @ self.membership.astype(np.int64)) > 0

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        masks = self.feature_mask(coalitions)
        n_bg = self.masker.n_rows
        per_chunk = max(1, self.chunk_rows // n_bg)
        out = []
        for start in range(0, masks.shape[0], per_chunk):
            block = masks[start : start + per_chunk]
            data = self.masker.compose(self.x, block)
            y = np.asarray(self.model_fn(data), dtype=float)
            y = y.reshape(block.shape[0], n_bg, -1)
            if self.keep_background:
                keys = np.packbits(coalitions[start : start + per_chunk], axis=1)
                for key, rows in zip(keys, y, strict=True):
                    self._by_background[key.tobytes()] = rows
            out.append(np.einsum("mbk,b->mk", y, self.masker.weights))
        return np.concatenate(out, axis=0)

    def values_by_background(self, coalitions: np.ndarray) -> np.ndarray | None:
        """The model's outputs per background row for coalitions already evaluated while
        :attr:`keep_background` was on: float (m, n_background, k), or None if one of them
        was not (the game's value is their mean weighted by ``masker.weights``)."""
        packed = np.packbits(np.asarray(coalitions, dtype=bool), axis=1)
        rows = [self._by_background.get(key.tobytes()) for key in packed]
        if any(r is None for r in rows):
            return None
        return np.stack(rows)  # type: ignore[arg-type]
