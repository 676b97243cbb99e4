"""Storage of an activation cache: memory up to a budget, the rest memory-mapped on disk.

Private helpers of :mod:`whybox.internals.cache`: where each captured activation goes while a
run is under way (:class:`Store`), the ``.npy`` offload folder and its ``index.json``, and the
checks of the ``device`` / ``dtype`` arguments.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from whybox.errors import InvalidInputError, InvalidParameterError, MissingDependencyError

FORMAT = "whybox.ActivationCache"
VERSION = "1"
INDEX = "index.json"


def fmt_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def safetensors_torch() -> Any:
    try:
        import safetensors.torch as st
    except ImportError as exc:  # pragma: no cover - installed with the llm extra
        raise MissingDependencyError("safetensors", "llm", "saving an ActivationCache") from exc
    return st


def as_device(device: Any, torch: Any) -> Any:
    """``device`` as a torch.device that works here (None stays None)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, TypeError, AssertionError) as exc:
        raise InvalidParameterError(
            f"device={device!r} is not a device torch can use here ({exc}). Pass 'cpu', "
            "'cuda', 'cuda:1', 'mps' or a torch.device, or None to keep each activation where "
            "the model produced it."
        ) from exc
    return dev


def as_dtype(dtype: Any, torch: Any) -> Any:
    """``dtype`` (a torch dtype or its name) as a floating torch dtype (None stays None)."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise InvalidParameterError(
                f"dtype={dtype!r} is not a torch dtype; pass e.g. 'float16', 'bfloat16', "
                "'float32' or torch.float16."
            )
        dtype = resolved
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidParameterError(
            f"dtype must be a floating torch dtype (torch.float16, torch.bfloat16, "
            f"torch.float32, ...), got {dtype!r}. Activations are stored as floats."
        )
    return dtype


def _numpy_dtype(dtype: Any, torch: Any) -> tuple[Any, bool]:
    """The numpy dtype a torch dtype is written as; bfloat16 and the float8s have none, so
    their bits go to disk as same-width integers (True)."""
    import numpy as np

    size = torch.empty(0, dtype=dtype).element_size()
    if dtype is torch.bfloat16 or "float8" in str(dtype):
        return np.dtype({1: "u1", 2: "<i2"}[size]), True
    return torch.empty(0, dtype=dtype).numpy().dtype, False


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def save_file(
    path: Path,
    acts: dict[str, Any],
    grads: dict[str, Any] | None,
    layers: dict[str, int | None],
    n_layers: int | None,
) -> Path:
    """Write activations (and gradients) to one safetensors file: a temporary file in the
    same folder, renamed over ``path`` (a reader never sees half a file)."""
    st = safetensors_torch()
    if not path.parent.is_dir():
        raise InvalidParameterError(
            f"cannot save to {str(path)!r}: the folder {str(path.parent)!r} does not exist. "
            "Create it first or choose another path."
        )
    tensors = {f"act/{n}": t.detach().cpu().contiguous() for n, t in acts.items()}
    if grads is not None:
        tensors.update({f"grad/{n}": t.detach().cpu().contiguous() for n, t in grads.items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "names": json.dumps(list(acts)),
        "grads": json.dumps(list(grads) if grads is not None else None),
        "layers": json.dumps(layers),
        "n_layers": json.dumps(n_layers),
    }
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        st.save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_file(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict, int | None]:
    """Activations, gradients, layer of each name and block count of a saved cache."""
    st = safetensors_torch()
    try:
        with st.safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT:
                raise InvalidInputError(
                    f"{str(path)!r} is a safetensors file but not a saved ActivationCache (its "
                    f"metadata has format={meta.get('format')!r}). Load it with "
                    "safetensors.torch.load_file instead."
                )
            names = json.loads(meta["names"])
            grad_names = json.loads(meta.get("grads", "null"))
            acts = {n: fh.get_tensor(f"act/{n}") for n in names}
            grads = {n: fh.get_tensor(f"grad/{n}") for n in grad_names} if grad_names else None
            layers = json.loads(meta.get("layers", "{}"))
            n_layers = json.loads(meta.get("n_layers", "null"))
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"{str(path)!r} could not be read as a saved ActivationCache "
            f"({type(exc).__name__}: {exc}). Pass a file written by cache.save()."
        ) from exc
    return acts, grads, layers, n_layers


def load_folder(folder: Path, torch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The index and the tensors (memory-mapped, copy-on-write) of an offload folder."""
    import numpy as np

    try:
        index = json.loads((folder / INDEX).read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"its index has format {index.get('format')!r}")
        tensors: dict[str, dict[str, Any]] = {"act": {}, "grad": {}}
        for entry in index["arrays"]:
            t = torch.from_numpy(np.load(folder / entry["file"], mmap_mode="c"))
            dt = getattr(torch, entry["dtype"])
            tensors[entry["kind"]][entry["name"]] = t if t.dtype == dt else t.view(dt)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            f"{str(folder)!r} is not an ActivationCache offload folder ({type(exc).__name__}: "
            f"{exc}); it needs the index.json that run_with_cache writes there."
        ) from exc
    return index, tensors


