"""wb.sae.evaluate: every metric against a computation written here (numpy on activations
captured with run_with_cache, forward passes patched by hand with plain torch hooks, the
model's own Hugging Face loss), CE loss recovered at its closed-form ends (1 for an identity
SAE, 0 for one that outputs zeros), position exclusion, transcoders, encoders, clean-up after
errors and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.internals.tiny import build, hooks_left, input_ids  # noqa: E402
from whybox.errors import InvalidInputError, InvalidParameterError, ModelCallError  # noqa: E402
from whybox.internals.cache import run_with_cache  # noqa: E402
from whybox.sae.config import SAEConfig  # noqa: E402
from whybox.sae.evaluation import SAEEvaluation, evaluate  # noqa: E402
from whybox.sae.models import SAE  # noqa: E402

D = 32
SITE = "blocks.1.resid_post"
F = torch.nn.functional


@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


def identity_sae(site: str = SITE, d: int = D) -> SAE:
    """A standard (ReLU) SAE with d_sae = 2 d whose output is its input exactly:
    relu(x) @ I + relu(-x) @ (-I) = x."""
    sae = SAE.create(SAEConfig(d_in=d, d_sae=2 * d, architecture="standard", hook_name=site))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def random_sae(seed: int = 1, site: str = SITE, d_sae: int = 64) -> SAE:
    """A standard SAE with random weights and biases: some latents die, some are dense."""
    sae = SAE.create(
        SAEConfig(d_in=D, d_sae=d_sae, architecture="standard", hook_name=site), random_state=seed
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.mul_(3.0)
        sae.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.4 - 0.2)
        sae.b_enc[:4] = -100.0  # never fire
        sae.b_enc[4:8] = 100.0  # always fire
        sae.b_dec.copy_(torch.randn(D, generator=g) * 0.05)
    return sae


def numpy_metrics(x: np.ndarray, y: np.ndarray, sae: SAE, dense: float = 0.1) -> dict:
    """The reconstruction / sparsity metrics of a standard SAE, from the definitions."""
    W_enc, b_enc = sae.W_enc.detach().double().numpy(), sae.b_enc.detach().double().numpy()
    W_dec, b_dec = sae.W_dec.detach().double().numpy(), sae.b_dec.detach().double().numpy()
    x, y = x.astype(np.float64), y.astype(np.float64)
    centred = x - b_dec if sae.cfg.apply_b_dec_to_input else x
    f = np.maximum(centred @ W_enc + b_enc, 0.0)
    h = f @ W_dec + b_dec
    err = ((y - h) ** 2).sum(1)
    nin, nout = np.linalg.norm(y, axis=1), np.linalg.norm(h, axis=1)
    fvu = err.sum() / ((y - y.mean(0)) ** 2).sum()
    density = (f > 0).mean(0)
    return {
        "l0": (f > 0).sum(1).mean(),
        "l1": f.sum(1).mean(),
        "mse": err.mean(),
        "fvu": fvu,
        "explained_variance": 1 - fvu,
        "cossim": ((y * h).sum(1) / (nin * nout)).mean(),
        "l2_norm_in": nin.mean(),
        "l2_norm_out": nout.mean(),
        "l2_ratio": (nout / nin).mean(),
        "relative_reconstruction_bias": (nout**2).mean() / (y * h).sum(1).mean(),
        "dead_fraction": (density == 0).mean(),
        "dense_fraction": (density > dense).mean(),
        "density": density,
    }


def site_output(model, module, fn):
    """A plain torch forward hook that replaces a GPT-2 module's (first) output with fn(out)."""

    def hook(mod, args, out):
        if isinstance(out, tuple):
            return (fn(out[0]), *out[1:])
        return fn(out)

    return module.register_forward_hook(hook)


def ce_by_hand(logits, ids, pred_mask=None) -> float:
    nll = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
        ids[:, 1:].reshape(-1),
        reduction="none",
    )
    if pred_mask is not None:
        nll = nll[pred_mask.reshape(-1)]
    return float(nll.mean())


