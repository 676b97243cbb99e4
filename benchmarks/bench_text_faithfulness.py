"""Faithfulness of text attribution methods on the demo sentiment classifier.

Task: :func:`whybox.zoo.sentiment.sentiment_classifier` (pretrained all-MiniLM-L6-v2, frozen,
with a head trained on template sentences written for whybox) on ``N_TEXTS`` held-out
sentences (:func:`whybox.zoo.sentiment.sentiment_sentences` ``"test"``, seed 0; adjectives and
verbs unseen in training), players = words, each sentence explained for its predicted class.

Score (:mod:`whybox.metrics.text_curves`): words replaced by ``[MASK]`` most important first
(signed value, largest first); deletion AUC = area under the predicted class's probability
over the fraction of words removed (lower is better), insertion AUC = the same from an
all-``[MASK]`` sentence as words are revealed (higher is better); trapezoid rule, one point
per word, mean over sentences. Random = a seeded uniform random ranking per sentence, the
mean over ``RANDOM_SEEDS`` seeds. Target: whybox's best method (lowest deletion AUC) beats
attention rollout and random. One thread.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

N_TEXTS = 40
RANDOM_SEEDS = 5
METHODS = {
    "integrated_gradients": "Integrated Gradients (50 steps, pad baseline)",
    "input_x_gradient": "Input x Gradient",
    "saliency": "Saliency (gradient L2 norm)",
    "attnlrp": "AttnLRP",
    "chefer": "Chefer (ICCV 2021)",
    "rollout": "Attention rollout",
    "tokenshap": "TokenSHAP",
}


def run(n_texts: int = N_TEXTS) -> dict[str, object]:
    import numpy as np
    import torch

    import whybox as wb
    from whybox.metrics.text_curves import random_values, text_curves, text_games
    from whybox.zoo.sentiment import sentiment_classifier, sentiment_sentences

    torch.set_num_threads(1)
    clf = sentiment_classifier(seed=0)
    texts, labels = sentiment_sentences("test", n=n_texts, seed=0)
    pred = clf.predict_proba(texts).argmax(axis=1)
    target = [int(p) for p in pred]
    games = text_games(clf.model, texts, tokenizer=clf.tokenizer, target=target, granularity="word")
    rows = {}
    for m in METHODS:
        kw = {"random_state": 0} if m == "tokenshap" else {}
        t0 = time.perf_counter()
        exp = wb.explain(
            clf.model, texts, tokenizer=clf.tokenizer, target=target, method=m,
            granularity="word", **kw,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        s = text_curves(games, exp).summary()
        rows[m] = {**s, "seconds": secs}
    rand = [
        text_curves(games, random_values(games, seed)).summary() for seed in range(RANDOM_SEEDS)
    ]
    rows["random"] = {
        k: float(np.mean([r[k] for r in rand]))
        for k in ("deletion_auc", "insertion_auc", "difference")
    }
    best = min((m for m in METHODS), key=lambda m: rows[m]["deletion_auc"])
    return {
        "task": f"sentiment classifier (MiniLM) on {len(texts)} held-out sentences, words",
        "n_texts": len(texts),
        "mean_words": float(np.mean([g.n_players for g in games])),
        "accuracy_on_these": float(np.mean(pred == labels)),
        "methods": rows,
        "best": best,
        "best_beats_rollout": rows[best]["deletion_auc"] < rows["rollout"]["deletion_auc"],
        "best_beats_random": rows[best]["deletion_auc"] < rows["random"]["deletion_auc"],
    }


def markdown(res: dict[str, object]) -> str:
    rows = res["methods"]
    lines = [
        "### bench_text_faithfulness",
        "",
        f"{res['task']} (mean {res['mean_words']:.1f} words, accuracy "
        f"{res['accuracy_on_these']:.1%}); words replaced by [MASK] most important first; "
        "AUC of the predicted class's probability, mean over sentences; random: mean of "
        f"{RANDOM_SEEDS} seeds. Best method: {METHODS[res['best']]} (beats rollout: "
        f"{res['best_beats_rollout']}, beats random: {res['best_beats_random']}).",
        "",
        "| method | deletion AUC (lower better) | insertion AUC (higher better) | seconds |",
        "|---|---|---|---|",
    ]
    for m, r in rows.items():
        name = METHODS.get(m, "random ranking (seeded)")
        secs = f"{r['seconds']:.2f}" if "seconds" in r else "-"
        lines.append(f"| {name} | {r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} | {secs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    result = run()
    print(json.dumps(result, indent=1))
    print(markdown(result))
