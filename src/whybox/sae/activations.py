"""Activation sources for SAE training: streamed from a model through hooks, or read from shards.

Interface (what :mod:`whybox.sae.training` iterates over)
---------------------------------------------------------
Both sources are iterables of :class:`ActivationBatch` with the same small protocol::

    src = ModelActivations(model, "blocks.2.resid_post", tokens, tokenizer=tok,
                           batch_size=4096, buffer_tokens=65536, random_state=0)
    src = ShardActivations("cache_folder", "blocks.2.resid_post", batch_size=4096)
    src.d_in, src.d_out        # ints; d_out is None without site_out (an autoencoder)
    src.site, src.site_out     # names read (site_out: the transcoder's target, or None)
    src.batch_size             # tokens per batch
    for batch in src:          # one pass (epoch) over the data, from the current position
        batch.x                # (n, d_in) float tensor on src.device; n == batch_size except
                               # for the last batch of an epoch (drop_last=False)
        batch.y                # (n, d_out) transcoder target of the same tokens, or None
        batch.index            # (n,) int64: each row's token index in the epoch's token stream
    x, y, index = batch        # an ActivationBatch is a NamedTuple
    for batch in src.batches(total_tokens=10**6): ...   # epochs repeated until that many
    x = src.next_batch(4096)   # exactly 4096 rows across epochs; (x, y) with site_out
                               # (what whybox.sae.training.train draws)
    src.n_tokens               # tokens per epoch, or None while unknown (texts, generators)
    src.tokens_seen            # tokens drawn so far (all epochs)
    src.epoch                  # epochs completed
    state = src.state_dict()   # dict of ints, strings, tensors (a model source: the buffer)
    src2.load_state_dict(state)   # src2, built with the same arguments, yields next the
                                  # batch src would have yielded next (bit for bit)
    src.buffer_nbytes          # bytes of the shuffle buffer's tensors (<= the configured size)

The token index of a row is its position in the epoch's stream of token positions: for a
``(n_seq, ctx)`` id tensor, ``row * ctx + pos``; for shards, the row of the shards' tokens
concatenated in order (a ``(batch, pos, d)`` array flattened to ``(batch * pos, d)``).

Shuffling. :class:`ModelActivations` writes each forward pass's activations straight into
free slots of a preallocated buffer of ``buffer_tokens`` rows; when the next forward pass no
longer fits, a random half of the filled slots is served in batches and freed (the
"mixing buffer" of SAELens, without its concatenations: memory stays at the buffer's size).
At the end of the data the rest is served in random order. :class:`ShardActivations` cuts the
stored rows into contiguous chunks, shuffles the chunks, reads them in groups of at most
``buffer_tokens / 2`` rows, and serves each group's rows in random order (at most two groups
in memory). Every token is served exactly once per epoch, in an order fixed by
``random_state`` and the epoch; nothing is recomputed.

Non-finite activations stop the stream with :class:`~whybox.errors.InvalidInputError` naming
the forward batch / shard and the token where they appeared: an SAE is never trained on them.

References
----------
.. [1] Bloom, J., Tigges, C., Duong, A. & Chanin, D. (2024). SAELens (the activations store and
   its mixing buffer).
.. [2] Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
   Dictionary Learning. Transformer Circuits Thread (activations shuffled across contexts).
.. [3] Gao, L. et al. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
    ModelCallError,
    UnsupportedModelError,
    WhyboxError,
)
from whybox.internals.hooks import require_torch
from whybox.sae._shards import ShardActivations
from whybox.sae._source import (
    ActivationBatch,
    ActivationSource,
    _bad_row,
    _dtype,
    _generator,
)

__all__ = ["ActivationBatch", "ActivationSource", "ModelActivations", "ShardActivations"]


class _Stop(Exception):
    """Raised by the last capture hook to end a forward pass early (caught here)."""


def _accepts(model: Any, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (or any keyword)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def _record_text(item: Any) -> Any:
    """A data set's record ``{"text": ...}`` as its text; anything else unchanged."""
    if isinstance(item, Mapping) and "input_ids" not in item and isinstance(item.get("text"), str):
        return item["text"]
    return item


def _is_str(item: Any) -> bool:
    return isinstance(item, str)