def kl_by_hand(clean, new, mask=None) -> float:
    kl = F.kl_div(
        F.log_softmax(new.double(), -1), F.log_softmax(clean.double(), -1), log_target=True,
        reduction="none",
    ).sum(-1)  # fmt: skip
    return float(kl[mask].mean() if mask is not None else kl.mean())


# ---------------------------------------------------------------- reconstruction ----
def test_reconstruction_and_sparsity_metrics_equal_numpy_on_captured_activations(gpt2):
    ids = input_ids(6, 10, seed=3)
    sae = random_sae()
    # batches of 4 rows: the running sums (variance merged across batches) must be exact
    r = evaluate(sae, gpt2, ids, batch_size=4)
    _, cache = run_with_cache(gpt2, ids, names=[SITE])
    x = cache[SITE].reshape(-1, D).numpy()
    want = numpy_metrics(x, x, sae)
    for name in (
        "l0", "l1", "mse", "fvu", "explained_variance", "cossim", "l2_norm_in", "l2_norm_out",
        "l2_ratio", "relative_reconstruction_bias", "dead_fraction", "dense_fraction",
    ):  # fmt: skip
        assert getattr(r, name) == pytest.approx(want[name], rel=1e-5, abs=1e-9), name
    np.testing.assert_allclose(r.feature_density, want["density"], atol=1e-12)
    assert r.feature_density.sum() == pytest.approx(r.l0, rel=1e-12)  # sum of densities = L0
    assert r.n_tokens == 60 and r.n_sequences == 6 and r.n_predictions == 54
    assert 0 < r.dead_fraction < 1 and r.dense_fraction >= 4 / 64  # the rigged latents
    hist = r.density_histogram
    assert hist["n_dead"] == round(r.dead_fraction * 64)
    assert sum(hist["counts"]) == 64 - hist["n_dead"]
    edges = np.asarray(hist["log10_density_edges"])
    lit = want["density"][want["density"] > 0]
    np.testing.assert_array_equal(hist["counts"], np.histogram(np.log10(lit), bins=edges)[0])


def test_topk_sae_has_l0_k(gpt2):
    cfg = SAEConfig(d_in=D, d_sae=64, architecture="topk", k=4, hook_name=SITE)
    sae = SAE.create(cfg, random_state=2)
    with torch.no_grad():
        sae.b_enc.fill_(1.0)  # every pre-activation positive: exactly k latents fire
    r = evaluate(sae, gpt2, input_ids(3, 8, seed=1))
    assert r.l0 == 4.0
    assert r.feature_density.sum() == pytest.approx(4.0)


def test_dense_threshold_is_used(gpt2):
    ids = input_ids(2, 10, seed=3)
    sae = random_sae()
    r = evaluate(sae, gpt2, ids, dense_threshold=0.99)
    assert r.dense_fraction == pytest.approx(float((r.feature_density > 0.99).mean()))
    assert r.dense_threshold == 0.99
    with pytest.raises(InvalidParameterError, match="dense_threshold"):
        evaluate(sae, gpt2, ids, dense_threshold=1.5)


