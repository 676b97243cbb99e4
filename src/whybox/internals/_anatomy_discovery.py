"""How :class:`~whybox.internals.anatomy.Anatomy` finds a transformer's parts.

From the config's counts, the modules' shapes (linear layers' in and out widths, norms over
``d_model``) and the order in which modules run in one read-only probe forward pass; module
names are hints only, used to tell apart projections of equal shape.

References
----------
.. [1] Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from whybox.errors import InvalidParameterError, UnsupportedModelError
from whybox.internals.hooks import model_device, registered

_NORM_RE = re.compile(r"norm", re.IGNORECASE)
_HINTS = {
    "q": re.compile(r"(^|[._])(q|query|q_proj|q_lin|wq)$", re.IGNORECASE),
    "k": re.compile(r"(^|[._])(k|key|k_proj|k_lin|wk)$", re.IGNORECASE),
    "v": re.compile(r"(^|[._])(v|value|v_proj|v_lin|wv)$", re.IGNORECASE),
}
# fused q/k/v projections whose output is laid out per head ((heads, 3, d_head))
_PER_HEAD_QKV = ("query_key_value",)
_QKV_HINT = re.compile(r"qkv|query_key_value|c_attn", re.IGNORECASE)


def _cfg(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    text = getattr(config, "text_config", None)
    if text is not None and text is not config:
        return _cfg(text, *names)
    return None


def _linear_shape(module: Any, torch: Any) -> tuple[int, int] | None:
    """(in_features, out_features) of a linear-like module, or None."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if (
        isinstance(weight, torch.Tensor)
        and weight.ndim == 2
        and hasattr(module, "nf")  # transformers' Conv1D: weight is (in, out)
    ):
        return int(weight.shape[0]), int(weight.shape[1])
    return None


def _is_norm(module: Any, d_model: int, torch: Any) -> bool:
    if isinstance(module, torch.nn.LayerNorm | getattr(torch.nn, "RMSNorm", torch.nn.LayerNorm)):
        shape = tuple(module.normalized_shape)
        return shape == (d_model,)
    if _NORM_RE.search(type(module).__name__) and not list(module.children()):
        weight = getattr(module, "weight", None)
        return weight is not None and tuple(weight.shape) == (d_model,)
    return False


def _common_prefix(paths: Sequence[str]) -> str:
    parts = [p.split(".") for p in paths]
    out: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        out.append(items[0])
    # a leaf's own path is not its parent
    if out and any(len(p) == len(out) for p in parts):
        out = out[:-1]
    return ".".join(out)


@dataclass
class _Block:
    """Relative module paths inside one block ("" is the block itself)."""

    attn: str
    o: str
    q: str | None
    k: str | None
    v: str | None
    qkv: str | None
    qkv_layout: str | None
    pattern: str | None
    mlp: str | None
    mlp_down: str
    ln1: str | None
    ln2: str | None
    post_attn_norm: str | None
    post_mlp_norm: str | None


