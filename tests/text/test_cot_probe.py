"""ProbeMonitor on the scratchpad model: its token scores equal a direct whybox.Probe on
run_with_cache activations, and its spans are the runs of tokens above the threshold."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.internals.cache import run_with_cache  # noqa: E402
from whybox.internals.probing import Probe  # noqa: E402
from whybox.text.cot import CombinedMonitor, ProbeMonitor, RegexMonitor  # noqa: E402
from whybox.zoo.scratchpad import VOCAB, scratchpad_model, scratchpad_questions  # noqa: E402

SITE = "blocks.1.resid_post"


@pytest.fixture(scope="module")
def setup():
    sp = scratchpad_model("dependent")
    qs = scratchpad_questions(60, random_state=5)
    texts = [
        q["prompt"] + " " + " ".join(map(str, q["scratchpad"])) + " A: " + q["answer"] for q in qs
    ]
    ids = torch.tensor([sp.encode(t) for t in texts])
    _, cache = run_with_cache(sp.model, ids, names=SITE)
    X = cache[SITE].reshape(-1, cache[SITE].shape[-1]).numpy()
    words = [VOCAB[i] for i in ids.reshape(-1).tolist()]
    y = np.array([w.isdigit() and int(w) >= 3 for w in words])  # "a large digit"
    probe = Probe(random_state=0).fit(X, y)
    return sp, probe


def _runs(hot, offsets):
    """Character ranges of the maximal runs of True in ``hot`` (the oracle for spans)."""
    out, i = [], 0
    while i < len(hot):
        if hot[i]:
            j = i
            while j + 1 < len(hot) and hot[j + 1]:
                j += 1
            out.append((offsets[i][0], offsets[j][1]))
            i = j + 1
        else:
            i += 1
    return out


def _direct(sp, probe, text):
    ids = sp.encode(text)
    _, cache = run_with_cache(sp.model, torch.tensor([ids]), names=SITE)
    return probe.predict_proba(cache[SITE][0].numpy())[:, 1]


def test_token_scores_equal_direct_probe(setup):
    sp, probe = setup
    trace = "Q: 3 1 2 = S: 3 4 6 A: 6"
    monitor = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, threshold=0.5)
    r = monitor(trace)
    direct = _direct(sp, probe, trace)
    np.testing.assert_allclose(r.details["token_scores"], direct, rtol=0, atol=1e-12)
    assert r.details["tokens"] == list(trace.replace(" ", ""))  # every word is one character
    assert r.score == pytest.approx(direct.max())
    # spans: maximal runs of tokens above 0.5, as character offsets (computed here)
    expected = _runs(direct > 0.5, r.details["offsets"])
    assert [(s.start, s.end) for s in r.spans] == expected
    assert r.flagged == bool((direct > 0.5).any())
    # the probe learned "large digit" (>= 3): every digit >= 3 is inside a span, 1 and 2 not
    covered = {c for a, b in expected for c in range(a, b)}
    digits = [(i, int(ch)) for i, ch in enumerate(trace) if ch.isdigit()]
    assert all((i in covered) == (d >= 3) for i, d in digits)
    assert all(s.label == "True" for s in r.spans)


def test_prefix_is_run_not_scored(setup):
    sp, probe = setup
    prefix, trace = "Q: 3 1 2 = S:", " 3 4 6 A: 6"
    r = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, prefix=prefix)(trace)
    direct = _direct(sp, probe, prefix + trace)
    np.testing.assert_allclose(r.details["token_scores"], direct[8:], rtol=0, atol=1e-12)
    offsets = [(1, 2), (3, 4), (5, 6), (7, 8), (8, 9), (10, 11)]  # " 3 4 6 A: 6" by hand
    assert r.details["offsets"] == offsets
    assert [(s.start, s.end) for s in r.spans] == _runs(direct[8:] > 0.5, offsets)
    assert (1, 6) == (r.spans[0].start, r.spans[0].end)  # the digits 3 4 6


def test_threshold_and_positive_class(setup):
    sp, probe = setup
    trace = "Q: 3 1 2 = S: 3 4 6 A: 6"
    never = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, threshold=1.0)(trace)
    assert not never.flagged and never.spans == []
    small = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, positive=False)(trace)
    np.testing.assert_allclose(small.details["token_scores"], 1 - _direct(sp, probe, trace))
    probe_monitor = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer)
    both = CombinedMonitor([RegexMonitor(r"A:"), probe_monitor], "all")(trace)
    assert both.flagged and {s.monitor for s in both.spans} == {"regex", "probe"}


def test_bad_input(setup):
    sp, probe = setup
    with pytest.raises(InvalidParameterError, match="not fitted"):
        ProbeMonitor(sp.model, Probe(), SITE, sp.tokenizer)
    with pytest.raises(InvalidParameterError, match="classes"):
        ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, positive="maybe")
    for bad in (-1, 1.01, None):
        with pytest.raises(InvalidParameterError):
            ProbeMonitor(sp.model, probe, SITE, sp.tokenizer, threshold=bad)
    monitor = ProbeMonitor(sp.model, probe, SITE, sp.tokenizer)
    with pytest.raises(InvalidInputError, match="empty"):
        monitor("")
    with pytest.raises(InvalidInputError, match="at most"):
        monitor("1 " * 40)
    with pytest.raises(InvalidParameterError):
        ProbeMonitor(sp.model, probe, "blocks.9.resid_post", sp.tokenizer)("Q: 1 = S:")
