"""Data-parallel plumbing and checkpoints for :func:`whybox.sae.train`.

Checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`) are folders
``checkpoint-<step>/`` holding the weights and the Adam moments as safetensors, the dead-latent
counters and RNG states, and a ``state.json`` with the step, the activation source's state and
a hash of the training configuration (a resume from another configuration is refused), and
the activation source's state (``source.json`` / ``.safetensors``; one per rank,
``source-rank<r>``, when each rank streams its own share of a model's tokens). Rank 0 writes
the shared files; every rank reads them on resume.

``main`` is the entry ``python -m whybox.sae.training --config cfg.json`` (under ``torchrun``
or not).

Data parallelism under ``torchrun``:

Each rank trains an identical copy of the SAE on a disjoint, equal-sized slice of every global
batch. After the backward pass the gradients are summed across ranks and divided by the number
of ranks; since every loss term whybox trains on is a mean over the batch's tokens, the averaged
gradient is the gradient of the full global batch, so every rank takes the same Adam step and
the weights stay identical (no broadcast is needed after initialisation). The per-latent "fired"
flags are combined with a max, so dead-latent counters agree on every rank too. Where every
rank needs the whole global batch (the geometric-median ``b_dec`` and the input scale at step
0, resampling) it is all-gathered in rank order; a failure while drawing a batch on any rank
(NaN, an exhausted source) stops every rank. Batch-level top-k ("batchtopk", "matryoshka") is
taken per rank, with the running threshold averaged.

Backends: ``gloo`` for CPU tensors, ``nccl`` for CUDA ones (chosen from the device). The process
group is read from the usual ``torchrun`` environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

References
----------
Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel Training.
VLDB 13(12).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whybox.errors import InvalidParameterError

__all__ = [
    "DistContext",
    "config_hash",
    "context",
    "env_world_size",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "shard_tokens",
]

_CKPT_PREFIX = "checkpoint-"


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): > 1 under ``torchrun``."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@dataclass
class DistContext:
    """Which rank this process is and how to talk to the others.

    Attributes
    ----------
    rank, world_size : int
        This process' rank and the number of processes (1, 0 when not distributed).
    device : str
        The device this rank trains on (``cuda:<LOCAL_RANK>`` under NCCL).
    owns_group : bool
        True when this context initialised the process group (and so destroys it in
        :meth:`close`).
    """

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, n_rows: int) -> slice:
        """Rows ``[rank * n / world, (rank + 1) * n / world)`` of a global batch of ``n_rows``."""
        per = n_rows // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def all_reduce_grads_(self, params: list[Any]) -> None:
        """Average the ``.grad`` of ``params`` over the ranks, in place (one flat buffer)."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def all_reduce_(self, tensor: Any, op: str = "sum") -> Any:
        """All-reduce ``tensor`` in place with ``op`` in ``{"sum", "max", "mean"}``; returns it."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        red = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
        dist.all_reduce(tensor, op=red)
        if op == "mean":
            tensor.div_(self.world_size)
        return tensor

    def all_gather_rows(self, tensor: Any) -> Any:
        """The ranks' equal-sized ``tensor`` blocks stacked along rows, in rank order."""
        if not self.distributed or tensor is None:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def any_(self, flag: bool) -> bool:
        """True when ``flag`` is True on any rank (a collective: every rank must call it)."""
        if not self.distributed:
            return bool(flag)
        import torch

        device = self.device if self.device.startswith("cuda") else "cpu"
        return bool(self.all_reduce_(torch.tensor([int(flag)], device=device), "max")[0])

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


class _Strided:
    """Every ``world``-th item of a re-iterable, from ``rank`` on (re-iterable itself)."""

    def __init__(self, items: Any, rank: int, world: int) -> None:
        self.items, self.rank, self.world = items, rank, world

    def __iter__(self):
        import itertools

        return itertools.islice(iter(self.items), self.rank, None, self.world)


def shard_tokens(tokens: Any, rank: int, world: int) -> Any:
    """This rank's disjoint share of a model's ``tokens`` (rows, texts or a mapping of rows).

    2-D ids and lists of texts are dealt round-robin (row ``i`` to rank ``i % world``); a 1-D
    id stream is cut into ``world`` contiguous pieces; a mapping (a tokenizer's output) is
    sliced key by key; any other iterable is dealt round-robin item by item.
    """
    from collections.abc import Mapping

    if world <= 1:
        return tokens
    if hasattr(tokens, "shape") and len(tokens.shape) == 1:
        per = tokens.shape[0] // world
        return tokens[rank * per : (rank + 1) * per]
    if hasattr(tokens, "shape") or isinstance(tokens, list | tuple):
        return tokens[rank::world]
    if isinstance(tokens, Mapping):
        return {key: value[rank::world] for key, value in tokens.items()}
    return _Strided(tokens, rank, world)


def context(device: str | None, distributed: bool | None) -> DistContext:
    """The distributed context of this process.

    Parameters
    ----------
    device : str or None
        Requested device; ``None`` picks ``cuda`` when available, else ``cpu``. Under NCCL each
        rank gets ``cuda:<LOCAL_RANK>``.
    distributed : bool or None
        ``None``: distributed when a process group is already initialised or ``WORLD_SIZE > 1``;
        ``False``: never; ``True``: required (an error when not launched by ``torchrun``).
    """
    import torch
    import torch.distributed as dist

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if distributed is False:
        return DistContext(device=str(device))
    initialised = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if initialised else env_world_size()
    if world <= 1:
        if distributed:
            raise InvalidParameterError(
                "distributed=True but this process was not launched with several ranks "
                "(WORLD_SIZE is unset or 1). Launch with `torchrun --nproc_per_node=N -m "
                "whybox.sae.training --config cfg.json`, or pass distributed=None."
            )
        return DistContext(device=str(device))
    owns = False
    cuda = str(device).startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not initialised:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owns = True
    return DistContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), device=str(device), owns_group=owns
    )


