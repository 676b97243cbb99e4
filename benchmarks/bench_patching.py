"""Activation and attribution patching vs TransformerLens 4.3 on one model, one process, CPU.

Task: a GPT-2-architecture model (``GPT2Config(n_layer=6, n_embd=256, n_head=8,
vocab_size=512)``, random weights, seeded, eager attention), a batch of 4 clean / corrupted
prompt pairs of 32 tokens, metric = mean logit difference of two tokens at the last position.
TransformerLens's ``TransformerBridge`` is booted on a copy of the same weights.

Figures (best of ``repeats`` interleaved runs; one torch thread by default, bare forwards
without a key-value cache, as whybox runs them):

- attribution patching over every head x position (``site="attn.head_out", by="head_pos"``):
  its time over a bare no-grad forward (``attr_over_forward``) and over a bare forward +
  backward pass of the same batch (``attr_over_fwd_bwd``; target: at most 3 forward /
  backward-pass equivalents), its Spearman correlation with real activation patching on the
  same grid, and TransformerLens's ``attribution_patch`` time beside it.
- on the zoo's trained induction model (two attention-only layers, 16 repeated random
  sequences, first copy corrupted, metric = log-probability of the copied tokens): the same
  Spearman / Pearson correlations over heads x positions and over heads, denoising and
  noising (:func:`induction_figures`).
- the layer x position ``resid_pre`` activation-patching grid: whybox's time at its default
  batching and with ``batch_size=1``, over the floor of ceil(cells / batch) bare forwards of
  the batched size (``grid_over_floor``); TransformerLens's ``get_act_patch_resid_pre`` on the
  same model (one forward per cell), the ratio, and the largest difference between the grids.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time

import numpy as np

from benchmarks.common import best_of

N_LAYER, D, HEADS, VOCAB, POS, BATCH = 6, 256, 8, 512, 32, 4


def _tokenizer(folder: str):
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(topics.values())[:200], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def _setup():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=N_LAYER, n_embd=D, n_head=HEADS, vocab_size=VOCAB, n_positions=64)
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(0, VOCAB, (BATCH, POS), generator=g)
    corrupted = clean.clone()
    corrupted[:, POS // 2 :] = torch.randint(0, VOCAB, (BATCH, POS - POS // 2), generator=g)
    return model, clean, corrupted


def metric(logits):
    return (logits[:, -1, 5] - logits[:, -1, 7]).mean()


def run(repeats: int = 7, threads: int = 1) -> dict[str, object]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from scipy import stats
    from transformer_lens import patching as tl_patching
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    from whybox.internals.anatomy import Anatomy
    from whybox.internals.patching import activation_patching, attribution_patching

    # one thread: the machine's two cores are shared, and tiny models gain nothing from
    # intra-op threads that spin against other processes; the figures are ratios
    torch.set_num_threads(threads)
    model, clean, corrupted = _setup()
    anat = Anatomy.of(model)
    with tempfile.TemporaryDirectory() as folder:
        bridge = TransformerBridge.boot_transformers(
            "gpt2", hf_model=copy.deepcopy(model), tokenizer=_tokenizer(folder), device="cpu"
        )

    def bare_forward(rows: int = 1):
        x = corrupted.repeat(rows, 1)

        def fn():
            with torch.no_grad():
                return model(x, use_cache=False).logits

        return fn

    def bare_fwd_bwd():
        # the floor of one forward + backward pass: gradients of the metric with respect to
        # the embeddings (activations), no parameter gradients, as attribution patching
        emb = model.transformer.wte(corrupted).detach().requires_grad_()
        out = metric(model(inputs_embeds=emb, use_cache=False).logits)
        return torch.autograd.grad(out, emb)

    def forwards(cells: int, times: int):
        def fn():
            for _ in range(times):
                bare_forward(cells)()

        return fn

    def ours_attr():
        return attribution_patching(
            model, clean, corrupted, metric, site="attn.head_out", by="head_pos", anatomy=anat
        )

    def tl_attr():
        return attribution_patch(bridge, clean, corrupted, metric)

    times: dict[str, list[float]] = {k: [] for k in ("fwd", "fb", "attr", "tl_attr")}
    for _ in range(repeats):
        times["fwd"].append(best_of(bare_forward(), 3)[0])
        times["fb"].append(best_of(bare_fwd_bwd, 3)[0])
        times["attr"].append(best_of(ours_attr, 1)[0])
        times["tl_attr"].append(best_of(tl_attr, 1)[0])
    t_fwd, t_fb = min(times["fwd"]), min(times["fb"])
    t_attr, t_tl_attr = min(times["attr"]), min(times["tl_attr"])

    t0 = time.perf_counter()
    compared = attribution_patching(
        model, clean, corrupted, metric, site="attn.head_out", by="head_pos", compare=True,
        anatomy=anat,
    )  # fmt: skip
    t_compare = time.perf_counter() - t0
    real_effect = np.asarray(compared.meta["activation_values"]) - compared.base_values[0]
    est_effect = compared.values[0] - compared.base_values[0]
    rho_abs = float(stats.spearmanr(np.abs(est_effect), np.abs(real_effect)).statistic)

    # the layer x position grid
    n_cells = N_LAYER * POS

    def ours_grid(bs=None):
        return lambda: activation_patching(
            model, clean, corrupted, metric, batch_size=bs, anatomy=anat
        )

    def tl_grid():
        _, cache = bridge.run_with_cache(clean)
        return tl_patching.get_act_patch_resid_pre(bridge, corrupted, cache, metric)

    grid_t: dict[str, list[float]] = {k: [] for k in ("auto", "one", "tl", "floor", "floor1")}
    exp = ours_grid()()
    per = exp.meta["cells_per_forward"]
    n_batches = math.ceil(n_cells / per)
    for _ in range(repeats):
        grid_t["auto"].append(best_of(ours_grid(), 1)[0])
        grid_t["one"].append(best_of(ours_grid(1), 1)[0])
        grid_t["tl"].append(best_of(tl_grid, 1)[0])
        # floor: the batched forwards alone, ceil(cells / batch) of them (the last one full),
        # timed as one run like whybox's grid
        grid_t["floor"].append(best_of(forwards(per, n_batches), 1)[0])
        grid_t["floor1"].append(best_of(forwards(1, n_cells), 1)[0])
    tl_values = tl_grid().numpy()
    ours_values = exp.values[0].reshape(tl_values.shape)
    diff = float(np.abs(ours_values - tl_values).max() / np.abs(tl_values).max())
    g = {k: min(v) for k, v in grid_t.items()}
    return {
        "task": (
            f"GPT-2 architecture, {N_LAYER} layers, d_model {D}, {HEADS} heads, vocab {VOCAB}, "
            f"random weights; {BATCH} prompt pairs x {POS} tokens; CPU, {threads} thread(s)"
        ),
        "bare_forward_s": t_fwd,
        "bare_fwd_bwd_s": t_fb,
        "attr_cells": len(est_effect),
        "attr_s": t_attr,
        "attr_over_forward": t_attr / t_fwd,
        "attr_over_fwd_bwd": t_attr / t_fb,
        "attr_over_fwd_plus_fwd_bwd": t_attr / (t_fwd + t_fb),
        "tl_attribution_patch_s": t_tl_attr,
        "attr_over_tl": t_attr / t_tl_attr,
        "attr_spearman_vs_activation": compared.meta["spearman"],
        "attr_pearson_vs_activation": compared.meta["pearson"],
        "attr_spearman_abs_effects": rho_abs,
        "activation_patching_heads_x_pos_s": t_compare - t_attr,
        "grid_cells": n_cells,
        "grid_cells_per_forward": per,
        "grid_forwards": exp.meta["n_forwards"],
        "grid_s": g["auto"],
        "grid_floor_s": g["floor"],
        "grid_over_floor": g["auto"] / g["floor"],
        "grid_batch1_s": g["one"],
        "grid_batch1_over_floor": g["one"] / g["floor1"],
        "tl_grid_s": g["tl"],
        "grid_over_tl": g["auto"] / g["tl"],
        "grid_max_rel_diff_vs_tl": diff,
        **induction_figures(threads),
    }


def induction_figures(threads: int = 1) -> dict[str, object]:
    """Attribution vs activation patching on the zoo's trained induction model (a two-layer
    attention-only Llama): heads x positions and heads, denoising and noising."""
    import torch

    from whybox.internals.patching import attribution_patching
    from whybox.zoo.induction import induction_model, repeated_tokens

    torch.set_num_threads(threads)
    model, _ = induction_model()
    n = 12
    clean = repeated_tokens(16, n, seed=3)
    corrupted = clean.clone()
    corrupted[:, :n] = torch.randint(0, 64, (16, n), generator=torch.Generator().manual_seed(4))
    targets = clean[:, n + 1 :]

    def copy_logprob(logits):
        logp = torch.log_softmax(logits[:, n : 2 * n - 1].float(), -1)
        return logp.gather(-1, targets[..., None]).mean()

    out: dict[str, object] = {}
    for direction in ("denoise", "noise"):
        for by in ("head_pos", "head"):
            exp = attribution_patching(
                model, clean, corrupted, copy_logprob, site="attn.head_out", by=by,
                direction=direction, compare=True,
            )  # fmt: skip
            out[f"induction_{direction}_{by}_spearman"] = exp.meta["spearman"]
            out[f"induction_{direction}_{by}_pearson"] = exp.meta["pearson"]
    return out


def markdown(res: dict[str, object]) -> str:
    def f(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["### bench_patching", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {f(v)} |" for k, v in res.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