class _Rows:
    """The stream of model input rows ``(ids (w,), attention (w,) bool)`` from ``tokens``."""

    def __init__(
        self,
        tokens: Any,
        tokenizer: Any,
        context_size: int,
        prepend_bos: bool,
        pack: bool,
        torch: Any,
    ) -> None:
        self.tokens, self.tokenizer = tokens, tokenizer
        self.context_size, self.prepend_bos, self.pack = context_size, prepend_bos, pack
        self.torch = torch
        self.reiterable = not isinstance(tokens, Iterator)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        torch = self.torch
        items = self.tokens
        if isinstance(items, str):
            items = [items]
        elif isinstance(items, torch.Tensor) or hasattr(items, "__array__"):
            items = [items]
        elif isinstance(items, Mapping):
            items = [items]
        # runs of consecutive texts are packed together, lazily (a generator streams)
        for is_text, run in itertools.groupby(map(_record_text, items), key=_is_str):
            if is_text:
                yield from self._text_rows(run)
            else:
                for item in run:
                    yield from self._array_rows(item)

    def _array_rows(self, item: Any) -> Iterator[tuple[Any, Any]]:
        torch = self.torch
        mask = None
        if isinstance(item, Mapping):
            if "input_ids" not in item:
                raise InvalidInputError(
                    f"a mapping in tokens needs an 'input_ids' entry (a tokenizer's output), "
                    f"got keys {sorted(item)}."
                )
            mask = item.get("attention_mask")
            item = item["input_ids"]
        try:
            ids = torch.as_tensor(item)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(
                f"tokens must be token ids (a LongTensor or array (n_seq, ctx) or (n_tokens,)), "
                f"texts (with tokenizer=...), or an iterable of these; got an element of type "
                f"{type(item).__name__}."
            ) from exc
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise InvalidInputError(
                f"token ids must be integers, got dtype {ids.dtype}. Tokenize texts first or "
                "pass them with tokenizer=..."
            )
        ids = ids.to(torch.long)
        if mask is not None:
            mask = torch.as_tensor(mask).to(torch.bool)
            if mask.shape != ids.shape:
                raise InvalidInputError(
                    f"attention_mask has shape {tuple(mask.shape)}, input_ids "
                    f"{tuple(ids.shape)}: they must match."
                )
        if ids.ndim == 1:  # a stream of tokens: context_size chunks, the last one padded
            c = self.context_size
            n = ids.shape[0]
            for start in range(0, n, c):
                row = ids[start : start + c]
                m = mask[start : start + c] if mask is not None else None
                yield self._padded(row, m, c)
            return
        if ids.ndim != 2:
            raise InvalidInputError(
                f"token ids must have shape (n_seq, ctx) or (n_tokens,), got {tuple(ids.shape)}."
            )
        for i in range(ids.shape[0]):
            yield ids[i], (mask[i] if mask is not None else None)

    def _padded(self, row: Any, mask: Any, width: int) -> tuple[Any, Any]:
        torch = self.torch
        n = row.shape[0]
        if mask is None and n == width:
            return row, None
        full_mask = torch.zeros(width, dtype=torch.bool)
        full_mask[:n] = True if mask is None else mask
        pad = torch.zeros(width, dtype=torch.long)
        pad[:n] = row
        return pad, full_mask

    def _special(self, *names: str) -> int | None:
        for name in names:
            value = getattr(self.tokenizer, name, None)
            if isinstance(value, int):
                return value
        return None

    def _text_rows(self, texts: Iterable[str]) -> Iterator[tuple[Any, Any]]:
        torch = self.torch
        tok = self.tokenizer
        if tok is None:
            raise InvalidParameterError(
                "tokens holds texts but no tokenizer was given: pass tokenizer=... (the "
                "model's own, e.g. AutoTokenizer.from_pretrained(path)), or token ids."
            )
        c = self.context_size
        if not self.pack:
            for text in texts:
                enc = tok(text, truncation=True, max_length=c)
                row = torch.as_tensor(enc["input_ids"], dtype=torch.long)
                yield self._padded(row, None, c)
            return
        bos = self._special("bos_token_id", "eos_token_id")
        sep = bos
        lead = [bos] if (self.prepend_bos and bos is not None) else []
        body = c - len(lead)
        pending: list[int] = []
        for k, text in enumerate(texts):
            ids = list(tok(text, add_special_tokens=False)["input_ids"])
            if k and sep is not None:
                pending.append(sep)
            pending.extend(ids)
            while len(pending) >= body:
                yield torch.as_tensor(lead + pending[:body], dtype=torch.long), None
                del pending[:body]
        if pending:
            row = torch.as_tensor(lead + pending, dtype=torch.long)
            yield self._padded(row, None, c)