class _Discovery:
    """The finding half of Anatomy: methods that read the model and fill its paths."""

    _modules: dict[str, Any]
    blocks_path: str
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    vocab_size: int | None
    embed_path: str
    unembed_path: str | None

    def _find_blocks(self, n_cfg: int | None, torch: Any) -> str:
        candidates = []
        for name, module in self._modules.items():
            if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
                continue
            kinds = {type(m) for m in module}
            if len(kinds) != 1:
                continue
            n_params = sum(p.numel() for p in module.parameters())
            if n_params == 0:
                continue
            candidates.append((name, len(module), n_params))
        if n_cfg is not None:
            matching = [c for c in candidates if c[1] == n_cfg]
            if matching:
                return max(matching, key=lambda c: c[2])[0]
        if candidates:
            return max(candidates, key=lambda c: c[2])[0]
        raise UnsupportedModelError(
            "could not find the model's blocks: no nn.ModuleList of identical modules with "
            "parameters" + (f" and {n_cfg} entries (config)" if n_cfg else "") + ". Pass "
            "Anatomy(model, blocks='path.to.layers')."
        )

    def _guess_d_model(self, block: Any, torch: Any) -> int:
        for module in block.modules():
            if isinstance(module, torch.nn.LayerNorm):
                return int(module.normalized_shape[0])
        raise UnsupportedModelError(
            "could not find the model width: no config with hidden_size and no LayerNorm in a "
            "block. Pass Anatomy(model, d_model=...)."
        )

    def _path_of(self, target: Any) -> str | None:
        for name, module in self._modules.items():
            if module is target:
                return name
        return None

    def _outside_blocks(self, name: str) -> bool:
        return not (name == self.blocks_path or name.startswith(self.blocks_path + "."))

    def _find_embed(self, model: Any, torch: Any) -> str:
        getter = getattr(model, "get_input_embeddings", None)
        if callable(getter):
            try:
                emb = getter()
            except (NotImplementedError, AttributeError):
                emb = None
            path = self._path_of(emb) if emb is not None else None
            if path is not None:
                return path
        embeddings = [
            (n, m)
            for n, m in self._modules.items()
            if isinstance(m, torch.nn.Embedding) and self._outside_blocks(n)
        ]
        if self.vocab_size:
            embeddings = [e for e in embeddings if e[1].num_embeddings == self.vocab_size]
        if not embeddings:
            raise UnsupportedModelError(
                "could not find the token embedding: no nn.Embedding outside the blocks"
                + (f" with {self.vocab_size} rows (vocab_size)" if self.vocab_size else "")
                + ". Pass Anatomy(model, embed='path.to.embedding')."
            )
        return max(embeddings, key=lambda e: e[1].num_embeddings)[0]

    def _find_unembed(self, model: Any, torch: Any) -> str | None:
        getter = getattr(model, "get_output_embeddings", None)
        if callable(getter):
            try:
                head = getter()
            except (NotImplementedError, AttributeError):
                head = None
            path = self._path_of(head) if head is not None else None
            if path is not None:
                return path
        for name, module in self._modules.items():
            shape = _linear_shape(module, torch)
            if (
                shape is not None
                and self._outside_blocks(name)
                and shape == (self.d_model, self.vocab_size)
            ):
                return name
        return None

    def _find_pos_embed(self, torch: Any) -> str | None:
        for name, module in self._modules.items():
            if (
                isinstance(module, torch.nn.Embedding)
                and name != self.embed_path
                and self._outside_blocks(name)
                and re.search(r"pos|wpe", name.rsplit(".", 1)[-1], re.IGNORECASE)
                and module.embedding_dim == self.d_model
            ):
                return name
        return None

    def _probe(self, model: Any, block_list: Any, example_inputs: Any, torch: Any) -> dict:
        """One read-only forward pass on a two-row batch that differs in its last token."""
        from whybox.internals.hooks import as_model_inputs, output_logits

        device = model_device(model)
        if example_inputs is None:
            vocab = int(self.vocab_size or 8)
            config = getattr(model, "config", None)
            max_pos = _cfg(config, "max_position_embeddings", "n_positions", "n_ctx")
            length = max(2, min(4, int(max_pos))) if max_pos else 4
            row = [min(i + 1, vocab - 1) for i in range(length)]
            last = min(5, vocab - 1) if vocab - 1 != row[-1] else 0
            ids = torch.tensor([row, [*row[:-1], last]], device=device)
            example_inputs = {"input_ids": ids}
        kwargs = as_model_inputs(model, example_inputs)
        order: list[str] = []
        seen_in: dict[str, Any] = {}
        seen_out: dict[str, Any] = {}
        block0 = self.blocks_path + ".0"
        last_block = f"{self.blocks_path}.{len(block_list) - 1}"
        watched = {
            n: m
            for n, m in self._modules.items()
            if n.startswith(block0 + ".") or n == block0 or (self._outside_blocks(n) and n)
        }

        def make(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
            def pre(module: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
                order.append(name)
                first = args[0] if args else kw.get("hidden_states")
                if isinstance(first, torch.Tensor):
                    seen_in.setdefault(name, first.detach())

            def post(module: Any, args: tuple[Any, ...], output: Any) -> None:
                out = output[0] if isinstance(output, tuple) and output else output
                seen_out.setdefault(name, output if isinstance(output, tuple) else out)

            return pre, post

        was_training = model.training
        with registered([]) as handles:
            for name, module in watched.items():
                pre, post = make(name)
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
                handles.append(module.register_forward_hook(post))
            if last_block not in watched:
                pre, post = make(last_block)
                mod = self._modules[last_block]
                handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
                handles.append(mod.register_forward_hook(post))
            try:
                model.eval()
                with torch.no_grad():
                    output = model(**kwargs)
            except Exception as exc:
                raise UnsupportedModelError(
                    f"the probe forward pass that locates the model's parts failed "
                    f"({type(exc).__name__}: {exc}). Pass inputs the model accepts: "
                    "Anatomy(model, example_inputs={...})."
                ) from exc
            finally:
                model.train(was_training)
        logits = output_logits(output)
        block_out = seen_out.get(block0)
        block_out = block_out[0] if isinstance(block_out, tuple) else block_out
        causal = False
        if isinstance(block_out, torch.Tensor) and block_out.shape[0] >= 2:
            causal = bool(torch.equal(block_out[0, :-1], block_out[1, :-1]))
        return {
            "order": order,
            "in": seen_in,
            "out": seen_out,
            "causal": causal,
            "logits": logits,
            "block0": block0,
            "last_block": last_block,
            "norm_position": "pre",
            "parallel": False,
            "pattern_ok": False,
        }

    def _find_block_parts(
        self,
        block: Any,
        probe: dict,
        overrides: dict[str, str | None],
        qkv_layout: str | None,
        torch: Any,
    ) -> _Block:
        block0 = probe["block0"]
        rel = {n: m for n, m in block.named_modules() if n}
        order = [n[len(block0) + 1 :] for n in probe["order"] if n.startswith(block0 + ".")]
        pos = {n: i for i, n in reversed(list(enumerate(order)))}
        linears = {n: _linear_shape(m, torch) for n, m in rel.items()}
        linears = {n: s for n, s in linears.items() if s is not None}
        d, hq, hkv = self.d_model, self.n_heads * self.d_head, self.n_kv_heads * self.d_head

        def need(part: str, what: str) -> UnsupportedModelError:
            return UnsupportedModelError(
                f"could not find the {what} in block {block0!r} (a {type(block).__name__}). "
                f"Pass its path inside the block: Anatomy(model, {part}='...'); the block's "
                f"modules are {sorted(rel)[:20]}."
            )

        def check(part: str) -> str | None:
            path = overrides.get(part)
            if path is not None and path not in rel and path != "":
                raise InvalidParameterError(
                    f"{part}={path!r} is not a module path inside block {block0!r}. Its "
                    f"modules: {sorted(rel)[:20]}."
                )
            return path

        def ran(name: str) -> bool:
            return name in pos

        # output projection: in = heads * d_head, out = d_model, runs after q/k/v
        o = check("o")
        q, k, v, qkv = check("q"), check("k"), check("v"), check("qkv")
        if qkv is None and q is None:
            fused = sorted(
                (n for n, (i, out) in linears.items() if i == d and out == hq + 2 * hkv and ran(n)),
                key=lambda n: (not _QKV_HINT.search(n.rsplit(".", 1)[-1]), pos[n]),
            )
            if fused:
                separate_before = [
                    n
                    for n, (i, out) in linears.items()
                    if i == d and out in (hq, hkv) and ran(n) and pos[n] < pos[fused[0]]
                ]
                if len(separate_before) < 3:
                    qkv = fused[0]
        if qkv is None and (q is None or k is None or v is None):
            q_c = [n for n, (i, out) in linears.items() if i == d and out == hq and ran(n)]
            kv_c = [n for n, (i, out) in linears.items() if i == d and out == hkv and ran(n)]
            q, k, v = self._pick_qkv(q, k, v, q_c, kv_c, pos)
            if q is None or k is None or v is None:
                raise need("q", "query / key / value projections (or a fused qkv)")
        first_qkv = min(pos.get(n, 1 << 30) for n in (qkv, q, k, v) if n is not None)
        if o is None:
            o_c = [
                n
                for n, (i, out) in linears.items()
                if i == hq and out == d and ran(n) and pos[n] > first_qkv
                and n not in (q, k, v, qkv)
            ]  # fmt: skip
            if not o_c:
                raise need("o", "attention output projection")
            o = min(o_c, key=lambda n: pos[n])
        attn = check("attn") or _common_prefix([n for n in (q, k, v, qkv, o) if n])
        # the module that returns the attention pattern: the one holding q/k/v whose output
        # tuple has a (batch, heads, q, k) tensor
        pattern_mod = None
        for cand in sorted({_common_prefix([n for n in (q, k, v, qkv) if n]), attn}, key=len):
            out = probe["out"].get(block0 + "." + cand if cand else block0)
            if isinstance(out, tuple) and len(out) > 1:
                pattern_mod = cand
                w = out[1]
                self_ok = isinstance(w, torch.Tensor) and w.ndim == 4 and w.shape[1] == self.n_heads
                probe["pattern_ok"] = bool(self_ok)
                if self_ok:
                    break
        # MLP: down projection in = d_mlp (> d_model usually), out = d_model, after o
        down = check("mlp_down")
        if down is None:
            down_c = [
                n
                for n, (i, out) in linears.items()
                if out == d and n != o and ran(n) and pos[n] > pos[o] and i != hq
            ]
            if not down_c:
                down_c = [
                    n for n, (i, out) in linears.items() if out == d and n != o and ran(n)
                    and not n.startswith(attn + ".")
                ]  # fmt: skip
            if not down_c:
                raise need("mlp_down", "MLP down projection")
            down = max(down_c, key=lambda n: pos[n])
        d_mlp = _linear_shape(rel[down], torch)[0]  # type: ignore[index]
        ups = [
            n
            for n, (i, out) in linears.items()
            if i == d and out == d_mlp and ran(n) and n not in (q, k, v, qkv)
            and not (attn and n.startswith(attn + "."))
        ]  # fmt: skip
        mlp = check("mlp")
        if mlp is None:
            mlp = _common_prefix([down, *ups]) if ups else None
            if mlp == "" or mlp == attn:
                mlp = None  # no single MLP module (BERT's intermediate / output)
        # norms
        norms = [n for n in order if n in rel and _is_norm(rel[n], d, torch)]
        norms = list(dict.fromkeys(norms))
        first_mod = order[0] if order else ""
        first_top = first_mod.split(".")[0]
        pre_ln = bool(norms) and (first_mod in norms or first_top in norms)
        probe["norm_position"] = "pre" if pre_ln else "post"
        ln1 = check("ln1")
        ln2 = check("ln2")
        post_attn_norm = post_mlp_norm = None
        mlp_first = min(pos[n] for n in [down, *ups])
        parallel = False
        if pre_ln:
            ln1 = ln1 or next(n for n in norms if pos[n] < first_qkv)
            between = [n for n in norms if pos[o] < pos[n] < mlp_first and n != ln1]
            if ln2 is None:
                ln2 = between[-1] if between else None
            post_attn_norm = between[0] if len(between) >= 2 else None
            after = [n for n in norms if pos[n] > pos[down]]
            post_mlp_norm = after[0] if after else None
            if ln2 is None:
                parallel = True  # the MLP reads ln1's output (Phi, GPT-J)
                ln2 = ln1
            else:
                resid_in = probe["in"].get(block0)
                ln2_in = probe["in"].get(block0 + "." + ln2)
                parallel = (
                    isinstance(resid_in, torch.Tensor)
                    and isinstance(ln2_in, torch.Tensor)
                    and resid_in.shape == ln2_in.shape
                    and bool(torch.equal(resid_in, ln2_in))
                )
        probe["parallel"] = parallel
        layout = None
        if qkv is not None:
            layout = qkv_layout or (
                "per_head" if qkv.rsplit(".", 1)[-1] in _PER_HEAD_QKV else "contiguous"
            )
        return _Block(
            attn=attn,
            o=o,
            q=q,
            k=k,
            v=v,
            qkv=qkv,
            qkv_layout=layout,
            pattern=pattern_mod,
            mlp=mlp,
            mlp_down=down,
            ln1=ln1,
            ln2=ln2,
            post_attn_norm=post_attn_norm,
            post_mlp_norm=post_mlp_norm,
        )

    @staticmethod
    def _pick_qkv(
        q: str | None,
        k: str | None,
        v: str | None,
        q_c: list[str],
        kv_c: list[str],
        pos: dict[str, int],
    ) -> tuple[str | None, str | None, str | None]:
        pool = list(dict.fromkeys(q_c + kv_c))
        for role in ("q", "k", "v"):
            chosen = {"q": q, "k": k, "v": v}[role]
            if chosen is not None:
                continue
            cands = q_c if role == "q" else kv_c
            hinted = [n for n in cands if _HINTS[role].search(n)]
            if len(hinted) == 1:
                if role == "q":
                    q = hinted[0]
                elif role == "k":
                    k = hinted[0]
                else:
                    v = hinted[0]
        # fall back on call order: q, k, v run in that order before the output projection
        taken = {n for n in (q, k, v) if n}
        rest = sorted((n for n in pool if n not in taken), key=lambda n: pos[n])
        if q is None and rest:
            q = rest.pop(0)
        if k is None and rest:
            k = rest.pop(0)
        if v is None and rest:
            v = rest.pop(0)
        return q, k, v

    def _find_head(self, probe: dict, torch: Any) -> tuple[str | None, str | None]:
        """(final norm, head module) from the parametrised modules that run after the last
        block: ``[norm, unembed]`` is a final norm (GPT-2, Llama); a longer chain (BERT's
        masked-LM transform) is a head module, when one module holds all of it."""
        order = probe["order"]
        last = probe["last_block"]
        if last not in order:
            return None, None
        start = len(order) - 1 - order[::-1].index(last)
        after = [
            n
            for n in dict.fromkeys(order[start + 1 :])
            if n and self._outside_blocks(n)
            and not list(self._modules[n].children())
            and any(True for _ in self._modules[n].parameters(recurse=False))
        ]  # fmt: skip
        if self.unembed_path in after:
            after = after[: after.index(self.unembed_path) + 1]
        if not after:
            return None, None
        if after == [self.unembed_path]:
            return None, None
        if (
            len(after) == 2
            and after[1] == self.unembed_path
            and _is_norm(self._modules[after[0]], self.d_model, torch)
        ):
            return after[0], None
        if len(after) == 1 and _is_norm(self._modules[after[0]], self.d_model, torch):
            return after[0], None
        head = _common_prefix(after)
        return None, (head or None)

    # ------------------------------------------------------------------ hook points -----
