"""Transcoders that ``SAE.save`` writes must be ones SAELens can load; a TopK one is refused.

SAELens 6.54 (in .venv-saelens) is the oracle: its architecture registry says which transcoder
classes exist (``transcoder``, ``jumprelu_transcoder`` and the skip variants, no TopK), and its
``SAE.load_from_disk`` fails on the layout whybox used to write for a TopK transcoder
(``architecture: "topk"`` plus ``d_out``), so ``save`` refuses one instead of writing a folder
that SAELens cannot read. The transcoders whybox does write (ReLU, JumpReLU, BatchTopK,
Matryoshka) are loaded and encoded by SAELens in tests/sae/test_io_saelens.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from whybox.errors import InvalidParameterError, WhyboxError  # noqa: E402
from whybox.sae.models import SAE, SAEConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = ROOT / ".venv-saelens" / "bin" / "python"
D_IN, D_SAE, D_OUT, K = 16, 48, 12, 5

# run by .venv-saelens/bin/python: SAELens' registered transcoder architectures, and whether
# SAELens loads the folder whybox used to write for a TopK transcoder
_ORACLE = textwrap.dedent(
    """
    import json, sys
    import sae_lens as sl
    from sae_lens.registry import SAE_CLASS_REGISTRY
    from sae_lens.saes.transcoder import TranscoderConfig

    out = {"transcoders": sorted(
        name for name, (_, cfg_cls) in SAE_CLASS_REGISTRY.items()
        if issubclass(cfg_cls, TranscoderConfig)
    )}
    try:
        sl.SAE.load_from_disk(sys.argv[1])
        out["old_layout"] = "loaded"
    except Exception as exc:
        out["old_layout"] = type(exc).__name__ + ": " + str(exc)[:300]
    print(json.dumps(out))
    """
)


def _topk_transcoder() -> SAE:
    cfg = SAEConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture="topk",
        k=K,
        d_out=D_OUT,
        hook_name="blocks.0.ln2",
        hook_name_out="blocks.0.mlp.out",
    )
    return SAE.create(cfg, random_state=7)


def _old_topk_transcoder_folder(folder: Path, sae: SAE) -> None:
    """The layout whybox wrote before the fix: SAELens' ``topk`` config plus ``d_out``."""
    from safetensors.torch import save_file

    folder.mkdir()
    tensors = {name: getattr(sae, name).detach().contiguous() for name in ("W_enc", "W_dec")}
    tensors.update({name: getattr(sae, name).detach().contiguous() for name in ("b_enc", "b_dec")})
    save_file(tensors, str(folder / "sae_weights.safetensors"), metadata={"format": "pt"})
    cfg = {
        "architecture": "topk",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "d_out": D_OUT,
        "k": K,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "rescale_acts_by_decoder_norm": False,
        "metadata": {"hook_name": "blocks.0.ln2", "sae_lens_version": "6.0.0"},
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def saelens_view(tmp_path_factory) -> dict:
    if not ORACLE_PY.exists():
        pytest.fail(
            f"the SAELens oracle venv is missing ({ORACLE_PY}). `make test` builds it; or run "
            "`bash scripts/oracle-saelens.sh` once (about 90 s, needs PyPI)."
        )
    tmp = tmp_path_factory.mktemp("saelens_topk_transcoder")
    _old_topk_transcoder_folder(tmp / "old", _topk_transcoder())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [str(ORACLE_PY), "-c", _ORACLE, str(tmp / "old")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(tmp),
    )
    if done.returncode != 0:
        pytest.fail(f"the SAELens oracle failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_saelens_has_no_topk_transcoder(saelens_view):
    names = saelens_view["transcoders"]
    # the two architectures save writes transcoders as are SAELens transcoder classes
    assert {"transcoder", "jumprelu_transcoder"} <= set(names)
    assert not [name for name in names if "topk" in name], names


def test_saelens_cannot_load_the_former_topk_transcoder_layout(saelens_view):
    assert saelens_view["old_layout"] != "loaded"
    assert "size mismatch" in saelens_view["old_layout"]


def test_save_refuses_a_topk_transcoder_and_writes_nothing(tmp_path):
    sae = _topk_transcoder()
    with pytest.raises(InvalidParameterError, match="TopK transcoder") as info:
        sae.save(tmp_path / "sae")
    assert isinstance(info.value, WhyboxError)
    message = str(info.value)
    for works in ("jumprelu_transcoder", "'standard'", "'jumprelu'", "'batchtopk'"):
        assert works in message, works
    assert not (tmp_path / "sae").exists()


def test_refusal_leaves_an_existing_folder_as_it_was(tmp_path):
    folder = tmp_path / "sae"
    folder.mkdir()
    (folder / "cfg.json").write_text("{}")
    with pytest.raises(InvalidParameterError):
        _topk_transcoder().save(folder)
    assert sorted(os.listdir(folder)) == ["cfg.json"]
    assert (folder / "cfg.json").read_text() == "{}"


def test_a_topk_sae_of_the_same_width_still_saves(tmp_path):
    # d_out == d_in and no output site: a plain TopK SAE, which SAELens' TopKSAE loads
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=K, d_out=D_IN)
    sae = SAE.create(cfg, random_state=1)
    assert not sae.is_transcoder
    sae.save(tmp_path / "sae")
    written = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert written["architecture"] == "topk" and "d_out" not in written
    assert written["k"] == K
