"""A two-layer attention-only transformer that forms induction heads (Olsson et al. 2022).

:func:`induction_model` trains (about 40 s on one CPU core, once per machine: the weights are
cached as safetensors) or loads a real Hugging Face ``LlamaForCausalLM`` with two layers of
four heads and **no MLP**: its ``intermediate_size`` is 0, so each block's MLP maps to an empty
hidden layer and adds exact zeros to the residual stream. The forward pass is attention only,
the model is an unmodified ``transformers`` class (``save_pretrained`` / ``from_pretrained``
round-trip it), and every method that finds a Llama's parts finds this one's::

    model.embed_tokens                     Embedding(64, 64)
    model.layers.{0,1}.input_layernorm     RMSNorm(64)
    model.layers.{0,1}.self_attn           q_proj, k_proj, v_proj, o_proj: 4 heads of 16, RoPE
    model.layers.{0,1}.mlp                 intermediate size 0: adds zeros
    model.norm                             RMSNorm(64)
    lm_head                                Linear(64, 64)

It is trained on random tokens (vocabulary 64, length 48) in which a random segment of length
4-24 is repeated once at a random place, so the only thing to learn is in-context copying; the
segment length varies, so no fixed positional offset solves it. Past a phase change (near
step 550) the loss on the repeated segment drops from ln 64 = 4.16 nats to below 1, and the
mechanism Olsson et al. describe appears: a *previous-token head* in layer 0 and *induction
heads* in layer 1 that attend, from a token, to the token that followed its previous
occurrence. :func:`induction_scores` measures both on :func:`repeated_tokens`.

References
----------
Olsson, C. et al. (2022). In-context Learning and Induction Heads. Transformer Circuits
Thread. https://transformer-circuits.pub/2022/in-context-learning-and-induction-heads/
Elhage, N. et al. (2021). A Mathematical Framework for Transformer Circuits. Transformer
Circuits Thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.zoo._training import check_flag, quiet_build, require, training_scope
from whybox.zoo.cache import cached_model

__all__ = [
    "InductionInfo",
    "InductionScores",
    "attention_patterns",
    "induction_model",
    "induction_scores",
    "prefix_matching_score",
    "previous_token_score",
    "repeated_tokens",
]

_VERSION = "1"  # bump when the architecture or the training recipe changes
_FEATURE = "the induction-head toy model"

#: The architecture: a Llama with two attention-only layers (``intermediate_size=0``).
ARCHITECTURE = {
    "vocab_size": 64,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
}


@dataclass(frozen=True)
class InductionScores:
    """Per-head attention scores and in-context losses on repeated random tokens.

    Attributes
    ----------
    prefix_matching : ndarray of shape (n_layers, n_heads)
        Mean attention, from each token of the second copy, to the token that followed its
        first occurrence (:func:`prefix_matching_score`).
    previous_token : ndarray of shape (n_layers, n_heads)
        Mean attention from each position to the one before it (:func:`previous_token_score`).
    first_half_loss, second_half_loss : float
        Mean next-token cross-entropy (nats) on the tokens of the first copy and of the second
        copy (the first token of each copy, unpredictable, left out of both).
    seq_len : int
        Length of the repeated segment; the sequences are ``2 * seq_len`` long.
    """

    prefix_matching: np.ndarray
    previous_token: np.ndarray
    first_half_loss: float
    second_half_loss: float
    seq_len: int

    def top(self, kind: str = "prefix_matching", k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` highest-scoring heads as ``("L1.H2", score)``, best first.

        ``kind`` is ``"prefix_matching"`` or ``"previous_token"``.
        """
        if kind not in ("prefix_matching", "previous_token"):
            raise InvalidParameterError(
                f"kind must be 'prefix_matching' or 'previous_token', got {kind!r}."
            )
        k = check_int("k", k, minimum=1)
        scores = getattr(self, kind)
        order = np.argsort(-scores, axis=None, kind="stable")[:k]
        n_heads = scores.shape[1]
        return [(f"L{i // n_heads}.H{i % n_heads}", float(scores.flat[i])) for i in order]


@dataclass(frozen=True)
class InductionInfo:
    """What :func:`induction_model` trained and how the result scores.

    Attributes
    ----------
    config : dict
        The training settings (steps, batch, learning rate, data lengths) and architecture.
    scores : InductionScores
        :func:`induction_scores` of the returned model on the default evaluation tokens
        (64 sequences, segment length 20, seed 1).
    """

    config: dict[str, Any]
    scores: InductionScores = field(repr=False)


# ------------------------------------------------------------------ data


