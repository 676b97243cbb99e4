"""The shared protocol of activation sources: batches, shuffling seeds, resumable state.

See :mod:`whybox.sae.activations` for the sources themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
)
from whybox.internals.hooks import require_torch

__all__ = ["ActivationBatch", "ActivationSource"]

_SEED_MIX = 1_000_003


class ActivationBatch(NamedTuple):
    """One training batch: inputs ``x`` (n, d_in), transcoder targets ``y`` (n, d_out) or
    None, and each row's token ``index`` (n,) in the epoch's token stream."""

    x: Any
    y: Any
    index: Any


def _generator(random_state: int, *keys: int) -> Any:
    torch = require_torch()
    seed = int(random_state)
    for k in keys:
        seed = (seed * _SEED_MIX + int(k) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def _dtype(dtype: Any, torch: Any) -> Any:
    if dtype is None:
        return None
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if isinstance(resolved, torch.dtype):
            dtype = resolved
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidParameterError(
            f"dtype must be a floating torch dtype or its name ('float32', 'float16', "
            f"'bfloat16'), got {dtype!r}."
        )
    return dtype


def _bad_row(t: Any) -> int | None:
    """Index of the first row of ``t`` (n, d) holding a NaN or an infinity, or None.

    One sum first (cheap); only when it is not finite (a NaN, an inf, or an overflow of the
    sum) are the entries checked one by one."""
    torch = require_torch()
    if bool(torch.isfinite(t.sum(dtype=torch.float32))):
        return None
    bad = torch.nonzero(~torch.isfinite(t).all(dim=1))
    return int(bad[0, 0]) if bad.numel() else None


class ActivationSource:
    """Base of the activation sources: the iteration protocol, resume and the batch size.

    Subclasses implement ``_epoch()`` (a generator of batches from the current position,
    updating the state before each yield), ``_state()`` / ``_load_state(state)``.
    """

    site: str
    site_out: str | None
    d_in: int
    d_out: int | None
    batch_size: int
    device: Any

    def __init__(self, *, batch_size: int, random_state: int, drop_last: bool) -> None:
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.random_state = check_int("random_state", random_state, minimum=0)
        if not isinstance(drop_last, bool):
            raise InvalidParameterError(f"drop_last must be True or False, got {drop_last!r}.")
        self.drop_last = drop_last
        self.tokens_seen = 0
        self.epoch = 0
        self.peak_buffer_nbytes = 0
        self._left: ActivationBatch | None = None  # rows drawn by next_batch, not yet served
        self._stream_it: Iterator[ActivationBatch] | None = None
        self._empty_epochs = 0

    # -- protocol --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ActivationBatch]:
        """Batches from the current position to the end of the current epoch."""
        for batch in self._epoch():
            n = int(batch.x.shape[0])
            if self.drop_last and n < self.batch_size:
                continue
            self.tokens_seen += n
            yield batch
        self.epoch += 1
        self._reset_epoch()

    def batches(self, total_tokens: int | None = None) -> Iterator[ActivationBatch]:
        """Batches over as many epochs as needed until ``tokens_seen >= total_tokens``
        (one epoch when None)."""
        if total_tokens is None:
            yield from self
            return
        total_tokens = check_int("total_tokens", total_tokens, minimum=1)
        while self.tokens_seen < total_tokens:
            before = self.tokens_seen
            for batch in self:
                yield batch
                if self.tokens_seen >= total_tokens:
                    return
            if self.tokens_seen == before:
                raise InvalidInputError(
                    f"the activation source ran out of tokens after {self.tokens_seen} of the "
                    f"{total_tokens} asked for: its data gave no token in epoch {self.epoch}. "
                    "Pass re-iterable tokens (a list or a tensor, not a generator) to repeat "
                    "epochs, or ask for fewer total_tokens."
                )

    def next_batch(self, batch_size: int | None = None) -> Any:
        """Exactly ``batch_size`` rows (default ``self.batch_size``), epochs rolling over:
        ``x`` (n, d_in), or ``(x, y)`` with ``site_out`` (what :mod:`whybox.sae.training`
        draws). Rows already served by iteration are not served again."""
        torch = require_torch()
        n = (
            self.batch_size
            if batch_size is None
            else check_int("batch_size", batch_size, minimum=1)
        )
        parts = [self._left] if self._left is not None else []
        have = 0 if self._left is None else int(self._left.x.shape[0])
        while have < n:
            if self._stream_it is None:
                self._stream_it = iter(self)
            batch = next(self._stream_it, None)
            if batch is None:  # the end of an epoch
                self._stream_it = None
                if self._empty_epochs > 0:  # and the one before it ended with nothing since
                    raise InvalidInputError(
                        f"the activation source gave no tokens in epoch {self.epoch} (after "
                        f"{self.tokens_seen} in all). Pass re-iterable tokens (a list or a "
                        "tensor, not a generator) to repeat epochs."
                    )
                self._empty_epochs += 1
                continue
            self._empty_epochs = 0
            parts.append(batch)
            have += int(batch.x.shape[0])
        cat = [None if parts[0][j] is None else torch.cat([p[j] for p in parts]) for j in range(3)]
        self._left = (
            ActivationBatch(*(None if t is None else t[n:] for t in cat)) if have > n else None
        )
        out = ActivationBatch(*(None if t is None else t[:n] for t in cat))
        return out.x if out.y is None else (out.x, out.y)

    def state_dict(self) -> dict[str, Any]:
        """The position in the stream (and the buffer's contents, for a model source): what
        :meth:`load_state_dict` needs to go on with the next batch."""
        state = {
            "kind": type(self).__name__,
            "site": self.site,
            "site_out": self.site_out,
            "d_in": self.d_in,
            "d_out": self.d_out,
            "batch_size": self.batch_size,
            "random_state": self.random_state,
            "tokens_seen": self.tokens_seen,
            "epoch": self.epoch,
            "left": None
            if self._left is None
            else tuple(None if t is None else t.cpu() for t in self._left),
        }
        state.update(self._state())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from a :meth:`state_dict` of a source built with the same arguments.

        Raises
        ------
        InvalidParameterError
            If the state was taken from a source of another kind, site, width, batch size
            or random state.
        """
        if not isinstance(state, Mapping):
            raise InvalidParameterError(
                f"load_state_dict takes the dict returned by state_dict(), got "
                f"{type(state).__name__}."
            )
        mine = {
            "kind": type(self).__name__,
            "site": self.site,
            "site_out": self.site_out,
            "d_in": self.d_in,
            "d_out": self.d_out,
            "batch_size": self.batch_size,
            "random_state": self.random_state,
        }
        diff = [f"{k}: {state.get(k)!r} (here {v!r})" for k, v in mine.items() if state.get(k) != v]
        diff += self._state_mismatch(state)
        if diff:
            raise InvalidParameterError(
                "this activation state comes from a source with other settings -- "
                + "; ".join(diff)
                + ". Resume with a source built with the same arguments as the one saved."
            )
        self.tokens_seen = int(state["tokens_seen"])
        self.epoch = int(state["epoch"])
        left = state.get("left")
        self._left = (
            None
            if left is None
            else ActivationBatch(*(None if t is None else t.to(self.device) for t in left))
        )
        self._stream_it = None
        self._load_state(state)

    # -- to implement ----------------------------------------------------------------------
    def _epoch(self) -> Iterator[ActivationBatch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset_epoch(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_mismatch(self, state: Mapping[str, Any]) -> list[str]:
        return []

    def _load_state(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def buffer_nbytes(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _note_peak(self, nbytes: int) -> None:
        self.peak_buffer_nbytes = max(self.peak_buffer_nbytes, int(nbytes))


# ============================================================================ model ====
