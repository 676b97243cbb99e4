"""RAG source attribution: which retrieved documents (or sentences) drove the answer.

:class:`RagAttribution` explains a language model's answer to a query given retrieved
documents. The documents (``granularity="document"``) or their sentences (``"sentence"``)
are the players of a :class:`~whybox.games.documents.DocumentGame`: a coalition keeps its
sources in their original order, the others are removed from the context, and its worth is
the log-probability of the answer (``value="logprob"``) or the similarity of the regenerated
answer to it (``value="similarity"``, for backends that only generate text).

Methods (``method=``), all on the same game:

- ``"exact"``: exact Shapley values from all ``2**n`` contexts (at most
  :data:`MAX_EXACT_SOURCES` sources);
- ``"leave_one_out"``: ``v(all) - v(all but j)`` (``n + 1`` contexts);
- ``"permutation"``: antithetic permutation sampling, with standard errors;
- ``"kernel"``: KernelSHAP (paired, leverage-stratified sampling), with standard errors;
- ``"kernel_small"``: KernelSHAP for a few calls per source (sizes 1 and ``n - 1``
  enumerated first, a size-profile regression adjustment and Stein shrinkage;
  :func:`whybox.games._lowbudget.lowbudget_shapley`);
- ``"banzhaf"``: Banzhaf values (exact up to 12 sources without a budget, else maximum
  sample reuse with standard errors);
- ``"lime"``: LIME's weighted linear surrogate over random coalitions;
- ``"contextcite"``: the ContextCite surrogate (:mod:`whybox.text.contextcite`; Lasso on
  the logit-probability over random half ablations), with its LDS on held-out masks;
- ``"auto"``: ``"exact"`` when it is cheap (``2**n`` within the budget, or ``n`` <= 10 without
  one), else ``"kernel"``.

:meth:`RagAttribution.cost_quality` runs each method at each budget on fresh games and
tabulates LLM calls, wall time, and agreement with exact Shapley (Spearman rank correlation,
top-k overlap), as the cost-quality study of arXiv:2507.04480 does.

References
----------
Cohen-Wang, B., Shah, H., Georgiev, K. and Madry, A. (2024). ContextCite: attributing model
generation to context. NeurIPS.

Nematov, I. et al. (2025). Source attribution in retrieval-augmented generation.
arXiv:2507.04480.

Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Wang, J. T. and Jia, R. (2023). Data Banzhaf. AISTATS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import InvalidParameterError, UnsupportedModelError
from ..explanation import Explanation
from ..games.documents import VALUES, DocumentGame
from ..parallel import row_generator

__all__ = ["MAX_EXACT_SOURCES", "RAG_METHODS", "RagAttribution", "as_tabular"]

RAG_METHODS = (
    "exact",
    "leave_one_out",
    "permutation",
    "kernel",
    "kernel_small",
    "banzhaf",
    "lime",
    "contextcite",
)
#: method="exact" refuses more sources than this (4096 contexts).
MAX_EXACT_SOURCES = 12
#: method="auto" without a budget enumerates up to this many sources (1024 contexts).
AUTO_EXACT_SOURCES = 10
#: budgets of the default cost-quality table
DEFAULT_BUDGETS = (16, 32, 64, 128, 256, 512)
DEFAULT_TABLE_METHODS = (
    "leave_one_out",
    "permutation",
    "kernel",
    "kernel_small",
    "banzhaf",
    "contextcite",
)


def _min_budget(method: str, n: int) -> int:
    from ..games._lowbudget import lowbudget_min_budget
    from ..games.banzhaf import banzhaf_min_budget
    from ..games.kernel import kernel_min_budget
    from ..games.shapley import permutation_min_budget

    return {
        "permutation": permutation_min_budget(n),
        "kernel": kernel_min_budget(n),
        "kernel_small": lowbudget_min_budget(n),
        "banzhaf": banzhaf_min_budget(n),
        "lime": 2,
        "contextcite": 2,
        "leave_one_out": n + 1,
        "exact": 2**n,
    }[method]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    k = min(k, len(a))
    ta = set(np.argsort(-a, kind="stable")[:k].tolist())
    tb = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(ta & tb) / k


class RagAttribution:
    """Attribute a RAG answer to its retrieved documents (or their sentences).

    Parameters
    ----------
    backend : :class:`whybox.llm.Backend`, transformers causal LM, or callable
        A backend (``as_backend`` of a model needs ``tokenizer=``), or a plain function
        ``score(query, documents, answer) -> float``: the log-probability of ``answer`` given
        the query and the documents kept, in their order.
    tokenizer : optional
        With a transformers model: its tokenizer (a :class:`~whybox.llm.local.LocalBackend`
        is made).
    prompt_template : str or callable, optional
        ``{context}`` / ``{query}`` format string or ``f(query, documents) -> prompt``
        (default ``whybox.games.documents.DEFAULT_TEMPLATE``).
    value : {"logprob", "similarity"}
        The answer's log-probability, or the similarity of the regenerated answer.
    similarity : {"tfidf", "minilm"} or callable
        With ``value="similarity"``.
    granularity : {"document", "sentence"}
        The players: whole documents or their sentences.
    separator : str
        Between kept documents.
    random_state : int or None
        Seeds every sampling method (a fresh stream per explained answer).
    max_new_tokens : int
        Generated answers' length (``answer=None``, ``value="similarity"``).
    batch_size : int
        Prompts per backend call.
    lasso_alpha : float
        ContextCite's Lasso penalty (0.01).
    holdout : int
        ContextCite: held-out masks for the LDS in :meth:`explain` (extra calls; 0: none).
    answer_tokens : int, optional
        ContextCite: the answer's number of tokens (its outputs are divided by it before the
        Lasso fit, as the package does); default counted with the backend's tokenizer, or 1
        for a backend without one.

    Raises
    ------
    InvalidParameterError
        An unknown ``value``, ``granularity``, ``method`` or similarity, a non-positive
        count, a template without the ``{context}`` / ``{query}`` fields.
    UnsupportedModelError
        ``value="logprob"`` with a backend that gives no log-probabilities.
    InvalidInputError
        From ``explain``: an empty query or no documents.
    ModelCallError
        The backend raised (the original error is chained).

    Examples
    --------
    >>> rag = wb.RagAttribution(wb.llm.LocalBackend(*wb.zoo.tiny_lm()))
    >>> docs = ["The pass statement is a null operation.",
    ...         "The for statement iterates over a sequence.", "Lists are mutable."]
    >>> exp = rag.explain("What does pass do?", docs, answer=" nothing", method="exact")
    >>> exp.values[0].shape, exp.params["calls"]         # one value per document; 2**3 calls
    ((3,), 8)
    >>> bool(np.isclose(exp.values[0].sum() + exp.base_values[0], exp.predictions[0]))
    True

    References
    ----------
    Cohen-Wang, B., Shah, H., Georgiev, K. and Madry, A. (2024). ContextCite: attributing model
    generation to context. NeurIPS. Shapley, L. S. (1953). A value for n-person games.
    """

    def __init__(
        self,
        backend: Any,
        *,
        tokenizer: Any = None,
        prompt_template: str | Callable[[str, list[str]], str] | None = None,
        value: str = "logprob",
        similarity: Any = "tfidf",
        granularity: str = "document",
        separator: str = "\n\n",
        random_state: int | None = 0,
        max_new_tokens: int = 32,
        batch_size: int = 256,
        lasso_alpha: float = 0.01,
        holdout: int = 32,
        answer_tokens: int | None = None,
    ) -> None:
        from ..llm.base import Backend, as_backend

        if not isinstance(backend, Backend):
            is_module = type(backend).__module__.startswith(("transformers", "torch"))
            if tokenizer is not None or is_module:
                backend = as_backend(backend, tokenizer=tokenizer)
            elif not callable(backend):
                raise InvalidParameterError(
                    f"cannot use {type(backend).__name__} as a RAG backend: pass a whybox.llm "
                    "backend, a transformers causal LM with tokenizer=, or a function "
                    "score(query, documents, answer) -> float."
                )
        if value not in VALUES:
            raise InvalidParameterError(f"value={value!r} is not one of {list(VALUES)}.")
        if isinstance(backend, Backend) and value == "logprob" and not backend.supports_logprobs:
            raise UnsupportedModelError(
                f"value='logprob' needs log-probabilities, but the backend {backend.name!r} "
                "gives none. Use value='similarity' (answers regenerated and compared with "
                "TF-IDF or MiniLM), or a backend with logprobs (LocalBackend on a "
                "transformers model, OpenAIBackend on an endpoint that returns logprobs, "
                "CallableBackend(logprobs=...))."
            )
        self.backend = backend
        self.prompt_template = prompt_template
        self.value = value
        self.similarity = similarity
        self._similarity_fn = _similarity(similarity) if value == "similarity" else None
        self.granularity = granularity
        self.separator = separator
        self.random_state = random_state
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lasso_alpha = float(lasso_alpha)
        self.holdout = check_int("holdout", holdout, minimum=0)
        self.answer_tokens = (
            None if answer_tokens is None else check_int("answer_tokens", answer_tokens, minimum=1)
        )

    def __repr__(self) -> str:
        name = getattr(self.backend, "name", type(self.backend).__name__)
        return (
            f"RagAttribution(backend={name!r}, value={self.value!r}, "
            f"granularity={self.granularity!r})"
        )

    # ------------------------------------------------------------------ the game
    def game(self, query: str, documents: Sequence[str], answer: str | None = None) -> DocumentGame:
        """The :class:`~whybox.games.documents.DocumentGame` of one answer (a fresh cache)."""
        return DocumentGame(
            self.backend,
            query,
            documents,
            answer,
            value=self.value,
            similarity=self._similarity_fn,
            prompt_template=self.prompt_template,
            granularity=self.granularity,
            separator=self.separator,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
        )

    def _n_output_tokens(self, answer: str) -> int:
        if self.answer_tokens is not None:
            return self.answer_tokens
        tok = getattr(self.backend, "tokenizer", None)
        if tok is None:
            return 1
        try:
            return max(1, len(tok(answer, add_special_tokens=False)["input_ids"]))
        except Exception:  # a tokenizer that cannot count: ContextCite's scale of 1
            return 1

    def _rng(self, game: DocumentGame) -> np.random.Generator:
        key = np.frombuffer(
            "\x00".join([game.query, *game.sources, game.answer]).encode("utf-8"), np.uint8
        )
        return row_generator(self.random_state, key)

    # ------------------------------------------------------------------ estimators
    def _estimate(
        self,
        method: str,
        game: DocumentGame,
        rng: np.random.Generator,
        budget: int | None,
        holdout: int = 0,
    ) -> tuple[np.ndarray, np.ndarray | None, float, float, dict[str, Any]]:
        """(values (n,), std or None, base value, prediction, info) of one method."""
        from ..games._lowbudget import lowbudget_shapley
        from ..games.banzhaf import exact_banzhaf, msr_banzhaf
        from ..games.kernel import kernel_shapley
        from ..games.shapley import exact_shapley, permutation_shapley

        n = game.n_players
        full = np.ones((1, n), dtype=bool)
        empty = np.zeros((1, n), dtype=bool)
        if budget is not None and method not in ("exact", "leave_one_out"):
            need = _min_budget(method, n)
            if budget < need:
                raise InvalidParameterError(
                    f"budget={budget} is below the {need} contexts that method={method!r} needs "
                    f"for {n} sources; pass budget >= {need}, or method='contextcite' / "
                    "'leave_one_out' for fewer calls."
                )
        info: dict[str, Any] = {}
        if method == "exact":
            if n > MAX_EXACT_SOURCES:
                raise InvalidParameterError(
                    f"method='exact' needs all 2**{n} contexts; it is refused above "
                    f"{MAX_EXACT_SOURCES} sources. Use method='kernel', 'permutation' or "
                    "'contextcite', or granularity='document' for fewer sources."
                )
            phi, v0, vN = exact_shapley(game)
            return phi[:, 0], None, float(v0[0]), float(vN[0]), info
        if method == "leave_one_out":
            C = np.ones((n + 1, n), dtype=bool)
            C[np.arange(1, n + 1), np.arange(n)] = False
            v = game.value(C)[:, 0]
            v0 = float(game.value(empty)[0, 0])
            return v[0] - v[1:], None, v0, float(v[0]), info
        if method in ("permutation", "kernel", "kernel_small"):
            fn = {
                "permutation": permutation_shapley,
                "kernel": kernel_shapley,
                "kernel_small": lowbudget_shapley,
            }[method]
            phi, std, v0, info = fn(game, rng, budget=budget)
            vN = float(game.value(full)[0, 0])
            return phi[:, 0], std[:, 0], float(v0[0]), vN, dict(info)
        if method == "banzhaf":
            if budget is None and n <= MAX_EXACT_SOURCES:
                beta, v0 = exact_banzhaf(game)
                std = None
            else:
                beta, s, v0 = msr_banzhaf(game, rng, budget=budget)
                std = s[:, 0]
            return beta[:, 0], std, float(v0[0]), float(game.value(full)[0, 0]), info
        if method == "lime":
            from ..games.image import lime_image

            phi, intercept, std, linfo = lime_image(
                game, rng, budget=int(budget or 256), n_features=n, kernel_width=0.25
            )
            info = {"fidelity": float(np.asarray(linfo.get("fidelity", np.nan)).reshape(-1)[0])}
            return (
                phi[:, 0],
                None if std is None else np.asarray(std)[:, 0],
                float(np.asarray(intercept).reshape(-1)[0]),
                float(game.value(full)[0, 0]),
                info,
            )
        if method == "contextcite":
            from .contextcite import context_cite

            output = "logit_prob" if game.value_kind == "logprob" else "raw"
            fit = context_cite(
                game,
                rng,
                budget=int(budget or 64),
                alpha=self.lasso_alpha,
                output=output,
                n_output_tokens=self._n_output_tokens(game.answer) if output != "raw" else 1,
                holdout=holdout,
            )
            info = {"lds": fit.lds, "output": output, "bias": fit.bias}
            return fit.weights, None, fit.bias, float(fit.bias + fit.weights.sum()), info
        raise InvalidParameterError(
            f"method={method!r} is not a RAG attribution method; choose one of "
            f"{['auto', *RAG_METHODS]}."
        )

    def _choose(self, method: str, n: int, budget: int | None) -> str:
        if method == "auto":
            if budget is None:
                return "exact" if n <= AUTO_EXACT_SOURCES else "kernel"
            return "exact" if n <= MAX_EXACT_SOURCES and 2**n <= budget else "kernel"
        if method not in RAG_METHODS:
            raise InvalidParameterError(
                f"method={method!r} is not a RAG attribution method; choose one of "
                f"{['auto', *RAG_METHODS]}."
            )
        return method

    # ------------------------------------------------------------------ explain
    def explain(
        self,
        query: str,
        documents: Sequence[str],
        answer: str | None = None,
        *,
        method: str = "auto",
        budget: int | None = None,
    ) -> Explanation:
        """Attribute ``answer`` (or the model's own greedy answer) to the sources.

        Parameters
        ----------
        query : str
        documents : sequence of str, length d
            Distinct, non-empty.
        answer : str, optional
            None: the backend generates it first from the full context (greedy).
        method : str
            ``"auto"`` or one of :data:`RAG_METHODS` (module docstring).
        budget : int, optional
            Contexts evaluated by a sampling method (ContextCite: ablations, default 64).

        Returns
        -------
        Explanation
            One ragged row: ``values[0]`` one value per source (n,), ``feature_names[0]``
            short labels ``"[j] first words…"``, ``data[0]`` the sources' texts, ``std``
            for sampling methods, ``base_values`` the value of the empty context (the
            surrogate's bias for ContextCite / LIME), ``predictions`` the value with every
            source (the surrogate's for ContextCite); ``params``: method, LLM calls, wall
            time; ``meta``: query, answer, documents, each source's document, the prompt,
            and ``meta["estimator"][0]``: the method run (``"method"``, ``"auto"`` resolved),
            the coalitions of sources it evaluated (``"coalitions"``: ``2**n`` for
            ``"exact"``, ``n + 2`` for ``"leave_one_out"``) and its own diagnostics
            (``"converged"``, LIME's ``"fidelity"``, ContextCite's ``"lds"``...).
        """
        if budget is not None:
            budget = check_int("budget", budget, minimum=1)
        t0 = time.perf_counter()
        calls0 = getattr(self.backend, "calls", None)
        game = self.game(query, documents, answer)
        name = self._choose(method, game.n_players, budget)
        phi, std, base, pred, info = self._estimate(
            name, game, self._rng(game), budget, holdout=self.holdout
        )
        elapsed = time.perf_counter() - t0
        calls1 = getattr(self.backend, "calls", None)
        backend_name = getattr(self.backend, "name", getattr(self.backend, "__name__", "callable"))
        output = (
            "log-probability of the answer"
            if game.value_kind == "logprob"
            else f"{self.similarity if isinstance(self.similarity, str) else game.similarity} "
            "similarity of the regenerated answer to the answer"
        )
        if name == "contextcite" and info.get("output") == "logit_prob":
            output = "logit-probability of the answer (ContextCite surrogate)"
        params = {
            "method": method,
            "method_selection": f"{method} -> {name}",
            "value": game.value_kind,
            "granularity": game.granularity,
            "budget": budget,
            "output": output,
            "target": game.answer,
            "calls": int(game.llm_calls),
            "backend_calls": None if calls0 is None else int(calls1 - calls0),
            "time_s": round(elapsed, 4),
            "backend": str(backend_name),
            "random_state": self.random_state,
        }
        if name == "contextcite":
            params["lds"] = info.get("lds")
        # every method reports its name and the coalitions (contexts) it evaluated, plus its own
        # diagnostics (convergence, LIME fidelity, ContextCite's LDS / bias)
        estimator = {"method": name, **{k: v for k, v in info.items() if _simple(v)}}
        estimator.setdefault("coalitions", int(game.n_evaluated))
        meta = {
            "kind": "rag",
            "query": [game.query],
            "answer": [game.answer],
            "answer_generated": [bool(game.generated)],
            "documents": [list(game.documents)],
            "sources": [list(game.sources)],
            "source_document": [game.doc_of.tolist()],
            "prompt": [game.prompt(np.ones(game.n_players, dtype=bool))],
            "estimator": [estimator],
            "row_keys": [
                "query",
                "answer",
                "answer_generated",
                "documents",
                "sources",
                "source_document",
                "prompt",
                "estimator",
            ],
        }
        return Explanation(
            [np.asarray(phi, dtype=float)],
            np.array([base], dtype=float),
            data=[list(game.sources)],
            feature_names=[list(game.player_names)],
            output_names=[game.answer],
            std=None if std is None else [np.asarray(std, dtype=float)],
            predictions=np.array([pred], dtype=float),
            method=name,
            params=params,
            n_evals=game.n_evaluated,
            random_state=self.random_state,
            meta=meta,
        )

    # ------------------------------------------------------------------ cost-quality
    def cost_quality(
        self,
        query: str,
        documents: Sequence[str],
        answer: str | None = None,
        *,
        methods: Sequence[str] = DEFAULT_TABLE_METHODS,
        budgets: Sequence[int] = DEFAULT_BUDGETS,
        top_k: int = 3,
        repeats: int = 1,
        reference: np.ndarray | None = None,
    ) -> Any:
        """Cost and quality of each method at each budget, against exact Shapley values.

        Every (method, budget, repeat) runs on a **fresh** game (no cached values), so its
        LLM calls and wall time are what it costs alone. Repeats use consecutive seeds from
        ``random_state``.

        Parameters
        ----------
        query, documents, answer
            As :meth:`explain` (the answer is generated once when None).
        methods : sequence of str
            From :data:`RAG_METHODS`. ``"leave_one_out"`` and ``"exact"`` have one budget
            of their own and get one row each (leave-one-out: ``n + 2`` contexts, the empty
            one included for the base value).
        budgets : sequence of int
            Contexts per method (ablations for ContextCite). Budgets below a method's
            minimum give a row with NaN quality and ``note``.
        top_k : int
            Overlap of the top ``k`` sources by value (fraction of k).
        repeats : int
            Seeds per (method, budget); quality and cost are averaged.
        reference : ndarray (n,), optional
            Exact Shapley values, if already known (else computed: ``2**n`` calls, the row
            ``method="exact"``).

        Returns
        -------
        pandas.DataFrame
            Columns ``method, budget, llm_calls, wall_time_s, spearman, spearman_sd,
            top_k_overlap, lds, note``; one row per (method, budget), exact first.
        """
        import pandas as pd

        check_int("top_k", top_k, minimum=1)
        check_int("repeats", repeats, minimum=1)
        for m in methods:
            if m not in RAG_METHODS:
                raise InvalidParameterError(
                    f"method {m!r} is not a RAG attribution method; methods= takes names from "
                    f"{list(RAG_METHODS)}."
                )
        base_game = self.game(query, documents, answer)
        answer = base_game.answer
        n = base_game.n_players
        rows: list[dict[str, Any]] = []
        if reference is None:
            t0 = time.perf_counter()
            game = self.game(query, documents, answer)
            phi, *_ = self._estimate("exact", game, self._rng(game), None)
            rows.append(
                {
                    "method": "exact",
                    "budget": 2**n,
                    "llm_calls": game.llm_calls,
                    "wall_time_s": time.perf_counter() - t0,
                    "spearman": 1.0,
                    "spearman_sd": 0.0,
                    "top_k_overlap": 1.0,
                    "lds": np.nan,
                    "note": "reference",
                }
            )
            reference = phi
        reference = np.asarray(reference, dtype=float).reshape(-1)
        for m in methods:
            if m == "exact":
                continue
            own = m == "leave_one_out"
            for b in [n + 2] if own else budgets:
                b = int(b)
                if b < _min_budget(m, n):
                    rows.append(
                        {"method": m, "budget": b, "llm_calls": 0, "wall_time_s": np.nan,
                         "spearman": np.nan, "spearman_sd": np.nan, "top_k_overlap": np.nan,
                         "lds": np.nan, "note": f"below the minimum of {_min_budget(m, n)}"}
                    )  # fmt: skip
                    continue
                sp, ov, calls, secs, lds = [], [], [], [], []
                for r in range(1 if own else repeats):
                    t0 = time.perf_counter()
                    game = self.game(query, documents, answer)
                    rng = np.random.default_rng(
                        [0 if self.random_state is None else int(self.random_state), r, b]
                    )
                    phi, _, _, _, info = self._estimate(m, game, rng, None if own else b)
                    secs.append(time.perf_counter() - t0)
                    calls.append(game.llm_calls)
                    sp.append(_spearman(phi, reference))
                    ov.append(_top_k_overlap(phi, reference, top_k))
                    lds.append(info.get("lds") if info.get("lds") is not None else np.nan)
                rows.append(
                    {
                        "method": m,
                        "budget": b,
                        "llm_calls": float(np.mean(calls)),
                        "wall_time_s": float(np.mean(secs)),
                        "spearman": float(np.nanmean(sp)) if np.isfinite(sp).any() else np.nan,
                        "spearman_sd": float(np.std(sp, ddof=1)) if len(sp) > 1 else 0.0,
                        "top_k_overlap": float(np.mean(ov)),
                        "lds": float(np.nanmean(lds)) if np.isfinite(lds).any() else np.nan,
                        "note": "",
                    }
                )
        return pd.DataFrame(rows)


def _similarity(similarity: Any) -> Callable[[Sequence[str], str], np.ndarray]:
    from .tokenshap import minilm_similarity, tfidf_similarity

    if callable(similarity):
        return similarity
    named = {"tfidf": tfidf_similarity, "minilm": minilm_similarity}
    if similarity not in named:
        raise InvalidParameterError(
            f"similarity={similarity!r} is not one of {sorted(named)} or a callable "
            "similarity(answers, reference) -> array."
        )
    return named[similarity]


def _simple(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool, list)) or v is None


def as_tabular(exp: Explanation) -> Explanation:
    """A one-row RAG explanation as a tabular Explanation (values (1, n), one feature per
    source), so that the tabular plots apply: ``as_tabular(exp).plot.bar()``,
    ``.plot.waterfall(0)``, ``.plot.force(0)``.

    Parameters
    ----------
    exp : Explanation
        From :meth:`RagAttribution.explain` (one ragged row).

    Returns
    -------
    Explanation
        ``feature_names`` the sources' short labels, ``data`` (1, n) their texts (object).
    """
    if not (isinstance(exp, Explanation) and exp.meta.get("kind") == "rag"):
        raise InvalidParameterError(
            "as_tabular needs an explanation from RagAttribution.explain (meta['kind'] == 'rag')."
        )
    vals = np.asarray(exp.values[0], dtype=float)[None, :]
    data = np.empty((1, vals.shape[1]), dtype=object)
    data[0, :] = list(exp.data[0])
    return Explanation(
        vals,
        exp.base_values,
        data=data,
        feature_names=list(exp.feature_names[0]),
        output_names=exp.output_names,
        std=None if exp.std is None else np.asarray(exp.std[0], dtype=float)[None, :],
        predictions=exp.predictions,
        method=exp.method,
        params=dict(exp.params),
        n_evals=exp.n_evals,
        random_state=exp.random_state,
        meta={k: v for k, v in exp.meta.items() if k != "row_keys"},
    )
