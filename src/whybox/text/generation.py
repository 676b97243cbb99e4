"""Attribution of generated text: why did the language model write each token?

:func:`explain_generation` explains a causal language model's continuation of a prompt, one
row per generated token. Row ``t`` attributes the score of generated token ``t`` (its
log-probability, or for a contrastive target the log-probability margin over a foil token)
to every token the model saw before it: the prompt and the tokens generated before ``t``.
The result is a ragged Explanation (row ``t`` has ``len(prompt) + t`` values): a
lower-triangular generated x source matrix, drawn by ``exp.plot.text_heatmap()``.

Methods
-------
``"input_x_gradient"``
    ``(e_j - b_j) . d score / d e_j`` on the token embedding ``e_j`` (the output of the
    embedding module that :class:`~whybox.internals.anatomy.Anatomy` finds), summed over the
    embedding dimension [1]_; with the default zero baseline this is gradient x input.
``"integrated_gradients"``
    Integrated gradients [2]_ on the token embeddings of every source token, from the
    baseline embedding to the actual one (Gauss-Legendre quadrature with ``steps`` nodes,
    as Captum's default). Completeness: each row's values sum to the score minus the
    score at the baseline (``exp.completeness_gap()`` is the quadrature error).
``"ablation"``
    ``score(x) - score(x without source j)``: source token ``j`` dropped from the sequence
    (``masker="drop"``, default) or replaced by a token id (``masker=<int>`` or ``"pad"``,
    Captum's ``LLMAttribution(FeatureAblation)`` with a token baseline). One forward pass per
    source token gives the change of every generated token's score at once (teacher
    forcing); the passes are batched.
``"attnlrp"``, ``"cp_lrp"``
    :class:`whybox.AttnLRP` relevance (Achtibat et al. 2024) of each row's prefix for the
    generated token's **logit** (LRP explains logits; with a contrast, the logit margin,
    which equals the log-probability margin exactly): all rows in one right-padded
    forward + backward pass (two with a contrast). ``base_values`` hold the relevance of the
    position embeddings, so ``completeness_gap()`` is the conservation gap.

Gradients are taken through temporary hooks on the embedding module (removed on exit,
also on errors); the model's code and weights are never copied or changed, and no
parameter ``.grad`` is written.

References
----------
.. [1] Shrikumar et al. (2016), "Not Just a Black Box: Learning Important Features Through
       Propagating Activation Differences", arXiv:1605.01713 (gradient x input).
.. [2] Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML.
.. [3] Yin & Neubig (2022), "Interpreting Language Models with Contrastive Explanations",
       EMNLP (contrastive targets: log p(target) - log p(foil)).
.. [4] Sarti et al. (2023), "Inseq: An Interpretability Toolkit for Sequence Generation
       Models", ACL demo (attribution of each generated token to prompt and earlier output).
.. [5] Miglani et al. (2023), "Using Captum to Explain Generative Language Models",
       NLP-OSS (LLMAttribution / LLMGradientAttribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from ..explanation import Explanation

__all__ = ["GENERATION_METHODS", "explain_generation", "is_generation"]

#: the methods of :func:`explain_generation`
GENERATION_METHODS = ("input_x_gradient", "integrated_gradients", "ablation", "attnlrp", "cp_lrp")
_ALIASES = {
    "inputxgradient": "input_x_gradient",
    "gradient_x_input": "input_x_gradient",
    "ig": "integrated_gradients",
    "occlusion": "ablation",
    "feature_ablation": "ablation",
}


def is_generation(exp: Any) -> bool:
    """Whether ``exp`` comes from :func:`explain_generation` (a generated x source matrix)."""
    return isinstance(exp, Explanation) and exp.meta.get("kind") == "generation"


def _display(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each id as the text it stands for (decoded alone; the raw token if that is not text)."""
    out = []
    for i in ids:
        s = str(tokenizer.decode([int(i)]))
        if "\ufffd" in s or s == "":
            raw = tokenizer.convert_ids_to_tokens([int(i)])[0]
            s = str(raw) if raw is not None else s
        out.append(s)
    return out


