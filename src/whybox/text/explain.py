"""Perturbation explanations of texts: every game estimator of :mod:`whybox.games` on
:class:`~whybox.games.text.TextGame`, one ragged Explanation row per text.

Methods (``method=``):

- ``"exact"``: exact Shapley values, all ``2**n`` coalitions (at most 16 players).
- ``"kernel"``: KernelSHAP with standard errors (:func:`whybox.games.kernel.kernel_shapley`).
- ``"permutation"``: antithetic permutation sampling with standard errors.
- ``"banzhaf"``: exact Banzhaf values up to 16 players (``budget=`` samples by maximum sample
  reuse above that, or whenever ``budget`` is given).
- ``"lime"``: LIME's surrogate over the players (random half of the players on, cosine kernel of
  width 0.25, as lime's ``LimeTextExplainer`` with its distance x 100 and width 25).
- ``"ablation"`` (alias ``"occlusion"``): leave-one-out, ``v(all) - v(all but j)``; Captum's
  ``FeatureAblation`` through ``LLMAttribution`` with the same masker.
- ``"auto"``: ``"exact"`` up to :data:`AUTO_EXACT_MAX_PLAYERS` players, else ``"kernel"``.

``base_values`` are the value of the empty coalition (the surrogate's intercept for LIME) and
``predictions`` the value of the full text, so Shapley values add up to their difference.

References
----------
Shapley, L. S. (1953). A value for n-person games. Contributions to the Theory of Games II.

Lundberg, S. M. and Lee, S.-I. (2017). A unified approach to interpreting model predictions.
NeurIPS.

Ribeiro, M. T., Singh, S. and Guestrin, C. (2016). "Why should I trust you?": explaining the
predictions of any classifier. KDD.

Zeiler, M. D. and Fergus, R. (2014). Visualizing and understanding convolutional networks.
ECCV. (Occlusion / ablation.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..explanation import Explanation
from ..games.banzhaf import exact_banzhaf, msr_banzhaf
from ..games.kernel import kernel_shapley
from ..games.shapley import MAX_EXACT_PLAYERS, exact_shapley, permutation_shapley
from ..games.text import DEFAULT_BATCH_SIZE, TextGame, model_kind
from ..internals.hooks import model_device
from ..parallel import row_generator
from .tokens import TokenizedText, text_explanation, tokenize

__all__ = [
    "AUTO_EXACT_MAX_PLAYERS",
    "TEXT_METHODS",
    "explain_attnlrp",
    "explain_text",
    "is_text_input",
]

TEXT_METHODS = ("exact", "kernel", "permutation", "banzhaf", "lime", "ablation", "occlusion")
#: ``method="auto"`` enumerates every coalition up to this many players (1024 model inputs).
AUTO_EXACT_MAX_PLAYERS = 10


def is_text_input(X: Any) -> bool:
    """A string, or a non-empty list / tuple of strings."""
    if isinstance(X, str):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(t, str) for t in X)


def _per_text_targets(target: Any, n: int, kind: str) -> list[Any]:
    """One target per text: a causal LM's list of n continuations / ids is per text; anything
    else is shared (a classifier's list is several classes)."""
    if kind == "causal" and isinstance(target, (list, tuple, np.ndarray)):
        items = list(target)
        if len(items) != n:
            raise InvalidParameterError(
                f"target is a list of {len(items)} items for {n} texts; a causal LM takes one "
                "target (a continuation string or token id) for all texts or one per text."
            )
        return items
    return [target] * n


def explain_text(
    model: Any,
    texts: str | Sequence[str],
    *,
    tokenizer: Any,
    target: Any = None,
    method: str = "auto",
    granularity: str = "token",
    masker: Any = None,
    value: str | Callable[[np.ndarray], np.ndarray] | None = None,
    random_state: int | None = 0,
    budget: int | None = None,
    tolerance: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_length: int | None = None,
    truncate: bool = False,
    kv_cache: bool = True,
    max_new_tokens: int = 1,
    n_features: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Explanation:
    """Explain a sequence classifier or causal LM on texts by a perturbation method.

    Parameters
    ----------
    model : transformers model
        A sequence classifier (target: class index / label, or a list of them) or a causal LM
        (target: a token id, a continuation string, one per text, or None for the model's own
        greedy generation of ``max_new_tokens`` tokens after each text).
    texts : str or sequence of str, length n
    tokenizer : Hugging Face tokenizer
    target : see above
    method : str
        One of :data:`TEXT_METHODS` or ``"auto"`` (module docstring).
    granularity : {"token", "word", "sentence"}
        What a player is (:func:`whybox.text.tokens.tokenize`).
    masker : {"mask", "pad", "drop"} or str, optional
        How absent players are represented (:class:`~whybox.games.text.TextGame`).
    value : {"prob", "logit", "logprob"} or callable, optional
        The explained number (:class:`~whybox.games.text.TextGame`).
    random_state : int or None
    budget, tolerance : optional
        Coalitions per text and early-stopping standard error of the sampling methods.
    batch_size : int
        Coalitions per forward pass.
    max_length, truncate
        Context length and whether to cut longer texts (:func:`~whybox.text.tokens.tokenize`).
    kv_cache : bool
        Shared-prefix keys and values for causal LMs with ``masker="drop"``.
    max_new_tokens : int
        Causal LMs with ``target=None``: explain the model's own greedy generation of this many
        tokens (1: the next token).
    n_features : int, optional
        LIME: players kept in the surrogate (default all).
    progress : callable(done, total), optional

    Returns
    -------
    Explanation
        Ragged: ``values[i]`` of shape (n_players_i,) (or (n_players_i, k) for several
        classes), ``feature_names[i]`` the players' text.
    """
    if method == "auto":
        chosen = None
    elif method in TEXT_METHODS:
        chosen = "ablation" if method == "occlusion" else method
    else:
        raise InvalidParameterError(
            f"method={method!r} is not a perturbation method for texts; choose one of "
            f"{['auto', *TEXT_METHODS]}."
        )
    kind = model_kind(model)
    rows = tokenize(
        texts,
        tokenizer,
        granularity=granularity,
        max_length=max_length,
        truncate=truncate,
        model=model,
    )
    targets = _per_text_targets(target, len(rows), kind)
    values, stds, bases, preds, infos = [], [], [], [], []
    out_names: list[list[str]] = []
    games = []
    for i, (row, tgt) in enumerate(zip(rows, targets, strict=True)):
        game = TextGame(
            model,
            row,
            tokenizer=tokenizer,
            target=tgt,
            masker=masker,
            value=value,
            batch_size=batch_size,
            kv_cache=kv_cache,
            max_new_tokens=max_new_tokens,
        )
        name = chosen or ("exact" if game.n_players <= AUTO_EXACT_MAX_PLAYERS else "kernel")
        # a fresh stream per text, seeded by random_state and the text's own ids: a text's
        # values do not depend on the texts explained before it
        rng = row_generator(random_state, np.asarray(row.input_ids))
        phi, std, base, pred, info = _estimate(name, game, rng, budget, tolerance, n_features)
        info.update(method=name, n_evals=game.n_evaluated, n_forward=game.n_forward)
        values.append(phi)
        stds.append(std)
        bases.append(base)
        preds.append(pred)
        infos.append(info)
        out_names.append(list(game.output_names))
        games.append(game)
        if progress is not None:
            progress(i + 1, len(rows))
    return _assemble(
        rows,
        games,
        values,
        stds,
        bases,
        preds,
        infos,
        out_names,
        method,
        kind,
        granularity,
        random_state,
        budget,
        tolerance,
    )


def _estimate(
    name: str,
    game: TextGame,
    rng: np.random.Generator,
    budget: int | None,
    tolerance: float | None,
    n_features: int | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, dict[str, Any]]:
    """(phi (n, k), std or None, base (k,), prediction (k,), info) of one text."""
    n = game.n_players
    full = np.ones((1, n), dtype=bool)
    info: dict[str, Any] = {}
    if name == "exact":
        if n > MAX_EXACT_PLAYERS:
            raise InvalidParameterError(
                f"method='exact' needs all 2**{n} coalitions of a text with {n} players; use "
                "granularity='word' or 'sentence', or method='kernel' / 'permutation'."
            )
        phi, v0, vN = exact_shapley(game)
        return phi, None, v0, vN, info
    if name == "kernel":
        phi, std, v0, info = kernel_shapley(game, rng, budget=budget, tolerance=tolerance)
        vN = game.value(full)[0]
        return phi, std, v0, vN, dict(info)
    if name == "permutation":
        phi, std, v0, info = permutation_shapley(game, rng, budget=budget, tolerance=tolerance)
        vN = game.value(full)[0]
        return phi, std, v0, vN, dict(info)
    if name == "banzhaf":
        if budget is None and n <= MAX_EXACT_PLAYERS:
            beta, v0 = exact_banzhaf(game)
            std = None
        else:
            beta, std, v0 = msr_banzhaf(game, rng, budget=budget)
        return beta, std, v0, game.value(full)[0], info
    if name == "lime":
        from ..games.image import lime_image

        phi, intercept, std, info = lime_image(
            game,
            rng,
            budget=int(budget or 1000),
            n_features=int(n_features or n),
            kernel_width=0.25,
        )
        info = {k: v for k, v in info.items() if k in ("fidelity", "local_prediction")}
        return phi, std, intercept, game.value(full)[0], _jsonable(info)
    # ablation: v(all) - v(all but j)
    C = np.ones((n + 1, n), dtype=bool)
    C[np.arange(1, n + 1), np.arange(n)] = False
    v = game.value(C)
    v0 = game.value(np.zeros((1, n), dtype=bool))[0]
    return v[0][None, :] - v[1:], None, v0, v[0], info


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in info.items()}


def _assemble(
    rows: list[TokenizedText],
    games: list[TextGame],
    values: list[np.ndarray],
    stds: list[np.ndarray | None],
    bases: list[np.ndarray],
    preds: list[np.ndarray],
    infos: list[dict[str, Any]],
    out_names: list[list[str]],
    method: str,
    kind: str,
    granularity: str,
    random_state: int | None,
    budget: int | None,
    tolerance: float | None,
) -> Explanation:
    k = values[0].shape[1]
    if any(v.shape[1] != k for v in values):  # pragma: no cover - targets share a layout
        raise InvalidInputError("texts were explained for different numbers of outputs.")
    single = k == 1
    same = all(o == out_names[0] for o in out_names)
    output_names = out_names[0] if same else ["target"]
    names_used = sorted({i["method"] for i in infos})

    def shape(a: np.ndarray) -> np.ndarray:
        return a[:, 0] if single else a

    vals = [shape(v) for v in values]
    std = None
    if any(s is not None for s in stds):
        std = [
            shape(s) if s is not None else np.zeros_like(shape(v))
            for s, v in zip(stds, values, strict=True)
        ]
    base = np.array([b[0] if single else b for b in bases], dtype=float)
    pred = np.array([p[0] if single else p for p in preds], dtype=float)
    g0 = games[0]
    params = {
        "method": method,
        "method_selection": f"{method} -> {', '.join(names_used)}",
        "model_kind": kind,
        "masker": g0.masker if isinstance(g0.masker, str) else repr(g0.masker),
        "value": g0.value_kind if isinstance(g0.value_kind, str) else "callable",
        "granularity": granularity,
        "budget": budget,
        "tolerance": tolerance,
        "output": f"{_describe(kind, g0.value_kind)} ({type(g0.model).__name__})",
        "target": output_names[0] if single and same else output_names,
        "model_type": type(g0.model).__name__,
    }
    meta = {
        "targets": [list(map(str, o)) for o in out_names],
        "target_ids": [list(g.target_ids) for g in games],
        "estimator": [{k2: v2 for k2, v2 in i.items() if _is_simple(v2)} for i in infos],
        "row_keys": ["targets", "target_ids", "estimator"],
    }
    name = names_used[0] if len(names_used) == 1 else method
    return text_explanation(
        rows,
        vals,
        base_values=base,
        predictions=pred,
        output_names=output_names,
        std=std,
        method=name,
        params=params,
        meta=meta,
        n_evals=max(g.n_evaluated for g in games),
        random_state=random_state,
    )


def _is_simple(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool, list)) or v is None


