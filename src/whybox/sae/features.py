"""What each SAE latent does: the data behind a feature page.

:func:`feature_data` runs a model over tokens once, encodes the activations at the SAE's site
and keeps, per latent and in bounded memory (never the whole activation matrix):

- its density (fraction of tokens where it fires, ``f_j > 0``), mean (over firing tokens)
  and maximum activation;
- a histogram of its nonzero activations;
- its top-activating contexts (token ids and the latent's activation on every token of a
  window around the top token), kept in running top-``n_top`` lists;
- contexts sampled uniformly at random from activation intervals (SAEDashboard's "interval
  samples"), kept in priority-sampling reservoirs;
- co-firing counts with the other latents (a sparse matrix);

and, from the weights alone, its logit effects (the direct path of its decoder direction to
the logits through the final norm: top promoted and suppressed tokens) and its nearest
latents by decoder cosine.

The result, :class:`FeatureData`, is saved as a folder of ``.npy`` arrays and JSON files that
a dashboard reads one latent at a time (memory-mapped, no pickle).

Histogram and intervals in one pass
-----------------------------------
The range of latent ``j`` is ``[0, 2**e_j)`` with ``e_j`` the smallest integer exponent such
that every activation seen so far is below ``2**e_j``. The histogram has ``n_bins`` equal
bins over that range, the intervals ``n_quantiles`` equal intervals. When a larger activation
arrives the range doubles (``e_j`` grows) and bin ``i`` merges into bin ``i // 2`` -- exactly
the bin the activation would have fallen in under the final range, so the final histogram
equals ``numpy.histogram(acts, bins=n_bins, range=(0, 2**e_j))``; the maximum lies in the top
half of the range, so the upper half of the bins and intervals is never all empty. The
interval reservoirs merge the same way: each firing gets a uniform random key, and an
interval keeps the ``examples_per_quantile`` firings of smallest key -- a uniform sample
without replacement of the firings in that interval (Duffield, Lund & Thorup 2007), the same
sample however the tokens were batched.

Logit effects convention
------------------------
``effect_j = center_vocab(((W_dec[j] - mean(W_dec[j])) * gamma) @ W_U)`` where ``gamma`` is the
final norm's gain (LayerNorm ``weight``; RMSNorm ``weight``, ``1 + weight`` for Gemma's), the
mean subtraction over ``d_model`` happens only for a LayerNorm (which removes it from any
input), and ``center_vocab`` subtracts the mean over the vocabulary. This is the direct path
``W_dec @ W_U`` that SAELens and Neuronpedia report for a TransformerLens model loaded with
``fold_ln``, ``center_writing_weights`` and ``center_unembed`` (its defaults); the ranking of
tokens is that of ``(W_dec[j] * gamma) @ W_U``. Models whose logits come from a nonlinear
prediction head (BERT's masked-LM head) or that have no unembedding (sentence encoders) get
no logit effects, and the index says why.

References
----------
Bricken, T. et al. (2023). Towards monosemanticity: decomposing language models with
dictionary learning. Transformer Circuits Thread.
Templeton, A. et al. (2024). Scaling monosemanticity: extracting interpretable features from
Claude 3 Sonnet. Transformer Circuits Thread.
McDougall, C. (2024). SAE-Vis / SAEDashboard: feature-centric dashboards for sparse
autoencoders (interval samples, logit tables, activation histograms).
Lin, J. & Bloom, J. (2023). Neuronpedia: an open platform for interpretability research.
Duffield, N., Lund, C. & Thorup, M. (2007). Priority sampling for estimation of arbitrary
subset sums. Journal of the ACM 54(6).
Nanda, N. & Bloom, J. (2022). TransformerLens (weight folding: fold_ln, center_unembed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from whybox._validation import check_int, check_random_state
from whybox.errors import InvalidInputError, InvalidParameterError, UnsupportedModelError
from whybox.sae._feature_store import FeatureData, is_feature_folder

__all__ = ["FeatureData", "feature_data", "is_feature_folder"]

_INF = float("inf")


def _torch() -> Any:
    from whybox.internals.hooks import require_torch

    return require_torch("SAE feature data")


class _Stop(Exception):
    """Raised by the reading hook to end the forward pass once the site has been read."""


# --------------------------------------------------------------------------------------
# inputs and site


def sae_site(sae: Any, site: str | None) -> str:
    """``site``, else the hook name in the SAE's config; an error naming ``site=`` if neither."""
    name = site if site is not None else getattr(getattr(sae, "cfg", None), "hook_name", None)
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(
            "the SAE's config names no hook site (cfg.hook_name is None): pass site= the hook "
            "name it reads, e.g. site='blocks.3.resid_post'."
        )
    return name