class Store:
    """Where a run's activations go as they are produced.

    In memory on ``device`` while the total stays within ``max_bytes`` (forward order);
    past it, to CPU memory (a GPU cache without ``offload_dir``) or to memory-mapped
    ``.npy`` files. With chunked batches (``chunked``), a tensor whose first dimension is the
    chunk's rows is written into rows of one tensor for the whole batch; any other (a
    position embedding of shape (1, pos, d)) is the same for every chunk and kept once (the
    gradients of such a shared tensor add up over chunks).
    """

    def __init__(
        self,
        torch: Any,
        *,
        device: Any,
        dtype: Any,
        max_bytes: int | None,
        offload_dir: Any,
        n_rows: int,
        chunked: bool,
    ) -> None:
        self.torch = torch
        self.device, self.dtype = device, dtype
        self.max_bytes = max_bytes
        self.n_rows, self.chunked = n_rows, chunked
        self.used = 0
        self.tensors: dict[str, dict[str, Any]] = {"act": {}, "grad": {}}
        self.sizes: dict[tuple[str, str], int] = {}
        self.arrays: list[dict[str, Any]] = []  # index entries of the files written
        self.folder: Path | None = None
        self.owned = False  # a temporary folder made here, removed with the cache
        self._parent = Path(offload_dir) if offload_dir is not None else None
        self._maps: list[Any] = []
        self._whole: set[tuple[str, str]] = set()
        self._rows = n_rows

    def begin_chunk(self, rows: int) -> None:
        self._rows = rows

    def _target(self, kind: str, name: str, t: Any, shape: tuple[int, ...]) -> Any:
        """Where the activation goes: None for memory on the cache's device (the caller
        copies it there), else a preallocated CPU tensor or memory-mapped file."""
        torch = self.torch
        dtype = self.dtype or t.dtype
        nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
        self.sizes[(kind, name)] = nbytes
        device = self.device if self.device is not None else t.device
        if self.max_bytes is None or self.used + nbytes <= self.max_bytes:
            self.used += nbytes
            if tuple(shape) == tuple(t.shape):
                return None
            return torch.empty(shape, dtype=dtype, device=device)
        if self._parent is None and device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device="cpu")  # offload to CPU memory
        return self._memmap(kind, name, shape, dtype)

    def _memmap(self, kind: str, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        import numpy as np

        if self.folder is None:
            if self._parent is None:
                self.folder = Path(tempfile.mkdtemp(prefix="whybox-cache-"))
                self.owned = True
            else:
                try:
                    self._parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise InvalidParameterError(
                        f"offload_dir={str(self._parent)!r} cannot be created ({exc}). Pass a "
                        "folder you can write to."
                    ) from exc
                self.folder = Path(tempfile.mkdtemp(prefix="cache-", dir=self._parent))
        np_dtype, as_bits = _numpy_dtype(dtype, self.torch)
        file = f"{kind}-{len(self.arrays):04d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.npy"
        arr = np.lib.format.open_memmap(self.folder / file, mode="w+", dtype=np_dtype, shape=shape)
        self._maps.append(arr)
        self.arrays.append({"kind": kind, "name": name, "file": file, "dtype": _dtype_name(dtype)})
        t = self.torch.from_numpy(arr)
        return t.view(dtype) if as_bits else t

    def put(self, kind: str, name: str, t: Any, row0: int) -> None:
        """Store ``t`` (an activation or gradient of rows ``row0 ..`` of the batch)."""
        torch = self.torch
        store = self.tensors[kind]
        key = (kind, name)
        if name not in store:
            batched = self.chunked and t.ndim > 0 and t.shape[0] == self._rows
            shape = (self.n_rows, *t.shape[1:]) if batched else tuple(t.shape)
            if not batched:
                self._whole.add(key)
            target = self._target(kind, name, t, shape)
            if target is None:  # in memory as it is: a contiguous copy, cast and moved
                store[name] = t.to(
                    device=self.device if self.device is not None else t.device,
                    dtype=self.dtype or t.dtype,
                    copy=True,
                    memory_format=torch.contiguous_format,
                )
                return
            store[name] = target
            if not batched:
                target.copy_(t)
                return
        target = store[name]
        if key in self._whole:  # one tensor for every chunk (or a second call: refused later)
            if tuple(t.shape) != tuple(target.shape):
                raise InvalidParameterError(
                    f"{name!r} has shape {tuple(t.shape)} in one chunk and "
                    f"{tuple(target.shape)} in another, and its first dimension is not the "
                    "batch: it cannot be cached in chunks. Use batch_size=None."
                )
            if kind == "grad":
                target.add_(t)
            return
        target[row0 : row0 + t.shape[0]].copy_(t)

    def check_budget(self) -> None:
        """Refuse a ``max_bytes`` smaller than every activation (nothing fits in memory)."""
        if self.max_bytes is None or not self.sizes:
            return
        (kind, name), smallest = min(self.sizes.items(), key=lambda kv: kv[1])
        if smallest > self.max_bytes:
            raise InvalidParameterError(
                f"max_bytes={self.max_bytes} is smaller than one activation: the smallest "
                f"one cached, {'the gradient of ' if kind == 'grad' else ''}{name!r}, takes "
                f"{smallest} bytes ({fmt_bytes(smallest)}). Pass max_bytes >= {smallest} "
                "(activations beyond it go to memory-mapped files in offload_dir), or None "
                "to keep everything in memory."
            )

    def finish(self, names: list[str], layers: dict[str, int | None], n_layers: int) -> None:
        """Flush the memory-mapped files and write the folder's index.json (atomically)."""
        if self.folder is None:
            return
        for arr in self._maps:
            arr.flush()
        index = {
            "format": FORMAT,
            "version": VERSION,
            "names": names,
            "layers": layers,
            "n_layers": n_layers,
            "arrays": self.arrays,
        }
        tmp = self.folder / f".{INDEX}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, self.folder / INDEX)

    def discard(self) -> None:
        """Drop everything and remove the files of a run that failed."""
        self.tensors = {"act": {}, "grad": {}}
        self._maps = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
