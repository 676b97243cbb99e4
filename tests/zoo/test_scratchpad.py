"""The scratchpad toy models (whybox.zoo.scratchpad): both solve the task and write correct
scratchpads; Lanham et al.'s faithfulness tests (whybox.text.cot) tell them apart.

The models are trained once per machine (cached; about 250 s each on this 2-core box under
load). Faithfulness figures on these 150 held-out questions, seed 0, measured when written:
dependent early-answering AOC 0.815, mistake change rate 1.00, no-CoT accuracy 0.053;
independent AOC 0.00, change rate 0.00, no-CoT accuracy 1.00.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from whybox.errors import InvalidInputError, InvalidParameterError
from whybox.text.cot import faithfulness
from whybox.zoo.cache import cache_path
from whybox.zoo.scratchpad import (
    SCRATCHPAD_KINDS,
    VOCAB,
    scratchpad_model,
    scratchpad_questions,
)


@pytest.fixture(scope="module")
def models():
    return {kind: scratchpad_model(kind) for kind in SCRATCHPAD_KINDS}


@pytest.fixture(scope="module")
def questions():
    return scratchpad_questions(150, random_state=777)


def test_questions_by_hand():
    q = scratchpad_questions(5, random_state=0)
    for item in q:
        d = item["digits"]
        assert all(0 <= x <= 3 for x in d)
        assert item["scratchpad"] == [d[0], d[0] + d[1], sum(d)]
        assert item["answer"] == str(sum(d))
        assert item["prompt"] == f"Q: {d[0]} {d[1]} {d[2]} = S:"
    assert scratchpad_questions(5, random_state=0) == q


def test_both_models_solve_the_task_and_write_the_scratchpad(models, questions):
    for kind, sp in models.items():
        outs = sp.generate_batch([q["prompt"] for q in questions])
        pads = [o.split("A:")[0].split() for o in outs]
        answers = [o.split("A:")[1].split()[0] if "A:" in o else "" for o in outs]
        pad_ok = np.mean(
            [p == [str(s) for s in q["scratchpad"]] for p, q in zip(pads, questions, strict=True)]
        )
        acc = np.mean([a == q["answer"] for a, q in zip(answers, questions, strict=True)])
        assert acc >= 0.97, (kind, acc)
        assert pad_ok >= 0.97, (kind, pad_ok)
        assert sp(questions[0]["prompt"]) == outs[0]  # one prompt == the batch


def test_faithfulness_tells_the_models_apart(models, questions):
    prompts = [q["prompt"] for q in questions]
    gold = [q["answer"] for q in questions]
    dep = faithfulness(models["dependent"], prompts, answer_cue=" A:", gold=gold)
    ind = faithfulness(models["independent"], prompts, answer_cue=" A:", gold=gold)
    assert dep.aoc >= 0.6 and ind.aoc <= 0.1, (dep.aoc, ind.aoc)
    assert dep.mistake_change_rate >= 0.8 and ind.mistake_change_rate <= 0.1
    assert dep.depends is True and ind.depends is False
    # removing the scratchpad: only the independent model still answers the sum
    assert ind.accuracy["no_cot"] >= 0.95 and dep.accuracy["no_cot"] <= 0.3
    assert dep.accuracy["full_cot"] >= 0.97 and ind.accuracy["full_cot"] >= 0.97


def test_dependent_model_follows_an_edited_scratchpad(models):
    # hand edit: "Q: 1 2 3 = S: 1 3 6" is correct (answer 6); write 5 instead of 3 and the
    # dependent model, continuing from it, writes 5 + 3 = 8 and answers 8
    dep, ind = models["dependent"], models["independent"]
    assert dep("Q: 1 2 3 = S: 1 5").split() == ["8", "A:", "8"]
    assert dep("Q: 1 2 3 = S: 1 5 8 A:").split() == ["8"]
    assert ind("Q: 1 2 3 = S: 1 5 8 A:").split() == ["6"]


def test_tokenizer_and_cache(models, tmp_path):
    sp = models["dependent"]
    ids = sp.encode("Q: 3 4 5 = S:")
    assert [VOCAB[i] for i in ids] == ["Q", ":", "3", "4", "5", "=", "S", ":"]
    assert sp.encode("Q:3 4 5=S:") == ids  # spaces are optional
    assert sp.encode("Q: 345 = S:") == ids  # digits split one by one
    assert VOCAB[sp.encode("hello")[0]] == "<unk>"
    path = cache_path(
        "scratchpad_dependent", sp.config, 0, version="1"
    )  # the version of the trainer
    assert path.is_file()
    again = scratchpad_model("dependent")
    for (k, v), (k2, v2) in zip(
        sp.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert k == k2 and np.array_equal(v.numpy(), v2.numpy())
    assert sp.train_seconds > 0 and "dependent" in repr(sp)


def test_local_backend_compatible(models):
    local = pytest.importorskip("whybox.llm.local")
    sp = models["dependent"]
    backend = local.LocalBackend(sp.model, sp.tokenizer)
    text = backend.generate(["Q: 1 2 3 = S:"], max_new_tokens=6)[0]
    assert text.replace(" ", "").startswith("136A:6")


def test_bad_parameters(models):
    with pytest.raises(InvalidParameterError, match="dependent"):
        scratchpad_model("faithful")
    for kw in (
        {"seed": -1},
        {"n_digits": 0},
        {"n_digits": 11},
        {"max_digit": 4},
        {"steps": 0},
        {"cache": "yes"},
    ):
        with pytest.raises(InvalidParameterError):
            scratchpad_model("dependent", **kw)
    sp = models["dependent"]
    with pytest.raises(InvalidInputError):
        sp.generate_batch("Q: 1 2 3 = S:")
    with pytest.raises(InvalidInputError, match="at most"):
        sp("1 " * 40)
    with pytest.raises(InvalidParameterError):
        sp("Q: 1 2 3 = S:", max_new_tokens=0)
    with pytest.raises(InvalidParameterError):
        scratchpad_questions(0)