def repeated_tokens(n: int, seq_len: int, vocab: int = 64, seed: int = 0) -> Any:
    """Random token sequences repeated once: ``[x_0, ..., x_{L-1}, x_0, ..., x_{L-1}]``.

    Parameters
    ----------
    n : int
        Number of sequences.
    seq_len : int
        Length ``L`` of the random segment (>= 2).
    vocab : int, default 64
        Tokens are drawn uniformly from ``0 .. vocab - 1``.
    seed : int, default 0
        Seed of the draw (a private torch generator; the global RNG is untouched).

    Returns
    -------
    torch.LongTensor of shape (n, 2 * seq_len)

    Raises
    ------
    InvalidParameterError
        ``n`` below 1, ``seq_len`` below 2, ``vocab`` below 2 or a negative ``seed``.
    MissingDependencyError
        Without torch.

    Examples
    --------
    >>> import torch
    >>> ids = wb.zoo.repeated_tokens(2, 10)                 # 2 rows of [x, x], |x| = 10
    >>> tuple(ids.shape), torch.equal(ids[:, :10], ids[:, 10:])
    ((2, 20), True)

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads (repeated random
    tokens as the induction test).
    """
    torch = require("torch", "torch", _FEATURE)
    n = check_int("n", n, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=2)
    vocab = check_int("vocab", vocab, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, seq_len), generator=gen)
    return torch.cat([x, x], dim=1)


def _training_batch(torch: Any, gen: Any, batch: int, length: int, vocab: int, lo: int) -> Any:
    """Random tokens of ``length`` in which a segment of random length in [lo, length // 2]
    starting at a random place is followed by a copy of itself."""
    x = torch.randint(0, vocab, (batch, length), generator=gen)
    seg = torch.randint(lo, length // 2 + 1, (batch, 1), generator=gen)
    start = (torch.rand((batch, 1), generator=gen) * (length - 2 * seg + 1)).long()
    pos = torch.arange(length)[None, :]
    copy = (pos >= start + seg) & (pos < start + 2 * seg)
    return torch.gather(x, 1, torch.where(copy, pos - seg, pos))


# ------------------------------------------------------------------ scores


def _as_numpy(pattern: Any, name: str = "pattern") -> np.ndarray:
    if hasattr(pattern, "detach"):
        pattern = pattern.detach().to("cpu").float().numpy()
    arr = np.asarray(pattern, dtype=np.float64)
    if arr.ndim < 3 or arr.shape[-1] != arr.shape[-2]:
        raise InvalidInputError(
            f"{name} must be attention weights of shape (..., n_heads, q_pos, k_pos) with "
            f"q_pos == k_pos, got shape {arr.shape}. Pass e.g. the (batch, n_heads, pos, pos) "
            "pattern of one layer."
        )
    return arr


def prefix_matching_score(pattern: Any, seq_len: int, *, offset: int = 0) -> np.ndarray:
    """Each head's prefix-matching score on sequences ``[prefix, x, x]`` (Olsson et al. 2022).

    For a query at position ``q`` in the second copy (``offset + L <= q < offset + 2L``), the
    token that followed the previous occurrence of the current token sits at ``q - L + 1``;
    the score is the attention weight on that key, averaged over those queries and the batch.
    An induction head scores near 1; uniform causal attention scores about ``1 / q``.

    Parameters
    ----------
    pattern : array or tensor of shape (batch, n_heads, pos, pos) or (..., batch, n_heads, pos, pos)
        Attention weights (rows sum to 1), e.g. one layer of :func:`attention_patterns`.
    seq_len : int
        Length ``L`` of the repeated segment.
    offset : int, default 0
        Where the first copy starts (the length of a prefix such as a BOS token).

    Returns
    -------
    ndarray of shape (n_heads,) or (..., n_heads)
        The batch axis (the third from the end) is averaged out.

    Raises
    ------
    InvalidInputError
        A pattern whose last two axes are not square, or shorter than ``offset + 2 * seq_len``.
    InvalidParameterError
        ``seq_len`` below 2 or a negative ``offset``.

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()
    >>> pattern = wb.zoo.attention_patterns(model, wb.zoo.repeated_tokens(8, 10))
    >>> score = wb.zoo.prefix_matching_score(pattern, 10)   # (layers, heads)
    >>> score.shape, bool(score[1].min() > 0.3 > score[0].max())   # layer 1 does induction
    ((2, 4), True)

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads.
    """
    arr = _as_numpy(pattern)
    seq_len = check_int("seq_len", seq_len, minimum=2)
    offset = check_int("offset", offset, minimum=0)
    if arr.shape[-1] < offset + 2 * seq_len:
        raise InvalidInputError(
            f"the pattern covers {arr.shape[-1]} positions, fewer than offset + 2 * seq_len = "
            f"{offset + 2 * seq_len}; pass the seq_len (and offset) of the tokens it was run on."
        )
    q = np.arange(offset + seq_len, offset + 2 * seq_len)
    per_query = arr[..., q, q - seq_len + 1]  # (..., batch, n_heads, L)
    return per_query.mean(axis=-1).mean(axis=-2) if arr.ndim >= 4 else per_query.mean(axis=-1)


def previous_token_score(pattern: Any, *, start: int = 1) -> np.ndarray:
    """Each head's mean attention from position ``q`` to ``q - 1``, over ``q >= start``.

    Parameters
    ----------
    pattern : array or tensor of shape (batch, n_heads, pos, pos) or (..., batch, n_heads, pos, pos)
        Attention weights.
    start : int, default 1
        First query position counted (>= 1).

    Returns
    -------
    ndarray of shape (n_heads,) or (..., n_heads)
        The batch axis is averaged out.

    Raises
    ------
    InvalidInputError
        A pattern whose last two axes are not square (query, key).
    InvalidParameterError
        ``start`` outside ``1 .. pos - 1``.

    Examples
    --------
    >>> pattern = np.eye(5, k=-1)[None, None]           # one head, always the previous token
    >>> pattern[0, 0, 0, 0] = 1.0                       # (position 0 attends to itself)
    >>> wb.zoo.previous_token_score(pattern)
    array([1.])

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads (previous-token heads).
    """
    arr = _as_numpy(pattern)
    start = check_int("start", start, minimum=1, maximum=arr.shape[-1] - 1)
    q = np.arange(start, arr.shape[-1])
    per_query = arr[..., q, q - 1]
    return per_query.mean(axis=-1).mean(axis=-2) if arr.ndim >= 4 else per_query.mean(axis=-1)


def _run_with_attentions(torch: Any, model: Any, input_ids: Any) -> Any:
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if impl not in (None, "eager"):
        raise UnsupportedModelError(
            f"the model uses attn_implementation={impl!r}, which does not return attention "
            "weights. Load it with attn_implementation='eager' (from_pretrained(..., "
            "attn_implementation='eager')) or call model.set_attn_implementation('eager')."
        )
    with torch.no_grad():
        out = model(input_ids, output_attentions=True)
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts):
        raise UnsupportedModelError(
            f"{type(model).__name__} returned no attention weights for output_attentions=True; "
            "it needs a Hugging Face model with eager attention."
        )
    return out


