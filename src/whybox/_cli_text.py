"""``whybox quickstart --text``: text attribution methods side by side on real transformers.

:func:`register` adds a ``--text`` flag to the app's existing ``quickstart`` command (its
other options unchanged). With it, :func:`text_quickstart` loads (training on first use, ~10
s) the MiniLM sentiment classifier of :mod:`whybox.zoo.sentiment` and the tiny GPT-2 of
:mod:`whybox.zoo.tinylm`, explains a few sentences' predicted class with Integrated
Gradients, AttnLRP, Chefer relevance, attention rollout and TokenSHAP (players = words),
scores each method by deletion / insertion AUC of the class probability (with a seeded
random ranking as the baseline, :mod:`whybox.metrics.text_curves`), measures the agreement
between methods (Spearman rank correlation over a sentence's words, mean over sentences),
explains the tiny LM's next token after one prompt with IG and AttnLRP, and writes it all to
one HTML page (tokens reach it escaped, :mod:`whybox.report.text`).

References
----------
Sundararajan, M., Taly, A. and Yan, Q. (2017). Axiomatic attribution for deep networks (IG).
Achtibat, R. et al. (2024). AttnLRP: Attention-aware layer-wise relevance propagation for
transformers. ICML.
Chefer, H., Gur, S. and Wolf, L. (2021). Generic attention-model explainability for
interpreting bi-modal and encoder-decoder transformers. ICCV.
Abnar, S. and Zuidema, W. (2020). Quantifying attention flow in transformers. ACL.
Goldshmidt, R. and Horovicz, M. (2024). TokenSHAP: Interpreting large language models with
Monte Carlo Shapley value estimation.
"""

from __future__ import annotations

import functools
import inspect
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEMO_PROMPT",
    "DEMO_SENTENCES",
    "TEXT_METHODS",
    "agreement",
    "compare_methods",
    "register",
    "text_quickstart",
]

#: method name for wb.explain -> display name
TEXT_METHODS = {
    "integrated_gradients": "Integrated Gradients",
    "attnlrp": "AttnLRP",
    "chefer": "Chefer",
    "rollout": "Attention rollout",
    "tokenshap": "TokenSHAP",
}

#: the explained sentences (one holds "<3", which the page must show as text)
DEMO_SENTENCES = (
    "The movie was wonderful and the actors were brilliant.",
    "The food was cold and the waiter was rude.",
    "I expected a boring lecture, but the class was fantastic.",
    "The staff were lovely <3 but the room was dirty and noisy.",
    "Honestly, the new phone is a disappointing waste of money.",
)

#: the causal-LM prompt (tiny_lm is trained on Python's documentation)
DEMO_PROMPT = "A function definition defines a user-defined function"

_TEXT_HELP = (
    "Instead: explain a MiniLM sentiment classifier and a tiny GPT-2 with IG, AttnLRP, "
    "Chefer, rollout and TokenSHAP, with deletion/insertion AUCs (first run trains, ~10 s)."
)