def _describe(kind: str, value: Any) -> str:
    if callable(value):
        return "a user-supplied function of the model's output"
    if kind == "causal":
        return {
            "logprob": "log-probability of the target continuation (sum over its tokens)",
            "prob": "probability of the target continuation",
            "logit": "logit of the target token",
        }[value]
    return {
        "prob": "class probability",
        "logprob": "log-probability of the class",
        "logit": "logit of the class",
    }[value]


def explain_attnlrp(
    model: Any,
    texts: str | Sequence[str],
    *,
    target: Any = None,
    random_state: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    budget: int | None = None,
    tolerance: float | None = None,
    tokenizer: Any = None,
    granularity: str = "token",
    max_length: int | None = None,
    truncate: bool = False,
    cp_lrp: bool = False,
    epsilon: float = 1e-6,
    rules: Any = None,
    anatomy: Any = None,
    position: int = -1,
    **kwargs: Any,
) -> Explanation:
    """``wb.explain(model, texts, tokenizer=tok, target=..., method="attnlrp")``:
    :class:`whybox.propagation.attnlrp.AttnLRP` on each text's ids, token relevance summed
    over each player (special tokens are not players: their relevance is in
    ``meta["special_relevance"]`` and in the completeness gap, with the position relevance).

    ``target``: a token id or one-token string (LMs) / class index (classifiers), one for all
    texts or a list with one per text; None the model's top prediction. ``random_state``,
    ``budget`` and ``tolerance`` do not apply (one forward and backward pass per text).
    """
    from .._validation import check_keywords
    from ..games.text import model_kind
    from ..propagation.attnlrp import AttnLRP

    check_keywords(
        kwargs,
        ("tokenizer", "granularity", "max_length", "truncate", "cp_lrp", "epsilon", "rules",
         "anatomy", "position"),
        where="wb.explain(method='attnlrp')",
    )  # fmt: skip
    torch = _torch_module()
    for name, given in (("budget", budget), ("tolerance", tolerance)):
        if given is not None:
            raise InvalidParameterError(
                f"{name}= does not apply to method='attnlrp': it costs one forward and one "
                "backward pass per text."
            )
    rows = tokenize(
        texts,
        tokenizer,
        granularity=granularity,
        max_length=max_length,
        truncate=truncate,
        model=model,
    )
    per_text = isinstance(target, (list, tuple)) and len(target) == len(rows) and len(rows) > 1
    targets = list(target) if per_text else [target] * len(rows)  # type: ignore[arg-type]
    explainer = AttnLRP(model, cp_lrp=cp_lrp, epsilon=epsilon, rules=rules, anatomy=anatomy)
    device = model_device(model)
    values, preds, conservation, special, names, ids = [], [], [], [], [], []
    method = "attnlrp"
    for i, (row, tgt) in enumerate(zip(rows, targets, strict=True)):
        e = explainer.explain(
            torch.tensor([row.input_ids], device=device),
            target=tgt,
            position=position,
            tokenizer=tokenizer,
        )
        rel = np.asarray(e.values[0], dtype=float)
        values.append(np.array([rel[p].sum() for p in row.players]))
        special.append(float(rel[row.special].sum()))
        preds.append(float(e.predictions[0]))
        conservation.append(e.meta["conservation"][0])
        names.append(e.meta["target_names"][0])
        ids.append(e.meta["target"][0])
        method = e.method
        if progress is not None:
            progress(i + 1, len(rows))
    if model_kind(model) == "classifier":  # classes are named by the config, not the vocabulary
        labels = getattr(getattr(model, "config", None), "id2label", None) or {}
        names = [str(labels.get(int(t), f"class {int(t)}")) for t in ids]
    same = all(n == names[0] for n in names)
    return text_explanation(
        rows,
        values,
        base_values=0.0,
        predictions=np.array(preds),
        output_names=[names[0] if same else "target"],
        method=method,
        params={
            "method": method,
            "cp_lrp": cp_lrp,
            "epsilon": epsilon,
            "granularity": granularity,
            "output": f"logit of the target ({type(model).__name__})",
            "target": names[0] if same else names,
        },
        meta={
            "conservation": conservation,
            "special_relevance": special,
            "target_ids": [[t] for t in ids],
            "targets": [[n] for n in names],
            "row_keys": ["conservation", "special_relevance", "target_ids", "targets"],
        },
        random_state=random_state,
    )


def _torch_module() -> Any:
    import torch

    return torch