# ------------------------------------------------------------------ downstream ----
def test_identity_sae_recovers_all_loss_and_zero_output_sae_none(gpt2):
    ids = input_ids(3, 12, seed=1)
    r = evaluate(identity_sae(), gpt2, ids)
    assert r.fvu == pytest.approx(0.0, abs=1e-12)
    assert r.cossim == pytest.approx(1.0, abs=1e-6)
    assert r.kl_div_with_sae == pytest.approx(0.0, abs=1e-9)
    assert r.ce_loss_with_sae == pytest.approx(r.ce_loss_without_sae, abs=1e-6)
    assert r.ce_loss_score == pytest.approx(1.0, abs=1e-4)
    assert r.ce_loss_score_mean_ablation == pytest.approx(1.0, abs=1e-4)
    assert r.kl_div_score == pytest.approx(1.0, abs=1e-6)
    # the clean loss is the model's own (Hugging Face shifts labels and averages)
    with torch.no_grad():
        hf = float(gpt2(ids, labels=ids).loss)
    assert r.ce_loss_without_sae == pytest.approx(hf, rel=1e-5)

    zero = identity_sae()
    with torch.no_grad():
        zero.W_dec.zero_()
    r0 = evaluate(zero, gpt2, ids)
    assert r0.ce_loss_with_sae == pytest.approx(r0.ce_loss_with_ablation, abs=1e-9)
    assert r0.ce_loss_score == pytest.approx(0.0, abs=1e-6)
    assert r0.kl_div_score == pytest.approx(0.0, abs=1e-6)
    assert r0.fvu > 1.0 and r0.l0 == pytest.approx(D)  # still encodes: l0 counts latents


def test_spliced_and_ablated_losses_equal_forward_passes_patched_by_hand(gpt2):
    ids = input_ids(3, 12, seed=2)
    sae = random_sae(seed=4)
    r = evaluate(sae, gpt2, ids, batch_size=2)
    block = gpt2.transformer.h[1]
    with torch.no_grad():
        clean = gpt2(ids).logits
        _, cache = run_with_cache(gpt2, ids, names=[SITE])
        mean = cache[SITE].reshape(-1, D).mean(0)
        runs = {}
        for name, fn in {
            "sae": lambda out: sae.decode(sae.encode(out)),
            "ablation": lambda out: torch.zeros_like(out),
            "mean_ablation": lambda out: mean.expand_as(out).clone(),
        }.items():
            handle = site_output(gpt2, block, fn)
            try:
                runs[name] = gpt2(ids).logits
            finally:
                handle.remove()
    assert r.ce_loss_without_sae == pytest.approx(ce_by_hand(clean, ids), rel=1e-5)
    assert r.ce_loss_with_sae == pytest.approx(ce_by_hand(runs["sae"], ids), rel=1e-5)
    assert r.ce_loss_with_ablation == pytest.approx(ce_by_hand(runs["ablation"], ids), rel=1e-5)
    assert r.ce_loss_with_mean_ablation == pytest.approx(
        ce_by_hand(runs["mean_ablation"], ids), rel=1e-5
    )
    for name in ("sae", "ablation", "mean_ablation"):
        want = kl_by_hand(clean, runs[name])
        assert getattr(r, f"kl_div_with_{name}") == pytest.approx(want, rel=1e-4, abs=1e-9)
    ce = {k: ce_by_hand(v, ids) for k, v in runs.items()}
    c0 = ce_by_hand(clean, ids)
    assert r.ce_loss_score == pytest.approx(
        (ce["ablation"] - ce["sae"]) / (ce["ablation"] - c0), rel=1e-3
    )
    assert hooks_left(gpt2) == []


