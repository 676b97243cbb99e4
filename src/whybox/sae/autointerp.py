"""Automated interpretability: explain a latent (or neuron) in words, then score the words.

Three steps, each with an LLM backend (any :class:`whybox.llm.Backend`) or an offline
default that needs none:

1. **Contexts** (:class:`FeatureContexts`): per latent, *train* contexts (the top-activating
   windows shown to the explainer), held-out *test* activating windows and *non-activating*
   windows, each a list of token strings with the latent's activation on every token. Built
   from an SAE's :class:`~whybox.sae.features.FeatureData` (top contexts for training, the
   remaining top contexts and the interval samples for testing, other latents' top windows
   that never co-fire with it as non-activating ones), from any ``(tokens, activations)``
   arrays (:meth:`FeatureContexts.from_arrays`, exact everywhere) or from an MLP neuron of a
   model (:func:`neuron_contexts`, through ``run_with_cache``).
2. **Explain** (:func:`explain_features`): the backend reads the train contexts with the
   activating tokens marked (``<<token>>``, as Bills et al. 2023 and delphi) and writes one
   sentence. Offline: tokens enriched at the activating positions versus their frequency in
   the corpus, by the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi &
   Quinn 2008), e.g. ``tokens " for", " while"; often after " a"``.
3. **Score** (:func:`score_explanations`) on the held-out contexts only:

   - *simulation* (Bills et al. 2023): a simulator predicts each token's activation from the
     explanation; the score is the Pearson correlation with the true activations pooled over
     test and non-activating contexts ("all at once"). Backend: 0-10 per token by
     ``generate`` (``simulator="generate"``) or the expected digit under ``logprobs``
     (``simulator="logprobs"``). Offline: ``"lexical"`` (1 on tokens the explanation
     quotes) or ``"embedding"`` (each token's MiniLM cosine with the explanation).
   - *detection* and *fuzzing* (Paulo et al. 2024, delphi): does this context contain the
     feature? / are the marked tokens the ones the explanation describes (correctly marked
     activating contexts against the same contexts with as many random non-activating tokens
     marked)? Balanced accuracy of the yes/no answers and AUROC of their scores.
   - *embedding* (delphi): all-MiniLM-L6-v2 embeddings (mean pooling, as sentence-transformers)
     of the explanation and of each context; AUROC of the cosine for activating versus
     non-activating contexts.

Results (:class:`AutointerpResult`) are a pandas table, a JSON-able dict, a sidecar
``autointerp.json`` in a FeatureData folder (written atomically) and the
``explanations.json`` the dashboard's feature pages read (:meth:`AutointerpResult.attach`).

References
----------
Bills, S., Cammarata, N., Mossing, D., et al. (2023). Language models can explain neurons in
language models. OpenAI.
Paulo, G., Mallen, A., Juang, C. & Belrose, N. (2024). Automatically interpreting millions of
features in large language models. arXiv:2410.13928 (delphi).
Monroe, B. L., Colaresi, M. P. & Quinn, K. M. (2008). Fightin' words: lexical feature
selection and evaluation for identifying the content of political conflict. Political
Analysis 16(4).
Reimers, N. & Gurevych, I. (2019). Sentence-BERT. EMNLP (all-MiniLM-L6-v2 mean pooling).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
)
from whybox.sae._autointerp_contexts import (
    Context,
    FeatureContexts,
    as_contexts,
    neuron_contexts,
    select_latents,
)

__all__ = [
    "AutointerpResult",
    "Context",
    "FeatureContexts",
    "auroc",
    "autointerp",
    "balanced_accuracy",
    "correlation",
    "embedding_simulator",
    "explain_features",
    "explain_prompt",
    "lexical_simulator",
    "mark_tokens",
    "neuron_contexts",
    "offline_explanation",
    "score_explanations",
]

SCORERS = ("simulation", "detection", "fuzzing", "embedding")
_MARKERS = (("<<", ">>"), ("[[", "]]"), ("{{", "}}"), ("\u27ea", "\u27eb"))
_AFTER = "; often after "


# --------------------------------------------------------------------------- metrics


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2
    (the Mann-Whitney U statistic / (n_pos n_neg); equals ``sklearn.metrics.roc_auc_score``).

    Parameters
    ----------
    labels : array (n,) of 0/1
    scores : array (n,)

    Returns
    -------
    float, NaN when one class is missing.
    """
    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=float).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends, strict=True):  # midranks of ties
        ranks[order[a:b]] = (a + b + 1) / 2.0
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def balanced_accuracy(labels: Any, predictions: Any) -> float:
    """Mean of the recall on each class (``sklearn.metrics.balanced_accuracy_score`` for two
    classes); with one class present, its recall. NaN for no labels."""
    y = np.asarray(labels).astype(bool).reshape(-1)
    p = np.asarray(predictions).astype(bool).reshape(-1)
    recalls = [float((p[y == c] == c).mean()) for c in (False, True) if (y == c).any()]
    return float(np.mean(recalls)) if recalls else math.nan


