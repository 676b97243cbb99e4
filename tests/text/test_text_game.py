"""whybox.games.text.TextGame: coalition values from direct model calls written here, batch-size
and padding invariance, the shared-prefix KV cache against the plain path, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.text.tiny_text import causal_lm, classifier, gpt_tokenizer, torch, wordpiece
from whybox.errors import InvalidParameterError, UnsupportedModelError, WhyboxError
from whybox.games.game import Game
from whybox.games.text import TextGame, model_kind
from whybox.text import tokenize

TEXT = "the cat sat on the mat"


def all_coalitions(n):
    return np.array(list(itertools.product([False, True], repeat=n)))


def direct_classifier(model, ids, cls):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return torch.softmax(logits, -1)[cls].item()


def direct_continuation(model, ids, cont):
    """Sum of log p(cont_t | ids, cont_<t) from one unpadded forward pass."""
    full = list(ids) + list(cont)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[len(ids) - 1 + t, c].item() for t, c in enumerate(cont))


@pytest.fixture(scope="module")
def clf():
    return classifier()


@pytest.fixture(scope="module")
def lm():
    return causal_lm("gpt2")


def test_classifier_values_equal_direct_calls(clf):
    tok = wordpiece()
    (row,) = tokenize(TEXT, tok)
    ids = np.array(row.input_ids)
    mask_id, pad_id = tok.mask_token_id, tok.pad_token_id
    C = all_coalitions(row.n_players)[::5]
    for masker in ("mask", "pad", "drop", "dog"):
        game = TextGame(clf, row, tokenizer=tok, target=2, masker=masker, batch_size=4)
        assert isinstance(game, Game) and game.n_players == 6
        got = game.value(C)[:, 0]
        want = []
        for c in C:
            keep = np.concatenate([[True], c, [True]])
            if masker == "drop":
                seq = ids[keep]
            else:
                rep = {"mask": mask_id, "pad": pad_id, "dog": tok.convert_tokens_to_ids("dog")}
                seq = np.where(keep, ids, rep[masker])
            want.append(direct_classifier(clf, seq.tolist(), 2))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_classifier_value_kinds_and_several_classes(clf):
    tok = wordpiece()
    (row,) = tokenize(TEXT, tok)
    C = all_coalitions(row.n_players)[:9]
    p = TextGame(clf, row, tokenizer=tok, target=[0, 2], value="prob").value(C)
    lp = TextGame(clf, row, tokenizer=tok, target=[0, 2], value="logprob").value(C)
    lo = TextGame(clf, row, tokenizer=tok, target=[0, 2], value="logit").value(C)
    assert p.shape == (9, 2)
    np.testing.assert_allclose(np.exp(lp), p, rtol=1e-10)
    # log-odds between two classes do not depend on the normaliser
    np.testing.assert_allclose(lo[:, 0] - lo[:, 1], lp[:, 0] - lp[:, 1], atol=1e-5)


def test_causal_continuation_equals_direct_calls(lm):
    tok = gpt_tokenizer()
    (row,) = tokenize(TEXT, tok)
    ids = np.array(row.input_ids)
    cont = tok("a dog", add_special_tokens=False)["input_ids"]
    C = all_coalitions(row.n_players)
    for masker in ("drop", "pad"):
        game = TextGame(lm, row, tokenizer=tok, target="a dog", masker=masker, value="logprob")
        got = game.value(C)[:, 0]
        want = []
        for c in C:
            keep = np.concatenate([[True], c])
            seq = ids[keep] if masker == "drop" else np.where(keep, ids, tok.pad_token_id)
            want.append(direct_continuation(lm, seq.tolist(), cont))
        np.testing.assert_allclose(got, want, atol=2e-5)
        prob = TextGame(lm, row, tokenizer=tok, target="a dog", masker=masker, value="prob")
        np.testing.assert_allclose(prob.value(C[:5])[:, 0], np.exp(want[:5]), rtol=1e-4)


def test_causal_default_target_is_next_token(lm):
    tok = gpt_tokenizer()
    (row,) = tokenize(TEXT, tok)
    with torch.no_grad():
        nxt = int(lm(input_ids=torch.tensor([row.input_ids])).logits[0, -1].argmax())
    game = TextGame(lm, row, tokenizer=tok, target=None, masker="drop")
    assert game.target_ids == [nxt]
    full = np.ones((1, row.n_players), bool)
    want = direct_continuation(lm, row.input_ids, [nxt])
    np.testing.assert_allclose(game.value(full)[0, 0], want, atol=1e-5)
    logit = TextGame(lm, row, tokenizer=tok, target=nxt, masker="drop", value="logit")
    with torch.no_grad():
        raw = lm(input_ids=torch.tensor([row.input_ids])).logits[0, -1, nxt].item()
    np.testing.assert_allclose(logit.value(full)[0, 0], raw, atol=1e-5)


@pytest.mark.parametrize("which", ["classifier", "causal"])
def test_batch_size_and_padding_invariance(which, clf, lm):
    model, tok = (clf, wordpiece()) if which == "classifier" else (lm, gpt_tokenizer())
    target = 1 if which == "classifier" else "the mat"
    (row,) = tokenize("the dog is not very good on a mat", tok)
    rng = np.random.default_rng(0)
    C = rng.random((40, row.n_players)) < 0.5
    ref = TextGame(
        model, row, tokenizer=tok, target=target, masker="drop", batch_size=1, kv_cache=False
    ).value(C)
    for bs in (3, 16, 64):
        got = TextGame(
            model, row, tokenizer=tok, target=target, masker="drop", batch_size=bs
        ).value(C)
        np.testing.assert_allclose(got, ref, atol=2e-5)
    # the same coalitions in another order (other batch neighbours, other padding)
    perm = rng.permutation(len(C))
    got = TextGame(model, row, tokenizer=tok, target=target, masker="drop", batch_size=7).value(
        C[perm]
    )
    np.testing.assert_allclose(got, ref[perm], atol=2e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_shared_prefix_cache_equals_plain_path(arch):
    model = causal_lm(arch)
    tok = gpt_tokenizer()
    (row,) = tokenize(TEXT, tok)
    C = all_coalitions(row.n_players)
    fast = TextGame(model, row, tokenizer=tok, target="a dog", masker="drop", batch_size=8)
    plain = TextGame(
        model, row, tokenizer=tok, target="a dog", masker="drop", batch_size=8, kv_cache=False
    )
    np.testing.assert_allclose(fast.value(C), plain.value(C), atol=2e-5)
    # 8 batches: the prefix pass runs where a batch shares more than the BOS token
    assert fast.n_forward > plain.n_forward == 8


def test_model_kind():
    assert model_kind(causal_lm("llama")) == "causal"
    assert model_kind(classifier()) == "classifier"
    from tests.internals.tiny import build

    with pytest.raises(UnsupportedModelError, match=r"causal LM .* sequence classifier"):
        model_kind(build("bert"))  # a masked LM


def test_bad_input(clf, lm):
    gtok = gpt_tokenizer()
    (grow,) = tokenize(TEXT, gtok)
    with pytest.raises(
        InvalidParameterError, match="no mask token; use masker='pad' or masker='drop'"
    ):
        TextGame(lm, grow, tokenizer=gtok, target="a dog", masker="mask")
    nopad = gpt_tokenizer(pad=False)
    with pytest.raises(InvalidParameterError, match="no pad token; use masker='drop'"):
        TextGame(lm, grow, tokenizer=nopad, target="a dog", masker="pad")
    with pytest.raises(InvalidParameterError, match="token id 500 is not in the vocabulary"):
        TextGame(lm, grow, tokenizer=gtok, target=500)
    with pytest.raises(InvalidParameterError, match="not in the tokenizer's vocabulary"):
        TextGame(lm, grow, tokenizer=gtok, target=" 日本")
    with pytest.raises(InvalidParameterError, match="value='logit' is defined for a one-token"):
        TextGame(lm, grow, tokenizer=gtok, target="a dog", value="logit")
    with pytest.raises(InvalidParameterError, match="baseline string"):
        TextGame(lm, grow, tokenizer=gtok, target="a dog", masker="a dog")
    wtok = wordpiece()
    (wrow,) = tokenize(TEXT, wtok)
    with pytest.raises(
        InvalidParameterError, match=r"is text to generate, but .* sequence classifier"
    ):
        TextGame(clf, wrow, tokenizer=wtok, target=" Paris")
    with pytest.raises(InvalidParameterError, match="out of range: the model has 3 classes"):
        TextGame(clf, wrow, tokenizer=wtok, target=3)
    with pytest.raises(WhyboxError, match="target= is required"):
        TextGame(clf, wrow, tokenizer=wtok, target=None)
    with pytest.raises(InvalidParameterError, match="masker="):
        TextGame(clf, wrow, tokenizer=wtok, target=0, masker=3)


def test_positionwise_baseline_text(clf):
    tok = wordpiece()
    (row,) = tokenize("the cat sat", tok)
    game = TextGame(clf, row, tokenizer=tok, target=0, masker="a dog mat")
    seq = game.sequences(np.array([[True, False, False]]))[0]
    assert tok.convert_ids_to_tokens(seq.tolist()) == ["[CLS]", "the", "dog", "mat", "[SEP]"]


def test_games_text_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, whybox.games.text, whybox.text; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_drop_without_specials_starts_the_empty_text_from_bos(lm):
    tok = gpt_tokenizer(bos=False)
    (row,) = tokenize("the cat sat", tok)
    assert not row.special.any()
    cont = tok(" a dog", add_special_tokens=False)["input_ids"]
    game = TextGame(lm, row, tokenizer=tok, target=" a dog", masker="drop", batch_size=3)
    C = all_coalitions(3)
    got = game.value(C)[:, 0]
    want = [
        direct_continuation(
            lm, [row.input_ids[j] for j in np.flatnonzero(c)] or [tok.bos_token_id], cont
        )
        for c in C
    ]
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_a_model_that_raises_is_named(monkeypatch):
    from whybox.errors import ModelCallError

    model = classifier()
    tok = wordpiece()
    (row,) = tokenize("the cat", tok)
    game = TextGame(model, row, tokenizer=tok, target=0)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(ModelCallError, match=r"BertForSequenceClassification raised .* memory"):
        game.value(np.ones((1, 2), bool))
