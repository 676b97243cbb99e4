"""Natural-language descriptions of a model's behaviour, each scored on held-out data.

:func:`describe` asks for hypotheses -- sentences such as "the model predicts 1 when income
> 52,000" -- about when a model gives an output (or when a label holds in a data set), turns
each sentence into a checkable rule, and scores the rule on examples the hypothesis was not
drawn from: the rule's accuracy at predicting the model's output, against the majority
baseline, with a one-sided exact binomial test. A sentence is never shown without its score
(:class:`Description`).

- With a language-model ``backend`` (iPrompt-style, Singh et al. 2023/2024): the backend sees
  labelled training examples and writes a hypothesis; on each held-out example the backend
  answers Yes/No to "does the rule hold here?" (log p(" Yes") vs log p(" No") when it has
  log-probabilities, else the first word it generates). Each hypothesis comes from a different
  random subset of the examples, so they differ.
- Offline (``backend=None``): hypotheses are decision stumps fitted on the training half
  (one feature, one threshold or category), described in words; the rule is the stump itself.

References
----------
Singh, C., Inala, J. P., Galley, M., Caruana, R. & Gao, J. (2024). Rethinking interpretability
in the era of large language models. arXiv:2402.01761.
Singh, C., Morris, J. X., Aneja, J., Rush, A. M. & Gao, J. (2023). Explaining data patterns in
natural language with language models (iPrompt). BlackboxNLP.
Zhong, R., Snell, C., Klein, D. & Steinhardt, J. (2022). Describing differences between text
distributions with natural language. ICML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError

__all__ = ["Description", "Hypothesis", "binomial_p_value", "describe"]

_TEXT = "__text__"


def binomial_p_value(k: int, n: int, p: float) -> float:
    """One-sided exact binomial test ``P(K >= k)`` for ``K ~ Binomial(n, p)`` (the p-value of
    ``scipy.stats.binomtest(k, n, p, alternative="greater")``), summed in log space."""
    if n == 0:
        return 1.0
    if p <= 0.0:
        return 1.0 if k <= 0 else 0.0
    if p >= 1.0:
        return 1.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(max(k, 0), n + 1)
    ]  # fmt: skip
    if not logs:
        return 0.0
    top = max(logs)
    return float(min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs)))


@dataclass(frozen=True)
class Hypothesis:
    """One described rule and its held-out score (made by :func:`~whybox.describe`).

    Parameters
    ----------
    sentence : str
        The rule in words.
    accuracy : float
        Fraction of held-out examples where "rule holds" equals "output is the target".
    baseline : float
        Accuracy of always predicting the held-out majority.
    p_value : float
        One-sided exact binomial test of ``n_correct`` out of ``n_test`` against ``baseline``.
    n_correct : int
        Held-out examples where the rule agrees with the output.
    n_test : int
        Held-out examples.
    coverage : float
        Fraction of held-out examples where the rule holds.

    Examples
    --------
    >>> from whybox.llm.describe import Hypothesis
    >>> h = Hypothesis("x is big", accuracy=0.9, baseline=0.5, p_value=0.001,
    ...                n_correct=18, n_test=20, coverage=0.45)
    >>> print(h)
    [held-out accuracy 90.0% vs majority 50.0%, p = 0.001, n = 20] x is big

    References
    ----------
    Zhong, R. et al. (2022). Describing Differences between Text Distributions with Natural
    Language. ICML.
    """

    sentence: str
    accuracy: float
    baseline: float
    p_value: float
    n_correct: int
    n_test: int
    coverage: float

    def __str__(self) -> str:
        return (
            f"[held-out accuracy {self.accuracy:.1%} vs majority {self.baseline:.1%}, "
            f"p = {self.p_value:.2g}, n = {self.n_test}] {self.sentence}"
        )


@dataclass
class Description:
    """Scored hypotheses, best held-out accuracy first; printing shows every sentence with
    its score (never a sentence alone). Made by :func:`~whybox.describe`.

    Parameters
    ----------
    hypotheses : list of Hypothesis
        Best held-out accuracy first (ties: smaller p-value first); ``.best`` is the first.
    target : object
        The output value described (one against the rest).
    subject : str
        What is described: ``"label"`` for data, ``"prediction"`` for a model.
    params : dict, default {}
        ``backend`` (``"offline"`` for the decision stumps), ``test_size``, ``n_train`` and
        ``random_state``.

    Examples
    --------
    >>> texts = ["a great film", "a film", "great food", "food"] * 10
    >>> d = wb.describe(np.array([1, 0, 1, 0] * 10), texts, n_hypotheses=1)
    >>> d.best.sentence, d.best.accuracy
    ("The label is 1 when the text contains the word 'great'.", 1.0)
    >>> list(d.to_frame().columns)[:3]
    ['sentence', 'accuracy', 'baseline']

    References
    ----------
    Zhong, R. et al. (2022). Describing Differences between Text Distributions with Natural
    Language. ICML.
    """

    hypotheses: list[Hypothesis]
    target: Any
    subject: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([h.__dict__ for h in self.hypotheses])

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "target": self.target
            if isinstance(self.target, (int, float, str))
            else str(self.target),
            "params": self.params,
            "hypotheses": [dict(h.__dict__) for h in self.hypotheses],
        }

    def __str__(self) -> str:
        head = f"When is the {self.subject} {self.target!r}? (scored on held-out examples)"
        return "\n".join([head, *(f"{i + 1}. {h}" for i, h in enumerate(self.hypotheses))])

    def __repr__(self) -> str:
        return f"Description({len(self.hypotheses)} hypotheses; best: {self.best})"


# --------------------------------------------------------------------------- inputs


def _frame(X: Any) -> Any:
    import pandas as pd

    if isinstance(X, Sequence) and X and all(isinstance(t, str) for t in X):
        frame = pd.DataFrame({_TEXT: list(X)})  # texts: one column, read as words
    elif isinstance(X, pd.DataFrame):
        frame = X.reset_index(drop=True)
    else:
        arr = np.asarray(X, dtype=object)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InvalidInputError(f"X must be a table (n, d), got shape {arr.shape}.")
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
        frame = frame.infer_objects()
    if len(frame) < 4:
        raise InvalidInputError(
            f"describe needs at least 4 examples (half to hypothesise from, half to score on), "
            f"got {len(frame)}."
        )
    return frame


def _outputs(model_or_data: Any, frame: Any, X: Any) -> tuple[np.ndarray, str]:
    if hasattr(model_or_data, "predict"):
        return np.asarray(model_or_data.predict(X)).reshape(-1), "model's output"
    if callable(model_or_data):
        return np.asarray(model_or_data(X)).reshape(-1), "model's output"
    y = np.asarray(model_or_data)
    if y.ndim == 1 and len(y) == len(frame):
        return y, "label"
    raise InvalidInputError(
        "model_or_data must be a model (with predict, or a callable X -> outputs) or the "
        f"labels of X ({len(frame)} values), got {type(model_or_data).__name__}"
        + (f" of shape {y.shape}" if hasattr(y, "shape") else "")
        + "."
    )


def _binary(y: np.ndarray, target: Any) -> tuple[np.ndarray, Any]:
    values = np.unique(y)
    if target is None:
        if len(values) == 2:
            target = values[-1].item() if hasattr(values[-1], "item") else values[-1]
        elif np.issubdtype(y.dtype, np.number) and len(values) > 2:
            target = "above its median"
            return y > np.median(y), target
        else:
            raise InvalidParameterError(
                f"the outputs take {len(values)} values ({list(values[:6])}...): pass target= "
                "the value to describe (one against the rest)."
            )
    hit = y == target
    if not hit.any() or hit.all():
        raise InvalidInputError(
            f"every output {'equals' if hit.all() else 'differs from'} target={target!r}: there "
            "is nothing to describe; pass another target or more varied examples."
        )
    return hit, target


# --------------------------------------------------------------------------- stumps


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else repr(v)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.casefold()))


def _word_stumps(texts: Any, y: np.ndarray, target: Any, subject: str) -> list:
    """Stumps "the text contains the word w" (or does not), over words in at least 2 % of
    the texts (at most the 500 most frequent), best training accuracy first."""
    sets = [_words(t) for t in texts]
    counts: dict[str, int] = {}
    for ws in sets:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    vocab = sorted((w for w, c in counts.items() if c >= max(2, 0.02 * len(sets))),
                   key=lambda w: (-counts[w], w))[:500]  # fmt: skip
    found = []
    for w in vocab:
        has = np.array([w in ws for ws in sets])
        acc = float((has == y).mean())
        yes = acc >= 1 - acc

        def rule(f: Any, w: str = w, yes: bool = yes) -> np.ndarray:
            return np.array([(w in _words(t)) == yes for t in f[_TEXT]])

        verb = "contains" if yes else "does not contain"
        found.append((max(acc, 1 - acc), f"The {subject} is {target!r} when the text {verb} "
                      f"the word {w!r}.", rule))  # fmt: skip
    found.sort(key=lambda r: -r[0])
    return [(s, r) for _, s, r in found]


def _stumps(frame: Any, y: np.ndarray, target: Any, subject: str) -> list[tuple[str, Callable]]:
    """Every feature's best decision stump on (frame, y), best training accuracy first."""
    if list(frame.columns) == [_TEXT]:
        return _word_stumps(frame[_TEXT], y, target, subject)
    found = []
    for col in frame.columns:
        x = frame[col].to_numpy()
        if np.issubdtype(x.dtype, np.number):
            u = np.unique(x[np.isfinite(x.astype(float))])
            if len(u) < 2:
                continue
            cuts = (u[1:] + u[:-1]) / 2.0
            if len(cuts) > 64:
                cuts = np.unique(np.quantile(cuts, np.linspace(0, 1, 64)))
            above = x[None, :] > cuts[:, None]
            acc = (above == y[None, :]).mean(1)
            i = int(np.argmax(np.maximum(acc, 1 - acc)))
            t, gt = float(cuts[i]), bool(acc[i] >= 1 - acc[i])
            rule = (lambda f, c=col, t=t: f[c].to_numpy(dtype=float) > t) if gt else (
                lambda f, c=col, t=t: f[c].to_numpy(dtype=float) <= t)  # fmt: skip
            score = max(acc[i], 1 - acc[i])
            words = f"{col} {'>' if gt else '<='} {_fmt(t)}"
        else:
            best = None
            for v in np.unique(x.astype(str)):
                a = float(((x.astype(str) == v) == y).mean())
                if best is None or a > best[0]:
                    best = (a, v)
            if best is None:
                continue
            score, v = best[0], str(best[1])
            rule = lambda f, c=col, v=v: f[c].to_numpy().astype(str) == v  # noqa: E731
            words = f"{col} is {v!r}"
        found.append((score, f"The {subject} is {target!r} when {words}.", rule))
    found.sort(key=lambda r: -r[0])
    return [(s, r) for _, s, r in found]


