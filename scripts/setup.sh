#!/usr/bin/env bash
# Create .venv (if missing) and install gnnzoo with its dev extra. Safe to run again: it skips the
# install when pyproject.toml has not changed since the last successful one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.gnnzoo-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import gnnzoo, torch" 2>/dev/null; then
  echo "[setup] .venv is up to date"
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
# CPU build, pinned: an unpinned torch would pull several GB of CUDA wheels
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, torch_geometric, pytorch_lightning as pl; print(f"torch {torch.__version__}, PyG {torch_geometric.__version__}, Lightning {pl.__version__}")')"
