#!/usr/bin/env bash
# Creates or updates the project virtualenv: `install_venv.sh [PYTHON [VENV]]` (defaults: the first of
# python3.11, python3.12, python3.10 on PATH; .venv in the repository). The one recipe behind `make install`
# and Bazel's @python_venv repository rule (tools/bazel/python_venv.bzl), which runs it in a fresh clone.
#
# VENV/.installed marks a complete install: it is written last, so an interrupted install is redone, and it
# is up to date while newer than pyproject.toml (as make's rule for it); then this script does nothing.
set -euo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:-}"
venv="${2:-$repository/.venv}"

if [[ -f "$venv/.installed" && "$venv/.installed" -nt "$repository/pyproject.toml" ]]; then
  exit 0
fi
if [[ -z "$python" ]]; then
  for candidate in python3.11 python3.12 python3.10; do
    if command -v "$candidate" >/dev/null 2>&1; then
      python="$candidate"
      break
    fi
  done
  if [[ -z "$python" ]]; then
    echo "error: no python3.11, python3.12 or python3.10 on PATH to create $venv with" >&2
    exit 1
  fi
fi

echo "creating the virtualenv $venv with $python and installing clip_edge's dependencies (pip, ~2 min)" >&2
cd "$repository"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# --no-compile: pip would byte-compile all ~16,000 modules (about 40 s of a 2-core machine's install); Python
# compiles the few thousand that are imported on first use and caches them beside their sources.
"$venv/bin/python" -m pip install --quiet --no-compile -e '.[test]'
# open_clip_torch is installed without dependencies: its tokenizer.py is the reference tokenizer for tests,
# and its declared dependency torchvision cannot be installed beside the pinned CPU torch.
"$venv/bin/python" -m pip install --quiet --no-compile --no-deps open_clip_torch==3.3.0
touch "$venv/.installed"
echo "virtualenv $venv ready" >&2
