"""The OpenAI-compatible endpoint client: throughput, concurrency limit and cache.

Task: the test server of ``tests/llm/_server.py`` (FastAPI + uvicorn in a thread on
127.0.0.1) serving the zoo's tiny GPT-2 (``tiny_lm(seed=0)``, one torch thread, forward
passes serialised by a lock); ``OpenAIBackend.generate`` of 48 distinct prompts, 4 new tokens
each, greedy, through ``/v1/chat/completions``. The server sleeps ``latency`` seconds in every
request (asynchronously, so requests overlap) to stand for a real model's or network's latency;
0 measures the client and server overhead alone.

Reported per configured ``max_concurrency`` (1 / 4 / 8): wall time, requests per second, and
the most requests the **server** saw in flight at once (must never exceed the configured
limit). Then a cached rerun: the same 48 requests through a fresh backend on the same
``cache_dir``: requests the server received (target 0) and wall time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONFIG = {"n_prompts": 48, "max_new_tokens": 4, "concurrency": (1, 4, 8), "latency": (0.05, 0.0)}


def _prompts(n: int) -> list[str]:
    heads = ["The for statement", "A class is", "The return value of", "If the", "An object"]
    return [f"{heads[i % len(heads)]} {i}" for i in range(n)]


def run() -> dict[str, Any]:
    """Throughput per concurrency, in-flight maximum vs the limit, cached rerun."""
    import torch
    from tests.llm._server import serve

    from whybox.llm.http import OpenAIBackend
    from whybox.zoo.tinylm import tiny_lm

    torch.set_num_threads(1)
    model, tok = tiny_lm(seed=0)
    model.eval()
    prompts = _prompts(CONFIG["n_prompts"])
    n_new = CONFIG["max_new_tokens"]
    rows = []
    with serve(model, tok) as server:
        OpenAIBackend(server.url, "tiny").generate(prompts[:2], max_new_tokens=n_new)  # warm up
        for latency in CONFIG["latency"]:
            for limit in CONFIG["concurrency"]:
                server.state.reset()
                server.state.delay = latency
                with OpenAIBackend(server.url, "tiny", max_concurrency=limit) as b:
                    t0 = time.perf_counter()
                    b.generate(prompts, max_new_tokens=n_new)
                    seconds = time.perf_counter() - t0
                rows.append(
                    {
                        "latency": latency,
                        "limit": limit,
                        "seconds": seconds,
                        "rps": len(prompts) / seconds,
                        "requests": server.state.requests,
                        "max_in_flight": server.state.max_in_flight,
                    }
                )
        with tempfile.TemporaryDirectory() as folder:
            server.state.reset()
            server.state.delay = CONFIG["latency"][0]
            first = OpenAIBackend(server.url, "tiny", max_concurrency=4, cache_dir=folder)
            t0 = time.perf_counter()
            want = first.generate(prompts, max_new_tokens=n_new)
            t_first = time.perf_counter() - t0
            sent_first = server.state.requests
            again = OpenAIBackend(server.url, "tiny", max_concurrency=4, cache_dir=folder)
            t0 = time.perf_counter()
            got = again.generate(prompts, max_new_tokens=n_new)
            t_cached = time.perf_counter() - t0
            cached = {
                "requests_first": sent_first,
                "seconds_first": t_first,
                "requests_rerun": server.state.requests - sent_first,
                "seconds_rerun": t_cached,
                "hits": again.cache.hits,
                "same_answers": got == want,
            }
    return {
        "task": (
            f"{len(prompts)} distinct prompts, {n_new} new tokens, greedy, chat completions, "
            "tiny GPT-2 (zoo) behind FastAPI/uvicorn on 127.0.0.1"
        ),
        "rows": rows,
        "cached": cached,
        "limit_respected": all(r["max_in_flight"] <= r["limit"] for r in rows),
    }


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    lines = [
        "### OpenAI-compatible endpoint client (OpenAIBackend) against a local server",
        "",
        f"Task: {res['task']}.",
        "",
        "| server latency | max_concurrency | wall time | requests/s | requests | "
        "max in flight (server) |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['latency'] * 1000:.0f} ms | {r['limit']} | {r['seconds']:.2f} s | "
            f"{r['rps']:.1f} | {r['requests']} | {r['max_in_flight']} |"
        )
    c = res["cached"]
    lines += [
        "",
        f"Concurrency limit respected in every run: **{res['limit_respected']}**.",
        "",
        "| cache | requests sent | wall time |",
        "|---|---|---|",
        f"| first run (cache_dir, max_concurrency 4, 50 ms latency) | {c['requests_first']} | "
        f"{c['seconds_first']:.2f} s |",
        f"| rerun, fresh backend, same cache_dir | **{c['requests_rerun']}** "
        f"({c['hits']} hits, same answers: {c['same_answers']}) | {c['seconds_rerun'] * 1000:.1f} ms |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
