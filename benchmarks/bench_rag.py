"""RAG source attribution: cost and quality of each estimator against exact Shapley values.

Task: the zoo's tiny GPT-2 (``whybox.zoo.tinylm.tiny_lm(seed=0)``: 4 layers, d 128, trained on
the pydoc topics) over :class:`whybox.llm.local.LocalBackend` (batches of 64, CPU, one torch
thread) answers a completion prompt ``"{context}\\n{query}"``: 12 short sentences of its own
corpus as documents (``DOCS``; document 5 holds the answer), the query ``"The method called
is"`` and the answer ``" __getitem__()."``. A document's worth is read from the log-probability
of the answer with the documents kept (absent ones removed, order kept):
:class:`whybox.games.documents.DocumentGame`.

Reference: exact Shapley values from all 4096 contexts (4096 LLM calls). For each method x
budget (16 ... 1024 contexts; ContextCite: ablations) :meth:`whybox.text.rag.RagAttribution.
cost_quality` runs the method on a fresh game and reports its LLM calls, wall time, the
Spearman rank correlation with the exact values and the overlap of the top 3 documents
(arXiv:2507.04480). Quality is averaged over ``SEEDS`` seeds on a game that looks the 4096
values up (same values, same distinct contexts counted as calls); wall time is one seed on
the real model.

Targets (issue 18): at 64 contexts the best whybox method reaches a rank correlation at least
that of the ContextCite surrogate; KernelSHAP reaches Spearman >= 0.9 with exact at no more
than a quarter of exact's calls (<= 1024).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DOCS = [
    "The bounds should evaluate to integers.",
    "The target is only evaluated once.",
    "It supports no special operations.",
    "All other values are interpreted as true.",
    "The debugger supports aliases.",
    "The method called is __getitem__().",
    "The return value must be a string object.",
    "The list is in definition order.",
    "Mappings are mutable objects.",
    "The finally clause is executed.",
    "These attributes can have any type.",
    "Its truth value is true.",
]
QUERY, ANSWER = "The method called is", " __getitem__()."
TEMPLATE, SEP = "{context}\n{query}", "\n"
METHODS = ("leave_one_out", "permutation", "kernel", "kernel_small", "banzhaf", "contextcite")
BUDGETS = (16, 32, 64, 128, 256, 512, 1024)
SEEDS = 10


def run() -> dict[str, Any]:
    """The cost-quality table and the two targets."""
    import torch

    from whybox.games.shapley import all_coalitions
    from whybox.llm.local import LocalBackend
    from whybox.text.rag import RagAttribution
    from whybox.zoo.tinylm import tiny_lm

    torch.set_num_threads(1)
    model, tok = tiny_lm(seed=0)
    backend = LocalBackend(model, tok, batch_size=64)
    rag = RagAttribution(backend, prompt_template=TEMPLATE, separator=SEP, random_state=0)
    t0 = time.perf_counter()
    game = rag.game(QUERY, DOCS, ANSWER)
    exact = rag.explain(QUERY, DOCS, ANSWER, method="exact")
    exact_s = time.perf_counter() - t0
    phi = exact.values[0]
    C = all_coalitions(len(DOCS))
    values = game.value(C)[:, 0]
    table_of = {
        tuple(d for d, k in zip(DOCS, c, strict=True) if k): v
        for c, v in zip(C, values, strict=True)
    }

    def lookup(query: str, documents: list[str], answer: str) -> float:
        return float(table_of[tuple(documents)])

    quality = RagAttribution(lookup, random_state=0).cost_quality(
        QUERY, DOCS, ANSWER, methods=METHODS, budgets=BUDGETS, repeats=SEEDS, reference=phi
    )
    timing = rag.cost_quality(
        QUERY, DOCS, ANSWER, methods=METHODS, budgets=BUDGETS, repeats=1, reference=phi
    )
    quality["wall_time_s"] = timing["wall_time_s"].to_numpy()
    cc = RagAttribution(lookup, random_state=0, holdout=256).explain(
        QUERY, DOCS, ANSWER, method="contextcite", budget=64
    )
    at64 = quality[(quality.budget == 64) & (quality.note == "")]
    cc64 = float(at64[at64.method == "contextcite"].spearman.iloc[0])
    others = at64[at64.method != "contextcite"]
    best = others.loc[others.spearman.idxmax()]
    ks = quality[(quality.method == "kernel") & (quality.spearman >= 0.9)]
    k_budget = int(ks.budget.min()) if len(ks) else None
    return {
        "exact": {
            "calls": int(exact.params["calls"]),
            "seconds": exact_s,
            "values": phi.tolist(),
            "rank_of_answer_document": int((phi > phi[5]).sum()) + 1,
        },
        "table": quality.to_dict(orient="records"),
        "at_64": {
            "best_method": str(best.method),
            "best": float(best.spearman),
            "contextcite": cc64,
        },
        "kernel_budget_for_0.9": k_budget,
        "contextcite_lds_64": cc.params["lds"],
        "targets_met": {
            "best_at_64_ge_contextcite": bool(best.spearman >= cc64),
            "kernel_0.9_within_quarter": k_budget is not None and k_budget <= 1024,
        },
    }


def _f(v: Any, d: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{d}f}"


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    ex = res["exact"]
    lines = [
        "### RAG source attribution: cost vs quality (12 documents, tiny GPT-2)",
        "",
        f"Exact Shapley: {ex['calls']} LLM calls, {ex['seconds']:.1f} s; the answer's document "
        f"ranks {ex['rank_of_answer_document']} of 12.",
        "",
        f"| method | budget | LLM calls | wall time (s) | Spearman vs exact (mean ± sd, "
        f"{SEEDS} seeds) | top-3 overlap |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["table"]:
        if r["note"] and r["note"] != "reference":
            continue
        lines.append(
            f"| {r['method']} | {r['budget']} | {r['llm_calls']:.0f} | {_f(r['wall_time_s'], 2)} | "
            f"{_f(r['spearman'])} ± {_f(r['spearman_sd'])} | {_f(r['top_k_overlap'], 2)} |"
        )
    a = res["at_64"]
    t = res["targets_met"]
    lines += [
        "",
        f"At 64 contexts: best whybox method {a['best_method']} Spearman {a['best']:.3f} vs "
        f"ContextCite {a['contextcite']:.3f} (target >=: {'met' if t['best_at_64_ge_contextcite'] else 'NOT met'}).",
        f"KernelSHAP reaches mean Spearman >= 0.9 at {res['kernel_budget_for_0.9']} calls "
        f"(target <= 1024: {'met' if t['kernel_0.9_within_quarter'] else 'NOT met'}).",
        f"ContextCite's linear datamodeling score at 64 ablations (256 held-out masks): "
        f"{_f(res['contextcite_lds_64'])}.",
        "Budgets below a method's minimum (permutation 46, KernelSHAP 26, Banzhaf 48 for 12 "
        "documents) are left out; leave-one-out always costs n + 2 = 14 calls.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
