"""The backend protocol every language-model consumer in whybox speaks, and its callable form.

Imported through :mod:`whybox.llm.base`, which adds :func:`~whybox.llm.base.as_backend`.

A backend answers three questions about text:

- ``generate(prompts)``: a completion of each prompt (greedy unless ``temperature`` > 0);
- ``logprobs(prompts, continuations)``: ``log p(continuation | prompt)``, summed over the
  continuation's tokens (``-inf`` where the model gives it no mass);
- ``score(prompts, continuations)``, where a backend has one: any scalar judgement (a
  reward model, a judge's grade); by default the log-probability.

Backends count what they are asked (``calls``: prompts sent to the model, cache hits
excluded), so cost tables report LLM calls. Methods that need log-probabilities check
``supports_logprobs`` first and name the alternatives when it is False.

References
----------
.. [1] OpenAI (2023). Chat Completions API (``logprobs``, ``top_logprobs``): the protocol
   :class:`~whybox.llm.http.OpenAIBackend` speaks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)

__all__ = ["Backend", "CallableBackend"]


def _texts(name: str, values: Any) -> list[str]:
    """A list of strings from one string or a sequence of them."""
    if isinstance(values, str):
        return [values]
    if not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise InvalidInputError(
            f"{name} must be a string or a list of strings, got {type(values).__name__}."
        )
    return list(values)


class Backend:
    """Base class of language-model backends.

    Subclasses implement ``_generate(prompts, *, max_new_tokens, temperature,
    random_state) -> list[str]`` and, where the model exposes them,
    ``_logprobs(prompts, continuations)`` (then set ``supports_logprobs = True``) and
    ``_score(prompts, continuations)`` (then set ``supports_score = True``). The public
    ``generate`` / ``logprobs`` / ``score`` check their arguments and call them.

    Attributes
    ----------
    name : str
        Shown in explanations' ``params`` and cost tables (never a secret).
    supports_logprobs : bool
        Whether ``logprobs`` works (else it raises :class:`~whybox.UnsupportedModelError`).
    supports_score : bool
        Whether the backend has its own ``score`` (else ``score`` is the log-probability).
    calls : int
        Prompts sent to the model so far (cache hits are not calls).

    Raises
    ------
    InvalidInputError
        From ``generate`` / ``logprobs`` / ``score``: prompts that are not strings, or
        prompts and continuations of different lengths.
    InvalidParameterError
        From ``generate``: ``max_new_tokens`` below 1 or a negative ``temperature``.
    UnsupportedModelError
        ``logprobs`` on a backend without log-probabilities.

    Examples
    --------
    >>> class Shout(wb.llm.Backend):
    ...     name = "shout"
    ...     def _generate(self, prompts, **kwargs):
    ...         self.calls += len(prompts)
    ...         return [p.upper() + "!" for p in prompts]
    >>> backend = Shout()
    >>> backend.generate(["hello", "bye"], stop=["E"]), backend.calls
    (['H', 'BY'], 2)

    References
    ----------
    OpenAI (2023). Chat Completions API (``logprobs``, ``top_logprobs``): the protocol the
    backends answer.
    """

    name: str = "backend"
    supports_logprobs: bool = False
    supports_score: bool = False

    def __init__(self) -> None:
        self.calls = 0

    # -------------------------------------------------------------- public protocol ----
    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        random_state: int | None = 0,
    ) -> list[str]:
        """One completion per prompt, in order.

        Parameters
        ----------
        prompts : str or list of str
        max_new_tokens : int
        temperature : float
            0 is greedy decoding (deterministic).
        stop : list of str, optional
            Cut each completion before the first occurrence of any of these strings.
        random_state : int, optional
            Seed of sampling when ``temperature`` > 0.

        Returns
        -------
        list of str (n_prompts,)
        """
        items = _texts("prompts", prompts)
        if not items:
            return []
        if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
            raise InvalidParameterError(
                f"max_new_tokens must be a positive integer, got {max_new_tokens!r}."
            )
        if not (math.isfinite(float(temperature)) and temperature >= 0):
            raise InvalidParameterError(f"temperature must be >= 0, got {temperature!r}.")
        out = self._generate(
            items,
            max_new_tokens=max_new_tokens,
            temperature=float(temperature),
            random_state=random_state,
        )
        return [_cut(text, stop) for text in out]

    def logprobs(
        self, prompts: str | Sequence[str], continuations: str | Sequence[str]
    ) -> np.ndarray:
        """``log p(continuation_i | prompt_i)`` summed over the continuation's tokens.

        Parameters
        ----------
        prompts, continuations : str or list of str
            Equal lengths (a single string is repeated to the other's length).

        Returns
        -------
        ndarray (n,)
            ``-inf`` where the model gives the continuation no probability.
        """
        if not self.supports_logprobs:
            raise UnsupportedModelError(
                f"the backend {self.name!r} gives no log-probabilities. Use a backend that "
                "does (LocalBackend on a transformers model, OpenAIBackend on an endpoint "
                "that returns logprobs, CallableBackend(logprobs=...)), or a method that "
                "compares generated text (value='similarity')."
            )
        p, c = _pairs(prompts, continuations)
        if not p:
            return np.zeros(0)
        return np.asarray(self._logprobs(p, c), dtype=float).reshape(len(p))

    def score(self, prompts: str | Sequence[str], continuations: str | Sequence[str]) -> np.ndarray:
        """A scalar judgement of each (prompt, continuation): the backend's own scorer where
        it has one (``supports_score``), else :meth:`logprobs`.

        Returns
        -------
        ndarray (n,)
        """
        p, c = _pairs(prompts, continuations)
        if not p:
            return np.zeros(0)
        if self.supports_score:
            return np.asarray(self._score(p, c), dtype=float).reshape(len(p))
        return self.logprobs(p, c)

    # -------------------------------------------------------------- to implement ----
    def _generate(
        self, prompts: list[str], *, max_new_tokens: int, temperature: float, random_state: Any
    ) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} does not implement generate")

    def _logprobs(self, prompts: list[str], continuations: list[str]) -> Sequence[float]:
        raise NotImplementedError(f"{type(self).__name__} does not implement logprobs")

    def _score(self, prompts: list[str], continuations: list[str]) -> Sequence[float]:
        raise NotImplementedError(f"{type(self).__name__} does not implement score")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _pairs(prompts: Any, continuations: Any) -> tuple[list[str], list[str]]:
    p, c = _texts("prompts", prompts), _texts("continuations", continuations)
    if len(p) == 1 and len(c) > 1:
        p = p * len(c)
    if len(c) == 1 and len(p) > 1:
        c = c * len(p)
    if len(p) != len(c):
        raise InvalidInputError(
            f"got {len(p)} prompts and {len(c)} continuations; pass one continuation per "
            "prompt (or a single one for all)."
        )
    return p, c


def _cut(text: str, stop: Sequence[str] | None) -> str:
    if not stop:
        return text
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


class CallableBackend(Backend):
    """A backend made of plain Python functions.

    Parameters
    ----------
    generate : callable(prompt: str) -> str, optional
        May also accept ``max_new_tokens`` / ``temperature`` keywords; called per prompt.
    logprobs : callable(prompt: str, continuation: str) -> float, optional
        ``log p(continuation | prompt)``; makes ``supports_logprobs`` True.
    score : callable(prompt: str, continuation: str) -> float, optional
        Any scalar judgement; makes ``supports_score`` True.
    name : str, default "callable"
        Shown in explanations' ``params`` and cost tables.

    Raises
    ------
    InvalidParameterError
        None of the three functions given, or one that is not callable.
    ModelCallError
        From ``generate`` / ``logprobs`` / ``score``: the function raised (the message names
        the prompt's index; the original error is chained) or returned a non-string.
    UnsupportedModelError
        ``generate`` on a backend made without ``generate=``.

    Examples
    --------
    >>> backend = wb.llm.CallableBackend(lambda prompt: prompt[::-1], name="reverse")
    >>> backend.generate(["abc", "hello"]), backend.calls
    (['cba', 'olleh'], 2)
    >>> backend.supports_logprobs
    False

    References
    ----------
    OpenAI (2023). Chat Completions API (``logprobs``, ``top_logprobs``): the protocol the
    backends answer.
    """

    def __init__(
        self,
        generate: Callable[..., str] | None = None,
        logprobs: Callable[[str, str], float] | None = None,
        score: Callable[[str, str], float] | None = None,
        *,
        name: str = "callable",
    ) -> None:
        super().__init__()
        for label, fn in (("generate", generate), ("logprobs", logprobs), ("score", score)):
            if fn is not None and not callable(fn):
                raise InvalidParameterError(f"{label}= must be callable, got {type(fn).__name__}.")
        if generate is None and logprobs is None and score is None:
            raise InvalidParameterError(
                "CallableBackend needs at least one of generate=, logprobs= or score=."
            )
        self._gen_fn, self._lp_fn, self._score_fn = generate, logprobs, score
        self.name = str(name)
        self.supports_logprobs = logprobs is not None
        self.supports_score = score is not None

    def _call(self, what: str, fn: Callable[..., Any], i: int, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        try:
            return fn(*args, **kw)
        except Exception as exc:  # the user's function failed: say which input
            raise ModelCallError(
                f"the {what} function of backend {self.name!r} raised on input {i}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _generate(
        self, prompts: list[str], *, max_new_tokens: int, temperature: float, random_state: Any
    ) -> list[str]:
        if self._gen_fn is None:
            raise UnsupportedModelError(
                f"the backend {self.name!r} has no generate function; pass "
                "CallableBackend(generate=...)."
            )
        import inspect

        try:
            params = inspect.signature(self._gen_fn).parameters
        except (TypeError, ValueError):  # builtins
            params = {}
        extra = {
            k: v
            for k, v in (("max_new_tokens", max_new_tokens), ("temperature", temperature))
            if k in params
        }
        out = []
        for i, prompt in enumerate(prompts):
            text = self._call("generate", self._gen_fn, i, prompt, **extra)
            if not isinstance(text, str):
                raise ModelCallError(
                    f"the generate function of backend {self.name!r} returned "
                    f"{type(text).__name__} for input {i}; it must return a string."
                )
            out.append(text)
        return out

    def _logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        return [
            float(self._call("logprobs", self._lp_fn, i, p, c))  # type: ignore[arg-type]
            for i, (p, c) in enumerate(zip(prompts, continuations, strict=True))
        ]

    def _score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        return [
            float(self._call("score", self._score_fn, i, p, c))  # type: ignore[arg-type]
            for i, (p, c) in enumerate(zip(prompts, continuations, strict=True))
        ]
