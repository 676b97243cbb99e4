"""SAELens is the oracle of the SAE folder format, both ways.

SAELens 6.54 runs in its own venv (.venv-saelens: it pins transformer-lens < 4) through
tests/sae/_saelens_oracle.py in one subprocess per module: it writes folders with its own
``save_model`` / ``save_inference_model`` and the encodings of given inputs, and reads the
folders whybox wrote with its own ``SAE.load_from_disk``. whybox must load SAELens' folders and
encode identically, and SAELens must load whybox's folders and encode identically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from whybox.sae import io  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = ROOT / ".venv-saelens" / "bin" / "python"
ORACLE = Path(__file__).with_name("_saelens_oracle.py")
D_IN, D_SAE, D_OUT, K = 16, 48, 12, 5
TOL = dict(rtol=1e-6, atol=1e-6)

# variant written by SAELens -> (whybox architecture it must load as, is a transcoder)
SAELENS_VARIANTS = {
    "standard": ("standard", False),
    "topk": ("topk", False),
    "topk_rescale": ("topk", False),
    "topk_ckpt": ("topk", False),
    "jumprelu": ("jumprelu", False),
    "transcoder": ("standard", True),
    "jumprelu_transcoder": ("jumprelu", True),
    "batchtopk_export": ("batchtopk", False),
    "batchtopk_ckpt": ("batchtopk", False),
    "matryoshka_export": ("matryoshka", False),
    "matryoshka_ckpt": ("matryoshka", False),
}
# whybox SAE saved by whybox -> SAELens class that must read it
WHYBOX_VARIANTS = {
    "standard": "StandardSAE",
    "topk": "TopKSAE",
    "jumprelu": "JumpReLUSAE",
    "batchtopk": "JumpReLUSAE",
    "matryoshka": "JumpReLUSAE",
    "scaled_topk": "TopKSAE",
    "scaled_jumprelu": "JumpReLUSAE",
    "transcoder": "Transcoder",
    "jumprelu_transcoder": "JumpReLUTranscoder",
    # exported like their SAEs; a TopK transcoder is refused (test_saelens_transcoder_roundtrip)
    "batchtopk_transcoder": "JumpReLUTranscoder",
    "matryoshka_transcoder": "JumpReLUTranscoder",
}


def _whybox_sae(variant: str) -> SAE:
    """A whybox SAE with seeded random weights, biases, thresholds (and a scaling factor)."""
    arch = variant.replace("scaled_", "").replace("_transcoder", "")
    arch = "standard" if arch == "transcoder" else arch
    kw: dict = {}
    if arch in ("topk", "batchtopk", "matryoshka"):
        kw["k"] = K
    if arch == "matryoshka":
        kw["matryoshka_widths"] = (12, 24, D_SAE)
    if "transcoder" in variant:
        kw.update(d_out=D_OUT, hook_name_out="blocks.0.mlp.out")
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture=arch, hook_name="blocks.0.ln2", **kw)
    sae = SAE.create(cfg, random_state=7)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(sae.b_enc.shape, generator=gen))
        sae.b_dec.copy_(0.1 * torch.randn(sae.b_dec.shape, generator=gen))
        sae.W_enc.mul_(1.0 + torch.rand(sae.W_enc.shape, generator=gen))
        if arch == "jumprelu":
            sae.set_threshold_(0.05 + 0.3 * torch.rand(D_SAE, generator=gen))
        if arch in ("batchtopk", "matryoshka"):
            sae.topk_threshold.fill_(0.15)
    if variant.startswith("scaled_"):
        sae.scaling_factor = 2.5
        sae.cfg.normalize_activations = "expected_average_only_in"
    return sae


def _inputs(width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(64, width)).astype(np.float32)


def _run_oracle(jobs: list[dict], tmp: Path) -> None:
    if not ORACLE_PY.exists():
        pytest.fail(
            f"the SAELens oracle venv is missing ({ORACLE_PY}). `make test` builds it; or run "
            "`bash scripts/oracle-saelens.sh` once (about 90 s, needs PyPI)."
        )
    spec = tmp / "jobs.json"
    spec.write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [str(ORACLE_PY), str(ORACLE), str(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(tmp),
    )
    if done.returncode != 0:
        pytest.fail(f"the SAELens oracle failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


@pytest.fixture(scope="module")
def exchange(tmp_path_factory) -> Path:
    """One oracle run: SAELens writes its folders and reads whybox's."""
    tmp = tmp_path_factory.mktemp("saelens_exchange")
    np.save(tmp / "x.npy", _inputs(D_IN, 0))
    jobs: list[dict] = []
    for i, variant in enumerate(SAELENS_VARIANTS):
        job = {
            "kind": "write",
            "variant": variant,
            "folder": str(tmp / f"sl_{variant}"),
            "d_in": D_IN,
            "d_sae": D_SAE,
            "k": K,
            "seed": 100 + i,
            "inputs": str(tmp / "x.npy"),
            "out": str(tmp / f"sl_{variant}"),
            "hook_name": "blocks.0.hook_resid_post",
        }
        if "transcoder" in variant:
            job["d_out"] = D_OUT
        if "matryoshka" in variant:
            job["widths"] = [12, 24, D_SAE]
        jobs.append(job)
    for variant in WHYBOX_VARIANTS:
        folder = tmp / f"wb_{variant}"
        _whybox_sae(variant).save(folder)
        jobs.append(
            {
                "kind": "read",
                "folder": str(folder),
                "inputs": str(tmp / "x.npy"),
                "out": str(folder),
            }
        )
    _run_oracle(jobs, tmp)
    return tmp