# ----------------------------------------------------------------------------- checkpoints
def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pack(obj: Any, tensors: dict[str, Any]) -> Any:
    """``obj`` as JSON values, its tensors / arrays moved into ``tensors`` (by a key)."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor | np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.as_tensor(obj).detach().cpu().contiguous()
        return {"__tensor__": key, "numpy": isinstance(obj, np.ndarray)}
    if isinstance(obj, dict):
        return {"__dict__": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple | list):
        return {
            "__tuple__" if isinstance(obj, tuple) else "__list__": [_pack(v, tensors) for v in obj]
        }
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unpack(obj: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            value = tensors[obj["__tensor__"]]
            return value.numpy() if obj.get("numpy") else value
        if "__dict__" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        return [_unpack(v, tensors) for v in obj["__list__"]]
    return obj


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob(f"{_CKPT_PREFIX}*") if (p / "state.json").is_file())
    return found[-1] if found else None


def _source_name(ctx: DistContext | None, per_rank: bool) -> str:
    return f"source-rank{ctx.rank}" if per_rank and ctx is not None else "source"


def save_checkpoint(
    folder: Path, step: int, sae, opt, stream, gen, dead, config, tokens, history,
    ctx: DistContext | None = None, per_rank_source: bool = False,
) -> Path:  # fmt: skip
    """Write ``checkpoint-<step>/`` (call on every rank: rank 0 writes the shared files).

    With ``per_rank_source`` every rank writes its own activation-source state
    (``source-rank<r>.json`` / ``.safetensors``) before rank 0 moves the folder in place.
    """
    import torch
    from safetensors.torch import save_file

    ctx = ctx or DistContext()
    out = folder / f"{_CKPT_PREFIX}{step:010d}"
    tmp = folder / f".tmp-{_CKPT_PREFIX}{step:010d}"
    if ctx.is_main or per_rank_source:
        tmp.mkdir(parents=True, exist_ok=True)
    if (ctx.is_main or per_rank_source) and hasattr(stream, "state_dict"):
        src_tensors: dict[str, Any] = {}
        src_state = _pack(stream.state_dict(), src_tensors)
        name = _source_name(ctx, per_rank_source)
        save_file(src_tensors, str(tmp / f"{name}.safetensors"))
        (tmp / f"{name}.json").write_text(json.dumps(src_state))
    ctx.barrier()
    if ctx.is_main:
        weights = {k: v.detach().contiguous().cpu() for k, v in sae.state_dict().items()}
        save_file(weights, str(tmp / "weights.safetensors"))
        opt_state = opt.state_dict()
        tensors, scalars = {}, {}
        for idx, st in opt_state["state"].items():
            for key, val in st.items():
                if isinstance(val, torch.Tensor):
                    tensors[f"{idx}.{key}"] = val.detach().contiguous().cpu()
                else:
                    scalars[f"{idx}.{key}"] = val
        tensors["__dead__"] = dead.cpu()
        tensors["__torch_rng__"] = torch.get_rng_state()
        tensors["__gen_rng__"] = gen.get_state()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state = {
            "step": step,
            "tokens": tokens,
            "config_hash": config_hash(config),
            "config": config,
            "param_groups": opt_state["param_groups"],
            "scalars": scalars,
            "scaling_factor": getattr(sae, "scaling_factor", None),
            "history": history,
        }
        (tmp / "state.json").write_text(json.dumps(state, default=str))
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.rename(out)
    ctx.barrier()
    return out


def load_checkpoint(path: Path, sae, opt, stream, gen, config, ctx=None, per_rank_source=False):
    """Restore what :func:`save_checkpoint` wrote; returns ``(state, dead counters)``.

    Raises
    ------
    InvalidParameterError
        When the checkpoint's configuration hash differs from ``config`` (the differing keys
        are named).
    """
    import torch
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    if state["config_hash"] != config_hash(config):
        old = state.get("config", {})
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff[:6])
        raise InvalidParameterError(
            f"the checkpoint {path} was written by another training configuration ({shown}). "
            "Resume with the same arguments, pass resume=False to start over, or pick another "
            "checkpoint_dir."
        )
    device = next(sae.parameters()).device
    weights = load_file(str(path / "weights.safetensors"))
    sae.load_state_dict({k: v.to(device) for k, v in weights.items()})
    if state.get("scaling_factor") is not None:
        sae.scaling_factor = state["scaling_factor"]
    tensors = load_file(str(path / "optimizer.safetensors"))
    opt_state: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for key, val in tensors.items():
        if key.startswith("__"):
            continue
        idx, name = key.split(".", 1)
        opt_state["state"].setdefault(int(idx), {})[name] = (
            val if name == "step" else val.to(device)
        )
    for key, val in state["scalars"].items():
        idx, name = key.split(".", 1)
        opt_state["state"].setdefault(int(idx), {})[name] = val
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["__torch_rng__"])
    gen.set_state(tensors["__gen_rng__"])
    name = _source_name(ctx, per_rank_source)
    if (path / f"{name}.json").is_file() and hasattr(stream, "load_state_dict"):
        src = json.loads((path / f"{name}.json").read_text())
        stream.load_state_dict(_unpack(src, load_file(str(path / f"{name}.safetensors"))))
    return state, tensors["__dead__"].to(device)


# ----------------------------------------------------------------------------- torchrun entry
