"""A real OpenAI-compatible HTTP server for the endpoint client's tests and benchmark.

``serve(model, tokenizer)`` starts uvicorn in a thread on ``127.0.0.1`` and a free port (the
socket is bound before uvicorn starts, so no other process can take the port) and yields a
:class:`Server` with ``url`` and ``state``. The app computes everything with the model
directly -- ``model.generate`` for completions, one forward pass with ``log_softmax`` for
echoed prompt log-probabilities -- never through ``whybox.llm.local``, so the client's results
can be compared with :class:`~whybox.llm.local.LocalBackend` as two independent paths.

Endpoints: ``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature``,
``seed``, ``logprobs``, ``top_logprobs``) and ``POST /v1/completions`` (``prompt``,
``max_tokens``, ``temperature``, ``seed``, ``echo``, ``logprobs``; ``text_offset`` computed as
vLLM does, from the lengths of the decoded token prefixes).

``state`` (a :class:`ServerState`) switches the failure modes: ``"ok"``, ``"slow"`` (sleep
``slow_seconds`` before answering), ``"error"`` (HTTP ``status``), ``"malformed"`` (200 with
broken JSON), ``"no_echo"`` (400 to ``echo=true``, as the OpenAI chat-era API does),
``"flaky"`` (``status`` for the first ``failures`` requests, then ok); ``leak_auth`` puts the
request's ``Authorization`` header into error bodies (a careless server), ``retry_after`` sends
that ``Retry-After`` header with them; ``delay`` seconds of
sleep in every request make concurrency observable; it counts ``requests``, the in-flight
requests and their maximum ``max_in_flight``, and records each request's ``Authorization``
header.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool


@dataclass
class ServerState:
    mode: str = "ok"
    status: int = 500
    slow_seconds: float = 1.0
    failures: int = 0
    delay: float = 0.0
    leak_auth: bool = False
    retry_after: str | None = None
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    auth: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.mode, self.status, self.slow_seconds = "ok", 500, 1.0
            self.failures, self.delay, self.requests = 0, 0.0, 0
            self.leak_auth, self.retry_after = False, None
            self.in_flight = self.max_in_flight = 0
            self.auth = []


class _Model:
    """The served computations, serialised by a lock (one forward at a time)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tok = model, tokenizer
        self.lock = threading.Lock()
        pad = tokenizer.pad_token_id
        self.pad = tokenizer.eos_token_id if pad is None else pad

    def _generate(self, ids: list[int], body: dict[str, Any]) -> tuple[list[int], torch.Tensor]:
        n = int(body.get("max_tokens") or 16)
        temp = float(body.get("temperature") or 0.0)
        kw: dict[str, Any] = {"do_sample": False}
        if temp > 0:
            torch.manual_seed(int(body.get("seed") or 0))
            kw = {"do_sample": True, "temperature": temp, "top_k": 0, "top_p": 1.0}
        x = torch.tensor([ids])
        out = self.model.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=n,
            pad_token_id=self.pad,
            output_logits=True,
            return_dict_in_generate=True,
            **kw,
        )
        new = out.sequences[0, len(ids) :].tolist()
        logp = torch.stack([lg[0] for lg in out.logits]).float().log_softmax(-1)
        return new, logp[: len(new)]

    def _piece(self, t: int) -> str:
        return self.tok.decode([t])

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = "\n".join(m["content"] for m in body["messages"])
        ids = self.tok(prompt)["input_ids"]
        with self.lock, torch.no_grad():
            new, logp = self._generate(ids, body)
        text = self.tok.decode(new, skip_special_tokens=True)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "length",
        }
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            content = []
            for pos, t in enumerate(new):
                top = logp[pos].topk(k) if k else None
                content.append(
                    {
                        "token": self._piece(t),
                        "logprob": float(logp[pos, t]),
                        "top_logprobs": []
                        if top is None
                        else [
                            {"token": self._piece(int(i)), "logprob": float(v)}
                            for v, i in zip(top.values, top.indices, strict=True)
                        ],
                    }
                )
            choice["logprobs"] = {"content": content}
        return {"id": "chatcmpl-test", "object": "chat.completion", "choices": [choice]}

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        ids = self.tok(prompt)["input_ids"]
        k = body.get("logprobs")
        with self.lock, torch.no_grad():
            new, logp = self._generate(ids, body) if body.get("max_tokens", 16) else ([], None)
            echo_lp = None
            if body.get("echo"):
                echo_lp = self.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        text = self.tok.decode(new, skip_special_tokens=True)
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "length"}
        if body.get("echo"):
            choice["text"] = prompt + text
        if k is not None:
            all_ids = (ids if body.get("echo") else []) + new
            values: list[float | None] = []
            tops: list[dict[str, float] | None] = []
            for j, t in enumerate(all_ids):
                if body.get("echo") and j < len(ids):
                    row = None if j == 0 else echo_lp[j - 1]
                else:
                    row = logp[j - (len(ids) if body.get("echo") else 0)]
                values.append(None if row is None else float(row[t]))
                if row is None:
                    tops.append(None)
                else:
                    top = row.topk(int(k)) if int(k) else None
                    tops.append(
                        {}
                        if top is None
                        else {
                            self._piece(int(i)): float(v)
                            for v, i in zip(top.values, top.indices, strict=True)
                        }
                    )
            base = 0 if body.get("echo") else len(prompt)
            offsets = [
                base + len(self.tok.decode(all_ids[:j])) for j in range(len(all_ids))
            ]  # vLLM: lengths of the decoded prefixes
            choice["logprobs"] = {
                "tokens": [self._piece(t) for t in all_ids],
                "token_logprobs": values,
                "top_logprobs": tops,
                "text_offset": offsets,
            }
        return {"id": "cmpl-test", "object": "text_completion", "choices": [choice]}


