"""The RAG report section: documents escaped, values and ranks shown; tabular plots."""

from __future__ import annotations

import numpy as np
import pytest

from whybox.errors import InvalidParameterError
from whybox.explanation import Explanation
from whybox.report.rag import is_rag, rag_report, rag_section
from whybox.text.rag import RagAttribution, as_tabular

DOCS = ["<script>alert('x')</script> is evil.", "Plain & simple doc.", "A third one."]


def score(query, documents, answer):
    return -4.0 + 1.5 * (DOCS[0] in documents) + 0.5 * (DOCS[1] in documents)


def test_report_escapes_documents_and_shows_values():
    rag = RagAttribution(score)
    e = rag.explain("What <b>is</b> it?", DOCS, "<img src=x>", method="exact")
    assert is_rag(e)
    table = rag.cost_quality("Q", DOCS, "A", methods=("leave_one_out",), budgets=())
    html = rag_report(e, cost_quality=table).to_html()
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html
    assert "What &lt;b&gt;is&lt;/b&gt; it?" in html
    assert "Plain &amp; simple doc." in html
    sec = rag_section(e, figure=False)
    rows = sec["grids"][0]["rows"]
    assert [r["cells"][0]["lines"][0] for r in rows] == DOCS
    assert [r["cells"][1]["lines"][0] for r in rows] == ["1.5", "0.5", "0"]
    assert [r["cells"][-1]["lines"][0] for r in rows] == ["1", "2", "3"]
    with pytest.raises(InvalidParameterError, match="RagAttribution"):
        rag_section(Explanation(np.zeros((1, 2))))


def test_as_tabular_plots():
    e = RagAttribution(score).explain("Q", DOCS, "A", method="permutation", budget=20)
    t = as_tabular(e)
    assert t.values.shape == (1, 3) and t.feature_names == e.feature_names[0]
    np.testing.assert_array_equal(t.values[0], e.values[0])
    assert t.plot.bar() is not None and t.plot.waterfall(0) is not None
    assert float(t.completeness_gap()[0]) == pytest.approx(0.0, abs=1e-9)
