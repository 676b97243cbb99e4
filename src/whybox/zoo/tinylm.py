"""A small GPT-2 trained here on the Python documentation that ships with Python.

:func:`tiny_lm` returns a ``transformers.GPT2LMHeadModel`` and its tokenizer, loaded with
``from_pretrained`` from a local folder (:func:`tiny_lm_path`) that is built once per machine
and then reused: a byte-level BPE tokenizer trained with the ``tokenizers`` library and a
4-layer GPT-2 trained on one CPU thread, both saved with ``save_pretrained`` (safetensors
weights and JSON files, nothing pickled).

The text is ``pydoc_data.topics.topics``, the help topics of the standard library's
``pydoc`` (about 465,000 characters of the language reference): every Python install has it,
so nothing is downloaded. The topics are sorted by name and every tenth is held out
(:func:`tiny_lm_corpus`); the cache key includes a hash of the text, so another Python
version's documentation trains its own model.

Built in about 70 s on one CPU core (300 steps of 16 x 128 tokens, about 4 passes over the
119,000 training tokens), it reaches a held-out perplexity of 156 where a unigram model of the
same tokens has 588.

Use it for demos of the logit lens, probes and steering on a real ``transformers`` model with
an ordinary tokenizer, offline::

    model, tok = tiny_lm()
    ids = tok("The for statement is used to", return_tensors="pt").input_ids
    model(ids).logits            # (1, pos, vocab)

References
----------
Radford, A. et al. (2019). Language Models are Unsupervised Multitask Learners (GPT-2).
Sennrich, R., Haddow, B., & Birch, A. (2016). Neural Machine Translation of Rare Words with
Subword Units (BPE). ACL 2016.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from whybox._validation import check_int
from whybox.errors import InvalidParameterError
from whybox.zoo._training import check_flag, quiet_transformers, require, training_scope
from whybox.zoo.cache import cached_folder

__all__ = ["TINY_LM_ARCHITECTURE", "tiny_lm", "tiny_lm_corpus", "tiny_lm_path"]

_VERSION = "2"  # bump when the architecture, the tokenizer or the training recipe changes
_FEATURE = "the tiny GPT-2 language model"
_EOS = "<|endoftext|>"
_HELD_OUT_EVERY = 10

#: The GPT-2 configuration (transformers names) and the BPE vocabulary size.
TINY_LM_ARCHITECTURE = {
    "vocab_size": 2048,
    "n_positions": 128,
    "n_embd": 128,
    "n_layer": 4,
    "n_head": 4,
    "n_inner": 512,
}


def _topics() -> dict[str, str]:
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # pragma: no cover - part of the standard library
        raise InvalidParameterError(
            "this Python has no pydoc_data.topics (a stripped-down install), which the tiny "
            "language model is trained on; use a full CPython build."
        ) from exc
    return dict(topics)


def tiny_lm_corpus(split: str = "train") -> list[str]:
    """The documents the tiny LM is trained (``"train"``) or evaluated (``"test"``) on.

    ``pydoc_data.topics.topics`` sorted by topic name; every tenth topic (the 0th, 10th, ...)
    is held out as ``"test"``, the rest is ``"train"``.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        The training topics, or the held-out ones.

    Returns
    -------
    list of str
        One string per topic, in name order.

    Raises
    ------
    InvalidParameterError
        An unknown ``split``; a Python without ``pydoc_data.topics``.

    Examples
    --------
    >>> train, test = wb.zoo.tiny_lm_corpus("train"), wb.zoo.tiny_lm_corpus("test")
    >>> len(test) == (len(train) + len(test) + 9) // 10       # every tenth topic held out
    True
    >>> all(isinstance(doc, str) and doc for doc in train)
    True

    References
    ----------
    The Python Software Foundation, ``pydoc_data.topics`` (the standard library's help
    topics).
    """
    if split not in ("train", "test"):
        raise InvalidParameterError(f"split must be 'train' or 'test', got {split!r}.")
    topics = _topics()
    names = sorted(topics)
    held = set(names[::_HELD_OUT_EVERY])
    return [topics[n] for n in names if (n in held) == (split == "test")]


def _text_hash() -> str:
    topics = _topics()
    h = hashlib.sha256()
    for name in sorted(topics):
        h.update(name.encode())
        h.update(b"\0")
        h.update(topics[name].encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _train_tokenizer(vocab_size: int, max_length: int) -> Any:
    tokenizers = require("tokenizers", "llm", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    pre = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[_EOS],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_lm_corpus("train"), trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=_EOS,
        eos_token=_EOS,
        unk_token=_EOS,
        pad_token=_EOS,
        model_max_length=max_length,
    )


def _token_stream(torch: Any, tokenizer: Any, split: str) -> Any:
    """The documents of ``split`` tokenized and joined, each followed by the EOS token."""
    ids: list[int] = []
    for doc in tiny_lm_corpus(split):
        ids.extend(tokenizer(doc, add_special_tokens=False).input_ids)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def _held_out_loss(torch: Any, model: Any, stream: Any, length: int) -> float:
    """Mean next-token loss (nats) over the stream cut into windows of ``length``."""
    n = (stream.numel() - 1) // length
    x = stream[: n * length].view(n, length)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, 16):
            chunk = x[start : start + 16]
            logits = model(chunk).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).double(),
                chunk[:, 1:].reshape(-1),
                reduction="sum",
            )
            total += float(nll)
            count += chunk[:, 1:].numel()
    return total / count


def _build(config: dict[str, Any], seed: int, folder: Path) -> None:
    with quiet_transformers():
        _build_quietly(config, seed, folder)


def _build_quietly(config: dict[str, Any], seed: int, folder: Path) -> None:
    torch = require("torch", "torch", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    arch = config["architecture"]
    tokenizer = _train_tokenizer(arch["vocab_size"], arch["n_positions"])
    train_ids = _token_stream(torch, tokenizer, "train")
    test_ids = _token_stream(torch, tokenizer, "test")
    length, batch, steps = arch["n_positions"], config["batch"], config["steps"]
    gpt_config = transformers.GPT2Config(
        **arch,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with training_scope(torch, seed):
        model = transformers.GPT2LMHeadModel(gpt_config)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=config["lr"],
            weight_decay=config["weight_decay"],
            betas=(0.9, 0.95),
        )
        warmup = config["warmup"]

        def schedule(step: int) -> float:  # linear warm-up, cosine decay to 10 %
            return min(1.0, (step + 1) / warmup) * max(
                0.1, 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))
            )

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        offsets = torch.arange(length)
        model.train()
        losses = []
        for _ in range(steps):
            starts = torch.randint(0, train_ids.numel() - length, (batch,), generator=gen)
            x = train_ids[starts[:, None] + offsets]
            loss = model(x, labels=x).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        held_out = _held_out_loss(torch, model, test_ids, length)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = {
        "train_tokens": int(train_ids.numel()),
        "test_tokens": int(test_ids.numel()),
        "final_train_loss": float(sum(losses[-20:]) / len(losses[-20:])),
        "held_out_loss": held_out,
        "held_out_perplexity": math.exp(held_out),
        "config": config,
    }
    (folder / "whybox_training.json").write_text(json.dumps(record, indent=2), encoding="utf-8")


def _config(steps: int) -> dict[str, Any]:
    return {
        "architecture": dict(TINY_LM_ARCHITECTURE),
        "text_sha256_16": _text_hash(),
        "steps": steps,
        "batch": 16,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup": 30,
    }


def tiny_lm_path(
    seed: int = 0,
    *,
    steps: int = 300,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder of the tiny LM, built (tokenizer, training, ``save_pretrained``) on first use.

    Parameters
    ----------
    seed : int, default 0
        Seed of the initialisation and of the training windows.
    steps : int, default 300
        Optimiser steps (AdamW, learning rate 3e-3 with a 30-step warm-up and cosine decay,
        batches of 16 windows of 128 tokens, one CPU thread).
    cache : bool, default True
        Reuse the folder in the cache; False builds a fresh one in the system temp folder.
    cache_dir : path, optional
        The cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    pathlib.Path
        A folder with ``config.json``, ``model.safetensors``, ``tokenizer.json``,
        ``tokenizer_config.json`` and ``whybox_training.json`` (held-out loss and the recipe):
        ``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``
        load it.

    Raises
    ------
    InvalidParameterError
        A negative seed or fewer than one step.
    MissingDependencyError
        Without torch, transformers or tokenizers.

    Examples
    --------
    >>> path = wb.zoo.tiny_lm_path()          # ~70 s the first time, then cached
    >>> sorted(f.name for f in path.iterdir() if f.suffix in (".json", ".safetensors"))[:4]
    ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']

    References
    ----------
    Radford, A. et al. (2019). Language Models are Unsupervised Multitask Learners (GPT-2).
    """
    require("torch", "torch", _FEATURE)
    require("transformers", "llm", _FEATURE)
    require("tokenizers", "llm", _FEATURE)
    seed = check_int("seed", seed, minimum=0)
    steps = check_int("steps", steps, minimum=1)
    cache = check_flag("cache", cache)
    return cached_folder(
        "tiny_lm_pydoc",
        _build,
        _config(steps),
        seed,
        version=_VERSION,
        cache_dir=cache_dir,
        cache=cache,
    )


