"""SAEConfig's JumpReLU defaults are SAELens' (the oracle: SAELens 6.54 in .venv-saelens).

SAELens keeps ``jumprelu_init_threshold`` and ``jumprelu_bandwidth`` on its JumpReLU training
config (``JumpReLUTrainingSAEConfig``); whybox's :class:`SAEConfig` documents its defaults as
SAELens', so they must be the values SAELens' own dataclasses hold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from whybox.sae.config import SAEConfig

ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = ROOT / ".venv-saelens" / "bin" / "python"
FIELDS = ("jumprelu_init_threshold", "jumprelu_bandwidth")

_ORACLE = f"""
import dataclasses, json
import sae_lens as sl
fields = {{f.name: f.default for f in dataclasses.fields(sl.JumpReLUTrainingSAEConfig)}}
out = {{"JumpReLUTrainingSAEConfig": {{k: fields.get(k) for k in {FIELDS!r}}}}}
out["version"] = sl.__version__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def saelens_defaults() -> dict:
    if not ORACLE_PY.exists():
        pytest.fail(
            f"the SAELens oracle venv is missing ({ORACLE_PY}). `make test` builds it; or run "
            "`bash scripts/oracle-saelens.sh` once (about 90 s, needs PyPI)."
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [str(ORACLE_PY), "-c", _ORACLE], capture_output=True, text=True, timeout=600, env=env
    )
    if done.returncode != 0:
        pytest.fail(f"the SAELens oracle failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_jumprelu_defaults_are_saelens_defaults(saelens_defaults):
    assert saelens_defaults["version"].startswith("6.")
    theirs = saelens_defaults["JumpReLUTrainingSAEConfig"]
    ours = {f.name: f.default for f in dataclasses.fields(SAEConfig)}
    for name in FIELDS:
        assert isinstance(theirs[name], float), (name, theirs[name])
        assert ours[name] == theirs[name], (name, ours[name], theirs[name])
    cfg = SAEConfig(d_in=8, d_sae=16, architecture="jumprelu")
    assert (cfg.jumprelu_init_threshold, cfg.jumprelu_bandwidth) == (
        theirs["jumprelu_init_threshold"],
        theirs["jumprelu_bandwidth"],
    )
