"""OpenAIBackend's bad paths against the real local server: retries, timeouts, HTTP errors,
malformed JSON, refused connections, endpoints that cannot score, and API-key secrecy (a
sentinel key must appear in no error message, repr, log record or cache file)."""

from __future__ import annotations

import logging
import time

import pytest

pytest.importorskip("httpx")
pytest.importorskip("torch")

from tests.llm._server import free_port
from whybox.errors import (
    InvalidInputError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)
from whybox.llm.http import OpenAIBackend

KEY = "sk-SENTINEL-7f3a9c-do-not-leak"


def fast(url, **kw):
    kw.setdefault("backoff", 0.005)
    kw.setdefault("timeout", 5)
    return OpenAIBackend(url, "tiny", **kw)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retries_then_model_call_error_with_the_status(server, status):
    server.state.mode, server.state.status = "error", status
    b = fast(server.url, max_retries=2)
    with pytest.raises(ModelCallError) as info:
        b.generate("A class is", max_new_tokens=2)
    msg = str(info.value)
    assert f"HTTP {status}" in msg and f"{server.url}/v1/chat/completions" in msg
    assert "3 attempts" in msg and info.value.status_code == status
    assert server.state.requests == 3 == b.requests


def test_transient_failures_are_retried(server):
    server.state.mode, server.state.status, server.state.failures = "flaky", 503, 2
    b = fast(server.url, max_retries=3)
    assert b.generate("A class is", max_new_tokens=3) == fast(server.url).generate(
        "A class is", max_new_tokens=3
    )
    assert b.requests == 3 and b.calls == 1


def test_client_errors_are_not_retried(server):
    server.state.mode, server.state.status = "error", 401
    b = fast(server.url, max_retries=3, api_key_env="MY_LLM_KEY")
    with pytest.raises(ModelCallError, match=r"HTTP 401.*MY_LLM_KEY") as info:
        b.generate("x", max_new_tokens=1)
    assert info.value.status_code == 401 and server.state.requests == 1


def test_timeout(server):
    server.state.mode, server.state.slow_seconds = "slow", 1.0
    b = fast(server.url, timeout=0.2, max_retries=1)
    with pytest.raises(ModelCallError, match=r"2 attempts: timed out after 0\.2 s"):
        b.generate("x", max_new_tokens=1)
    assert b.requests == 2


def test_malformed_json(server):
    server.state.mode = "malformed"
    b = fast(server.url, max_retries=3)
    with pytest.raises(ModelCallError, match="malformed JSON"):
        b.generate("x", max_new_tokens=1)
    assert server.state.requests == 1  # a broken answer is not retried


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}"
    b = fast(url, max_retries=2)
    with pytest.raises(ModelCallError, match=r"3 attempts: could not connect") as info:
        b.logprobs("A class is", " a")
    assert url in str(info.value) and isinstance(info.value, WhyboxError)


def test_endpoint_that_cannot_score_names_the_alternatives(server):
    server.state.mode = "no_echo"
    b = fast(server.url)
    with pytest.raises(UnsupportedModelError, match="HTTP 400") as info:
        b.logprobs("A class is", " a")
    msg = str(info.value)
    assert "LocalBackend" in msg and "value='similarity'" in msg and "echo" in msg
    # generation still works on such an endpoint
    assert isinstance(b.generate("A class is", max_new_tokens=2)[0], str)


def test_empty_prompt_cannot_be_scored(server):
    with pytest.raises(InvalidInputError, match="non-empty prompt"):
        fast(server.url).logprobs(["A class", " "], [" is", "x"])
    assert server.state.requests == 0


def _chain(exc):
    out = []
    while exc is not None:
        out += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return " ".join(out)


@pytest.mark.parametrize("source", ["env", "argument"])
def test_api_key_never_leaks(server, tmp_path, caplog, monkeypatch, source):
    if source == "env":
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        kw = {}
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        kw = {"api_key": KEY}
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    b = fast(server.url, max_retries=1, cache_dir=tmp_path / "cache", **kw)
    assert KEY not in repr(b) and "api_key=set" in repr(b)
    b.generate(["A class is", "If the"], max_new_tokens=3)
    b.logprobs("A class is", " a")
    # the key was sent, as a bearer token
    assert server.state.auth and all(a == f"Bearer {KEY}" for a in server.state.auth)
    texts = []
    server.state.leak_auth = True  # the server even echoes the header in its error body
    for mode, status in (("error", 500), ("error", 401), ("malformed", 200), ("slow", 200)):
        server.state.mode, server.state.status = mode, status
        with pytest.raises(ModelCallError) as info:
            fast(server.url, max_retries=1, timeout=0.3, **kw).generate("y", max_new_tokens=1)
        texts.append(_chain(info.value))
    server.state.leak_auth = False
    with pytest.raises(ModelCallError) as info:
        fast(f"http://127.0.0.1:{free_port()}", max_retries=1, **kw).generate("y")
    texts.append(_chain(info.value))
    server.state.mode = "no_echo"
    with pytest.raises(UnsupportedModelError) as info:
        fast(server.url, **kw).logprobs("A class", " is")
    texts.append(_chain(info.value))
    assert "***" in texts[0]  # the echoed header was redacted, not dropped silently
    for text in texts:
        assert KEY not in text
    records = [r.getMessage() + repr(r.args) for r in caplog.records]
    assert any("retry" in r for r in records)  # the retries were logged
    assert not [r for r in records if KEY in r]
    files = list((tmp_path / "cache").rglob("*"))
    assert len([f for f in files if f.is_file()]) == 3
    for f in files:
        if f.is_file():
            assert KEY.encode() not in f.read_bytes()


def test_no_key_sends_no_authorization(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    b = fast(server.url)
    b.generate("x", max_new_tokens=1)
    assert server.state.auth == [None] and "api_key=none" in repr(b)


def test_retry_after_is_respected(server):
    server.state.mode, server.state.status, server.state.failures = "flaky", 429, 1
    server.state.retry_after = "0.4"
    b = fast(server.url, backoff=0.001, max_retries=1)
    t0 = time.perf_counter()
    b.generate("x", max_new_tokens=1)
    assert time.perf_counter() - t0 >= 0.4 and b.requests == 2


def test_backoff_is_exponential_with_seeded_jitter():
    a = OpenAIBackend("http://127.0.0.1:1", "m", backoff=0.5, random_state=7)
    b = OpenAIBackend("http://127.0.0.1:1", "m", backoff=0.5, random_state=7)
    da = [a._delay(k, None) for k in range(5)]
    assert da == [b._delay(k, None) for k in range(5)]  # seeded
    for k, d in enumerate(da):
        assert 0.5 * 2**k * 0.5 <= d <= 0.5 * 2**k * 1.5
    assert a._delay(0, "3") >= 3.0 and a._delay(0, "soon") < 1.0