@pytest.mark.parametrize("variant", list(SAELENS_VARIANTS))
def test_saelens_folder_loads_and_encodes_identically(exchange, variant):
    folder = exchange / f"sl_{variant}"
    sae = io.load(folder)
    arch, transcoder = SAELENS_VARIANTS[variant]
    assert sae.architecture == arch
    assert sae.is_transcoder is transcoder
    assert sae.d_in == D_IN and sae.d_sae == D_SAE
    assert sae.d_out == (D_OUT if transcoder else D_IN)
    assert sae.cfg.hook_name == "blocks.0.hook_resid_post"
    if arch in ("topk", "batchtopk", "matryoshka"):
        assert sae.k == K
    if arch == "matryoshka":
        assert sae.cfg.matryoshka_widths == (12, 24, D_SAE)
    x = torch.from_numpy(np.load(exchange / "x.npy"))
    expected_f = np.load(str(folder) + "_f.npy")
    expected_xhat = np.load(str(folder) + "_xhat.npy")
    active = (expected_f != 0).mean()
    assert 0.02 < active < 0.9, active  # the comparison sees both active and inactive latents
    with torch.no_grad():
        f = sae.encode(x)
        x_hat = sae.decode(f)
    np.testing.assert_allclose(f.double().numpy(), expected_f, **TOL)
    np.testing.assert_allclose(x_hat.double().numpy(), expected_xhat, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", list(WHYBOX_VARIANTS))
def test_whybox_folder_loads_in_saelens_and_encodes_identically(exchange, variant):
    folder = exchange / f"wb_{variant}"
    sae = _whybox_sae(variant)  # the same seeded SAE the fixture saved
    read = json.loads(Path(str(folder) + "_cfg.json").read_text())
    assert read["class"] == WHYBOX_VARIANTS[variant]
    x = torch.from_numpy(np.load(exchange / "x.npy"))
    with torch.no_grad():
        f = sae.encode(x)
        x_hat = sae.decode(f)
    f_sl = np.load(str(folder) + "_f.npy")
    assert 0.02 < (f_sl != 0).mean() < 0.9
    np.testing.assert_allclose(f_sl, f.double().numpy(), **TOL)
    np.testing.assert_allclose(
        np.load(str(folder) + "_xhat.npy"), x_hat.double().numpy(), rtol=1e-5, atol=1e-5
    )


def test_save_folds_scaling_but_leaves_the_sae_unchanged(exchange):
    sae = _whybox_sae("scaled_topk")
    cfg = json.loads((exchange / "wb_scaled_topk" / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "none"
    assert sae.scaling_factor == 2.5  # saving folded a copy, not the SAE
    back = io.load(exchange / "wb_scaled_topk")
    assert back.scaling_factor is None
    x = torch.from_numpy(np.load(exchange / "x.npy"))
    with torch.no_grad():
        np.testing.assert_allclose(back.encode(x).numpy(), sae.encode(x).numpy(), **TOL)
        np.testing.assert_allclose(
            back.decode(back.encode(x)).numpy(), sae(x).numpy(), rtol=1e-5, atol=1e-5
        )


def test_oracle_is_not_run_from_the_test_venv():
    """The oracle venv is separate: whybox's own venv must not import sae_lens."""
    assert ORACLE_PY.parent.parent.name == ".venv-saelens"
    assert "sae_lens" not in sys.modules
