"""Fixtures of the endpoint client's tests: the zoo's tiny GPT-2 and a real local server
(``tests.llm._server``) serving it over the OpenAI protocol on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_gpt():
    """``whybox.zoo.tinylm.tiny_lm(seed=0)``: (model in eval mode, tokenizer), cached."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from whybox.zoo.tinylm import tiny_lm

    model, tok = tiny_lm(seed=0)
    return model.eval(), tok


@pytest.fixture(scope="module")
def _served(tiny_gpt):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    from tests.llm._server import serve

    with serve(*tiny_gpt) as server:
        yield server


@pytest.fixture
def server(_served):
    """The running server, its state reset (mode ok, counters zero) for each test."""
    _served.state.reset()
    yield _served
    _served.state.reset()
