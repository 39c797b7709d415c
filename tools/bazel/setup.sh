#!/usr/bin/env bash
# Makes this machine ready for `bazel build` / `bazel test` of clip_edge: installs Debian's bazel-bootstrap
# (Bazel 4.2.3) when no bazel is on PATH, and checks $CLIP_EDGE_PYTHON when that overrides the interpreter.
#
# The interpreter path itself is not written here: @python_venv (tools/bazel/python_venv.bzl) computes it, and
# creates the virtualenv when it is missing, when Bazel loads the workspace, so plain `bazel ...` works in any
# checkout.
set -euo pipefail

workspace_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if ! command -v bazel >/dev/null 2>&1; then
  echo "bazel not found; installing Debian's bazel-bootstrap" >&2
  "$workspace_root/scripts/install_system_packages.sh" bazel-bootstrap
fi

# Without CLIP_EDGE_PYTHON, Bazel's @python_venv creates <checkout>/.venv itself when it is missing.
if [[ -n "${CLIP_EDGE_PYTHON:-}" ]]; then
  if ! "$CLIP_EDGE_PYTHON" -c "import pytest, tensorflow" >/dev/null 2>&1; then
    echo "error: CLIP_EDGE_PYTHON=$CLIP_EDGE_PYTHON cannot import pytest and tensorflow" >&2
    exit 1
  fi
  echo "bazel: $(command -v bazel); Python toolchain: $CLIP_EDGE_PYTHON" >&2
else
  echo "bazel: $(command -v bazel); Python toolchain: $workspace_root/.venv/bin/python3" \
       "(created by Bazel on first use when missing)" >&2
fi
