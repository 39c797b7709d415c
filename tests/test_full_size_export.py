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
# The README's text buckets: a three-signature text encoder is this much larger than its 77-token subgraph alone
# (float32: measured 0.09%; the quantised variants about 2.4%, each subgraph repeating the weights'
# quantisation parameters; docs/benchmarks.md, "Text length buckets"). A weight stored twice would add 100%.
EXTRA_SIGNATURES_AT_MOST = {"float32": 0.001, "dynamic_int8": 0.03, "int8": 0.03}


def _with_and_without_the_other_signatures(path):
    """(bytes of the .tflite file, bytes of the same model with serving_default's subgraph alone: that subgraph,
    the buffers it reads and the model's metadata, what a 77-token-only conversion writes), both as one
    flatbuffers builder writes the tables plus the buffers' data, so that the two differ only in what the other
    signatures add."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as file:
        model = schema.ModelT.InitFromPackedBuf(file.read())
    # Data inside the flatbuffer, or after it (offset and size, as ai-edge-quantizer writes large models).
    data = [len(b.data) if b.data is not None else b.size if b.offset > 1 else 0 for b in model.buffers]
    for buffer in model.buffers:
        buffer.data, buffer.offset, buffer.size = None, 0, 0

    def size(buffers):
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return len(builder.Output()) + sum(data[index] for index in buffers)

    whole = size(range(len(data)))
    (default,) = [s for s in model.signatureDefs if s.signatureKey == b"serving_default"]
    model.subgraphs, model.signatureDefs = [model.subgraphs[default.subgraphIndex]], [default]
    default.subgraphIndex = 0
    used = ({t.buffer for t in model.subgraphs[0].tensors} | {m.buffer for m in model.metadata or ()}
            | set(model.metadataBuffer or ()))
    return whole, size(used)


@pytest.mark.slow
def test_full_base_patch32_export(tmp_path):
    """The command line on the full-size model: every artifact ships, the size and dynamic_int8 claims of the
    README hold, and the process tree's peak memory stays under BASE_PATCH32_PEAK_GB."""
    from tests.process_memory import PeakTreeMemory

    process = subprocess.Popen([sys.executable, "-m", "converters.export", "--preset=clip-vit-base-patch32",
                                "--weights=random", f"--output_dir={tmp_path}"],
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakTreeMemory(process.pid)
    output, _ = process.communicate(timeout=1800)
    peak_gb, largest_gb = memory.stop() / 2**30, memory.largest / 2**30
    print(output)
    assert process.returncode == 0, output[-3000:]
    # Quiet (no --verbose) and successful: what TensorFlow and the other libraries printed, in the exporter and its
    # conversion processes (TensorFlow's CUDA probing on a machine without a GPU), is captured and not shown.
    assert "--- what TensorFlow" not in output and "cuda" not in output.lower(), output[-3000:]
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
    for variant, most in EXTRA_SIGNATURES_AT_MOST.items():
        path = os.path.join(target, f"tflite/text_encoder_{variant}.tflite")
        whole, alone = _with_and_without_the_other_signatures(path)
        print(f"text_encoder_{variant}.tflite: {whole / alone - 1:.3%} larger than its 77-token signature alone")
        assert whole / alone - 1 < most, (variant, whole, alone)
    print(f"peak memory of the exporter's process tree: {peak_gb:.2f} GB (largest process {largest_gb:.2f} GB)")
    assert peak_gb < BASE_PATCH32_PEAK_GB
