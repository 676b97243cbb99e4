"""OpenAIBackend against a real local server serving the zoo's tiny GPT-2.

The server (``tests.llm._server``) computes with the model directly (``model.generate``,
one forward pass for echoed log-probabilities, joint tokenisation of prompt + continuation);
the client's answers must equal :class:`~whybox.llm.local.LocalBackend`'s on the same model
(separate tokenisation, KV-cache prefix sharing) -- two independent paths. Concurrency is
measured on the server (the most requests in flight at once), and the cache by the server's
request count.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("httpx")
torch = pytest.importorskip("torch")

from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.llm.http import OpenAIBackend  # noqa: E402
from whybox.llm.local import LocalBackend  # noqa: E402

PROMPTS = ["The for statement is used to", "A class is a", "The return value of", "If the"]
CONTS = [" iterate over the items", " blueprint", " the function", " value is"]


def test_logprobs_equal_local_backend(server, tiny_gpt):
    model, tok = tiny_gpt
    # the joint and the separate tokenisation agree on these (words after a space)
    for p, c in zip(PROMPTS, CONTS, strict=True):
        assert tok(p + c)["input_ids"] == tok(p)["input_ids"] + tok(c)["input_ids"]
    remote = OpenAIBackend(server.url, "tiny")
    local = LocalBackend(model, tok)
    prompts, conts = [*PROMPTS, "Q: "], [*CONTS, "yes"]
    got = remote.logprobs(prompts, conts)
    want = local.logprobs(prompts, conts)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert remote.calls == 5 and server.state.requests == 5
    # an empty continuation needs no request
    assert remote.logprobs("A class is", "")[0] == 0.0
    assert server.state.requests == 5


@pytest.mark.parametrize("chat", [True, False])
def test_generation_equals_local_backend(server, tiny_gpt, chat):
    model, tok = tiny_gpt
    remote = OpenAIBackend(server.url, "tiny", chat=chat)
    local = LocalBackend(model, tok)
    assert remote.generate(PROMPTS, max_new_tokens=10) == local.generate(PROMPTS, max_new_tokens=10)
    got = remote.generate_with_logprobs(PROMPTS[:2], max_new_tokens=6, top_logprobs=3)
    want = local.generate_with_logprobs(PROMPTS[:2], max_new_tokens=6)
    for g, w in zip(got, want, strict=True):
        assert g["text"] == w["text"] and g["tokens"] == w["tokens"]
        np.testing.assert_allclose(g["logprobs"], w["logprobs"], atol=1e-4)
        # greedy: the chosen token is the most likely alternative
        assert all(
            max(top.values()) == pytest.approx(lp)
            for top, lp in zip(g["top_logprobs"], g["logprobs"], strict=True)
        )


def test_sampling_sends_seeds(server):
    remote = OpenAIBackend(server.url, "tiny")
    a = remote.generate(PROMPTS, max_new_tokens=8, temperature=1.0, random_state=1)
    b = remote.generate(PROMPTS, max_new_tokens=8, temperature=1.0, random_state=1)
    c = remote.generate(PROMPTS, max_new_tokens=8, temperature=1.0, random_state=2)
    assert a == b and a != c


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_never_exceeds_the_limit(server, limit):
    server.state.delay = 0.05  # every request stays in flight long enough to overlap
    remote = OpenAIBackend(server.url, "tiny", max_concurrency=limit)
    prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]  # 16 distinct requests

    def call():
        remote.generate(prompts, max_new_tokens=1)

    # two threads share one backend: the limit is per backend, not per call
    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.state.max_in_flight == limit  # reached, never exceeded
    assert server.state.requests == 32


def test_the_measurement_sees_more_without_a_low_limit(server):
    """The in-flight measurement can fail: 8 workers put more than 3 requests in flight."""
    server.state.delay = 0.1
    remote = OpenAIBackend(server.url, "tiny", max_concurrency=8)
    remote.generate([f"x {i}" for i in range(16)], max_new_tokens=1)
    assert server.state.max_in_flight > 3


def test_cached_rerun_sends_no_request(server, tmp_path):
    remote = OpenAIBackend(server.url, "tiny", cache_dir=tmp_path)
    text = remote.generate(PROMPTS, max_new_tokens=5)
    lp = remote.logprobs(PROMPTS, CONTS)
    sent = server.state.requests
    assert sent == 8 and remote.cache.misses == 8
    again = OpenAIBackend(server.url, "tiny", cache_dir=tmp_path)
    assert again.generate(PROMPTS, max_new_tokens=5) == text
    np.testing.assert_array_equal(again.logprobs(PROMPTS, CONTS), lp)
    assert server.state.requests == sent  # zero requests
    assert again.calls == 0 and again.cache.hits == 8
    # the cache is keyed by the request, not the host: it answers with the server gone
    from tests.llm._server import free_port

    offline = OpenAIBackend(f"http://127.0.0.1:{free_port()}", "tiny", cache_dir=tmp_path)
    assert offline.generate(PROMPTS, max_new_tokens=5) == text
    # another parameter is another request
    again.generate(PROMPTS[:1], max_new_tokens=6)
    assert server.state.requests == sent + 1
    # unseeded sampling is never cached
    again.generate(PROMPTS[:1], max_new_tokens=5, temperature=1.0, random_state=None)
    again.generate(PROMPTS[:1], max_new_tokens=5, temperature=1.0, random_state=None)
    assert server.state.requests == sent + 3


def test_duplicates_in_a_batch_are_sent_once(server):
    remote = OpenAIBackend(server.url, "tiny")
    out = remote.generate([PROMPTS[0]] * 4 + [PROMPTS[1]], max_new_tokens=4)
    assert len(set(out[:4])) == 1
    assert server.state.requests == 2 and remote.calls == 2


def test_import_needs_no_httpx():
    code = (
        "import sys, whybox, whybox.llm, whybox.llm.http, whybox.llm.cache; "
        "assert 'httpx' not in sys.modules, 'httpx imported'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_parameters():
    with pytest.raises(InvalidParameterError, match="http"):
        OpenAIBackend("ftp://x", "m")
    with pytest.raises(InvalidParameterError, match="query string"):
        OpenAIBackend("http://127.0.0.1:1/v1?api-key=x", "m")
    with pytest.raises(InvalidParameterError, match="max_concurrency"):
        OpenAIBackend("http://127.0.0.1:1", "m", max_concurrency=0)
    with pytest.raises(InvalidParameterError, match="timeout"):
        OpenAIBackend("http://127.0.0.1:1", "m", timeout=0)
    with pytest.raises(InvalidParameterError, match="model"):
        OpenAIBackend("http://127.0.0.1:1", "")
    b = OpenAIBackend("http://127.0.0.1:1/v1/", "m")
    assert b.base_url == "http://127.0.0.1:1/v1"


def test_straddling_token_counts_toward_the_continuation(server, tiny_gpt):
    """Joint tokenisation at the endpoint: a token that crosses the prompt's end belongs to
    the continuation (hand computation over the joint ids and vLLM-style offsets)."""
    model, tok = tiny_gpt
    prompt, cont = "The stat", "ement is used"
    ids = tok(prompt + cont)["input_ids"]
    starts = [len(tok.decode(ids[:j])) for j in range(len(ids))]
    ends = [*starts[1:], len(prompt + cont)]
    assert any(s < len(prompt) < e for s, e in zip(starts, ends, strict=True))  # one straddles
    with torch.no_grad():
        lp = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    want = sum(float(lp[j - 1, ids[j]]) for j in range(1, len(ids)) if ends[j] > len(prompt))
    got = OpenAIBackend(server.url, "tiny").logprobs(prompt, cont)[0]
    assert got == pytest.approx(want, abs=1e-4)


def test_system_prompt(server, tiny_gpt):
    model, tok = tiny_gpt
    remote = OpenAIBackend(server.url, "tiny", system_prompt="You answer briefly.")
    got = remote.generate("A class is", max_new_tokens=6)
    # the test server joins the messages with a newline
    want = LocalBackend(model, tok).generate("You answer briefly.\nA class is", max_new_tokens=6)
    assert got == want
