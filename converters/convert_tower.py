"""TFLite variants of one tower, converted in a process of its own (converters.export runs it).

    python -m converters.convert_tower JOB.json

The exporter writes each tower's functions as SavedModels (the plain model's, and an equalised copy's for the
variants converted from one), lets go of its model and runs this module once per tower and SavedModel (a small
tower converts in the exporter's process instead: converters.export.IN_PROCESS_CONVERSION_BYTES). Memory
is the reason: the TFLite converter's peak is about six times the weights it converts (7.7 GB for
clip-vit-large-patch14-336's 1.2 GB image tower), so it must not run beside the model, an equalised copy or
what earlier conversions left behind; a process of its own reading the weights from disk holds none of that,
and returns everything when it exits (docs/benchmarks.md, "Export").

JOB.json holds: "tower"; "variants"; "path", the SavedModel, and "inputs", {signature key: [input names]}; its
"int8_recipe"; "calibration": an .npz of one [N, ...] array per signature key, or null; "threads";
"outputs": {variant: .tflite path to write}; "result": where the outcome is written, {"recipes": {variant:
recipe}, "float_ops": {variant: [{"op", "why"}]}} or {"error": message}; "parent_pid" and "progress_fd" (our
progress lines' file descriptor, or null); "crops_per_photo" (the calibration images: that many crops of each
photo in a row).
"""

import ctypes
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _die_with_parent(parent_pid):
    """A killed exporter must not leave this process converting into a folder the next run removes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):  # not Linux: the exporter's stale-folder cleanup still applies
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _datasets(calibration_path, progress, tower):
    """{signature key: representative dataset} over the job's calibration arrays, drawing progress bars."""
    import numpy as np

    with np.load(calibration_path) as arrays:
        samples = {key: arrays[key] for key in arrays.files}

    name = "zero-shot classifier" if tower == "zero_shot" else f"{tower} encoder"

    def dataset(key, items):
        label = f"calibrating {name}" + (f" [{key}]" if len(samples) > 1 else "")

        def generate():
            for index, item in enumerate(items):
                progress.bar(index + 1, len(items), label)
                yield [item[np.newaxis]]
        return generate

    return {key: dataset(key, items) for key, items in samples.items()}


def convert(job, progress, own_process=True):
    """Converts and writes every variant of the job; ({variant: recipe description}, {variant: the ops its
    recipe's float fallback kept in float}). `own_process`: this is the conversion's own process (main), which
    sets TensorFlow's threads; the exporter's process has set them."""
    import tensorflow as tf

    from . import tflite_variants

    if own_process:
        tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    datasets = _datasets(job["calibration"], progress, job["tower"]) if job["calibration"] else None
    source = tflite_variants.SavedModelSource(job["path"], job["inputs"])
    converted = tflite_variants.convert_variants(source, job["variants"], datasets, job["int8_recipe"],
                                                 threads=job["threads"], crops_per_photo=job["crops_per_photo"])
    recipes, float_ops = {}, {}
    for variant, result in converted.items():
        path = job["outputs"][variant]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(result.tflite)
        recipes[variant], float_ops[variant] = result.recipe, list(result.float_ops)
    return recipes, float_ops


def main(argv):
    if len(argv) != 2:
        print("usage: python -m converters.convert_tower JOB.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as file:
        job = json.load(file)
    _die_with_parent(job["parent_pid"])
    from .export import Progress

    progress = Progress(os.fdopen(job["progress_fd"], "w", closefd=False) if job["progress_fd"] is not None
                        else None)
    try:
        recipes, float_ops = convert(job, progress)
        outcome = {"recipes": recipes, "float_ops": float_ops}
    except Exception as error:  # reported to the exporter, which names the stage
        outcome = {"error": f"{type(error).__name__}: {error}"}
    with open(job["result"], "w", encoding="utf-8") as file:
        json.dump(outcome, file)
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