def token_rows(inputs: Any, tokenizer: Any, context_size: int, *, per_text: bool = False) -> Any:
    """(token ids (n_seq, pos), mask (n_seq, pos) bool of real tokens) from the inputs.

    Accepted: a (n, pos) tensor, a 1-D token stream, a mapping with ``input_ids`` (and
    ``attention_mask``, whose zeros mark padding), or a list of texts. A stream -- and texts,
    unless ``per_text`` -- is cut into rows of ``context_size`` tokens (texts joined by the
    tokenizer's end-of-text token when it has one); the last incomplete row is dropped unless
    it is the only one. ``per_text`` gives one row per text, truncated to ``context_size`` and
    padded (what an encoder such as a sentence transformer sees).
    """
    torch = _torch()
    mask = None
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, Sequence) and inputs and all(isinstance(t, str) for t in inputs):
        if tokenizer is None:
            raise InvalidParameterError(
                "inputs are texts, so a tokenizer is needed: pass tokenizer= the model's "
                "tokenizer (or token ids instead of texts)."
            )
        if per_text:
            inputs = tokenizer(list(inputs), truncation=True, max_length=context_size,
                               padding=True, return_tensors="pt")  # fmt: skip
        else:
            eos = getattr(tokenizer, "eos_token_id", None)
            stream: list[int] = []
            for text in inputs:
                stream.extend(int(i) for i in _encode(tokenizer, text))
                if eos is not None:
                    stream.append(int(eos))
            inputs = torch.tensor(stream, dtype=torch.long)
    if isinstance(inputs, Mapping) and "input_ids" in inputs:
        mask = inputs.get("attention_mask")
        inputs = inputs["input_ids"]
    if isinstance(inputs, list | tuple) and inputs and not isinstance(inputs[0], str):
        try:
            inputs = torch.tensor(inputs, dtype=torch.long)
        except (TypeError, ValueError):
            raise InvalidInputError(
                "a list of token ids must be rectangular ints (one list per sequence, all "
                "the same length); pass a tensor, or texts with a tokenizer."
            ) from None
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, torch.Tensor) or inputs.dtype not in (torch.int64, torch.int32):
        raise InvalidInputError(
            "inputs must be integer token ids (a (n_seq, pos) tensor, a 1-D token stream or a "
            f"tokenizer's output) or a list of texts, got {type(inputs).__name__}"
            + (f" of dtype {inputs.dtype}" if hasattr(inputs, "dtype") else "")
            + "."
        )
    ids = inputs.long().cpu()
    if ids.ndim == 1:
        n = ids.numel()
        if n == 0:
            raise InvalidInputError("inputs hold no tokens: pass at least one token.")
        rows = max(n // context_size, 1)
        width = context_size if n >= context_size else n
        ids = ids[: rows * width].reshape(rows, width)
    if ids.ndim != 2 or ids.numel() == 0:
        raise InvalidInputError(
            f"token ids must have shape (n_seq, pos) with at least one token, got "
            f"{tuple(ids.shape)}."
        )
    mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    if tuple(mask.shape) != tuple(ids.shape):
        raise InvalidInputError(
            f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}: "
            "pass the mask the tokenizer returned with the ids."
        )
    return ids, mask.bool().cpu()


def _encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one text, without the tokenizer's too-long warning (it is cut later)."""
    try:
        return list(tokenizer(text, verbose=False)["input_ids"])
    except TypeError:  # a tokenizer without the verbose option
        return list(tokenizer(text)["input_ids"])


def site_activations(model: Any, point: Any, ids: Any, d_in: int, mask: Any = None) -> Any:
    """The activation at ``point`` for token ids (batch, pos) -> (batch, pos, d_in); the
    forward pass stops right after the site is read. ``mask`` is the attention mask."""
    from whybox.internals import hooks

    torch = _torch()
    box: dict[str, Any] = {}

    def read(t: Any) -> None:
        box["x"] = t.detach()
        raise _Stop

    kwargs = hooks.as_model_inputs(model, ids)
    kwargs["attention_mask"] = torch.ones_like(ids) if mask is None else mask.to(ids).long()
    try:
        with hooks.on_points(model, [(point, read)]), torch.no_grad():
            model(**kwargs)
    except _Stop:
        pass
    if "x" not in box:
        raise UnsupportedModelError(
            f"the forward pass never reached the site {point.name!r} (module {point.path!r})."
        )
    return flat_site(box["x"], d_in, point.name)