# --------------------------------------------------------------------------- backend


def _render(frame: Any, i: int) -> str:
    if list(frame.columns) == [_TEXT]:
        return str(frame[_TEXT].iloc[i])
    row = frame.iloc[i]
    return ", ".join(f"{c} = {_fmt(row[c])}" for c in frame.columns)


def _backend_hypotheses(be: Any, frame: Any, y: np.ndarray, target: Any, subject: str,
                        n: int, rng: np.random.Generator, n_shown: int) -> list[str]:  # fmt: skip
    out = []
    for h in range(n):
        shown = rng.choice(len(frame), min(n_shown, len(frame)), replace=False)
        lines = [
            f"Here are examples with whether the {subject} is {target!r}.",
            *(f"Example: {_render(frame, int(i))} -> {'Yes' if y[i] else 'No'}" for i in shown),
            f"In one sentence, state a rule that tells when the {subject} is {target!r}.",
            "Rule:",
        ]
        text = be.generate(["\n".join(lines)], max_new_tokens=64, random_state=h)[0]
        sentence = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if sentence:
            out.append(sentence)
    return out


def _backend_check(be: Any, sentence: str, frame: Any, rows: np.ndarray) -> np.ndarray:
    prompts = [
        f"Rule: {sentence}\nExample: {_render(frame, int(i))}\nDoes the rule say Yes for this "
        "example? Answer Yes or No.\nAnswer:"
        for i in rows
    ]
    if be.supports_logprobs:
        n = len(prompts)
        s = be.logprobs(prompts, [" Yes"] * n) - be.logprobs(prompts, [" No"] * n)
        return np.nan_to_num(s, nan=0.0) > 0
    answers = be.generate(prompts, max_new_tokens=4)
    return np.array([(re.findall(r"[a-z]+", a.casefold()) or [""])[0] == "yes" for a in answers])


