"""TokenShap vs the ``tokenshap`` package (TokenSHAP's Monte Carlo scheme): error and time.

Task: the zoo's tiny GPT-2 (``whybox.zoo.tinylm.tiny_lm``: 4 layers, d 128, trained on the
pydoc topics) answers prompts of 8-13 words (``PROMPTS``, written for this benchmark, ending
mid-sentence so that the answers have words); players are the words; a coalition's value is
the TF-IDF cosine between the greedy answer (at most 12 new tokens) to the prompt with only
those words and the answer to the whole prompt (:class:`whybox.text.tokenshap.
AnswerSimilarityGame`, absent words dropped). CPU, one torch thread.

Error (same value function, equal model calls). Every coalition's answer is computed once
(``2**n`` prompts) and the exact Shapley values follow by enumeration. The package's scheme
(``TokenSHAP._get_result_per_token_combination`` sampling with ``sampling_ratio``, then its
with-minus-without averages and its min-shift normalisation) runs on a model whose
``generate(prompt)`` looks those answers up, with its TF-IDF step replaced by the same
pairwise TF-IDF similarity (the shipped one fits IDF on all sampled answers at once, which
makes the value function depend on the sample). Its model calls (``generate`` calls,
baseline included) are counted, and whybox's TokenShap (KernelSHAP with the sizes 1 and
``n - 1`` enumerated, size-profile covariates, jackknife standard errors and Stein shrinkage,
:func:`whybox.games._lowbudget.lowbudget_shapley`; ``budget`` = that count) runs on the same
game. Both estimates and the exact values are put through the package's
normalisation ``(phi - min phi) / sum(phi - min phi)`` and compared by the mean absolute
error over the words; the figure is the ratio of the mean errors over prompts x seeds
(target <= 0.5) at budgets of 3n, 6n, 12n and 24n calls. Whybox's signed, unnormalised error
against exact Shapley is reported too.

Time (as shipped, equal model calls): the package's ``LocalModel`` on the same saved model
(``tiny_lm_path()``, greedy, 12 new tokens, one ``generate`` per prompt) with its own TF-IDF,
against ``TokenShap(model, tokenizer=tok, value="similarity", similarity="tfidf",
budget=calls)``, which answers prompts of equal length in batches with the KV cache; both
after one warm-up, summed over the prompts. Target: whybox time / package time <= 0.5.

``tokenshap`` is installed with ``pip install -c constraints.txt --no-deps tokenshap`` (it
imports ``tqdm.notebook``, replaced here by a plain iterator).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROMPTS = [
    "The for statement is used to iterate over the",
    "The return statement leaves the current function call with",
    "A class definition defines a class object and its",
    "The import statement finds a module and then",
    "Exceptions are raised by the raise statement and",
    "A lambda expression creates an anonymous function that",
    "The import statement finds a module and loads it",
    "In a for loop the target list is assigned each item of the",
]
CONFIG = {"max_new_tokens": 12, "budgets_per_player": [3, 6, 12, 24], "seeds": 10, "timed_mult": 6}


def _package() -> Any:
    import token_shap.token_shap as ts_mod

    ts_mod.tqdm = lambda it, **kw: it  # tqdm.notebook needs ipywidgets
    return ts_mod


def _normalise(phi: np.ndarray) -> np.ndarray:
    """The package's normalisation: min-shifted, divided by the sum (uniform if all equal)."""
    shifted = phi - phi.min()
    total = shifted.sum()
    return np.full_like(phi, 1 / len(phi)) if total == 0 else shifted / total


class _LookupModel:
    """The package's model interface answering from the enumerated game (counts calls)."""

    def __init__(self, by_text: dict[str, str]) -> None:
        self.by_text, self.calls = by_text, 0

    def generate(self, prompt: str) -> str:
        self.calls += 1
        return self.by_text[prompt]


