"""Deletion and insertion curves of text explanations (ragged rows, one value per token).

:func:`~whybox.metrics.faithfulness.deletion_curve` scores one game along one ranking, and
its stacked :class:`~whybox.metrics.faithfulness.Curve` needs every row to have the same
number of players; texts have different numbers of tokens. Here each text is its own
:class:`~whybox.games.text.TextGame` (absent tokens are what the game's masker makes them:
the ``[MASK]`` token for classifiers by default) and its own curve:

* deletion: remove the players most-important-first and follow the explained output (the
  target class's probability by default); the area under the curve over the fraction of
  players removed, from 0 to 1 (trapezoid rule), should be **low**;
* insertion: start from all players absent and insert them most-important-first; the area
  should be **high**.

Raw AUCs of a probability lie in [0, 1], comparable across texts of different lengths since
the x-axis is the fraction of players; :attr:`TextCurves.deletion_auc` is one number per text,
and a method is summarised by the mean over texts. A random ranking (:func:`random_values`) is
the baseline every method should beat.

References
----------
Petsiuk, V., Das, A. and Saenko, K. (2018). RISE: randomized input sampling for explanation of
black-box models. BMVC.

Samek, W., Binder, A., Montavon, G., Lapuschkin, S. and Mueller, K.-R. (2017). Evaluating the
visualization of what a deep neural network has learned. IEEE TNNLS 28(11).

DeYoung, J. et al. (2020). ERASER: A Benchmark to Evaluate Rationalized NLP Models. ACL
(comprehensiveness and sufficiency: token deletion for text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_in
from ..errors import InvalidInputError, InvalidParameterError
from .faithfulness import Curve, deletion_curve, insertion_curve

__all__ = ["TextCurves", "random_values", "text_curves", "text_games"]


@dataclass
class TextCurves:
    """Deletion and insertion curves of one explanation on a set of texts.

    Attributes
    ----------
    deletion, insertion : list of Curve, length n_texts
        One single-row :class:`~whybox.metrics.faithfulness.Curve` per text.
    """

    deletion: list[Curve]
    insertion: list[Curve]

    @property
    def deletion_auc(self) -> np.ndarray:
        """Raw deletion AUC per text, shape (n_texts,): lower is better."""
        return np.array([float(c.auc[0]) for c in self.deletion])

    @property
    def insertion_auc(self) -> np.ndarray:
        """Raw insertion AUC per text, shape (n_texts,): higher is better."""
        return np.array([float(c.auc[0]) for c in self.insertion])

    def summary(self) -> dict[str, float]:
        """Means over texts: ``{"deletion_auc", "insertion_auc", "difference"}``
        (difference = insertion - deletion, higher is better)."""
        d, i = float(np.mean(self.deletion_auc)), float(np.mean(self.insertion_auc))
        return {"deletion_auc": d, "insertion_auc": i, "difference": i - d}


def text_games(
    model: Any,
    texts: str | Sequence[str],
    *,
    tokenizer: Any,
    target: Any,
    granularity: str = "token",
    masker: Any = None,
    value: Any = "prob",
) -> list[Any]:
    """One :class:`~whybox.games.text.TextGame` per text (reuse them across methods: each game
    remembers the coalitions it has evaluated).

    Parameters
    ----------
    model : transformers sequence classifier or causal LM
    texts : str or sequence of str, length n
    tokenizer : Hugging Face tokenizer
    target : int, str, or a sequence of one per text
        The explained output (class index, next token ...), as for ``wb.explain``.
    granularity : {"token", "word", "sentence"}
        Must be the explanation's granularity.
    masker, value
        As for :class:`~whybox.games.text.TextGame` (default value: the target's probability).

    Returns
    -------
    list of TextGame, length n
    """
    from ..games.text import TextGame
    from ..text.tokens import tokenize

    rows = tokenize(texts, tokenizer, granularity=granularity, model=model)
    if isinstance(target, (list, tuple, np.ndarray)):
        targets = list(target)
        if len(targets) != len(rows):
            raise InvalidParameterError(
                f"got {len(targets)} targets for {len(rows)} texts; give one target, or one "
                "per text."
            )
    else:
        targets = [target] * len(rows)
    return [
        TextGame(model, row, tokenizer=tokenizer, target=t, masker=masker, value=value)
        for row, t in zip(rows, targets, strict=True)
    ]


def _order(v: np.ndarray, by: str) -> np.ndarray:
    key = -np.abs(v) if by == "abs" else -v
    return np.argsort(key, kind="stable")


def text_curves(
    games: Sequence[Any],
    values: Any,
    *,
    by: str = "value",
    n_steps: int | None = None,
) -> TextCurves:
    """Deletion and insertion curves of per-text attributions.

    Parameters
    ----------
    games : sequence of TextGame, length n
        From :func:`text_games` (same texts, target and granularity as the explanation).
    values : Explanation or sequence of arrays
        A text explanation (``values[i]`` of shape (n_players_i,)), or the arrays themselves.
        Multi-output rows (n_players_i, k) are not accepted: explain one target.
    by : {"value", "abs"}
        Rank players by signed value (largest first: the players that raise the target most)
        or by magnitude.
    n_steps : int, optional
        Points of each curve (default one per player, at most 100).

    Returns
    -------
    TextCurves
    """
    check_in("by", by, ("value", "abs"))
    vals = list(values.values) if hasattr(values, "values") else list(values)
    games = list(games)
    if not games:
        raise InvalidInputError("no texts given; pass at least one game and its values.")
    if len(vals) != len(games):
        raise InvalidParameterError(
            f"got {len(vals)} rows of values for {len(games)} texts; give one per text."
        )
    dels, ins = [], []
    for i, (game, v) in enumerate(zip(games, vals, strict=True)):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 1 or v.shape[0] != game.n_players:
            raise InvalidParameterError(
                f"text {i} has {game.n_players} players but its values have shape {v.shape}; "
                "explain one target with the same granularity as the games."
            )
        order = _order(v, by)
        dels.append(deletion_curve(game, order, n_steps=n_steps))
        ins.append(insertion_curve(game, order, n_steps=n_steps))
    return TextCurves(dels, ins)


def random_values(games: Sequence[Any], random_state: int | None = 0) -> list[np.ndarray]:
    """Uniform random attributions, one array per game: the baseline ranking (seeded)."""
    rng = np.random.default_rng(random_state)
    return [rng.random(g.n_players) for g in games]
