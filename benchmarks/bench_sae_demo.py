"""Demo SAEs on two real models: evaluation tables and "one concept" features.

``whybox.sae.demo.demo_sae`` trains a TopK SAE (Gao et al. 2024) on

- the zoo's tiny GPT-2 (4 layers, d 128, trained on the pydoc topics) at
  ``blocks.2.resid_post``: 1024 latents, k 16, 204,800 training tokens of the pydoc training
  topics;
- all-MiniLM-L6-v2 (offline) at ``blocks.3.resid_post``: 1536 latents, k 16, 102,400 tokens
  of the sentences of the pydoc training topics;

and evaluates each on the held-out topics (CE loss recovered and KL for the causal LM; an
encoder has no next-token loss). Features: the latents whose top-activating contexts (top 20
on the held-out text) most often peak on one token string (purity, see
:func:`whybox.sae.demo.concept_features`), among all latents and among words of at least
four letters.

Everything is built from scratch (``cache=False``) on one torch thread; the build time
includes loading the model, training, evaluation and the feature pass.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

METRICS = (
    ("l0", "L0"),
    ("fvu", "FVU"),
    ("explained_variance", "explained variance"),
    ("cossim", "cosine"),
    ("ce_loss_score", "CE loss recovered"),
    ("ce_loss_without_sae", "CE clean"),
    ("ce_loss_with_sae", "CE with SAE"),
    ("kl_div_with_sae", "KL with SAE"),
    ("dead_fraction", "dead fraction"),
    ("dense_fraction", "dense fraction (>10%)"),
    ("n_tokens", "evaluated tokens"),
)
WORDS = ("lower", "Capitalised", "UPPER")


def _one(name: str) -> dict[str, Any]:
    import torch

    from whybox.sae.demo import DEMO_CONFIGS, concept_features, demo_sae

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        sae, _, _, ev, fd = demo_sae(name, cache=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        torch.set_num_threads(threads)
    keep = ("latent", "token", "purity", "density", "top_tokens")
    return {
        "config": dict(DEMO_CONFIGS[name]),
        "metrics": {k: getattr(ev, k) for k, _ in METRICS},
        "train_fvu": sae.history[-1]["fvu"] if getattr(sae, "history", None) else None,
        "build_wall_s": wall,
        "build_cpu_s": cpu,
        "top": [{k: p[k] for k in keep} for p in concept_features(fd, n=5)],
        "words": [
            {k: p[k] for k in keep} for p in concept_features(fd, n=5, classes=WORDS, min_chars=4)
        ],
        "n_pure": sum(p["purity"] >= 0.9 for p in concept_features(fd, n=len(fd))),
    }


def run() -> dict[str, Any]:
    from benchmarks.common import machine

    t0 = time.perf_counter()
    res = {"machine": machine(), "models": {n: _one(n) for n in ("tiny_lm", "minilm")}}
    res["wall_s"] = time.perf_counter() - t0
    return res


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{float(v):.4g}"


def _tok(t: Any) -> str:
    from whybox.report.internals import show_token

    return show_token(t).replace("|", "\\|").replace("`", "'")


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    names = list(res["models"])
    lines = [
        "### Demo SAEs: tiny GPT-2 and all-MiniLM-L6-v2 (`wb.sae.demo.demo_sae`)",
        "",
        f"Machine: {res['machine']}; one torch thread; built from scratch (cache=False); "
        f"whole benchmark {res['wall_s']:.0f} s. Evaluated on the held-out pydoc topics.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    cfg_rows = (("site", "site"), ("width", "width"), ("k", "k"), ("tokens", "training tokens"))
    for key, label in cfg_rows:
        lines.append(
            f"| {label} | " + " | ".join(_fmt(res["models"][n]["config"][key]) if key != "site"
                                          else res["models"][n]["config"][key] for n in names)
            + " |"
        )  # fmt: skip
    for key, label in METRICS:
        lines.append(
            f"| {label} | "
            + " | ".join(_fmt(res["models"][n]["metrics"][key]) for n in names)
            + " |"
        )
    lines.append(
        "| latents with purity >= 0.9 | "
        + " | ".join(_fmt(res["models"][n]["n_pure"]) for n in names)
        + " |"
    )
    lines.append(
        "| build s (wall / CPU) | "
        + " | ".join(
            f"{res['models'][n]['build_wall_s']:.0f} / {res['models'][n]['build_cpu_s']:.0f}"
            for n in names
        )
        + " |"
    )
    for n in names:
        for key, what in (("top", "all tokens"), ("words", "words of 4+ letters")):
            lines += [
                "",
                f"{n}: purest latents ({what}): share of the top contexts whose activating "
                "token is the dominant string, and those tokens (first 8).",
                "",
                "| latent | token | purity | density | activating tokens of the top contexts |",
                "|---|---|---|---|---|",
            ]
            for p in res["models"][n][key]:
                toks = " ".join(f"`{_tok(t)}`" for t in p["top_tokens"][:8])
                lines.append(
                    f"| {p['latent']} | `{_tok(p['token'])}` | {p['purity']:.2f} | "
                    f"{p['density']:.3g} | {toks} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
