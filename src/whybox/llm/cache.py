"""A disk cache of language-model requests, so a repeated experiment costs nothing.

:class:`RequestCache` maps a request -- a JSON-able dict such as ``{"endpoint":
"/v1/chat/completions", "body": {"model": ..., "messages": ..., "temperature": 0, ...}}`` --
to the JSON response it got. The key is the SHA-256 of the request's canonical JSON (sorted
keys, no whitespace, UTF-8), so the same request finds the same file whatever the key order
it was built in. The request never holds credentials: :class:`~whybox.llm.http.OpenAIBackend`
builds it from the endpoint path and the body only, never from headers (the API key travels
in the ``Authorization`` header), and the cache refuses requests with a header-like field.

Each entry is one file ``<folder>/<key[:2]>/<key>.json`` holding ``{"request": ...,
"response": ...}``, written to a temporary file in the same folder and moved into place with
``os.replace`` (atomic on POSIX and Windows), so a reader never sees half a file and threads
or processes writing the same entry do not corrupt it. A file that cannot be parsed (written
by something else) counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from whybox.errors import InvalidInputError, InvalidParameterError

__all__ = ["RequestCache", "canonical_json"]

_FORBIDDEN = ("headers", "authorization", "api_key", "api-key", "apikey")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, compact separators, UTF-8 kept,
    NaN/Infinity rejected."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"a cached request must be JSON (dicts, lists, strings, finite numbers): {exc}."
        ) from exc


class RequestCache:
    """Disk cache of JSON responses keyed by the SHA-256 of the request's canonical JSON.

    Parameters
    ----------
    folder : str or Path
        Created if missing.

    Attributes
    ----------
    hits, misses : int
        Lookups answered from disk / not found (thread-safe counters).

    Raises
    ------
    InvalidParameterError
        ``folder`` that is not a path.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> cache = wb.llm.RequestCache(folder.name)
    >>> cache.get({"body": {"prompt": "hi"}}) is None
    True
    >>> cache.put({"body": {"prompt": "hi"}}, {"text": "hello"})
    >>> cache.get({"body": {"prompt": "hi"}}), cache.hits, cache.misses
    ({'text': 'hello'}, 1, 1)
    >>> folder.cleanup()

    References
    ----------
    NIST (2015). FIPS 180-4, Secure Hash Standard (SHA-256, the cache key).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise InvalidParameterError(
                f"folder must be a path (str or pathlib.Path), got {type(folder).__name__}."
            )
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"RequestCache(folder={str(self.folder)!r}, hits={self.hits}, misses={self.misses})"

    @staticmethod
    def key(request: Any) -> str:
        """The SHA-256 hex digest of the request's canonical JSON."""
        if isinstance(request, dict):
            bad = [k for k in request if str(k).lower() in _FORBIDDEN]
            if bad:
                raise InvalidInputError(
                    f"a cached request may not hold {bad[0]!r}: credentials must never reach "
                    "the cache. Key requests by endpoint and body only."
                )
        return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()

    def path(self, request: Any) -> Path:
        """The file that holds (or would hold) the request's response."""
        key = self.key(request)
        return self.folder / key[:2] / f"{key}.json"

    def get(self, request: Any) -> Any | None:
        """The cached response, or None (a miss)."""
        path = self.path(request)
        value = None
        try:
            with open(path, encoding="utf-8") as fh:
                value = json.load(fh)["response"]
        except (OSError, ValueError, KeyError, TypeError):
            value = None
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def put(self, request: Any, response: Any) -> None:
        """Store ``response`` (JSON-able) for ``request``, atomically."""
        path = self.path(request)
        text = canonical_json({"request": request, "response": response})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("??/*.json"))

    def clear(self) -> None:
        """Delete every entry and reset the counters."""
        for path in self.folder.glob("??/*.json"):
            path.unlink(missing_ok=True)
        with self._lock:
            self.hits = self.misses = 0
