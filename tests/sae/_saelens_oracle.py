"""The SAELens side of the SAE file-format oracle: run with ``.venv-saelens/bin/python``.

SAELens 6.54 pins transformer-lens < 4 and so lives in its own venv (scripts/oracle-saelens.sh);
this script never imports whybox. It reads a JSON list of jobs (argv[1]) and, for each:

- ``{"kind": "write", "variant": ..., "folder": ..., "d_in", "d_sae", "k", "d_out", "seed",
  "inputs": x.npy, "out": prefix}``: builds a SAELens SAE of that variant with seeded random
  weights, saves it with SAELens' own ``save_model`` / ``save_inference_model`` into
  ``folder``, and writes ``prefix + "_f.npy"`` = its ``encode(x)`` and ``prefix + "_xhat.npy"``
  = ``decode(encode(x))``. Checkpoint variants (``batchtopk_ckpt``, ``matryoshka_ckpt``,
  ``topk_ckpt``) are encoded by their inference export (what SAELens uses after training).
- ``{"kind": "read", "folder": ..., "inputs": ..., "out": prefix}``: loads ``folder`` with
  ``SAE.load_from_disk`` and writes its encoding and reconstruction the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import sae_lens as sl
import torch

torch.set_num_threads(1)


def _randomise(sae: torch.nn.Module, seed: int, *, unit_decoder: bool) -> None:
    """Seeded weights with non-zero biases, positive thresholds and (optionally) uneven norms."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(sae.named_parameters()):
            value = torch.randn(param.shape, generator=gen, dtype=torch.float64)
            if name in ("b_enc", "b_dec"):
                value = 0.1 * value
            if name == "W_enc":
                value = value / param.shape[0] ** 0.5
            if name == "W_dec":
                if unit_decoder:
                    value = value / torch.linalg.vector_norm(value, dim=1, keepdim=True)
                else:
                    value = value * (0.5 + torch.rand(param.shape[0], 1, generator=gen))
            if name == "threshold":
                value = 0.05 + 0.3 * torch.rand(param.shape, generator=gen, dtype=torch.float64)
            param.copy_(value.to(param.dtype))


def _build(job: dict):
    v = job["variant"]
    d_in, d_sae, k, seed = job["d_in"], job["d_sae"], job.get("k"), job["seed"]
    d_out = job.get("d_out")
    if v == "standard":
        sae = sl.StandardSAE(sl.StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    elif v == "topk":
        sae = sl.TopKSAE(sl.TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    elif v == "topk_rescale":
        cfg = sl.TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, rescale_acts_by_decoder_norm=True)
        sae = sl.TopKSAE(cfg)
    elif v == "jumprelu":
        sae = sl.JumpReLUSAE(sl.JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae))
    elif v == "transcoder":
        cfg = sl.TranscoderConfig(d_in=d_in, d_sae=d_sae, d_out=d_out, apply_b_dec_to_input=False)
        sae = sl.Transcoder(cfg)
    elif v == "jumprelu_transcoder":
        cfg = sl.JumpReLUTranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=d_out, apply_b_dec_to_input=False
        )
        sae = sl.JumpReLUTranscoder(cfg)
    elif v in ("topk_ckpt",):
        sae = sl.TopKTrainingSAE(sl.TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    elif v in ("batchtopk_export", "batchtopk_ckpt"):
        sae = sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    elif v in ("matryoshka_export", "matryoshka_ckpt"):
        cfg = sl.MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=d_in, d_sae=d_sae, k=k, matryoshka_widths=job["widths"]
        )
        sae = sl.MatryoshkaBatchTopKTrainingSAE(cfg)
    else:
        raise SystemExit(f"unknown variant {v!r}")
    _randomise(sae, seed, unit_decoder=v not in ("topk_rescale", "topk_ckpt") and "ckpt" not in v)
    if hasattr(sae, "topk_threshold"):
        sae.topk_threshold = torch.tensor(job.get("topk_threshold", 0.2), dtype=torch.double)
    if job.get("hook_name"):
        sae.cfg.metadata.hook_name = job["hook_name"]
    return sae


def _encode_to(sae, job: dict) -> None:
    x = torch.from_numpy(np.load(job["inputs"]))
    with torch.no_grad():
        f = sae.encode(x.to(sae.dtype))
        x_hat = sae.decode(f)
    np.save(job["out"] + "_f.npy", f.double().numpy())
    np.save(job["out"] + "_xhat.npy", x_hat.double().numpy())


def main() -> None:
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)
    for job in jobs:
        if job["kind"] == "write":
            sae = _build(job)
            if job["variant"].endswith("_export"):
                sae.save_inference_model(job["folder"])
                _encode_to(sl.SAE.load_from_disk(job["folder"]), job)
            elif job["variant"].endswith("_ckpt"):
                sae.save_model(job["folder"])
                with tempfile.TemporaryDirectory() as tmp:
                    sae.save_inference_model(tmp)
                    _encode_to(sl.SAE.load_from_disk(tmp), job)
            else:
                sae.save_model(job["folder"])
                _encode_to(sae, job)
        elif job["kind"] == "read":
            sae = sl.SAE.load_from_disk(job["folder"])
            _encode_to(sae, job)
            with open(job["out"] + "_cfg.json", "w") as fh:
                json.dump({"architecture": sae.cfg.architecture(), "class": type(sae).__name__}, fh)
        else:
            raise SystemExit(f"unknown job kind {job['kind']!r}")
    print(f"oracle: {len(jobs)} jobs done")


if __name__ == "__main__":
    main()