def test_excluded_positions_are_left_out_of_every_metric_and_keep_their_activation(gpt2):
    special = 5
    ids = input_ids(3, 9, seed=5)
    ids[:, 0] = special  # a BOS-like first token
    ids[1, 4] = special
    attn = torch.ones_like(ids)
    attn[2, 6:] = 0  # padding at the end of row 2
    sae = random_sae(seed=2)
    r = evaluate(sae, gpt2, {"input_ids": ids, "attention_mask": attn}, exclude_special=[special])
    keep = (ids != special) & attn.bool()
    assert r.n_tokens == int(keep.sum())
    pred = keep[:, :-1] & attn.bool()[:, 1:]
    assert r.n_predictions == int(pred.sum())
    _, cache = run_with_cache(gpt2, ids, names=[SITE], attention_mask=attn)
    x = cache[SITE][keep].numpy()
    want = numpy_metrics(x, x, sae)
    for name in ("l0", "mse", "fvu", "cossim", "relative_reconstruction_bias"):
        assert getattr(r, name) == pytest.approx(want[name], rel=1e-5), name
    with torch.no_grad():
        clean = gpt2(ids, attention_mask=attn).logits
        handle = site_output(
            gpt2, gpt2.transformer.h[1],
            lambda out: torch.where(keep[..., None], sae.decode(sae.encode(out)), out),
        )  # fmt: skip
        try:
            spliced = gpt2(ids, attention_mask=attn).logits
        finally:
            handle.remove()
        # baselines: only the evaluated positions are ablated; the mean is theirs
        mean = cache[SITE][keep].mean(0)
        ablated = {}
        for name, value in (("ablation", torch.zeros(D)), ("mean_ablation", mean)):
            handle = site_output(
                gpt2, gpt2.transformer.h[1],
                lambda out, v=value: torch.where(keep[..., None], v.expand_as(out), out),
            )  # fmt: skip
            try:
                ablated[name] = gpt2(ids, attention_mask=attn).logits
            finally:
                handle.remove()
    for name, logits in ablated.items():
        want = ce_by_hand(logits, ids, pred)
        assert getattr(r, f"ce_loss_with_{name}") == pytest.approx(want, rel=1e-5), name
        want = kl_by_hand(clean, logits, keep)
        assert getattr(r, f"kl_div_with_{name}") == pytest.approx(want, rel=1e-4), name
    assert r.ce_loss_with_sae == pytest.approx(ce_by_hand(spliced, ids, pred), rel=1e-5)
    assert r.ce_loss_without_sae == pytest.approx(ce_by_hand(clean, ids, pred), rel=1e-5)
    assert r.kl_div_with_sae == pytest.approx(kl_by_hand(clean, spliced, keep), rel=1e-4)
    # a batch with no evaluated position adds nothing: one row per batch, row 0 all special
    ids0 = ids.clone()
    ids0[0] = special
    enc0 = {"input_ids": ids0, "attention_mask": attn}
    one = evaluate(sae, gpt2, enc0, exclude_special=[special], batch_size=1)
    whole = evaluate(sae, gpt2, enc0, exclude_special=[special], batch_size=3)
    for name in ("n_tokens", "l0", "fvu", "ce_loss_with_sae", "kl_div_with_mean_ablation"):
        assert getattr(one, name) == pytest.approx(getattr(whole, name), rel=1e-5), name
    # the same with exclusion off counts every real token
    r_all = evaluate(sae, gpt2, {"input_ids": ids, "attention_mask": attn}, exclude_special=False)
    assert r_all.n_tokens == int(attn.sum())


def test_n_batches_draws_rows_reproducibly(gpt2):
    ids = input_ids(8, 6, seed=7)
    sae = random_sae()
    a = evaluate(sae, gpt2, ids, batch_size=2, n_batches=2, random_state=3)
    b = evaluate(sae, gpt2, ids, batch_size=2, n_batches=2, random_state=3)
    assert a.n_sequences == 4 and a.n_tokens == 24
    assert a.to_dict() == b.to_dict()


def test_progress_is_reported_per_batch(gpt2):
    seen = []
    evaluate(random_sae(), gpt2, input_ids(5, 6), batch_size=2, progress=lambda *a: seen.append(a))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(InvalidParameterError, match="progress"):
        evaluate(random_sae(), gpt2, input_ids(1, 6), progress=3)


def test_half_precision_model_metrics_use_the_sae_output_unrounded():
    model = build("gpt2").to(torch.bfloat16)
    ids = input_ids(2, 8, seed=2)
    sae = random_sae(seed=5)
    r = evaluate(sae, model, ids)
    _, cache = run_with_cache(model, ids, names=[SITE])
    x = cache[SITE].float().reshape(-1, D).numpy()
    want = numpy_metrics(x, x, sae)  # x as bf16 gave it, x_hat in float32 (not rounded)
    for name in ("mse", "fvu", "cossim", "l0"):
        assert getattr(r, name) == pytest.approx(want[name], rel=1e-5), name
    assert r.ce_loss_with_sae is not None and np.isfinite(r.ce_loss_score)


