"""Checkpoints of wb.sae.train: N steps = N/2, checkpoint, resume, N/2 more, bit for bit (CPU)."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.sae.training import TensorActivations, train  # noqa: E402

NAMES = ("W_enc", "W_dec", "b_enc", "b_dec")


def data(n=2048, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(48, d, generator=g)
    mask = torch.rand(n, 48, generator=g) < 0.06
    return (mask * torch.rand(n, 48, generator=g)) @ atoms


def same_weights(a, b):
    for name in NAMES:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_topk_with_auxk_resumes_bit_for_bit(tmp_path):
    # 2048 rows, batch 256: an epoch every 8 steps, so the reshuffle crosses the checkpoint;
    # dead_tokens 512 makes AuxK active from step 2 on
    kw = dict(
        activations=data(),
        width=64,
        k=2,
        batch_size=256,
        total_tokens=256 * 20,
        dead_tokens=512,
        lr=1e-2,
        lr_warmup_steps=3,
        lr_decay_steps=5,
        progress=False,
        log_every=1,
    )
    full = train(**kw, checkpoint_dir=tmp_path / "a", checkpoint_every=10)
    assert any(h["dead_fraction"] > 0 for h in full.history)  # AuxK did see dead latents
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "checkpoint-0000000010",
        "checkpoint-0000000020",
    ]
    (tmp_path / "b").mkdir()
    shutil.copytree(
        tmp_path / "a" / "checkpoint-0000000010", tmp_path / "b" / "checkpoint-0000000010"
    )
    steps = []
    resumed = train(**kw, checkpoint_dir=tmp_path / "b", resume=True, callback=steps.append)
    assert [m["step"] for m in steps] == list(range(11, 21))  # only the second half ran
    same_weights(full, resumed)
    assert full.history == resumed.history


def test_interrupted_standard_run_with_resampling_and_l1_warmup(tmp_path, monkeypatch):
    import whybox.sae.training as training

    revived = []
    original = training._resample_dead_

    def counting(*args):
        revived.append(original(*args))
        return revived[-1]

    monkeypatch.setattr(training, "_resample_dead_", counting)

    def kw():
        return dict(
            activations=TensorActivations(data(seed=1), random_state=4),
            architecture="standard",
            width=64,
            batch_size=32,
            total_tokens=32 * 24,
            l1_coefficient=3.0,
            l1_warmup_steps=4,
            dead_tokens=64,
            resample_every=3,
            lr_decay_steps=0,
            lr=3e-2,
            progress=False,
            random_state=4,
        )

    full = train(**kw())
    assert sum(revived) > 0  # resampling did draw inputs, before and after the interruption
    part = train(**kw(), checkpoint_dir=tmp_path, callback=lambda m: m["step"] == 16)
    assert not torch.equal(part.W_dec, full.W_dec)
    resumed = train(**kw(), checkpoint_dir=tmp_path, resume=True)
    same_weights(full, resumed)


def test_model_source_state_goes_through_the_checkpoint(tmp_path):
    from tests.internals.tiny import build, input_ids
    from whybox.sae.activations import ModelActivations

    model = build("gpt2")
    ids = input_ids(batch=24, pos=16, seed=2)

    def source():
        return ModelActivations(
            model,
            "blocks.1.resid_post",
            ids,
            batch_size=64,
            buffer_tokens=256,
            batch_size_prompts=4,
            random_state=1,
        )

    kw = dict(width=64, k=4, batch_size=64, total_tokens=64 * 8, lr=1e-2, progress=False)
    full = train(activations=source(), **kw)
    train(activations=source(), **kw, checkpoint_dir=tmp_path, callback=lambda m: m["step"] == 3)
    resumed = train(activations=source(), **kw, checkpoint_dir=tmp_path, resume=True)
    same_weights(full, resumed)


def test_resume_from_another_config_is_refused(tmp_path):
    kw = dict(activations=data(), k=2, batch_size=256, total_tokens=1024, progress=False)
    train(**kw, width=64, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="another training configuration") as info:
        train(**kw, width=32, checkpoint_dir=tmp_path, resume=True)
    assert "d_sae" in str(info.value)
    with pytest.raises(InvalidParameterError, match="lr"):
        train(**kw, width=64, lr=0.5, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(InvalidParameterError, match="not a whybox training checkpoint"):
        train(**kw, width=64, resume=tmp_path / "nothing-here")


def test_checkpoint_files_are_safetensors_and_json(tmp_path):
    train(
        activations=data(),
        width=64,
        k=2,
        batch_size=256,
        total_tokens=512,
        checkpoint_dir=tmp_path,
        progress=False,
    )
    (ckpt,) = tmp_path.iterdir()
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [
        "optimizer.safetensors",
        "source.json",
        "source.safetensors",
        "state.json",
        "weights.safetensors",
    ]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 2 and len(state["config_hash"]) == 16
    from safetensors.torch import load_file

    assert set(load_file(str(ckpt / "weights.safetensors"))) == set(NAMES)


def test_resume_true_without_a_checkpoint_starts_fresh(tmp_path):
    kw = dict(activations=data(), width=64, k=2, batch_size=256, total_tokens=512, progress=False)
    a = train(**kw, checkpoint_dir=tmp_path / "x", resume=True)
    b = train(**kw)
    same_weights(a, b)
