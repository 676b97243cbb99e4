"""Lanham et al.'s faithfulness tests on hand-written "models" whose dependence on the chain of
thought is known by construction; expected figures computed here by brute force from the
questions' digits (whybox.text.cot.faithfulness)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.llm.base import CallableBackend
from whybox.text.cot import (
    FaithfulnessReport,
    change_number,
    dots,
    faithfulness,
    reword,
    split_steps,
)

FRACTIONS = np.round(np.linspace(0, 1, 11), 10)


def _parse(prompt):
    q = [int(x) for x in re.search(r"Q:(.*?)=", prompt).group(1).split()]
    return q, prompt.split("S:", 1)[1]


def faithful(prompt):
    """Writes running sums mod 10; answers the scratchpad's last digit ('x' if none)."""
    q, pad = _parse(prompt)
    digits = [int(d) for d in re.findall(r"\d", pad)]
    if pad.rstrip().endswith("A:"):
        return f" {digits[-1]}" if digits else " x"
    cur = digits[-1] if digits else 0
    out = ""
    for d in q[len(digits) :]:
        cur = (cur + d) % 10
        out += f" {cur}"
    return out + f" A: {cur}"


def post_hoc(prompt):
    """Writes the same scratchpad; answers the sum of the question, whatever it wrote."""
    q, pad = _parse(prompt)
    if pad.rstrip().endswith("A:"):
        return f" {sum(q) % 10}"
    return faithful(prompt)


class Batched:
    """A model with generate_batch, as ScratchpadModel has (run in one call per batch)."""

    def __init__(self, fn):
        self.fn, self.batches = fn, 0

    def generate_batch(self, prompts, max_new_tokens=16):
        self.batches += 1
        return [self.fn(p) for p in prompts]


def _questions(n=40, seed=0):
    digits = np.random.default_rng(seed).integers(0, 10, (n, 3))
    return [f"Q: {a} {b} {c} = S:" for a, b, c in digits], digits


def _expected_early(digits):
    """Agreement of the faithful model when k = floor(3 f) steps are kept (by hand)."""
    sums = np.cumsum(digits, axis=1) % 10
    out = []
    for f in FRACTIONS:
        k = int(np.floor(3 * f + 1e-9))
        out.append(0.0 if k == 0 else float(np.mean(sums[:, k - 1] == sums[:, 2])))
    return np.array(out)


def test_faithful_model_by_hand():
    questions, digits = _questions()
    r = faithfulness(
        faithful, questions, answer_cue=" A:", gold=[str(s) for s in digits.sum(1) % 10]
    )
    expected = _expected_early(digits)
    np.testing.assert_allclose(r.early_agreement, expected)
    # area over the curve by the trapezoid rule, written out
    area = sum((expected[i] + expected[i + 1]) / 2 * 0.1 for i in range(10))
    assert r.aoc == pytest.approx(1 - area)
    assert r.aoc > 0.7
    # a corrupted step, regenerated: the final sum moves by the same shift -> always changes
    assert r.mistake_change_rate == 1.0
    assert r.paraphrase_agreement == 1.0  # digits kept: same answers
    assert r.filler_agreement == 0.0 and r.no_cot_agreement == 0.0
    assert r.accuracy == {"full_cot": 1.0, "filler": 0.0, "mistakes": 0.0, "no_cot": 0.0}
    assert r.depends is True and "depend on the chain of thought" in r.verdict
    assert isinstance(r, FaithfulnessReport) and r.n_questions == 40
    assert list(r.curve().columns) == ["fraction", "agreement"]
    assert "early_answering_aoc" in r.summary() and "verdict" in str(r)


def test_post_hoc_model_by_hand():
    questions, _ = _questions()
    r = faithfulness(post_hoc, questions, answer_cue=" A:")
    np.testing.assert_array_equal(r.early_agreement, np.ones(11))
    assert r.aoc == 0.0 and r.mistake_change_rate == 0.0
    assert r.filler_agreement == 1.0 and r.paraphrase_agreement == 1.0
    assert r.depends is False and "post-hoc" in r.verdict


def test_mistakes_without_regeneration_change_only_the_last_step():
    questions, _ = _questions(60, seed=3)
    r = faithfulness(
        faithful, questions, answer_cue=" A:", tests=["adding_mistakes"], regenerate=False
    )
    rec = r.records[r.records.test == "adding_mistakes"]
    # the faithful model reads the last digit only: the answer changes iff step 3 was hit
    hit_last = np.isclose(rec["condition"].to_numpy(float), 2 / 3)
    np.testing.assert_array_equal(~rec["same"].to_numpy(bool), hit_last)
    assert r.mistake_change_rate == pytest.approx(hit_last.mean())
    assert 0 < hit_last.mean() < 1


def test_pluggable_mistake_paraphrase_filler():
    questions, _ = _questions(10)

    def to_nine(step, rng):
        return "9" if step != "9" else step

    r = faithfulness(
        faithful,
        questions,
        answer_cue=" A:",
        tests=["adding_mistakes"],
        mistake=to_nine,
        regenerate=False,
    )
    for p, cond in zip(r.records.prompt, r.records.condition, strict=True):
        if cond != 1.0:
            pad = p.split("S:")[1].split("A:")[0].split()
            assert pad[round(cond * 3)] == "9"

    def wording(prompt):  # a model whose answer hides in the wording
        return " changed" if "therefore" in prompt and prompt.endswith("A:") else faithful(prompt)

    r = faithfulness(
        wording,
        questions,
        answer_cue=" A:",
        tests=["paraphrasing"],
        paraphrase=lambda c: c + " therefore",
    )
    assert r.paraphrase_agreement == 0.0 and "hidden information" in r.verdict

    def counts_words(prompt):  # extra "compute": answers right once it sees 3 words
        q, pad = _parse(prompt)
        if prompt.endswith("A:"):
            return f" {sum(q) % 10}" if len(pad.split()) >= 4 else " x"
        return faithful(prompt)

    r = faithfulness(counts_words, questions, answer_cue=" A:", tests=["early_answering", "filler"])
    assert r.filler_agreement == 1.0 and r.no_cot_agreement == 0.0
    assert "filler tokens recover answers" in r.verdict


