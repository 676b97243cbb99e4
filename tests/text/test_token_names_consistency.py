"""Token names do not depend on whether an explainer was given text or token ids.

The text path names a token by the text it covers (``whybox.text.tokens.tokenize``); the id path
of AttnLRP and of the attention family (rollout, flow, raw attention, Chefer, Chefer-LRP) used to
name it by the tokenizer's vocabulary string (byte-level BPE's ``'Ġfor'``). The expected names
come from the tokenizer itself: ``tok.decode([i])`` per id (GPT-2 byte-level BPE) and the
WordPiece vocabulary strings with their ``##`` continuation marker removed (MiniLM).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import whybox as wb  # noqa: E402

TEXT = "The for statement is used to"
FAMILY = ["AttentionRollout", "RawAttention", "AttentionFlow", "CheferRelevance", "CheferLRP"]


@pytest.fixture(scope="module")
def lm():
    return wb.zoo.tiny_lm()


@pytest.fixture(scope="module")
def clf():
    return wb.zoo.sentiment_classifier()


@pytest.mark.parametrize("name", FAMILY)
def test_attention_family_names_ids_as_text(lm, name):
    model, tok = lm
    enc = tok(TEXT, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    expected = [tok.decode([i]) for i in ids]
    assert any(t.startswith("Ġ") for t in tok.convert_ids_to_tokens(ids))  # the case at stake
    explainer = getattr(wb, name)(model)
    by_text = explainer.explain(TEXT, tokenizer=tok)
    by_ids = explainer.explain(enc, tokenizer=tok)
    assert by_ids.feature_names == by_text.feature_names == [expected]
    assert by_ids.meta["tokens"] == by_text.meta["tokens"] == [expected]


def test_attnlrp_names_ids_as_the_text_path(lm):
    model, tok = lm
    enc = tok(TEXT, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    target = tok.encode(" the")[0]
    exp = wb.AttnLRP(model).explain(enc, target=target, tokenizer=tok)
    assert exp.feature_names == [[tok.decode([i]) for i in ids]]
    assert (
        exp.feature_names == wb.AttentionRollout(model).explain(TEXT, tokenizer=tok).feature_names
    )
    assert exp.meta["target_names"] == [" the"] == [tok.decode([target])]
    plain = wb.AttnLRP(model).explain(enc, target=target)  # no tokenizer: ids in brackets
    assert plain.feature_names == [[f"[{i}]" for i in ids]]


def test_wordpiece_names_drop_the_continuation_marker(clf):
    model, tok = clf
    text = "unbelievably wonderful filmmaking"
    enc = tok(text, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    raw = tok.convert_ids_to_tokens(ids)
    assert any(t.startswith("##") for t in raw)  # a word split into pieces
    specials = set(tok.all_special_ids)
    expected = [t if i in specials else t.removeprefix("##") for i, t in zip(ids, raw, strict=True)]
    by_ids = wb.AttentionRollout(model).explain(enc, tokenizer=tok)
    by_text = wb.AttentionRollout(model).explain(text, tokenizer=tok)
    assert by_ids.feature_names == [expected] == by_text.meta["tokens"]
    # the text path leaves special tokens out of the players
    assert by_text.feature_names == [
        [t for i, t in zip(ids, expected, strict=True) if i not in specials]
    ]
    lrp = wb.AttnLRP(model).explain(enc, target=1, tokenizer=tok)
    assert lrp.feature_names == [expected]
    assert lrp.meta["target_names"] == [model.config.id2label[1]]  # a class, not a vocabulary token
