"""torchrun data parallelism: 2 CPU ranks (gloo) equal one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from whybox.sae.training import train  # noqa: E402


def data(n=1024, d=12, seed=0):
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((40, d))
    mask = rng.random((n, 40)) < 0.08
    return ((mask * rng.random((n, 40))) @ atoms).astype(np.float32)


CASES = {
    # AuxK active: 128 tokens without firing is dead, two global batches
    "topk": dict(architecture="topk", width=48, k=3, dead_tokens=128),
    # L1 warm-up and Anthropic resampling (drawn from the global batch, same on every rank)
    "standard": dict(
        architecture="standard",
        width=48,
        l1_coefficient=2.0,
        l1_warmup_steps=3,
        dead_tokens=64,
        resample_every=4,
        lr_decay_steps=0,
    ),
}


OPTIONS = dict(batch_size=64, total_tokens=64 * 12, lr=1e-2, progress=False, random_state=3)


def test_two_ranks_equal_one_process(tmp_path):
    np.save(tmp_path / "x.npy", data())
    # one torchrun launch trains both configurations (a JSON list), to keep the test short
    cfg = [
        {**CASES[c], **OPTIONS, "activations": str(tmp_path / "x.npy"), "out": str(tmp_path / c)}
        for c in sorted(CASES)
    ]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WHYBOX_TEST_TORCH_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "whybox.sae.training",
        "--config",
        str(tmp_path / "cfg.json"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from safetensors.torch import load_file

    for case in sorted(CASES):
        ranks = load_file(str(tmp_path / case / "sae_weights.safetensors"))
        single = train(activations=data(), distributed=False, **CASES[case], **OPTIONS)
        untrained = train(
            activations=data(), distributed=False, **CASES[case], **{**OPTIONS, "lr": 1e-12}
        )
        for name in ("W_enc", "W_dec", "b_enc"):
            want = getattr(single, name).detach()
            # sanity: training moved the weights far more than the tolerance
            assert float((want - getattr(untrained, name).detach()).abs().max()) > 1e-2
            torch.testing.assert_close(ranks[name], want, atol=1e-5, rtol=1e-4, msg=case + name)
        torch.testing.assert_close(ranks["b_dec"], single.b_dec.detach(), atol=1e-5, rtol=1e-4)


def test_batch_must_split_evenly_across_ranks(monkeypatch):
    from whybox.errors import InvalidParameterError
    from whybox.sae import _ddp

    monkeypatch.setattr(_ddp, "context", lambda device, distributed: _ddp.DistContext(0, 3))
    with pytest.raises(InvalidParameterError, match="divisible by the number of ranks"):
        train(activations=data(), batch_size=64, total_tokens=128, width=16, k=2, progress=False)
