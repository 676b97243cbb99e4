"""Where the parts of a transformer are: blocks, attention, heads, MLP, norms, unembedding.

``Anatomy.of(model)`` finds them in the user's own model, without converting it: from the
config (layer, head and width counts), the modules' shapes, and the order in which modules
run in one short probe forward pass (read-only hooks; the model is left as it was). Names of
known families are only hints, so an architecture never seen before is found the same way;
a part that cannot be found is named in the error with the keyword that supplies it.

Standard hook names (TransformerLens's, without the ``hook_`` prefix, which is accepted too)
map to the model's own module paths::

    embed, pos_embed
    blocks.{i}.resid_pre | resid_mid | resid_post
    blocks.{i}.ln1 | ln2
    blocks.{i}.attn.q | k | v | pattern | head_out | out
    blocks.{i}.mlp.post | out
    ln_final, unembed

Raw module paths (``"model.layers.3.mlp"``) work as names too.

References
----------
.. [1] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits".
.. [2] Nanda & Bloom (2022), TransformerLens (the hook-name convention).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.internals._anatomy_discovery import (
    _cfg,
    _Discovery,
    _linear_shape,
)
from whybox.internals.hooks import (
    HookPoint,
    get_module,
    require_torch,
)

__all__ = ["Anatomy", "HookPoint"]

# TransformerLens names accepted as aliases of the standard ones.
_TL_ALIASES = {
    "hook_embed": "embed",
    "hook_pos_embed": "pos_embed",
    "hook_resid_pre": "resid_pre",
    "hook_resid_mid": "resid_mid",
    "hook_resid_post": "resid_post",
    "ln1.hook_normalized": "ln1",
    "ln2.hook_normalized": "ln2",
    "attn.hook_q": "attn.q",
    "attn.hook_k": "attn.k",
    "attn.hook_v": "attn.v",
    "attn.hook_pattern": "attn.pattern",
    "attn.hook_z": "attn.head_out",
    "hook_attn_out": "attn.out",
    "mlp.hook_post": "mlp.post",
    "hook_mlp_out": "mlp.out",
    "ln_final.hook_normalized": "ln_final",
}

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Anatomy]] = weakref.WeakKeyDictionary()


class Anatomy(_Discovery):
    """The parts of a transformer, found in the user's model.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` model (decoder or encoder) or any torch model whose blocks are an
        ``nn.ModuleList``.
    blocks : str, optional
        Path of the ``nn.ModuleList`` of blocks (``"model.layers"``).
    embed, pos_embed, final_norm, unembed : str, optional
        Paths of the token embedding, learned position embedding, final norm and
        unembedding (``lm_head``).
    attn, q, k, v, qkv, o, mlp, mlp_down, ln1, ln2 : str, optional
        Paths *inside a block* (``"self_attn.o_proj"``) of the attention module, its
        projections (``qkv`` for a fused one), the MLP, its down projection and the norms.
    qkv_layout : {"contiguous", "per_head"}, optional
        How a fused q/k/v output is laid out: ``[q | k | v]`` or ``(heads, 3, d_head)``.
    n_layers, n_heads, n_kv_heads, d_model, d_head, vocab_size : int, optional
        Override the config's counts (needed for a model without a ``config``).
    example_inputs : tensor or mapping, optional
        Inputs for the probe forward pass, for a model that does not take ``input_ids``.

    Attributes
    ----------
    n_layers, n_heads, n_kv_heads, d_model, d_head, d_mlp : int
    vocab_size : int or None
    is_causal : bool
        Whether a position only sees earlier positions (decoders).
    norm_position : {"pre", "post"}
        Pre-LN blocks (GPT-2, Llama) or post-LN blocks (BERT).
    parallel_residual : bool
        Attention and MLP read the same residual (GPT-NeoX, Phi): no ``resid_mid``.
    logit_softcap : float or None
        Gemma 2's final ``tanh`` soft cap of the logits, applied by ``to_logits``.

    Raises
    ------
    UnsupportedModelError
        A model whose blocks, attention or norms cannot be found (pass their paths).
    InvalidParameterError
        A path that does not exist in the model, an unknown hook name (the message lists
        the nearest), a bad override.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> anat = wb.Anatomy.of(model)                   # found in the model, cached per model
    >>> anat.n_layers, anat.n_heads, anat.d_model, anat.is_causal, anat.norm_position
    (4, 4, 128, True, 'pre')
    >>> anat.path("blocks.3.mlp.out")                 # hook name -> module path
    'transformer.h.3.mlp'

    References
    ----------
    Nanda, N. & Bloom, J. (2022). TransformerLens (the standard hook names ``blocks.{l}.*``).
    """

    def __init__(
        self,
        model: Any,
        *,
        blocks: str | None = None,
        embed: str | None = None,
        pos_embed: str | None = None,
        final_norm: str | None = None,
        unembed: str | None = None,
        attn: str | None = None,
        q: str | None = None,
        k: str | None = None,
        v: str | None = None,
        qkv: str | None = None,
        o: str | None = None,
        mlp: str | None = None,
        mlp_down: str | None = None,
        ln1: str | None = None,
        ln2: str | None = None,
        qkv_layout: str | None = None,
        n_layers: int | None = None,
        n_heads: int | None = None,
        n_kv_heads: int | None = None,
        d_model: int | None = None,
        d_head: int | None = None,
        vocab_size: int | None = None,
        example_inputs: Any = None,
    ) -> None:
        torch = require_torch("Anatomy")
        if not isinstance(model, torch.nn.Module):
            raise UnsupportedModelError(
                f"Anatomy needs a torch.nn.Module (a transformers model), got "
                f"{type(model).__name__}. For a pipeline pass its .model."
            )
        if qkv_layout not in (None, "contiguous", "per_head"):
            raise InvalidParameterError(
                f"qkv_layout must be 'contiguous' ([q | k | v]) or 'per_head' "
                f"((heads, 3, d_head)), got {qkv_layout!r}."
            )
        self._model_ref = weakref.ref(model)
        config = getattr(model, "config", None)
        self.d_model = int(d_model or _cfg(config, "hidden_size", "n_embd", "d_model", "dim") or 0)
        self.n_heads = int(n_heads or _cfg(config, "num_attention_heads", "n_head", "n_heads") or 0)
        self.vocab_size = vocab_size or _cfg(config, "vocab_size")
        modules = dict(model.named_modules())
        self._modules = modules

        # -- blocks ------------------------------------------------------------------------
        n_cfg = n_layers or _cfg(config, "num_hidden_layers", "n_layer", "n_layers")
        self.blocks_path = blocks if blocks is not None else self._find_blocks(n_cfg, torch)
        block_list = get_module(model, self.blocks_path)
        if not isinstance(block_list, torch.nn.ModuleList) or len(block_list) == 0:
            raise UnsupportedModelError(
                f"{self.blocks_path!r} is {type(block_list).__name__}, not a non-empty "
                "nn.ModuleList of blocks. Pass Anatomy(model, blocks='path.to.layers')."
            )
        self.n_layers = len(block_list)
        if not self.d_model:
            self.d_model = self._guess_d_model(block_list[0], torch)
        if not self.n_heads:
            raise UnsupportedModelError(
                "could not find the number of attention heads: the model has no config with "
                "num_attention_heads. Pass Anatomy(model, n_heads=...)."
            )
        self.d_head = int(
            d_head
            or _cfg(config, "head_dim", "attention_head_size")
            or self.d_model // self.n_heads
        )
        self.n_kv_heads = int(
            n_kv_heads or _cfg(config, "num_key_value_heads", "n_kv_heads") or self.n_heads
        )
        self.logit_softcap = _cfg(config, "final_logit_softcapping")

        # -- embedding, unembedding ---------------------------------------------------------
        self.embed_path = embed if embed is not None else self._find_embed(model, torch)
        if self.vocab_size is None:
            emb = get_module(model, self.embed_path)
            self.vocab_size = int(getattr(emb, "num_embeddings", 0)) or None
        self.unembed_path = unembed if unembed is not None else self._find_unembed(model, torch)
        self.pos_embed_path = pos_embed if pos_embed is not None else self._find_pos_embed(torch)

        # -- probe forward: call order, causality, residual layout --------------------------
        overrides = {
            "attn": attn, "q": q, "k": k, "v": v, "qkv": qkv, "o": o, "mlp": mlp,
            "mlp_down": mlp_down, "ln1": ln1, "ln2": ln2,
        }  # fmt: skip
        probe = self._probe(model, block_list, example_inputs, torch)
        self.is_causal = probe["causal"]
        self._block = self._find_block_parts(block_list[0], probe, overrides, qkv_layout, torch)
        self.norm_position = probe["norm_position"]
        self.parallel_residual = probe["parallel"]
        self._pattern_ok = probe["pattern_ok"]
        found_norm, self.head_path = self._find_head(probe, torch)
        self.final_norm_path = final_norm if final_norm is not None else found_norm
        down = get_module(block_list[0], self._block.mlp_down)
        self.d_mlp = int(_linear_shape(down, torch)[0])  # type: ignore[index]
        self._points = self._build_points()

    # ------------------------------------------------------------------ construction ----
    @classmethod
    def of(cls, model: Any, **overrides: Any) -> Anatomy:
        """The anatomy of ``model`` (computed once per model and overrides, then reused)."""
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        try:
            per_model = _CACHE.setdefault(model, {})
        except TypeError:  # not weak-referenceable
            return cls(model, **overrides)
        if key not in per_model:
            per_model[key] = cls(model, **overrides)
        return per_model[key]

    @classmethod
    def for_model(cls, model: Any, anatomy: Anatomy | None = None) -> Anatomy:
        """``anatomy`` checked to describe ``model``, or ``Anatomy.of(model)`` when None: what
        every function taking ``anatomy=`` uses.

        Raises
        ------
        InvalidParameterError
            If ``anatomy`` is not an Anatomy, or describes another model object (its hooks
            would go on that model's modules and see nothing of this one's forward pass).
        """
        if anatomy is None:
            return cls.of(model)
        if not isinstance(anatomy, Anatomy):
            raise InvalidParameterError(
                f"anatomy must be a whybox Anatomy (Anatomy.of(model)), got "
                f"{type(anatomy).__name__}."
            )
        if anatomy.model is not model:
            raise InvalidParameterError(
                "anatomy describes another model than the one passed: build it with "
                "Anatomy.of(model) for this model (or pass anatomy=None)."
            )
        return anatomy

    @property
    def model(self) -> Any:
        model = self._model_ref()
        if model is None:
            raise UnsupportedModelError("the model this Anatomy describes no longer exists.")
        return model

    def _build_points(self) -> dict[str, HookPoint]:
        b = self._block
        pts: dict[str, HookPoint] = {}
        pts["embed"] = HookPoint("embed", self.embed_path)
        if self.pos_embed_path is not None:
            pts["pos_embed"] = HookPoint("pos_embed", self.pos_embed_path)
        hq, hkv = self.n_heads * self.d_head, self.n_kv_heads * self.d_head
        for i in range(self.n_layers):
            blk = f"{self.blocks_path}.{i}"

            def p(rel: str, blk: str = blk) -> str:
                return f"{blk}.{rel}" if rel else blk

            def add(site: str, path: str, i: int = i, **kw: Any) -> None:
                name = f"blocks.{i}.{site}"
                pts[name] = HookPoint(name, path, layer=i, **kw)

            add("resid_pre", blk, io="input", kwarg="hidden_states")
            if self.norm_position == "pre" and b.ln1 is not None:
                add("ln1", p(b.ln1))
            if b.qkv is not None:
                if b.qkv_layout == "per_head":
                    for j, s in enumerate("qkv"):
                        add(f"attn.{s}", p(b.qkv), groups=(self.n_heads, 3, j))
                else:
                    bounds = {"q": (0, hq), "k": (hq, hq + hkv), "v": (hq + hkv, hq + 2 * hkv)}
                    for s, part in bounds.items():
                        heads = self.n_heads if s == "q" else self.n_kv_heads
                        add(f"attn.{s}", p(b.qkv), part=part, heads=heads)
            else:
                add("attn.q", p(b.q), heads=self.n_heads)  # type: ignore[arg-type]
                add("attn.k", p(b.k), heads=self.n_kv_heads)  # type: ignore[arg-type]
                add("attn.v", p(b.v), heads=self.n_kv_heads)  # type: ignore[arg-type]
            if b.pattern is not None:
                add("attn.pattern", p(b.pattern), index=1)
            add("attn.head_out", p(b.o), io="input", heads=self.n_heads)
            if self.norm_position == "post":
                add("attn.out", p(b.o))
            elif b.post_attn_norm is not None:
                add("attn.out", p(b.post_attn_norm))
            else:
                add("attn.out", p(b.attn))
            if not self.parallel_residual:
                if self.norm_position == "pre" and b.ln2 is not None:
                    add("resid_mid", p(b.ln2), io="input", kwarg="hidden_states")
                else:
                    first_mlp = self._first_mlp_module()
                    add("resid_mid", p(first_mlp), io="input", kwarg="hidden_states")
            if self.norm_position == "pre" and b.ln2 is not None:
                add("ln2", p(b.ln2))
            add("mlp.post", p(b.mlp_down), io="input")
            if self.norm_position == "post" or b.mlp is None:
                add("mlp.out", p(b.mlp_down))
            elif b.post_mlp_norm is not None:
                add("mlp.out", p(b.post_mlp_norm))
            else:
                add("mlp.out", p(b.mlp))
            add("resid_post", blk)
        if self.final_norm_path is not None:
            pts["ln_final"] = HookPoint("ln_final", self.final_norm_path)
        if self.unembed_path is not None:
            pts["unembed"] = HookPoint("unembed", self.unembed_path)
        return pts

    def _first_mlp_module(self) -> str:
        """Inside a block, the first module of the MLP sublayer (post-LN models)."""
        torch = require_torch()
        block = self._modules[f"{self.blocks_path}.0"]
        down = self._block.mlp_down
        d_mlp = _linear_shape(block.get_submodule(down), torch)[0]  # type: ignore[index]
        for n, m in block.named_modules():
            shape = _linear_shape(m, torch)
            if shape == (self.d_model, d_mlp):
                return n
        return down

    # ------------------------------------------------------------------ public API ------
    def names(self, pattern: str | None = None) -> list[str]:
        """Every standard hook name, in forward order; ``pattern`` is a glob filter."""
        names = list(self._points)
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def _canonical(self, name: str) -> str:
        if name in self._points:
            return name
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
        if m and m.group(2) in _TL_ALIASES:
            return f"blocks.{m.group(1)}.{_TL_ALIASES[m.group(2)]}"
        return _TL_ALIASES.get(name, name)

    def point(self, name: str) -> HookPoint:
        """The hook point of a standard name (or TransformerLens alias) or a module path.

        Raises
        ------
        InvalidParameterError
            For a name that is neither; the message lists the nearest valid names.
        UnsupportedModelError
            For ``attn.pattern`` on a model whose attention does not return its weights.
        """
        if not isinstance(name, str):
            raise InvalidParameterError(
                f"a hook name must be a str such as 'blocks.0.resid_post', got "
                f"{type(name).__name__}."
            )
        canon = self._canonical(name)
        if canon in self._points:
            if canon.endswith("attn.pattern") and not self._pattern_ok:
                raise UnsupportedModelError(
                    f"{name!r}: this model's attention does not return its pattern (attention "
                    f"implementation {self._attn_impl()!r}). Load the model with "
                    "attn_implementation='eager' (from_pretrained(..., "
                    "attn_implementation='eager') or model.set_attn_implementation('eager'))."
                )
            return self._points[canon]
        if name in self._modules:
            return HookPoint(name, name)
        m = re.fullmatch(r"blocks\.(\d+)\..+", canon)
        if m and int(m.group(1)) >= self.n_layers:
            raise InvalidParameterError(
                f"{name!r}: the model has {self.n_layers} blocks (0 to {self.n_layers - 1})."
            )
        if m and canon.endswith("resid_mid") and self.parallel_residual:
            raise InvalidParameterError(
                f"{name!r}: this model adds attention and MLP to the same residual stream "
                "(parallel residual), so there is no residual between them. Use resid_pre, "
                "attn.out, mlp.out or resid_post."
            )
        pool = list(self._points) + [n for n in self._modules if n]
        close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
        raise InvalidParameterError(
            f"no hook point named {name!r}. "
            + (f"Nearest: {', '.join(repr(c) for c in close)}. " if close else "")
            + "Standard names are 'embed', 'blocks.{i}.resid_pre|resid_mid|resid_post', "
            "'blocks.{i}.attn.q|k|v|pattern|head_out|out', 'blocks.{i}.mlp.post|out', "
            "'ln_final', 'unembed' (Anatomy.names() lists them); module paths of "
            "model.named_modules() work too."
        )

    def _attn_impl(self) -> str:
        config = getattr(self.model, "config", None)
        return str(getattr(config, "_attn_implementation", "unknown"))

    def path(self, name: str) -> str:
        """The module path a hook name lives on (a module path is returned unchanged)."""
        return self.point(name).path

    def module(self, name: str) -> Any:
        """The module a hook name lives on."""
        return get_module(self.model, self.path(name))

    def resolve(self, names: str | Sequence[str] | Callable[[str], bool] | None) -> list[HookPoint]:
        """Hook points for names, globs (``"blocks.*.resid_post"``) or a predicate.

        ``None`` selects every standard name except ``attn.pattern`` when the model's
        attention does not return it.
        """
        if names is None:
            return [
                self._points[n]
                for n in self._points
                if self._pattern_ok or not n.endswith("attn.pattern")
            ]
        if callable(names) and not isinstance(names, str):
            return [self.point(n) for n in self._points if names(n)]
        items = [names] if isinstance(names, str) else list(names)
        out: list[HookPoint] = []
        for item in items:
            if isinstance(item, str) and any(ch in item for ch in "*?["):
                matched = [n for n in self._points if fnmatch.fnmatchcase(n, item)]
                if not matched:
                    self.point(item.replace("*", "0"))  # raises with the nearest names
                    raise InvalidParameterError(f"no hook name matches the pattern {item!r}.")
                out.extend(self.point(n) for n in matched)
            else:
                out.append(self.point(item))
        return list(dict.fromkeys(out))

    @property
    def embed(self) -> Any:
        """The token embedding module."""
        return get_module(self.model, self.embed_path)

    @property
    def final_norm(self) -> Any:
        """The model's own final norm module, or None (BERT has none)."""
        return (
            None if self.final_norm_path is None else get_module(self.model, self.final_norm_path)
        )

    @property
    def unembed(self) -> Any:
        """The unembedding (``lm_head``) module, or None for a model without one."""
        return None if self.unembed_path is None else get_module(self.model, self.unembed_path)

    def block(self, layer: int) -> Any:
        """The block module of ``layer``."""
        self._check_layer(layer)
        return get_module(self.model, f"{self.blocks_path}.{layer}")

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise InvalidParameterError(
                f"layer {layer!r} is out of range: the model has {self.n_layers} blocks "
                f"(0 to {self.n_layers - 1})."
            )

    def _weight_in_out(self, module: Any) -> Any:
        """A linear-like module's weight as (in_features, out_features)."""
        torch = require_torch()
        if isinstance(module, torch.nn.Linear):
            return module.weight.T
        return module.weight

    def W_O(self, layer: int) -> Any:
        """Output projection of ``layer`` split by heads, (n_heads, d_head, d_model)."""
        o = get_module(self.block(layer), self._block.o)
        w = self._weight_in_out(o)
        return w.reshape(self.n_heads, self.d_head, self.d_model)

    def b_O(self, layer: int) -> Any:
        """Output projection bias of ``layer`` (d_model,), or None."""
        return getattr(get_module(self.block(layer), self._block.o), "bias", None)

    def W_U(self) -> Any:
        """Unembedding matrix (d_model, vocab)."""
        head = self._require_unembed()
        return self._weight_in_out(head)

    def b_U(self) -> Any:
        """Unembedding bias (vocab,), or None."""
        return getattr(self._require_unembed(), "bias", None)

    def _require_unembed(self) -> Any:
        head = self.unembed
        if head is None:
            raise UnsupportedModelError(
                f"{type(self.model).__name__} has no unembedding (lm_head): it outputs hidden "
                "states, not logits. Load the model with its language-model head "
                "(AutoModelForCausalLM / AutoModelForMaskedLM), or pass "
                "Anatomy(model, unembed='path.to.head')."
            )
        return head

    def to_logits(self, normed: Any) -> Any:
        """Logits from final-norm outputs (batch..., d_model): the unembedding, then
        Gemma 2's soft cap when the config has one."""
        torch = require_torch()
        logits = self._require_unembed()(normed)
        if self.logit_softcap:
            cap = float(self.logit_softcap)
            logits = torch.tanh(logits / cap) * cap
        return logits

    def logits_from_resid(self, resid: Any) -> Any:
        """Logits from residual-stream vectors (batch..., d_model), through the model's own
        final norm and unembedding (or its prediction head, e.g. BERT's masked-LM head)."""
        if self.head_path is not None:
            return get_module(self.model, self.head_path)(resid)
        norm = self.final_norm
        return self.to_logits(norm(resid) if norm is not None else resid)

    def __repr__(self) -> str:
        return (
            f"Anatomy({type(self.model).__name__}: {self.n_layers} layers, {self.n_heads} "
            f"heads ({self.n_kv_heads} kv), d_model={self.d_model}, d_head={self.d_head}, "
            f"d_mlp={self.d_mlp}, blocks={self.blocks_path!r}, {self.norm_position}-LN"
            + (", parallel residual" if self.parallel_residual else "")
            + (", causal" if self.is_causal else "")
            + ")"
        )

    def describe(self) -> dict[str, Any]:
        """Counts and module paths found, as a plain dict (for reports and errors)."""
        b = self._block
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "d_mlp": self.d_mlp,
            "vocab_size": self.vocab_size,
            "is_causal": self.is_causal,
            "norm_position": self.norm_position,
            "parallel_residual": self.parallel_residual,
            "embed": self.embed_path,
            "pos_embed": self.pos_embed_path,
            "blocks": self.blocks_path,
            "attn": b.attn,
            "q": b.q,
            "k": b.k,
            "v": b.v,
            "qkv": b.qkv,
            "qkv_layout": b.qkv_layout,
            "o": b.o,
            "mlp": b.mlp,
            "mlp_down": b.mlp_down,
            "ln1": b.ln1,
            "ln2": b.ln2,
            "post_attn_norm": b.post_attn_norm,
            "post_mlp_norm": b.post_mlp_norm,
            "final_norm": self.final_norm_path,
            "head": self.head_path,
            "unembed": self.unembed_path,
        }
