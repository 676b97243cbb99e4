#!/usr/bin/env bash
# Build the docs from a private copy (.docs-NAME/, beside docs/), so that several people can
# build at once without writing into each other's generated pages:
#   bash scripts/docs-private.sh NAME            strict build, gallery NOT executed (fast)
#   bash scripts/docs-private.sh NAME PATTERN    strict build, executing the examples whose
#                                                path matches PATTERN (e.g. 'plot_ebm')
# The HTML lands in .docs-NAME/_build/html; the offline check runs on it.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: docs-private.sh NAME [PATTERN]}
dest=".docs-$name"
rm -rf "$dest"
mkdir -p "$dest"
tar -C docs --exclude ./_build --exclude ./auto_examples --exclude ./api/generated -cf - . | tar -C "$dest" -xf -
if [[ $# -ge 2 ]]; then
  export WHYBOX_DOCS_GALLERY=True WHYBOX_DOCS_EXAMPLES="$2"
else
  export WHYBOX_DOCS_GALLERY=False
fi
MPLBACKEND=Agg OMP_NUM_THREADS=1 .venv/bin/python -m sphinx -E -W --keep-going -q -b html "$dest" "$dest/_build/html"
.venv/bin/python "$dest/check_offline.py" "$dest/_build/html"
