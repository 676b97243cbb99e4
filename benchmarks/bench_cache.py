"""run_with_cache of every block's residual stream vs a bare forward and TransformerLens.

Task: a random-weight GPT-2-architecture model (6 layers, d_model 256, 8 heads, vocab 8192,
eager attention, float32, eval mode) on a batch of 8 x 256 random tokens, CPU, 2 torch
threads; cached names: ``blocks.*.resid_post`` (6 tensors of 8 x 256 x 256 floats, 12 MiB).

Time (same process, interleaved repeats, median): a bare forward (``model(input_ids=ids)``
under ``torch.no_grad``), whybox's ``run_with_cache`` (target <= 1.05x bare), and
TransformerLens 4.3's ``TransformerBridge.run_with_cache`` on a copy of the same model with
``names_filter`` for the same six ``hook_resid_post`` tensors, as a user calls it (autograd on,
TL's default) and under ``torch.no_grad``. The ratio is the median of per-repeat ratios.

Peak memory (one child process, so the timing process's allocator state does not leak in):
glibc's dynamic mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_=65536``) so every tensor
buffer is its own mapping, returned to the OS when freed; the resident high-water mark is
reset before each call (``/proc/self/clear_refs``), and the figure is the high-water mark
after the call minus the resident size before it: the bytes the call needed at its peak,
tensors and everything else. Target: whybox's peak <= 1.1 x (cached bytes + bare peak).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights from a config: no hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
CONFIG = {"n_layer": 6, "n_embd": 256, "n_head": 8, "vocab": 8192, "seq": 256, "batch": 8}


def _build(cfg: dict[str, int]) -> tuple[Any, Any, Any]:
    """The model, the token ids and a TransformerBridge on a copy of the model."""
    import copy
    import tempfile

    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=cfg["n_layer"],
        n_embd=cfg["n_embd"],
        n_head=cfg["n_head"],
        vocab_size=cfg["vocab"],
        n_positions=max(cfg["seq"], 64),
    )
    model = transformers.GPT2LMHeadModel._from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(0, cfg["vocab"], (cfg["batch"], cfg["seq"]))
    bridge = None
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # pragma: no cover - transformer-lens is in the dev extras
        return model, ids, None
    # TL needs a tokenizer saved to and loaded from a folder (offline, no hub)
    vocab = {chr(65 + i): i for i in range(26)} | {"<|endoftext|>": 26}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    import warnings

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast.save_pretrained(folder)  # TL reloads the tokenizer from this folder
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        bridge = TransformerBridge.boot_transformers(
            "gpt2", hf_model=copy.deepcopy(model), tokenizer=tokenizer, device="cpu"
        )
    return model, ids, bridge


def _variants(model: Any, ids: Any, bridge: Any) -> dict[str, Any]:
    import torch

    from whybox.internals.cache import run_with_cache

    def bare() -> Any:
        with torch.no_grad():
            return model(input_ids=ids).logits

    def whybox() -> Any:
        return run_with_cache(model, ids, "blocks.*.resid_post")

    out = {"bare": bare, "whybox": whybox}
    if bridge is not None:

        def tl_filter(name: str) -> bool:
            return name.endswith("hook_resid_post")

        def tl() -> Any:
            return bridge.run_with_cache(ids, names_filter=tl_filter)

        def tl_no_grad() -> Any:
            with torch.no_grad():
                return bridge.run_with_cache(ids, names_filter=tl_filter)

        out["tl"] = tl
        out["tl_no_grad"] = tl_no_grad
    return out


CHILD = r"""
import gc, json, os, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(2)
from benchmarks.bench_cache import CONFIG, _build, _variants

def status():
    d = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, v = line.split(":", 1)
            if k in ("VmRSS", "VmHWM"):
                d[k] = int(v.split()[0]) * 1024
    return d

model, ids, bridge = _build(CONFIG)
fns = _variants(model, ids, bridge)
for fn in fns.values():  # first calls (thread pools, the anatomy's probe) before measuring
    fn()
