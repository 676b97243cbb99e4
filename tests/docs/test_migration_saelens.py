"""docs/migration/saelens.md runs, and SAELens reads what whybox writes (and back) identically.

The page's ``# whybox`` blocks run in page order in one namespace, in a temporary folder, on
the zoo's tiny GPT-2 (training cut to a few steps). Its ``# SAELens`` blocks, except those whose
first line says "not run here" (they need the Hugging Face Hub), run in SAELens 6.54's own
environment (``.venv-saelens``; it pins TransformerLens < 4) in a subprocess that is started
first, imports SAELens while whybox works, and waits for whybox's folder and activations. The
oracle is SAELens itself: its encoding of the folder whybox saved must equal whybox's, and
whybox must encode the folder SAELens saved as SAELens does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.docs._md_blocks import blocks, run_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migration" / "saelens.md"
ORACLE_PY = ROOT / ".venv-saelens" / "bin" / "python"
NOT_RUN = "not run here"

#: runs in .venv-saelens: import SAELens, wait for whybox's files, run the page's blocks
HARNESS = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import torch
import sae_lens  # noqa: F401  (imported while whybox runs its blocks)

torch.set_num_threads(1)
spec = json.loads(Path(sys.argv[1]).read_text())
go = Path("go")
deadline = time.time() + 600
while not go.exists():
    if time.time() > deadline:
        raise SystemExit("whybox never wrote its folder")
    time.sleep(0.1)
ns = {"x": torch.from_numpy(np.load("x.npy"))}
for k, src in enumerate(spec["blocks"]):
    exec(compile(src, f"saelens.md[SAELens block {k}]", "exec"), ns)
with torch.no_grad():
    np.save("sl_f.npy", ns["f"].double().numpy())
    np.save("sl_xhat.npy", ns["x_hat"].double().numpy())
    np.save("sl_forward.npy", ns["sae"](ns["x"]).double().numpy())
print("saelens blocks done")
"""


def _saelens_blocks() -> tuple[list[str], list[str]]:
    found = blocks(PAGE, "SAELens")
    skipped = [b for b in found if NOT_RUN in b.splitlines()[0]]
    return [b for b in found if b not in skipped], skipped


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(whybox namespace, working folder) after both sides ran."""
    if not ORACLE_PY.exists():
        pytest.fail(
            f"the SAELens oracle venv is missing ({ORACLE_PY}). `make test` builds it; or run "
            "`bash scripts/oracle-saelens.sh` once (about 90 s, needs PyPI)."
        )
    work = tmp_path_factory.mktemp("saelens_page")
    runnable, skipped = _saelens_blocks()
    # only the Hub-bound blocks are left out: pretrained release, training runner, run_evals
    assert len(skipped) == 3 and len(runnable) == 1
    (work / "spec.json").write_text(json.dumps({"blocks": runnable}))
    (work / "harness.py").write_text(HARNESS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [str(ORACLE_PY), "harness.py", "spec.json"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cwd = os.getcwd()
    try:
        os.chdir(work)  # the page writes its folders ("my_sae", "features") where it runs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ns = run_blocks(PAGE, "whybox")
        np.save(work / "x.npy", ns["x"].detach().numpy())
        (work / "go").write_text("")
        out, err = proc.communicate(timeout=600)
    finally:
        os.chdir(cwd)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"SAELens blocks failed:\n{out[-2000:]}\n{err[-4000:]}"
    return ns, work


def test_whybox_blocks_ran(run):
    ns, work = run
    assert len(blocks(PAGE, "whybox")) >= 10
    sae = ns["sae"]
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == (128, 512, 16)
    assert (work / "my_sae" / "cfg.json").exists() and (work / "features").is_dir()
    # TopK: exactly k active latents per token (or fewer where pre-activations are <= 0)
    assert int((ns["f"] > 0).sum(-1).max()) <= 16
    # the architectures block trained what it says
    assert type(ns["transcoder"]).__name__ == "TopKSAE" and ns["transcoder"].cfg.d_out == 64
    assert ns["scope"].cfg.apply_b_dec_to_input is False  # Gemma Scope does not subtract b_dec
    model = ns["model"]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_saelens_encodes_whybox_folder_identically(run):
    ns, work = run
    with torch.no_grad():
        ours_f = ns["f"].double().numpy()
        ours_xhat = ns["x_hat"].double().numpy()
    np.testing.assert_allclose(np.load(work / "sl_f.npy"), ours_f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(work / "sl_xhat.npy"), ours_xhat, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(work / "sl_forward.npy"), ours_xhat, rtol=1e-5, atol=1e-5)


def test_whybox_loads_the_folder_saelens_saved(run):
    import whybox as wb

    ns, work = run
    back = wb.sae.load(work / "from_saelens", model=ns["model"], site="blocks.2.resid_post")
    with torch.no_grad():
        f = back.encode(ns["x"]).double().numpy()
    np.testing.assert_allclose(f, np.load(work / "sl_f.npy"), rtol=1e-5, atol=1e-6)
    assert back.cfg.k == 16 and back.architecture == "topk"


def test_run_with_features_error_term(run):
    ns, _ = run
    # the error term makes the unedited splice the identity; the bare splice moves the logits
    assert torch.allclose(ns["kept"], ns["plain"], atol=1e-4)
    assert not torch.allclose(ns["spliced"], ns["plain"], atol=1e-4)
    assert not torch.equal(ns["steered"], ns["plain"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
