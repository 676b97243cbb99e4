"""Activation cache: run a transformer once and keep its activations at named hook points.

``run_with_cache(model, inputs, names=...)`` runs the user's own model (no conversion) with
read-only hooks on the hook points the names select (standard names such as
``"blocks.3.resid_post"``, globs, a predicate or raw module paths; see
:mod:`whybox.internals.anatomy`) and returns the logits and an :class:`ActivationCache`. The
hooks copy each activation as it leaves its module and change nothing: the logits are the
model's own, bit for bit.

Examples
--------
Runnable examples are in :func:`run_with_cache` and :class:`ActivationCache`; in short::

    logits, cache = run_with_cache(model, ids, names="blocks.*.resid_post")
    cache["blocks.3.resid_post"].shape        # (batch, pos, d_model)
    cache.stack("resid_post").shape           # (layers, batch, pos, d_model)

References
----------
.. [1] Nanda & Bloom (2022), TransformerLens: ``run_with_cache`` and ``ActivationCache``
   (the interface followed here).
.. [2] Fiotto-Kaufman et al. (2024), "NNsight and NDIF: Democratizing Access to Foundation
   Model Internals" (reading module outputs of an unmodified torch model).
.. [3] nostalgebraist (2020), "interpreting GPT: the logit lens" (``accumulated_resid``).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import shutil
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from whybox._validation import check_int
from whybox.errors import (
    InvalidParameterError,
    ModelCallError,
    WhyboxError,
)
from whybox.internals import _cache_io as io
from whybox.internals import hooks
from whybox.internals.hooks import require_torch

__all__ = ["ActivationCache", "run_with_cache"]

_OWN_KEYWORDS = ("names", "anatomy", "device", "dtype", "max_bytes", "offload_dir")
_OWN_KEYWORDS += ("with_grad", "metric", "batch_size")


class _MissingActivation(InvalidParameterError, KeyError):
    """A name that is not in the cache (a KeyError too, so ``Mapping.get`` works)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- the cache ----
