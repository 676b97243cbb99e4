"""Texts as players: tokenisation with offsets, and players at token, word or sentence level.

:func:`tokenize` turns texts into :class:`TokenizedText` rows: every id the model sees (special
tokens included), the display string and character span of each id, which ids are special
(never players) and the players, each a list of indices into the ids:

- ``granularity="token"``: one player per non-special token.
- ``granularity="word"``: a word is a maximal run of non-special tokens whose character spans
  lie inside one whitespace-separated span of the text (so ``"un" "##believ" "##able"`` is one
  word, and a byte-level BPE token ``" cat"`` whose span starts at its leading space belongs to
  the span of ``cat``). Tokens without a span (slow tokenizers without offsets) are words of
  their own.
- ``granularity="sentence"``: a sentence ends after a run of ``.``, ``!`` or ``?`` (optionally
  followed by closing quotes or brackets) that is followed by whitespace or the end of the text;
  a newline followed by a blank line also ends one. Each sentence's players are the
  non-special tokens whose span starts inside it. This is a punctuation rule, not a trained
  sentence splitter: ``"Dr. Smith"`` splits after ``Dr.``.

:func:`text_explanation` assembles one ragged :class:`~whybox.explanation.Explanation` (one row
per text) from per-text values.

References
----------
Kokhlikyan, N. et al. (2020). Captum: a unified and generic model interpretability library for
PyTorch. arXiv:2009.07896. (``TextTokenInput``: players are the prompt's tokens.)

Goldshmidt, R. and Horovicz, M. (2024). TokenSHAP: interpreting large language models with
Monte Carlo Shapley value estimation. arXiv:2407.10114. (Players are tokens or words.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..explanation import Explanation

__all__ = ["GRANULARITIES", "TokenizedText", "context_length", "text_explanation", "tokenize"]

GRANULARITIES = ("token", "word", "sentence")

_SENTENCE_END = re.compile(r"[.!?]+[\"'\)\]\u201d\u2019]*(?=\s|$)|\n\s*\n")
# model_max_length of tokenizers that do not know their limit is a huge sentinel
_NO_LIMIT = 10**9


@dataclass
class TokenizedText:
    """One tokenised text and its players.

    Attributes
    ----------
    text : str
    input_ids : list of int, length n_ids
        Every id the model sees, special tokens included.
    tokens : list of str, length n_ids
        Display string of each id (the text it covers; the token string for specials).
    offsets : list of (int, int), length n_ids
        Character span of each id in ``text``; ``(0, 0)`` for special tokens.
    special : bool ndarray of shape (n_ids,)
        True for special tokens, which are never players.
    players : list of int ndarray
        Player j -> the indices into ``input_ids`` it covers.
    names : list of str
        Display name of each player (the text it covers).
    granularity : str
    """

    text: str
    input_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    special: np.ndarray
    players: list[np.ndarray]
    names: list[str]
    granularity: str = "token"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_players(self) -> int:
        return len(self.players)

    @property
    def n_ids(self) -> int:
        return len(self.input_ids)

    def present_ids(self, coalition: np.ndarray) -> np.ndarray:
        """Which ids are present for a coalition of players: bool (n_ids,); specials always are."""
        keep = self.special.copy()
        for j in np.flatnonzero(np.asarray(coalition, dtype=bool)):
            keep[self.players[j]] = True
        return keep

    def membership(self) -> np.ndarray:
        """Bool (n_players, n_ids): player j covers id t."""
        M = np.zeros((self.n_players, self.n_ids), dtype=bool)
        for j, idx in enumerate(self.players):
            M[j, idx] = True
        return M


def context_length(tokenizer: Any, model: Any = None, max_length: int | None = None) -> int | None:
    """The longest input (in ids) the model takes: ``max_length``, else the smaller of
    ``tokenizer.model_max_length`` and ``model.config.max_position_embeddings`` (or
    ``n_positions``) where known; None when nothing says."""
    if max_length is not None:
        return int(max_length)
    limits = []
    mml = getattr(tokenizer, "model_max_length", None)
    if isinstance(mml, int) and 0 < mml < _NO_LIMIT:
        limits.append(mml)
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
            break
    return min(limits) if limits else None


def _check_tokenizer(tokenizer: Any) -> None:
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise InvalidParameterError(
            f"tokenizer= must be a Hugging Face tokenizer (callable, with "
            f"convert_ids_to_tokens), got {type(tokenizer).__name__}. Pass "
            "tokenizer=AutoTokenizer.from_pretrained(...)."
        )


def _as_texts(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    try:
        out = list(texts)
    except TypeError:
        out = None
    if out is None or not all(isinstance(t, str) for t in out):
        raise InvalidInputError(
            f"texts must be a string or a sequence of strings, got {type(texts).__name__}."
        )
    if not out:
        raise InvalidInputError("no texts given: pass at least one string.")
    return out


def _special_ids(tokenizer: Any) -> set[int]:
    ids = getattr(tokenizer, "all_special_ids", None) or []
    return {int(i) for i in ids}


def tokenize(
    texts: str | Sequence[str],
    tokenizer: Any,
    *,
    granularity: str = "token",
    max_length: int | None = None,
    truncate: bool = False,
    add_special_tokens: bool = True,
    model: Any = None,
) -> list[TokenizedText]:
    """Tokenise texts and split them into players.

    Parameters
    ----------
    texts : str or sequence of str, length n
    tokenizer : Hugging Face tokenizer
        Fast tokenizers give exact character offsets (``return_offsets_mapping``); for slow
        ones every token is its own word and sentences are not available.
    granularity : {"token", "word", "sentence"}
        What a player is (see the module docstring for the word and sentence rules).
    max_length : int, optional
        Longest input in ids; default the model's context (:func:`context_length`).
    truncate : bool
        Cut texts longer than ``max_length`` instead of refusing them.
    add_special_tokens : bool
        Let the tokenizer add its special tokens (they are never players).
    model : optional
        The model, whose ``config.max_position_embeddings`` bounds the context.

    Returns
    -------
    list of TokenizedText, length n

    Raises
    ------
    InvalidInputError
        An empty (or whitespace-only) text, a text without any non-special token, or a text
        longer than the context without ``truncate=True``.
    """
    _check_tokenizer(tokenizer)
    if granularity not in GRANULARITIES:
        raise InvalidParameterError(
            f"granularity={granularity!r} is not one of {list(GRANULARITIES)}."
        )
    items = _as_texts(texts)
    limit = context_length(tokenizer, model, max_length)
    specials = _special_ids(tokenizer)
    fast = bool(getattr(tokenizer, "is_fast", False))
    rows = []
    for i, text in enumerate(items):
        if not text.strip():
            raise InvalidInputError(
                f"text {i} is empty (or only whitespace): there is nothing to attribute to. "
                "Remove it or pass a text with at least one word."
            )
        kw: dict[str, Any] = {"add_special_tokens": add_special_tokens}
        if fast:
            kw["return_offsets_mapping"] = True
        enc = tokenizer(text, **kw)
        ids = [int(t) for t in enc["input_ids"]]
        if limit is not None and len(ids) > limit:
            if not truncate:
                raise InvalidInputError(
                    f"text {i} is {len(ids)} tokens long, longer than the model's context of "
                    f"{limit} tokens. Shorten it, or pass truncate=True to keep its first "
                    f"{limit} tokens."
                )
            kw.update(truncation=True, max_length=limit)
            enc = tokenizer(text, **kw)
            ids = [int(t) for t in enc["input_ids"]]
        if fast:
            offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
            mask = enc.get("special_tokens_mask") if hasattr(enc, "get") else None
        else:
            offsets = [(0, 0)] * len(ids)
            mask = None
        special = np.array([t in specials for t in ids], dtype=bool)
        if mask is not None and len(mask) == len(ids):
            special |= np.asarray(mask, dtype=bool)
        raw = tokenizer.convert_ids_to_tokens(ids)
        tokens = []
        for t, (a, b), s, r in zip(ids, offsets, special, raw, strict=True):
            if s:
                tokens.append(str(r))
            elif b > a:
                tokens.append(text[a:b])
            else:
                tokens.append(str(tokenizer.decode([t])))
        offsets = [(0, 0) if s else o for o, s in zip(offsets, special, strict=True)]
        if special.all():
            raise InvalidInputError(
                f"text {i} ({text!r}) tokenises to special tokens only: there is nothing to "
                "attribute to."
            )
        players, names = _players(text, tokens, offsets, special, granularity, fast)
        rows.append(
            TokenizedText(
                text=text,
                input_ids=ids,
                tokens=tokens,
                offsets=offsets,
                special=special,
                players=players,
                names=names,
                granularity=granularity,
            )
        )
    return rows


def _players(
    text: str,
    tokens: list[str],
    offsets: list[tuple[int, int]],
    special: np.ndarray,
    granularity: str,
    fast: bool,
) -> tuple[list[np.ndarray], list[str]]:
    real = [t for t in range(len(tokens)) if not special[t]]
    if granularity == "token":
        return [np.array([t]) for t in real], [tokens[t] for t in real]
    if granularity == "sentence" and not fast:
        raise InvalidParameterError(
            "granularity='sentence' needs a fast tokenizer (character offsets); load it with "
            "AutoTokenizer.from_pretrained(..., use_fast=True) or use granularity='word'."
        )
    if granularity == "word":
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    else:
        spans, start = [], 0
        for m in _SENTENCE_END.finditer(text):
            spans.append((start, m.end()))
            start = m.end()
        if text[start:].strip():
            spans.append((start, len(text)))
    groups: list[list[int]] = []
    keys: list[int | None] = []
    prev_special = True
    for t in range(len(tokens)):
        if special[t]:
            prev_special = True
            continue
        a, b = offsets[t]
        key = _span_of(spans, a, b) if b > a else None
        if key is None or prev_special or not keys or keys[-1] != key:
            groups.append([t])
            keys.append(key)
        else:
            groups[-1].append(t)
        prev_special = False
    names = []
    for g in groups:
        a, b = offsets[g[0]][0], offsets[g[-1]][1]
        names.append(text[a:b].strip() if b > a else "".join(tokens[t] for t in g))
    return [np.array(g) for g in groups], names


def _span_of(spans: list[tuple[int, int]], a: int, b: int) -> int | None:
    """Index of the span holding most of [a, b) (a leading space of a BPE token lies outside)."""
    best, best_overlap = None, 0
    for k, (s, e) in enumerate(spans):
        if s >= b:
            break
        overlap = min(b, e) - max(a, s)
        if overlap > best_overlap:
            best, best_overlap = k, overlap
    return best


def text_explanation(
    rows: list[TokenizedText],
    values: list[np.ndarray],
    *,
    base_values: Any,
    predictions: Any,
    output_names: Sequence[str] | None,
    std: list[np.ndarray] | None = None,
    method: str,
    params: dict[str, Any],
    meta: dict[str, Any] | None = None,
    n_evals: int | None = None,
    random_state: int | None = None,
) -> Explanation:
    """One ragged Explanation, one row per text.

    Parameters
    ----------
    rows : list of TokenizedText, length n
    values : list of arrays, ``values[i]`` of shape (n_players_i,) (or (n_players_i, k))
    base_values, predictions : array of shape (n,) (or (n, k))
        Value of the empty coalition and of the whole text.
    output_names : list of str, optional
    std : list of arrays like ``values``, optional
    method : str
    params : dict
        JSON-serialisable parameters (granularity, masker, value, target, ...).
    meta : dict, optional
        Extra information; ``tokens``, ``input_ids``, ``offsets``, ``players`` (lists of id
        indices) and ``texts`` are added, one entry per row (``meta["row_keys"]``).

    Returns
    -------
    Explanation
        ``values[i]`` one value per player of text i, ``feature_names[i] = data[i] =
        rows[i].names``.
    """
    vals = [np.asarray(v, dtype=float) for v in values]
    for i, (r, v) in enumerate(zip(rows, vals, strict=True)):
        if v.shape[0] != r.n_players:
            raise InvalidInputError(
                f"text {i} has {r.n_players} players but {v.shape[0]} values were given."
            )
    per_row = {
        "texts": [r.text for r in rows],
        "tokens": [list(r.tokens) for r in rows],
        "input_ids": [list(r.input_ids) for r in rows],
        "offsets": [[list(o) for o in r.offsets] for r in rows],
        "players": [[p.tolist() for p in r.players] for r in rows],
    }
    m = dict(meta or {})
    m.update(per_row)
    m["row_keys"] = sorted({*m.get("row_keys", []), *per_row})
    p = {"method": method, **params}
    if "target" not in p:  # every text explainer records what it explained
        found = m.get("targets", m.get("target"))
        if found is not None:
            flat = [_plain(t) for t in found]
            p["target"] = flat[0] if all(t == flat[0] for t in flat) else flat
    if output_names is None and p.get("target") is not None and not isinstance(p["target"], list):
        output_names = [str(p["target"])]
    params = p
    return Explanation(
        vals,
        base_values,
        data=[list(r.names) for r in rows],
        feature_names=[list(r.names) for r in rows],
        output_names=list(output_names) if output_names is not None else None,
        std=[np.asarray(s, dtype=float) for s in std] if std is not None else None,
        predictions=predictions,
        method=method,
        params={**params, "granularity": rows[0].granularity if rows else "token"},
        n_evals=n_evals,
        random_state=random_state,
        meta=m,
    )


def _plain(t: Any) -> Any:
    """A target as a plain Python value (a one-element list unwrapped, numpy scalars as
    Python numbers), for params."""
    if isinstance(t, (list, tuple)) and len(t) == 1:
        t = t[0]
    if hasattr(t, "item") and getattr(t, "ndim", 1) == 0:
        return t.item()
    if isinstance(t, np.ndarray):
        return t.tolist()
    return t
