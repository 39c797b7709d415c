"""One full clip-vit-base-patch32 export from the command line, with its peak memory (slow: about four minutes,
in a file of its own so that pytest-xdist runs it beside test_export.py, not after it)."""

import json
import os
import subprocess
import sys

import pytest


# The exporter's peak memory for the full-size clip-vit-base-patch32 export (all variants), as the whole process
# tree: the scaled-down check of "every preset within 12 GB" (docs/benchmarks.md, "Export"). Measured 4.00 GB
# (4.74 GB with one conversion process per tower); the exporter before the towers got processes of their own
# and calibration its profiler-based mode peaked at 5.88 GB on the same machine. Those figures sampled current
# RSS every 0.2 s; PeakTreeMemory bounds the peak from high-water marks now (tests/process_memory.py), which
# counts peaks between samples too, so it reads at least as high.
BASE_PATCH32_PEAK_GB = 5.5


@pytest.mark.slow
def test_full_base_patch32_export(tmp_path):
    """The command line on the full-size model: every artifact ships, the size and dynamic_int8 claims of the
    README hold, and the process tree's peak memory stays under BASE_PATCH32_PEAK_GB."""
    from process_memory import PeakTreeMemory

    process = subprocess.Popen([sys.executable, "-m", "converters.export", "--preset=clip-vit-base-patch32",
                                "--weights=random", f"--output_dir={tmp_path}"],
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakTreeMemory(process.pid)
    output, _ = process.communicate(timeout=1800)
    peak_gb, largest_gb = memory.stop() / 2**30, memory.largest / 2**30
    print(output)
    assert process.returncode == 0, output[-3000:]
    target = os.path.join(tmp_path, "clip-vit-base-patch32")
    manifest = json.loads(open(os.path.join(target, "manifest.json")).read())
    assert "rejected" not in manifest or not manifest["rejected"], manifest.get("rejected")
    sizes = {a["path"]: a["bytes"] for a in manifest["artifacts"]}
    for tower in ("image", "text"):
        float32 = sizes[f"tflite/{tower}_encoder_float32.tflite"]
        assert sizes[f"tflite/{tower}_encoder_float16.tflite"] <= 0.51 * float32
        assert sizes[f"tflite/{tower}_encoder_int8.tflite"] <= 0.27 * float32
        assert sizes[f"tflite/{tower}_encoder_dynamic_int8.tflite"] <= 0.27 * float32  # README: a quarter
        # The README's claim for dynamic_int8 (its bar is only 0.99), on every signature of the file.
        entry = next(a for a in manifest["artifacts"] if a["path"] == f"tflite/{tower}_encoder_dynamic_int8.tflite")
        for signature in entry.get("signatures", [entry]):
            assert signature["parity"]["cosine_min"] > 0.999, (tower, signature.get("key"), signature["parity"])
    print(f"peak memory of the exporter's process tree: {peak_gb:.2f} GB (largest process {largest_gb:.2f} GB)")
    assert peak_gb < BASE_PATCH32_PEAK_GB
