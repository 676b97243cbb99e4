"""Autointerp's offline default on the toy with ground-truth word features (issue 18).

The toy of ``tests/sae/test_autointerp.py``: the issue-17 toy model of superposition (40
features in 10 dimensions) with each feature given two words; a TopK SAE (k 1, 80 latents)
trained on its hidden layer. *True* latents: decoder cosine > 0.9 with a feature direction;
*random* latents: an untrained ReLU SAE of the same width. Every latent is explained offline
(token-statistics log-odds) from its 10 top contexts and scored on held-out contexts (20
activating, 20 non-activating) by the four scorers (simulation with the lexical and with the
MiniLM token simulator). Reported: each score's mean / min / max
over true and random latents, the AUROC separating true from random by that score, how many
true latents' explanations name exactly their two ground-truth words, and the time per latent
(explain, and each scorer; the MiniLM model load is timed apart).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SCORES = ["simulation", "simulation_embedding", "detection_balanced_accuracy", "detection_auroc",
          "fuzzing_balanced_accuracy", "fuzzing_auroc", "embedding_auroc"]  # fmt: skip


def run() -> dict[str, Any]:
    import json

    import torch
    from tests.sae.test_autointerp import GROUPS, token_toy

    from benchmarks.common import machine
    from whybox.sae import autointerp as ai
    from whybox.text.tokenshap import _MiniLM
    from whybox.zoo.cache import cache_folder

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    toy = token_toy(cache_folder())
    toy_s = time.perf_counter() - t0
    t = time.perf_counter()
    _MiniLM.load()
    load_s = time.perf_counter() - t
    out: dict[str, Any] = {"machine": machine(), "toy_s": toy_s, "minilm_load_s": load_s,
                           "n_true": len(toy["true"]), "n_random": len(toy["random"])}  # fmt: skip
    tables, timing = {}, {}
    for name, acts, latents in (("true", toy["acts"], toy["true"]),
                                ("random", toy["random_acts"], toy["random"])):  # fmt: skip
        ctx = ai.FeatureContexts.from_arrays(toy["tokens"], acts)
        for j in latents:
            ctx.latent(j)  # build the contexts outside the timings
        t = time.perf_counter()
        expl = ai.explain_features(ctx, latents)
        timing[f"{name}_explain"] = (time.perf_counter() - t) / len(latents)
        res = expl
        for scorer in ("simulation", "detection", "fuzzing", "embedding", "semantic"):
            t = time.perf_counter()
            if scorer == "semantic":  # the MiniLM token simulator
                part = ai.score_explanations(ctx, expl, scorers=("simulation",),
                                             simulator="embedding")  # fmt: skip
                for p in part.rows:
                    p["simulation_embedding"] = p.pop("simulation")
            else:
                part = ai.score_explanations(ctx, expl, scorers=(scorer,))
            timing[f"{name}_{scorer}"] = (time.perf_counter() - t) / len(latents)
            for r, p in zip(res.rows, part.rows, strict=True):
                r.update({k: v for k, v in p.items() if k in SCORES})
        tables[name] = res.table()
    named = 0
    for j, text in zip(tables["true"]["latent"], tables["true"]["explanation"], strict=True):
        quoted = set(json.loads("[" + text.removeprefix("tokens ").split(";")[0] + "]"))
        named += quoted == {f" {w}" for w in GROUPS[toy["match"][j]]}
    out["named_exactly"] = named
    out["examples"] = {k: list(tables[k]["explanation"][:3]) for k in tables}
    stats = {}
    for s in SCORES:
        tr = tables["true"][s].to_numpy(float)
        ra = tables["random"][s].to_numpy(float)
        ra = ra[np.isfinite(ra)]
        from whybox.sae.autointerp import auroc

        stats[s] = {"true": (tr.mean(), tr.min(), tr.max()), "random": (ra.mean(), ra.min(), ra.max()),
                    "separation_auroc": auroc(np.r_[np.ones(len(tr)), np.zeros(len(ra))], np.r_[tr, ra])}  # fmt: skip
    out["stats"], out["timing"] = stats, timing
    out["wall_s"] = time.perf_counter() - t0
    return out


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    tm = res["timing"]
    lines = [
        "### Autointerp, offline default, on the toy with ground-truth word features",
        "",
        f"Machine: {res['machine']}; one torch thread; whole benchmark {res['wall_s']:.0f} s "
        f"(toy + SAE {res['toy_s']:.1f} s, MiniLM load {res['minilm_load_s']:.1f} s).",
        "",
        f"{res['n_true']} true latents (decoder cosine > 0.9 with a toy feature) vs "
        f"{res['n_random']} firing latents of an untrained ReLU SAE. Explanations from the 10 "
        "top contexts; scores on 20 held-out activating + 20 non-activating contexts. "
        f"{res['named_exactly']} / {res['n_true']} true latents' explanations name exactly their "
        "two ground-truth words.",
        "",
        "| score | true mean (min-max) | random mean (min-max) | AUROC true vs random |",
        "|---|---|---|---|",
    ]
    for s, v in res["stats"].items():
        (tm_, tl, th), (rm, rl, rh) = v["true"], v["random"]
        lines.append(f"| {s} | **{tm_:.3f}** ({tl:.3f}-{th:.3f}) | {rm:.3f} ({rl:.3f}-{rh:.3f}) "
                     f"| {v['separation_auroc']:.3f} |")  # fmt: skip
    per = "; ".join(
        f"{s} {1e3 * tm[f'true_{s}']:.1f} / {1e3 * tm[f'random_{s}']:.1f}"
        for s in ("simulation", "detection", "fuzzing", "embedding", "semantic")
    )
    ex = res["examples"]
    lines += [
        "",
        f"Time per latent (ms, true / random): explain {1e3 * tm['true_explain']:.1f} / "
        f"{1e3 * tm['random_explain']:.1f}; {per}.",
        "",
        "Examples: true "
        + ", ".join(f"`{e}`" for e in ex["true"])
        + "; random "
        + ", ".join(f"`{e}`" for e in ex["random"])
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(markdown(run()))