def attention_patterns(model: Any, input_ids: Any) -> Any:
    """The attention weights of every layer of a Hugging Face model.

    Runs ``model(input_ids, output_attentions=True)`` under ``torch.no_grad``. The model must
    compute its attention weights explicitly (``attn_implementation="eager"``).

    Parameters
    ----------
    model : transformers model
        Loaded with ``attn_implementation="eager"``.
    input_ids : LongTensor of shape (batch, pos)
        Token ids, on the model's device.

    Returns
    -------
    torch.Tensor of shape (n_layers, batch, n_heads, pos, pos)

    Raises
    ------
    UnsupportedModelError
        If the model does not return attention weights (a fused SDPA / flash attention).

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()
    >>> pattern = wb.zoo.attention_patterns(model, wb.zoo.repeated_tokens(2, 10))
    >>> tuple(pattern.shape)                         # (layers, batch, heads, pos, pos)
    (2, 2, 4, 20, 20)
    >>> bool(pattern.sum(-1).sub(1).abs().max() < 1e-5)   # each row is a softmax
    True

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads.
    """
    torch = require("torch", "torch", _FEATURE)
    return torch.stack(list(_run_with_attentions(torch, model, input_ids).attentions))


def _half_losses(torch: Any, logits: Any, tokens: Any, seq_len: int) -> tuple[float, float]:
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]  # nll[:, t] predicts token t + 1
    first = nll[:, : seq_len - 1]  # tokens 1 .. L-1
    second = nll[:, seq_len : 2 * seq_len - 1]  # tokens L+1 .. 2L-1
    return float(first.mean()), float(second.mean())


