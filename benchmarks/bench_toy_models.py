"""The zoo's toy transformers trained from scratch: time to train and the published results.

Each model is trained here with ``cache=False`` (so the times are first-run times; every later
call loads the cached weights in about a second), on one torch thread, as the zoo trains them:

- ``modular_addition_model(p=113)`` (Nanda et al. 2023): the step at which the training split
  is fitted (train accuracy > 99 %), the step at which it groks (test accuracy > 99 %, checked
  every 50 steps), final accuracies, the key Fourier frequencies of the embedding (fewest
  carrying 90 % of its non-constant squared norm), and the accuracy over all p^2 pairs with the
  embedding projected onto the key frequencies / onto all the others.
- ``induction_model()`` (Olsson et al. 2022): per-layer prefix-matching and previous-token
  scores, the loss on the first and second copy of repeated random tokens, and each head's
  share of the copying restored by activation patching (first copy corrupted).
- ``tiny_lm()``: held-out perplexity against a unigram model of the same tokens, and whether
  ``from_pretrained`` of the saved folder reproduces the logits bit for bit.

``WHYBOX_BENCH_PAPER_RECIPE=1`` also trains p = 113 with the paper's learning rate 1e-3 and
weight decay 1.0 (20,000 steps, about half an hour on one core).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def modular_figures(p: int = 113, seed: int = 0, **recipe) -> dict[str, object]:
    from whybox.zoo.modular import (
        ablate_frequencies,
        fourier_key_frequencies,
        modular_addition_model,
    )

    (model, info), wall, cpu = _timed(
        lambda: modular_addition_model(p=p, seed=seed, cache=False, **recipe)
    )
    h = info.history
    fitted = h["step"][h["train_accuracy"] > 0.99]
    fa = fourier_key_frequencies(model, p)
    tag = f"modular_p{p}" + ("_paper" if recipe else "")
    return {
        f"{tag}_steps": int(info.config["steps"]),
        f"{tag}_lr": info.config["lr"],
        f"{tag}_weight_decay": info.config["weight_decay"],
        f"{tag}_train_s": wall,
        f"{tag}_train_cpu_s": cpu,
        f"{tag}_step_train_fitted": int(fitted[0]) if fitted.size else None,
        f"{tag}_steps_to_grok": info.steps_to_grok,
        f"{tag}_train_acc": info.train_accuracy,
        f"{tag}_test_acc": info.test_accuracy,
        f"{tag}_key_frequencies": ",".join(str(k) for k in fa.key),
        f"{tag}_key_norm_fraction": fa.fraction,
        f"{tag}_acc_keep_key_only": ablate_frequencies(model, p, keep=fa.key),
        f"{tag}_acc_key_removed": ablate_frequencies(model, p, remove=fa.key),
        f"{tag}_chance": 1.0 / p,
    }


def induction_figures(seed: int = 0) -> dict[str, object]:
    import torch

    import whybox as wb
    from whybox.zoo.induction import induction_model, induction_scores, repeated_tokens

    (model, _), wall, cpu = _timed(lambda: induction_model(seed=seed, cache=False))
    s = induction_scores(model)
    n = 20
    clean = repeated_tokens(32, n, 64, seed=11)
    corrupted = clean.clone()
    corrupted[:, :n] = repeated_tokens(32, n, 64, seed=12)[:, :n]
    targets = clean[:, n + 1 :]

    def copy_logprob(logits):
        logp = torch.log_softmax(logits[:, n : 2 * n - 1].double(), -1)
        return logp.gather(-1, targets[..., None]).mean()

    exp = wb.activation_patching(
        model, clean, corrupted, copy_logprob, site="attn.head_out", by="head", normalize=True
    )
    restored = dict(zip(exp.feature_names, np.asarray(exp.values)[0], strict=True))
    return {
        "induction_train_s": wall,
        "induction_train_cpu_s": cpu,
        "induction_first_copy_loss": s.first_half_loss,
        "induction_second_copy_loss": s.second_half_loss,
        "induction_prefix_matching_L0_max": float(s.prefix_matching[0].max()),
        "induction_prefix_matching_L1_min": float(s.prefix_matching[1].min()),
        "induction_prefix_matching_L1_max": float(s.prefix_matching[1].max()),
        "induction_previous_token_L0_max": float(s.previous_token[0].max()),
        "induction_previous_token_L1_max": float(s.previous_token[1].max()),
        "induction_top_heads": ", ".join(f"{k} {v:.2f}" for k, v in s.top(k=4)),
        "induction_patching_restored_L1_heads": ", ".join(
            f"{k} {v:.2f}" for k, v in restored.items() if k.startswith("L1")
        ),
        "induction_patching_restored_L0_max": max(
            v for k, v in restored.items() if k.startswith("L0")
        ),
    }


def tiny_lm_figures(seed: int = 0) -> dict[str, object]:
    import json

    import torch
    import transformers

    from whybox.zoo.tinylm import tiny_lm_corpus, tiny_lm_path

    path, wall, cpu = _timed(lambda: tiny_lm_path(seed=seed, cache=False))
    record = json.loads((path / "whybox_training.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    tok = transformers.AutoTokenizer.from_pretrained(path)

    def stream(split):
        ids = []
        for doc in tiny_lm_corpus(split):
            ids += [*tok(doc, add_special_tokens=False).input_ids, tok.eos_token_id]
        return np.asarray(ids)

    train, test = stream("train"), stream("test")
    counts = np.bincount(train, minlength=len(tok)) + 1.0
    unigram = math.exp(-np.mean(np.log(counts / counts.sum())[test]))
    again = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    ids = tok("The import statement", return_tensors="pt").input_ids
    with torch.no_grad():
        same = bool(torch.equal(model(ids).logits, again(ids).logits))
    return {
        "tiny_lm_build_s": wall,
        "tiny_lm_build_cpu_s": cpu,
        "tiny_lm_params": sum(p.numel() for p in model.parameters()),
        "tiny_lm_train_tokens": record["train_tokens"],
        "tiny_lm_held_out_perplexity": record["held_out_perplexity"],
        "tiny_lm_unigram_perplexity": unigram,
        "tiny_lm_from_pretrained_identical_logits": same,
    }


def run(seed: int = 0) -> dict[str, object]:
    out: dict[str, object] = {}
    out.update(modular_figures(113, seed))
    if os.environ.get("WHYBOX_BENCH_PAPER_RECIPE") == "1":
        out.update(modular_figures(113, seed, lr=1e-3, weight_decay=1.0, steps=20_000))
    out.update(induction_figures(seed))
    out.update(tiny_lm_figures(seed))
    return out


def markdown(res: dict[str, object]) -> str:
    def f(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["### bench_toy_models", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {f(v)} |" for k, v in res.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