def correlation(a: Any, b: Any) -> float:
    """Pearson correlation (``scipy.stats.pearsonr``); 0 when either side is constant (a
    simulator that predicts nothing explains nothing)."""
    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if len(x) < 2:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / den) if den > 0 else 0.0


# --------------------------------------------------------------------------- prompts


def _markers(contexts: Sequence[Context]) -> tuple[str, str]:
    """The first marker pair that occurs in no token (so nothing needs escaping)."""
    for a, b in _MARKERS:
        if not any(a in t or b in t for c in contexts for t in c.tokens):
            return a, b
    raise InvalidInputError(
        "the contexts' tokens contain every marker pair (<< >>, [[ ]], {{ }}, \u27ea \u27eb): "
        "there is no unambiguous way to mark activating tokens."
    )


def mark_tokens(
    context: Context, marked: Any = None, markers: tuple[str, str] = ("<<", ">>")
) -> str:
    """The context's text with runs of marked tokens (default: activation > 0) wrapped in the
    markers; tokens are shown exactly as they are (nothing escaped)."""
    if marked is None:
        if context.activations is None:
            raise InvalidInputError("this context has no known activations to mark.")
        marked = context.activations > 0
    marked = np.asarray(marked, dtype=bool)
    out, open_ = [], False
    for t, m in zip(context.tokens, marked, strict=True):
        if m and not open_:
            out.append(markers[0])
        if not m and open_:
            out.append(markers[1])
        out.append(t)
        open_ = bool(m)
    if open_:
        out.append(markers[1])
    return "".join(out)


