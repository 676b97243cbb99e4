"""The token game of one text: players are tokens, words or sentences of a tokenised text.

A coalition keeps its players' tokens (and every special token); the absent ones are

- ``"drop"``: removed from the input (the natural absence for causal LMs: the model sees the
  shorter text),
- ``"mask"``: replaced by the tokenizer's mask token (BERT-style models),
- ``"pad"``: replaced by the pad token (still attended to, as Captum's ``TextTokenInput``
  baselines are),
- a baseline string: replaced by its token when it is one token, or position by position by
  the tokens of a baseline text with as many (non-special) tokens as the text.

The worth of a coalition is read from the model:

- sequence classifiers (``logits`` of shape (batch, n_classes)): the probability, logit or
  log-probability of the target class(es), ``value="prob" | "logit" | "logprob"``;
- causal LMs (``can_generate()``): the log-probability of the target continuation, summed over
  its tokens (``value="logprob"``), or its probability (``value="prob"``), computed as
  Captum's ``LLMAttribution`` does: the continuation appended to the (masked) text, one
  forward pass, teacher forcing. A one-token target is the next-token log-probability.

Model calls are batched (``batch_size`` coalitions per forward pass) with right padding and an
attention mask, so values do not depend on the batch size or on padding. For causal LMs with
``"drop"`` the tokens before the first absent token are the same as in the full text: their
keys and values are computed once (one forward pass of the longest shared prefix of a batch)
and reused through ``past_key_values`` for every coalition of the batch.

torch is imported only when a game is evaluated.

References
----------
Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS. (Text maskers of the ``shap`` package.)

Kokhlikyan, N. et al. (2020). Captum: a unified and generic model interpretability library for
PyTorch. arXiv:2009.07896. (``LLMAttribution``: the value of a target continuation.)

Goldshmidt, R. and Horovicz, M. (2024). TokenSHAP: interpreting large language models with
Monte Carlo Shapley value estimation. arXiv:2407.10114.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, ModelCallError, UnsupportedModelError
from .game import BaseGame

if TYPE_CHECKING:
    from ..text.tokens import TokenizedText

__all__ = [
    "MASKERS",
    "VALUES",
    "TextGame",
    "default_masker",
    "model_kind",
    "resolve_text_target",
]

MASKERS = ("mask", "pad", "drop")
VALUES = ("prob", "logit", "logprob")
DEFAULT_BATCH_SIZE = 32


def _torch() -> Any:
    from ..errors import MissingDependencyError

    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is there in the llm extra
        raise MissingDependencyError("torch", "torch", "text games") from err
    return torch


def default_masker(kind: str, tokenizer: Any) -> str:
    """``"drop"`` for causal LMs; for classifiers ``"mask"`` where the tokenizer has a mask
    token, else ``"pad"`` where it has a pad token, else ``"drop"``."""
    if kind == "causal":
        return "drop"
    for name in ("mask", "pad"):
        if getattr(tokenizer, f"{name}_token_id", None) is not None:
            return name
    return "drop"


def model_kind(model: Any) -> str:
    """``"causal"`` for generative (causal) LMs, ``"classifier"`` for sequence classifiers.

    Raises
    ------
    UnsupportedModelError
        For anything else (a masked LM, a bare encoder, a non-torch object).
    """
    can = getattr(model, "can_generate", None)
    try:
        generative = bool(can()) if callable(can) else False
    except Exception:  # a model that cannot say is not generative
        generative = False
    name = type(model).__name__
    if generative or name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal"
    if "ForSequenceClassification" in name or (
        getattr(getattr(model, "config", None), "num_labels", None) is not None
        and "Classification" in name
    ):
        return "classifier"
    raise UnsupportedModelError(
        f"{name} is neither a causal LM (a model whose can_generate() is True, e.g. "
        "AutoModelForCausalLM) nor a sequence classifier (AutoModelForSequenceClassification); "
        "text games need one of the two. Load the model with one of those heads."
    )


def resolve_text_target(
    model: Any, tokenizer: Any, target: Any, kind: str | None = None
) -> tuple[list[int], list[str]]:
    """The target as ids and display names.

    Classifiers: class index / label (``config.label2id``) or a list of them -> class indices.
    Causal LMs: a token id, or a continuation string -> its token ids (without special tokens);
    ``None`` is resolved later (the model's own next token).

    Raises
    ------
    InvalidParameterError
        A class out of range, a string target on a classifier (a generation target on a
        non-generative model), a token id outside the vocabulary, a continuation that the
        tokenizer cannot spell (empty, or unknown tokens).
    """
    kind = kind or model_kind(model)
    cfg = getattr(model, "config", None)
    if kind == "classifier":
        n_classes = int(getattr(cfg, "num_labels", 0) or 0)
        label2id = {str(k): int(v) for k, v in (getattr(cfg, "label2id", None) or {}).items()}
        id2label = {int(k): str(v) for k, v in (getattr(cfg, "id2label", None) or {}).items()}
        items = target if isinstance(target, (list, tuple)) else [target]
        if target is None:
            raise InvalidParameterError(
                f"target= is required for a sequence classifier: a class index in "
                f"0..{n_classes - 1} or a label in {sorted(label2id)}."
            )
        out = []
        for t in items:
            if isinstance(t, str):
                if t in label2id:
                    out.append(label2id[t])
                    continue
                raise InvalidParameterError(
                    f"target={t!r} is text to generate, but {type(model).__name__} is a "
                    f"sequence classifier, which does not generate; pass a class index in "
                    f"0..{n_classes - 1} or one of its labels {sorted(label2id)}, or explain a "
                    "causal LM (AutoModelForCausalLM) for a continuation target."
                )
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
                raise InvalidParameterError(
                    f"target={t!r}: a classifier's target is a class index or label."
                )
            if not 0 <= int(t) < n_classes:
                raise InvalidParameterError(
                    f"target class {int(t)} is out of range: the model has {n_classes} classes "
                    f"(0..{n_classes - 1})."
                )
            out.append(int(t))
        return out, [id2label.get(c, f"class {c}") for c in out]
    vocab = _vocab_size(model, tokenizer)
    if target is None:
        return [], []
    if isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_)):
        if not 0 <= int(target) < vocab:
            raise InvalidParameterError(
                f"target token id {int(target)} is not in the vocabulary (ids 0..{vocab - 1}); "
                "pass a token id of the tokenizer or a continuation string."
            )
        return [int(target)], [str(tokenizer.decode([int(target)]))]
    if isinstance(target, str):
        ids = [int(i) for i in tokenizer(target, add_special_tokens=False)["input_ids"]]
        unk = getattr(tokenizer, "unk_token_id", None)
        if not ids:
            raise InvalidParameterError(
                f"target={target!r} tokenises to no tokens; pass a non-empty continuation."
            )
        bad = [i for i in ids if i >= vocab or (unk is not None and i == unk)]
        if bad:
            raise InvalidParameterError(
                f"target={target!r} contains text not in the tokenizer's vocabulary (it "
                f"tokenises to {tokenizer.convert_ids_to_tokens(ids)}, with the unknown token "
                "or ids outside the model's vocabulary); pass a continuation the tokenizer can "
                "spell, or a token id."
            )
        return ids, [target]
    raise InvalidParameterError(
        f"target={target!r}: a causal LM's target is a token id, a continuation string, or "
        "None for the model's own next token."
    )


def _vocab_size(model: Any, tokenizer: Any) -> int:
    v = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(v) if v else len(tokenizer)


def _masker_ids(masker: Any, tokenizer: Any, row: Any) -> tuple[str, np.ndarray | None]:
    """(kind, replacement id per position of the text) for a masker."""
    n = len(row.input_ids)
    if masker == "drop":
        return "drop", None
    if masker in ("mask", "pad"):
        tid = getattr(tokenizer, f"{masker}_token_id", None)
        if tid is None:
            other = "masker='pad' or masker='drop'" if masker == "mask" else "masker='drop'"
            alt = (
                " or masker='mask'"
                if masker == "pad" and getattr(tokenizer, "mask_token_id", None) is not None
                else ""
            )
            raise InvalidParameterError(
                f"masker={masker!r} replaces absent tokens by the {masker} token, but this "
                f"tokenizer ({type(tokenizer).__name__}) has no {masker} token; use "
                f"{other}{alt}, or a baseline string."
            )
        return "replace", np.full(n, int(tid))
    if isinstance(masker, str):
        ids = [int(i) for i in tokenizer(masker, add_special_tokens=False)["input_ids"]]
        n_real = int((~row.special).sum())
        if len(ids) == 1:
            return "replace", np.full(n, ids[0])
        if len(ids) == n_real:
            rep = np.array(row.input_ids)
            rep[~row.special] = ids
            return "replace", rep
        raise InvalidParameterError(
            f"the baseline string {masker!r} is {len(ids)} tokens long; a baseline must be one "
            f"token (it replaces each absent token) or as many tokens as the text ({n_real}), "
            f"or masker must be one of {list(MASKERS)}."
        )
    raise InvalidParameterError(
        f"masker={masker!r} is not one of {list(MASKERS)} or a baseline string."
    )


class TextGame(BaseGame):
    """The game of one tokenised text on a sequence classifier or causal LM.

    Parameters
    ----------
    model : transformers model (torch)
        A sequence classifier or a causal LM (see :func:`model_kind`), in eval mode.
    row : :class:`whybox.text.tokens.TokenizedText`
        The text and its players.
    tokenizer : Hugging Face tokenizer
    target : see :func:`resolve_text_target`
        For a causal LM, ``None`` is the model's own greedy generation after the full text
        (``max_new_tokens``).
    masker : {"mask", "pad", "drop"} or str, optional
        How absent tokens are represented (module docstring); default
        :func:`default_masker`.
    value : {"prob", "logit", "logprob"} or callable, optional
        Default ``"prob"`` for classifiers, ``"logprob"`` for causal LMs. Classifiers: of the target class(es). Causal LMs: ``"logprob"`` (sum over the
        continuation's tokens) or ``"prob"`` (its exponential); ``"logit"`` only for a one-token
        target. A callable gets, per batch, the classifier's logits (m, n_classes) or the
        causal LM's target-token log-probabilities (m, T), as numpy, and returns (m,) or (m, k).
    batch_size : int
        Coalitions per forward pass.
    max_new_tokens : int
        Causal LMs with ``target=None``: the target is the model's greedy generation of this
        many tokens after the full text (stopping early at the EOS token); 1 is the next token.
    kv_cache : bool
        For causal LMs with ``"drop"``: reuse the keys and values of the shared prefix.
    cache : bool
        Remember evaluated coalitions (:class:`~whybox.games.game.BaseGame`).

    Attributes
    ----------
    n_players, player_names : the row's players
    target_ids, output_names : the resolved target
    n_forward : int
        Forward passes run so far (prefix passes included).
    """

    def __init__(
        self,
        model: Any,
        row: TokenizedText,
        *,
        tokenizer: Any,
        target: Any = None,
        masker: Any = None,
        value: str | Callable[[np.ndarray], np.ndarray] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        kv_cache: bool = True,
        max_new_tokens: int = 1,
        cache: bool = True,
    ) -> None:
        super().__init__(len(row.players), row.names, cache=cache)
        self.model = model
        self.row = row
        self.tokenizer = tokenizer
        self.kind = model_kind(model)
        if value is None:
            value = "logprob" if self.kind == "causal" else "prob"
        if not callable(value) and value not in VALUES:
            raise InvalidParameterError(
                f"value={value!r} is not one of {list(VALUES)} or a callable."
            )
        self.value_kind = value
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.batch_size = int(batch_size)
        if masker is None:
            masker = default_masker(self.kind, tokenizer)
        self.masker = masker
        self.masker_kind, self._replacement = _masker_ids(masker, tokenizer, row)
        self.kv_cache = bool(kv_cache)
        self.n_forward = 0
        self._ids = np.asarray(row.input_ids, dtype=np.int64)
        self._membership = row.membership()
        self.target_ids, self.output_names = resolve_text_target(
            model, tokenizer, target, self.kind
        )
        if self.kind == "causal":
            if value == "logit" and len(self.target_ids) > 1:
                raise InvalidParameterError(
                    "value='logit' is defined for a one-token target; a continuation of "
                    f"{len(self.target_ids)} tokens takes value='logprob' or 'prob'."
                )
            if not self.target_ids:  # the model's own (greedy) generation after the full text
                self.target_ids = self._generate(int(max_new_tokens))
                self.output_names = [str(tokenizer.decode(self.target_ids))]

    def _generate(self, max_new_tokens: int) -> list[int]:
        """Greedy decoding from the full text (teacher-forced forward passes, no sampling)."""
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise InvalidParameterError(
                f"max_new_tokens must be a positive int, got {max_new_tokens!r}."
            )
        seq = list(self._ids) or [self._start_id()]
        eos = getattr(self.tokenizer, "eos_token_id", None)
        out: list[int] = []
        for _ in range(int(max_new_tokens)):
            tid = int(np.argmax(self._forward_plain([np.asarray(seq)])[0][-1]))
            out.append(tid)
            seq.append(tid)
            if eos is not None and tid == eos:
                break
        return out

    def _start_id(self) -> int:
        start = _start_token(self.tokenizer)
        if start is None:
            raise InvalidInputError(
                "the empty coalition leaves the causal LM no token to start from and the "
                "tokenizer has neither a BOS nor an EOS token; use masker='pad' or a "
                "baseline string instead of 'drop'."
            )
        return start

    # ----------------------------------------------------------------- inputs
    def sequences(self, coalitions: np.ndarray) -> list[np.ndarray]:
        """The ids the model sees for each coalition (before the continuation)."""
        present = (coalitions.astype(np.int64) @ self._membership.astype(np.int64)) > 0
        present |= self.row.special[None, :]
        out = []
        for keep in present:
            if self.masker_kind == "drop":
                seq = self._ids[keep]
            else:
                seq = np.where(keep, self._ids, self._replacement)
            out.append(seq)
        return out

    # ----------------------------------------------------------------- model calls
    def _device(self) -> Any:
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return "cpu"

    def _call(self, **inputs: Any) -> Any:
        torch = _torch()
        try:
            with torch.no_grad():
                return self.model(**inputs)
        except Exception as err:  # re-raised with context
            raise ModelCallError(
                f"{type(self.model).__name__} raised while whybox evaluated the text game: "
                f"{type(err).__name__}: {err}"
            ) from err

    def _pad_batch(self, seqs: Sequence[np.ndarray]) -> tuple[Any, Any, list[int]]:
        torch = _torch()
        lens = [len(s) for s in seqs]
        L = max(lens)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        pad = 0 if pad is None else int(pad)
        ids = np.full((len(seqs), L), pad, dtype=np.int64)
        mask = np.zeros((len(seqs), L), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        dev = self._device()
        return torch.as_tensor(ids, device=dev), torch.as_tensor(mask, device=dev), lens

    def _forward_plain(self, seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Logits of each sequence (right-padded batch): list of (len_i, vocab) or (k,)."""
        ids, mask, lens = self._pad_batch(seqs)
        out = self._call(input_ids=ids, attention_mask=mask)
        self.n_forward += 1
        logits = out.logits.detach().to("cpu").double().numpy()
        if self.kind == "classifier":
            return list(logits)
        return [logits[i, : lens[i]] for i in range(len(seqs))]

    def _with_start(self, seq: np.ndarray) -> np.ndarray:
        if len(seq) == 0:
            return np.array([self._start_id()], dtype=np.int64)
        return seq

    def _target_logprobs(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Log-probabilities (or logits) of the target tokens after each sequence: (m, T)."""
        tgt = np.asarray(self.target_ids, dtype=np.int64)
        T = len(tgt)
        seqs = [self._with_start(s) for s in seqs]
        full = [np.concatenate([s, tgt[:-1]]) for s in seqs]
        prefix = 0
        if self.kv_cache and self.masker_kind == "drop":
            prefix = _shared_prefix(seqs, self._ids)
        if prefix >= 1:
            rows = self._forward_cached(full, prefix)
            rows = [r[len(s) - 1 - prefix :] for r, s in zip(rows, seqs, strict=True)]
        else:
            rows = [r[len(s) - 1 :] for r, s in zip(self._forward_plain(full), seqs, strict=True)]
        out = np.empty((len(seqs), T))
        for i, r in enumerate(rows):
            r = r[:T]
            if self.value_kind == "logit":
                out[i] = r[np.arange(T), tgt]
            else:
                lse = _logsumexp(r)
                out[i] = r[np.arange(T), tgt] - lse
        return out

    def _forward_cached(self, full: list[np.ndarray], prefix: int) -> list[np.ndarray]:
        """Logits of each sequence after position ``prefix`` (exclusive), the first
        ``prefix`` ids' keys and values computed once and shared."""
        torch = _torch()
        dev = self._device()
        head = torch.as_tensor(full[0][None, :prefix], device=dev)
        out = self._call(input_ids=head, attention_mask=torch.ones_like(head), use_cache=True)
        self.n_forward += 1
        past = out.past_key_values
        m = len(full)
        if m > 1:
            past.batch_repeat_interleave(m)
        ids, mask, lens = self._pad_batch([s[prefix:] for s in full])
        attn = torch.cat([torch.ones((m, prefix), dtype=mask.dtype, device=dev), mask], dim=1)
        L = ids.shape[1]
        pos = torch.arange(prefix, prefix + L, device=dev)
        res = self._call(
            input_ids=ids,
            attention_mask=attn,
            past_key_values=past,
            use_cache=True,
            cache_position=pos,
            position_ids=pos[None, :].expand(m, L),
        )
        self.n_forward += 1
        logits = res.logits.detach().to("cpu").double().numpy()
        return [logits[i, : lens[i]] for i in range(m)]

    # ----------------------------------------------------------------- values
    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        seqs = self.sequences(coalitions)
        order = np.arange(len(seqs))
        if self.kind == "causal" and self.kv_cache and self.masker_kind == "drop":
            # batch coalitions with long shared prefixes together (stable: deterministic)
            own = np.array([_shared_prefix([s], self._ids) for s in seqs])
            order = np.argsort(-own, kind="stable")
        out = []
        for start in range(0, len(seqs), self.batch_size):
            idx = order[start : start + self.batch_size]
            out.append(np.asarray(self._evaluate_batch([seqs[i] for i in idx]), dtype=float))
        values = np.concatenate(out, axis=0)
        result = np.empty_like(values)
        result[order] = values
        return result

    def _evaluate_batch(self, seqs: list[np.ndarray]) -> np.ndarray:
        if self.kind == "classifier":
            logits = np.stack(self._forward_plain(seqs))
            if callable(self.value_kind):
                return np.asarray(self.value_kind(logits), dtype=float)
            cls = np.asarray(self.target_ids)
            if self.value_kind == "logit":
                return logits[:, cls]
            logp = logits - _logsumexp(logits)[:, None]
            return logp[:, cls] if self.value_kind == "logprob" else np.exp(logp[:, cls])
        lp = self._target_logprobs(seqs)
        if callable(self.value_kind):
            return np.asarray(self.value_kind(lp), dtype=float)
        total = lp.sum(axis=1)
        return np.exp(total) if self.value_kind == "prob" else total


def _logsumexp(a: np.ndarray) -> np.ndarray:
    mx = a.max(axis=-1, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis=-1, keepdims=True)))[..., 0]


def _start_token(tokenizer: Any) -> int | None:
    for key in ("bos_token_id", "eos_token_id"):
        v = getattr(tokenizer, key, None)
        if v is not None:
            return int(v)
    return None


def _shared_prefix(seqs: list[np.ndarray], ids: np.ndarray) -> int:
    """Length of the prefix of the full text that every sequence starts with, leaving at
    least the last token of each sequence's text part to the suffix."""
    p = min(len(s) for s in seqs) - 1
    if p <= 0:
        return 0
    for s in seqs:
        n = min(p, len(ids))
        same = s[:n] == ids[:n]
        p = n if same.all() else int(np.argmin(same))
        if p == 0:
            return 0
    return p