@pytest.mark.parametrize("site", ["blocks.1.attn.q", "blocks.1.attn.hook_z"])
def test_attention_head_site_is_flattened(gpt2, site):
    # (batch, pos, heads, d_head) -> heads * d_head = 32; hook_z is TransformerLens' name of
    # the per-head attention output (SAELens attention SAEs read it)
    ids = input_ids(2, 8)
    r = evaluate(identity_sae(site), gpt2, ids)
    assert r.fvu == pytest.approx(0.0, abs=1e-12)
    assert r.ce_loss_score == pytest.approx(1.0, abs=1e-4)
    _, cache = run_with_cache(gpt2, ids, names=[site])
    heads = cache[site]
    assert heads.ndim == 4
    assert r.l2_norm_in == pytest.approx(float(heads.flatten(2).norm(dim=-1).mean()), rel=1e-5)


def test_splice_into_a_slice_of_a_fused_projection_equals_a_hand_patch(gpt2):
    # GPT-2's q is the first third of the fused c_attn output: the splice must rewrite only it
    site = "blocks.1.attn.q"
    sae = random_sae(seed=6, site=site)
    with torch.no_grad():
        sae.W_dec.mul_(300.0)  # large queries: a visible change of the attention pattern
    ids = input_ids(2, 8, seed=4)
    r = evaluate(sae, gpt2, ids)
    with torch.no_grad():
        handle = site_output(
            gpt2, gpt2.transformer.h[1].attn.c_attn,
            lambda out: torch.cat([sae.decode(sae.encode(out[..., :D])), out[..., D:]], -1),
        )  # fmt: skip
        try:
            spliced = gpt2(ids).logits
        finally:
            handle.remove()
        clean = gpt2(ids).logits
    assert r.kl_div_with_sae > 1e-4  # the splice changed the model
    assert r.ce_loss_with_sae == pytest.approx(ce_by_hand(spliced, ids), rel=1e-5)
    assert r.kl_div_with_sae == pytest.approx(kl_by_hand(clean, spliced), rel=1e-4)


# ------------------------------------------------------------------ transcoders ----
def test_transcoder_reads_one_site_and_is_spliced_at_the_other(gpt2):
    ids = input_ids(3, 10, seed=4)
    cfg = SAEConfig(
        d_in=D, d_sae=48, d_out=D, architecture="standard", hook_name="blocks.1.ln2",
        hook_name_out="blocks.1.mlp.out",
    )  # fmt: skip
    tc = SAE.create(cfg, random_state=5)
    with torch.no_grad():
        tc.b_enc.fill_(-0.05)
    r = evaluate(tc, gpt2, ids)
    assert (r.site, r.site_out) == ("blocks.1.ln2", "blocks.1.mlp.out")
    _, cache = run_with_cache(gpt2, ids, names=["blocks.1.ln2", "blocks.1.mlp.out"])
    x = cache["blocks.1.ln2"].reshape(-1, D).numpy()
    y = cache["blocks.1.mlp.out"].reshape(-1, D).numpy()
    want = numpy_metrics(x, y, tc)
    for name in ("l0", "mse", "fvu", "cossim", "l2_norm_in", "relative_reconstruction_bias"):
        assert getattr(r, name) == pytest.approx(want[name], rel=1e-5), name
    ln2 = cache["blocks.1.ln2"]
    with torch.no_grad():
        handle = site_output(gpt2, gpt2.transformer.h[1].mlp, lambda out: tc.decode(tc.encode(ln2)))
        try:
            spliced = gpt2(ids).logits
        finally:
            handle.remove()
    assert r.ce_loss_with_sae == pytest.approx(ce_by_hand(spliced, ids), rel=1e-5)


