"""Interventions on SAE latents inside a running model: ablate, clamp, add a direction.

The SAE is spliced in at its site with the *error term kept*: the activation ``x`` becomes

``x' = decode(f') + (x - decode(f))``,   ``f = encode(x)``,

where ``f'`` is ``f`` with the edits applied (``f'_j = 0`` to ablate latent ``j``, ``f'_j =
v`` to clamp it), computed as ``x + (decode(f') - decode(f))`` so that ``x`` itself is not
rounded through the SAE's dtype. Without edits ``x' = x``, so every change in the
model's output is the edit's doing and none the SAE's reconstruction error (Marks et al.
2024). ``error_term=False`` splices the bare reconstruction instead. Adding a latent's
decoder direction (``add={j: c}``: ``x' = x + c * W_dec[j]``) needs no encoding; it is the
feature steering of Templeton et al. (2024) and Neuronpedia's steer.

Every edit is a context manager over scoped hooks (:func:`whybox.internals.hooks.on_points`
at the site named by :class:`~whybox.internals.anatomy.Anatomy`), removed on exit, also
after an exception. :func:`run_with_features` returns logits, :func:`generate_with_features`
generated text or token ids; the edits apply to every position of every forward pass,
generated tokens included.

References
----------
Templeton, A. et al. (2024). Scaling monosemanticity: extracting interpretable features from
Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread.
Marks, S., Rager, C., Michaud, E. J., Belinkov, Y., Bau, D. & Mueller, A. (2024). Sparse
feature circuits: discovering and editing interpretable causal graphs in language models
(SAE error terms). arXiv:2403.19647.
Cunningham, H., Ewart, A., Riggs, L., Huben, R. & Sharkey, L. (2024). Sparse autoencoders
find highly interpretable features in language models. ICLR.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from whybox.errors import InvalidParameterError, UnsupportedModelError

__all__ = [
    "ablate_features",
    "add_feature",
    "clamp_features",
    "edit_features",
    "generate_with_features",
    "run_with_features",
]


def _torch() -> Any:
    from whybox.internals.hooks import require_torch

    return require_torch("SAE feature interventions")


def _latent(j: Any, d_sae: int, what: str) -> int:
    try:
        if isinstance(j, bool):
            raise TypeError
        j = operator.index(j)
    except TypeError:
        raise InvalidParameterError(f"{what}: latent {j!r} is not an int index.") from None
    if not 0 <= j < d_sae:
        raise InvalidParameterError(
            f"{what}: latent {j} is out of range; the SAE has {d_sae} latents (0 to {d_sae - 1})."
        )
    return j


def _values(mapping: Any, d_sae: int, what: str) -> dict[int, float]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise InvalidParameterError(
            f"{what} must be a mapping {{latent: value}}, got {type(mapping).__name__}."
        )
    out = {}
    for j, v in mapping.items():
        j = _latent(j, d_sae, what)
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = float("nan")
        if not math.isfinite(v):
            raise InvalidParameterError(f"{what}: the value for latent {j} must be finite.")
        out[j] = v
    return out


@contextmanager
def edit_features(
    model: Any,
    sae: Any,
    *,
    ablate: Iterable[int] = (),
    clamp: Mapping[int, float] | None = None,
    add: Mapping[int, float] | None = None,
    site: str | None = None,
    error_term: bool = True,
    anatomy: Any = None,
) -> Iterator[None]:
    """Run the model inside the block with the SAE's latents edited at its site.

    Parameters
    ----------
    model : torch.nn.Module
        The model the SAE reads.
    sae : whybox SAE
        ``encode``, ``decode`` and ``W_dec (d_sae, d_in)``; a transcoder is not supported.
    ablate : iterable of int
        Latents set to zero.
    clamp : {latent: value}, optional
        Latents set to ``value`` at every position (Templeton et al. 2024).
    add : {latent: coef}, optional
        Add ``coef * W_dec[latent]`` to the activation (applied after the splice).
    site : str, optional
        Hook name (default ``sae.cfg.hook_name``).
    error_term : bool, default True
        Keep ``x - decode(encode(x))`` so that no edit means no change (exactly: the edit
        is added to ``x`` as ``decode(f') - decode(f)``); False splices the bare
        reconstruction.
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.

    Yields
    ------
    None
        Hooks are removed on exit, also after an exception.

    Raises
    ------
    InvalidParameterError
        A latent index that is not an int in ``0 .. d_sae - 1``, a non-finite clamp or add
        value, ``ablate`` not an iterable of indices, a non-boolean ``error_term``.
    UnsupportedModelError
        A transcoder (it reads one site and writes another), or a site the model lacks.

    Examples
    --------
    >>> import torch
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()     # TopK SAE on the tiny GPT-2's layer 2
    >>> ids = tok("It is the end of the loop", return_tensors="pt").input_ids
    >>> base = model(ids).logits                       # (1, 7, vocab)
    >>> j = int(sae.encode(wb.run_with_cache(model, ids, names=sae.cfg.hook_name)[1][
    ...     sae.cfg.hook_name][0, 2]).argmax())         # the top latent on token 2, " the"
    >>> with wb.sae.edit_features(model, sae):        # no edit: the error term is kept
    ...     same = model(ids).logits
    >>> torch.equal(same, base)
    True
    >>> with wb.sae.edit_features(model, sae, ablate=[j]):
    ...     edited = model(ids).logits
    >>> change = (edited - base).abs().amax(-1)[0]    # per position
    >>> bool(change[:2].max() == 0), bool(change[2] > 0)  # causal: only from " the" on
    (True, True)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    _torch()
    from whybox.internals import hooks
    from whybox.internals.anatomy import Anatomy
    from whybox.sae.features import flat_site, sae_site

    if getattr(sae, "is_transcoder", False):
        raise UnsupportedModelError(
            "edit_features splices an autoencoder (reads and writes one site); this SAE is a "
            "transcoder. Edit its input site's model directly, or use an autoencoder."
        )
    d_sae = int(sae.W_dec.shape[0])
    if isinstance(ablate, int | str) or not isinstance(ablate, Iterable):
        raise InvalidParameterError(
            f"ablate must be an iterable of latent indices such as [3, 17], got {ablate!r}."
        )
    zeroed = sorted({_latent(j, d_sae, "ablate") for j in ablate})
    clamped = _values(clamp, d_sae, "clamp")
    added = _values(add, d_sae, "add")
    if not isinstance(error_term, bool):
        raise InvalidParameterError(f"error_term must be True or False, got {error_term!r}.")
    anat = Anatomy.for_model(model, anatomy)
    point = anat.point(sae_site(sae, site))
    d_in = int(sae.W_enc.shape[0])
    splice = bool(zeroed or clamped) or not error_term or not added
    dtype = sae.W_dec.dtype

    def fn(view: Any) -> Any:
        x = flat_site(view, d_in, point.name)
        xs = x.to(sae.W_dec.device, dtype)
        delta = None
        if splice:
            f = sae.encode(xs)
            f_edit = f.clone()
            if zeroed:
                f_edit[..., zeroed] = 0
            for j, v in clamped.items():
                f_edit[..., j] = v
            if error_term:  # decode(f') + (x - decode(f)), without rounding x twice
                delta = sae.decode(f_edit) - sae.decode(f)
            else:
                x = sae.decode(f_edit).to(x.device, x.dtype)
        for j, c in added.items():
            step = c * sae.W_dec[j]
            delta = step if delta is None else delta + step
        if delta is not None:
            x = x + delta.to(x.device, x.dtype)
        return x.reshape(view.shape)

    with hooks.on_points(model, [(point, fn)]):
        yield


def ablate_features(model: Any, sae: Any, latents: Iterable[int], **kwargs: Any) -> Any:
    """:func:`edit_features` with ``ablate=latents`` (a context manager).

    Parameters
    ----------
    model : torch.nn.Module
        The model the SAE reads.
    sae : whybox SAE
        An autoencoder (not a transcoder).
    latents : iterable of int
        Latents set to zero at every position.
    **kwargs
        ``site``, ``error_term``, ``anatomy``, as in :func:`edit_features`.

    Returns
    -------
    context manager
        The model runs with the latents ablated inside its ``with`` block.

    Raises
    ------
    InvalidParameterError, UnsupportedModelError
        As :func:`edit_features`, on entering the block.

    Examples
    --------
    >>> import torch
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()     # TopK SAE on the tiny GPT-2's layer 2
    >>> ids = tok("It is the end of the loop", return_tensors="pt").input_ids
    >>> base = model(ids).logits                       # (1, 7, vocab)
    >>> j = int(sae.encode(wb.run_with_cache(model, ids, names=sae.cfg.hook_name)[1][
    ...     sae.cfg.hook_name][0, 2]).argmax())         # the top latent on token 2, " the"
    >>> with wb.sae.ablate_features(model, sae, [j]):
    ...     ablated = model(ids).logits
    >>> with wb.sae.clamp_features(model, sae, {j: 0.0}):
    ...     clamped = model(ids).logits
    >>> torch.equal(ablated, clamped), torch.equal(ablated, base)   # clamping to 0 ablates
    (True, False)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    return edit_features(model, sae, ablate=latents, **kwargs)


def clamp_features(model: Any, sae: Any, values: Mapping[int, float], **kwargs: Any) -> Any:
    """:func:`edit_features` with ``clamp=values`` (a context manager).

    Parameters
    ----------
    model : torch.nn.Module
        The model the SAE reads.
    sae : whybox SAE
        An autoencoder (not a transcoder).
    values : {latent: value}
        Each latent set to its value at every position (Templeton et al. 2024).
    **kwargs
        ``ablate``, ``add``, ``site``, ``error_term``, ``anatomy``, as in
        :func:`edit_features`.

    Returns
    -------
    context manager
        The model runs with the latents clamped inside its ``with`` block.

    Raises
    ------
    InvalidParameterError, UnsupportedModelError
        As :func:`edit_features`, on entering the block.

    Examples
    --------
    >>> import torch
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()     # TopK SAE on the tiny GPT-2's layer 2
    >>> ids = tok("It is the end of the loop", return_tensors="pt").input_ids
    >>> base = model(ids).logits                       # (1, 7, vocab)
    >>> j = int(sae.encode(wb.run_with_cache(model, ids, names=sae.cfg.hook_name)[1][
    ...     sae.cfg.hook_name][0, 2]).argmax())         # the top latent on token 2, " the"
    >>> with wb.sae.clamp_features(model, sae, {j: 20.0}):   # " the" everywhere
    ...     clamped = model(ids).logits
    >>> tuple(clamped.shape), bool((clamped - base).abs().amax(-1)[0].min() > 0)
    ((1, 7, 2048), True)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    return edit_features(model, sae, clamp=values, **kwargs)


def add_feature(model: Any, sae: Any, latent: int, coef: float, **kwargs: Any) -> Any:
    """:func:`edit_features` adding ``coef * W_dec[latent]`` (a context manager).

    Parameters
    ----------
    model : torch.nn.Module
        The model the SAE reads.
    sae : whybox SAE
        An autoencoder (not a transcoder).
    latent : int
        The latent whose decoder direction ``W_dec[latent]`` (d_in,) is added.
    coef : float
        Its coefficient (negative subtracts it).
    **kwargs
        ``ablate``, ``clamp``, ``site``, ``error_term``, ``anatomy``, as in
        :func:`edit_features`.

    Returns
    -------
    context manager
        The model runs with the direction added at every position inside its ``with`` block.

    Raises
    ------
    InvalidParameterError, UnsupportedModelError
        As :func:`edit_features`, on entering the block.

    Examples
    --------
    >>> import torch
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()     # TopK SAE on the tiny GPT-2's layer 2
    >>> ids = tok("It is the end of the loop", return_tensors="pt").input_ids
    >>> base = model(ids).logits                       # (1, 7, vocab)
    >>> j = int(sae.encode(wb.run_with_cache(model, ids, names=sae.cfg.hook_name)[1][
    ...     sae.cfg.hook_name][0, 2]).argmax())         # the top latent on token 2, " the"
    >>> with wb.sae.add_feature(model, sae, j, 0.0):    # a zero step changes nothing
    ...     same = model(ids).logits
    >>> with wb.sae.add_feature(model, sae, j, 10.0):
    ...     steered = model(ids).logits
    >>> torch.equal(same, base), torch.equal(steered, base)
    (True, False)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    return edit_features(model, sae, add={latent: coef}, **kwargs)


def run_with_features(model: Any, sae: Any, inputs: Any, **edits: Any) -> Any:
    """Logits of ``model`` on ``inputs`` (token ids or a mapping) under
    :func:`edit_features` ``(**edits)``.

    Parameters
    ----------
    model : torch.nn.Module
        The model the SAE reads.
    sae : whybox SAE
        An autoencoder (not a transcoder).
    inputs : LongTensor (batch, pos) or mapping
        Token ids, or the model's keyword arguments (a tokenizer's ``BatchEncoding``).
    **edits
        ``ablate``, ``clamp``, ``add``, ``site``, ``error_term``, ``anatomy``, as in
        :func:`edit_features`.

    Returns
    -------
    torch.Tensor (batch, pos, vocab)
        The model's logits (its ``.logits``, else its output) with the edits applied.

    Raises
    ------
    InvalidParameterError, UnsupportedModelError
        As :func:`edit_features`.

    Examples
    --------
    >>> import torch
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()     # TopK SAE on the tiny GPT-2's layer 2
    >>> ids = tok("It is the end of the loop", return_tensors="pt").input_ids
    >>> base = model(ids).logits                       # (1, 7, vocab)
    >>> j = int(sae.encode(wb.run_with_cache(model, ids, names=sae.cfg.hook_name)[1][
    ...     sae.cfg.hook_name][0, 2]).argmax())         # the top latent on token 2, " the"
    >>> logits = wb.sae.run_with_features(model, sae, ids, ablate=[j])
    >>> with wb.sae.ablate_features(model, sae, [j]):
    ...     same = model(ids).logits
    >>> tuple(logits.shape), torch.equal(logits, same)
    ((1, 7, 2048), True)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    from whybox.internals import hooks

    with edit_features(model, sae, **edits):
        return hooks.forward(model, inputs)


_EDIT_KEYS = ("ablate", "clamp", "add", "site", "error_term", "anatomy")


def generate_with_features(
    model: Any,
    sae: Any,
    prompt: Any,
    *,
    tokenizer: Any = None,
    max_new_tokens: int = 20,
    **kwargs: Any,
) -> Any:
    """Generate (greedy unless ``do_sample=True`` is passed) with the latents edited.

    Parameters
    ----------
    model : a ``transformers`` model with ``generate``
        A causal LM.
    sae : whybox SAE
        An autoencoder (not a transcoder).
    prompt : str or LongTensor (pos,) / (1, pos)
        The prompt, as text (with ``tokenizer``) or token ids.
    tokenizer : tokenizer, optional
        Needed for a text prompt; the result is then decoded text.
    max_new_tokens : int, default 20
        Tokens generated.
    **kwargs
        ``ablate``, ``clamp``, ``add``, ``site``, ``error_term``, ``anatomy`` go to
        :func:`edit_features`; the rest to ``model.generate``.

    Returns
    -------
    str, or LongTensor (1, pos + new) without a tokenizer
        The prompt and its continuation.

    Raises
    ------
    UnsupportedModelError
        A model without ``generate``; also as :func:`edit_features`.
    InvalidParameterError
        A text prompt without ``tokenizer``; also as :func:`edit_features`.

    Examples
    --------
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()
    >>> prompt = "The for statement is"
    >>> plain = wb.sae.generate_with_features(model, sae, prompt, tokenizer=tok,
    ...                                       max_new_tokens=6)
    >>> steered = wb.sae.generate_with_features(model, sae, prompt, tokenizer=tok,
    ...                                         max_new_tokens=6, add={7: 40.0})
    >>> plain.startswith(prompt), steered != plain
    (True, True)

    References
    ----------
    Templeton, A. et al. (2024). Scaling Monosemanticity: Extracting Interpretable Features from
    Claude 3 Sonnet (feature steering by clamping). Transformer Circuits Thread. Marks, S. et al.
    (2024). Sparse Feature Circuits (SAE error terms). arXiv:2403.19647.
    """
    torch = _torch()
    from whybox.internals.hooks import as_model_inputs, model_device

    if not hasattr(model, "generate"):
        raise UnsupportedModelError(
            f"{type(model).__name__} has no generate(): use a causal language model "
            "(AutoModelForCausalLM), or run_with_features for one forward pass."
        )
    edits = {k: kwargs.pop(k) for k in _EDIT_KEYS if k in kwargs}
    if isinstance(prompt, str):
        if tokenizer is None:
            raise InvalidParameterError(
                "the prompt is text, so a tokenizer is needed: pass tokenizer= the model's "
                "tokenizer (or token ids as the prompt)."
            )
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    else:
        ids = torch.as_tensor(prompt).long()
        ids = ids.unsqueeze(0) if ids.ndim == 1 else ids
    ids = as_model_inputs(model, ids.to(model_device(model)))["input_ids"]
    gen = {"do_sample": False, "max_new_tokens": int(max_new_tokens)}
    gen.update(kwargs)
    if "pad_token_id" not in gen:
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        gen["pad_token_id"] = pad if pad is not None else 0
    gen.setdefault("attention_mask", torch.ones_like(ids))
    with edit_features(model, sae, **edits):
        out = model.generate(ids, **gen)
    if tokenizer is None:
        return out
    return tokenizer.decode(out[0], skip_special_tokens=True)
