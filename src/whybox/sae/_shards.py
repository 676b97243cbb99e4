"""Stored activation shards for SAE training: ``run_with_cache`` offload folders and
safetensors files, memory-mapped and shuffled in bounded chunks.

See :mod:`whybox.sae.activations` (``ShardActivations`` is exported there).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from whybox._validation import check_int
from whybox.errors import (
    InvalidInputError,
    InvalidParameterError,
)
from whybox.internals.hooks import require_torch
from whybox.sae._source import (
    ActivationBatch,
    ActivationSource,
    _bad_row,
    _dtype,
    _generator,
)

# =========================================================================== shards ====
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<i2"}


class _Array:
    """Rows ``[a, b)`` of one stored activation, memory-mapped: a ``.npy`` file of a
    ``run_with_cache`` offload folder, or one tensor of a safetensors file."""

    def __init__(self, file: Path, shape: tuple[int, ...], mm: Any, bf16: bool) -> None:
        self.file, self.bf16 = file, bf16
        if len(shape) < 2:
            raise InvalidInputError(
                f"{str(file)!r} holds an array of shape {shape}: activations must be (n_tokens, "
                "d) or (batch, pos, ...)."
            )
        self.n = shape[0] if len(shape) == 2 else shape[0] * shape[1]
        self.d = shape[1] if len(shape) == 2 else math.prod(shape[2:])
        self.mm = mm.reshape(self.n, self.d)

    def rows(self, a: int, b: int) -> Any:
        import numpy as np

        torch = require_torch()
        t = torch.from_numpy(np.array(self.mm[a:b]))
        return t.view(torch.bfloat16) if self.bf16 else t


def _open_npy_folder(folder: Path) -> dict[str, _Array]:
    import numpy as np

    try:
        index = json.loads((folder / "index.json").read_text())
        out = {}
        for entry in index["arrays"]:
            if entry["kind"] != "act":
                continue
            mm = np.load(folder / entry["file"], mmap_mode="r")
            out[entry["name"]] = _Array(
                folder / entry["file"], mm.shape, mm, entry["dtype"] == "bfloat16"
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"{str(folder)!r} is not a run_with_cache offload folder ({type(exc).__name__}: "
            f"{exc}); it needs the index.json and .npy files run_with_cache(..., "
            "offload_dir=...) writes."
        ) from exc
    return out


def _open_safetensors(file: Path) -> dict[str, _Array]:
    import numpy as np

    try:
        with open(file, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in _ST_DTYPES:
                raise ValueError(f"tensor {name!r} has dtype {info['dtype']}, not a float")
            shape = tuple(info["shape"])
            start = 8 + n + info["data_offsets"][0]
            mm = np.memmap(
                file, dtype=_ST_DTYPES[info["dtype"]], mode="r", offset=start, shape=shape
            )
            key = name.removeprefix("act/")
            if not name.startswith("grad/"):
                out[key] = _Array(file, shape, mm, info["dtype"] == "BF16")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"{str(file)!r} could not be read as a safetensors file of activations "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    return out


def _find_shards(paths: Any) -> list[dict[str, _Array]]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    shards: list[dict[str, _Array]] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and (path / "index.json").exists():
            shards.append(_open_npy_folder(path))
        elif path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if (p.is_dir() and (p / "index.json").exists()) or p.suffix == ".safetensors"
            )  # fmt: skip
            if not found:
                raise InvalidInputError(
                    f"{str(path)!r} holds no activation shards: no index.json (a "
                    "run_with_cache offload folder), no sub-folder with one and no "
                    ".safetensors file."
                )
            shards.extend(_find_shards(found))
        elif path.is_file() and path.suffix == ".safetensors":
            shards.append(_open_safetensors(path))
        else:
            raise InvalidInputError(
                f"{str(path)!r} is neither a folder of activation shards nor a .safetensors "
                "file. Pass the offload_dir of run_with_cache, a folder of safetensors files, "
                "or their paths."
            )
    return shards


class ShardActivations(ActivationSource):
    """Stored activations (memory-mapped) served in shuffled batches for SAE training.

    Parameters
    ----------
    path : path-like or sequence of path-likes
        A folder written by ``run_with_cache(..., offload_dir=...)`` (``index.json`` and
        ``.npy`` files), a folder holding several such folders and/or ``.safetensors``
        files, or safetensors files (one tensor per site, named by the site, or
        ``"act/<site>"`` as ``ActivationCache.save`` writes). Arrays are ``(n_tokens, d)`` or
        ``(batch, pos, ...)`` (flattened to ``(batch * pos, prod(...))``). Shards are
        concatenated in the order given (sorted within a folder).
    site : str, optional
        The stored name read; optional when every shard holds one tensor.
    site_out : str, optional
        The transcoder's target, row-aligned with ``site`` in every shard.
    batch_size : int, default 4096
        Rows per batch.
    buffer_tokens : int, default 65536
        At most this many rows in memory (two groups of ``buffer_tokens / 2``).
    buffer_bytes : int, optional
        The same bound in bytes.
    chunk_tokens : int, optional
        Rows read contiguously (default ``buffer_tokens / 16``); groups are made of randomly
        chosen chunks, so smaller chunks mix more and read less sequentially.
    device : str or torch.device, default "cpu"
        Where the batches are put.
    dtype : torch dtype or str, optional
        Cast the batches (default: the stored dtype).
    random_state : int, default 0
        Seeds the chunk order and the shuffle.
    drop_last : bool, default False
        Drop a last batch smaller than ``batch_size``.

    Raises
    ------
    InvalidInputError
        Unreadable or inconsistent shards; non-finite activations (shard file and token).
    InvalidParameterError
        A site not stored (the message lists those stored).

    Examples
    --------
    >>> import os, tempfile
    >>> model, tok = wb.zoo.tiny_lm()
    >>> ids = tok("The for statement is used to iterate", return_tensors="pt").input_ids
    >>> _, cache = wb.run_with_cache(model, ids, names="blocks.2.resid_post")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = cache.save(os.path.join(folder, "acts.safetensors"))  # one shard
    ...     shards = wb.sae.ShardActivations(folder, batch_size=4)
    ...     print(tuple(shards.next_batch().shape))                      # (batch, d_model)
    (4, 128)

    References
    ----------
    Bloom, J., Tigges, C. & Chanin, D. (2024). SAELens (cached activations for SAE training).
    """

    def __init__(
        self,
        path: Any,
        site: str | None = None,
        *,
        site_out: str | None = None,
        batch_size: int = 4096,
        buffer_tokens: int | None = None,
        buffer_bytes: int | None = None,
        chunk_tokens: int | None = None,
        device: Any = "cpu",
        dtype: Any = None,
        random_state: int = 0,
        drop_last: bool = False,
    ) -> None:
        torch = require_torch("ShardActivations")
        super().__init__(batch_size=batch_size, random_state=random_state, drop_last=drop_last)
        self._shards = _find_shards(path)
        names = sorted(set().union(*(s.keys() for s in self._shards)))
        if site is None:
            if len(names) != 1:
                raise InvalidParameterError(
                    f"the shards hold {len(names)} sites ({', '.join(map(repr, names))}): pass "
                    "site=... to choose one."
                )
            site = names[0]
        for name in (site, site_out):
            missing = [i for i, s in enumerate(self._shards) if name is not None and name not in s]
            if missing:
                raise InvalidParameterError(
                    f"site {name!r} is not stored in shard {missing[0]} (of "
                    f"{len(self._shards)}). Stored sites: {', '.join(map(repr, names))}."
                )
        self.site, self.site_out = site, site_out
        self._x = [s[site] for s in self._shards]
        self._y = [s[site_out] for s in self._shards] if site_out is not None else None
        self.d_in = self._x[0].d
        self.d_out = self._y[0].d if self._y is not None else None
        for i, a in enumerate(self._x):
            if a.d != self.d_in or (
                self._y is not None and (self._y[i].d != self.d_out or self._y[i].n != a.n)
            ):
                raise InvalidInputError(
                    f"shard {i} ({str(a.file)!r}) does not match shard 0: widths "
                    f"{a.d} vs {self.d_in}"
                    + (
                        ""
                        if self._y is None
                        else f", targets {self._y[i].d} x {self._y[i].n} rows vs {self.d_out} x {a.n}"
                    )
                    + ". All shards of a site must have the same width (and a transcoder's target as many rows)."
                )
        self.device = torch.device(device)
        self.dtype = _dtype(dtype, torch)
        stored = self._x[0].rows(0, 0).dtype
        esize = torch.empty(0, dtype=self.dtype or stored).element_size()
        row_bytes = esize * (self.d_in + (self.d_out or 0))
        if buffer_tokens is not None and buffer_bytes is not None:
            raise InvalidParameterError(
                "give the buffer's size once: buffer_tokens or buffer_bytes."
            )
        if buffer_bytes is not None:
            buffer_tokens = check_int("buffer_bytes", buffer_bytes, minimum=1) // row_bytes
        elif buffer_tokens is None:
            buffer_tokens = max(65536, 2 * self.batch_size)
        self.buffer_tokens = check_int("buffer_tokens", buffer_tokens, minimum=2)
        if self.buffer_tokens < 2 * self.batch_size:
            raise InvalidParameterError(
                f"the buffer ({self.buffer_tokens} tokens) is smaller than two batches "
                f"({2 * self.batch_size}). Pass a larger buffer_tokens / buffer_bytes or a "
                "smaller batch_size."
            )
        half = self.buffer_tokens // 2
        chunk = (
            max(1, half // 8)
            if chunk_tokens is None
            else check_int("chunk_tokens", chunk_tokens, minimum=1)
        )
        self.chunk_tokens = min(chunk, half)
        self._chunks = [
            (i, a, min(a + self.chunk_tokens, arr.n))
            for i, arr in enumerate(self._x)
            for a in range(0, arr.n, self.chunk_tokens)
        ]
        starts = [0]
        for arr in self._x:
            starts.append(starts[-1] + arr.n)
        self._starts = starts
        self.n_tokens = starts[-1]
        self._loaded: dict[int, tuple[Any, Any, Any]] = {}
        self._reset_epoch()

    @property
    def buffer_nbytes(self) -> int:
        """Bytes of the groups in memory now."""
        return sum(
            sum(t.numel() * t.element_size() for t in g if t is not None)
            for g in self._loaded.values()
        )

    def _reset_epoch(self) -> None:
        torch = require_torch()
        self._pos = 0
        self._loaded = {}
        gen = _generator(self.random_state, self.epoch)
        order = torch.randperm(len(self._chunks), generator=gen).tolist()
        groups: list[list[int]] = [[]]
        size = 0
        for c in order:
            n = self._chunks[c][2] - self._chunks[c][1]
            if size + n > self.buffer_tokens // 2 and groups[-1]:
                groups.append([])
                size = 0
            groups[-1].append(c)
            size += n
        self._groups = groups
        sizes = [sum(self._chunks[c][2] - self._chunks[c][1] for c in g) for g in groups]
        self._gstart = [0]
        for s in sizes:
            self._gstart.append(self._gstart[-1] + s)

    def _group(self, g: int) -> tuple[Any, Any, Any]:
        """Group ``g``'s rows in served order: (x, y, index)."""
        if g in self._loaded:
            return self._loaded[g]
        torch = require_torch()
        for old in [k for k in self._loaded if k < g]:
            del self._loaded[old]
        n = self._gstart[g + 1] - self._gstart[g]
        xs = torch.empty((n, self.d_in), dtype=self.dtype or self._x[0].rows(0, 0).dtype)
        ys = None if self._y is None else torch.empty((n, self.d_out), dtype=xs.dtype)
        index = torch.empty(n, dtype=torch.long)
        r = 0
        for c in self._groups[g]:
            i, a, b = self._chunks[c]
            xs[r : r + b - a] = self._x[i].rows(a, b)
            if ys is not None:
                ys[r : r + b - a] = self._y[i].rows(a, b)  # type: ignore[index]
            index[r : r + b - a] = torch.arange(self._starts[i] + a, self._starts[i] + b)
            r += b - a
        for t, what in ((xs, self.site), (ys, self.site_out)):
            bad_row = None if t is None else _bad_row(t)
            if bad_row is not None:
                token = int(index[bad_row])
                shard = max(i for i, s in enumerate(self._starts[:-1]) if s <= token)
                raise InvalidInputError(
                    f"the stored activations of {what!r} are not finite (NaN or inf) at token "
                    f"{token} (row {token - self._starts[shard]} of shard {shard}, "
                    f"{str(self._x[shard].file)!r}): an SAE must not be trained on them. "
                    "Recompute or drop that shard."
                )
        perm = torch.randperm(n, generator=_generator(self.random_state, self.epoch, g + 1))
        group = (xs, ys, index, perm)
        self._loaded[g] = group  # type: ignore[assignment]
        self._note_peak(self.buffer_nbytes)
        return group  # type: ignore[return-value]

    def _take(self, a: int, b: int) -> ActivationBatch:
        """Rows ``[a, b)`` of the epoch's served order."""
        import bisect

        torch = require_torch()
        parts = []
        while a < b:
            g = bisect.bisect_right(self._gstart, a) - 1
            xs, ys, index, perm = self._group(g)
            stop = min(b, self._gstart[g + 1])
            sel = perm[a - self._gstart[g] : stop - self._gstart[g]]
            parts.append((xs[sel], None if ys is None else ys[sel], index[sel]))
            a = stop
        cat = [None if parts[0][j] is None else torch.cat([p[j] for p in parts]) for j in range(3)]
        return ActivationBatch(*(None if t is None else t.to(self.device) for t in cat))

    def _epoch(self) -> Iterator[ActivationBatch]:
        while self._pos < self.n_tokens:
            a = self._pos
            b = min(a + self.batch_size, self.n_tokens)
            batch = self._take(a, b)
            self._pos = b
            yield batch

    def _state(self) -> dict[str, Any]:
        return {
            "position": self._pos,
            "n_tokens": self.n_tokens,
            "buffer_tokens": self.buffer_tokens,
        }

    def _state_mismatch(self, state: Mapping[str, Any]) -> list[str]:
        return [
            f"{k}: {state.get(k)!r} (here {getattr(self, k)!r})"
            for k in ("n_tokens", "buffer_tokens")
            if state.get(k) != getattr(self, k)
        ]

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._reset_epoch()
        self._pos = int(state["position"])
