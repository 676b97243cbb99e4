"""Fixtures for the internals tests: tiny random-weight transformers of every supported
architecture (builders in :mod:`tests.internals.tiny`) and an offline tokenizer."""

from __future__ import annotations

import pytest

from tests.internals.tiny import ARCHS, DECODERS, VOCAB, build, transformers

__all__ = ["ARCHS", "DECODERS", "VOCAB", "build"]


@pytest.fixture(params=ARCHS)
def tiny_model(request):
    """(arch, model) for every architecture in ARCHS."""
    return request.param, build(request.param)


@pytest.fixture(params=DECODERS)
def tiny_decoder(request):
    return request.param, build(request.param)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A byte-level BPE tokenizer trained offline on Python's own documentation text, saved
    and reloaded with ``AutoTokenizer.from_pretrained`` (as the oracles need).

    Its vocabulary (``len(tok)``, about 140: the byte alphabet seen plus merges) is larger
    than the tiny models' ``VOCAB``: a test that feeds its ids to a model builds the model
    with ``vocab_size=len(tok)``."""
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = list(topics.values())[:200]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()[:60],
        show_progress=False,
    )
    tok.train_from_iterator(text, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(folder)
    return transformers.AutoTokenizer.from_pretrained(folder)
