#!/usr/bin/env bash
# Makes this machine ready for `bazel build` / `bazel test` of clip_edge: installs Debian's bazel-bootstrap
# (Bazel 4.2.3) when no bazel is on PATH and checks the interpreter the Python toolchain will use.
#
# The interpreter path itself is not written here: @python_venv (tools/bazel/python_venv.bzl) computes it
# when Bazel loads the workspace, so plain `bazel ...` works in any checkout. Override: CLIP_EDGE_PYTHON.
set -euo pipefail

workspace_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if ! command -v bazel >/dev/null 2>&1; then
  echo "bazel not found; installing Debian's bazel-bootstrap" >&2
  if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)  # -n: fail instead of waiting for a password
  else
    echo "error: bazel is missing and installing it needs root (apt-get install bazel-bootstrap)" >&2
    exit 1
  fi
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bazel-bootstrap
fi

interpreter="${CLIP_EDGE_PYTHON:-$workspace_root/.venv/bin/python3}"
if [[ ! -x "$interpreter" ]]; then
  echo "error: no Python interpreter at $interpreter; create the project virtualenv first" \
       "(make install) or set CLIP_EDGE_PYTHON" >&2
  exit 1
fi
if ! "$interpreter" -c "import pytest, tensorflow" >/dev/null 2>&1; then
  echo "error: $interpreter cannot import pytest and tensorflow; run make install" >&2
  exit 1
fi
echo "bazel: $(command -v bazel); Python toolchain: $interpreter" >&2