def agreement(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Mean over texts of the Spearman rank correlation between two methods' values.

    Texts with fewer than 3 players or a constant row are skipped (NaN if none is left).
    """
    from scipy.stats import spearmanr

    rhos = []
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, float), np.asarray(y, float)
        if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        rhos.append(float(spearmanr(x, y).statistic))
    return float(np.mean(rhos)) if rhos else float("nan")


def compare_methods(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    target: Any,
    methods: Sequence[str] = tuple(TEXT_METHODS),
    granularity: str = "word",
    random_state: int = 0,
) -> dict[str, Any]:
    """Explain ``texts`` with each method and score them by deletion / insertion AUC.

    Returns
    -------
    dict
        ``explanations`` {method: Explanation}, ``curves`` {method or "random": TextCurves},
        ``seconds`` {method: float}, ``games`` (the TextGames, one per text).
    """
    import whybox as wb
    from whybox.metrics.text_curves import random_values, text_curves, text_games

    games = text_games(model, texts, tokenizer=tokenizer, target=target, granularity=granularity)
    exps, curves, seconds = {}, {}, {}
    for m in methods:
        kw = {"random_state": random_state} if m == "tokenshap" else {}
        t0 = time.perf_counter()
        exps[m] = wb.explain(
            model, list(texts), tokenizer=tokenizer, target=target, method=m,
            granularity=granularity, **kw,
        )  # fmt: skip
        seconds[m] = time.perf_counter() - t0
        curves[m] = text_curves(games, exps[m])
    curves["random"] = text_curves(games, random_values(games, random_state))
    return {"explanations": exps, "curves": curves, "seconds": seconds, "games": games}


def _table(id: str, title: str, header: list[str], rows: list[list[Any]], notes: list[str]):
    return {"kind": "table", "id": id, "title": title, "header": header, "rows": rows,
            "notes": notes}  # fmt: skip


def text_quickstart(
    out: Path,
    *,
    seed: int = 0,
    sentences: Sequence[str] = DEMO_SENTENCES,
    prompt: str = DEMO_PROMPT,
    log: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    """Build the text demo page and write it to ``out`` (a folder or a .html file).

    Returns
    -------
    (path, results)
        The written file and ``{"faithfulness": [[method, deletion AUC, insertion AUC,
        seconds], ...], "agreement": {(m1, m2): rho}, "accuracy": float}``.
    """
    from whybox.report._page import Report, _fmt
    from whybox.report.text import text_section
    from whybox.zoo.sentiment import SENTIMENT_LABELS, sentiment_classifier
    from whybox.zoo.tinylm import tiny_lm

    t0 = time.perf_counter()
    clf = sentiment_classifier(seed=seed)
    model, tok = clf.model, clf.tokenizer
    texts = list(sentences)
    pred = clf.predict_proba(texts).argmax(axis=1)
    log(f"sentiment classifier ready (held-out accuracy {clf.meta['test_accuracy']:.1%})")
    res = compare_methods(model, tok, texts, target=[int(p) for p in pred], random_state=seed)
    exps, curves = res["explanations"], res["curves"]
    rep = Report(
        title="whybox quickstart: why did the transformer say that?",
        subtitle=(
            "A sentiment classifier on the pretrained all-MiniLM-L6-v2 (frozen encoder, head "
            f"trained here; held-out accuracy {clf.meta['test_accuracy']:.1%}) explained by five "
            "methods, word by word, and a tiny GPT-2's next token."
        ),
    )
    rows, faith = [], []
    for m in [*TEXT_METHODS, "random"]:
        s = curves[m].summary()
        name = TEXT_METHODS.get(m, "random ranking (seeded)")
        secs = res["seconds"].get(m)
        faith.append([m, s["deletion_auc"], s["insertion_auc"], secs])
        rows.append([name, _fmt(s["deletion_auc"]), _fmt(s["insertion_auc"]),
                     "" if secs is None else f"{secs:.2f}"])  # fmt: skip
    rep.add(_table(
        "faithfulness", "Faithfulness: deletion and insertion AUC",
        ["method", "deletion AUC (lower better)", "insertion AUC (higher better)", "seconds"],
        rows,
        [f"Mean over the {len(texts)} sentences of the area under the predicted class's "
         "probability as words are replaced by [MASK], most important first (deletion) or "
         "revealed from an all-[MASK] sentence (insertion)."],
    ))  # fmt: skip
    names = list(TEXT_METHODS)
    agree = {}
    grid = []
    for a in names:
        line = [TEXT_METHODS[a]]
        for b in names:
            rho = agreement(exps[a].values, exps[b].values)
            agree[(a, b)] = rho
            line.append(_fmt(rho, 2))
        grid.append(line)
    rep.add(_table(
        "agreement", "Agreement between methods", ["", *TEXT_METHODS.values()], grid,
        ["Spearman rank correlation of two methods' word values, mean over sentences."],
    ))  # fmt: skip
    pred_rows = [[t, SENTIMENT_LABELS[p], _fmt(float(q))]
                 for t, p, q in zip(texts, pred, clf.predict_proba(texts).max(1), strict=True)]  # fmt: skip
    rep.add(_table("sentences", "Sentences", ["sentence", "predicted", "probability"],
                   pred_rows, []))  # fmt: skip
    for m, exp in exps.items():
        sec = text_section(exp, images=False, id=f"texts-{m}")
        sec["title"] = f"{TEXT_METHODS[m]}: each sentence's predicted class"
        rep.add(sec)
    lm, lm_tok = tiny_lm(seed=seed)
    import torch

    import whybox as wb

    with torch.no_grad():
        logits = lm(lm_tok(prompt, return_tensors="pt").input_ids).logits[0, -1]
    next_id = int(logits.argmax())
    next_tok = lm_tok.decode([next_id])
    for m in ("integrated_gradients", "attnlrp"):
        exp = wb.explain(lm, [prompt], tokenizer=lm_tok, target=next_id, method=m)
        sec = text_section(exp, images=False, id=f"lm-{m}")
        sec["title"] = (
            f"Causal LM (tiny GPT-2), {TEXT_METHODS[m]}: why the next token is {next_tok!r}"
        )
        rep.add(sec)
    path = rep.save(out)
    log(f"report written to {path} ({time.perf_counter() - t0:.1f} s)")
    return path, {
        "faithfulness": faith,
        "agreement": agree,
        "accuracy": clf.meta["test_accuracy"],
    }


def register(
    app: Any,
    *,
    fail: Callable[[Exception], None],
    write: Callable[[Path, Any], Any],
) -> None:
    """Add ``--text`` to the app's ``quickstart`` command (which must already be registered).

    Parameters
    ----------
    app : typer.Typer
    fail : callable
        ``fail(exc)`` prints a WhyboxError as one line and exits with code 2.
    write : callable
        ``write(path, save)`` creates missing folders and calls ``save(path)``.
    """
    import typer

    from .errors import WhyboxError

    info = next(
        c for c in app.registered_commands if (c.name or c.callback.__name__) == "quickstart"
    )
    original = info.callback
    sig = inspect.signature(original, eval_str=True)
    hints = typing.get_type_hints(original)
    option = typer.Option(False, "--text", help=_TEXT_HELP)
    params = [
        *sig.parameters.values(),
        inspect.Parameter("text", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=bool),
    ]

    @functools.wraps(original)
    def quickstart(**kwargs: Any) -> None:
        text = kwargs.pop("text", False)
        if not text:
            return original(**kwargs)
        from rich.console import Console
        from rich.table import Table

        from ._cli_inputs import check_output_report

        console = Console(highlight=False)
        try:
            target = check_output_report(kwargs["out"], "--out")
            box: dict[str, Any] = {}

            def save(p: Path) -> None:
                box["path"], box["res"] = text_quickstart(
                    p, seed=kwargs.get("seed", 0), log=lambda s: console.print(s, markup=False)
                )

            write(target, save)
        except WhyboxError as exc:
            fail(exc)
            return None
        table = Table(title="whybox quickstart --text")
        for col in ("method", "deletion AUC", "insertion AUC", "seconds"):
            table.add_column(col)
        for m, d, i, s in box["res"]["faithfulness"]:
            table.add_row(m, f"{d:.3f}", f"{i:.3f}", "" if s is None else f"{s:.2f}")
        console.print(table)
        return None

    quickstart.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    quickstart.__annotations__ = {**hints, "text": bool}
    quickstart.__doc__ = (original.__doc__ or "") + (
        "\n\n    With --text: explain a MiniLM sentiment classifier and a tiny GPT-2 with IG, "
        "AttnLRP, Chefer, rollout and TokenSHAP side by side, with deletion / insertion AUCs "
        "and the agreement between methods."
    )
    info.callback = quickstart
