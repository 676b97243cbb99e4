"""Streaming SAE training from a model: overhead of the activation buffer, and its memory.

Task: the zoo's tiny GPT-2 (``whybox.zoo.tinylm.tiny_lm``: 4 layers, d 128, trained on the
pydoc topics); its training texts packed into rows of 128 tokens (BOS + 127 tokens, documents
joined by BOS, as SAELens packs them; BOS positions left out), ``N_ROWS`` rows; site
``blocks.1.resid_post``; a TopK SAE of width 8 x 128 = 1024, k = 32, batches of 4096 tokens,
Adam (one step = ``training_loss``, backward, parallel-gradient removal, Adam step, decoder
re-normalisation). CPU, one torch thread, best of ``REPEATS``.

Times, over the same tokens:

- (a) the model's own forward pass up to the site, in passes of 32 rows (a hook at the site
  ends the pass, nothing is copied); the full forward pass is shown too;
- (b) the SAE steps alone, on activations already in memory (the same number of batches of
  the same sizes);
- (c) streaming and training end to end: ``ModelActivations`` (buffer of 65,536 tokens,
  forward passes of 32 rows, stopped after the site) feeding the same SAE steps.

Target (issue 17): (c) / ((a) + (b)) <= 1.2. Also (c) with ``stop_early=False`` (the whole
forward pass run), for what stopping early saves.

Memory: a subprocess streams the same tokens with ``buffer_bytes`` = 16 MiB and samples its
resident memory (``/proc/self/statm``, glibc's mmap threshold fixed so freed blocks leave the
process) after every batch; the growth is set against the configured size and the buffer's
own tensors (``buffer_nbytes``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONFIG = {
    "site": "blocks.1.resid_post",
    "context": 128,
    "n_rows": 512,
    "batch_size": 4096,
    "batch_size_prompts": 32,
    "buffer_tokens": 65536,
    "width_mult": 8,
    "k": 32,
    "repeats": 2,
    "memory_buffer_bytes": 16 * 2**20,
}


def _rows(tok: Any, texts: list[str], n_rows: int, ctx: int) -> Any:
    import torch

    stream: list[int] = []
    for k, t in enumerate(texts):
        stream += ([0] if k else []) + list(tok(t, add_special_tokens=False)["input_ids"])
        if len(stream) > n_rows * (ctx - 1):
            break
    rows = [[0, *stream[i * (ctx - 1) : (i + 1) * (ctx - 1)]] for i in range(n_rows)]
    return torch.tensor(rows)


def _sae_step(d_in: int) -> Any:
    import torch

    from whybox.sae.models import SAE, SAEConfig

    width = CONFIG["width_mult"] * d_in
    sae = SAE.create(SAEConfig(d_in=d_in, d_sae=width, architecture="topk", k=CONFIG["k"]))
    opt = torch.optim.Adam(sae.parameters(), lr=4e-4)

    def step(x: Any) -> float:
        parts = sae.training_loss(x)
        opt.zero_grad(set_to_none=True)
        parts.loss.backward()
        sae.remove_gradient_parallel_to_decoder_()
        opt.step()
        sae.set_decoder_norm_to_unit_norm_()
        return float(parts.mse.detach())

    return step


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = _clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def _forward_time(model: Any, ids: Any, point: Any, stop: bool) -> tuple[float, float]:
    import torch

    from whybox.internals import hooks

    class _Done(Exception):
        pass

    def fn(view: Any) -> None:
        if stop:
            raise _Done

    bp = CONFIG["batch_size_prompts"]
    t0 = _clock()
    with torch.no_grad(), hooks.on_points(model, [(point, fn)]):
        for i in range(0, ids.shape[0], bp):
            try:
                model(input_ids=ids[i : i + bp], use_cache=False)
            except _Done:
                pass
    return _since(t0)


def _measure_memory(n_rows: int, buffer_bytes: int) -> tuple[int, int, int]:
    """(tokens streamed, buffer_nbytes, resident growth in bytes), run in a subprocess."""
    code = f"""
import ctypes, os
ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
import torch
torch.set_num_threads(1)
from benchmarks.bench_sae_streaming import _rows, CONFIG
from whybox.sae.activations import ModelActivations
from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
model, tok = tiny_lm()
ids = _rows(tok, tiny_lm_corpus("train"), {n_rows}, CONFIG["context"])
src = ModelActivations(model, CONFIG["site"], ids, batch_size=CONFIG["batch_size"],
                       buffer_bytes={buffer_bytes}, batch_size_prompts=CONFIG["batch_size_prompts"])
base = peak = rss()
n = 0
for b in src:
    n += b.x.shape[0]
    peak = max(peak, rss())
print(n, src.buffer_nbytes, peak - base)
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root + os.pathsep + os.path.join(root, "src")
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
        cwd=root, timeout=600,
    ).stdout.split()  # fmt: skip
    n, nbytes, grown = (int(v) for v in out[-3:])
    return n, nbytes, grown


