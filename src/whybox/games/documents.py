"""The document game of retrieval-augmented generation: retrieved sources are players.

The players are the documents of a RAG context (``granularity="document"``) or the sentences
within them (``granularity="sentence"``). A coalition keeps its sources **in their original
order**; an absent source is removed from the context (a document whose sentences are all
absent disappears, with its separator). The worth of a coalition is a number read from a
language model given the query and the kept context:

- ``value="logprob"``: ``log p(answer | prompt(query, kept context))``, summed over the
  answer's tokens, from a :class:`whybox.llm.Backend` that gives log-probabilities;
- ``value="similarity"``: the similarity of the model's greedy answer to that prompt to the
  reference answer (TF-IDF cosine or all-MiniLM-L6-v2 embedding cosine, the value functions
  of :mod:`whybox.text.tokenshap`), for backends that only generate text;
- a plain callable ``score(query, kept_documents, answer) -> float`` instead of a backend
  (the log-probability of the answer given the query and the documents kept, in order).

All coalitions asked for at once go to the backend in **one** call (a list of prompts,
chunked by ``batch_size``); evaluated coalitions are cached (:class:`~whybox.games.game.BaseGame`),
and ``llm_calls`` counts the prompts sent (the answer's generation included), which is what
the cost-quality tables of :class:`whybox.text.rag.RagAttribution` report.

Because it is a :class:`~whybox.games.game.Game`, every estimator of :mod:`whybox.games`
(exact, permutation, KernelSHAP, Banzhaf, LIME, leave-one-out) runs on it unchanged.

References
----------
Cohen-Wang, B., Shah, H., Georgiev, K. and Madry, A. (2024). ContextCite: attributing model
generation to context. NeurIPS. (Sources ablated by removal, order kept.)

Nematov, I. et al. (2025). Source attribution in retrieval-augmented generation.
arXiv:2507.04480. (Documents as Shapley players; cost-quality of the estimators.)

Goldshmidt, R. and Horovicz, M. (2024). TokenSHAP. arXiv:2407.10114. (Answer similarity.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidInputError, InvalidParameterError, ModelCallError, UnsupportedModelError
from .game import BaseGame

__all__ = [
    "DEFAULT_TEMPLATE",
    "DocumentGame",
    "source_label",
    "split_sentences",
]

#: Default prompt: the kept context, then the question; ``{context}`` and ``{query}`` are
#: filled in. The trailing space goes to the front of the answer (``"Answer:" + " Paris"``).
DEFAULT_TEMPLATE = "{context}\n\nQuestion: {query}\nAnswer: "
GRANULARITIES = ("document", "sentence")
VALUES = ("logprob", "similarity")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after ``.``, ``!`` or ``?`` followed by white space.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Non-empty, stripped; a text without a sentence end is one sentence.
    """
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p] or [text.strip()]


def source_label(index: str, text: str, width: int = 40) -> str:
    """A short display name of a source: ``"[index] first words…"`` (one line)."""
    flat = " ".join(text.split())
    short = flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"
    return f"[{index}] {short}"


def check_documents(documents: Any) -> list[str]:
    """The documents as a list of distinct non-empty strings.

    Raises
    ------
    InvalidInputError
        No documents, a non-string, an empty document, or duplicates (naming them).
    """
    if isinstance(documents, str):
        raise InvalidInputError(
            "documents must be a list of strings (one per retrieved document), got one "
            "string; pass [text] for a single document."
        )
    if documents is None or not isinstance(documents, Sequence) or len(documents) == 0:
        raise InvalidInputError(
            "no documents were given: RAG attribution needs at least one retrieved document "
            "(a non-empty list of strings)."
        )
    docs = list(documents)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise InvalidInputError(
                f"document {i} is a {type(d).__name__}; every document must be a string."
            )
        if not d.strip():
            raise InvalidInputError(f"document {i} is empty; remove it from the list.")
    seen: dict[str, int] = {}
    dups = []
    for i, d in enumerate(docs):
        key = " ".join(d.split())
        if key in seen:
            dups.append((seen[key], i, d))
        else:
            seen[key] = i
    if dups:
        pairs = "; ".join(f"{i} and {j} ({source_label('', d, 30).strip()})" for i, j, d in dups)
        raise InvalidInputError(
            f"the documents contain duplicates: documents {pairs} have the same text. A "
            "duplicate splits its credit with its copy; remove the duplicates (keep each "
            "document once) before attributing."
        )
    return docs


def _is_backend(obj: Any) -> bool:
    """A language-model backend (duck-typed: :class:`whybox.llm.Backend`'s protocol)."""
    return all(hasattr(obj, a) for a in ("generate", "logprobs", "supports_logprobs"))


