"""The Java core's encoders on LiteRT through JNI (clip-jvm) vs ai_edge_litert's Python CompiledModel on the same
.tflite files, ms per encoding, same run, every variant.

    .venv/bin/python -m benchmarks.bench_jvm_runtime --export=DIR [--threads=2] [--repeats=20] [--variants=...]

Both sides run the same runtime (libLiteRt.so of the ai-edge-litert wheel) with the same CPU thread count, one
image (the astronaut photo, already resized and cropped) and one sentence at batch 1. Java: the hidden
`clip-jvm embed-image/embed-text --repeat N` option (N warm-up calls and at least two seconds, then the median of
N timed calls of the encoder: input copy, LiteRT run, output read and L2 normalisation). Python: CompiledModel
with the input buffer written once and the output read back each call, on the signature Java picks (the text
encoder's shortest length bucket that holds the sentence; the full length too, to show what the bucket saves). The
sides alternate per artifact (Python,
Java, Python) and Python's figure is the lower of its two medians, so load from other processes does not favour
Java. Reports the CPU model, each median and the ratio Python / Java (above 1: the JVM path is faster); then
`clip-jvm classify --repeat N` end to end per variant (a 512 x 512 photo resized and cropped in Java, the image
encoder, the ranking of cached labels), as an app classifying photos runs it.
"""

import argparse
import json
import os
import re
import statistics
import tempfile
import time

import numpy as np

from benchmarks.machine import cpu_model
from tests import jvm
from tests import photos
from tests import reference
from converters.variants import VARIANTS

CLASSIFY_LABELS = ("a photo of an astronaut", "a photo of a cat", "a photo of a dog", "a rocket", "a cup of coffee")


def png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return f"{image.width} x {image.height}"


def python_median_ms(path, array, threads, repeats, signature=0):
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.options import CpuOptions, HardwareAccelerator, Options

    model = CompiledModel.from_file(path, options=Options(hardware_accelerators=HardwareAccelerator.CPU,
                                                          cpu_options=CpuOptions(num_threads=threads)))
    inputs, outputs = model.create_input_buffers(signature), model.create_output_buffers(signature)
    inputs[0].write(array)
    (output,) = model.get_output_tensor_details(model.get_signature_by_index(signature)["key"]).values()
    size = int(np.prod(output["shape"]))

    def once():
        model.run_by_index(signature, inputs, outputs)
        return outputs[0].read(size, np.float32)

    warm_up_end = time.perf_counter() + 2.0
    count = 0
    while count < repeats or time.perf_counter() < warm_up_end:
        once()
        count += 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bucket_signature(path, artifact, token_ids):
    """(signature index in the file, key, length) of the shortest signature holding the first end token, as
    the Java TextEncoder picks it."""
    from ai_edge_litert.compiled_model import CompiledModel

    end = int(np.argmax(token_ids[0]))
    lengths = {s["key"]: s["length"] for s in artifact.get("signatures", [])}
    key = min((k for k, length in lengths.items() if end < length), key=lengths.get, default=None)
    if key is None:  # no bucket holds it (or there are none): the file's first signature, the full length
        return 0, "full length", token_ids.shape[1]
    return CompiledModel.from_file(path).get_signature_index(key), key, lengths[key]


def java_median_ms(command, export, variant, threads, repeats, arguments=(), line=None):
    result = jvm.run(command, "--export", export, "--variant", variant, "--threads", threads, "--repeat", repeats,
                     *arguments, lines=[line] if line is not None else None)
    match = re.search(r"_ms_median=([0-9.]+)", result.stderr.decode("utf-8"))
    if not match:
        raise RuntimeError(f"clip-jvm printed no timing: {result.stderr.decode('utf-8', 'replace')[-500:]}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    manifest = json.load(open(os.path.join(args.export, "manifest.json")))
    artifacts = {(a["tower"], a["variant"]): a for a in manifest["artifacts"] if a.get("tower")}
    print(f"CPU: {cpu_model()}; {args.threads} threads; median of {args.repeats}; batch 1")
    print("| artifact | signature | Python CompiledModel ms | clip-jvm ms | Python / Java |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        from PIL import Image

        from clip_edge.preprocessing import ImagePreprocessor

        for tower in ("image", "text"):
            for variant in args.variants.split(","):
                artifact = artifacts[(tower, variant)]
                shape = artifact["inputs"][0]["shape"]
                path = os.path.join(args.export, artifact["path"])
                if tower == "image":
                    # Already R x R, so the Java side's resize is the identity and both sides time the encoder.
                    pixels = ImagePreprocessor(shape[1]).resize_and_crop(photos.photo("astronaut")).numpy()
                    pixels = np.asarray(pixels, np.uint8).reshape(shape)
                    png = os.path.join(folder, "astronaut.png")
                    Image.fromarray(pixels[0]).save(png)
                    array, java = pixels, lambda: java_median_ms(
                        "embed-image", args.export, variant, args.threads, args.repeats, arguments=[png])
                    signature, label = 0, "default"
                else:
                    sentence = reference.SENTENCES[2]
                    array = reference.reference_token_ids([sentence], shape[1])
                    java = lambda: java_median_ms(  # noqa: E731
                        "embed-text", args.export, variant, args.threads, args.repeats, line=sentence)
                    signature, key, length = bucket_signature(path, artifact, array)
                    array, label = array[:, :length], f"{key} ({length} ids)"
                first = python_median_ms(path, array, args.threads, args.repeats, signature)
                java_ms = java()
                python_ms = min(first, python_median_ms(path, array, args.threads, args.repeats, signature))
                print(f"| {artifact['path']} | {label} | {python_ms:.2f} | {java_ms:.2f} | {python_ms / java_ms:.2f} |",
                      flush=True)
                if tower == "text" and signature != 0:
                    full = python_median_ms(path, reference.reference_token_ids([sentence], shape[1]), args.threads,
                                            args.repeats)
                    print(f"| {artifact['path']} | full length ({shape[1]} ids), Python only | {full:.2f} | | |",
                          flush=True)

        # End to end on the device path: a 512 x 512 photo resized and cropped in Java, the image encoder, and
        # the ranking of labels whose text embeddings are cached (as an app classifying many photos has them).
        png = os.path.join(folder, "astronaut_full.png")
        Image.fromarray(photos.photo("astronaut")).save(png)
        print(f"\nclip-jvm classify, {png_size(png)} PNG, {len(CLASSIFY_LABELS)} cached labels, median of "
              f"{args.repeats} (resize and crop + image encoder + ranking):")
        print("| variant | classify ms |")
        print("|---|---|")
        for variant in args.variants.split(","):
            ms = java_median_ms("classify", args.export, variant, args.threads, args.repeats, arguments=[png,
                                *CLASSIFY_LABELS])
            print(f"| {variant} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
