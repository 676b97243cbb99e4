"""DocumentGame: players are documents or sentences, absent ones removed, order kept;
batched backend calls, a cache, LLM calls counted; bad input named."""

from __future__ import annotations

import numpy as np
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.games.documents import DEFAULT_TEMPLATE, DocumentGame, split_sentences
from whybox.games.game import Game
from whybox.llm.base import Backend, CallableBackend

DOCS = ["Alpha is first. It leads.", "Beta follows.", "Gamma ends it all!"]


class Recorder(Backend):
    """A backend recording every batch of prompts it receives (log-prob = -len(prompt))."""

    supports_logprobs = True
    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def _logprobs(self, prompts, continuations):
        self.calls += len(prompts)
        self.batches.append(list(prompts))
        return [-float(len(p)) - len(c) for p, c in zip(prompts, continuations, strict=True)]

    def _generate(self, prompts, *, max_new_tokens, temperature, random_state):
        self.calls += len(prompts)
        return ["Beta follows" if "Beta" in p else "nothing" for p in prompts]


def test_is_a_game_and_keeps_order_and_removes_absent():
    g = DocumentGame(Recorder(), "Q?", DOCS, " A", separator=" | ")
    assert isinstance(g, Game)
    assert g.n_players == 3
    assert g.prompt(np.array([True, False, True])) == DEFAULT_TEMPLATE.format(
        context="Alpha is first. It leads. | Gamma ends it all!", query="Q?"
    )
    assert g.prompt(np.zeros(3, bool)) == DEFAULT_TEMPLATE.format(context="", query="Q?")
    assert g.player_names[1] == "[1] Beta follows."


def test_one_backend_call_per_batch_cache_and_counts():
    rec = Recorder()
    g = DocumentGame(rec, "Q?", DOCS, " A", batch_size=5)
    C = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)
    v = g.value(np.concatenate([C, C]))[:, 0]
    assert [len(b) for b in rec.batches] == [5, 3]  # 8 distinct coalitions, two calls
    assert g.llm_calls == 8 and rec.calls == 8
    expected = [-len(g.prompt(c)) - 2.0 for c in C]
    np.testing.assert_array_equal(v[:8], expected)
    g.value(C)  # cached: no new call
    assert g.llm_calls == 8 and len(rec.batches) == 2


def test_sentence_granularity():
    assert split_sentences("Alpha is first. It leads.") == ["Alpha is first.", "It leads."]
    g = DocumentGame(Recorder(), "Q?", DOCS, " A", granularity="sentence", separator="|")
    assert g.n_players == 4
    assert g.doc_of.tolist() == [0, 0, 1, 2]
    assert g.player_names[1].startswith("[0.1] It leads.")
    keep = np.array([False, True, False, True])
    assert g.kept_documents(keep) == ["It leads.", "Gamma ends it all!"]
    assert g.kept_documents(np.array([True, True, False, False])) == ["Alpha is first. It leads."]


def test_score_function_and_similarity_values():
    seen = []

    def score(query, documents, answer):
        seen.append(list(documents))
        return -1.0 * len(documents)

    g = DocumentGame(score, "Q?", DOCS, "A")
    assert g.value(np.array([[True, False, True]]))[0, 0] == -2.0
    assert seen == [[DOCS[0], DOCS[2]]]
    gen = CallableBackend(generate=lambda p: "Beta follows" if "Beta" in p else "x y")
    from whybox.text.tokenshap import tfidf_similarity

    with pytest.raises(InvalidParameterError, match="similarity="):
        DocumentGame(gen, "Q?", DOCS, None, value="similarity")
    s = DocumentGame(gen, "Q?", DOCS, None, value="similarity", similarity=tfidf_similarity)
    assert s.answer == "Beta follows" and s.generated and s.llm_calls == 1
    v = s.value(np.array([[True, True, False], [True, False, True]]))[:, 0]
    np.testing.assert_allclose(v, [1.0, 0.0])


def test_bad_input():
    with pytest.raises(InvalidInputError, match="no documents"):
        DocumentGame(Recorder(), "Q", [], "A")
    with pytest.raises(InvalidInputError, match=r"documents 0 and 2"):
        DocumentGame(Recorder(), "Q", ["same", "other", "same"], "A")
    with pytest.raises(InvalidInputError, match="list of strings"):
        DocumentGame(Recorder(), "Q", "one text", "A")
    gen_only = CallableBackend(generate=lambda p: "x")
    with pytest.raises(UnsupportedModelError, match="value='similarity'"):
        DocumentGame(gen_only, "Q", DOCS, "A")
    with pytest.raises(InvalidParameterError, match="answer="):
        DocumentGame(lambda q, d, a: 0.0, "Q", DOCS, None)
    with pytest.raises(InvalidParameterError, match="context"):
        DocumentGame(Recorder(), "Q", DOCS, "A", prompt_template="{query} only")
    inf = CallableBackend(logprobs=lambda p, c: -np.inf if "Beta" not in p else -1.0)
    g = DocumentGame(inf, "Q", DOCS, "A")
    with pytest.raises(InvalidInputError, match="-inf"):
        g.value(np.array([[True, False, True]]))