def flat_site(x: Any, d_in: int, name: str) -> Any:
    """``x`` as (..., d_in): a head-split view (..., heads, d_head) is flattened."""
    if x.shape[-1] != d_in and x.ndim >= 4 and x.shape[-1] * x.shape[-2] == d_in:
        x = x.reshape(*x.shape[:-2], d_in)
    if x.shape[-1] != d_in:
        raise InvalidParameterError(
            f"the SAE reads {d_in}-wide activations but the site {name!r} gives "
            f"{tuple(x.shape)}: pass the site the SAE was trained on (site=...)."
        )
    return x


# --------------------------------------------------------------------------------------
# the streaming pass


def _merge_rank(cells: Any, keys: Any) -> Any:
    """Rank of each entry within its cell by ascending key (ties: earlier entry first)."""
    torch = _torch()
    order = torch.argsort(keys, stable=True)
    order = order[torch.argsort(cells[order], stable=True)]
    c = cells[order]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - torch.searchsorted(c, c)
    return rank


def sparse_codes(sae: Any, x: Any) -> tuple[Any, Any]:
    """(values, indices), each (n, K), of the latents active on each row of ``x`` (n, d_in);
    ``sae.encode_sparse`` when the SAE has it, else the nonzeros of ``sae.encode`` (padded
    with value 0)."""
    torch = _torch()
    if hasattr(sae, "encode_sparse"):
        values, indices = sae.encode_sparse(x)
        return values.float().cpu(), indices.long().cpu()
    f = sae.encode(x).float().cpu()
    k = max(int((f > 0).sum(dim=1).max()) if len(f) else 0, 1)
    top = torch.topk(f, min(k, f.shape[1]), dim=1)
    return top.values, top.indices


