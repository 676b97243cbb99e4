"""A Hugging Face causal language model as a :class:`~whybox.llm.base.Backend`.

:class:`LocalBackend` runs the model in batches on its own device:

- ``generate``: greedy (``temperature=0``) or sampled decoding with a KV cache, left padding
  and an attention mask; explicit position ids make every prompt's result independent of the
  batch it shares and of the padding (the same text and log-probabilities as running it
  alone, to float rounding). Sampling draws from one ``torch.Generator`` per prompt, seeded
  from ``(random_state, index of the prompt)``, so samples do not depend on ``batch_size``.
- ``logprobs(prompts, continuations)``: ``sum_t log p(c_t | prompt, c_<t)``. Continuations
  that share a prompt (RAG answers, TokenSHAP coalitions with one question, many candidate
  answers) run the prompt **once**: its keys and values are kept (``past_key_values``) and
  repeated over the continuations, which are then run on top of it.

Tokenisation convention (as lm-evaluation-harness [1]_): the prompt and the continuation are
tokenised **separately** and their ids concatenated -- ``ids(prompt) + ids(continuation)``,
the prompt with the tokenizer's special tokens (a BOS where the model uses one), the
continuation without -- after moving trailing whitespace of the prompt to the front of the
continuation (``"Q: " + "yes"`` is scored as ``"Q:" + " yes"``, how byte-level BPE tokenises
words). The continuation's tokens are therefore exactly the tokens scored, whatever the
prompt; this can differ from tokenising ``prompt + continuation`` jointly when a token would
straddle the boundary (an OpenAI-compatible endpoint scores the joint tokenisation: see
:mod:`whybox.llm.http`). An empty prompt is replaced by the BOS token (else EOS), as
lm-evaluation-harness does, so the first continuation token has a context.

Sequences longer than ``max_length`` (default: the model's position limit) keep the end of
the prompt (left truncation, with a warning); a continuation that alone exceeds it is an
error.

References
----------
.. [1] Gao, L. et al. (2024). The Language Model Evaluation Harness (lm-evaluation-harness),
   ``loglikelihood`` requests: context and continuation encoded separately.
.. [2] Pope, R. et al. (2023). Efficiently Scaling Transformer Inference. MLSys (KV cache).
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from whybox._validation import check_int
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.llm._protocol import Backend, _texts
from whybox.llm.http import _seed_of

__all__ = ["LocalBackend"]


def _summed(logits: torch.Tensor, targets: list[int]) -> float:
    """``sum_t log_softmax(logits[t])[targets[t]]``; logits (n_targets, vocab), any dtype
    (the softmax is taken in float32, the sum in float64)."""
    logp = logits.float().log_softmax(-1)
    tgt = torch.tensor(targets, dtype=torch.long, device=logp.device)
    return float(logp.gather(-1, tgt[:, None]).double().sum())


class LocalBackend(Backend):
    """A ``transformers`` causal LM (with its tokenizer) as a language-model backend.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (``...ForCausalLM`` / ``GPT2LMHeadModel``); put it in eval mode.
    tokenizer : transformers tokenizer
        Its tokenizer; a pad token is not required (masked positions are never read).
    batch_size : int, default 8
        Sequences per forward pass.
    device : str or torch.device, optional
        Where to run; default the device of the model's parameters (the model is moved
        when a different device is given).
    max_length : int, optional
        Longest sequence fed to the model; default the model's position limit
        (``n_positions`` / ``max_position_embeddings``).
    chat_template : bool, default False
        Wrap each prompt as one user message with the tokenizer's chat template (and the
        generation prompt) before tokenising.
    share_prefix : bool, default True
        Run a prompt shared by several continuations once and reuse its KV cache.

    Attributes
    ----------
    calls : int
        Prompts (generate) or prompt-continuation pairs (logprobs) run so far.
    tokens_processed : int
        Token positions fed through the model so far (shared prefixes count once).

    Raises
    ------
    UnsupportedModelError
        A model that is not a torch module.
    InvalidParameterError
        No tokenizer; ``chat_template=True`` with a tokenizer that has none; from
        ``generate``, a negative temperature.
    InvalidInputError
        From ``generate`` / ``logprobs``: prompts that are not text, a sequence longer than
        ``max_length``, an empty prompt with a tokenizer that has no BOS / EOS token.

    Examples
    --------
    >>> backend = wb.llm.LocalBackend(*wb.zoo.tiny_lm())
    >>> lp = backend.logprobs("The for statement", [" is", " was"])   # log p(cont | prompt)
    >>> lp.shape, bool((lp < 0).all())
    ((2,), True)
    >>> out = backend.generate("The for statement", max_new_tokens=4)   # greedy
    >>> len(out), isinstance(out[0], str), backend.calls
    (1, True, 3)

    References
    ----------
    Wolf, T. et al. (2020). Transformers: State-of-the-Art Natural Language Processing. EMNLP
    demos (the models and tokenizers run here).
    """

    supports_logprobs = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        device: Any = None,
        max_length: int | None = None,
        chat_template: bool = False,
        share_prefix: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "forward", None)):
            raise UnsupportedModelError(
                f"LocalBackend needs a transformers causal LM (a torch.nn.Module), got "
                f"{type(model).__name__}. Wrap other models with CallableBackend(generate=...)."
            )
        if tokenizer is None or not callable(tokenizer):
            raise InvalidParameterError(
                "LocalBackend needs the model's tokenizer (a transformers tokenizer)."
            )
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        if device is not None:
            self.model.to(device)
        try:
            self.device = next(model.parameters()).device
        except StopIteration:
            self.device = torch.device("cpu")
        cfg = getattr(model, "config", None)
        limit = None
        for attr in ("n_positions", "max_position_embeddings"):
            if cfg is not None and isinstance(getattr(cfg, attr, None), int):
                limit = getattr(cfg, attr)
                break
        self.max_length = (
            check_int("max_length", max_length, minimum=2) if max_length is not None else limit
        )
        self.chat_template = bool(chat_template)
        if self.chat_template and not getattr(tokenizer, "chat_template", None):
            raise InvalidParameterError(
                "chat_template=True but the tokenizer has no chat template; pass "
                "chat_template=False (prompts are used as they are) or a chat model's tokenizer."
            )
        self.share_prefix = bool(share_prefix)
        self.name = str(getattr(cfg, "_name_or_path", "") or type(model).__name__)
        self.tokens_processed = 0
        gen_cfg = getattr(model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if eos is None:
            eos = getattr(tokenizer, "eos_token_id", None)
        self._eos = set() if eos is None else {int(e) for e in np.atleast_1d(eos)}
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = next(iter(self._eos), 0)
        self._pad = int(pad)
        start = getattr(tokenizer, "bos_token_id", None)
        if start is None:
            start = getattr(tokenizer, "eos_token_id", None)
        self._start = None if start is None else int(start)

    def __repr__(self) -> str:
        return (
            f"LocalBackend(name={self.name!r}, batch_size={self.batch_size}, "
            f"device={str(self.device)!r})"
        )

    # ---------------------------------------------------------------- tokenisation ----
    def _prompt_ids(self, prompt: str) -> list[int]:
        if self.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            ids = list(self.tokenizer(prompt)["input_ids"])
        if not ids:
            if self._start is None:
                raise InvalidInputError(
                    "an empty prompt needs a start token, and the tokenizer has neither a BOS "
                    "nor an EOS token; pass a non-empty prompt."
                )
            ids = [self._start]
        return ids

    def _cont_ids(self, continuation: str) -> list[int]:
        return list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])

    def _fit(self, ids: list[int], room: int, what: str) -> list[int]:
        """Left-truncate prompt ids so that ``room`` more tokens fit in ``max_length``."""
        if self.max_length is None or len(ids) + room <= self.max_length:
            return ids
        keep = self.max_length - room
        if keep < 1:
            raise InvalidInputError(
                f"the {what} needs {room} tokens but the model takes at most {self.max_length} "
                "(max_length); shorten it or pass a larger max_length= if the model allows it."
            )
        warnings.warn(
            f"a prompt of {len(ids)} tokens was cut to its last {keep} so that {room} {what} "
            f"tokens fit in max_length={self.max_length}.",
            stacklevel=4,
        )
        return ids[-keep:]

    # ---------------------------------------------------------------- forward passes ----
    def _left_padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, ...]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _run(self, **kw: Any) -> Any:
        self.tokens_processed += int(kw["input_ids"].numel())
        return self.model(**kw)

    # ---------------------------------------------------------------- log-probs ----
    def _logprobs(self, prompts: list[str], continuations: list[str]) -> np.ndarray:
        out = np.zeros(len(prompts))
        pairs: list[tuple[list[int], list[int]]] = []
        for p, c in zip(prompts, continuations, strict=True):
            if not self.chat_template:
                stripped = p.rstrip()
                p, c = stripped, p[len(stripped) :] + c
            c_ids = self._cont_ids(c)
            p_ids = self._fit(self._prompt_ids(p), len(c_ids), "continuation")
            pairs.append((p_ids, c_ids))
        self.calls += len(pairs)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (p_ids, c_ids) in enumerate(pairs):
            if c_ids:  # an empty continuation has log-probability 0
                groups[tuple(p_ids)].append(i)
        singles = []
        with torch.no_grad():
            for key, idx in groups.items():
                if self.share_prefix and len(idx) > 1:
                    self._shared(list(key), [pairs[i][1] for i in idx], idx, out)
                else:
                    singles += idx
            singles.sort(key=lambda i: -sum(map(len, pairs[i])))
            for start in range(0, len(singles), self.batch_size):
                chunk = singles[start : start + self.batch_size]
                seqs = [pairs[i][0] + pairs[i][1] for i in chunk]
                ids, mask, pos = self._left_padded(seqs)
                logits = self._run(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
                ).logits
                width = ids.shape[1]
                for r, i in enumerate(chunk):
                    n_p, seq = len(pairs[i][0]), seqs[r]
                    off = width - len(seq)  # the row's left padding
                    rows = logits[r, off + n_p - 1 : off + len(seq) - 1]
                    out[i] = _summed(rows, seq[n_p:])
        return out

    def _shared(
        self, prompt: list[int], conts: list[list[int]], idx: list[int], out: np.ndarray
    ) -> None:
        """Continuations of one prompt: the prompt once, its KV cache repeated per chunk."""
        p_ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        res = self._run(input_ids=p_ids, use_cache=True)
        cache = getattr(res, "past_key_values", None)
        first = res.logits[0, -1:]
        n_p = len(prompt)
        for start in range(0, len(conts), self.batch_size):
            chunk = conts[start : start + self.batch_size]
            b, width = len(chunk), max(len(c) for c in chunk)
            ids = torch.full((b, width), self._pad, dtype=torch.long)
            mask = torch.zeros((b, n_p + width), dtype=torch.long)
            mask[:, :n_p] = 1
            for r, c in enumerate(chunk):
                ids[r, : len(c)] = torch.tensor(c, dtype=torch.long)
                mask[r, n_p : n_p + len(c)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            if cache is None or not hasattr(cache, "batch_repeat_interleave"):
                full = torch.cat([p_ids.expand(b, -1), ids], dim=1)
                logits = self._run(input_ids=full, attention_mask=mask, use_cache=False).logits
                logits = logits[:, n_p:]
            else:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(b)
                pos = torch.arange(n_p, n_p + width, device=self.device).expand(b, -1)
                logits = self._run(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=past,
                    use_cache=True,
                ).logits
            for r, c in enumerate(chunk):
                # token 0 from the prompt's last position, token t from continuation t - 1
                out[idx[start + r]] = _summed(torch.cat([first, logits[r, : len(c) - 1]]), c)

    # ---------------------------------------------------------------- generation ----
    def _generate(
        self, prompts: list[str], *, max_new_tokens: int, temperature: float, random_state: Any
    ) -> list[str]:
        return [g["text"] for g in self._decode(prompts, max_new_tokens, temperature, random_state)]

    def generate_with_logprobs(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        random_state: int | None = 0,
    ) -> list[dict[str, Any]]:
        """Completions with their tokens and each token's log-probability.

        Returns
        -------
        list of dict
            Per prompt: ``text`` (str), ``token_ids`` (list of int), ``tokens`` (list of
            str), ``logprobs`` (list of float: ``log p(token | prompt, earlier tokens)``
            under the model itself, not the temperature-scaled distribution).
        """
        items = _texts("prompts", prompts)
        check_int("max_new_tokens", max_new_tokens, minimum=1)
        if not (np.isfinite(temperature) and temperature >= 0):
            raise InvalidParameterError(f"temperature must be >= 0, got {temperature!r}.")
        return self._decode(items, max_new_tokens, float(temperature), random_state)

    def _decode(
        self, prompts: list[str], max_new_tokens: int, temperature: float, random_state: Any
    ) -> list[dict[str, Any]]:
        ids_list = [self._fit(self._prompt_ids(p), max_new_tokens, "new") for p in prompts]
        self.calls += len(prompts)
        results: list[dict[str, Any]] = [{} for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(ids_list[i]))
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                gens = None
                if temperature > 0:
                    gens = [
                        torch.Generator(device=self.device).manual_seed(_seed_of(random_state, i))
                        for i in chunk
                    ]
                toks, lps = self._decode_batch(
                    [ids_list[i] for i in chunk], max_new_tokens, temperature, gens
                )
                for r, i in enumerate(chunk):
                    results[i] = {
                        "text": self.tokenizer.decode(toks[r], skip_special_tokens=True),
                        "token_ids": toks[r],
                        "tokens": [self.tokenizer.decode([t]) for t in toks[r]],
                        "logprobs": lps[r],
                    }
        return results

    def _decode_batch(
        self,
        seqs: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        gens: list[torch.Generator] | None,
    ) -> tuple[list[list[int]], list[list[float]]]:
        ids, mask, pos = self._left_padded(seqs)
        b = len(seqs)
        res = self._run(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        past = res.past_key_values
        logits = res.logits[:, -1].float()
        pos = pos[:, -1:]
        done = [False] * b
        toks: list[list[int]] = [[] for _ in range(b)]
        lps: list[list[float]] = [[] for _ in range(b)]
        for step in range(max_new_tokens):
            logp = logits.log_softmax(-1)
            if gens is None:
                nxt = logits.argmax(-1)
            else:
                probs = (logits / temperature).softmax(-1)
                nxt = torch.stack(
                    [torch.multinomial(probs[r], 1, generator=gens[r])[0] for r in range(b)]
                )
            for r in range(b):
                if not done[r]:
                    t = int(nxt[r])
                    toks[r].append(t)
                    lps[r].append(float(logp[r, t]))
                    done[r] = t in self._eos
            if all(done) or step == max_new_tokens - 1:
                break
            feed = nxt.clone()
            feed[torch.tensor(done, device=feed.device)] = self._pad
            mask = torch.cat([mask, mask.new_ones((b, 1))], dim=1)
            pos = pos + 1
            res = self._run(
                input_ids=feed[:, None],
                attention_mask=mask,
                position_ids=pos,
                past_key_values=past,
                use_cache=True,
            )
            past = res.past_key_values
            logits = res.logits[:, -1].float()
        return toks, lps
