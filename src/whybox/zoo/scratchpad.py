"""Two tiny GPT-2s that write a scratchpad: one answers *from* it, one answers *around* it.

The task is the sum of ``n_digits`` digits from 0 to ``max_digit`` -- by default 3 digits
from 0 to 3, so every sum is one digit -- written with a step-by-step scratchpad of running
sums::

    Q: 3 1 2 = S: 3 4 6 A: 6

The question (``Q: 3 1 2 =``) is the prompt, the scratchpad (``S: 3 4 6``) is the chain of
thought, and ``A: 6`` the answer. (Sums are taken modulo 10 so that a corrupted scratchpad
still continues with one-digit steps; on correct scratchpads that never wraps.) Two models are trained here with teacher forcing (a
``transformers.GPT2LMHeadModel`` from a config: 2 layers, width 64) on one CPU thread, then
cached by seed and config (:func:`whybox.zoo.cache.cached_model`):

- ``"dependent"``: the answer is always the scratchpad's **last value**. In half of the
  training sequences one step of the scratchpad is replaced by a random wrong digit and the
  later steps are recomputed from it (the loss skips the wrong digit, so the model still
  *writes* correct steps), and in 30 % the scratchpad is cut short (the answer is then the last
  value written). The answer is a function of the scratchpad, whatever the question.
- ``"independent"``: the answer is always the **true sum of the question**, and it is trained
  only in sequences whose scratchpad is random digits (half of them; 30 % are also cut
  short), so reading the scratchpad never helps it; the other half have correct running
  sums that train the model to *write* plausible scratchpads (their answer is not trained).
  The answer is computed from the question.

Both write correct scratchpads and answers; only the chain-of-thought faithfulness tests of
Lanham et al. (2023) (:mod:`whybox.text.cot`) can tell them apart: truncating or corrupting
the scratchpad changes the dependent model's answers and leaves the independent model's.

:func:`scratchpad_model` returns a :class:`ScratchpadModel`: a generate function
(``model("Q: 3 1 2 = S:")`` -> ``" 3 4 6 A: 6"``, greedy), with a batched
``generate_batch``, the ``transformers`` model and a fast tokenizer
(``PreTrainedTokenizerFast``: word-level, spaces optional, digits split one by one), so
``LocalBackend(sp.model, sp.tokenizer)`` and ``run_with_cache(sp.model, ...)`` work too.

References
----------
Lanham, T. et al. (2023). Measuring Faithfulness in Chain-of-Thought Reasoning.
arXiv:2307.13702.
Nye, M. et al. (2021). Show Your Work: Scratchpads for Intermediate Computation with Language
Models. arXiv:2112.00114.
Radford, A. et al. (2019). Language Models are Unsupervised Multitask Learners (GPT-2).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.zoo._training import check_flag, quiet_transformers, require, training_scope
from whybox.zoo.cache import cached_model

__all__ = [
    "SCRATCHPAD_ARCHITECTURE",
    "SCRATCHPAD_KINDS",
    "ScratchpadModel",
    "scratchpad_model",
    "scratchpad_questions",
]

_VERSION = "1"  # bump when the task, the architecture or the training recipe changes
_FEATURE = "the scratchpad toy models"

#: The two kinds of model: answer read off the scratchpad, or computed from the question.
SCRATCHPAD_KINDS = ("dependent", "independent")

#: Default optimiser steps: answering from the question is learned later than copying.
_STEPS = {"dependent": 800, "independent": 800}

#: The vocabulary, in id order (id 0 is the unknown word, id 1 the end of the sequence).
VOCAB = ["<unk>", "<eos>", "Q", "S", "A", ":", "=", "...", *[str(d) for d in range(10)]]
_ID = {w: i for i, w in enumerate(VOCAB)}
_DIGIT0 = _ID["0"]

#: The GPT-2 configuration (transformers names).
SCRATCHPAD_ARCHITECTURE = {
    "vocab_size": len(VOCAB),
    "n_positions": 32,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_inner": 256,
}


# ------------------------------------------------------------------ the tokenizer
def _tokenizer(max_length: int) -> Any:
    """A word-level fast tokenizer: splits on spaces and punctuation, digits one by one."""
    tokenizers = require("tokenizers", "llm", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    pre = tokenizers.pre_tokenizers
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=dict(_ID), unk_token="<unk>"))
    tok.pre_tokenizer = pre.Sequence([pre.Whitespace(), pre.Digits(individual_digits=True)])
    with quiet_transformers():
        return transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="<unk>",
            eos_token="<eos>",
            pad_token="<eos>",
            model_max_length=max_length,
        )


def _words(ids: Any) -> str:
    """Token ids as text: words joined by spaces, ``:`` glued to the word before."""
    out = ""
    for i in ids:
        w = VOCAB[int(i)]
        out += w if w == ":" else " " + w
    return out


# ------------------------------------------------------------------ the task
def scratchpad_questions(
    n: int, n_digits: int = 3, max_digit: int = 3, *, random_state: int = 0
) -> list[dict]:
    """``n`` random questions of the task, with their scratchpads and answers.

    Parameters
    ----------
    n : int
        Questions drawn.
    n_digits : int, default 3
        Digits per question.
    max_digit : int, default 3
        Digits are 0 .. max_digit; ``n_digits * max_digit`` must be at most 9.
    random_state : int
        Seeds the draw (default 0).

    Returns
    -------
    list of dict
        Keys ``"prompt"`` (``"Q: 3 4 2 = S:"``, what the models continue), ``"digits"``
        (list of int), ``"scratchpad"`` (the running sums, list of int), ``"answer"``
        (``str`` of the sum).

    Raises
    ------
    InvalidParameterError
        ``n`` or ``n_digits`` below 1, or ``n_digits * max_digit`` above 9.

    Examples
    --------
    >>> q = wb.zoo.scratchpad_questions(1, random_state=0)[0]
    >>> q["prompt"], q["digits"], q["scratchpad"], q["answer"]   # running sums, then the sum
    ('Q: 3 2 2 = S:', [3, 2, 2], [3, 5, 7], '7')

    References
    ----------
    Nye, M. et al. (2021). Show Your Work: Scratchpads for Intermediate Computation with
    Language Models. arXiv:2112.00114.
    """
    n = check_int("n", n, minimum=1)
    n_digits = check_int("n_digits", n_digits, minimum=1)
    rng = np.random.default_rng(random_state)
    out = []
    max_digit = _check_max_digit(n_digits, max_digit)
    for digits in rng.integers(0, max_digit + 1, size=(n, n_digits)):
        sums = np.cumsum(digits) % 10
        out.append(
            {
                "prompt": "Q: " + " ".join(map(str, digits)) + " = S:",
                "digits": [int(d) for d in digits],
                "scratchpad": [int(s) for s in sums],
                "answer": str(int(sums[-1])),
            }
        )
    return out


def _check_max_digit(n_digits: int, max_digit: int) -> int:
    max_digit = check_int("max_digit", max_digit, minimum=1, maximum=9)
    if n_digits * max_digit > 9:
        raise InvalidParameterError(
            f"n_digits * max_digit must be at most 9 so that every sum is one digit; got "
            f"{n_digits} * {max_digit}. Lower max_digit (e.g. {max(1, 9 // n_digits)})."
        )
    return max_digit


def _batch(torch: Any, gen: Any, kind: str, batch: int, k: int, top: int) -> tuple[Any, Any]:
    """A training batch ``(ids, labels)`` of shape (batch, 2k + 9); label -100 is not trained.

    Layout: ``Q : d1..dk = S : s1..sL A : y <eos>`` with the scratchpad length ``L`` (k, or
    0..k-1 in 30 % of rows) and <eos> after the end (not trained). Labels are the tokens
    themselves (GPT-2 shifts them: the label at t is the target of the prediction at t - 1).
    """
    T, start = 2 * k + 9, k + 5
    digits = torch.randint(0, top + 1, (batch, k), generator=gen)
    true = torch.cumsum(digits, 1) % 10
    noisy = torch.rand(batch, generator=gen) < 0.5
    short = torch.rand(batch, generator=gen) < 0.3
    lengths = torch.where(short, torch.randint(0, k, (batch,), generator=gen), k)
    wrong_at = torch.randint(0, k, (batch,), generator=gen)
    shift = torch.randint(1, 10, (batch,), generator=gen)
    rand_pad = torch.randint(0, 10, (batch, k), generator=gen)
    steps = torch.arange(k)[None, :]
    if kind == "dependent":
        # one wrong step j (its value moved by shift), the later steps recomputed from it:
        # every value from j on moves by the same shift (mod 10)
        after = (steps >= wrong_at[:, None]) & noisy[:, None]
        pad_vals = (true + shift[:, None] * after) % 10
        trained = ~((steps == wrong_at[:, None]) & noisy[:, None])
        last = pad_vals.gather(1, (lengths - 1).clamp(min=0)[:, None])[:, 0]
        answer, has_answer = last, lengths > 0
    else:
        # the answer is trained only after a random scratchpad: it cannot learn to read one
        pad_vals = torch.where(noisy[:, None], rand_pad, true)
        trained = ~noisy[:, None].expand(batch, k)
        answer, has_answer = true[:, -1], noisy
    eos = _ID["<eos>"]
    ids = torch.full((batch, T), eos, dtype=torch.long)
    labels = torch.full((batch, T), -100, dtype=torch.long)
    ids[:, 0], ids[:, 1] = _ID["Q"], _ID[":"]
    ids[:, 2 : 2 + k] = _DIGIT0 + digits
    ids[:, k + 2], ids[:, k + 3], ids[:, k + 4] = _ID["="], _ID["S"], _ID[":"]
    rel = torch.arange(T)[None, :] - start  # position inside the scratchpad
    L = lengths[:, None]
    in_pad = (rel >= 0) & (rel < L)
    gathered = pad_vals.gather(1, rel.clamp(0, k - 1).expand(batch, T))
    ok = trained.gather(1, rel.clamp(0, k - 1).expand(batch, T))
    ids = torch.where(in_pad, _DIGIT0 + gathered, ids)
    ids = torch.where(rel == L, _ID["A"], ids)
    ids = torch.where(rel == L + 1, _ID[":"], ids)
    ids = torch.where(rel == L + 2, _DIGIT0 + answer[:, None], ids)
    keep = (in_pad & ok) | ((rel == L) & (L == k)) | (rel == L + 1) | (rel == L + 3)
    keep |= (rel == L + 2) & has_answer[:, None]
    labels = torch.where(keep, ids, labels)
    return ids, labels


def _gpt2(transformers: Any, arch: dict[str, Any]) -> Any:
    cfg = transformers.GPT2Config(
        **arch,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=_ID["<eos>"],
        eos_token_id=_ID["<eos>"],
    )
    with quiet_transformers():
        return transformers.GPT2LMHeadModel(cfg)


def _train(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    torch = require("torch", "torch", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    start = time.perf_counter()
    with training_scope(torch, seed):
        model = _gpt2(transformers, config["architecture"])
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(
            model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
        )
        steps, warmup = config["steps"], config["warmup"]
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / steps),
        )
        model.train()
        for _ in range(steps):
            ids, labels = _batch(
                torch, gen, config["kind"], config["batch"], config["n_digits"], config["max_digit"]
            )
            loss = model(ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights["whybox.train_seconds"] = np.array([time.perf_counter() - start])
    return weights


# ------------------------------------------------------------------ the model object
@dataclass
class ScratchpadModel:
    """A trained scratchpad model: a generate function over text, greedy.

    Call it like a function, ``sp(prompt, max_new_tokens=16) -> continuation``, or
    ``sp.generate_batch(prompts)`` for many prompts at once (the chain-of-thought tests of
    ``whybox.text.cot`` use the batched form). Words outside the vocabulary
    (``whybox.zoo.scratchpad.VOCAB``) read as ``<unk>``.

    Parameters
    ----------
    kind : {"dependent", "independent"}
        Whether the answer reads the scratchpad's last value or ignores the scratchpad.
    model : transformers.GPT2LMHeadModel
        On the CPU, eval mode.
    tokenizer : transformers.PreTrainedTokenizerFast
        The task's word-level tokenizer.
    config : dict, default {}
        The training settings (the cache key, with the seed).
    seed : int, default 0
        The training seed.
    train_seconds : float, default nan
        Wall time of the training run that produced the weights (on the machine that trained).

    Raises
    ------
    InvalidInputError
        ``encode`` / ``generate_batch`` of something that is not text.

    Examples
    --------
    A scratchpad that lies (1 1 1 instead of 3 5 7) changes only the dependent model's answer:

    >>> dependent = wb.zoo.scratchpad_model("dependent")      # cached after the first build
    >>> independent = wb.zoo.scratchpad_model("independent")
    >>> dependent("Q: 3 2 2 = S:")                            # the honest chain of thought
    ' 3 5 7 A: 7'
    >>> dependent("Q: 3 2 2 = S: 1 1 1 A:"), independent("Q: 3 2 2 = S: 1 1 1 A:")
    (' 1', ' 7')

    References
    ----------
    Lanham, T. et al. (2023). Measuring Faithfulness in Chain-of-Thought Reasoning.
    arXiv:2307.13702.
    """

    kind: str
    model: Any
    tokenizer: Any
    config: dict = field(default_factory=dict)
    seed: int = 0
    train_seconds: float = float("nan")

    def __call__(self, prompt: str, max_new_tokens: int = 16) -> str:
        """The greedy continuation of ``prompt`` (stops after ``<eos>``, not included)."""
        return self.generate_batch([prompt], max_new_tokens=max_new_tokens)[0]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, got {type(text).__name__}.")
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def generate_batch(self, prompts: list[str], max_new_tokens: int = 16) -> list[str]:
        """Greedy continuations of many prompts; prompts of one length run as one batch.

        Parameters
        ----------
        prompts : list of str
        max_new_tokens : int, default 16

        Returns
        -------
        list of str (n_prompts,)
            Each continuation as words joined by spaces (``" 3 7 2 8 A: 8"``), cut before
            ``<eos>``.
        """
        torch = require("torch", "torch", _FEATURE)
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise InvalidInputError("prompts must be a list of strings.")
        max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        limit = self.model.config.n_positions
        encoded = [self.encode(p) or [_ID["<eos>"]] for p in prompts]
        out: list[str] = [""] * len(prompts)
        by_len: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            if len(ids) >= limit:
                raise InvalidInputError(
                    f"prompt {i} has {len(ids)} tokens; the scratchpad model reads at most "
                    f"{limit - 1}. Shorten it."
                )
            by_len.setdefault(len(ids), []).append(i)
        eos = _ID["<eos>"]
        with torch.no_grad():
            for length, rows in by_len.items():
                x = torch.tensor([encoded[i] for i in rows])
                steps = min(max_new_tokens, limit - length)
                done = torch.zeros(len(rows), dtype=torch.bool)
                new = []
                past = None
                inp = x
                for _ in range(steps):
                    res = self.model(inp, past_key_values=past, use_cache=True)
                    past = res.past_key_values
                    nxt = res.logits[:, -1].argmax(-1)
                    nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                    new.append(nxt)
                    done |= nxt == eos
                    if bool(done.all()):
                        break
                    inp = nxt[:, None]
                gen = torch.stack(new, 1).tolist()
                for r, i in enumerate(rows):
                    toks = gen[r]
                    toks = toks[: toks.index(eos)] if eos in toks else toks
                    out[i] = _words(toks)
        return out

    def __repr__(self) -> str:
        return (
            f"ScratchpadModel(kind={self.kind!r}, n_digits={self.config.get('n_digits')}, "
            f"seed={self.seed})"
        )


def scratchpad_model(
    kind: str = "dependent",
    seed: int = 0,
    *,
    n_digits: int = 3,
    max_digit: int = 3,
    steps: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ScratchpadModel:
    """A scratchpad model of ``kind``, trained here on one thread or loaded from the cache.

    Training (800 steps) took 250 s per model when measured on a shared 2-core machine at a
    load average of about 8 (``train_seconds`` of the returned model says what it took where
    it was trained); loading from the cache takes about a second.

    Training: AdamW (learning rate 3e-3, linear warm-up over 100 steps then linear decay,
    weight decay 0.01), batches of 128 sequences, next-token loss on the scratchpad and the
    answer (see the module's docstring for which tokens are trained), one CPU thread, seeded.

    Parameters
    ----------
    kind : {"dependent", "independent"}
        ``"dependent"``: the answer is the scratchpad's last value; ``"independent"``: the
        answer is computed from the question, the scratchpad is ignored.
    seed : int, default 0
        The training seed.
    n_digits : int, default 3
        Digits per question (and steps per scratchpad).
    max_digit : int, default 3
        Digits are 0 .. max_digit; ``n_digits * max_digit`` must be at most 9.
    steps : int, optional
        Optimiser steps; default 800 for both kinds (``_STEPS``).
    cache : bool, default True
        Load from / store in the zoo cache.
    cache_dir : path, optional
        The cache folder (default ``$WHYBOX_CACHE`` or the user cache).

    Returns
    -------
    ScratchpadModel

    Raises
    ------
    InvalidParameterError
        An unknown ``kind``, a negative seed, ``n_digits`` outside 1..10, ``steps`` < 1.
    MissingDependencyError
        Without torch, transformers or tokenizers.

    Examples
    --------
    >>> sp = wb.zoo.scratchpad_model("dependent")     # ~4 min the first time, then cached
    >>> sp
    ScratchpadModel(kind='dependent', n_digits=3, seed=0)
    >>> q = wb.zoo.scratchpad_questions(20, random_state=1)
    >>> sum(sp(x["prompt"]).endswith("A: " + x["answer"]) for x in q)   # solves the task
    20

    References
    ----------
    Lanham et al. (2023); Nye et al. (2021).
    """
    if kind not in SCRATCHPAD_KINDS:
        raise InvalidParameterError(
            f"kind must be one of {SCRATCHPAD_KINDS}, got {kind!r}: 'dependent' answers from its "
            "scratchpad, 'independent' from the question."
        )
    torch = require("torch", "torch", _FEATURE)
    transformers = require("transformers", "llm", _FEATURE)
    seed = check_int("seed", seed, minimum=0)
    n_digits = check_int("n_digits", n_digits, minimum=1)
    if n_digits > 10:
        raise InvalidParameterError(f"n_digits must be in 1..10, got {n_digits}.")
    max_digit = _check_max_digit(n_digits, max_digit)
    steps = check_int("steps", _STEPS[kind] if steps is None else steps, minimum=1)
    cache = check_flag("cache", cache)
    config = {
        "kind": kind,
        "architecture": dict(SCRATCHPAD_ARCHITECTURE),
        "n_digits": n_digits,
        "max_digit": max_digit,
        "steps": steps,
        "batch": 128,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup": 100,
    }
    weights = dict(
        cached_model(
            f"scratchpad_{kind}",
            _train,
            config,
            seed,
            version=_VERSION,
            cache_dir=cache_dir,
            cache=cache,
        )
    )
    seconds = float(weights.pop("whybox.train_seconds", np.array([np.nan]))[0])
    with torch.random.fork_rng(devices=[]):
        model = _gpt2(transformers, config["architecture"])
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    model.eval()
    return ScratchpadModel(
        kind=kind,
        model=model,
        tokenizer=_tokenizer(config["architecture"]["n_positions"]),
        config=config,
        seed=seed,
        train_seconds=seconds,
    )
