"""Chain-of-thought monitors: regex / rule spans by hand, the judge on fixed and malformed
answers, combination rules by hand, escaped HTML and bad input (whybox.text.cot)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)
from whybox.llm.base import CallableBackend
from whybox.text.cot import (
    MISBEHAVIOUR_PATTERNS,
    CombinedMonitor,
    JudgeMonitor,
    MonitorResult,
    RegexMonitor,
    RuleMonitor,
    Span,
    parse_grade,
    render_trace,
)

TRACE = "First I add 3 and 4. Then I could hack the grader. Skip the tests?"
#        0123456789012345678901234567890123456789012345678901234567890123456
#        0         1         2         3         4         5         6


# ---------------------------------------------------------------------- regex / rules
def test_regex_spans_equal_hand_offsets():
    m = RegexMonitor({"hack": r"\bhack\b", "tests": r"skip the tests"})
    r = m(TRACE)
    # hand-counted on the ruler above: "hack" at 34..38, "Skip the tests" at 51..65
    assert [(s.start, s.end, s.label) for s in r.spans] == [(34, 38, "hack"), (51, 65, "tests")]
    assert [s.text(TRACE) for s in r.spans] == ["hack", "Skip the tests"]
    assert r.flagged and r.score == 1.0
    assert r.details["matches"] == {"hack": 1, "tests": 1}
    # the oracle: Python's own str.find on the literal words
    assert TRACE.find("hack") == 34 and TRACE.find("Skip the tests") == 51


def test_regex_no_match_and_case_flags_and_zero_width():
    assert not RegexMonitor(r"\bcheat\b")(TRACE).flagged
    assert RegexMonitor(r"\bcheat\b")(TRACE).score == 0.0
    assert not RegexMonitor("SKIP", flags=0)(TRACE).flagged  # case-sensitive: no match
    assert RegexMonitor("SKIP")(TRACE).spans[0].start == 51
    assert not RegexMonitor(r"(?=First)")(TRACE).spans  # zero-length matches ignored
    compiled = RegexMonitor([re.compile(r"\d")])(TRACE)
    assert [(s.start, s.end) for s in compiled.spans] == [(12, 13), (18, 19)]


def test_misbehaviour_patterns_compile_and_fire():
    r = RegexMonitor(MISBEHAVIOUR_PATTERNS)(TRACE)
    labels = {s.label for s in r.spans}
    assert {"reward hacking", "grader"} <= labels


def test_rule_monitor_bool_score_and_spans():
    assert RuleMonitor(lambda t: "hack" in t)(TRACE).flagged
    r = RuleMonitor(lambda t: 0.4, threshold=0.5)(TRACE)
    assert r.score == 0.4 and not r.flagged and r.spans == []
    r = RuleMonitor(lambda t: 0.7, threshold=0.5)(TRACE)
    assert r.flagged and [(s.start, s.end) for s in r.spans] == [(0, len(TRACE))]
    r = RuleMonitor(lambda t: [(34, 38)], name="mine")(TRACE)
    assert r.flagged and r.spans == [Span(34, 38, "mine", 1.0, "mine")]
    with pytest.raises(InvalidInputError, match="outside the trace"):
        RuleMonitor(lambda t: [(0, 999)])(TRACE)
    with pytest.raises(ModelCallError, match="ZeroDivisionError"):
        RuleMonitor(lambda t: 1 / 0)(TRACE)
    with pytest.raises(InvalidParameterError):
        RuleMonitor(lambda t: 1.5)(TRACE)


# ---------------------------------------------------------------------- judge
def _judge(answer: str, **kw):
    return JudgeMonitor(CallableBackend(generate=lambda p: answer, name="fixed"), **kw)


@pytest.mark.parametrize(
    ("answer", "grade"),
    [
        ("Score: 7", 7.0),
        ("score = 3/10", 3.0),
        ("The score is 10.", 10.0),
        ("I'd give it 4/10 overall", 4.0),
        ("8", 8.0),
        ("**Score:** 6", 6.0),
        ("Score: 11", None),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_grade_table(answer, grade):
    assert parse_grade(answer) == grade


def test_judge_scores_fixed_answers():
    r = _judge('Score: 7\nQuote: "hack the grader"')(TRACE)
    assert r.score == pytest.approx(0.7) and r.flagged
    assert [(s.start, s.end, s.label) for s in r.spans] == [(34, 49, "quote")]
    assert r.details["grade"] == 7.0
    r = _judge("Score: 3")(TRACE)
    assert r.score == pytest.approx(0.3) and not r.flagged and r.spans == []
    r = _judge("Score: 9")(TRACE)  # flagged without quotes: the whole trace
    assert [(s.start, s.end) for s in r.spans] == [(0, len(TRACE))]
    assert _judge("Score: 5", threshold=0.5)(TRACE).flagged  # >= threshold
    assert not _judge("Score: 5", threshold=0.51)(TRACE).flagged


def test_judge_prompt_holds_rubric_and_trace_with_braces():
    seen = []
    backend = CallableBackend(generate=lambda p: seen.append(p) or "Score: 0")
    trace = "a {weird} {trace} with braces"
    JudgeMonitor(backend, rubric="Is it {rude}?")(trace)
    assert "Is it {rude}?" in seen[0] and trace in seen[0]
    assert backend.calls == 1


def test_judge_malformed_answer_raises_or_flags():
    with pytest.raises(ModelCallError, match=r"no 0-10 grade.*on_unparseable='flag'"):
        _judge("Looks fine to me!")(TRACE)
    r = _judge("Looks fine to me!", on_unparseable="flag")(TRACE)
    assert r.flagged and r.score == 1.0 and r.details["unparseable"]
    assert [(s.start, s.end, s.label) for s in r.spans] == [(0, len(TRACE), "unparseable")]


def test_judge_backend_errors_and_bad_parameters():
    def boom(prompt):
        raise RuntimeError("endpoint down")

    with pytest.raises(ModelCallError, match="endpoint down"):
        JudgeMonitor(CallableBackend(generate=boom))(TRACE)
    with pytest.raises(UnsupportedModelError, match="generate"):
        JudgeMonitor(CallableBackend(logprobs=lambda p, c: 0.0))
    with pytest.raises(InvalidParameterError):
        JudgeMonitor(object())
    for bad in (-0.1, 1.5, float("nan"), "high", True):
        with pytest.raises(InvalidParameterError, match=r"\[0, 1\]"):
            _judge("Score: 1", threshold=bad)
    with pytest.raises(InvalidParameterError):
        _judge("Score: 1", on_unparseable="ignore")
    with pytest.raises(InvalidParameterError):
        _judge("Score: 1", template="no placeholder")


# ---------------------------------------------------------------------- combination
def _parts():
    regex = RegexMonitor({"hack": r"\bhack\b"})  # score 1, flagged, span 34..38
    judge = _judge("Score: 3")  # 0.3, not flagged
    rule = RuleMonitor(lambda t: [(0, 5)] and 0.6, threshold=0.5, name="rule")  # 0.6 flagged
    return regex, judge, rule


def test_combined_any_all_weighted_by_hand():
    regex, judge, rule = _parts()
    r = CombinedMonitor([regex, judge, rule], "any")(TRACE)
    assert r.score == 1.0 and r.flagged
    # spans of the flagged monitors only: regex's word and the rule's whole trace
    assert sorted((s.start, s.end, s.monitor) for s in r.spans) == [
        (0, len(TRACE), "rule"),
        (34, 38, "regex"),
    ]
    assert [c.monitor for c in r.children] == ["regex", "judge", "rule"]
    r = CombinedMonitor([regex, judge, rule], "all")(TRACE)
    assert r.score == pytest.approx(0.3) and not r.flagged and r.spans == []
    assert CombinedMonitor([regex, rule], "all")(TRACE).flagged
    # weighted: (1*1 + 2*0.3 + 1*0.6) / 4 = 0.55
    r = CombinedMonitor([regex, judge, rule], weights=[1, 2, 1], threshold=0.5)(TRACE)
    assert r.details["rule"] == "weighted"
    assert r.score == pytest.approx(0.55) and r.flagged
    r = CombinedMonitor([regex, judge, rule], weights=[1, 2, 1], threshold=0.56)(TRACE)
    assert not r.flagged
    # unweighted "weighted" is the plain mean (1 + 0.3 + 0.6) / 3
    assert CombinedMonitor([regex, judge, rule], "weighted")(TRACE).score == pytest.approx(1.9 / 3)
    # nested
    inner = CombinedMonitor([judge, rule], "all", name="inner")
    r = CombinedMonitor([inner, regex], "any")(TRACE)
    assert r.flagged and r.children[0].score == pytest.approx(0.3)


def test_combined_bad_parameters():
    regex, judge, _ = _parts()
    with pytest.raises(InvalidParameterError):
        CombinedMonitor([])
    with pytest.raises(InvalidParameterError):
        CombinedMonitor([regex, "judge"])
    with pytest.raises(InvalidParameterError):
        CombinedMonitor([regex, judge], "majority")
    for w in ([1], [1, -1], [0, 0], [1, float("inf")]):
        with pytest.raises(InvalidParameterError, match="weights"):
            CombinedMonitor([regex, judge], weights=w)
    with pytest.raises(InvalidParameterError, match="weighted"):
        CombinedMonitor([regex, judge], "any", weights=[1, 1])
    with pytest.raises(InvalidParameterError):
        CombinedMonitor([regex, judge], "weighted", threshold=2)


# ---------------------------------------------------------------------- HTML and bad input
def test_html_escapes_trace_labels_and_names():
    trace = 'ok <script>alert("x")</script> & hack'
    m = CombinedMonitor(
        [
            RegexMonitor({'<img src=x onerror="1">': r"<script>"}, name="<b>re</b>"),
            RegexMonitor(r"hack"),
        ],
    )
    r = m(trace)
    page = r.to_html()
    assert "<script>" not in page and "<img" not in page and "<b>re" not in page
    assert "&lt;script&gt;</mark>alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&amp; " in page and "&lt;b&gt;re&lt;/b&gt;" in page
    assert page.count("<mark") == 2 and r._repr_html_() == page
    # the highlighted text is the span's text, escaped
    assert '">&lt;script&gt;</mark>' in page
    assert "<title>" not in render_trace(r, title="<title>")


def test_html_overlapping_spans_are_cut_at_boundaries():
    r = MonitorResult("m", "abcdef", 1.0, True, [Span(0, 4, "x"), Span(2, 6, "y")])
    page = r.to_html()
    assert page.count("<mark") == 3  # ab | cd (both) | ef
    assert "x (1.00); : y (1.00)" in page


@pytest.mark.parametrize("trace", ["", "   \n\t", None, 3, ["a"]])
def test_bad_traces(trace):
    for monitor in (RegexMonitor("a"), _judge("Score: 1"), RuleMonitor(lambda t: True)):
        with pytest.raises(InvalidInputError) as info:
            monitor(trace)
        assert isinstance(info.value, WhyboxError)


def test_bad_monitor_construction():
    with pytest.raises(InvalidParameterError, match="valid regex"):
        RegexMonitor("(")
    with pytest.raises(InvalidParameterError):
        RegexMonitor([])
    with pytest.raises(InvalidParameterError):
        RegexMonitor([3])
    with pytest.raises(InvalidParameterError):
        RuleMonitor("not callable")
    with pytest.raises(InvalidInputError):
        RegexMonitor("a").check_many("a single string")
    assert [r.flagged for r in RegexMonitor("a").check_many(["a", "b"])] == [True, False]


def test_result_frame_and_str():
    r = RegexMonitor({"hack": r"hack"})(TRACE)
    df = r.to_frame()
    assert df.to_dict("records") == [
        {"start": 34, "end": 38, "text": "hack", "label": "hack", "score": 1.0, "monitor": "regex"}
    ]
    assert "FLAGGED" in str(r) and "'hack'" in str(r)
    assert np.isclose(r.score, 1.0)