class _Slots:
    """Per-cell slots keeping the ``width`` entries of smallest key: key, global token index,
    activation and the window of activations around it."""

    def __init__(self, n_cells: int, width: int, window: int) -> None:
        torch = _torch()
        self.width = width
        self.key = torch.full((n_cells, width), _INF, dtype=torch.float64)
        self.g = torch.full((n_cells, width), -1, dtype=torch.int64)
        self.val = torch.zeros(n_cells, width, dtype=torch.float32)
        self.acts = torch.zeros(n_cells, width, window, dtype=torch.float32)

    def _old(self, rows: Any, m: Any) -> tuple:
        r, c = rows[m // self.width], m % self.width
        return self.key[r, c], self.g[r, c], self.val[r, c], self.acts[r, c]

    def _place(self, rows: Any, cells: Any, keys: Any, fetch: Any) -> None:
        """Refill ``rows`` with the ``width`` smallest finite keys per cell among entries
        (cells, keys); ``fetch(m)`` gives the payloads of entries ``m``."""
        rank = _merge_rank(cells, keys)
        keep = ((rank < self.width) & _torch().isfinite(keys)).nonzero(as_tuple=True)[0]
        payload = fetch(keep)  # read before clearing: entries may be the old ones
        self.key[rows], self.g[rows], self.val[rows], self.acts[rows] = _INF, -1, 0, 0
        c, r = cells[keep], rank[keep]
        self.key[c, r], self.g[c, r], self.val[c, r], self.acts[c, r] = payload

    def insert(self, cells: Any, keys: Any, fetch_new: Any) -> None:
        """Offer new entries; ``fetch_new(i)`` -> (g, val, acts) of new entries ``i``."""
        torch = _torch()
        cand = (keys < self.key.max(dim=1).values[cells]).nonzero(as_tuple=True)[0]
        if len(cand) == 0:
            return
        rows = torch.unique(cells[cand])
        n_old = len(rows) * self.width
        all_cells = torch.cat([rows.repeat_interleave(self.width), cells[cand]])
        all_keys = torch.cat([self.key[rows].reshape(-1), keys[cand]])

        def fetch(m: Any) -> tuple:
            old = m < n_old
            out = [
                torch.empty(len(m), *t.shape[2:], dtype=t.dtype)
                for t in (self.key, self.g, self.val, self.acts)
            ]
            for o, v in zip(out, self._old(rows, m[old]), strict=True):
                o[old] = v
            new = cand[m[~old] - n_old]
            for o, v in zip(out, (keys[new], *fetch_new(new)), strict=True):
                o[~old] = v
            return tuple(out)

        self._place(rows, all_cells, all_keys, fetch)

    def merge(self, rows: Any, new_rows: Any) -> None:
        """Move each of ``rows`` into ``new_rows`` (several into one), keeping the smallest."""
        keys = self.key[rows].reshape(-1)
        cells = new_rows.repeat_interleave(self.width)
        self._place(rows, cells, keys, lambda m: self._old(rows, m))


class _Accumulator:
    """Running per-latent statistics over batches of sparse codes (batch, pos, K)."""

    def __init__(self, d_sae: int, n_top: int, n_bins: int, n_q: int, per_q: int, window: tuple,
                 cooccurrence: bool, max_pairs: int, rng: np.random.Generator) -> None:  # fmt: skip
        torch = _torch()
        self.d, self.n_top, self.n_bins, self.n_q = d_sae, n_top, n_bins, n_q
        self.left, self.right = window
        width = self.left + 1 + self.right
        self.rng, self.cooc, self.max_pairs = rng, cooccurrence, max_pairs
        self.count = torch.zeros(d_sae, dtype=torch.int64)
        self.total = torch.zeros(d_sae, dtype=torch.float64)
        self.max = torch.zeros(d_sae, dtype=torch.float32)
        self.exp = torch.full((d_sae,), -(2**30), dtype=torch.int64)  # unset
        self.hist = torch.zeros(d_sae, n_bins, dtype=torch.int64)
        self.qcount = torch.zeros(d_sae, n_q, dtype=torch.int64)
        self.top = _Slots(d_sae, n_top, width)  # key = -activation
        self.samples = _Slots(d_sae * n_q, per_q, width)  # key = random priority
        self.pair_keys = torch.zeros(0, dtype=torch.int64)
        self.pair_counts = torch.zeros(0, dtype=torch.int64)
        self.buffer: list[tuple[Any, Any]] = []
        self.buffered = 0
        self.pruned = False
        self.n_tokens = 0

    def update(self, values: Any, indices: Any, first_row: int, counted: Any) -> None:
        """Add a batch: ``values``, ``indices`` (batch, pos, K) of its active latents;
        ``counted`` (batch, pos) bool marks the tokens that count (not padding, not ignored)."""
        torch = _torch()
        B, T, K = values.shape
        D = self.d
        self.n_tokens += int(counted.sum())
        values = values * counted[:, :, None]
        flat_v, flat_i = values.reshape(-1), indices.reshape(-1)
        on = (flat_v > 0).nonzero(as_tuple=True)[0]
        sorted_keys, order = torch.sort((on // K) * D + flat_i[on])  # (token, latent) order
        on = on[order]
        tok, lat, val = on // K, flat_i[on], flat_v[on]
        self.count += torch.bincount(lat, minlength=D)
        self.total.index_add_(0, lat, val.double())
        batch_max = torch.zeros(D, dtype=torch.float32).scatter_reduce_(0, lat, val, "amax")
        self._grow(batch_max)
        self.max = torch.maximum(self.max, batch_max)
        scale = torch.ldexp(torch.ones(len(lat), dtype=torch.float64), -self.exp[lat])
        a = val.double() * scale  # in [0, 1): where inside the latent's range
        bins = (a * self.n_bins).floor().long()
        self.hist.view(-1).index_add_(0, lat * self.n_bins + bins, torch.ones_like(bins))
        cells = lat * self.n_q + (a * self.n_q).floor().long()
        self.qcount.view(-1).index_add_(0, cells, torch.ones_like(cells))
        g = first_row * T + tok

        def fetch(i: Any) -> tuple:
            return g[i], val[i], self._windows(sorted_keys, val, tok[i], lat[i], T)

        self.top.insert(lat, -val.double(), fetch)
        self.samples.insert(cells, torch.from_numpy(self.rng.random(len(val))), fetch)
        if self.cooc:
            self._pairs(values.reshape(B * T, K), indices.reshape(B * T, K))

    def _windows(self, keys: Any, val: Any, tok: Any, lat: Any, T: int) -> Any:
        """Activations of latent ``lat[m]`` on the tokens around batch token ``tok[m]`` ->
        (m, window), zero outside its sequence; looked up among the batch's active entries
        (``keys = token * d_sae + latent``, sorted, with values ``val``)."""
        torch = _torch()
        shift = torch.arange(-self.left, self.right + 1)[None, :]
        pos = (tok % T)[:, None] + shift
        query = (tok[:, None] + shift) * self.d + lat[:, None]
        at = torch.searchsorted(keys, query).clamp(max=max(len(keys) - 1, 0))
        hit = (keys[at] == query) & (pos >= 0) & (pos < T)
        return torch.where(hit, val[at], torch.zeros((), dtype=val.dtype))

    def _grow(self, batch_max: Any) -> None:
        """Double the range of latents whose new maximum does not fit; merge their bins."""
        torch = _torch()
        fired = batch_max > 0
        need = torch.frexp(batch_max.double())[1].long()  # max < 2**need, minimal
        unset = self.exp < -(2**29)
        new = torch.where(fired, torch.maximum(self.exp, need), self.exp)
        new = torch.where(fired & unset, need, new)
        shift = torch.where(unset, torch.zeros_like(new), new - self.exp).clamp(max=62)
        self.exp = new
        grown = (shift > 0).nonzero(as_tuple=True)[0]
        if len(grown) == 0:
            return
        s = shift[grown][:, None]
        for name, n in (("hist", self.n_bins), ("qcount", self.n_q)):
            old = getattr(self, name)[grown]
            idx = torch.arange(n)[None, :] >> s
            getattr(self, name)[grown] = torch.zeros_like(old).scatter_add_(1, idx, old)
        q = torch.arange(self.n_q)[None, :]
        rows = (grown[:, None] * self.n_q + q).reshape(-1)
        self.samples.merge(rows, (grown[:, None] * self.n_q + (q >> s)).reshape(-1))

    def _pairs(self, values: Any, indices: Any) -> None:
        """Count each pair a < b of latents active on the same token."""
        torch = _torch()
        K = values.shape[1]
        step = max(1, (1 << 22) // (K * K))
        for s in range(0, values.shape[0], step):
            v, i = values[s : s + step] > 0, indices[s : s + step]
            both = v[:, :, None] & v[:, None, :] & (i[:, :, None] < i[:, None, :])
            a = i[:, :, None].expand(-1, -1, K)[both]
            b = i[:, None, :].expand(-1, K, -1)[both]
            if len(a):
                keys, counts = torch.unique(a * self.d + b, return_counts=True)
                self.buffer.append((keys, counts))
                self.buffered += len(keys)
        if self.buffered > max(len(self.pair_keys), 1 << 22):
            self._consolidate()

    def _consolidate(self) -> None:
        torch = _torch()
        if not self.buffer:
            return
        keys = torch.cat([self.pair_keys, *(k for k, _ in self.buffer)])
        counts = torch.cat([self.pair_counts, *(c for _, c in self.buffer)])
        self.buffer, self.buffered = [], 0
        self.pair_keys, inverse = torch.unique(keys, return_inverse=True)
        self.pair_counts = torch.zeros(len(self.pair_keys), dtype=torch.int64).index_add_(
            0, inverse, counts
        )
        if 2 * len(self.pair_keys) > self.max_pairs:  # keep the most frequent pairs
            n = self.max_pairs // 2
            keep = torch.topk(self.pair_counts, n).indices.sort().values
            self.pair_keys, self.pair_counts = self.pair_keys[keep], self.pair_counts[keep]
            self.pruned = True

    def finish(self, ids: Any, real: Any) -> dict[str, np.ndarray]:
        """The arrays; ``real`` (n_seq, pos) marks real tokens (padding shows as -1)."""
        torch = _torch()
        D, T, n_q = self.d, ids.shape[1], self.n_q
        tokens = np.where(real.numpy(), ids.numpy(), -1).astype(np.int32).reshape(-1)
        flat = np.concatenate([tokens, np.array([-1], dtype=np.int32)])
        off = np.arange(-self.left, self.right + 1)

        def window_tokens(g: np.ndarray) -> np.ndarray:
            pos = (g % T)[..., None] + off
            idx = (g - g % T)[..., None] + pos
            ok = (g[..., None] >= 0) & (pos >= 0) & (pos < T)
            return flat[np.where(ok, idx, len(flat) - 1)]

        top_g = self.top.g.numpy()
        q_g = self.samples.g.reshape(D, n_q, -1).numpy()
        out = {
            "n_firing": self.count.numpy(),
            "density": self.count.double().numpy() / max(self.n_tokens, 1),
            "mean_activation": (self.total / self.count.clamp(min=1)).float().numpy(),
            "max_activation": self.max.numpy(),
            "range_exponent": torch.where(self.count > 0, self.exp, 0).int().numpy(),
            "hist_counts": self.hist.numpy(),
            "interval_counts": self.qcount.numpy(),
            "top_values": self.top.val.numpy(),
            "top_seq": np.where(top_g >= 0, top_g // T, -1).astype(np.int32),
            "top_pos": np.where(top_g >= 0, top_g % T, -1).astype(np.int32),
            "top_tokens": window_tokens(top_g),
            "top_acts": self.top.acts.numpy(),
            "interval_values": self.samples.val.reshape(D, n_q, -1).numpy(),
            "interval_seq": np.where(q_g >= 0, q_g // T, -1).astype(np.int32),
            "interval_pos": np.where(q_g >= 0, q_g % T, -1).astype(np.int32),
            "interval_tokens": window_tokens(q_g),
            "interval_acts": self.samples.acts.reshape(
                D, n_q, *self.samples.acts.shape[1:]
            ).numpy(),
        }
        if self.cooc:
            self._consolidate()
            a, b = self.pair_keys // D, self.pair_keys % D
            rows, cols = torch.cat([a, b]), torch.cat([b, a])  # both triangles
            counts = torch.cat([self.pair_counts, self.pair_counts])
            order = torch.argsort(rows * D + cols)
            out["cooc_indptr"] = np.concatenate(
                [[0], np.cumsum(np.bincount(rows.numpy(), minlength=D))]
            )
            out["cooc_indices"] = cols[order].int().numpy()
            out["cooc_counts"] = counts[order].numpy()
        return out


# --------------------------------------------------------------------------------------
# weight-based data: logit effects, nearest latents


def _norm_gain(norm: Any, d_model: int) -> tuple[Any, bool]:
    """(gain (d_model,), centres) of a final norm module; ones and False for none."""
    torch = _torch()
    if norm is None:
        return torch.ones(d_model), False
    name = type(norm).__name__.lower()
    weight = getattr(norm, "weight", None)
    gain = torch.ones(d_model) if weight is None else weight.detach().float().cpu()
    if "gemma" in name and "rms" in name:
        gain = 1.0 + gain
    centres = isinstance(norm, torch.nn.LayerNorm) or ("layernorm" in name and "rms" not in name)
    return gain, centres


def logit_effects(sae: Any, anatomy: Any) -> tuple[Any, str | None]:
    """The direct logit effect of every latent's decoder direction (d_sae, vocab), or
    (None, why) for a model without a linear path from the residual stream to the logits.

    See the module's *Logit effects convention*.
    """
    if anatomy.unembed is None:
        return None, (
            f"{type(anatomy.model).__name__} has no unembedding: logit effects skipped (load "
            "the model with its language-model head to get them)."
        )
    if anatomy.head_path is not None:
        return None, (
            f"the logits of {type(anatomy.model).__name__} come from a nonlinear prediction "
            f"head ({anatomy.head_path!r}): no direct linear logit effect, skipped."
        )
    W_U = anatomy.W_U().detach().float().cpu()
    W_dec = sae.W_dec.detach().float().cpu()
    if W_dec.shape[1] != W_U.shape[0]:
        return None, (
            f"the decoder writes {W_dec.shape[1]}-wide vectors, not the {W_U.shape[0]}-wide "
            "residual stream the unembedding reads: logit effects skipped."
        )
    gain, centres = _norm_gain(anatomy.final_norm, W_U.shape[0])

    def block(rows: Any) -> Any:
        d = W_dec[rows]
        if centres:
            d = d - d.mean(dim=1, keepdim=True)
        eff = (d * gain) @ W_U
        return eff - eff.mean(dim=1, keepdim=True)

    return block, None


def _blocks(n: int, size: int) -> list[Any]:
    torch = _torch()
    return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]


def _top_logits(block: Any, d_sae: int, n: int, size: int) -> dict[str, np.ndarray]:
    torch = _torch()
    parts: dict[str, list[Any]] = {k: [] for k in ("pos_ids", "pos_vals", "neg_ids", "neg_vals")}
    for rows in _blocks(d_sae, size):
        eff = block(rows)
        k = min(n, eff.shape[1])
        hi, lo = torch.topk(eff, k, dim=1), torch.topk(-eff, k, dim=1)
        parts["pos_ids"].append(hi.indices.int())
        parts["pos_vals"].append(hi.values)
        parts["neg_ids"].append(lo.indices.int())
        parts["neg_vals"].append(-lo.values)
    return {f"logit_{k}": torch.cat(v).numpy() for k, v in parts.items()}


def nearest_features(W_dec: Any, n: int, *, block_size: int = 1024) -> tuple[Any, Any]:
    """The ``n`` latents with the largest decoder cosine to each latent (itself excluded),
    computed ``block_size`` rows at a time -> (ids (d_sae, n) int32, cosines (d_sae, n))."""
    torch = _torch()
    W = W_dec.detach().float().cpu()
    W = W / torch.linalg.vector_norm(W, dim=1, keepdim=True).clamp_min(1e-12)
    d_sae = W.shape[0]
    n = min(n, d_sae - 1)
    ids, cos = [], []
    for rows in _blocks(d_sae, block_size):
        sims = W[rows] @ W.T
        sims[torch.arange(len(rows)), rows] = -_INF
        top = torch.topk(sims, n, dim=1)
        ids.append(top.indices.int())
        cos.append(top.values)
    return torch.cat(ids).numpy(), torch.cat(cos).numpy()


def _vocab_strings(tokenizer: Any, vocab_size: int | None) -> list[str] | None:
    if tokenizer is None or not vocab_size:
        return None
    try:
        return [str(s) for s in tokenizer.batch_decode([[i] for i in range(int(vocab_size))])]
    except Exception:  # a tokenizer without batch_decode: its token strings
        return [str(s) for s in tokenizer.convert_ids_to_tokens(list(range(int(vocab_size))))]


# --------------------------------------------------------------------------------------
# the public function


def feature_data(
    sae: Any,
    model: Any,
    inputs: Any,
    *,
    tokenizer: Any = None,
    site: str | None = None,
    context_size: int = 128,
    per_text: bool | None = None,
    ignore_tokens: Sequence[int] = (),
    n_top: int = 20,
    n_quantiles: int = 10,
    examples_per_quantile: int = 5,
    context_window: tuple[int, int] = (8, 4),
    n_bins: int = 40,
    n_logits: int = 10,
    n_nearest: int = 10,
    cooccurrence: bool = True,
    max_pairs: int = 4_000_000,
    batch_size: int | None = None,
    anatomy: Any = None,
    random_state: Any = 0,
    progress: Callable[[int, int], Any] | None = None,
) -> FeatureData:
    """Feature-page data for every latent of ``sae``, from one pass over ``inputs``.

    Parameters
    ----------
    sae : whybox SAE
        Anything with ``encode(x (n, d_in)) -> (n, d_sae)`` and ``W_dec (d_sae, d_out)``.
    model : torch.nn.Module
        The model whose activations the SAE reads (any model
        :class:`~whybox.internals.anatomy.Anatomy` understands).
    inputs : LongTensor (n_seq, pos), 1-D token stream, tokenizer output, or list of str
        A stream is cut into rows of ``context_size`` tokens; texts too (joined by the
        tokenizer's end-of-text token), or one padded row per text with ``per_text``. The
        zeros of an ``attention_mask`` mark padding: never counted, shown as token -1.
    tokenizer : tokenizer, optional
        Needed for texts; also gives the token strings stored with the data.
    site : str, optional
        Hook name the SAE reads (default ``sae.cfg.hook_name``).
    context_size : int, default 128
        Row length of a packed token stream (and the truncation of texts).
    per_text : bool, optional
        One row per text (default for encoders, ``Anatomy.is_causal`` False) or a packed
        stream (default for causal models).
    ignore_tokens : sequence of int, default ()
        Token ids whose positions are not counted (BOS, padding, separators): they never
        enter densities, histograms or top contexts, but still show in context windows.
    n_top : int, default 20
        Top-activating contexts kept per latent.
    n_quantiles, examples_per_quantile : int, default 10 and 5
        Equal-width activation intervals per latent, and how many contexts are sampled
        uniformly at random from each (see the module's notes on the ranges).
    context_window : (left, right), default (8, 4)
        Tokens kept before and after the activating token.
    n_bins : int, default 40
        Histogram bins over the latent's range.
    n_logits, n_nearest : int, default 10
        Promoted / suppressed tokens and nearest latents kept per latent.
    cooccurrence : bool, default True
        Count co-firing pairs (a sparse matrix of at most ``max_pairs`` pairs; beyond that
        the rarest pairs are dropped and the index says so).
    max_pairs : int, default 4000000
        Most co-firing pairs kept.
    batch_size : int, optional
        Sequences per forward pass (default: about 2**24 activation values per batch).
    anatomy : Anatomy, optional
        Built with ``Anatomy.of(model)`` when None.
    random_state : int or Generator, default 0
        Seeds the interval samples; the result does not depend on ``batch_size``.
    progress : callable, optional
        ``progress(sequences_done, n_sequences)`` after each batch (nothing is printed).

    Returns
    -------
    FeatureData

    Raises
    ------
    InvalidParameterError
        A count below its minimum (``n_top``, ``n_quantiles``, ``context_size``,
        ``max_pairs``, ...), a malformed ``context_window``, a site the model lacks.
    InvalidInputError
        Texts without a tokenizer, or token ids of a wrong type or shape.

    Examples
    --------
    >>> sae, model, tok, _, _ = wb.sae.demo_sae()
    >>> texts = wb.zoo.tiny_lm_corpus("test")[:1]
    >>> data = wb.sae.feature_data(sae, model, texts, tokenizer=tok, context_size=64, n_top=5)
    >>> len(data), data.array("top_values").shape       # every latent, its n_top contexts
    (1024, (1024, 5))
    >>> bool(np.isclose(data.array("density").mean() * len(data), 16))   # mean L0 = k
    True

    References
    ----------
    Bricken, T. et al. (2023). Towards Monosemanticity: Decomposing Language Models With
    Dictionary Learning. Transformer Circuits Thread (feature pages: top activations,
    activation intervals, logit effects).
    """
    torch = _torch()
    from whybox.internals.anatomy import Anatomy

    n_top = check_int("n_top", n_top, minimum=1)
    n_q = check_int("n_quantiles", n_quantiles, minimum=1)
    per_q = check_int("examples_per_quantile", examples_per_quantile, minimum=1)
    n_bins = check_int("n_bins", n_bins, minimum=1, maximum=1 << 20)
    n_logits = check_int("n_logits", n_logits, minimum=0)
    n_nearest = check_int("n_nearest", n_nearest, minimum=0)
    context_size = check_int("context_size", context_size, minimum=1)
    max_pairs = check_int("max_pairs", max_pairs, minimum=1)
    if (
        not isinstance(context_window, Sequence)
        or len(context_window) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in context_window)
    ):
        raise InvalidParameterError(
            f"context_window must be (left, right), two non-negative ints, got {context_window!r}."
        )
    rng = check_random_state(random_state)
    anat = Anatomy.for_model(model, anatomy)
    name = sae_site(sae, site)
    point = anat.point(name)
    d_in, d_sae = int(sae.W_enc.shape[0]), int(sae.W_dec.shape[0])
    if per_text is None:
        per_text = not anat.is_causal
    ids, real = token_rows(inputs, tokenizer, context_size, per_text=bool(per_text))
    counted = real.clone()
    if ignore_tokens:
        try:
            ignored = torch.as_tensor([int(t) for t in ignore_tokens], dtype=torch.long)
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"ignore_tokens must be token ids (ints), got {ignore_tokens!r}."
            ) from None
        counted &= ~torch.isin(ids, ignored)
    if anat.vocab_size is not None and int(ids.max()) >= int(anat.vocab_size):
        raise InvalidInputError(
            f"inputs hold token id {int(ids.max())}, but the model's vocabulary has "
            f"{anat.vocab_size} tokens: use the model's own tokenizer."
        )
    T = ids.shape[1]
    if batch_size is None:
        batch_size = max(1, (1 << 24) // (T * d_sae))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    from whybox.internals.hooks import model_device

    device = model_device(model)
    dtype, sae_device = sae.W_enc.dtype, sae.W_enc.device
    acc = _Accumulator(d_sae, n_top, n_bins, n_q, per_q, tuple(context_window), bool(cooccurrence),
                       max_pairs, rng)  # fmt: skip
    with torch.no_grad():
        for b0 in range(0, ids.shape[0], batch_size):
            rows = ids[b0 : b0 + batch_size]
            mask = real[b0 : b0 + batch_size].to(device)
            x = site_activations(model, point, rows.to(device), d_in, mask)
            if not torch.isfinite(x).all():
                raise InvalidInputError(
                    f"the model's activations at {name!r} hold NaN or inf in sequences {b0} "
                    f"to {b0 + len(rows) - 1}: check the model and its inputs there."
                )
            values, indices = sparse_codes(sae, x.reshape(-1, d_in).to(sae_device, dtype))
            B = len(rows)
            shape = (B, T, values.shape[-1])
            acc.update(values.reshape(shape), indices.reshape(shape), b0, counted[b0 : b0 + B])
            if progress is not None:
                progress(b0 + B, int(ids.shape[0]))
    arrays = acc.finish(ids, real)
    notes: list[str] = []
    if acc.pruned:
        notes.append(
            f"co-occurrence kept the {max_pairs} most frequent pairs: rarer pairs are missing "
            "and the kept counts are lower bounds."
        )
    if n_logits:
        block, why = logit_effects(sae, anat)
        if block is None:
            notes.append(str(why))
        else:
            arrays.update(_top_logits(block, d_sae, n_logits, 1024))
    if n_nearest and d_sae > 1:
        arrays["nearest_ids"], arrays["nearest_cos"] = nearest_features(sae.W_dec, n_nearest)
    cfg = getattr(sae, "cfg", None)
    meta = {
        "d_sae": d_sae,
        "d_in": d_in,
        "site": name,
        "architecture": getattr(cfg, "architecture", None),
        "model": getattr(getattr(model, "config", None), "_name_or_path", None)
        or type(model).__name__,
        "n_tokens": int(acc.n_tokens),
        "n_sequences": int(ids.shape[0]),
        "context_size": int(T),
        "per_text": bool(per_text),
        "ignore_tokens": [int(t) for t in ignore_tokens],
        "context_window": [int(v) for v in context_window],
        "n_top": n_top,
        "n_quantiles": n_q,
        "examples_per_quantile": per_q,
        "n_bins": n_bins,
        "has_logits": "logit_pos_ids" in arrays,
        "has_cooccurrence": bool(cooccurrence),
        "cooccurrence_pruned": bool(acc.pruned),
        "notes": notes,
    }
    vocab = _vocab_strings(tokenizer, anat.vocab_size)
    return FeatureData(meta, arrays, vocab=vocab)