def _ids(tokenizer: Any, value: Any, what: str) -> list[int]:
    """Token ids of a continuation given as a string, one id, or a sequence of ids."""
    if isinstance(value, str):
        if value == "":
            raise InvalidInputError(f"{what} is an empty string; give at least one token.")
        if tokenizer is None:
            raise InvalidParameterError(f"{what} is a string: pass tokenizer= to encode it.")
        ids = list(tokenizer(value, add_special_tokens=False)["input_ids"])
    elif isinstance(value, (int, np.integer)):
        ids = [int(value)]
    else:
        try:
            ids = [int(v) for v in np.asarray(value).ravel()]
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"{what} must be a string, a token id or a sequence of token ids, got "
                f"{type(value).__name__}."
            ) from exc
    if not ids:
        raise InvalidInputError(f"{what} has no tokens.")
    return ids


def _context_length(lm: Any, tokenizer: Any) -> int | None:
    cfg = getattr(lm, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 10**9 else None


def _check_lm(lm: Any, torch: Any) -> None:
    if not isinstance(lm, torch.nn.Module):
        raise UnsupportedModelError(
            f"explain_generation needs a torch causal language model, got {type(lm).__name__}."
        )
    can = getattr(lm, "can_generate", None)
    cfg = getattr(lm, "config", None)
    if (callable(can) and not can()) or getattr(cfg, "is_encoder_decoder", False):
        raise UnsupportedModelError(
            f"{type(lm).__name__} is not a decoder-only generative model (can_generate() is "
            "False or it is an encoder-decoder), so it has no generated tokens to explain. "
            "Use a *ForCausalLM model, or wb.explain(model, texts, ...) for a classifier."
        )


def _baseline_id(baseline: Any, tokenizer: Any, what: str) -> int | None:
    """None for the zero embedding, else the token id whose embedding stands in."""
    if baseline in (None, "zero", "zeros"):
        return None
    if isinstance(baseline, (int, np.integer)) and not isinstance(baseline, bool):
        return int(baseline)
    if baseline in ("pad", "eos", "unk", "mask"):
        tid = getattr(tokenizer, f"{baseline}_token_id", None)
        if tid is None and baseline == "pad":
            tid = getattr(tokenizer, "eos_token_id", None)
        if tid is None:
            raise InvalidParameterError(
                f"{what}={baseline!r} needs a tokenizer with a {baseline} token; this one has "
                "none. Pass a token id, or 'zero'."
            )
        return int(tid)
    raise InvalidParameterError(
        f"{what} must be 'zero', 'pad', 'eos', 'unk', 'mask' or a token id, got {baseline!r}."
    )


def _scores(logits: Any, pos: Any, target: Any, foil: Any, torch: Any) -> Any:
    """``log p(target) [- log p(foil)]`` read at positions ``pos`` of each batch row."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    logp = torch.log_softmax(logits[rows, pos].float(), dim=-1)
    s = logp[rows, target]
    if foil is not None:
        s = s - logp[rows, foil]
    return s


def _logits(lm: Any, ids: Any, torch: Any) -> Any:
    from ..internals.hooks import output_logits

    mask = torch.ones_like(ids)
    return output_logits(lm(input_ids=ids, attention_mask=mask, use_cache=False))


def explain_generation(
    lm: Any,
    prompt: str,
    tokenizer: Any = None,
    *,
    max_new_tokens: int = 20,
    method: str = "input_x_gradient",
    contrast: Any = None,
    generated: Any = None,
    baseline: Any = "zero",
    masker: Any = "drop",
    steps: int = 32,
    batch_size: int = 32,
    add_special_tokens: bool = True,
    **gen_kwargs: Any,
) -> Explanation:
    """Attribute each generated token to the prompt and to the tokens generated before it.

    Parameters
    ----------
    lm : torch.nn.Module
        A causal language model (Hugging Face ``*ForCausalLM`` or any module returning
        logits of shape (batch, seq, vocab) from ``input_ids``).
    prompt : str
        The prompt, encoded with ``tokenizer`` (special tokens added as the tokenizer does).
    tokenizer : Hugging Face tokenizer
        The model's own; it encodes the prompt and decodes the generated tokens.
    max_new_tokens : int, default 20
        Tokens generated (greedy decoding unless ``gen_kwargs`` say otherwise; generation
        stops early at the end-of-sequence token).
    method : {"input_x_gradient", "integrated_gradients", "ablation", "attnlrp", "cp_lrp"}
        How each generated token is attributed to the source tokens (default
        ``"input_x_gradient"``).
    contrast : str, int or sequence of int, optional
        Foil tokens, one per explained token (as many tokens as the continuation): row ``t``
        then explains ``log p(token_t) - log p(foil_t)`` given the prompt and the actual
        tokens before ``t`` ("why Paris rather than London"; Yin & Neubig 2022). Without
        ``generated``, the model generates as many tokens as the contrast has (not
        ``max_new_tokens``).
    generated : str or sequence of int, optional
        Explain this continuation instead of generating one (teacher forcing).
    baseline : "zero", "pad", "eos", "unk", "mask" or int, default "zero"
        Gradient methods: the embedding each source token is compared with (the zero vector
        or the embedding of a token id, at every position).
    masker : "drop", "pad", "eos", "unk", "mask" or int, default "drop"
        Ablation: remove the source token, or replace it by a token id.
    steps : int, default 32
        Integrated gradients: Gauss-Legendre nodes.
    batch_size : int, default 32
        Sequences per forward (and backward) pass.
    add_special_tokens : bool, default True
        Passed to the tokenizer for the prompt.
    **gen_kwargs
        Passed to ``lm.generate`` (e.g. ``do_sample=True``); default greedy.

    Returns
    -------
    Explanation
        Ragged, one row per generated token ``t`` (``T`` rows). ``values[t]`` has shape
        ``(P + t,)`` for a prompt of ``P`` tokens; ``feature_names[t]`` (and ``data[t]``) the
        display strings of those source tokens; ``predictions[t]`` the score of token ``t``;
        ``base_values[t]`` the score at the baseline (gradient methods; 0 for ablation).
        ``meta``: ``kind="generation"``, ``prompt_len`` P, ``source_ids`` and
        ``source_tokens`` (the P + T tokens), ``generated_ids``, ``generated_tokens``,
        ``contrast_ids``/``contrast_tokens`` (or None), and per row (``meta["row_keys"]``)
        ``tokens``, ``input_ids``, ``targets`` (the explained token), ``positions`` (its
        index in the sequence).

    Raises
    ------
    InvalidInputError
        Empty prompt or continuation; prompt + continuation longer than the model's context.
    InvalidParameterError
        Unknown method, a contrast of another length, a bad baseline / masker.
    UnsupportedModelError
        A model that does not generate (encoder-only or encoder-decoder).

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> prompt = "The for statement is used to"
    >>> exp = wb.explain_generation(model, prompt, tokenizer=tok, generated=" iterate")
    >>> exp.meta["generated_tokens"], [v.shape for v in exp.values]   # (P + t,) per token
    ([' iter', 'ate'], [(6,), (7,)])
    >>> exp = wb.explain_generation(model, prompt, tokenizer=tok, generated=" the",
    ...                             contrast=" a")         # why " the" rather than " a"
    >>> logp = model(tok(prompt, return_tensors="pt").input_ids).logits[0, -1].log_softmax(-1)
    >>> the, a = tok(" the").input_ids[0], tok(" a").input_ids[0]
    >>> bool(np.isclose(exp.predictions[0], (logp[the] - logp[a]).item(), atol=1e-4))
    True

    References
    ----------
    Yin, K. & Neubig, G. (2022). Interpreting Language Models with Contrastive Explanations.
    EMNLP. Sarti, G. et al. (2023). Inseq: An Interpretability Toolkit for Sequence Generation
    Models. ACL demo. Sundararajan, M., Taly, A. & Yan, Q. (2017). Axiomatic Attribution for
    Deep Networks. ICML.
    """
    from ..internals.hooks import model_device, require_torch

    torch = require_torch("explain_generation")
    _check_lm(lm, torch)
    method = _ALIASES.get(str(method).lower(), str(method).lower())
    if method not in GENERATION_METHODS:
        raise InvalidParameterError(
            f"method={method!r} is not a generation method; choose one of {GENERATION_METHODS}."
        )
    if not isinstance(prompt, str) or prompt == "":
        raise InvalidInputError(
            "prompt must be a non-empty string, got "
            + (repr(prompt) if isinstance(prompt, str) else type(prompt).__name__)
            + "."
        )
    if tokenizer is None:
        raise InvalidParameterError("explain_generation needs tokenizer= to encode the prompt.")
    if int(steps) < 1 or int(batch_size) < 1 or int(max_new_tokens) < 1:
        raise InvalidParameterError("steps, batch_size and max_new_tokens must be >= 1.")
    device = model_device(lm)
    prompt_ids = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    if not prompt_ids:
        raise InvalidInputError(f"the prompt {prompt!r} encodes to no tokens.")
    P = len(prompt_ids)
    limit = _context_length(lm, tokenizer)
    if limit is not None and P >= limit:
        raise InvalidInputError(
            f"the prompt has {P} tokens; the model reads at most {limit}, leaving no room to "
            "generate. Shorten the prompt."
        )

    foil_ids = None if contrast is None else _ids(tokenizer, contrast, "contrast")
    if generated is None:
        n_new = max_new_tokens if foil_ids is None else len(foil_ids)
        gen_ids = _generate(lm, prompt_ids, tokenizer, n_new, limit, device, torch, gen_kwargs)
    else:
        if gen_kwargs:
            raise InvalidParameterError(
                f"generation options {sorted(gen_kwargs)} were given with generated=; they "
                "only apply when the model generates the continuation."
            )
        gen_ids = _ids(tokenizer, generated, "generated")
    T = len(gen_ids)
    if limit is not None and P + T > limit:
        raise InvalidInputError(
            f"prompt ({P} tokens) + continuation ({T} tokens) = {P + T} tokens is longer than "
            f"the model's context of {limit}. Shorten the prompt or the continuation."
        )
    if foil_ids is not None:
        if len(foil_ids) != T:
            raise InvalidParameterError(
                f"contrast has {len(foil_ids)} tokens but the explained continuation has {T}: "
                "give one foil token per explained token (e.g. generated=' Paris', "
                "contrast=' London', both one token)."
            )
    vocab = getattr(getattr(lm, "config", None), "vocab_size", None)
    for what, ids in (("generated", gen_ids), ("contrast", foil_ids or [])):
        bad = [i for i in ids if i < 0 or (vocab is not None and i >= vocab)]
        if bad:
            raise InvalidParameterError(
                f"{what} token ids {bad[:5]} are outside the vocabulary of {vocab} tokens."
            )

    seq = torch.tensor([prompt_ids + gen_ids], device=device)
    pos = torch.arange(P - 1, P + T - 1, device=device)  # position predicting each token
    target = torch.tensor(gen_ids, device=device)
    foil = None if foil_ids is None else torch.tensor(foil_ids, device=device)

    was_training = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            full = _scores(_logits(lm, seq, torch)[0:1].expand(T, -1, -1), pos, target, foil,
                           torch)  # fmt: skip
        if method in ("attnlrp", "cp_lrp"):
            rows, base, full = _attnlrp(lm, seq, P, T, target, foil, method, tokenizer, torch)
        elif method == "ablation":
            mask_id = None if masker == "drop" else _baseline_id(masker, tokenizer, "masker")
            rows = _ablation(lm, seq, P, T, target, foil, full, mask_id, batch_size, torch)
            base = np.zeros(T)
        else:
            base_id = _baseline_id(baseline, tokenizer, "baseline")
            rows, base = _gradients(lm, seq, P, T, pos, target, foil, base_id, method,
                                    int(steps), int(batch_size), torch)  # fmt: skip
    finally:
        lm.train(was_training)

    all_ids = prompt_ids + gen_ids
    shown = _display(tokenizer, all_ids)
    names = [shown[: P + t] for t in range(T)]
    out = "log p(token)" if foil_ids is None else "log p(token) - log p(contrast)"
    if method in ("attnlrp", "cp_lrp") and foil_ids is None:
        out = "logit of token"
    meta = {
        "kind": "generation",
        "prompt": prompt,
        "prompt_len": P,
        "source_ids": all_ids,
        "source_tokens": shown,
        "generated_ids": gen_ids,
        "generated_tokens": shown[P:],
        "contrast_ids": foil_ids,
        "contrast_tokens": None if foil_ids is None else _display(tokenizer, foil_ids),
        "tokens": names,
        "input_ids": [all_ids[: P + t] for t in range(T)],
        "targets": shown[P:],
        "positions": list(range(P, P + T)),
        "row_keys": ["tokens", "input_ids", "targets", "positions"],
    }
    params = {
        "method": method,
        "output": out,
        "target": "generated" if generated is None else "given continuation",
        "max_new_tokens": int(max_new_tokens),
        "contrastive": foil_ids is not None,
    }
    if method in ("attnlrp", "cp_lrp"):
        pass
    elif method == "ablation":
        params["masker"] = masker if isinstance(masker, str) else int(masker)
    else:
        params["baseline"] = baseline if isinstance(baseline, str) else int(baseline)
        if method == "integrated_gradients":
            params["steps"] = int(steps)
    return Explanation(
        [np.asarray(r, dtype=float) for r in rows],
        base_values=np.asarray(base, dtype=float),
        data=[list(n) for n in names],
        feature_names=names,
        output_names=[out],
        predictions=full.detach().double().cpu().numpy(),
        method=method,
        params=params,
        n_evals=None,
        meta=meta,
    )


def _generate(
    lm: Any,
    prompt_ids: list[int],
    tokenizer: Any,
    max_new_tokens: int,
    limit: int | None,
    device: Any,
    torch: Any,
    gen_kwargs: dict[str, Any],
) -> list[int]:
    """The model's own continuation (greedy by default) through ``lm.generate``."""
    if not callable(getattr(lm, "generate", None)):
        raise UnsupportedModelError(
            f"{type(lm).__name__} has no generate(); pass generated= with the continuation."
        )
    P = len(prompt_ids)
    n = int(max_new_tokens) if limit is None else min(int(max_new_tokens), limit - P)
    kwargs: dict[str, Any] = {"do_sample": False, "max_new_tokens": n}
    pad = getattr(tokenizer, "pad_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    if pad is not None or eos is not None:
        kwargs["pad_token_id"] = pad if pad is not None else eos
    kwargs.update(gen_kwargs)
    ids = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    gen = [int(i) for i in out[0, P:].tolist()]
    if not gen:
        raise InvalidInputError("the model generated no tokens; pass generated= instead.")
    return gen


def _ablation(
    lm: Any,
    seq: Any,
    P: int,
    T: int,
    target: Any,
    foil: Any,
    full: Any,
    mask_id: int | None,
    batch_size: int,
    torch: Any,
) -> list[np.ndarray]:
    """``full - score without source j`` for every generated row and earlier source j."""
    L = P + T
    n_src = L - 1  # the last token is a source of no row
    diff = np.zeros((T, n_src))
    keep_pos = torch.arange(L, device=seq.device)
    for start in range(0, n_src, batch_size):
        js = list(range(start, min(n_src, start + batch_size)))
        if mask_id is None:
            batch = torch.stack([seq[0, keep_pos != j] for j in js])
        else:
            batch = seq.expand(len(js), -1).clone()
            dev = seq.device
            batch[torch.arange(len(js), device=dev), torch.tensor(js, device=dev)] = mask_id
        with torch.no_grad():
            logits = _logits(lm, batch, torch)
        for b, j in enumerate(js):
            t0 = max(0, j - P + 1)  # first row that has j as a source (P + t > j)
            ts = torch.arange(t0, T, device=seq.device)
            shift = 1 if mask_id is None else 0
            pos = P + ts - 1 - shift
            lg = logits[b : b + 1].expand(len(ts), -1, -1)
            s = _scores(lg, pos, target[ts], None if foil is None else foil[ts], torch)
            diff[t0:, j] = (full[ts] - s).double().cpu().numpy()
    return [diff[t, : P + t].copy() for t in range(T)]


def _gradients(
    lm: Any,
    seq: Any,
    P: int,
    T: int,
    pos: Any,
    target: Any,
    foil: Any,
    base_id: int | None,
    method: str,
    steps: int,
    batch_size: int,
    torch: Any,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Input x gradient or integrated gradients on the token embeddings, every row batched."""
    from ..internals.anatomy import Anatomy
    from ..internals.hooks import on_points

    point = Anatomy.of(lm).point("embed")
    captured: dict[str, Any] = {}

    def grab(x: Any) -> None:
        captured["e"] = x.detach()

    with torch.no_grad(), on_points(lm, [(point, grab)]):
        _logits(lm, seq, torch)
    emb = captured["e"][0]  # (L, d)
    if base_id is None:
        base_emb = torch.zeros_like(emb)
    else:
        with torch.no_grad(), on_points(lm, [(point, grab)]):
            _logits(lm, torch.full_like(seq, base_id), torch)
        base_emb = captured["e"][0]
    delta = emb - base_emb
    if method == "input_x_gradient":
        alphas, weights = np.ones(1), np.ones(1)
    else:  # Gauss-Legendre on [0, 1], as Captum's default "gausslegendre"
        x, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = 0.5 * (x + 1.0), 0.5 * w
    # one job per (row, node); each batch row is the whole sequence at one alpha
    jobs = [(t, k) for t in range(T) for k in range(len(alphas))]
    grad_sum = torch.zeros((T, *emb.shape), dtype=torch.float64, device=emb.device)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        ts = torch.tensor([t for t, _ in chunk], device=emb.device)
        a = torch.tensor([alphas[k] for _, k in chunk], dtype=emb.dtype, device=emb.device)
        e = (base_emb + a[:, None, None] * delta).detach().requires_grad_(True)

        def put(x: Any, e: Any = e) -> Any:
            return e

        with torch.enable_grad(), on_points(lm, [(point, put)]):
            logits = _logits(lm, seq.expand(len(chunk), -1), torch)
            s = _scores(logits, pos[ts], target[ts], None if foil is None else foil[ts], torch)
            (g,) = torch.autograd.grad(s.sum(), e)
        wts = torch.tensor([weights[k] for _, k in chunk], dtype=torch.float64, device=e.device)
        grad_sum.index_add_(0, ts, g.double() * wts[:, None, None])
    attr = (grad_sum * delta.double()[None]).sum(-1).cpu().numpy()  # (T, L)
    with torch.no_grad():
        if base_id is None:

            def zero(x: Any) -> Any:
                return torch.zeros_like(x)

            with on_points(lm, [(point, zero)]):
                lg = _logits(lm, seq, torch)
        else:
            lg = _logits(lm, torch.full_like(seq, base_id), torch)
        base = _scores(lg.expand(T, -1, -1), pos, target, foil, torch)
    return [attr[t, : P + t].copy() for t in range(T)], base.double().cpu().numpy()


def _attnlrp(
    lm: Any,
    seq: Any,
    P: int,
    T: int,
    target: Any,
    foil: Any,
    method: str,
    tokenizer: Any,
    torch: Any,
) -> tuple[list[np.ndarray], np.ndarray, Any]:
    """AttnLRP of every row's prefix for its token's logit (minus the foil's), batched."""
    from ..propagation.attnlrp import AttnLRP

    lrp = AttnLRP(lm, cp_lrp=method == "cp_lrp")
    lengths = torch.arange(P, P + T, device=seq.device)
    ids = seq[:, : P + T - 1].expand(T, -1).clone()
    mask = (torch.arange(P + T - 1, device=seq.device)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # right padding with id 0 (never read: masked and after the position)
    inputs = {"input_ids": ids, "attention_mask": mask}
    one = lrp.explain(inputs, target=target.cpu().numpy(), position=-1, tokenizer=None)
    rows = [np.asarray(v, dtype=float) for v in one.values]
    pos_rel = np.array([c["position_relevance"] for c in one.meta["conservation"]])
    score = np.asarray(one.predictions, dtype=float)
    if foil is not None:
        two = lrp.explain(inputs, target=foil.cpu().numpy(), position=-1, tokenizer=None)
        rows = [a - np.asarray(b, dtype=float) for a, b in zip(rows, two.values, strict=True)]
        pos_rel = pos_rel - np.array([c["position_relevance"] for c in two.meta["conservation"]])
        score = score - np.asarray(two.predictions, dtype=float)
    return rows, pos_rel, torch.as_tensor(score)