# --------------------------------------------------------------------------- describe


def describe(
    model_or_data: Any, X: Any, *, backend: Any = None, target: Any = None,
    n_hypotheses: int = 3, hypotheses: Sequence[Any] | None = None, test_size: float = 0.5,
    n_shown: int = 20, random_state: Any = 0,
) -> Description:  # fmt: skip
    """Hypotheses, in words, about when a model's output (or a label) is ``target``, each
    scored on held-out examples.

    Parameters
    ----------
    model_or_data : model, callable or array (n,)
        A model with ``predict``, a function ``X -> outputs``, or labels of ``X`` (then the
        description is of a data pattern).
    X : DataFrame, array (n, d) or list of str
        Texts are read as words: the offline stumps test "the text contains the word w".
    backend : whybox.llm backend, callable ``prompt -> str`` or None
        Writes and checks the hypotheses; None fits decision stumps (offline).
    target : optional
        The output value described (one against the rest); default the larger of two
        values, or "above its median" for numeric outputs with more values.
    n_hypotheses : int, default 3
        Hypotheses kept (offline: the best decision stumps).
    hypotheses : list, optional
        Your own: ``(sentence, rule)`` pairs, ``rule(X_frame) -> bool array`` (checked
        offline), or sentences (checked by ``backend``).
    test_size : float, default 0.5
        Share of examples held out for scoring (a stratified split).
    n_shown : int, default 20
        Training examples shown to the backend per hypothesis.
    random_state : int
        Seeds the split and the examples shown.

    Returns
    -------
    Description

    Raises
    ------
    InvalidParameterError
        ``test_size`` outside (0, 1), ``n_hypotheses`` / ``n_shown`` below 1, a malformed
        entry of ``hypotheses``.
    InvalidInputError
        Outputs not one per example; too few examples to hold some out; a rule that does
        not return one bool per row; no hypothesis to score.
    UnsupportedModelError
        A sentence hypothesis without a ``backend`` to check it, or a backend that cannot
        generate.

    Examples
    --------
    >>> texts = ["a great film", "a film", "great food", "food"] * 10
    >>> labels = np.array([1, 0, 1, 0] * 10)
    >>> print(wb.describe(labels, texts, n_hypotheses=1))   # offline: decision stumps
    When is the label 1? (scored on held-out examples)
    1. [held-out accuracy 100.0% vs majority 50.0%, p = 9.5e-07, n = 20]
    The label is 1 when the text contains the word 'great'.

    References
    ----------
    Zhong, R. et al. (2022). Describing Differences between Text Distributions with Natural
    Language. ICML. Singh, C. et al. (2023). Explaining black box text modules in natural
    language with language models. arXiv:2305.09863.
    """
    n_hypotheses = check_int("n_hypotheses", n_hypotheses, minimum=1)
    n_shown = check_int("n_shown", n_shown, minimum=1)
    if not (isinstance(test_size, (int, float)) and 0.0 < float(test_size) < 1.0):
        raise InvalidParameterError(f"test_size must lie in (0, 1), got {test_size!r}.")
    rng = check_random_state(random_state)
    frame = _frame(X)
    raw, subject = _outputs(model_or_data, frame, X)
    if len(raw) != len(frame):
        raise InvalidInputError(f"got {len(raw)} outputs for {len(frame)} examples.")
    y, target = _binary(raw, target)
    test = np.zeros(len(y), dtype=bool)
    for cls in (False, True):  # stratified
        idx = np.flatnonzero(y == cls)
        test[rng.choice(idx, round(len(idx) * float(test_size)), replace=False)] = True
    train, held = np.flatnonzero(~test), np.flatnonzero(test)
    if len(held) == 0 or len(train) == 0:
        raise InvalidInputError(
            "too few examples to hold some out: pass more, or change test_size."
        )
    be = None
    if backend is not None:
        from whybox.llm.base import as_backend

        be = as_backend(backend)
    candidates: list[tuple[str, Any]] = []
    if hypotheses is not None:
        for h in hypotheses:
            if isinstance(h, str):
                candidates.append((h, None))
            elif isinstance(h, Sequence) and len(h) == 2 and callable(h[1]):
                candidates.append((str(h[0]), h[1]))
            else:
                raise InvalidParameterError(
                    "each of hypotheses= must be a sentence or a (sentence, rule) pair with "
                    f"rule(X) -> bool array, got {h!r}."
                )
    elif be is None:
        candidates = _stumps(frame.iloc[train].reset_index(drop=True), y[train], target,
                             subject)[:n_hypotheses]  # fmt: skip
    else:
        from whybox.sae.autointerp import _need_generate

        _need_generate(be, "describe (writing hypotheses)")
        sub = frame.iloc[train].reset_index(drop=True)
        candidates = [(s, None) for s in _backend_hypotheses(
            be, sub, y[train], target, subject, n_hypotheses, rng, n_shown)]  # fmt: skip
    if not candidates:
        raise InvalidInputError(
            "no hypothesis to score: the backend wrote none (empty answers) or no feature "
            "varies; pass hypotheses= or check the backend."
        )
    baseline = max(float(y[held].mean()), 1.0 - float(y[held].mean()))
    scored = []
    for sentence, rule in candidates:
        if rule is None:
            if be is None:
                raise UnsupportedModelError(
                    f"the hypothesis {sentence!r} is a sentence, and checking it needs a "
                    "backend=: pass one, or give (sentence, rule) pairs, or leave hypotheses "
                    "out for the offline decision stumps."
                )
            pred = _backend_check(be, sentence, frame, held)
        else:
            pred = np.asarray(rule(frame), dtype=bool).reshape(-1)
            if len(pred) != len(frame):
                raise InvalidInputError(
                    f"the rule of {sentence!r} returned {len(pred)} values for {len(frame)} "
                    "examples; it must return one bool per row of X."
                )
            pred = pred[held]
        k = int((pred == y[held]).sum())
        scored.append(Hypothesis(sentence, k / len(held), baseline,
                                 binomial_p_value(k, len(held), baseline), k, len(held),
                                 float(pred.mean())))  # fmt: skip
    scored.sort(key=lambda h: (-h.accuracy, h.p_value))
    params = {"backend": "offline" if be is None else be.name, "test_size": float(test_size),
              "n_train": len(train), "random_state": repr(random_state)}  # fmt: skip
    return Description(scored, target, subject, params)