def test_transcoder_predicting_an_earlier_site_is_refused(gpt2):
    cfg = SAEConfig(
        d_in=D, d_sae=8, d_out=D, architecture="standard", hook_name="blocks.2.ln2",
        hook_name_out="blocks.1.mlp.out",
    )  # fmt: skip
    with pytest.raises(InvalidParameterError, match="before"):
        evaluate(SAE.create(cfg), gpt2, input_ids(1, 5))
    assert hooks_left(gpt2) == []


# -------------------------------------------------------------------- encoders ----
def test_masked_lm_gets_kl_only_and_bare_encoder_reconstruction_only():
    bert = build("bert")
    ids = input_ids(2, 8)
    r = evaluate(identity_sae(), bert, ids)
    assert r.ce_loss_score is None and r.ce_loss_without_sae is None
    assert r.kl_div_with_sae == pytest.approx(0.0, abs=1e-9) and r.kl_div_with_ablation > 0
    assert any("next-token" in n for n in r.notes)
    bare = bert.bert
    r2 = evaluate(identity_sae(), bare, ids)
    assert r2.kl_div_with_sae is None and r2.ce_loss_score is None
    assert r2.fvu == pytest.approx(0.0, abs=1e-12)
    assert any("not a distribution" in n for n in r2.notes)
    assert "-" in str(r2)  # None shows as a dash


# ---------------------------------------------------------------- result object ----
def test_result_views(gpt2):
    r = evaluate(random_sae(), gpt2, input_ids(2, 6))
    assert isinstance(r, SAEEvaluation)
    frame = r.to_frame()
    assert list(frame.columns) == ["group", "metric", "value"]
    row = frame[frame.metric == "ce_loss_score"].iloc[0]
    assert row.group == "model_performance_preservation" and row.value == r.ce_loss_score
    d = json.loads(json.dumps(r.to_dict()))
    assert d["metrics"]["sparsity"]["l0"] == r.l0
    assert len(d["feature_metrics"]["feature_density"]) == 64
    text = str(r)
    assert "ce_loss_score" in text and SITE in text
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(r)
    assert "relative_reconstruction_bias" in console.export_text()


