#!/usr/bin/env bash
# The Bazel part of CI (called by .ci/run): installs Bazel if absent, builds every target, runs the fast
# tests (one py_test per tests/test_*.py, slow tests deselected) and checks that `bazel run` of the exporter
# starts. Exits non-zero on the first failure. Extra arguments go to `bazel test` (e.g. --test_output=all).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/bazel/setup.sh

step() {
  local started=$SECONDS
  echo "+ $*" >&2
  "$@"
  echo "  ($((SECONDS - started)) s)" >&2
}

step bazel build //...
step bazel test //tests:all "$@"
step bazel run //converters:export -- --help >/dev/null