class ActivationCache(Mapping):
    """Activations of one run, keyed by hook name, in the order the model produced them.

    Returned by :func:`run_with_cache`; also ``ActivationCache.load(path)`` from a saved file
    or an offload folder. A read-only mapping ``name -> tensor``.

    Shapes (``batch`` rows, ``pos`` positions):

    - residual stream, ``attn.out``, ``mlp.out``, ``embed``, ``ln1``/``ln2``/``ln_final``:
      ``(batch, pos, d_model)``
    - ``attn.q|k|v`` and ``attn.head_out`` (per-head views):
      ``(batch, pos, n_heads, d_head)`` (``n_kv_heads`` for k and v of grouped-query models)
    - ``attn.pattern``: ``(batch, n_heads, q_pos, k_pos)``; ``mlp.post``: ``(batch, pos, d_mlp)``
    - a raw module path: the module's output (its first element for a tuple output)

    Parameters
    ----------
    activations : mapping of str to torch.Tensor
        The cached tensors by hook name, in forward order.
    grads : mapping of str to torch.Tensor, optional
        Their gradients (``with_grad=True`` runs), exposed as ``cache.grad``.
    layers : mapping of str to int or None, optional
        The block of each name (default: read from names such as ``"blocks.3.mlp.out"``).
    n_layers : int, optional
        The model's number of blocks (for ``stack`` and ``accumulated_resid``).
    anatomy : Anatomy, optional
        The model's anatomy (None for a loaded cache); ``accumulated_resid(apply_ln=True)``
        uses its final norm.
    offload_dir : path-like, optional
        The folder of memory-mapped ``.npy`` files holding the activations that did not fit
        ``max_bytes`` (None if all are in memory).
    _owned_dir : bool, default False
        Internal: the folder was made for this cache and is deleted with it.

    Raises
    ------
    InvalidParameterError
        A name that is not a string or a value that is not a tensor; a missing name on
        lookup (the message lists the nearest); ``cache.grad`` of a run without
        ``with_grad``.

    Notes
    -----
    ``cache.names`` lists the cached names in forward order; ``cache.grad`` is the
    :class:`ActivationCache` of the gradients of the metric with respect to each cached
    activation (same names and shapes); ``cache.stack(site)`` stacks one site over the
    layers, ``(layers, batch, pos, ...)``; ``cache.accumulated_resid()`` is
    TransformerLens's residual stack; ``cache.save(path)`` writes safetensors.

    Keys are cached names, their TransformerLens spellings (``"blocks.0.attn.hook_pattern"``)
    or ``(site, layer)`` pairs (negative layers count from the end), where ``site`` is a
    whybox site (``cache["attn.pattern", 0]``) or one of TransformerLens' short names that
    has one: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out``, ``q``,
    ``k``, ``v``, ``pattern``, ``z`` (``attn.head_out``), ``post`` (``mlp.post``) and the
    aliases ``query``, ``key``, ``value``, ``attn``, ``mlp_post``, read as TransformerLens'
    ``get_act_name`` reads them; ``("normalized", i, "ln1")`` is ``blocks.{i}.ln1``.

    Examples
    --------
    >>> import torch
    >>> model, tok = wb.zoo.tiny_lm()
    >>> ids = tok("The for statement is used to", return_tensors="pt").input_ids
    >>> _, cache = wb.run_with_cache(model, ids, names="blocks.*.resid_post")
    >>> cache.names[0], torch.equal(cache["resid_post", 0], cache["blocks.0.resid_post"])
    ('blocks.0.resid_post', True)
    >>> tuple(cache.stack("resid_post").shape)     # (layers, batch, pos, d_model)
    (4, 1, 6, 128)

    References
    ----------
    Nanda, N. & Bloom, J. (2022). TransformerLens (``ActivationCache``, the key forms followed
    here).
    """

    def __init__(
        self,
        activations: Mapping[str, Any],
        *,
        grads: Mapping[str, Any] | None = None,
        layers: Mapping[str, int | None] | None = None,
        n_layers: int | None = None,
        anatomy: Any = None,
        offload_dir: str | os.PathLike[str] | None = None,
        _owned_dir: bool = False,
    ) -> None:
        torch = require_torch("ActivationCache")
        for name, value in activations.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise InvalidParameterError(
                    f"an ActivationCache maps str names to tensors, got {name!r}: "
                    f"{type(value).__name__}."
                )
        self._acts: dict[str, Any] = dict(activations)
        self._layers: dict[str, int | None] = {n: _layer_of(n) for n in self._acts}
        if layers:
            self._layers.update({n: layers[n] for n in self._acts if n in layers})
        self.n_layers = n_layers
        self.anatomy = anatomy
        self.offload_dir = Path(offload_dir) if offload_dir is not None else None
        self._grad: ActivationCache | None = None
        if grads is not None:
            self._grad = ActivationCache(
                grads, layers=self._layers, n_layers=n_layers, anatomy=anatomy
            )
            self._grad._is_grad = True
        self._is_grad = False
        if _owned_dir and self.offload_dir is not None:
            # a folder whybox made for this cache: removed with the cache (Linux keeps the
            # mapped pages of a tensor still in use after its file is unlinked)
            weakref.finalize(self, shutil.rmtree, str(self.offload_dir), True)

    # -- mapping ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The cached names, in forward order."""
        return list(self._acts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def __contains__(self, key: object) -> bool:
        try:
            return self._key(key, strict=False) in self._acts
        except WhyboxError:
            return False

    def __getitem__(self, key: Any) -> Any:
        return self._acts[self._key(key)]

    def _key(self, key: Any, strict: bool = True) -> str:
        """The cached name ``key`` stands for: a name, a TransformerLens alias, or
        ``(site, layer)`` such as ``("resid_post", 3)``, where ``site`` may also be one of
        TransformerLens' short names (``("pattern", 0)``, ``("z", 2)``; ``("normalized", 1,
        "ln2")`` with a layer type), resolved as its ``get_act_name`` resolves them."""
        if isinstance(key, tuple) and len(key) in (2, 3) and isinstance(key[0], str):
            site, layer = key[0], key[1]
            if isinstance(layer, bool) or not isinstance(layer, int):
                raise _MissingActivation(
                    f"a (site, layer) key needs an int layer, got {key!r}; e.g. "
                    "cache['resid_post', 3]."
                )
            if layer < 0 and self.n_layers is not None:
                layer += self.n_layers
            layer_type = key[2] if len(key) == 3 else None
            short = _tl_short_site(site, layer_type)
            literal = f"blocks.{layer}.{site}"
            if layer_type is None and (short is None or self._key(literal, False) in self._acts):
                key = literal  # a cached name wins over the TransformerLens reading
            elif short is not None:
                key = f"blocks.{layer}.{short}"
            else:
                raise _MissingActivation(
                    f"{key!r}: no whybox site is TransformerLens' {site!r} with layer type "
                    f"{layer_type!r}. Three-part keys name the norms, as ('normalized', "
                    f"{layer}, 'ln1') or ('normalized', {layer}, 'ln2'); two-part keys take a "
                    f"site (cache['attn.pattern', {layer}]) or a TransformerLens short name: "
                    + ", ".join(repr(n) for n in _TL_SHORT)
                    + "."
                )
        if not isinstance(key, str):
            raise _MissingActivation(
                f"cache keys are hook names such as 'blocks.0.resid_post', got "
                f"{type(key).__name__} {key!r}."
            )
        if key in self._acts:
            return key
        canon = _canonical(key, self.anatomy)
        if canon in self._acts:
            return canon
        if not strict:
            return key
        what = "gradient of" if self._is_grad else "activation"
        close = difflib.get_close_matches(key, self.names, n=5, cutoff=0.5)
        raise _MissingActivation(
            f"the cache holds no {what} {key!r}. "
            + (f"Nearest cached names: {', '.join(map(repr, close))}. " if close else "")
            + f"It holds {len(self)} names"
            + (f" ({_summarise(self.names)})" if self.names else "")
            + ". Ask run_with_cache for it with names=[...] (globs like "
            "'blocks.*.resid_post' work)."
        )

    @property
    def grad(self) -> ActivationCache:
        """Gradients of the run's metric with respect to each cached activation."""
        if self._grad is None:
            raise InvalidParameterError(
                "this cache holds no gradients: run run_with_cache(..., with_grad=True, "
                "metric=fn) where fn(logits) returns a scalar tensor."
            )
        return self._grad

    @property
    def has_grad(self) -> bool:
        """Whether the cache holds gradients (a ``with_grad=True`` run)."""
        return self._grad is not None

    @property
    def nbytes(self) -> int:
        """Bytes of every cached tensor (activations and gradients, memory and disk)."""
        total = sum(t.numel() * t.element_size() for t in self._acts.values())
        return total + (self._grad.nbytes if self._grad is not None else 0)

    def __repr__(self) -> str:
        kind = "gradients" if self._is_grad else "ActivationCache"
        return (
            f"{kind}({len(self)} names: {_summarise(self.names)}; "
            f"{io.fmt_bytes(self.nbytes)}"
            + (", with gradients" if self.has_grad else "")
            + (f", offloaded to {str(self.offload_dir)!r}" if self.offload_dir else "")
            + ")"
        )

    # -- shaping ------------------------------------------------------------------------------
    def _layer_names(self, site: str, layers: Sequence[int] | None) -> list[str]:
        site = re.sub(r"^blocks\.(\*|\{i\}|\d+)\.", "", site)
        if site in _TL_SHORT and not any(_site_of(n) == site for n in self._acts):
            site = _TL_SHORT[site]  # a TransformerLens short name ("pattern", "z")
        if layers is None:
            found = sorted(
                (self._layers[n], n)
                for n in self._acts
                if self._layers.get(n) is not None and _site_of(n) == site
            )
            n_layers = self.n_layers
            wanted = list(range(n_layers)) if n_layers else [layer for layer, _ in found]
            names = {layer: n for layer, n in found}
            missing = [layer for layer in wanted if layer not in names]
            if not found or missing:
                shown = missing if found else wanted
                raise _MissingActivation(
                    f"stacking {site!r} needs it at every layer, but the cache lacks it at "
                    f"layers {_short_list(shown)}. Ask run_with_cache for "
                    f"names='blocks.*.{site}' (cached: {_summarise(self.names)})."
                )
            return [names[layer] for layer in wanted]
        return [self._key(f"blocks.{int(layer)}.{site}") for layer in layers]

    def stack(self, site: str, layers: Sequence[int] | None = None) -> Any:
        """One site at every layer, stacked: ``(layers, *activation_shape)``.

        Parameters
        ----------
        site : str
            The name after ``blocks.{i}.`` (``"resid_post"``, ``"attn.out"``,
            ``"attn.head_out"``); ``"blocks.*.resid_post"`` and TransformerLens' short names
            (``"pattern"``, ``"z"``, ``"mlp_out"``) also work.
        layers : sequence of int, optional
            Which layers, in order (default: every layer of the model).

        Returns
        -------
        torch.Tensor
            ``(n_layers, batch, pos, ...)``, a new tensor.
        """
        torch = require_torch()
        return torch.stack([self._acts[n] for n in self._layer_names(site, layers)])

    def accumulated_resid(
        self,
        layer: int | None = None,
        *,
        incl_mid: bool = False,
        mlp_input: bool = False,
        apply_ln: bool = False,
        pos_slice: Any = None,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream before each layer (and after the last): the logit lens's input.

        As TransformerLens's ``ActivationCache.accumulated_resid``: ``resid_pre`` of layers
        ``0 .. layer - 1`` (with ``resid_mid`` between when ``incl_mid``), then, for
        ``layer=None`` (or -1, or ``n_layers``), the last block's ``resid_post``, which is
        *before* the final norm (a Hugging Face model's last hidden state is after it).

        Parameters
        ----------
        layer : int, optional
            Stop at the input of this layer (``resid_pre`` of ``layer`` included, as
            TransformerLens does); None for every layer and the final residual stream.
        incl_mid : bool, default False
            Also ``resid_mid`` (between attention and MLP) of each layer before ``layer``.
        mlp_input : bool, default False
            Also ``resid_mid`` of ``layer`` itself (the input of its MLP).
        apply_ln : bool, default False
            Pass every entry through the model's own final norm, with statistics recomputed
            for each entry (TransformerLens's ``recompute_ln``, the logit lens). Needs the
            anatomy (a cache from :func:`run_with_cache`, or set ``cache.anatomy``).
            TransformerLens instead scales by the cached scale of layer ``layer``'s norm
            when ``layer < n_layers``; here the final norm is always used.
        pos_slice : int, slice or sequence of int, optional
            Positions to keep (an int drops the position dimension).
        return_labels : bool, default False
            Also return labels ``"0_pre"``, ``"0_mid"``, ..., ``"final_post"``.

        Returns
        -------
        torch.Tensor
            ``(components, batch, pos, d_model)``; with ``return_labels``, also the labels.
        """
        torch = require_torch()
        n_layers = self.n_layers or (
            1 + max((v for v in self._layers.values() if v is not None), default=-1)
        )
        if layer is None or layer == -1:
            layer = n_layers
        layer = check_int("layer", layer, minimum=0, maximum=n_layers)
        parts: list[tuple[str, str]] = []
        for i in range(layer + 1):
            if i == n_layers:
                parts.append((f"blocks.{n_layers - 1}.resid_post", "final_post"))
                continue
            parts.append((f"blocks.{i}.resid_pre", f"{i}_pre"))
            if (incl_mid and i < layer) or (mlp_input and i == layer):
                parts.append((f"blocks.{i}.resid_mid", f"{i}_mid"))
        missing = [n for n, _ in parts if n not in self]
        if missing:
            raise _MissingActivation(
                f"accumulated_resid needs {_short_list(missing)}, which the cache lacks. Ask "
                "run_with_cache for names=['blocks.*.resid_pre', 'blocks.*.resid_post'"
                + (", 'blocks.*.resid_mid'" if incl_mid or mlp_input else "")
                + "]."
            )
        stack = torch.stack([self[n] for n, _ in parts])
        if pos_slice is not None:
            stack = _slice_pos(stack, pos_slice, torch)
        if apply_ln:
            stack = self._final_norm(stack, torch)
        labels = [label for _, label in parts]
        return (stack, labels) if return_labels else stack

    def _final_norm(self, stack: Any, torch: Any) -> Any:
        if self.anatomy is None:
            raise InvalidParameterError(
                "apply_ln=True needs the model's final norm, but this cache has no anatomy "
                "(a loaded cache). Set cache.anatomy = Anatomy.of(model) first."
            )
        norm = self.anatomy.final_norm
        if norm is None:
            raise InvalidParameterError(
                f"apply_ln=True: the model ({type(self.anatomy.model).__name__}) has no final "
                "norm to apply; use apply_ln=False."
            )
        param = next(iter(norm.parameters()), None)
        x = stack if param is None else stack.to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            return norm(x)

    # -- moving, saving -----------------------------------------------------------------------
    def to(self, device: Any = None, dtype: Any = None) -> ActivationCache:
        """A new cache with every tensor (and gradient) on ``device`` and/or cast to ``dtype``.

        Tensors already there are shared, not copied (memory-mapped ones stay on disk).
        """
        torch = require_torch()
        dev = io.as_device(device, torch)
        dt = io.as_dtype(dtype, torch)

        def move(t: Any) -> Any:
            return t.to(device=dev if dev is not None else t.device, dtype=dt or t.dtype)

        acts = {n: move(t) for n, t in self._acts.items()}
        grads = {n: move(t) for n, t in self._grad._acts.items()} if self._grad else None
        out = ActivationCache(
            acts, grads=grads, layers=self._layers, n_layers=self.n_layers, anatomy=self.anatomy
        )
        if self.offload_dir is not None:
            out.offload_dir = self.offload_dir
            out._keepalive = self  # memory-mapped tensors it may share keep their folder
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the cache (and its gradients) to one safetensors file, atomically.

        The file is written under a temporary name in the same folder and renamed over
        ``path``, so a reader never sees half a file. Load it with :meth:`load`.

        Returns
        -------
        pathlib.Path
        """
        grads = self._grad._acts if self._grad is not None else None
        return io.save_file(Path(path), self._acts, grads, self._layers, self.n_layers)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Any = "cpu") -> ActivationCache:
        """A cache saved by :meth:`save`, or an offload folder of memory-mapped ``.npy`` files.

        Parameters
        ----------
        path : path-like
            A safetensors file written by :meth:`save`, or the ``offload_dir`` of a cache
            (a folder with ``index.json``; its arrays stay memory-mapped, copy-on-write).
        device : str or torch.device, default "cpu"

        Raises
        ------
        InvalidInputError
            If the file is not a saved activation cache.
        """
        torch = require_torch("ActivationCache.load")
        path = Path(path)
        dev = io.as_device(device, torch)
        if path.is_dir():
            index, tensors = io.load_folder(path, torch)
            cache = cls(
                {n: tensors["act"][n] for n in index["names"] if n in tensors["act"]},
                grads=tensors["grad"] or None,
                layers=index.get("layers"),
                n_layers=index.get("n_layers"),
                offload_dir=path,
            )
            return cache.to(dev) if dev is not None and dev.type != "cpu" else cache
        if not path.is_file():
            raise InvalidParameterError(
                f"no file or folder at {str(path)!r}: pass the path given to cache.save() or "
                "a cache's offload_dir."
            )
        acts, grads, layers, n_layers = io.load_file(path)
        cache = cls(acts, grads=grads, layers=layers, n_layers=n_layers)
        return cache.to(dev) if dev is not None and dev.type != "cpu" else cache


# --------------------------------------------------------------------------- helpers ------
def _layer_of(name: str) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def _canonical(key: str, anatomy: Any) -> str:
    """A TransformerLens alias (``blocks.0.hook_resid_post``) as the standard name."""
    if anatomy is not None:
        try:
            return anatomy.point(key).name
        except WhyboxError:
            return key
    m = re.fullmatch(r"(blocks\.\d+\.)?(.*)hook_(.+)", key)
    if m:
        return f"{m.group(1) or ''}{m.group(2)}{m.group(3)}"
    return key


# TransformerLens' short activation names (what its ``get_act_name(name, layer)`` makes
# ``blocks.{layer}.[attn.|mlp.]hook_{name}`` of, with its aliases attn, query, key, value and
# mlp_post) -> whybox's standard site. TransformerLens' others (scale, pre, mid, attn_scores,
# rot_q, rot_k, result, pre_linear) have no whybox site.
_TL_SHORT = {
    "resid_pre": "resid_pre",
    "resid_mid": "resid_mid",
    "resid_post": "resid_post",
    "attn_out": "attn.out",
    "mlp_out": "mlp.out",
    "q": "attn.q",
    "query": "attn.q",
    "k": "attn.k",
    "key": "attn.k",
    "v": "attn.v",
    "value": "attn.v",
    "pattern": "attn.pattern",
    "attn": "attn.pattern",
    "z": "attn.head_out",
    "post": "mlp.post",
    "mlp_post": "mlp.post",
}
# get_act_name's layer types (its aliases a, m, b, block, blocks, attention and the names
# themselves); "" is none. The norms' outputs need one: ("normalized", i, "ln1").
_TL_LAYER_TYPES = {"": "", "b": "", "block": "", "blocks": "", "a": "attn", "attention": "attn"}
_TL_LAYER_TYPES.update(attn="attn", m="mlp", mlp="mlp", ln1="ln1", ln2="ln2")


def _tl_short_site(site: str, layer_type: Any = None) -> str | None:
    """The whybox site of a TransformerLens short name (and layer type), or None."""
    mapped = _TL_SHORT.get(site)
    if layer_type is None:
        return mapped
    kind = _TL_LAYER_TYPES.get(layer_type) if isinstance(layer_type, str) else None
    if kind is None:
        return None
    if site == "normalized":
        return kind if kind in ("ln1", "ln2") else None
    if mapped is None:
        return None
    if mapped in ("resid_pre", "resid_mid", "resid_post", "attn.out", "mlp.out"):
        return mapped if kind == "" else None  # on the block: any other layer type misses
    return mapped  # get_act_name puts q, k, v, z, pattern under attn, post under mlp


def _site_of(name: str) -> str | None:
    m = re.fullmatch(r"blocks\.\d+\.(.+)", name)
    return m.group(1) if m else None


def _summarise(names: Sequence[str]) -> str:
    """``'blocks.{0..5}.resid_post'``-style summary of a list of names."""
    groups: dict[str, list[int]] = {}
    others: list[str] = []
    for n in names:
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", n)
        if m:
            groups.setdefault(m.group(2), []).append(int(m.group(1)))
        else:
            others.append(n)
    parts = [repr(o) for o in others]
    for site, layers in groups.items():
        span = f"{min(layers)}..{max(layers)}" if len(layers) > 1 else str(layers[0])
        parts.append(f"'blocks.{{{span}}}.{site}'")
    return ", ".join(parts[:12]) + (", ..." if len(parts) > 12 else "")


def _short_list(items: Sequence[Any], limit: int = 6) -> str:
    shown = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items[:limit])
    return "[" + shown + (f", ... ({len(items)} in all)" if len(items) > limit else "") + "]"


def _slice_pos(stack: Any, pos_slice: Any, torch: Any) -> Any:
    if isinstance(pos_slice, bool):
        raise InvalidParameterError(f"pos_slice must be an int, slice or list, got {pos_slice!r}.")
    if isinstance(pos_slice, int | slice):
        return stack[..., pos_slice, :]
    index = torch.as_tensor(list(pos_slice), dtype=torch.long, device=stack.device)
    return stack.index_select(-2, index)


# --------------------------------------------------------------------------- the run ------
def _select(anat: Any, names: Any) -> list[Any]:
    if names is None:
        points = [p for p in anat.resolve(None) if p.name != "unembed"]
    else:
        if not (isinstance(names, str) or callable(names) or isinstance(names, Sequence)):
            raise InvalidParameterError(
                f"names must be a hook name, a glob ('blocks.*.resid_post'), a list of them, "
                f"or a function name -> bool, got {type(names).__name__}."
            )
        points = anat.resolve(names)
    if not points:
        raise InvalidParameterError(
            f"names={names!r} selects no hook point. Anatomy.of(model).names() lists the "
            "standard names."
        )
    return points


def _model_inputs(model: Any, inputs: Any, anat: Any, forward_kwargs: dict[str, Any]) -> dict:
    kwargs = hooks.as_model_inputs(model, inputs, vocab_size=anat.vocab_size)
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        params = {}
    for key in forward_kwargs:
        if key in kwargs:
            raise InvalidParameterError(
                f"{key!r} is given twice: in inputs and as a keyword of run_with_cache. Pass "
                "it once."
            )
        close = difflib.get_close_matches(key, _OWN_KEYWORDS, n=1, cutoff=0.75)
        if key not in params and close:
            # a misspelt keyword of run_with_cache itself (name=, dytpe=): Hugging Face
            # forwards take **kwargs and might ignore it silently
            raise InvalidParameterError(
                f"run_with_cache got an unknown keyword {key!r} (did you mean {close[0]!r}?). "
                "Other keywords go to the model's forward, which does not take it either."
            )
    kwargs.update(forward_kwargs)
    return kwargs


def _chunks(kwargs: dict[str, Any], batch_size: int | None, torch: Any) -> tuple[int, list]:
    ids = kwargs.get("input_ids")
    first = ids if isinstance(ids, torch.Tensor) else None
    if first is None:
        first = next((v for v in kwargs.values() if isinstance(v, torch.Tensor) and v.ndim), None)
    n = int(first.shape[0]) if first is not None else 1
    if batch_size is None or batch_size >= n:
        return n, [(0, n, kwargs)]
    out = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        part = {
            k: v[start:stop] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
            for k, v in kwargs.items()
        }
        out.append((start, stop, part))
    return n, out


def run_with_cache(
    model: Any,
    inputs: Any,
    names: str | Sequence[str] | Callable[[str], bool] | None = None,
    *,
    anatomy: Any = None,
    device: Any = "cpu",
    dtype: Any = None,
    max_bytes: int | None = None,
    offload_dir: str | os.PathLike[str] | None = None,
    with_grad: bool = False,
    metric: Callable[[Any], Any] | None = None,
    batch_size: int | None = None,
    **forward_kwargs: Any,
) -> tuple[Any, ActivationCache]:
    """Run ``model`` on ``inputs`` and keep the activations at the named hook points.

    The hooks are read-only: each copies its activation as it leaves the module (then casts
    and moves the copy), so the model computes exactly what it computes without them; the
    returned logits equal an unhooked run's bit for bit (``torch.equal``). Every hook is
    removed on return, also when the model or ``metric`` raises.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` model (decoder or encoder) or any model :class:`Anatomy`
        understands.
    inputs : LongTensor (batch, pos) or mapping
        Token ids, or the model's keyword arguments (a tokenizer's ``BatchEncoding``), on
        the model's device.
    names : str, list of str, callable or None
        Hook names (``"blocks.3.resid_post"``), globs (``"blocks.*.attn.out"``), TransformerLens
        names (``"blocks.3.hook_resid_post"``), raw module paths (``"transformer.h.3.mlp"``),
        or a predicate on standard names. None caches every standard name (``embed``,
        residual stream, norms, q/k/v, head outputs, attention and MLP outputs, MLP neurons,
        ``ln_final``; the attention pattern when the model's attention returns it) except
        ``unembed``, whose value is the returned logits.
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.
    device : str, torch.device or None, default "cpu"
        Where the cached tensors are kept (None: where the model produced them).
    dtype : torch.dtype or str, optional
        Cast the cached tensors (e.g. ``torch.float16``) after capture; the model's own
        computation is untouched.
    max_bytes : int, optional
        Memory budget of the cache on ``device``. Activations are kept in memory, in forward
        order, while they fit; the others go, as they are produced, to memory-mapped ``.npy``
        files in ``offload_dir`` (or a temporary folder, deleted with the cache) -- or to CPU
        memory when ``device`` is a GPU and no ``offload_dir`` is given. Must be at least the
        size of the smallest cached activation.
    offload_dir : path-like, optional
        Folder for the memory-mapped files (a new sub-folder is made in it per run, kept
        after the cache; ``ActivationCache.load`` reopens it).
    with_grad : bool, default False
        Also cache the gradient of ``metric(logits)`` with respect to each cached activation
        (``cache.grad[name]``). Gradients are taken with ``torch.autograd.grad`` only: no
        parameter's ``.grad`` changes.
    metric : callable, optional
        ``metric(logits) -> scalar tensor``, differentiable; required with ``with_grad``.
    batch_size : int, optional
        Run the forward pass on at most this many rows at a time and join the results (the
        cache is the same; logits may differ from a whole-batch run in the last bits, as any
        change of batch shape can). With ``with_grad``, ``metric`` is applied to each chunk's
        logits and the gradients are those of each chunk's own metric (equal to the whole
        batch's for a metric that sums over rows).
    **forward_kwargs
        Passed to the model's forward (e.g. ``attention_mask``, ``token_type_ids``); tensors
        whose first dimension is the batch are split with it.

    Returns
    -------
    logits : torch.Tensor
        The model's output (``.logits``, else ``.last_hidden_state``), detached.
    cache : ActivationCache

    Raises
    ------
    InvalidParameterError
        A hook name that does not exist (the message lists the nearest), a metric that does
        not return a differentiable scalar, ``max_bytes`` smaller than the smallest
        activation, bad ``device`` / ``dtype`` / ``batch_size``.
    InvalidInputError
        Inputs on another device than the model, token ids outside the model's vocabulary.
    ModelCallError
        The model or ``metric`` raised (the original error is chained).

    Notes
    -----
    The hooks copy each activation (so a later in-place change by the model cannot alter
    the cached value, and a head or q/k/v view does not keep its fused parent alive), which
    costs one memory copy per cached tensor, small next to the forward pass itself.

    With ``with_grad`` the forward pass records the autograd graph, and each cached
    activation is handed back to the model as the tensor the rest of the pass uses (same
    values, bit for bit), so its gradient is defined even for head or q/k/v views.

    Examples
    --------
    >>> import torch
    >>> model, tok = wb.zoo.tiny_lm()                       # a 4-layer GPT-2, d_model 128
    >>> ids = tok("The for statement is used to", return_tensors="pt").input_ids
    >>> logits, cache = wb.run_with_cache(model, ids, names="blocks.*.resid_post")
    >>> tuple(logits.shape), tuple(cache["blocks.3.resid_post"].shape)
    ((1, 6, 2048), (1, 6, 128))
    >>> torch.equal(logits, model(ids).logits)              # the hooks change nothing
    True

    References
    ----------
    .. [1] Nanda & Bloom (2022), TransformerLens, ``HookedTransformer.run_with_cache``.
    .. [2] Fiotto-Kaufman et al. (2024), NNsight.
    """
    torch = require_torch("run_with_cache")
    from whybox.internals.anatomy import Anatomy

    anat = Anatomy.for_model(model, anatomy)
    dev = io.as_device(device, torch)
    dt = io.as_dtype(dtype, torch)
    if max_bytes is not None:
        max_bytes = check_int("max_bytes", max_bytes, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(with_grad, bool):
        raise InvalidParameterError(f"with_grad must be True or False, got {with_grad!r}.")
    if with_grad and not callable(metric):
        raise InvalidParameterError(
            "with_grad=True needs metric=fn, a function of the logits that returns a scalar "
            "tensor (e.g. lambda logits: logits[:, -1, 5].sum())."
        )
    if metric is not None and not with_grad:
        raise InvalidParameterError(
            "metric is used only for gradients: pass with_grad=True to cache the gradients "
            "of metric(logits), or leave metric out."
        )
    points = _select(anat, names)
    kwargs = _model_inputs(model, inputs, anat, forward_kwargs)
    n_rows, chunks = _chunks(kwargs, batch_size, torch)
    store = io.Store(
        torch,
        device=dev,
        dtype=dt,
        max_bytes=max_bytes,
        offload_dir=offload_dir,
        n_rows=n_rows,
        chunked=len(chunks) > 1,
    )
    order: dict[str, None] = {}
    calls: dict[str, int] = {}
    logits_parts = []
    try:
        for start, stop, part in chunks:
            store.begin_chunk(stop - start)
            live: dict[str, Any] = {}
            calls.clear()

            def make(name: str, start: int = start, live: dict = live) -> Callable[[Any], Any]:
                def fn(view: Any) -> Any:
                    calls[name] = calls.get(name, 0) + 1
                    order.setdefault(name, None)
                    if not with_grad:
                        store.put("act", name, view.detach(), start)
                        return None
                    # hand the tensor back, so that the rest of the pass depends on this very
                    # tensor (its gradient is then defined, also for a view); a leaf where
                    # nothing upstream needs gradients
                    node = view if view.requires_grad else view.detach().requires_grad_(True)
                    live[name] = node
                    store.put("act", name, node.detach(), start)
                    return node

                return fn

            with hooks.on_points(model, [(p, make(p.name)) for p in points]):
                logits = hooks.forward(model, part, grad=with_grad)
            _check_calls(points, calls, names is not None)
            if with_grad:
                _gradients(logits, metric, live, store, start, torch)
                logits = logits.detach()
            logits_parts.append(logits)
        store.check_budget()
        layers = {p.name: p.layer for p in points}
        store.finish(list(order), layers, anat.n_layers)
    except BaseException:
        store.discard()
        raise
    logits = logits_parts[0] if len(logits_parts) == 1 else torch.cat(logits_parts)
    acts = {n: store.tensors["act"][n] for n in order if n in store.tensors["act"]}
    grads = None
    if with_grad:
        grads = {n: store.tensors["grad"][n] for n in order if n in store.tensors["grad"]}
    cache = ActivationCache(
        acts,
        grads=grads,
        layers=layers,
        n_layers=anat.n_layers,
        anatomy=anat,
        offload_dir=store.folder,
        _owned_dir=store.owned,
    )
    return logits, cache


def _check_calls(points: list[Any], calls: dict[str, int], explicit: bool) -> None:
    twice = [p.name for p in points if calls.get(p.name, 0) > 1]
    if twice:
        raise InvalidParameterError(
            f"the modules of {_short_list(twice)} ran more than once in one forward pass "
            "(a shared or reused module), so one activation per name is ambiguous. Name a "
            "module that runs once, or capture every call with hooks.capture."
        )
    never = [p.name for p in points if p.name not in calls]
    if never and explicit:
        raise InvalidParameterError(
            f"{_short_list(never)} never ran in the forward pass on these inputs (the model "
            "did not call those modules), so there is nothing to cache for them. Leave them "
            "out of names."
        )


def _gradients(
    logits: Any, metric: Any, live: dict[str, Any], store: io.Store, start: int, torch: Any
) -> None:
    try:
        value = metric(logits)
    except WhyboxError:
        raise
    except Exception as exc:
        raise ModelCallError(
            f"metric(logits) raised {type(exc).__name__}: {exc} (logits of shape "
            f"{tuple(logits.shape)})."
        ) from exc
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = (
            f"a tensor of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else f"{type(value).__name__} {value!r}"
        )
        raise InvalidParameterError(
            f"metric must return a scalar tensor (one number to differentiate), got {got}. "
            "Reduce it, e.g. logits[:, -1, a].sum() or (logits[:, -1, a] - logits[:, -1, b])"
            ".mean()."
        )
    if not value.requires_grad:
        raise InvalidParameterError(
            "metric(logits) returned a tensor with no gradient: compute it from the logits "
            "with torch operations (not .item(), numpy or .detach())."
        )
    names = list(live)
    grads = torch.autograd.grad(value.reshape(()), [live[n] for n in names], allow_unused=True)
    for name, g in zip(names, grads, strict=True):
        store.put("grad", name, torch.zeros_like(live[name]) if g is None else g, start)