# ------------------------------------------------------------------ real model ----
def test_tiny_lm_texts_with_tokenizer():
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    model, tok = tiny_lm(seed=0)
    texts = [t[:400] for t in tiny_lm_corpus("test")[:4]]
    site = "blocks.2.resid_post"
    d = model.config.n_embd
    r = evaluate(identity_sae(site, d), model, texts, tokenizer=tok, context_size=32, batch_size=2)
    assert r.ce_loss_score == pytest.approx(1.0, abs=1e-4)
    assert r.ce_loss_with_ablation > r.ce_loss_without_sae  # ablating the residual hurts
    enc = [tok(t, truncation=True, max_length=32).input_ids for t in texts]
    special = set(tok.all_special_ids)
    assert r.n_tokens == sum(1 for e in enc for i in e if i not in special)
    # a 1-D token stream is cut into windows of context_size
    stream = torch.tensor([i for e in enc for i in e])
    rs = evaluate(identity_sae(site, d), model, stream, context_size=16, exclude_special=False)
    assert rs.n_sequences == -(-stream.numel() // 16) and rs.n_tokens == stream.numel()


# -------------------------------------------------------------------- bad input ----
def test_d_in_mismatch_names_both_widths_and_leaves_no_hook(gpt2):
    sae = SAE.create(SAEConfig(d_in=16, d_sae=8, architecture="standard", hook_name=SITE))
    with pytest.raises(InvalidInputError, match=r"16.*32") as info:
        evaluate(sae, gpt2, input_ids(1, 5))
    assert SITE in str(info.value)
    assert hooks_left(gpt2) == []


def test_hooks_removed_and_modes_restored_after_a_failing_forward(gpt2):
    sae = random_sae()
    calls = {"n": 0}
    mlp = gpt2.transformer.h[2].mlp

    def boom(mod, args, out):
        calls["n"] += 1
        if calls["n"] == 3:  # the clean pass and the mean pass ran: fail in the spliced one
            raise RuntimeError("boom")

    handle = mlp.register_forward_hook(boom)
    gpt2.train()
    sae.train()
    try:
        with pytest.raises(ModelCallError, match="boom"):
            evaluate(sae, gpt2, input_ids(1, 5))
    finally:
        handle.remove()
    assert hooks_left(gpt2) == []
    assert gpt2.training and sae.training
    gpt2.eval()


def test_bad_arguments(gpt2):
    sae = identity_sae()
    with pytest.raises(InvalidInputError, match="tokenizer="):
        evaluate(sae, gpt2, ["some text"])
    nosite = SAE.create(SAEConfig(d_in=D, d_sae=8, architecture="standard"))
    with pytest.raises(InvalidParameterError, match="site="):
        evaluate(nosite, gpt2, input_ids(1, 5))
    with pytest.raises(InvalidParameterError, match="no hook point"):
        evaluate(sae, gpt2, input_ids(1, 5), site="blocks.1.resid_pots")
    ids = torch.full((1, 4), 5)
    with pytest.raises(InvalidInputError, match="no position"):
        evaluate(sae, gpt2, ids, exclude_special=[5])
    with pytest.raises(InvalidParameterError, match="exclude_special"):
        evaluate(sae, gpt2, input_ids(1, 5), exclude_special="bos")
    with pytest.raises(InvalidParameterError, match="batch_size"):
        evaluate(sae, gpt2, input_ids(1, 5), batch_size=0)
    with pytest.raises(InvalidParameterError, match="sae must be"):
        evaluate(object(), gpt2, input_ids(1, 5), site=SITE)
    with pytest.raises(InvalidInputError, match="inputs must be"):
        evaluate(sae, gpt2, 3.5)


# ------------------------------------------------------------------- SAELens oracle ----
ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = ROOT / ".venv-saelens" / "bin" / "python"

#: run in .venv-saelens: the tiny LM as a TransformerLens HookedTransformer (weights converted
#: from the Hugging Face model, no folding), the SAE as a SAELens StandardSAE, and
#: sae_lens.evals.run_evals (every metric) on the given tokens
SAELENS_EVALS = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
import transformers
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
import sae_lens as sl
from sae_lens.evals import get_eval_everything_config, run_evals
from sae_lens.training.activation_scaler import ActivationScaler

spec = json.loads(Path(sys.argv[1]).read_text())
torch.set_grad_enabled(False)
hf = transformers.GPT2LMHeadModel.from_pretrained(spec["model"]).eval()
c = hf.config
cfg = HookedTransformerConfig(
    n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
    d_mlp=c.n_inner or 4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions,
    act_fn=c.activation_function, normalization_type="LN", eps=c.layer_norm_epsilon,
    positional_embedding_type="standard", original_architecture="GPT2LMHeadModel",
    default_prepend_bos=False, device="cpu",
)
model = HookedTransformer(cfg)
model.load_and_process_state_dict(
    convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
    center_unembed=False, fold_value_biases=False,
)
tokens = torch.from_numpy(np.load(spec["tokens"]))
w = np.load(spec["sae"])
sae = sl.StandardSAE(sl.StandardSAEConfig(d_in=w["W_enc"].shape[0], d_sae=w["W_enc"].shape[1]))
sae.cfg.metadata.hook_name = spec["hook_name"]
sae.load_state_dict({k: torch.from_numpy(w[k]) for k in ("W_enc", "b_enc", "W_dec", "b_dec")})


class Store:  # hands out the given tokens, as an ActivationsStore would
    store_batch_size_prompts = tokens.shape[0]
    context_size = tokens.shape[1]

    def get_batch_tokens(self, n):
        return tokens

    def reset_input_dataset(self):
        pass


out = {"logit_gap": float((model(tokens) - hf(tokens).logits).abs().max())}
config = get_eval_everything_config(
    batch_size_prompts=tokens.shape[0], n_eval_reconstruction_batches=1,
    n_eval_sparsity_variance_batches=1,
)
for name, exclude in spec["runs"].items():
    metrics, feats = run_evals(
        sae, Store(), model, ActivationScaler(), config, exclude_special_tokens=exclude
    )
    out[name] = {"metrics": metrics, "feature_density": feats["feature_density"]}
Path(spec["out"]).write_text(json.dumps(out))
"""


@pytest.mark.slow
def test_metrics_equal_saelens_evals_on_the_same_sae_and_tokens(tmp_path):
    if not ORACLE_PY.exists():
        pytest.fail(
            f"the SAELens oracle venv is missing ({ORACLE_PY}). `make test` builds it; or run "
            "`bash scripts/oracle-saelens.sh` once (about 90 s, needs PyPI)."
        )
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus, tiny_lm_path

    model, tok = tiny_lm(seed=0)
    eos = tok.eos_token_id
    stream = [i for t in tiny_lm_corpus("test") for i in tok(t[:2000]).input_ids]
    tokens = torch.tensor(stream[: 4 * 24]).view(4, 24)
    tokens[:, 0] = eos  # a BOS-like first position, excluded in the second run
    sae = SAE.create(
        SAEConfig(d_in=128, d_sae=256, architecture="standard", hook_name="blocks.2.resid_post"),
        random_state=3,
    )
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(256, generator=torch.Generator().manual_seed(0)) - 0.5)
        sae.b_dec.copy_(torch.randn(128, generator=torch.Generator().manual_seed(1)) * 0.1)
    np.save(tmp_path / "tokens.npy", tokens.numpy())
    weights = {k: getattr(sae, k).detach().numpy() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    np.savez(tmp_path / "sae.npz", **weights)
    spec = {
        "model": str(tiny_lm_path(seed=0)),
        "tokens": str(tmp_path / "tokens.npy"),
        "sae": str(tmp_path / "sae.npz"),
        "hook_name": "blocks.2.hook_resid_post",
        "runs": {"all": False, "no_bos": [eos]},
        "out": str(tmp_path / "out.json"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "evals.py").write_text(SAELENS_EVALS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [str(ORACLE_PY), str(tmp_path / "evals.py"), str(tmp_path / "spec.json")],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    theirs = json.loads((tmp_path / "out.json").read_text())
    assert theirs["logit_gap"] < 1e-4  # the HookedTransformer is the same model

    # the model shared by SAELens' ablation baselines differs once positions are excluded:
    # SAELens zero-ablates them too, whybox keeps them clean (module docstring)
    ablation = {"kl_div_score", "kl_div_with_ablation", "ce_loss_score", "ce_loss_with_ablation"}
    for run, exclude in (("all", False), ("no_bos", [eos])):
        ours = evaluate(sae, model, tokens, exclude_special=exclude, batch_size=4)
        compared = 0
        for group, metrics in theirs[run]["metrics"].items():
            for name, value in metrics.items():
                if not hasattr(ours, name) or (run == "no_bos" and name in ablation):
                    continue
                assert getattr(ours, name) == pytest.approx(value, rel=1e-5, abs=1e-7), (
                    run, group, name,
                )  # fmt: skip
                compared += 1
        assert compared == (16 if run == "all" else 12)
        np.testing.assert_allclose(
            ours.feature_density, theirs[run]["feature_density"], rtol=1e-6, atol=1e-7
        )
    # and the difference is real: SAELens' zero-ablation of the excluded BOS costs more loss
    sl_abl = theirs["no_bos"]["metrics"]["model_performance_preservation"]["ce_loss_with_ablation"]
    assert sl_abl != pytest.approx(ours.ce_loss_with_ablation, rel=1e-3)