def _enumerate(model: Any, tok: Any, prompt: str) -> tuple[Any, np.ndarray, dict[str, str]]:
    from whybox.games.shapley import all_coalitions, exact_shapley
    from whybox.text import tokenize
    from whybox.text.tokenshap import AnswerSimilarityGame, tfidf_similarity

    (row,) = tokenize(prompt, tok, granularity="word")
    words = prompt.split()
    assert row.names == words, (row.names, words)
    game = AnswerSimilarityGame(
        model,
        row,
        tokenizer=tok,
        similarity=tfidf_similarity,
        max_new_tokens=CONFIG["max_new_tokens"],
    )
    phi, _, _ = exact_shapley(game)
    coal = all_coalitions(row.n_players)
    answers = game.answer_batch(coal)
    by_text = {
        " ".join(w for w, keep in zip(words, c, strict=True) if keep): a
        for c, a in zip(coal, answers, strict=True)
    }
    return game, phi[:, 0], by_text


def _package_estimate(ts_mod: Any, by_text: dict[str, str], prompt: str, ratio: float, seed: int):
    """The package's sampling and estimate, with the pairwise TF-IDF value function."""
    import pandas as pd

    from whybox.text.tokenshap import tfidf_similarity

    class SameValue(ts_mod.TokenSHAP):
        def _get_df_per_token_combination(self, prompt_responses, baseline_text):
            df = pd.DataFrame(
                [(p.split("_")[0], r[0], r[1]) for p, r in prompt_responses.items()],
                columns=["Prompt", "Response", "Token_Indexes"],
            )
            df["Cosine_Similarity"] = tfidf_similarity(df["Response"].tolist(), baseline_text)
            return df

    lookup = _LookupModel(by_text)
    random.seed(seed)
    explainer = SameValue(lookup, ts_mod.StringSplitter())
    explainer.analyze(prompt, sampling_ratio=ratio)
    return np.array(list(explainer.shapley_values.values())), lookup.calls


def _accuracy(model: Any, tok: Any, ts_mod: Any) -> dict[str, Any]:
    from whybox.text.tokenshap import token_shapley

    rows = []
    for prompt in PROMPTS:
        game, exact, by_text = _enumerate(model, tok, prompt)
        n = game.n_players
        exact_norm = _normalise(exact)
        for mult in CONFIG["budgets_per_player"]:
            ratio = (mult * n - 1) / (2**n - 1)
            for seed in range(CONFIG["seeds"]):
                theirs, calls = _package_estimate(ts_mod, by_text, prompt, ratio, seed)
                phi, std, _, _ = token_shapley(
                    game, np.random.default_rng(seed), estimator="kernel", budget=calls
                )
                ours = phi[:, 0]
                rows.append(
                    {
                        "prompt": prompt,
                        "n": n,
                        "mult": mult,
                        "calls": calls,
                        "err_package": float(np.mean(np.abs(theirs - exact_norm))),
                        "err_whybox": float(np.mean(np.abs(_normalise(ours) - exact_norm))),
                        "err_whybox_signed": float(np.mean(np.abs(ours - exact))),
                        "covered": float(np.mean(np.abs(ours - exact) <= 1.96 * std[:, 0])),
                    }
                )
    out: dict[str, Any] = {"per_budget": {}}
    for mult in CONFIG["budgets_per_player"]:
        sel = [r for r in rows if r["mult"] == mult]
        e_p = float(np.mean([r["err_package"] for r in sel]))
        e_w = float(np.mean([r["err_whybox"] for r in sel]))
        out["per_budget"][f"{mult}n"] = {
            "mean_calls": float(np.mean([r["calls"] for r in sel])),
            "err_package": e_p,
            "err_whybox": e_w,
            "ratio": e_w / e_p,
            "err_whybox_signed": float(np.mean([r["err_whybox_signed"] for r in sel])),
            "coverage_95": float(np.mean([r["covered"] for r in sel])),
        }
    e_p = float(np.mean([r["err_package"] for r in rows]))
    e_w = float(np.mean([r["err_whybox"] for r in rows]))
    out.update(err_package=e_p, err_whybox=e_w, error_ratio=e_w / e_p, n_runs=len(rows))
    return out


