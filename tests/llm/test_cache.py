"""RequestCache: keys, round trips, counters, atomic writes under threads, bad entries."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.llm.cache import RequestCache, canonical_json


def test_key_is_sha256_of_the_canonical_json():
    req = {"body": {"model": "m", "temperature": 0.0, "messages": ["é"]}, "endpoint": "/x"}
    # written by hand: sorted keys, no spaces, UTF-8 kept
    text = '{"body":{"messages":["é"],"model":"m","temperature":0.0},"endpoint":"/x"}'
    assert canonical_json(req) == text
    assert RequestCache.key(req) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    reordered = {"endpoint": "/x", "body": {"temperature": 0.0, "messages": ["é"], "model": "m"}}
    assert RequestCache.key(reordered) == RequestCache.key(req)
    other = {"endpoint": "/x", "body": {"temperature": 0.5, "messages": ["é"], "model": "m"}}
    assert RequestCache.key(other) != RequestCache.key(req)


def test_round_trip_and_counters(tmp_path):
    cache = RequestCache(tmp_path / "c")
    req = {"endpoint": "/v1/completions", "body": {"prompt": "hi"}}
    assert cache.get(req) is None
    cache.put(req, {"choices": [{"text": "hello"}]})
    assert cache.get(req) == {"choices": [{"text": "hello"}]}
    assert (cache.hits, cache.misses) == (1, 1)
    assert len(cache) == 1
    stored = json.loads(cache.path(req).read_text(encoding="utf-8"))
    assert stored == {"request": req, "response": {"choices": [{"text": "hello"}]}}
    assert "hits=1" in repr(cache)
    cache.clear()
    assert len(cache) == 0 and cache.hits == 0


def test_threads_write_and_read_safely(tmp_path):
    cache = RequestCache(tmp_path)
    errors = []

    def work(t):
        try:
            for i in range(40):
                req = {"body": {"i": i % 10}}  # every thread writes the same 10 entries
                cache.put(req, {"value": i % 10, "pad": "x" * 2000})
                got = cache.get(req)
                assert got is not None and got["value"] == i % 10
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.hits == 8 * 40 and cache.misses == 0
    assert len(cache) == 10
    assert not list(tmp_path.rglob(".tmp-*"))  # no temporary file left behind
    for path in tmp_path.glob("??/*.json"):
        json.loads(path.read_text(encoding="utf-8"))


def test_bad_entries_and_requests(tmp_path):
    cache = RequestCache(tmp_path)
    req = {"body": {"prompt": "a"}}
    cache.put(req, {"x": 1})
    cache.path(req).write_text("{not json", encoding="utf-8")
    assert cache.get(req) is None and cache.misses == 1
    with pytest.raises(InvalidInputError, match="credentials"):
        cache.key({"headers": {"Authorization": "Bearer x"}, "body": {}})
    with pytest.raises(InvalidInputError, match="JSON"):
        cache.put({"body": {"t": float("nan")}}, {})
    with pytest.raises(InvalidParameterError, match="path"):
        RequestCache(3)
