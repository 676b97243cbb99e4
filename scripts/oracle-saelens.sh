#!/usr/bin/env bash
# The sae-lens oracle environment (test-only): .venv-saelens, apart from .venv.
#
# sae-lens 6.54 pins transformer-lens < 4, while .venv carries transformer-lens 4.3 for the other
# oracles, so sae-lens gets a venv of its own. whybox never imports it: tests/sae/_saelens_oracle.py
# runs inside this venv in a subprocess and exchanges plain files (cfg.json, safetensors, .npy).
#
# Idempotent: does nothing when the stamp file exists and is newer than this script.
# torch is held at the CPU wheel 2.13.0 (any other version pulls a CUDA build) and torchvision is
# forbidden outright (a CUDA torchvision breaks transformers' imports).
#
# usage: bash scripts/oracle-saelens.sh [VENV_DIR]      (default .venv-saelens)
set -euo pipefail

VENV_DIR="${1:-.venv-saelens}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV_DIR/.installed"
SCRIPT="${BASH_SOURCE[0]}"

if [[ -f "$STAMP" && "$STAMP" -nt "$SCRIPT" && -x "$VENV_DIR/bin/python" ]]; then
    exit 0
fi

start=$(date +%s)
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV_DIR"
fi

constraints="$VENV_DIR/constraints.txt"
cat > "$constraints" <<'PINS'
torch==2.13.0
# no such release: pip stops here rather than pull a CUDA torchvision
torchvision==0.0.0
PINS

pip_install=("$VENV_DIR/bin/python" -m pip install --disable-pip-version-check -q -c "$constraints")
"${pip_install[@]}" "torch==2.13.0"
"${pip_install[@]}" "sae-lens==6.54.*"

# the oracle must import; a failure here leaves no stamp, so the next run tries again
"$VENV_DIR/bin/python" -c "import sae_lens, torch; from sae_lens import TopKSAE, JumpReLUSAE, StandardSAE"

touch "$STAMP"
echo "oracle-saelens: $VENV_DIR ready in $(( $(date +%s) - start )) s"
