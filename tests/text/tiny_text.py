"""Offline tokenizers and tiny models for the text tests (no hub).

``wordpiece(vocab_size<=96)``: a BERT-style fast WordPiece tokenizer ([CLS] ... [SEP], a mask
token) whose vocabulary fits the tiny models of ``tests.internals.tiny`` (vocab 96): some whole
words, the letters and ``##`` letters, so unknown words split into several tokens.
``gpt_tokenizer()``: the same vocabulary with a BOS token and no [CLS]/[SEP]/[MASK] (a causal
LM's tokenizer without a mask token). ``classifier()``: a tiny BertForSequenceClassification;
``causal_lm(arch)``: a tiny causal LM.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "good", "bad", "is", "not", "very", "it"]
PUNCT = [".", ",", "!", "?"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def _vocab(specials: list[str]) -> dict[str, int]:
    items = specials + PUNCT + WORDS + LETTERS + ["##" + c for c in LETTERS]
    items = list(dict.fromkeys(items))
    assert len(items) <= 96, len(items)
    return {t: i for i, t in enumerate(items)}


def wordpiece():
    """BERT-like: [CLS] text [SEP], pad and mask tokens."""
    vocab = _vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = tokenizers.decoders.WordPiece()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def gpt_tokenizer(bos: bool = True, pad: bool = True):
    """A causal LM's tokenizer: optional <bos> prepended, a pad token, no mask token."""
    specials = ["<pad>", "<unk>", "<bos>"]
    vocab = _vocab(specials)
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="<unk>"))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    if bos:
        tok.post_processor = tokenizers.processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
        )
    tok.decoder = tokenizers.decoders.WordPiece()
    kw = {"pad_token": "<pad>"} if pad else {}
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>", model_max_length=64, **kw
    )


def classifier(num_labels: int = 3, seed: int = 0):
    from tests.internals.tiny import build

    cfg = build("bert").config
    cfg.num_labels = num_labels
    cfg.pad_token_id = 0
    cfg.initializer_range = 0.5  # random weights large enough for outputs that vary with input
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(cfg).eval()
    return model


def causal_lm(arch: str = "gpt2", seed: int = 0):
    from tests.internals.tiny import build

    return build(arch, seed=seed)
