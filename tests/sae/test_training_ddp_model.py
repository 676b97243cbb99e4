"""torchrun with a model: each rank streams its own share of the tokens through the hooks.

Two CPU ranks (gloo) train on a tiny GPT-2's activations; the result equals one process fed
the same global batches (rank 0's share then rank 1's), and a resume from a mid-run
checkpoint (each rank restores its own stream) equals the uninterrupted run bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from whybox.sae.training import train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SITE = "blocks.1.resid_post"
STREAM = dict(buffer_tokens=128, batch_size_prompts=4)
OPTIONS = dict(width=64, k=4, batch_size=64, total_tokens=64 * 8, lr=1e-2, random_state=1)

SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
import torch.distributed as dist
from safetensors.torch import save_file
from tests.internals.tiny import build, input_ids
from whybox.sae.training import train

dist.init_process_group("gloo")
out, rank = sys.argv[1], dist.get_rank()
model, ids = build("gpt2"), input_ids(batch=24, pos=16, seed=2)
kw = dict({OPTIONS!r}, progress=False, activation_options={STREAM!r})
full = train(model, {SITE!r}, tokens=ids, checkpoint_dir=out + "/a", checkpoint_every=4, **kw)
resumed = train(
    model, {SITE!r}, tokens=ids, checkpoint_dir=out + "/b",
    resume=out + "/a/checkpoint-0000000004", **kw,
)
for name, sae in (("full", full), ("resumed", resumed)):
    save_file(dict(sae.state_dict()), f"{{out}}/{{name}}-{{rank}}.safetensors")
dist.destroy_process_group()
"""


class Interleaved:
    """What the two ranks read together: rank 0's share of each batch, then rank 1's."""

    def __init__(self, model, ids):
        from whybox.sae.activations import ModelActivations

        self.parts = [
            ModelActivations(model, SITE, ids[r::2], batch_size=32, random_state=1 + r, **STREAM)
            for r in range(2)
        ]

    def next_batch(self, n):
        return torch.cat([p.next_batch(n // 2) for p in self.parts])


def test_model_streaming_ranks_equal_one_process_and_resume(tmp_path):
    from safetensors.torch import load_file

    from tests.internals.tiny import build, input_ids

    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(tmp_path / "run.py"), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = {
        f"{n}-{r}": load_file(str(tmp_path / f"{n}-{r}.safetensors"))
        for n in ("full", "resumed")
        for r in (0, 1)
    }

    model, ids = build("gpt2"), input_ids(batch=24, pos=16, seed=2)
    single = train(
        activations=Interleaved(model, ids), progress=False, distributed=False, **OPTIONS
    )
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        # the ranks hold the same weights, the resume is exact, and one process agrees
        assert torch.equal(got["full-0"][name], got["full-1"][name])
        assert torch.equal(got["full-0"][name], got["resumed-0"][name])
        assert torch.equal(got["full-1"][name], got["resumed-1"][name])
        want = getattr(single, name).detach()
        torch.testing.assert_close(got["full-0"][name], want, atol=1e-5, rtol=1e-4)
    # and it is not what one process reading every token itself would train
    alone = train(
        model, SITE, tokens=ids, progress=False, distributed=False, activation_options=STREAM,
        **OPTIONS,
    )  # fmt: skip
    assert not torch.allclose(alone.W_dec, got["full-0"]["W_dec"], atol=1e-3)