def test_calls_and_batched_backend_agree():
    questions, _ = _questions(20)
    # 1 CoT + answers for k = 0, 1, 2, 3 steps (k = 3 is the full CoT): 5 prompts a question
    backend = CallableBackend(generate=faithful)
    r = faithfulness(backend, questions, answer_cue=" A:", tests=["early_answering"])
    assert r.calls == 5 * 20 == backend.calls
    batched = Batched(faithful)
    r2 = faithfulness(batched, questions, answer_cue=" A:", tests=["early_answering"])
    assert batched.batches == 2 and r2.calls == 100
    np.testing.assert_array_equal(r.early_agreement, r2.early_agreement)


def test_random_state_reproducible_and_matters():
    questions, _ = _questions(30)
    kw = {"answer_cue": " A:", "tests": ["adding_mistakes"], "regenerate": False}
    a = faithfulness(faithful, questions, random_state=1, **kw).records
    b = faithfulness(faithful, questions, random_state=1, **kw).records
    c = faithfulness(faithful, questions, random_state=2, **kw).records
    assert a.equals(b) and not a.equals(c)


# ---------------------------------------------------------------------- the pieces
def test_split_steps_by_hand():
    assert split_steps(" 3 7 2") == [(1, 2), (3, 4), (5, 6)]
    assert split_steps("First, 2+2=4. So 4! Done") == [(0, 13), (14, 19), (20, 24)]
    assert split_steps("a b\n c d\n") == [(0, 3), (5, 8)]
    assert split_steps("one two", "lines") == [(0, 7)]
    assert split_steps("") == []
    with pytest.raises(InvalidParameterError, match="lines"):
        split_steps("a", "paragraphs")


def test_change_number_reword_dots_by_hand():
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = change_number("so 12 + 5 = 17", rng)
        assert out != "so 12 + 5 = 17"
        diff = [i for i, (x, y) in enumerate(zip(out, "so 12 + 5 = 17", strict=True)) if x != y]
        assert len(diff) == 1 and diff[0] in (4, 8, 13)  # the last digit of one number
    assert change_number("no digits", rng) == "no digits"
    assert (
        reword("So the sum is 7, therefore  we get 7.")
        == "Therefore the total is 7, so we obtain 7."
    )
    assert reword(" 3 7 2") == " 3 7 2"
    assert dots("12 + 5\n= 17") == "... ... ...\n... ..."


# ---------------------------------------------------------------------- bad input
def test_bad_input():
    questions, _ = _questions(3)
    with pytest.raises(InvalidInputError, match="non-empty list"):
        faithfulness(faithful, [])
    with pytest.raises(InvalidInputError):
        faithfulness(faithful, "Q: 1 2 3 = S:")
    with pytest.raises(InvalidInputError):
        faithfulness(faithful, ["ok", 3])
    with pytest.raises(InvalidInputError, match="gold"):
        faithfulness(faithful, questions, gold=["1"])
    with pytest.raises(UnsupportedModelError, match="generate"):
        faithfulness(CallableBackend(logprobs=lambda p, c: 0.0), questions)
    with pytest.raises(InvalidParameterError):
        faithfulness(42, questions)
    with pytest.raises(InvalidParameterError, match="tests"):
        faithfulness(faithful, questions, tests=["early", "filler"])
    for fr in ([0.5], [0, 1.5], [1, 0], [[0, 1]]):
        with pytest.raises(InvalidParameterError, match="fractions"):
            faithfulness(faithful, questions, fractions=fr)
    with pytest.raises(InvalidParameterError, match=r"\[0, 1\]"):
        faithfulness(faithful, questions, threshold=2)
    with pytest.raises(InvalidParameterError, match="steps"):
        faithfulness(faithful, questions, steps="chapters")


def test_report_html_escapes_and_notes():
    questions, _ = _questions(5)

    def shouty(prompt):  # answers with markup
        return " <script>" if prompt.endswith("A:") else faithful(prompt)

    r = faithfulness(shouty, questions, answer_cue=" A:", paraphrase=lambda c: "<b>" + c)
    page = r._repr_html_()
    assert "<script>" not in page and "<b>" not in page.replace("<b>Chain", "")
    assert set(r.records["answer"]) == {"<script>"}
    assert r.paraphrase_agreement == 1.0  # every answer is the same string
    assert r.notes == [] and r.aoc == 0.0


def test_empty_cot_and_unchangeable_steps_are_noted():
    questions, _ = _questions(4)

    def terse(prompt):  # writes no reasoning at all
        return " A: 1"

    r = faithfulness(
        terse, questions, answer_cue=" A:", tests=["adding_mistakes", "early_answering"]
    )
    assert np.isnan(r.mistake_change_rate)
    assert r.notes == ["4 CoTs had no step the mistake function changes"]
    np.testing.assert_array_equal(r.early_agreement, np.ones(11))
    assert r.depends is False


def test_plot_draws_the_curve():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    questions, digits = _questions(10)
    r = faithfulness(faithful, questions, answer_cue=" A:", tests=["early_answering"])
    ax = r.plot()
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, FRACTIONS)
    np.testing.assert_allclose(y, _expected_early(digits))
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
