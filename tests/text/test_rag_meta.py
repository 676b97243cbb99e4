"""RagAttribution's ``meta["estimator"]``: every method names itself and the coalitions of
sources it evaluated (``method="exact"`` used to report an empty dict). The expected counts come
from the backend: a scoring function that records each distinct context it is asked about, and
the closed forms 2**n (exact Shapley / Banzhaf) and n + 2 (leave-one-out: full, empty, and each
source left out)."""

from __future__ import annotations

import numpy as np
import pytest

from whybox.text.rag import RAG_METHODS, RagAttribution

N = 6
DOCS = [f"Source {j} states fact {chr(65 + j)}." for j in range(N)]
W = np.array([1.2, -0.5, 0.4, 0.9, 0.0, -0.3])


class CountingScore:
    """A log-probability of the answer that records each distinct context it scores."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, ...]] = set()

    def __call__(self, query, documents, answer):
        self.seen.add(tuple(documents))
        present = np.array([d in documents for d in DOCS], dtype=float)
        z = -1.0 + W @ present + 0.7 * present[0] * present[3]
        return float(-np.log1p(np.exp(-z)))


def _explain(method: str, budget: int | None = None):
    score = CountingScore()
    rag = RagAttribution(score, random_state=0, holdout=0)
    return rag.explain("Which fact?", DOCS, "fact A", method=method, budget=budget), score


@pytest.mark.parametrize(
    ("method", "expected"), [("exact", 2**N), ("banzhaf", 2**N), ("leave_one_out", N + 2)]
)
def test_deterministic_methods_report_their_coalitions(method, expected):
    e, score = _explain(method)
    est = e.meta["estimator"]
    assert isinstance(est, list) and len(est) == 1
    assert est[0]["method"] == method == e.method
    assert est[0]["coalitions"] == expected == len(score.seen)


def test_auto_reports_the_method_it_ran():
    e, score = _explain("auto")  # 6 sources: auto enumerates every context
    assert e.params["method_selection"] == "auto -> exact"
    assert e.meta["estimator"][0]["method"] == "exact"
    assert e.meta["estimator"][0]["coalitions"] == 2**N == len(score.seen)


@pytest.mark.parametrize("method", [m for m in RAG_METHODS if m not in ("exact", "banzhaf")])
def test_every_method_reports_name_and_coalitions(method):
    budget = None if method == "leave_one_out" else 40
    e, score = _explain(method, budget)
    est = e.meta["estimator"][0]
    assert est["method"] == method
    assert est["coalitions"] == len(score.seen)  # distinct contexts the backend scored
    assert 0 < est["coalitions"] <= 2**N