def make_app(model: Any, tokenizer: Any, state: ServerState) -> Any:
    served = _Model(model, tokenizer)
    app = FastAPI()

    async def handle(request: Request, kind: str) -> Any:
        with state.lock:
            state.requests += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            state.auth.append(request.headers.get("authorization"))
            mode = state.mode
            failing = mode == "flaky" and state.failures > 0
            if failing:
                state.failures -= 1
        try:
            body = await request.json()
            if state.delay:
                await asyncio.sleep(state.delay)
            if mode == "slow":
                await asyncio.sleep(state.slow_seconds)
            if mode == "error" or failing:
                message = "internal error (test)"
                if state.leak_auth:  # a careless server that echoes the request's headers
                    message += f"; authorization: {request.headers.get('authorization')}"
                headers = {"Retry-After": state.retry_after} if state.retry_after else None
                return JSONResponse(
                    {"error": {"message": message}}, status_code=state.status, headers=headers
                )
            if mode == "malformed":
                return Response('{"choices": [ {"text": ', media_type="application/json")
            if kind == "completions" and body.get("echo") and mode == "no_echo":
                return JSONResponse(
                    {"error": {"message": "echo is not supported with this model"}},
                    status_code=400,
                )
            if kind == "completions" and not isinstance(body.get("prompt"), str):
                return JSONResponse({"error": {"message": "prompt must be a string"}}, 400)
            fn = served.chat if kind == "chat" else served.completions
            return JSONResponse(await run_in_threadpool(fn, body))
        finally:
            with state.lock:
                state.in_flight -= 1

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await handle(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await handle(request, "completions")

    return app


@dataclass
class Server:
    url: str
    state: ServerState


def free_port() -> int:
    """A port nothing listens on (bound, then released): connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(model: Any, tokenizer: Any) -> Iterator[Server]:
    """Run the app on 127.0.0.1 and a free port in a background thread."""
    import uvicorn

    state = ServerState()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(model, tokenizer, state),
        log_level="error",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if time.monotonic() - t0 > 20 or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield Server(url=f"http://127.0.0.1:{port}", state=state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
