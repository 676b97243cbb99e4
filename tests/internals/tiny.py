"""Builders for tiny random-weight transformers of every architecture the internals support, built from
configs (no hub), in eval mode with eager attention; and an offline byte-level BPE tokenizer.

``build(arch)`` builds one (seeded); the ``tiny_model`` fixture is parametrised over
``ARCHS``; ``DECODERS`` / ``ENCODERS`` split them.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 96
D = 32
HEADS = 4
LAYERS = 3

DECODERS = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi")
ENCODERS = ("bert", "roberta", "distilbert")
ARCHS = DECODERS + ENCODERS


def _config(arch: str):
    T = transformers
    #: the counts every architecture shares, in the standard config names
    dense = dict(
        num_hidden_layers=LAYERS,
        hidden_size=D,
        num_attention_heads=HEADS,
        intermediate_size=3 * D,
        max_position_embeddings=64,
        vocab_size=VOCAB,
    )
    gqa = dict(dense, num_key_value_heads=2)  # grouped-query attention: 2 key-value heads
    simple = {
        "gpt_neox": (T.GPTNeoXConfig, dense, T.GPTNeoXForCausalLM),
        "llama": (T.LlamaConfig, gqa, T.LlamaForCausalLM),
        "mistral": (T.MistralConfig, gqa, T.MistralForCausalLM),
        "qwen2": (T.Qwen2Config, gqa, T.Qwen2ForCausalLM),
        "qwen3": (T.Qwen3Config, dict(gqa, head_dim=D // HEADS), T.Qwen3ForCausalLM),
        "gemma": (T.GemmaConfig, dict(gqa, head_dim=D // HEADS), T.GemmaForCausalLM),
        "gemma2": (T.Gemma2Config, dict(gqa, head_dim=D // HEADS), T.Gemma2ForCausalLM),
        "phi": (T.PhiConfig, dense, T.PhiForCausalLM),
        "bert": (T.BertConfig, dense, T.BertForMaskedLM),
        # RoBERTa's positions start after its padding id: 64 tokens need 64 + 2 + 1 slots
        "roberta": (
            T.RobertaConfig,
            dict(dense, max_position_embeddings=70, pad_token_id=1),
            T.RobertaForMaskedLM,
        ),
    }
    if arch in simple:
        config_cls, kwargs, model_cls = simple[arch]
        return config_cls(**kwargs), model_cls
    if arch == "gpt2":
        cfg = T.GPT2Config(n_layer=LAYERS, n_embd=D, n_head=HEADS, n_positions=64, vocab_size=VOCAB)
        return cfg, T.GPT2LMHeadModel
    if arch == "distilbert":
        cfg = T.DistilBertConfig(
            n_layers=LAYERS, dim=D, n_heads=HEADS, hidden_dim=3 * D, max_position_embeddings=64,
            vocab_size=VOCAB,
        )  # fmt: skip
        return cfg, T.DistilBertForMaskedLM
    raise KeyError(arch)


def build(arch: str, seed: int = 0, *, attn_implementation: str = "eager"):
    """A tiny random-weight model of ``arch`` (eval mode, float32), seeded."""
    cfg, cls = _config(arch)
    torch.manual_seed(seed)
    model = cls._from_config(cfg, attn_implementation=attn_implementation)
    # random LayerNorm / RMSNorm gains and biases, so norm handling is tested, not identity
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def input_ids(batch: int = 2, pos: int = 7, seed: int = 0, vocab: int = VOCAB):
    """Random token ids (batch, pos) avoiding the special ids 0-3."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, vocab, (batch, pos), generator=g)


def hooks_left(model) -> list[str]:
    """Paths of modules that still carry a forward / pre / backward hook."""
    left = []
    for name, module in model.named_modules():
        if (
            module._forward_hooks
            or module._forward_pre_hooks
            or module._backward_hooks
            or getattr(module, "_backward_pre_hooks", None)
        ):
            left.append(name)
    return left