class ModelActivations(ActivationSource):
    """Activations at a hook site of a model, streamed in shuffled batches for SAE training.

    Parameters
    ----------
    model : torch.nn.Module
        A ``transformers`` model (or any model :class:`~whybox.internals.anatomy.Anatomy`
        understands). Run as it is (its train / eval mode is left alone), without gradients.
    site : str
        Hook name read (``"blocks.3.resid_post"``, ``"blocks.2.mlp.out"``, a TransformerLens
        name or a module path). A per-head site (``attn.head_out``) is flattened to
        ``n_heads * d_head``.
    tokens : LongTensor / array (n_seq, ctx) or (n_tokens,), list of str, mapping, or iterable
        Token ids (rows as given; a 1-D stream is cut into ``context_size`` rows), texts
        (tokenized with ``tokenizer``, concatenated with the BOS token between documents and
        cut into ``context_size`` rows that each start with BOS, as SAELens does; the last
        row is padded), a tokenizer's output (``input_ids`` and ``attention_mask``), or an
        iterable of any of these (a generator streams; resume and further epochs need a
        re-iterable one).
    tokenizer : tokenizer, optional
        Needed for texts; its special ids are excluded (``exclude_special``).
    context_size : int, default 128
        Row length for texts and 1-D id streams.
    batch_size : int, default 4096
        Tokens per yielded batch.
    batch_size_prompts : int, default 32
        Rows per forward pass.
    site_out : str, optional
        A second site captured in the same forward pass: the transcoder's target
        (``batch.y``).
    buffer_tokens : int, optional
        Rows of the shuffle buffer (default ``max(65536, 2 * batch_size, 4 *
        batch_size_prompts * context_size)``). Must be at least ``2 * batch_size``.
    buffer_bytes : int, optional
        The buffer's size in bytes instead (inputs, targets and token indices together).
    device : str or torch.device, optional
        Where the buffer and the batches live (default: the model's device).
    dtype : torch dtype or str, optional
        The buffer's dtype (default: the activations' own); ``"float16"`` halves it.
    random_state : int, default 0
        Seeds the shuffle (a fresh stream per epoch).
    exclude_special : bool or sequence of int, default True
        Leave out positions holding special tokens (the tokenizer's ``all_special_ids``, and
        the config's BOS / EOS / pad ids) and padding; a sequence gives the ids to leave out;
        False keeps every position with attention (SAELens leaves out BOS).
    prepend_bos : bool, default True
        Start every packed text row with the BOS token.
    pack : bool, optional
        Concatenate texts and cut them into rows (default for causal models); False (default
        for encoders): one row per text, truncated to ``context_size`` and padded, with the
        tokenizer's special tokens ([CLS], [SEP]: left out of the batches).
    stop_early : bool, default True
        End each forward pass right after the last site is captured (a private exception
        raised by the hook and caught here): the blocks after it are never run.
    drop_last : bool, default False
        Skip an epoch's last, smaller batch.
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.
    forward_kwargs : dict, optional
        Extra keyword arguments for the model's forward.

    Attributes
    ----------
    d_in, d_out : int, int or None
    buffer_tokens : int
    forward_batches : int
        Forward passes run so far.

    Raises
    ------
    InvalidInputError
        Non-finite activations (with the forward batch and the token), tokens of a wrong
        type or shape.
    InvalidParameterError
        A site that does not exist or is not per token (``attn.pattern``), a buffer smaller
        than two batches.

    Examples
    --------
    >>> model, tok = wb.zoo.tiny_lm()
    >>> texts = wb.zoo.tiny_lm_corpus("train")[:2]
    >>> acts = wb.sae.ModelActivations(model, "blocks.2.resid_post", texts, tokenizer=tok,
    ...                                context_size=64, batch_size=256)
    >>> tuple(acts.next_batch().shape)           # (batch_size, d_model), shuffled tokens
    (256, 128)

    Notes
    -----
    Each token's activation is computed once and copied twice: from the hook into a free
    slot of the buffer, and from the buffer into its batch.

    References
    ----------
    Bloom, J., Tigges, C. & Chanin, D. (2024). SAELens (the activation store: a shuffled buffer
    refilled from the model).
    """

    def __init__(
        self,
        model: Any,
        site: str,
        tokens: Any,
        *,
        tokenizer: Any = None,
        context_size: int = 128,
        batch_size: int = 4096,
        batch_size_prompts: int = 32,
        site_out: str | None = None,
        buffer_tokens: int | None = None,
        buffer_bytes: int | None = None,
        device: Any = None,
        dtype: Any = None,
        random_state: int = 0,
        exclude_special: bool | Sequence[int] = True,
        prepend_bos: bool = True,
        pack: bool | None = None,
        stop_early: bool = True,
        drop_last: bool = False,
        anatomy: Any = None,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        torch = require_torch("ModelActivations")
        from whybox.internals import hooks
        from whybox.internals.anatomy import Anatomy

        super().__init__(batch_size=batch_size, random_state=random_state, drop_last=drop_last)
        self.model = model
        self.anatomy = Anatomy.for_model(model, anatomy)
        self.context_size = check_int("context_size", context_size, minimum=1)
        self.batch_size_prompts = check_int("batch_size_prompts", batch_size_prompts, minimum=1)
        for flag, value in (
            ("prepend_bos", prepend_bos),
            ("pack", self.anatomy.is_causal if pack is None else pack),
            ("stop_early", stop_early),
        ):
            if not isinstance(value, bool):
                raise InvalidParameterError(f"{flag} must be True or False, got {value!r}.")
        self.stop_early = stop_early
        self.site = site
        self.site_out = site_out
        self._points = [self.anatomy.point(site)]
        if site_out is not None:
            self._points.append(self.anatomy.point(site_out))
        self._hooks = hooks
        self.forward_kwargs = dict(forward_kwargs or {})
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "use_cache") and _accepts(model, "use_cache"):
            self.forward_kwargs.setdefault("use_cache", False)  # no KV cache built and dropped
        self._model_device = hooks.model_device(model)
        self.device = torch.device(device) if device is not None else self._model_device
        self._special = self._special_ids(exclude_special, tokenizer, config, torch)
        pack = self.anatomy.is_causal if pack is None else pack
        self._rows = _Rows(tokens, tokenizer, self.context_size, prepend_bos, pack, torch)

        widths, act_dtype = self._probe(torch)
        self.d_in = widths[0]
        self.d_out = widths[1] if site_out is not None else None
        self.dtype = _dtype(dtype, torch) or act_dtype
        esize = torch.empty(0, dtype=self.dtype).element_size()
        row_bytes = esize * (self.d_in + (self.d_out or 0)) + 8 + 1  # + index, + filled flag
        if buffer_tokens is not None and buffer_bytes is not None:
            raise InvalidParameterError(
                "give the buffer's size once: buffer_tokens or buffer_bytes, not both."
            )
        if buffer_bytes is not None:
            buffer_bytes = check_int("buffer_bytes", buffer_bytes, minimum=1)
            buffer_tokens = buffer_bytes // row_bytes
            what = f"buffer_bytes={buffer_bytes} ({buffer_tokens} tokens of {row_bytes} bytes)"
        elif buffer_tokens is None:
            buffer_tokens = max(
                65536, 2 * self.batch_size, 4 * self.batch_size_prompts * self.context_size
            )
            what = ""
        else:
            buffer_tokens = check_int("buffer_tokens", buffer_tokens, minimum=1)
            what = f"buffer_tokens={buffer_tokens}"
        if buffer_tokens < 2 * self.batch_size:
            raise InvalidParameterError(
                f"{what} is smaller than two batches (2 * batch_size = "
                f"{2 * self.batch_size} tokens): the buffer serves half of itself at a time. "
                "Pass a larger buffer_tokens / buffer_bytes or a smaller batch_size."
            )
        self.buffer_tokens = buffer_tokens
        self._row_bytes = row_bytes
        self.forward_batches = 0
        self._n_tokens: int | None = self._count_tokens(tokens, torch)
        self._buf: Any = None  # allocated on first use
        self._reset_epoch()

    # -- setup -------------------------------------------------------------------------------
    @staticmethod
    def _special_ids(exclude: Any, tokenizer: Any, config: Any, torch: Any) -> Any:
        if exclude is False:
            return None
        if exclude is True:
            ids: set[int] = set()
            for value in getattr(tokenizer, "all_special_ids", None) or []:
                ids.add(int(value))
            for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
                value = getattr(config, name, None)
                values = value if isinstance(value, list | tuple) else [value]
                ids.update(int(v) for v in values if isinstance(v, int))
        else:
            try:
                ids = {int(v) for v in exclude}
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(
                    f"exclude_special must be True, False or a sequence of token ids, got "
                    f"{exclude!r}."
                ) from exc
        return torch.tensor(sorted(ids), dtype=torch.long) if ids else None

    def _probe(self, torch: Any) -> tuple[list[int], Any]:
        """Widths and dtype of the sites, from a forward pass on two tokens."""
        seen: dict[int, Any] = {}

        def make(i: int) -> Any:
            def fn(view: Any) -> None:
                seen[i] = view
                if len(seen) == len(self._points) and self.stop_early:
                    raise _Stop

            return fn

        ids = torch.zeros((1, 2), dtype=torch.long, device=self._model_device)
        self._forward(ids, None, [(p, make(i)) for i, p in enumerate(self._points)], torch)
        widths = []
        for i, p in enumerate(self._points):
            if i not in seen:
                raise UnsupportedModelError(
                    f"the site {p.name!r} (module {p.path!r}) did not run in a forward pass of "
                    "the model: it cannot be read. Name a site the forward pass goes through."
                )
            v = seen[i]
            if v.ndim < 3 or tuple(v.shape[:2]) != (1, 2):
                raise InvalidParameterError(
                    f"the site {p.name!r} has shape {tuple(v.shape)} for one row of two tokens, "
                    "not (batch, pos, ...): it is not an activation per token (attn.pattern is "
                    "per pair of tokens). Choose a residual, attention, MLP or norm site."
                )
            widths.append(math.prod(v.shape[2:]))
        return widths, seen[0].dtype

    def _forward(self, ids: Any, mask: Any, fns: list[tuple[Any, Any]], torch: Any) -> None:
        kwargs = {"input_ids": ids, **self.forward_kwargs}
        if mask is not None:
            kwargs["attention_mask"] = mask.to(device=ids.device, dtype=torch.long)
        with torch.no_grad(), self._hooks.on_points(self.model, fns):
            try:
                self.model(**kwargs)
            except _Stop:
                return
            except WhyboxError:
                raise
            except Exception as exc:
                raise ModelCallError(
                    f"the model raised {type(exc).__name__}: {exc} (input_ids {tuple(ids.shape)})."
                ) from exc

    @property
    def n_tokens(self) -> int | None:
        """Tokens per epoch (kept positions): counted up front for token-id tensors, after
        the first epoch for texts and iterables; None until known."""
        return self._n_tokens

    def _count_tokens(self, tokens: Any, torch: Any) -> int | None:
        if isinstance(tokens, Mapping) and "input_ids" in tokens:
            ids = torch.as_tensor(tokens["input_ids"])
            mask = tokens.get("attention_mask")
        elif isinstance(tokens, torch.Tensor) or hasattr(tokens, "__array__"):
            ids, mask = torch.as_tensor(tokens), None
        else:
            return None
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            return None  # 1-D streams are padded into rows; bad ids raise when read
        keep = torch.ones(ids.shape, dtype=torch.bool)
        if mask is not None:
            keep &= torch.as_tensor(mask).to(torch.bool)
        if self._special is not None:
            keep &= ~torch.isin(ids.to(torch.long), self._special)
        return int(keep.sum())

    # -- the buffer ----------------------------------------------------------------------------
    def _allocate(self) -> None:
        torch = require_torch()
        c = self.buffer_tokens
        self._buf = torch.empty((c, self.d_in), dtype=self.dtype, device=self.device)
        self._buf_out = (
            torch.empty((c, self.d_out), dtype=self.dtype, device=self.device)
            if self.d_out is not None
            else None
        )
        self._ids = torch.empty(c, dtype=torch.long)
        self._filled = torch.zeros(c, dtype=torch.bool)
        self._note_peak(self.buffer_nbytes)

    @property
    def buffer_nbytes(self) -> int:
        """Bytes of the buffer's tensors (activations, targets, token indices, flags)."""
        if self._buf is None:
            return 0
        tensors = [self._buf, self._buf_out, self._ids, self._filled]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def _reset_epoch(self) -> None:
        self._rows_done = 0  # rows of the token stream forwarded this epoch
        self._offset = 0  # token positions of those rows
        self._kept = 0  # tokens of those rows written to the buffer
        self._queue: Any = None  # slots being served, and how far
        self._qpos = 0
        self._draining = False
        self._gen = _generator(self.random_state, self.epoch)
        self._stream: Iterator[tuple[Any, Any]] | None = None
        self._pending: list[tuple[Any, Any]] = []
        if self._buf is not None:
            self._filled.zero_()

    def _row_iter(self) -> Iterator[tuple[Any, Any]]:
        if self._stream is None:
            stream = iter(self._rows)
            for _ in range(self._rows_done):  # resume: skip the rows already forwarded
                if next(stream, None) is None:
                    break
            self._stream = stream
        return self._stream

    def _next_rows(self, free: int) -> tuple[list[tuple[Any, Any]], bool]:
        """Up to ``batch_size_prompts`` rows of one width whose tokens fit in ``free`` slots;
        and whether the stream is exhausted."""
        stream = self._row_iter()
        rows = self._pending
        self._pending = []
        exhausted = False
        while len(rows) < self.batch_size_prompts:
            row = next(stream, None)
            if row is None:
                exhausted = True
                break
            rows.append(row)
        if not rows:
            return [], True
        width = int(rows[0][0].shape[0])
        if width > self.buffer_tokens // 2:
            raise InvalidParameterError(
                f"a row of {width} tokens does not fit in half the shuffle buffer "
                f"({self.buffer_tokens} tokens). Pass buffer_tokens >= {2 * width}."
            )
        k = 0
        while k < len(rows) and int(rows[k][0].shape[0]) == width and (k + 1) * width <= free:
            k += 1
        self._pending = rows[k:]
        return rows[:k], exhausted and not self._pending

    def _fill_once(self, rows: list[tuple[Any, Any]], torch: Any) -> None:
        """One forward pass over ``rows``, its kept tokens written into free slots."""
        ids = torch.stack([r[0] for r in rows])
        masks = [r[1] for r in rows]
        mask = None
        if any(m is not None for m in masks):
            mask = torch.stack(
                [m if m is not None else torch.ones(ids.shape[1], dtype=torch.bool) for m in masks]
            )
        keep = torch.ones(ids.shape, dtype=torch.bool) if mask is None else mask.clone()
        if self._special is not None:
            keep &= ~torch.isin(ids, self._special)
        flat_keep = torch.nonzero(keep.reshape(-1)).squeeze(1)
        m = int(flat_keep.numel())
        slots = torch.nonzero(~self._filled).squeeze(1)[:m]
        width = ids.shape[1]
        offset = self._offset
        keep_dev = flat_keep.to(self.device)
        slots_dev = slots.to(self.device)
        done: set[int] = set()
        batch_no = self.forward_batches

        def make(i: int, target: Any) -> Any:
            def fn(view: Any) -> None:
                if i in done:
                    raise UnsupportedModelError(
                        f"the site {self._points[i].name!r} ran twice in one forward pass (a "
                        "module called more than once): its activations per token are "
                        "ambiguous. Name another site or the module path of one call."
                    )
                done.add(i)
                if m:
                    flat = view.detach().reshape(-1, target.shape[1])
                    rows_ = flat.index_select(0, keep_dev.to(flat.device))
                    target[slots_dev] = rows_.to(device=self.device, dtype=self.dtype)
                    got = target[slots_dev] if rows_.dtype != self.dtype else rows_
                    bad_row = _bad_row(got)
                    if bad_row is not None:
                        bad = int(flat_keep[bad_row])
                        raise InvalidInputError(
                            f"the activations at {self._points[i].name!r} are not finite (NaN "
                            f"or inf) in forward batch {batch_no} at token {offset + bad} of "
                            f"the epoch (row {self._rows_done + bad // width}, position "
                            f"{bad % width}): an SAE must not be trained on them. Check the "
                            "model and its inputs (dtype overflow in float16?)."
                        )
                if len(done) == len(self._points) and self.stop_early:
                    raise _Stop

            return fn

        fns = [(self._points[0], make(0, self._buf))]
        if self._buf_out is not None:
            fns.append((self._points[1], make(1, self._buf_out)))
        self._forward(ids.to(self._model_device), mask, fns, torch)
        if len(done) < len(self._points):
            raise UnsupportedModelError(
                f"the site(s) {[p.name for i, p in enumerate(self._points) if i not in done]} "
                "did not run in the forward pass: they cannot be read."
            )
        self._ids[slots] = flat_keep + offset
        self._filled[slots] = True
        self._offset += ids.numel()
        self._kept += m
        self._rows_done += len(rows)
        self.forward_batches += 1

    def _epoch(self) -> Iterator[ActivationBatch]:
        torch = require_torch()
        if self._buf is None:
            self._allocate()
        cap = self.buffer_tokens
        while True:
            # serve the current round
            while self._queue is not None and self._qpos < self._queue.numel():
                slots = self._queue[self._qpos : self._qpos + self.batch_size]
                self._qpos += int(slots.numel())
                sd = slots.to(self.device)
                x = self._buf.index_select(0, sd)
                y = self._buf_out.index_select(0, sd) if self._buf_out is not None else None
                index = self._ids.index_select(0, slots).to(self.device)
                self._filled[slots] = False
                yield ActivationBatch(x, y, index)
            self._queue = None
            if self._draining:
                self._n_tokens = self._kept
                return
            # fill until the next full forward pass no longer fits (or the data ends)
            full_pass = self.batch_size_prompts * self.context_size
            exhausted = False
            while True:
                filled = int(self._filled.sum())
                free = cap - filled
                if free < full_pass and filled >= cap // 2:
                    break
                rows, exhausted = self._next_rows(free)
                if rows:
                    self._fill_once(rows, torch)
                if exhausted or not rows:  # the end, or the next row does not fit: serve
                    break
            filled_slots = torch.nonzero(self._filled).squeeze(1)
            n = int(filled_slots.numel())
            if exhausted:
                self._draining = True
                order = filled_slots[torch.randperm(n, generator=self._gen)]
            else:
                half = max(self.batch_size, (n // 2) // self.batch_size * self.batch_size)
                order = filled_slots[torch.randperm(n, generator=self._gen)[:half]]
            self._queue, self._qpos = order, 0
            if n == 0:
                return

    # -- resume --------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "resumable": self._rows.reiterable,
            "buffer_tokens": self.buffer_tokens,
            "rows_done": self._rows_done,
            "offset": self._offset,
            "kept": self._kept,
            "n_tokens": self._n_tokens,
            "draining": self._draining,
            "forward_batches": self.forward_batches,
            "generator": self._gen.get_state(),
            "queue": None if self._queue is None else self._queue[self._qpos :].clone(),
        }
        if self._buf is not None:
            slots = torch_nonzero(self._filled)
            state["slots"] = slots
            state["x"] = self._buf[slots.to(self.device)].cpu()
            state["y"] = (
                None if self._buf_out is None else self._buf_out[slots.to(self.device)].cpu()
            )
            state["ids"] = self._ids[slots].clone()
        return state

    def _state_mismatch(self, state: Mapping[str, Any]) -> list[str]:
        if state.get("buffer_tokens") != self.buffer_tokens:
            return [f"buffer_tokens: {state.get('buffer_tokens')!r} (here {self.buffer_tokens})"]
        return []

    def _load_state(self, state: Mapping[str, Any]) -> None:
        if not state.get("resumable", True):
            raise InvalidParameterError(
                "this state was taken from a source reading a one-shot iterator of tokens: "
                "its place in them cannot be found again. Train from re-iterable tokens (a "
                "list of texts or a tensor of ids) to resume."
            )
        self._reset_epoch()
        # rows read into the stream but not yet forwarded are read again
        self._rows_done = int(state["rows_done"])
        self._offset = int(state["offset"])
        self._kept = int(state.get("kept", 0))
        self._n_tokens = state.get("n_tokens", self._n_tokens)
        self._draining = bool(state["draining"])
        self.forward_batches = int(state["forward_batches"])
        self._gen.set_state(state["generator"])
        queue = state.get("queue")
        self._queue, self._qpos = (None, 0) if queue is None else (queue.clone(), 0)
        if "slots" in state:
            if self._buf is None:
                self._allocate()
            slots = state["slots"]
            sd = slots.to(self.device)
            self._buf[sd] = state["x"].to(device=self.device, dtype=self.dtype)
            if self._buf_out is not None:
                self._buf_out[sd] = state["y"].to(device=self.device, dtype=self.dtype)
            self._ids[slots] = state["ids"]
            self._filled.zero_()
            self._filled[slots] = True


def torch_nonzero(mask: Any) -> Any:
    """Indices of the True entries of a 1-D bool tensor."""
    torch = require_torch()
    return torch.nonzero(mask).squeeze(1)