def induction_scores(
    model: Any, *, seq_len: int = 20, n: int = 64, seed: int = 1, vocab: int | None = None
) -> InductionScores:
    """Prefix-matching and previous-token scores of every head, and the in-context loss.

    Parameters
    ----------
    model : transformers causal LM with eager attention
        E.g. :func:`induction_model`'s.
    seq_len : int, default 20
        Length of the repeated random segment.
    n : int, default 64
        Number of sequences.
    seed : int, default 1
        Seed of :func:`repeated_tokens` (the training data never used seed 1's draws).
    vocab : int, optional
        Token range; default the model's ``config.vocab_size``.

    Returns
    -------
    InductionScores
        ``prefix_matching`` and ``previous_token`` of shape (n_layers, n_heads), the losses of
        both copies.

    Raises
    ------
    InvalidParameterError
        No ``vocab`` and no ``config.vocab_size``; bad ``n`` / ``seq_len`` / ``seed``.
    UnsupportedModelError
        A model that does not return attention weights (load it with eager attention).

    Examples
    --------
    >>> model, _ = wb.zoo.induction_model()
    >>> s = wb.zoo.induction_scores(model)
    >>> s.prefix_matching.shape, s.second_half_loss < s.first_half_loss   # (layers, heads)
    ((2, 4), True)

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads.
    """
    torch = require("torch", "torch", _FEATURE)
    if vocab is None:
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab is None:
            raise InvalidParameterError("pass vocab=: the model has no config.vocab_size.")
    tokens = repeated_tokens(n, seq_len, vocab, seed)
    device = next(model.parameters()).device
    out = _run_with_attentions(torch, model, tokens.to(device))
    patterns = torch.stack(list(out.attentions))  # (n_layers, batch, n_heads, pos, pos)
    first, second = _half_losses(torch, out.logits.cpu(), tokens, seq_len)
    return InductionScores(
        prefix_matching=prefix_matching_score(patterns, seq_len),
        previous_token=previous_token_score(patterns),
        first_half_loss=first,
        second_half_loss=second,
        seq_len=seq_len,
    )


# ------------------------------------------------------------------ the model


def _llama_config(transformers: Any, arch: dict[str, Any]) -> Any:
    cfg = transformers.LlamaConfig(
        vocab_size=arch["vocab_size"],
        hidden_size=arch["hidden_size"],
        intermediate_size=0,  # no MLP: each block adds exact zeros after attention
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_attention_heads"],
        max_position_embeddings=arch["max_position_embeddings"],
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    cfg._attn_implementation = "eager"
    return cfg


def _build(transformers: Any, arch: dict[str, Any]) -> Any:
    with quiet_build():
        return transformers.LlamaForCausalLM(_llama_config(transformers, arch))


def _train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    torch = require("torch", "torch", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    with training_scope(torch, seed):
        model = _build(transformers, config["architecture"])
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(
            model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
        )
        warmup = config["warmup"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        model.train()
        for _ in range(config["steps"]):
            x = _training_batch(
                torch,
                gen,
                config["batch"],
                config["length"],
                config["architecture"]["vocab_size"],
                config["min_segment"],
            )
            loss = model(x, labels=x).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def induction_model(
    seed: int = 0,
    *,
    steps: int = 1200,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, InductionInfo]:
    """A two-layer attention-only ``LlamaForCausalLM`` with induction heads, trained or cached.

    Training: AdamW (learning rate 3e-3 after a 100-step linear warm-up, weight decay 0.01),
    batches of 64 sequences of 48 random tokens (vocabulary 64) holding one repeated segment
    of random length 4-24, next-token loss on every position, one CPU thread, seeded.

    Parameters
    ----------
    seed : int, default 0
        Seed of the initialisation and of the training data.
    steps : int, default 1200
        Optimiser steps. The induction phase change happens near step 550 for seed 0.
    cache : bool, default True
        Load the weights from the cache when present; store them after training.
    cache_dir : path, optional
        The cache folder (default: ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    model : transformers.LlamaForCausalLM
        On the CPU, float32, eval mode, ``attn_implementation="eager"`` (attention weights
        available to hooks and ``output_attentions``).
    info : InductionInfo
        The training settings and :func:`induction_scores` on 64 held-out repeated sequences.

    Raises
    ------
    MissingDependencyError
        If torch or transformers is not installed.
    InvalidParameterError
        For a negative seed or fewer than one step.

    Examples
    --------
    >>> model, info = wb.zoo.induction_model()            # ~1 min the first time, then cached
    >>> model.config.num_hidden_layers, model.config.num_attention_heads
    (2, 4)
    >>> scores = wb.zoo.induction_scores(model)
    >>> bool(scores.prefix_matching[1].max() > 0.5)       # a layer-1 head copies the prefix
    True

    References
    ----------
    Olsson, C. et al. (2022). In-context Learning and Induction Heads.
    """
    torch = require("torch", "torch", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    seed = check_int("seed", seed, minimum=0)
    steps = check_int("steps", steps, minimum=1)
    cache = check_flag("cache", cache)
    config = {
        "architecture": dict(ARCHITECTURE),
        "steps": steps,
        "batch": 64,
        "length": 48,
        "min_segment": 4,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup": 100,
    }
    weights = cached_model(
        "induction_attn_only_2l",
        _train,
        config,
        seed,
        version=_VERSION,
        cache_dir=cache_dir,
        cache=cache,
    )
    with torch.random.fork_rng(devices=[]):
        model = _build(transformers, config["architecture"])
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    model.eval()
    return model, InductionInfo(config=config, scores=induction_scores(model))