res = {}
for name, fn in fns.items():
    peaks, cached = [], 0
    for _ in range(3):
        gc.collect()
        before = status()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        out = fn()
        peaks.append(status()["VmHWM"] - before)
        if isinstance(out, tuple):
            cache = out[1]
            cached = sum(t.numel() * t.element_size() for t in cache.values())
        del out
    res[name] = {"peak": min(peaks), "cached": cached}
print(json.dumps(res))
"""


def _memory() -> dict[str, Any]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeats: int = 15) -> dict[str, object]:
    import torch

    from whybox.internals.anatomy import Anatomy

    torch.set_num_threads(2)
    model, ids, bridge = _build(CONFIG)
    t0 = time.perf_counter()
    Anatomy.of(model)  # once per model (a probe forward on 2 x 4 tokens), then reused
    anatomy_s = time.perf_counter() - t0
    fns = _variants(model, ids, bridge)
    for fn in fns.values():  # warm up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            del out
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(name: str) -> float:
        return statistics.median(a / b for a, b in zip(times[name], times["bare"], strict=True))

    mem = _memory()
    bare_peak = mem["bare"]["peak"]
    cached = mem["whybox"]["cached"]
    res: dict[str, object] = {
        "task": (
            f"GPT-2 arch {CONFIG['n_layer']} layers d={CONFIG['n_embd']} {CONFIG['n_head']} "
            f"heads vocab {CONFIG['vocab']}, batch {CONFIG['batch']} x {CONFIG['seq']} tokens, "
            "names=blocks.*.resid_post, CPU 2 threads"
        ),
        "repeats": repeats,
        "bare_forward_s": med["bare"],
        "whybox_s": med["whybox"],
        "whybox_over_bare": ratio("whybox"),
        "anatomy_first_call_s": anatomy_s,
        "cached_MiB": cached / 2**20,
        "bare_peak_MiB": bare_peak / 2**20,
        "whybox_peak_MiB": mem["whybox"]["peak"] / 2**20,
        "whybox_peak_over_cached_plus_bare": mem["whybox"]["peak"] / (cached + bare_peak),
    }
    if "tl" in fns:
        res.update(
            {
                "tl_s": med["tl"],
                "tl_over_bare": ratio("tl"),
                "tl_no_grad_s": med["tl_no_grad"],
                "tl_no_grad_over_bare": ratio("tl_no_grad"),
                "tl_peak_MiB": mem["tl"]["peak"] / 2**20,
                "tl_peak_over_cached_plus_bare": mem["tl"]["peak"] / (cached + bare_peak),
                "tl_no_grad_peak_MiB": mem["tl_no_grad"]["peak"] / 2**20,
            }
        )
    return res


def markdown(res: dict[str, object]) -> str:
    f = {k: (f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in res.items()}
    rows = [
        ("bare forward (torch.no_grad)", f["bare_forward_s"], "1", f["bare_peak_MiB"], "-"),
        (
            "whybox run_with_cache",
            f["whybox_s"],
            f["whybox_over_bare"],
            f["whybox_peak_MiB"],
            f["whybox_peak_over_cached_plus_bare"],
        ),
    ]
    if "tl_s" in res:
        rows += [
            (
                "TransformerLens 4.3 bridge run_with_cache (default: autograd on)",
                f["tl_s"],
                f["tl_over_bare"],
                f["tl_peak_MiB"],
                f["tl_peak_over_cached_plus_bare"],
            ),
            (
                "TransformerLens 4.3 bridge run_with_cache under torch.no_grad",
                f["tl_no_grad_s"],
                f["tl_no_grad_over_bare"],
                f["tl_no_grad_peak_MiB"],
                "-",
            ),
        ]
    lines = [
        "### bench_cache",
        "",
        f"{res['task']}; median of {res['repeats']} interleaved repeats; cached tensors "
        f"{f['cached_MiB']} MiB; Anatomy.of's first call (once per model) "
        f"{f['anatomy_first_call_s']} s. Peak = resident high-water mark over the resident "
        "size before the call, child process, glibc mmap threshold pinned at 64 KiB.",
        "",
        "| run | time (s) | x bare | peak (MiB) | peak / (cached + bare peak) |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    result = run()
    print(json.dumps(result, indent=1))
    print(markdown(result))
