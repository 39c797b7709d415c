#!/usr/bin/env bash
# The Bazel part of CI (called by .ci/run via `make bazel`): installs Bazel if absent, builds every target,
# runs the fast tests (one py_test per tests/test_*.py, slow tests deselected; BAZEL_TEST_TARGETS narrows them)
# and one real export of a small checkpoint through `bazel run`. Exits non-zero on the first failure. Extra
# arguments go to `bazel test` (e.g. --nocache_test_results, --test_output=all).
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
# BAZEL_TEST_TARGETS narrows the tests (default: all of them); CI names one, since `make test` has just run every
# suite through pytest and the Bazel part only has to prove the sandboxed wiring.
read -r -a test_targets <<<"${BAZEL_TEST_TARGETS:-//tests:all}"
step bazel test "${test_targets[@]}" "$@"

# The exporter's own tests run through pytest; this checks the `bazel run` entry point end to end (module launch,
# flags, runfiles assets) on a small random checkpoint written by transformers, with the cheapest variant.
export_dir="$(mktemp -d)"
trap 'rm -rf "$export_dir"' EXIT
.venv/bin/python -c 'import sys; from tests import reference
reference.random_hf_clip(reference.hf_clip_config(64, 2, 4, 16, 64, 64, 2, 4, 32), seed=5).save_pretrained(sys.argv[1])
' "$export_dir/checkpoint"
step bazel run //converters:export -- --weights="$export_dir/checkpoint" --name=small --variants=float32 \
  --output_dir="$export_dir/out"
for artifact in manifest.json saved_model/saved_model.pb tflite/image_encoder_float32.tflite \
    tflite/text_encoder_float32.tflite; do
  if [[ ! -s "$export_dir/out/small/$artifact" ]]; then
    echo "error: bazel run //converters:export did not write small/$artifact" >&2
    exit 1
  fi
done