def tiny_lm(
    seed: int = 0,
    *,
    steps: int = 300,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """A 4-layer GPT-2 and its byte-level BPE tokenizer, loaded with ``from_pretrained``.

    Parameters
    ----------
    seed, steps, cache, cache_dir
        As for :func:`tiny_lm_path`.

    Returns
    -------
    model : transformers.GPT2LMHeadModel
        d_model 128, 4 layers of 4 heads, MLP 512, context 128, vocabulary 2048; CPU, float32,
        eval mode, ``attn_implementation="eager"`` (attention weights available to hooks).
    tokenizer : transformers.PreTrainedTokenizerFast
        Byte-level BPE (any text encodes); ``<|endoftext|>`` is BOS, EOS, UNK and padding.

    Raises
    ------
    InvalidParameterError, MissingDependencyError
        As :func:`tiny_lm_path`.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> ids = tok("The for statement is used to", return_tensors="pt").input_ids
    >>> tuple(ids.shape), tuple(model(ids).logits.shape)       # (batch, pos), (.., vocab)
    ((1, 6), (1, 6, 2048))
    >>> model.config.n_layer, model.config.n_embd
    (4, 128)

    References
    ----------
    Radford, A. et al. (2019). Language Models are Unsupervised Multitask Learners.
    """
    transformers = require("transformers", "llm", _FEATURE)
    path = tiny_lm_path(seed, steps=steps, cache=cache, cache_dir=cache_dir)
    with quiet_transformers():
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, attn_implementation="eager", local_files_only=True
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model.eval()
    return model, tokenizer