def run() -> dict[str, Any]:
    import torch

    from whybox.internals.anatomy import Anatomy
    from whybox.sae.activations import ModelActivations
    from whybox.zoo.tinylm import tiny_lm, tiny_lm_corpus

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = tiny_lm()
        ids = _rows(tok, tiny_lm_corpus("train"), CONFIG["n_rows"], CONFIG["context"])
        point = Anatomy.of(model).point(CONFIG["site"])
        kw = dict(
            batch_size=CONFIG["batch_size"],
            buffer_tokens=CONFIG["buffer_tokens"],
            batch_size_prompts=CONFIG["batch_size_prompts"],
        )
        sizes = [b.x.shape[0] for b in ModelActivations(model, CONFIG["site"], ids, **kw)]
        d = model.config.n_embd
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(n, d, generator=g) for n in sizes]
        res: dict[str, list[tuple[float, float]]] = {
            k: [] for k in ("a", "a_full", "b", "c", "c_full")
        }
        for _ in range(CONFIG["repeats"]):
            res["a"].append(_forward_time(model, ids, point, stop=True))
            res["a_full"].append(_forward_time(model, ids, point, stop=False))
            step = _sae_step(d)
            t0 = _clock()
            for x in xs:
                step(x)
            res["b"].append(_since(t0))
            for key, stop in (("c", True), ("c_full", False)):
                step = _sae_step(d)
                t0 = _clock()
                src = ModelActivations(model, CONFIG["site"], ids, stop_early=stop, **kw)
                for batch in src:
                    step(batch.x)
                res[key].append(_since(t0))
        best = {k: min(t[0] for t in v) for k, v in res.items()}
        cpu = {k: min(t[1] for t in v) for k, v in res.items()}
        n_tok, nbytes, grown = _measure_memory(CONFIG["n_rows"], CONFIG["memory_buffer_bytes"])
    finally:
        torch.set_num_threads(threads)
    return {
        **best,
        "cpu": cpu,
        "tokens": sum(sizes),
        "batches": len(sizes),
        "ratio": best["c"] / (best["a"] + best["b"]),
        "ratio_full": best["c_full"] / (best["a_full"] + best["b"]),
        "ratio_cpu": cpu["c"] / (cpu["a"] + cpu["b"]),
        "memory": {
            "configured": CONFIG["memory_buffer_bytes"],
            "buffer_nbytes": nbytes,
            "grown": grown,
            "tokens": n_tok,
        },
    }


def markdown() -> str:
    from benchmarks.common import machine

    r = run()
    mib = 2**20
    m = r["memory"]
    c = r["cpu"]
    tps = r["tokens"] / r["c"]
    lines = [
        "### SAE training streamed from a model (whybox.sae.activations)",
        "",
        f"Machine: {machine()}; torch on 1 thread. tiny_lm (4 layers, d 128), site "
        f"`{CONFIG['site']}`, {r['tokens']:,} tokens ({CONFIG['n_rows']} rows of "
        f"{CONFIG['context']}, BOS left out) in {r['batches']} batches of "
        f"{CONFIG['batch_size']}; TopK SAE width {CONFIG['width_mult']}x, k {CONFIG['k']}, Adam; "
        f"best of {CONFIG['repeats']}.",
        "",
        "| time over the same tokens | wall s | CPU s |",
        "|---|---:|---:|",
        f"| (a) model forward up to the site | {r['a']:.2f} | {c['a']:.2f} |",
        f"| (a') model forward, whole model | {r['a_full']:.2f} | {c['a_full']:.2f} |",
        f"| (b) SAE steps alone (activations in memory) | {r['b']:.2f} | {c['b']:.2f} |",
        f"| (c) streaming + training end to end (stopped after the site) | {r['c']:.2f} "
        f"| {c['c']:.2f} |",
        f"| (c') the same, whole forward pass run | {r['c_full']:.2f} | {c['c_full']:.2f} |",
        "",
        f"**(c) / ((a) + (b)) = {r['ratio']:.2f}** wall, {r['ratio_cpu']:.2f} CPU time (target "
        "<= 1.2; CPU time is the steadier figure on a shared machine); (c') / ((a') + (b)) = "
        f"{r['ratio_full']:.2f}; stopping after the site saves "
        f"{r['c_full'] - r['c']:.2f} s of {r['c_full']:.2f} s; end to end "
        f"{tps:,.0f} tokens/s.",
        "",
        f"Buffer memory (subprocess, resident-set growth while streaming {m['tokens']:,} "
        f"tokens): configured {m['configured'] / mib:.1f} MiB, buffer tensors "
        f"{m['buffer_nbytes'] / mib:.1f} MiB, measured growth {m['grown'] / mib:.1f} MiB "
        f"(buffer + one forward pass + one batch); all tokens would take "
        f"{m['tokens'] * (128 * 4 + 8) / mib:.1f} MiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