class DocumentGame(BaseGame):
    """The game of one RAG answer: players are documents (or their sentences).

    Parameters
    ----------
    backend : :class:`whybox.llm.Backend` or callable
        A backend (``logprobs`` for ``value="logprob"``, ``generate`` for
        ``value="similarity"`` and for ``answer=None``), or a plain function
        ``score(query, kept_documents, answer) -> float`` giving the log-probability of the
        answer given the query and the documents kept (a list of str, in order).
    query : str
    documents : sequence of str, length d
        Distinct, non-empty.
    answer : str, optional
        The explained answer; None generates it first from the full context (greedy,
        ``max_new_tokens``), which needs a backend that generates.
    value : {"logprob", "similarity"}
        Ignored for a plain score function.
    similarity : callable, optional
        Required with ``value="similarity"``: ``similarity(answers, reference) -> (m,)``, how
        regenerated answers are compared to ``answer`` (e.g.
        :func:`whybox.text.tokenshap.tfidf_similarity` or ``minilm_similarity``).
    prompt_template : str or callable, optional
        A format string with ``{context}`` and ``{query}`` (default :data:`DEFAULT_TEMPLATE`),
        or ``f(query, kept_documents) -> prompt``.
    granularity : {"document", "sentence"}
        Sentences are found by :func:`split_sentences`; kept sentences of one document are
        joined by a space.
    separator : str
        Between the kept documents of the context.
    batch_size : int
        Prompts per backend call.
    max_new_tokens : int
        Length of generated answers (``answer=None`` and ``value="similarity"``).
    cache : bool

    Attributes
    ----------
    n_players, player_names : the sources and their short labels
    sources : list of str, length n_players
        The text of each player.
    doc_of : ndarray of int (n_players,)
        The document each player belongs to.
    answer : str
    llm_calls : int
        Prompts sent to the model by this game (generation of the answer included).
    """

    def __init__(
        self,
        backend: Any,
        query: str,
        documents: Sequence[str],
        answer: str | None = None,
        *,
        value: str = "logprob",
        similarity: Callable[[Sequence[str], str], np.ndarray] | None = None,
        prompt_template: str | Callable[[str, list[str]], str] | None = None,
        granularity: str = "document",
        separator: str = "\n\n",
        batch_size: int = 256,
        max_new_tokens: int = 32,
        cache: bool = True,
    ) -> None:
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}.")
        docs = check_documents(documents)
        if granularity not in GRANULARITIES:
            raise InvalidParameterError(
                f"granularity={granularity!r} is not one of {list(GRANULARITIES)}."
            )
        if _is_backend(backend):
            self._score_fn = None
        elif callable(backend):
            self._score_fn = backend
            value = "logprob"
        else:
            raise InvalidParameterError(
                f"cannot use {type(backend).__name__} as the model of a DocumentGame: pass a "
                "whybox.llm backend (LocalBackend, OpenAIBackend, CallableBackend) or a function "
                "score(query, documents, answer) -> float."
            )
        if value not in VALUES:
            raise InvalidParameterError(
                f"value={value!r} is not one of {list(VALUES)} (the answer's log-probability, "
                "or the similarity of a regenerated answer)."
            )
        if value == "logprob" and self._score_fn is None and not backend.supports_logprobs:
            raise UnsupportedModelError(
                f"value='logprob' needs log-probabilities, but the backend {backend.name!r} "
                "gives none. Use value='similarity' (answers regenerated and compared with "
                "TF-IDF or MiniLM), or a backend with logprobs (LocalBackend on a "
                "transformers model, OpenAIBackend on an endpoint that returns logprobs, "
                "CallableBackend(logprobs=...))."
            )
        if prompt_template is None:
            prompt_template = DEFAULT_TEMPLATE
        if isinstance(prompt_template, str):
            for key in ("{context}", "{query}"):
                if key not in prompt_template:
                    raise InvalidParameterError(
                        f"prompt_template must contain {key} (and may contain the other of "
                        "{context} / {query}); got " + repr(prompt_template[:60]) + "."
                    )
        elif not callable(prompt_template):
            raise InvalidParameterError(
                "prompt_template must be a format string with {context} and {query}, or a "
                "function (query, documents) -> prompt."
            )
        self.backend = backend
        self.query = query
        self.documents = docs
        self.value_kind = value
        self.prompt_template = prompt_template
        self.granularity = granularity
        self.separator = str(separator)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        self.llm_calls = 0
        if granularity == "document":
            sources, doc_of, labels = docs, list(range(len(docs))), None
        else:
            sources, doc_of, labels = [], [], []
            for d, text in enumerate(docs):
                for s, sent in enumerate(split_sentences(text)):
                    sources.append(sent)
                    doc_of.append(d)
                    labels.append(source_label(f"{d}.{s}", sent))
        self.sources = list(sources)
        self.doc_of = np.asarray(doc_of, dtype=np.int64)
        names = labels or [source_label(str(j), t) for j, t in enumerate(self.sources)]
        super().__init__(len(self.sources), names, cache=cache)
        if value == "similarity" and not callable(similarity):
            raise InvalidParameterError(
                "value='similarity' needs similarity=, a function (answers, reference) -> "
                "array of similarities, e.g. whybox.text.tokenshap.tfidf_similarity or "
                "minilm_similarity (RagAttribution(value='similarity', similarity='tfidf') "
                "picks them by name)."
            )
        self._similarity = similarity if value == "similarity" else None
        self.similarity = str(getattr(similarity, "__name__", "callable"))
        if answer is None:
            if self._score_fn is not None:
                raise InvalidParameterError(
                    "answer=None asks the model to generate the answer, but a score function "
                    "does not generate; pass answer=."
                )
            answer = self._generate([self.prompt(np.ones(self.n_players, dtype=bool))])[0]
            self.generated = True
        else:
            self.generated = False
        if not isinstance(answer, str):
            raise InvalidInputError(f"answer must be a string, got {type(answer).__name__}.")
        self.answer = answer

    # ------------------------------------------------------------------ prompts
    def kept_documents(self, coalition: np.ndarray) -> list[str]:
        """The documents of the context for one coalition (bool (n_players,)), in order."""
        keep = np.asarray(coalition, dtype=bool)
        if self.granularity == "document":
            return [d for d, k in zip(self.documents, keep, strict=True) if k]
        out = []
        for d in range(len(self.documents)):
            sents = [
                s for s, o, k in zip(self.sources, self.doc_of, keep, strict=True) if o == d and k
            ]
            if sents:
                out.append(" ".join(sents))
        return out

    def prompt(self, coalition: np.ndarray) -> str:
        """The prompt the model sees for one coalition."""
        kept = self.kept_documents(coalition)
        if callable(self.prompt_template):
            return str(self.prompt_template(self.query, kept))
        return self.prompt_template.format(context=self.separator.join(kept), query=self.query)

    # ------------------------------------------------------------------ model calls
    def _generate(self, prompts: list[str]) -> list[str]:
        self.llm_calls += len(prompts)
        return self.backend.generate(prompts, max_new_tokens=self.max_new_tokens, temperature=0.0)

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        out = np.empty(coalitions.shape[0])
        for start in range(0, len(out), self.batch_size):
            block = coalitions[start : start + self.batch_size]
            out[start : start + len(block)] = self._evaluate_batch(block)
        bad = ~np.isfinite(out)
        if bad.any():
            i = int(np.argmax(bad))
            kept = np.flatnonzero(coalitions[i]).tolist()
            what = "all sources" if len(kept) == self.n_players else f"sources {kept}"
            if self.value_kind == "logprob" and out[i] == -np.inf:
                raise InvalidInputError(
                    f"the answer {self.answer[:60]!r} has log-probability -inf under the model "
                    f"with {what} in the context: the model gives it no probability, so "
                    "differences of log-probabilities are undefined. Explain an answer the "
                    "model can produce (answer=None generates one), or use value='similarity'."
                )
            raise ModelCallError(
                f"the model returned a non-finite value ({out[i]}) for the context with {what}."
            )
        return out

    def _evaluate_batch(self, block: np.ndarray) -> np.ndarray:
        if self._score_fn is not None:
            vals = []
            for keep in block:
                self.llm_calls += 1
                try:
                    vals.append(
                        float(self._score_fn(self.query, self.kept_documents(keep), self.answer))
                    )
                except Exception as exc:  # the user's function failed: say where
                    raise ModelCallError(
                        f"the score function raised on the context with sources "
                        f"{np.flatnonzero(keep).tolist()}: {type(exc).__name__}: {exc}"
                    ) from exc
            return np.asarray(vals)
        prompts = [self.prompt(keep) for keep in block]
        if self.value_kind == "logprob":
            self.llm_calls += len(prompts)
            return np.asarray(self.backend.logprobs(prompts, [self.answer] * len(prompts)), float)
        answers = self._generate(prompts)
        return np.asarray(self._similarity(answers, self.answer), dtype=float)  # type: ignore[misc]