def _timing(model: Any, tok: Any, ts_mod: Any) -> dict[str, Any]:
    from whybox.text.tokenshap import TokenShap
    from whybox.zoo.tinylm import tiny_lm_path

    local = ts_mod.LocalModel(str(tiny_lm_path()), max_new_tokens=CONFIG["max_new_tokens"])
    local.model.generation_config.temperature = None  # greedy (it passes no do_sample)
    counted = _Counting(local)
    pkg = ts_mod.TokenSHAP(counted, ts_mod.StringSplitter())
    pkg.analyze("The value of the", sampling_ratio=0.5)  # warm-up
    TokenShap(model, tokenizer=tok, value="similarity", similarity="tfidf").explain(
        "The value of the", budget=16
    )
    t_pkg = t_why = 0.0
    calls_pkg = calls_why = 0
    for seed, prompt in enumerate(PROMPTS):
        n = len(prompt.split())
        ratio = (CONFIG["timed_mult"] * n - 1) / (2**n - 1)
        random.seed(seed)
        counted.calls = 0
        t0 = time.perf_counter()
        pkg.analyze(prompt, sampling_ratio=ratio)
        t_pkg += time.perf_counter() - t0
        calls = counted.calls
        calls_pkg += calls
        ts = TokenShap(
            model,
            tokenizer=tok,
            value="similarity",
            similarity="tfidf",
            budget=calls,
            max_new_tokens=CONFIG["max_new_tokens"],
            random_state=seed,
        )
        t0 = time.perf_counter()
        exp = ts.explain(prompt)
        t_why += time.perf_counter() - t0
        calls_why += exp.meta["coalitions"][0]
    return {
        "seconds_package": t_pkg,
        "seconds_whybox": t_why,
        "time_ratio": t_why / t_pkg,
        "calls_package": calls_pkg,
        "calls_whybox": calls_why,
    }


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def generate(self, prompt: str) -> str:
        self.calls += 1
        return self.inner.generate(prompt)


def run() -> dict[str, object]:
    """Error ratio and time ratio of whybox's TokenShap vs the tokenshap package."""
    import torch

    from whybox.zoo.tinylm import tiny_lm

    torch.set_num_threads(1)
    ts_mod = _package()
    model, tok = tiny_lm(seed=0)
    accuracy = _accuracy(model, tok, ts_mod)
    timing = _timing(model, tok, ts_mod)
    return {
        "task": (
            f"tiny GPT-2 (zoo), {len(PROMPTS)} prompts of 8-13 words, word players, TF-IDF "
            f"similarity of greedy answers ({CONFIG['max_new_tokens']} new tokens), drop masker"
        ),
        "accuracy": accuracy,
        "timing": timing,
        "error_ratio": accuracy["error_ratio"],
        "time_ratio": timing["time_ratio"],
        "targets": {"error_ratio": 0.5, "time_ratio": 0.5},
    }


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    acc, tim = res["accuracy"], res["timing"]
    lines = [
        "### TokenShap vs the tokenshap package (TokenSHAP Monte Carlo)",
        "",
        f"Task: {res['task']}.",
        "",
        "| budget (calls) | package error | whybox error | ratio (target <= 0.5) "
        "| whybox signed error | whybox 95% coverage |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in acc["per_budget"].items():
        lines.append(
            f"| {key} (mean {r['mean_calls']:.0f}) | {r['err_package']:.4f} | "
            f"{r['err_whybox']:.4f} | {r['ratio']:.3f} | {r['err_whybox_signed']:.4f} | "
            f"{r['coverage_95']:.2f} |"
        )
    lines += [
        f"| all ({acc['n_runs']} runs) | {acc['err_package']:.4f} | {acc['err_whybox']:.4f} | "
        f"**{acc['error_ratio']:.3f}** | | |",
        "",
        "Errors: mean absolute error of the min-shift-normalised values against the "
        "normalised exact Shapley values of the same game, at the package's call count.",
        "",
        "| time, equal calls | package (LocalModel, serial generate) | whybox TokenShap | ratio "
        "(target <= 0.5) |",
        "|---|---|---|---|",
        f"| {tim['calls_package']} / {tim['calls_whybox']} calls | "
        f"{tim['seconds_package']:.2f} s | {tim['seconds_whybox']:.2f} s | "
        f"**{tim['time_ratio']:.3f}** |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(markdown(result))
