"""wb.describe (llm/describe.py): hypotheses in words, scored on held-out data.

Oracles: the stump model is known (``age > 40``), so its described rule must score near
100 % on held-out rows and a wrong rule near the majority baseline; accuracy and p-value are
recomputed here by applying the rule to the held-out rows by hand and calling
``scipy.stats.binomtest``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.llm.base import CallableBackend
from whybox.llm.describe import Description, binomial_p_value, describe


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "age": rng.uniform(18, 80, 300),
        "income": rng.normal(50, 10, 300),
        "city": rng.choice(["Oslo", "Rome", "Lima"], 300),
    })  # fmt: skip
    return X


def stump(X):
    return (X["age"] > 40).astype(int).to_numpy()


def _held_out(X, y, test_size=0.5, seed=0):
    """The split describe makes, rebuilt: stratified, rng.choice per class (False, True)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for cls in (False, True):
        idx = np.flatnonzero(y == cls)
        test[rng.choice(idx, round(len(idx) * test_size), replace=False)] = True
    return np.flatnonzero(test)


def test_offline_stump_finds_the_models_rule_and_scores_it_high(data):
    d = describe(stump, data)
    assert isinstance(d, Description)
    best = d.best
    assert "age >" in best.sentence
    t = float(re.search(r"age > ([0-9]+(?:\.[0-9]+)?)", best.sentence).group(1))
    assert abs(t - 40) < 2
    assert best.accuracy > 0.95 and best.p_value < 1e-10
    # the score and p-value equal a direct computation on the held-out rows
    y = stump(data) == 1
    held = _held_out(data, y)
    pred = data["age"].to_numpy()[held] > t
    k = int((pred == y[held]).sum())
    base = max(y[held].mean(), 1 - y[held].mean())
    assert best.n_correct == k and best.n_test == len(held)
    assert best.accuracy == pytest.approx(k / len(held))
    assert best.baseline == pytest.approx(base)
    assert best.p_value == pytest.approx(
        binomtest(k, len(held), base, alternative="greater").pvalue, rel=1e-9
    )


def test_wrong_hypothesis_scores_near_chance(data):
    d = describe(stump, data, hypotheses=[("income is high", lambda f: f["income"] > 50),
                                          ("age over 40", lambda f: f["age"] > 40)])  # fmt: skip
    by = {h.sentence: h for h in d.hypotheses}
    wrong, right = by["income is high"], by["age over 40"]
    assert right.accuracy == 1.0
    y = stump(data) == 1
    held = _held_out(data, y)
    acc = float(((data["income"].to_numpy()[held] > 50) == y[held]).mean())
    assert wrong.accuracy == pytest.approx(acc)
    assert abs(wrong.accuracy - 0.5) < 0.1 and wrong.accuracy <= wrong.baseline + 0.02
    assert wrong.p_value > 0.5
    assert d.best is right


def test_every_sentence_is_printed_with_its_score(data):
    d = describe(stump, data, n_hypotheses=3)
    text = str(d)
    for h in d.hypotheses:
        line = next(ln for ln in text.splitlines() if h.sentence in ln)
        assert "held-out accuracy" in line and "p = " in line and "majority" in line
    assert len(d.to_frame()) == 3 and d.to_json()["hypotheses"][0]["sentence"] == d.best.sentence


def test_data_pattern_from_labels(data):
    y = np.where(data["city"] == "Rome", "yes", "no")
    d = describe(y, data, target="yes")
    assert "city is 'Rome'" in d.best.sentence and d.best.accuracy == 1.0
    assert d.subject == "label"


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.5), (7, 10, 0.5), (60, 100, 0.55),
                                          (100, 100, 0.9), (3, 50, 0.01), (5, 5, 0.999)])  # fmt: skip
def test_binomial_p_value_equals_scipy(k, n, p):
    assert binomial_p_value(k, n, p) == pytest.approx(
        binomtest(k, n, p, alternative="greater").pvalue, rel=1e-9, abs=1e-300
    )


def _rule_reader(prompt: str) -> str:
    """A fake LLM: writes 'age above 40' as a hypothesis; checks a rule 'FEATURE above T' by
    reading the example's value from the prompt."""
    if prompt.rstrip().endswith("Rule:"):
        return "The output is 1 when age above 40.\nmore text"
    rule = re.search(r"Rule: .*?(\w+) above ([0-9.]+)", prompt)
    value = re.search(rf"{rule.group(1)} = ([-0-9.e]+)", prompt.split("Example:")[1])
    return " Yes" if float(value.group(1)) > float(rule.group(2)) else " No"


def test_backend_hypothesis_and_check_flow_through(data):
    be = CallableBackend(generate=_rule_reader, name="fake")
    d = describe(stump, data, backend=be, n_hypotheses=2, n_shown=5)
    assert d.best.sentence == "The output is 1 when age above 40."
    assert d.best.accuracy == 1.0
    assert d.params["backend"] == "fake"
    # a wrong sentence checked by the same backend
    d2 = describe(stump, data, backend=be, hypotheses=["The output is 1 when income above 50"])
    assert abs(d2.best.accuracy - 0.5) < 0.1


def test_bad_input(data):
    with pytest.raises(InvalidInputError, match="at least 4"):
        describe(stump, data.iloc[:2])
    with pytest.raises(InvalidInputError, match="nothing to describe"):
        describe(lambda X: np.zeros(len(X)), data, target=0)
    with pytest.raises(InvalidParameterError, match="target="):
        describe(np.array(["a", "b", "c"] * 100), data)
    with pytest.raises(UnsupportedModelError, match="backend="):
        describe(stump, data, hypotheses=["age is high"])
    with pytest.raises(UnsupportedModelError, match="backend=None"):
        describe(stump, data, backend=CallableBackend(logprobs=lambda p, c: 0.0))
    with pytest.raises(InvalidParameterError, match="test_size"):
        describe(stump, data, test_size=1.0)
    with pytest.raises(InvalidInputError, match="labels of X"):
        describe(np.zeros(3), data)


def test_texts_are_described_by_the_words_they_contain():
    rng = np.random.default_rng(1)
    words = ["movie", "plot", "actor", "great", "scene", "music", "long", "story"]
    texts = [" ".join(rng.choice(words, 5)) for _ in range(200)]

    def model(xs):
        return np.array([int("great" in t.split()) for t in xs])

    d = describe(model, texts)
    assert d.best.sentence == "The model's output is 1 when the text contains the word 'great'."
    assert d.best.accuracy == 1.0
    y = model(texts) == 1
    held = _held_out(None, y)
    base = max(y[held].mean(), 1 - y[held].mean())
    assert d.best.p_value == pytest.approx(
        binomtest(len(held), len(held), base, alternative="greater").pvalue, rel=1e-9
    )
    assert all(h.accuracy < 0.9 for h in d.hypotheses[1:])  # other words: no such rule


def test_backend_with_logprobs_checks_by_log_odds(data):
    def lp(prompt, cont):
        said = _rule_reader(prompt)
        return 0.0 if said == cont else -5.0

    be = CallableBackend(generate=_rule_reader, logprobs=lp, name="lp")
    d = describe(stump, data, backend=be, n_hypotheses=1)
    assert d.best.accuracy == 1.0
    assert be.calls > 0
    assert json_roundtrip(d.to_json())["hypotheses"][0]["accuracy"] == 1.0


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))
