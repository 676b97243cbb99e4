"""An OpenAI-compatible HTTP endpoint as a :class:`~whybox.llm.base.Backend`.

:class:`OpenAIBackend` speaks the protocol that vLLM, the llama.cpp server, Ollama, LM Studio
and hosted APIs serve, through ``httpx`` (imported on first use, so ``import whybox`` never
needs it):

``generate``
    ``POST {base_url}/v1/chat/completions`` with the prompt as one user message (after an
    optional ``system_prompt``) when ``chat=True`` (default), else ``POST
    {base_url}/v1/completions`` with the raw prompt. Sampling (``temperature > 0``) sends a
    ``seed`` per prompt derived from ``(random_state, index)``.
``generate_with_logprobs``
    The same, asking for the generated tokens' log-probabilities (chat: ``logprobs: true``
    and ``top_logprobs``; completions: ``logprobs: k``).
``logprobs(prompt, continuation)``
    Only the **completions** endpoint can score a continuation the model did not write:
    ``POST {base_url}/v1/completions`` with ``prompt = prompt + continuation``,
    ``echo: true``, ``logprobs: 1``, ``max_tokens: 1``; the echoed prompt tokens come back
    with their log-probabilities and character offsets (``text_offset``), and the tokens that
    start at or after the prompt's end are summed (the token that straddles the boundary, if
    the joint tokenisation has one, counts toward the continuation; trailing whitespace of
    the prompt is moved into the continuation first, as :class:`~whybox.llm.local.LocalBackend`
    does). vLLM and OpenAI's legacy completion models support it; chat endpoints give
    log-probabilities only of tokens the model generates itself. An endpoint that refuses
    ``echo`` or returns no prompt log-probabilities raises
    :class:`~whybox.errors.UnsupportedModelError` naming the alternatives.

Reliability: one ``httpx.Client`` shared by a thread pool; at most ``max_concurrency``
requests are in flight at any time (a semaphore held by every request of this backend, from
any thread); connection errors, timeouts, HTTP 429 and 5xx are retried ``max_retries`` times
with exponential backoff and seeded jitter (``backoff * 2**attempt * U(0.5, 1.5)`` seconds,
at least ``Retry-After`` when the server sends one), then raise
:class:`~whybox.errors.ModelCallError` with the status code and URL. A 200 response whose
body is not JSON raises ModelCallError saying so (not retried). Identical requests within one
batch are sent once.

Caching: with ``cache_dir``, every response is stored by :class:`~whybox.llm.cache.RequestCache`
keyed by the endpoint path and the request body (model, messages or prompt, parameters) --
never the host, headers or the API key -- so rerunning an experiment sends no request.
Sampling without a seed (``random_state=None``) is never cached.

Secrets: the API key comes from ``api_key=`` or the environment variable named by
``api_key_env`` (default ``OPENAI_API_KEY``) and is sent only in the ``Authorization``
header; ``repr``, log records, error messages (response bodies are redacted) and cache files
never contain it.

References
----------
.. [1] OpenAI (2023). API reference: Chat Completions (``logprobs``, ``top_logprobs``,
   ``seed``) and legacy Completions (``echo``, ``logprobs``).
.. [2] Kwon, W. et al. (2023). Efficient Memory Management for Large Language Model Serving
   with PagedAttention (vLLM). SOSP.
.. [3] Gao, L. et al. (2024). lm-evaluation-harness: ``local-completions`` scores
   continuations with ``echo`` and ``logprobs``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    MissingDependencyError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.llm._protocol import Backend, _texts
from whybox.llm.cache import RequestCache, canonical_json

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)

_CHAT = "/chat/completions"
_COMPLETIONS = "/completions"
_UNSCORABLE = (400, 404, 405, 422, 501)
_ALTERNATIVES = (
    "Score continuations with an endpoint whose /v1/completions accepts echo=true with "
    "logprobs (vLLM; OpenAI's legacy completion models), a LocalBackend on the same weights, "
    "or CallableBackend(logprobs=...); or use a method that compares generated text "
    "(value='similarity'), which needs only generate()."
)


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - httpx is in the llm extra
        raise MissingDependencyError("httpx", "llm", "OpenAIBackend") from exc
    return httpx


def _seed_of(random_state: Any, index: int) -> int:
    """A 31-bit seed for prompt ``index`` from ``random_state`` (None: fresh entropy): the
    sampling seed of both LocalBackend and OpenAIBackend, whatever the batch."""
    if random_state is None:
        entropy = None
    elif isinstance(random_state, np.random.Generator):
        entropy = [int(random_state.integers(2**62)), int(index)]
    else:
        entropy = [int(random_state), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0] >> np.uint32(1))


class _StatusError(ModelCallError):
    """A non-retryable HTTP status (4xx other than 429)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class OpenAIBackend(Backend):
    """A backend over an OpenAI-compatible HTTP endpoint (chat completions / completions).

    Parameters
    ----------
    base_url : str
        ``http(s)://host:port`` or the same ending in ``/v1``; endpoints are
        ``{base}/v1/chat/completions`` and ``{base}/v1/completions``.
    model : str
        The served model's name (sent as ``"model"``).
    api_key : str, optional
        Sent as ``Authorization: Bearer ...``; default the environment variable
        ``api_key_env``; none for local servers that need none.
    api_key_env : str, default "OPENAI_API_KEY"
        The environment variable the key is read from when ``api_key`` is None.
    timeout : float, default 30
        Seconds per request (connect, read, write, pool).
    max_retries : int, default 3
        Retries after the first attempt on connection errors, timeouts, 429 and 5xx.
    backoff : float, default 0.5
        Base of the exponential backoff in seconds.
    max_concurrency : int, default 4
        Most requests in flight at once (per backend, across threads).
    cache_dir : str or Path, optional
        Folder of a :class:`~whybox.llm.cache.RequestCache`.
    chat : bool, default True
        ``generate`` through chat completions (True) or completions (False).
    system_prompt : str, optional
        A system message before each prompt (chat only).
    random_state : int, default 0
        Seeds the backoff jitter (sampling seeds come from ``generate``'s own random_state).

    Raises
    ------
    InvalidParameterError
        A ``base_url`` that is not http(s) or carries a query string, an empty ``model``,
        non-positive ``timeout`` / ``max_concurrency``, negative ``backoff`` / ``max_retries``.
    MissingDependencyError
        On the first request, without ``httpx`` (the ``llm`` extra).
    ModelCallError
        A request that still fails after ``max_retries`` retries, or an answer of the wrong
        form (the message names the prompt; the API key never appears in it).
    UnsupportedModelError
        An endpoint that gives no log-probabilities (for ``logprobs``).

    Examples
    --------
    Nothing is sent when the backend is made; the first ``generate`` or ``logprobs`` call
    opens the connection:

    >>> backend = wb.llm.OpenAIBackend("http://127.0.0.1:8000", "my-model",
    ...                                api_key_env="WHYBOX_EXAMPLE_UNSET_KEY")
    >>> backend
    OpenAIBackend(base_url='http://127.0.0.1:8000/v1', model='my-model', chat=True,
                  max_concurrency=4, api_key=none)
    >>> backend.calls, backend.requests
    (0, 0)

    Attributes
    ----------
    calls : int
        Prompts sent (cache hits and in-batch duplicates excluded).
    requests : int
        HTTP requests made, retries included.
    cache : RequestCache or None

    References
    ----------
    OpenAI (2023). Chat Completions and Completions API (the request and response format).
    """

    supports_logprobs = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 30,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 4,
        cache_dir: str | os.PathLike | None = None,
        chat: bool = True,
        system_prompt: str | None = None,
        random_state: int | None = 0,
    ) -> None:
        super().__init__()
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https"):
            raise InvalidParameterError(
                "base_url must be an http(s) URL such as 'http://127.0.0.1:8000' or "
                "'https://api.openai.com/v1'."
            )
        if not isinstance(model, str) or not model:
            raise InvalidParameterError("model must be the served model's name (a string).")
        if api_key is not None and not isinstance(api_key, str):
            raise InvalidParameterError("api_key must be a string or None.")
        key = api_key if api_key is not None else os.environ.get(str(api_key_env))
        self._api_key = key or None
        self.api_key_env = str(api_key_env)
        parts = urlsplit(base_url.rstrip("/"))
        if parts.query or parts.fragment:
            raise InvalidParameterError(
                "base_url must not carry a query string or fragment; pass the API key with "
                "api_key= or the environment variable named by api_key_env=."
            )
        path = parts.path if parts.path.endswith("/v1") else parts.path + "/v1"
        self._base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        #: the URL shown in messages: without any user:password@
        self.base_url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))
        self.model = model
        self.name = model
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InvalidParameterError(
                f"timeout must be a positive number of seconds, got {timeout!r}."
            )
        if not (isinstance(backoff, (int, float)) and backoff >= 0):
            raise InvalidParameterError(f"backoff must be >= 0 seconds, got {backoff!r}.")
        self.timeout = float(timeout)
        self.backoff = float(backoff)
        self.max_retries = check_int("max_retries", max_retries, minimum=0)
        self.max_concurrency = check_int("max_concurrency", max_concurrency, minimum=1)
        self.chat = bool(chat)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise InvalidParameterError("system_prompt must be a string or None.")
        self.system_prompt = system_prompt
        self.cache = RequestCache(cache_dir) if cache_dir is not None else None
        self.requests = 0
        self._sem = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(random_state)
        self._client: Any = None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return (
            f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, chat={self.chat}, "
            f"max_concurrency={self.max_concurrency}, api_key={key})"
        )

    # ---------------------------------------------------------------- transport ----
    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = _httpx()
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=self.max_concurrency,
                        max_keepalive_connections=self.max_concurrency,
                    ),
                )
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        with self._lock:
            delay = self.backoff * 2**attempt * (0.5 + float(self._rng.random()))
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 60.0))
            except ValueError:
                pass
        return delay

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON with retries; the parsed JSON object of a 2xx response."""
        httpx = _httpx()
        client = self._get_client()
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        reason, status = "", None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            with self._sem:
                with self._lock:
                    self.requests += 1
                try:
                    resp = client.post(self._base + path, json=body, headers=headers)
                except httpx.TimeoutException as exc:
                    resp, status = None, None
                    reason = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    resp, status = None, None
                    reason = f"could not connect ({type(exc).__name__}: {self._redact(str(exc))})"
            if resp is not None:
                status = resp.status_code
                if status == 429 or status >= 500:
                    reason = f"HTTP {status}: {self._snippet(resp.text)}"
                    retry_after = resp.headers.get("retry-after")
                elif status >= 400:
                    hint = (
                        f" Check the API key (api_key= or the environment variable "
                        f"{self.api_key_env})."
                        if status in (401, 403)
                        else ""
                    )
                    raise _StatusError(
                        f"POST {url} returned HTTP {status}: {self._snippet(resp.text)}.{hint}",
                        status,
                    )
                else:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise ModelCallError(
                            f"POST {url} returned HTTP {status} with malformed JSON (first "
                            f"characters: {self._snippet(resp.text)!r}); the server is not "
                            "speaking the OpenAI protocol correctly."
                        ) from None
                    if not isinstance(data, dict):
                        raise ModelCallError(
                            f"POST {url} returned JSON that is not an object "
                            f"({type(data).__name__}); expected an OpenAI response."
                        )
                    return data
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                log.warning(
                    "POST %s %s; retry %d of %d in %.2f s",
                    url,
                    reason,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
        err = ModelCallError(
            f"POST {url} failed after {self.max_retries + 1} attempts: {reason}"
            + (f" (status {status})" if status is not None else "")
            + ". Check that the server is running and reachable, or raise max_retries= / "
            "timeout=."
        )
        err.status_code = status  # type: ignore[attr-defined]
        raise err

    def _snippet(self, text: str, n: int = 200) -> str:
        text = self._redact(text)
        return text if len(text) <= n else text[:n] + "..."

    def _request(self, path: str, body: dict[str, Any], cacheable: bool) -> dict[str, Any]:
        req = {"endpoint": path, "body": body}
        if self.cache is not None and cacheable:
            hit = self.cache.get(req)
            if hit is not None:
                return hit
        with self._lock:
            self.calls += 1
        data = self._post(path, body)
        if self.cache is not None and cacheable:
            self.cache.put(req, data)
        return data

    def _map(
        self, path: str, bodies: list[dict[str, Any]], cacheable: bool
    ) -> list[dict[str, Any]]:
        """Responses to ``bodies`` in order: duplicates sent once, at most
        ``max_concurrency`` in flight."""
        keys = [canonical_json(b) for b in bodies]
        unique = list(dict.fromkeys(keys))
        first = {k: bodies[keys.index(k)] for k in unique}
        if len(unique) == 1:
            got = {unique[0]: self._request(path, first[unique[0]], cacheable)}
        else:
            workers = min(self.max_concurrency, len(unique))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {k: pool.submit(self._request, path, first[k], cacheable) for k in unique}
                got = {}
                try:
                    for k, fut in futures.items():
                        got[k] = fut.result()
                except BaseException:
                    for fut in futures.values():
                        fut.cancel()
                    raise
        return [got[k] for k in keys]

    # ---------------------------------------------------------------- protocol ----
    def _gen_bodies(
        self,
        prompts: list[str],
        max_new_tokens: int,
        temperature: float,
        random_state: Any,
        logprobs: int | None,
    ) -> tuple[str, list[dict[str, Any]], bool]:
        path = _CHAT if self.chat else _COMPLETIONS
        bodies = []
        for i, prompt in enumerate(prompts):
            body: dict[str, Any] = {
                "model": self.model,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
            }
            if self.chat:
                msgs = (
                    [{"role": "system", "content": self.system_prompt}]
                    if self.system_prompt
                    else []
                )
                body["messages"] = [*msgs, {"role": "user", "content": prompt}]
            else:
                body["prompt"] = prompt
            if temperature > 0 and random_state is not None:
                body["seed"] = _seed_of(random_state, i)
            if logprobs is not None:
                if self.chat:
                    body["logprobs"] = True
                    body["top_logprobs"] = logprobs
                else:
                    body["logprobs"] = logprobs
            bodies.append(body)
        return path, bodies, not (temperature > 0 and random_state is None)

    def _choice(self, data: dict[str, Any], path: str) -> dict[str, Any]:
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            field = "choices[0].message.content" if self.chat else "choices[0].text"
            raise ModelCallError(
                f"POST {self.base_url}{path} returned JSON without {field}; expected an "
                "OpenAI-compatible response."
            ) from None
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        return {"choice": choice, "text": text}

    def _generate(
        self, prompts: list[str], *, max_new_tokens: int, temperature: float, random_state: Any
    ) -> list[str]:
        path, bodies, cacheable = self._gen_bodies(
            prompts, max_new_tokens, temperature, random_state, None
        )
        return [self._choice(d, path)["text"] for d in self._map(path, bodies, cacheable)]

    def generate_with_logprobs(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        random_state: int | None = 0,
        top_logprobs: int = 0,
    ) -> list[dict[str, Any]]:
        """Completions with each generated token's log-probability.

        Parameters
        ----------
        top_logprobs : int, default 0
            Alternatives per position to return (chat allows up to 20, completions 5).

        Returns
        -------
        list of dict
            Per prompt: ``text``, ``tokens`` (list of str), ``logprobs`` (list of float),
            ``top_logprobs`` (list of {token: logprob} per position).
        """
        items = _texts("prompts", prompts)
        check_int("max_new_tokens", max_new_tokens, minimum=1)
        check_int("top_logprobs", top_logprobs, minimum=0, maximum=20)
        if not (np.isfinite(temperature) and temperature >= 0):
            raise InvalidParameterError(f"temperature must be >= 0, got {temperature!r}.")
        path, bodies, cacheable = self._gen_bodies(
            items, max_new_tokens, float(temperature), random_state, top_logprobs
        )
        out = []
        for data in self._map(path, bodies, cacheable):
            got = self._choice(data, path)
            out.append(dict(text=got["text"], **self._token_logprobs(got["choice"], path)))
        return out

    def _token_logprobs(self, choice: dict[str, Any], path: str) -> dict[str, Any]:
        lp = choice.get("logprobs")
        try:
            if self.chat:
                content = lp["content"]
                tokens = [str(t["token"]) for t in content]
                values = [_num(t["logprob"]) for t in content]
                tops = [
                    {str(a["token"]): _num(a["logprob"]) for a in t.get("top_logprobs") or []}
                    for t in content
                ]
            else:
                tokens = [str(t) for t in lp["tokens"]]
                values = [_num(v) for v in lp["token_logprobs"]]
                tops = [
                    {str(k): _num(v) for k, v in (t or {}).items()}
                    for t in lp.get("top_logprobs") or [None] * len(tokens)
                ]
        except (KeyError, TypeError):
            raise UnsupportedModelError(
                f"{self.base_url}{path} returned no token log-probabilities for model "
                f"{self.model!r}; the server does not support logprobs on this endpoint. "
                "Use chat=False / chat=True to try the other endpoint, a LocalBackend, or "
                "generate() alone."
            ) from None
        return {"tokens": tokens, "logprobs": values, "top_logprobs": tops}

    def _logprobs(self, prompts: list[str], continuations: list[str]) -> np.ndarray:
        out = np.zeros(len(prompts))
        todo, bodies, bounds = [], [], []
        for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
            head = p.rstrip()
            if not head:
                raise InvalidInputError(
                    f"prompt {i} is empty: an endpoint cannot score the first token of a text "
                    "(echo gives it no log-probability). Pass a non-empty prompt, or use a "
                    "LocalBackend (which starts from the BOS token)."
                )
            if not c and head == p:
                continue  # an empty continuation has log-probability 0
            todo.append(i)
            bounds.append((len(head), len(p + c)))
            bodies.append(
                {
                    "model": self.model,
                    "prompt": p + c,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "echo": True,
                    "logprobs": 1,
                }
            )
        if not todo:
            return out
        try:
            responses = self._map(_COMPLETIONS, bodies, True)
        except _StatusError as exc:
            if exc.status_code in _UNSCORABLE:
                raise UnsupportedModelError(
                    f"the endpoint {self.base_url}{_COMPLETIONS} cannot score a given "
                    f"continuation (HTTP {exc.status_code} to echo=true, logprobs=1). "
                    + _ALTERNATIVES
                ) from exc
            raise
        for i, data, (start, end) in zip(todo, responses, bounds, strict=True):
            out[i] = self._continuation_logprob(data, start, end)
        return out

    def _continuation_logprob(self, data: dict[str, Any], start: int, end: int) -> float:
        where = f"{self.base_url}{_COMPLETIONS}"
        try:
            lp = data["choices"][0]["logprobs"]
            offsets = [int(o) for o in lp["text_offset"]]
            values = list(lp["token_logprobs"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise UnsupportedModelError(
                f"the endpoint {where} returned no echoed prompt log-probabilities "
                "(choices[0].logprobs.text_offset / token_logprobs), so it cannot score a "
                "given continuation. " + _ALTERNATIVES
            ) from None
        if not offsets or offsets[0] != 0 or len(values) != len(offsets):
            raise UnsupportedModelError(
                f"the endpoint {where} did not echo the prompt's tokens with their "
                "log-probabilities (echo=true ignored?), so it cannot score a given "
                "continuation. " + _ALTERNATIVES
            )
        ends = [*offsets[1:], end]
        total, seen = 0.0, False
        for off, stop, val in zip(offsets, ends, values, strict=True):
            if off >= end:  # the generated token (max_tokens=1) and anything after
                break
            if off >= start or stop > start:  # in the continuation, or straddling into it
                seen = True
                total += _num(val)
        if not seen:
            raise UnsupportedModelError(
                f"the endpoint {where} echoed no tokens of the continuation, so it cannot "
                "score it. " + _ALTERNATIVES
            )
        return total


def _num(value: Any) -> float:
    """A log-probability from JSON (null -> -inf)."""
    return -np.inf if value is None else float(value)