def explain_prompt(contexts: Sequence[Context]) -> str:
    """The explainer's prompt (after Bills et al. 2023 and delphi): the examples with their
    activating tokens marked, then ``Explanation:``."""
    a, b = _markers(contexts)
    lines = [
        "We are studying a feature of a neural network. Each example below is a short text in "
        f"which the feature fires on the tokens marked {a}like this{b}.",
        "Say in one short sentence what the feature detects (the marked tokens, and their "
        "context if it matters). Quote token strings in double quotes.",
        "",
    ]
    lines += [f"Example {i + 1}: {mark_tokens(c, markers=(a, b))}" for i, c in enumerate(contexts)]
    lines += ["", "Explanation:"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- explain


def _log_odds(fg: Counter, bg: Counter, prior: float = 10.0) -> dict[str, tuple[float, float]]:
    """(z-score, share of the foreground) per foreground token: the log-odds ratio of the
    token in the foreground (weighted activating tokens, total ``n``) against the corpus
    (``bg``, total ``m``, which holds the foreground's tokens too), with the informative
    Dirichlet prior ``alpha_w = prior * b_w / m`` (Monroe et al. 2008, eqs. 16 and 20):
    ``delta = log((y+a)/(n+prior-y-a)) - log((b+a)/(m+prior-b-a))``,
    ``z = delta / sqrt(1/(y+a) + 1/(b+a))``."""
    n = sum(fg.values())
    m = max(sum(bg.values()), n)
    out = {}
    for w, y in fg.items():
        b = max(bg.get(w, 0), y)  # a corpus count is at least the foreground's
        a = prior * b / m
        d = math.log((y + a) / (n + prior - y - a)) - math.log((b + a) / (m + prior - b - a))
        out[w] = (d / math.sqrt(1.0 / (y + a) + 1.0 / (b + a)), y / max(n, 1e-12))
    return out


def offline_explanation(contexts: Sequence[Context], background: Counter, *,
                        max_tokens: int = 5, coverage: float = 0.9, z_min: float = 1.96) -> str:  # fmt: skip
    """The offline explanation: the tokens most enriched where the latent fires (weighted by
    activation / the context's maximum) against the corpus frequencies, added by z-score until
    they cover ``coverage`` of the activation mass; the preceding token when one dominates.

    Returns
    -------
    str, e.g. ``tokens " dog", " cat"; often after " the"``
    """
    fg, prev = Counter(), Counter()
    for c in contexts:
        a = c.activations
        top = float(a.max()) if a is not None and len(a) else 0.0
        for i in np.flatnonzero(a > 0) if top > 0 else []:
            fg[c.tokens[i]] += float(a[i]) / top
            if i > 0:
                prev[c.tokens[i - 1]] += float(a[i]) / top
    if not fg:
        raise InvalidInputError("the contexts hold no activating token to explain.")
    z = _log_odds(fg, background)
    ranked = sorted(z, key=lambda w: (-z[w][0], -fg[w], w))
    chosen, covered = [], 0.0
    for w in ranked:
        if chosen and (z[w][0] < z_min or covered >= coverage or len(chosen) >= max_tokens):
            break
        chosen.append(w)
        covered += z[w][1]
    text = "tokens " + ", ".join(json.dumps(w, ensure_ascii=False) for w in chosen)
    if prev:
        zp = _log_odds(prev, background)
        best = max(zp, key=lambda w: (zp[w][1], zp[w][0]))
        if zp[best][1] >= 0.5 and zp[best][0] >= 3.0:
            text += _AFTER + json.dumps(best, ensure_ascii=False)
    return text


@dataclass
class AutointerpResult:
    """Explanations and their scores, one row per latent.

    Attributes
    ----------
    rows : list of dict
        ``latent``, ``explanation``, ``explainer`` and any scores (``simulation``,
        ``detection_balanced_accuracy``, ``detection_auroc``, ``fuzzing_balanced_accuracy``,
        ``fuzzing_auroc``, ``embedding_auroc``) with ``n_test`` / ``n_negative``.
    prompts : dict
        The explainer's prompt per latent (backend explanations only).
    """

    rows: list[dict[str, Any]]
    prompts: dict[int, str]
    params: dict[str, Any]

    def table(self) -> Any:
        """A pandas DataFrame, one row per latent."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def explanations(self) -> dict[int, str]:
        return {int(r["latent"]): str(r["explanation"]) for r in self.rows}

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (NaN scores as None)."""
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                 for r in self.rows]  # fmt: skip
        return {"format": "whybox.autointerp", "version": 1, "params": self.params,
                "rows": clean, "prompts": {str(k): v for k, v in self.prompts.items()}}  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``autointerp.json`` atomically (``path`` a FeatureData folder or a file)."""
        path = Path(path)
        if path.is_dir():
            path = path / "autointerp.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps(self.to_json(), indent=1), "utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def attach(self, fd: Any, *, score: str | None = None) -> Any:
        """Set the explanations (with one score each: ``score``, default the first of
        embedding_auroc, detection_balanced_accuracy, simulation present) on a FeatureData,
        for its feature pages; ``fd.save(folder)`` writes them."""
        out = {}
        for r in self.rows:
            name = score or next((k for k in ("embedding_auroc", "detection_balanced_accuracy",
                                              "simulation") if k in r), None)  # fmt: skip
            v = r.get(name) if name else None
            out[int(r["latent"])] = (r["explanation"], None if v is None or v != v else float(v))
        return fd.set_explanations(out)

    def __str__(self) -> str:
        return self.table().to_string(index=False)


def _backend(backend: Any) -> Any:
    from whybox.llm.base import as_backend

    return as_backend(backend)


def explain_features(
    feature_data_or_contexts: Any, latents: Any = None, *, backend: Any = None,
    n_examples: int = 10, max_new_tokens: int = 64, random_state: Any = 0,
) -> AutointerpResult:  # fmt: skip
    """One explanation per latent from its top-activating contexts.

    Parameters
    ----------
    feature_data_or_contexts : FeatureData, its folder, FeatureContexts or (tokens, activations)
    latents : int or list of int, optional
        Default every latent.
    backend : whybox.llm backend, callable ``prompt -> str`` or None
        None: the offline explanation from token statistics (:func:`offline_explanation`).
        Else the backend's ``generate`` answers :func:`explain_prompt` (greedy, first line).
    n_examples : int, default 10
        Top contexts shown to the explainer.
    random_state : int
        Seeds the choice of held-out contexts when the data are built here.

    Returns
    -------
    AutointerpResult
    """
    n_examples = check_int("n_examples", n_examples, minimum=1)
    ctx = as_contexts(feature_data_or_contexts, n_examples, random_state)
    todo = select_latents(ctx, latents)
    be = None if backend is None else _backend(backend)
    if be is not None:
        _need_generate(be, "explain_features")
    rows, prompts = [], {}
    for j in todo:
        train = ctx.latent(j)["train"][:n_examples]
        t0 = time.perf_counter()
        if be is None:
            text = offline_explanation(train, ctx.background)
        else:
            prompts[j] = explain_prompt(train)
            out = be.generate([prompts[j]], max_new_tokens=max_new_tokens, temperature=0.0,
                              random_state=random_state)[0]  # fmt: skip
            text = next((ln.strip() for ln in out.splitlines() if ln.strip()), "")
            if not text:
                raise ModelCallError(
                    f"the backend {be.name!r} returned an empty explanation for latent {j}; "
                    "check its prompt (result.prompts) or use backend=None (offline)."
                )
        rows.append({"latent": j, "explanation": text,
                     "explainer": "offline" if be is None else be.name,
                     "explain_seconds": time.perf_counter() - t0})  # fmt: skip
    return AutointerpResult(rows, prompts, {"n_examples": n_examples, "source": ctx.source})


# --------------------------------------------------------------------------- simulators


_STOP = frozenset(
    "a an the and or of on in to for with by is are it its this that these those token tokens "
    "word words feature fires detects activates marked text often after before when which "
    "like such as at from".split()
)


def _norm(t: str) -> str:
    """Stripped and case-folded; a whitespace-only token stays itself."""
    return t.strip().casefold() or t


def _terms(explanation: str) -> set[str]:
    """The strings an explanation names: its double-quoted strings (before an offline
    explanation's "; often after" clause), else its content words."""
    head = explanation.split(_AFTER)[0]
    quoted = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', head):
        try:
            quoted.append(json.loads(f'"{m.group(1)}"'))
        except ValueError:
            quoted.append(m.group(1))
    if quoted:
        return {_norm(q) for q in quoted if _norm(q)}
    return {w for w in re.findall(r"[^\W_]+", explanation.casefold()) if w not in _STOP}


def lexical_simulator(explanation: str) -> Any:
    """The offline simulator: ``f(tokens) -> ndarray (L,)``, 1 on tokens the explanation
    names (see :func:`_terms`; compared stripped and case-folded), else 0."""
    terms = _terms(explanation)

    def simulate(tokens: Sequence[str]) -> np.ndarray:
        return np.array([1.0 if _norm(t) in terms else 0.0 for t in tokens])

    return simulate


_TOKEN_EMB: dict[str, np.ndarray] = {}  # token string -> MiniLM embedding (bounded)


def embedding_simulator(explanation: str) -> Any:
    """The offline semantic simulator: ``f(tokens) -> ndarray (L,)``, the cosine of each
    stripped token's all-MiniLM-L6-v2 embedding with the explanation's, clipped at 0
    (token embeddings are memoised, up to 100,000 strings)."""
    ref = _embed([explanation])[0]

    def simulate(tokens: Sequence[str]) -> np.ndarray:
        new = sorted({_norm(t) for t in tokens} - set(_TOKEN_EMB))
        if new:
            if len(_TOKEN_EMB) + len(new) > 100_000:
                _TOKEN_EMB.clear()
            _TOKEN_EMB.update(zip(new, _embed(new), strict=True))
        return np.array([max(float(_TOKEN_EMB[_norm(t)] @ ref), 0.0) for t in tokens])

    return simulate


def _sim_prompt(explanation: str, tokens: Sequence[str]) -> str:
    lines = [
        f"A feature of a neural network is explained as: {explanation}",
        "For each numbered token below, predict how strongly the feature fires on it, from 0 "
        "(not at all) to 10 (most). Answer one line per token: the number, a tab, the value.",
        "",
    ]
    return "\n".join(lines + [f"{i}\t{json.dumps(t, ensure_ascii=False)}" for i, t in
                              enumerate(tokens)] + ["", "Predictions:"])  # fmt: skip


def _simulate_generate(be: Any, explanation: str, tokens: Sequence[str]) -> tuple[np.ndarray, int]:
    out = be.generate([_sim_prompt(explanation, tokens)], max_new_tokens=8 * len(tokens) + 8)[0]
    pred = np.zeros(len(tokens))
    found = set()
    for m in re.finditer(r"^\s*(\d+)\s*[\t:,=]\s*(\d+(?:\.\d+)?)", out, flags=re.MULTILINE):
        i = int(m.group(1))
        if 0 <= i < len(tokens):
            pred[i] = min(float(m.group(2)), 10.0) / 10.0
            found.add(i)
    return pred, len(tokens) - len(found)


def _simulate_logprobs(be: Any, explanation: str, tokens: Sequence[str]) -> np.ndarray:
    """Expected value of the digit 0-10 under the backend's log-probabilities, per token
    (Bills et al.'s expected-value simulator)."""
    base = _sim_prompt(explanation, tokens)
    pred = np.zeros(len(tokens))
    digits = [str(d) for d in range(11)]
    for i in range(len(tokens)):  # asked token by token: "<i>\t" -> the digit
        lp = be.logprobs([f"{base}\n{i}\t"] * 11, digits)
        w = np.exp(lp - np.max(lp)) if np.isfinite(lp).any() else np.ones(11)
        pred[i] = float(w @ np.arange(11) / w.sum()) / 10.0
    return pred


# --------------------------------------------------------------------------- scoring


def _has_generate(be: Any) -> bool:
    from whybox.llm.base import Backend, CallableBackend

    if isinstance(be, CallableBackend):
        return be._gen_fn is not None
    return type(be)._generate is not Backend._generate


def _need_generate(be: Any, what: str) -> None:
    if not _has_generate(be):
        raise UnsupportedModelError(
            f"the backend {be.name!r} cannot generate text, which {what} needs: pass a backend "
            "with generate (LocalBackend, OpenAIBackend, CallableBackend(generate=...)), or "
            "backend=None for the offline default (token-statistics explanations, lexical "
            "simulator and MiniLM embedding scorer)."
        )


def _yes_no(be: Any, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(predictions, scores, unparsed) of Yes/No questions: log p(" Yes") - log p(" No")
    where the backend has log-probabilities, else the first word of a generated answer."""
    if be.supports_logprobs:
        s = be.logprobs(prompts, [" Yes"] * len(prompts)) - be.logprobs(
            prompts, [" No"] * len(prompts)
        )
        s = np.nan_to_num(s, nan=0.0, posinf=1e9, neginf=-1e9)
        return s > 0, s, 0
    _need_generate(be, "the detection and fuzzing scorers")
    answers = be.generate(prompts, max_new_tokens=4)
    words = [(re.findall(r"[a-z]+", a.casefold()) or [""])[0] for a in answers]
    pred = np.array([w == "yes" for w in words])
    return pred, pred.astype(float), sum(w not in ("yes", "no") for w in words)


def _detect_prompt(explanation: str, text: str) -> str:
    return (f"A feature of a neural network is explained as: {explanation}\n"
            f"Text: {text}\nDoes the feature fire anywhere in this text? Answer Yes or No.\n"
            "Answer:")  # fmt: skip


def _fuzz_prompt(explanation: str, marked: str, markers: tuple[str, str]) -> str:
    return (f"A feature of a neural network is explained as: {explanation}\n"
            f"Text: {marked}\nAre the tokens marked {markers[0]}like this{markers[1]} the ones "
            "the explanation describes? Answer Yes or No.\nAnswer:")  # fmt: skip


def _embed(texts: list[str]) -> np.ndarray:
    from whybox.text.tokenshap import _MiniLM

    return _MiniLM.embed(texts)


def _score_one(expl: str, sets: dict[str, list[Context]], scorers: Sequence[str], be: Any,
               simulator: str, rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    test, neg = sets["test"], sets["negative"]
    row: dict[str, Any] = {"n_test": len(test), "n_negative": len(neg)}
    lex = lexical_simulator(expl)
    if "simulation" in scorers:
        known = [c for c in test + neg if c.activations is not None]
        preds, unparsed = [], 0
        semantic = embedding_simulator(expl) if simulator == "embedding" and known else None
        for c in known:
            if simulator == "lexical":
                preds.append(lex(c.tokens))
            elif simulator == "embedding":
                preds.append(semantic(c.tokens))
            elif simulator == "generate":
                p, u = _simulate_generate(be, expl, c.tokens)
                preds.append(p)
                unparsed += u
            else:
                preds.append(_simulate_logprobs(be, expl, c.tokens))
        truth = np.concatenate([c.activations for c in known]) if known else np.zeros(0)
        row["simulation"] = correlation(np.concatenate(preds) if preds else [], truth)
        if simulator == "generate":
            row["simulation_unparsed_tokens"] = unparsed
    both = test + neg
    labels = np.array([c.label for c in both])
    if "detection" in scorers:
        if be is None:
            s = np.array([lex(c.tokens).max(initial=0.0) for c in both])
            pred, bad = s > 0.5, 0
        else:
            pred, s, bad = _yes_no(be, [_detect_prompt(expl, c.text) for c in both])
        row["detection_balanced_accuracy"] = balanced_accuracy(labels, pred)
        row["detection_auroc"] = auroc(labels, s)
        if be is not None:
            row["detection_unparsed"] = bad
    if "fuzzing" in scorers:
        items, flabels = [], []
        markers = _markers(test) if test else ("<<", ">>")
        for c in test:
            on = c.activations > 0
            off = np.flatnonzero(~on)
            if len(off) < on.sum():
                continue
            wrong = np.zeros_like(on)
            wrong[rng.choice(off, int(on.sum()), replace=False)] = True
            items += [(c, on), (c, wrong)]
            flabels += [1, 0]
        if items:
            if be is None:
                s = np.array([lex(c.tokens)[m].mean() for c, m in items])
                pred = s > 0.5
            else:
                prompts = [
                    _fuzz_prompt(expl, mark_tokens(c, m, markers), markers) for c, m in items
                ]
                pred, s, _ = _yes_no(be, prompts)
            row["fuzzing_balanced_accuracy"] = balanced_accuracy(flabels, pred)
            row["fuzzing_auroc"] = auroc(flabels, s)
        else:
            row["fuzzing_balanced_accuracy"] = row["fuzzing_auroc"] = math.nan
    if "embedding" in scorers:
        emb = _embed([expl] + [c.text for c in both])
        row["embedding_auroc"] = auroc(labels, emb[1:] @ emb[0])
    return row


def score_explanations(
    feature_data_or_contexts: Any, explanations: Any, *, scorers: Sequence[str] = SCORERS,
    backend: Any = None, simulator: str | None = None, n_examples: int | None = None,
    random_state: Any = 0,
) -> AutointerpResult:  # fmt: skip
    """Score explanations on each latent's held-out contexts (see the module notes).

    Parameters
    ----------
    feature_data_or_contexts : as for :func:`explain_features`
        The first ``n_examples`` top contexts (those the explainer saw) stay out of the
        scores; with FeatureData or arrays the contexts are rebuilt here, with
        ``n_examples`` (default: the explainer's, from an AutointerpResult, else 10).
    explanations : AutointerpResult or mapping {latent: str}
    scorers : subset of ("simulation", "detection", "fuzzing", "embedding")
    backend : whybox.llm backend, callable or None
        None: the offline default (lexical simulator, lexical detection and fuzzing); the
        embedding scorer never uses the backend.
    simulator : {"lexical", "embedding", "generate", "logprobs"}, optional
        Default "lexical" offline, "generate" with a backend. "embedding": each token's
        MiniLM cosine with the explanation (offline, semantic: "animals" reaches " dog").
    random_state : int
        Seeds the falsely marked tokens of fuzzing.

    Returns
    -------
    AutointerpResult
        The explanation rows with their scores added.
    """
    unknown = [s for s in scorers if s not in SCORERS]
    if isinstance(scorers, str) or unknown or not scorers:
        raise InvalidParameterError(
            f"scorers must be a non-empty subset of {SCORERS}, got {scorers!r}."
        )
    if isinstance(explanations, AutointerpResult):
        keep = ("latent", "explanation", "explainer", "explain_seconds")  # old scores go
        base_rows = [{k: r[k] for k in keep if k in r} for r in explanations.rows]
        prompts = dict(explanations.prompts)
    elif isinstance(explanations, Mapping):
        base_rows = [{"latent": k, "explanation": v} for k, v in explanations.items()]
        prompts = {}
    else:
        raise InvalidInputError(
            f"explanations must be an AutointerpResult or a {{latent: text}} mapping, got "
            f"{type(explanations).__name__}."
        )
    if not base_rows:
        raise InvalidInputError("no explanations to score: pass at least one.")
    be = None if backend is None else _backend(backend)
    simulator = simulator or ("lexical" if be is None else "generate")
    if simulator not in ("lexical", "embedding", "generate", "logprobs"):
        raise InvalidParameterError(
            f"simulator={simulator!r}: use 'lexical' or 'embedding' (offline), 'generate' or "
            "'logprobs' (with a backend)."
        )
    if simulator in ("generate", "logprobs") and "simulation" in scorers:
        if be is None:
            raise InvalidParameterError(
                f"simulator={simulator!r} needs a backend= (or use 'lexical')."
            )
        if simulator == "generate":
            _need_generate(be, "the generate simulator")
        elif not be.supports_logprobs:
            be.logprobs("", "")  # raises the protocol's UnsupportedModelError naming options
    if n_examples is None:  # the explainer's, so its contexts stay out of the scores
        n_examples = 10
        if isinstance(explanations, AutointerpResult):
            n_examples = int(explanations.params.get("n_examples", 10))
    n_examples = check_int("n_examples", n_examples, minimum=1)
    ctx = as_contexts(feature_data_or_contexts, n_examples, random_state)
    rows = []
    for r in base_rows:
        j = ctx.check_latent(r["latent"])
        if not isinstance(r["explanation"], str) or not r["explanation"].strip():
            raise InvalidInputError(f"the explanation of latent {j} is empty: pass a sentence.")
        rng = np.random.default_rng([int(check_random_state(random_state).integers(2**31)), j])
        t0 = time.perf_counter()
        r.update(_score_one(r["explanation"], ctx.latent(j), scorers, be, simulator, rng))
        r["score_seconds"] = time.perf_counter() - t0
        rows.append(r)
    params = dict(explanations.params) if isinstance(explanations, AutointerpResult) else {}
    params.update({"scorers": list(scorers), "simulator": simulator, "source": ctx.source,
                   "scorer_backend": "offline" if be is None else be.name})  # fmt: skip
    return AutointerpResult(rows, prompts, params)


def autointerp(
    feature_data_or_contexts: Any, latents: Any = None, *, backend: Any = None,
    scorers: Sequence[str] = SCORERS, n_examples: int = 10, random_state: Any = 0,
    **score_kwargs: Any,
) -> AutointerpResult:  # fmt: skip
    """:func:`explain_features` then :func:`score_explanations` on the same contexts."""
    n_examples = check_int("n_examples", n_examples, minimum=1)
    ctx = as_contexts(feature_data_or_contexts, n_examples, random_state)
    expl = explain_features(ctx, latents, backend=backend, n_examples=n_examples,
                            random_state=random_state)  # fmt: skip
    return score_explanations(ctx, expl, scorers=scorers, backend=backend,
                              n_examples=n_examples, random_state=random_state, **score_kwargs)  # fmt: skip
