"""The export's records, and their two renderings: manifest.json (for programs) and parity_report.md (for people).

Each stage of converters.export fills in the same records: an ArtifactRecord per TFLite file (its recipe when
converted, its parity results when measured, its delegate readiness when checked) inside one ExportRecord (the
model, weights, settings). write_manifest and write_report only render them.

manifest.json starts with its format_version (clip_edge.export_format) and a "contract" section: what a reader
needs to process inputs as the export does (image limits and resize rule, special tokens, text buckets, the
logit-scale cap, signature keys, the layout), each value taken from its one definition in clip_edge or converters,
so that android_demo's Java core reads them instead of keeping copies.
"""

import dataclasses
import importlib.metadata
import json
import os
import platform

import numpy as np

from clip_edge import export_format
from clip_edge.checkpoint_files import files_sha256
from clip_edge.export_format import FORMAT_VERSION, MANIFEST, REJECTED_DIR, REPORT, SAVED_MODEL
from clip_edge.image_decoding import MAX_PIXELS, MAX_SIDE
from clip_edge.model import MAX_LOGIT_SCALE
from clip_edge.preprocessing import OPENAI_MEAN, OPENAI_STD, RESIZE_RULE
from clip_edge.text_cleaning_tables import TEXT_CLEANING_FORMAT
from clip_edge.tokenizer import END_TOKEN_NAMES, START_TOKEN_NAMES
from .preprocess_tflite import PREPROCESS_PEAK_BYTES_PER_PIXEL, PREPROCESS_PEAK_EXTRA_BYTES
from .variants import DEFAULT_SIGNATURE
from .serving import SIGNATURES

# The report's first line starts so: converters.export recognises the folders it may replace by it.
REPORT_TITLE = "# Parity report: "
TOOLS = ("tensorflow", "tensorflow-text", "ai-edge-litert", "ai-edge-quantizer", "numpy", "clip_edge")


@dataclasses.dataclass
class ArtifactRecord:
    """One TFLite file of the export. `tower`: image, text, zero_shot or preprocess; `variant`: a row of
    converters.variants.VARIANTS (None for preprocess). `parity`: the harness's results, one per signature, the
    full length first. `delegate`: readiness report per signature key, for the variant's delegate target.
    `float_ops`: int8 only, the ops with weights its recipe's float fallback kept in float, each {"op": type
    and scope, "why": the measurements}, most harmful first (converters.int8_fallback)."""

    path: str
    tower: str
    variant: str | None
    recipe: str | None = None
    parity: list = dataclasses.field(default_factory=list)
    delegate: dict = dataclasses.field(default_factory=dict)
    rejected: bool = False  # its variant missed a bar: the file was moved to REJECTED_DIR and is not shipped
    float_ops: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return bool(self.parity) and all(r.passed for r in self.parity)

    def shortfalls(self):
        return [f"{r.label}: {r.shortfall()}" for r in self.parity if not r.passed]


@dataclasses.dataclass
class ExportRecord:
    """What manifest.json and parity_report.md say about one export."""

    name: str
    preset: str | None
    config: dict
    weights_source: dict
    threads: int  # of the latency measurements
    special_token_ids: dict  # {"start": id, "end": id} of the export's tokenizer
    logit_multiplier: float | None = None
    zero_shot: dict | None = None  # labels, templates, logit scale and asset paths of the classifiers
    artifacts: list = dataclasses.field(default_factory=list)  # ArtifactRecord, in conversion order
    rejected_variants: dict = dataclasses.field(default_factory=dict)  # variant -> its shortfalls (gate.Gate)

    @property
    def results(self):
        """Every parity result, in artifact order."""
        return [r for a in self.artifacts for r in a.parity]


def _versions():
    versions = {"python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = importlib.metadata.version(tool)
        except importlib.metadata.PackageNotFoundError:
            versions[tool] = None
    return versions


def _tensor_details(details):
    parameters = details["quantization_parameters"]
    scales, zero_points = parameters["scales"], parameters["zero_points"]
    quantization = None
    if len(scales):
        quantization = {"scales": [float(s) for s in scales], "zero_points": [int(z) for z in zero_points]}
    entry = {"name": details["name"], "dtype": np.dtype(details["dtype"]).name,
             "shape": [int(d) for d in details["shape"]], "quantization": quantization}
    signature = [int(d) for d in details.get("shape_signature", details["shape"])]
    if signature != entry["shape"]:  # -1 marks a dimension set with resize_tensor_input (preprocess.tflite)
        entry["shape_signature"] = signature
    return entry


def tflite_io(path, signature=None):
    """(inputs, outputs) of the default subgraph, or of one signature."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    if signature is None:
        return ([_tensor_details(d) for d in interpreter.get_input_details()],
                [_tensor_details(d) for d in interpreter.get_output_details()])
    runner = interpreter.get_signature_runner(signature)
    return ([dict(_tensor_details(d), signature_name=k) for k, d in runner.get_input_details().items()],
            [dict(_tensor_details(d), signature_name=k) for k, d in runner.get_output_details().items()])


def _parity_entry(result):
    return {k: v for k, v in result.to_dict().items()
            if k not in ("path", "tower", "variant", "latency_ms", "threads", "signature", "length")}


def _latency_entry(result):
    return {"median": result.latency_ms, "runtime": "ai_edge_litert", "threads": result.threads, "batch": 1}


def _describe_weights(source):
    if source["kind"] == "hub":
        return f"Hugging Face {source['repository']} at revision {source['revision']}"
    if source["kind"] == "checkpoint":
        return f"checkpoint {source['path']} (sha256 {source['sha256']})"
    return "random, untrained: embeddings are meaningless; this export only exercises the pipeline"


def _artifact_files(export_dir):
    for folder, _, files in os.walk(export_dir):
        for name in sorted(files):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, export_dir)
            if relative not in (MANIFEST, REPORT) and not relative.startswith(REJECTED_DIR + os.sep):
                yield relative, path


# What preprocess.tflite does and what the app must check (TFLite has no assertions, so nothing refuses).
PREPROCESS_NOTE = ("uint8 RGB [1,H,W,3] of any size (resize_tensor_input) -> uint8 [1,R,R,3], the image encoders' "
                   "input: bicubic resize of the shortest side to R as PIL does it (antialiased when shrinking), "
                   "then the centre crop of CLIPImageProcessor; within one or two 8-bit levels of the SavedModel (see "
                   "parity). CPU only "
                   "(float32). The app must check 1 <= H, W <= {max_side} and H * W <= {max_pixels} first: the "
                   "model has no checks; it gives all zeros for H or W = 0 and wrong pixels for a side above the "
                   "limit. Its peak memory (the input included) is at most {peak_bytes_per_pixel} bytes per input "
                   "pixel plus {peak_extra_mb} MB.")


def _preprocess_entry(path, parity):
    inputs, outputs = tflite_io(path)
    return {"role": "preprocess", "inputs": inputs, "outputs": outputs,
            "limits": {"max_side": MAX_SIDE, "max_pixels": MAX_PIXELS},
            "note": PREPROCESS_NOTE.format(max_side=MAX_SIDE, max_pixels=MAX_PIXELS,
                                           peak_bytes_per_pixel=PREPROCESS_PEAK_BYTES_PER_PIXEL,
                                           peak_extra_mb=PREPROCESS_PEAK_EXTRA_BYTES >> 20),
            "parity": parity}


def _encoder_entry(export, record, path):
    """A TFLite encoder's or classifier's entry: its default signature (the full length) at the top level, and
    for text encoders every signature under "signatures"."""
    first = record.parity[0]
    inputs, outputs = tflite_io(path)
    entry = dict(tower=record.tower, variant=record.variant, recipe=record.recipe, inputs=inputs, outputs=outputs,
                 parity=_parity_entry(first), latency_ms=_latency_entry(first),
                 delegate=record.delegate.get(DEFAULT_SIGNATURE))
    if record.tower == "text":
        entry["signatures"] = []
        for result in record.parity:
            inputs, outputs = tflite_io(path, result.signature)
            entry["signatures"].append({
                "key": result.signature, "length": result.length, "inputs": inputs, "outputs": outputs,
                "parity": _parity_entry(result), "latency_ms": _latency_entry(result),
                "delegate": record.delegate.get(result.signature)})
    if record.tower == "zero_shot":
        entry["labels"] = export.zero_shot and export.zero_shot["labels_path"]
    if record.variant == "int8":
        entry["float_ops"] = record.float_ops
    return entry


def _rejected_entry(export_dir, record):
    path = os.path.join(export_dir, record.path)
    entry = {"path": record.path, "sha256": files_sha256([path]), "bytes": os.path.getsize(path),
             "tower": record.tower, "variant": record.variant, "recipe": record.recipe, "passed": record.passed,
             "parity": [dict(_parity_entry(r), label=r.label) for r in record.parity]}
    if record.variant == "int8":
        entry["float_ops"] = record.float_ops
    return entry


def _text_buckets(export):
    """{length: signature key} of the text encoders' signatures, as the parity harness measured them."""
    return {r.length: r.signature for a in export.artifacts if a.tower == "text" for r in a.parity}


def _contract(export):
    """manifest.json's "contract" section of `export` (an ExportRecord)."""
    buckets = _text_buckets(export)
    ids = export.special_token_ids
    return {
        "image": {"resolution": export.config["image_resolution"], "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD),
                  "max_side": MAX_SIDE, "max_pixels": MAX_PIXELS, "resize": RESIZE_RULE},
        "text": {"context_length": export.config["context_length"],
                 "start_token": {"id": ids["start"], "spellings": list(START_TOKEN_NAMES)},
                 "end_token": {"id": ids["end"], "spellings": list(END_TOKEN_NAMES)},
                 "text_cleaning_format": TEXT_CLEANING_FORMAT, "bucket_lengths": sorted(buckets)},
        "zero_shot": {"max_logit_scale": MAX_LOGIT_SCALE},
        "signatures": {"default": DEFAULT_SIGNATURE, "saved_model": list(SIGNATURES),
                       "text_buckets": {str(length): buckets[length] for length in sorted(buckets)}},
        "layout": {"manifest": MANIFEST, "report": REPORT, "saved_model": SAVED_MODEL, "rejected": REJECTED_DIR,
                   "vocab": export_format.VOCAB, "merges": export_format.MERGES,
                   "text_cleaning": export_format.TEXT_CLEANING, "preprocess": export_format.PREPROCESS_PATH,
                   "zero_shot_labels": export_format.ZERO_SHOT_LABELS,
                   "zero_shot_templates": export_format.ZERO_SHOT_TEMPLATES},
    }


def write_manifest(export_dir, export):
    """manifest.json of `export` (an ExportRecord): every file under export_dir with its sha256 and size, and
    for each TFLite file what its ArtifactRecord holds. `export.logit_multiplier` is what serving_default
    multiplies cosines by (exp(logit_scale), capped): devices that rank labels with the TFLite encoders need it
    to give the same probabilities."""
    records = {a.path: a for a in export.artifacts}
    artifacts = []
    for relative, path in sorted(_artifact_files(export_dir)):
        entry = {"path": relative, "sha256": files_sha256([path]), "bytes": os.path.getsize(path)}
        record = records.get(relative)
        if record is not None and record.tower == "preprocess":
            entry.update(_preprocess_entry(path, record.parity[0].to_dict() if record.parity else None))
        elif record is not None:
            entry.update(_encoder_entry(export, record, path))
        artifacts.append(entry)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": export.name, "preset": export.preset, "config": export.config,
        "logit_multiplier": export.logit_multiplier,
        "weights": dict(export.weights_source, description=_describe_weights(export.weights_source)),
        "saved_model": {"path": SAVED_MODEL, "signatures": SIGNATURES,
                        "load_note": "import tensorflow_text before tf.saved_model.load (the tokenizer uses its ops)"},
        "artifacts": artifacts,
        "versions": _versions(),
        "contract": _contract(export),
    }
    buckets = _text_buckets(export)
    if buckets:
        manifest["text_buckets"] = {
            "lengths": sorted(buckets),
            "signature_keys": {str(length): buckets[length] for length in sorted(buckets)},
            "rule": "run the shortest length whose signature holds the text's first end-of-text token (the "
                    "largest id): same embedding as the full length; the full length is signature "
                    "serving_default, subgraph 0"}
    if export.zero_shot:
        manifest["zero_shot"] = export.zero_shot
    if export.rejected_variants:
        manifest["rejected"] = {
            "note": f"variants that missed a parity bar: not shipped, not in artifacts; their files are kept under "
                    f"{REJECTED_DIR}/ for inspection (details in {REPORT})",
            "variants": {variant: {"shortfalls": shortfalls, "artifacts": [
                _rejected_entry(export_dir, a) for a in export.artifacts if a.rejected and a.variant == variant]}
                for variant, shortfalls in export.rejected_variants.items()}}
    _write_json_atomically(os.path.join(export_dir, MANIFEST), manifest)


def _write_json_atomically(path, data):
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=1)
    os.replace(temporary, path)


def _readiness(record):
    """The delegate column of the report: the default signature's readiness, and how many shorter ones are ready."""
    delegate = record.delegate.get(DEFAULT_SIGNATURE)
    if not delegate:
        return ""
    text = (f"{delegate['target']}: {'ready' if delegate['ready'] else 'not ready'}, "
            f"{delegate['delegated_op_count']}/{delegate['op_count']} ops on the accelerator"
            + (f"; unsupported: {', '.join(delegate['unsupported_ops'])}" if delegate["unsupported_ops"] else ""))
    shorter = [d for key, d in record.delegate.items() if key != DEFAULT_SIGNATURE]
    if shorter:
        text += f"; shorter signatures: {sum(d['ready'] for d in shorter)}/{len(shorter)} ready"
    return text


def write_report(export_dir, export):
    """parity_report.md of `export` (an ExportRecord)."""
    from .parity_table import format_table

    encoders = [a for a in export.artifacts if a.tower != "preprocess"]
    preprocess = [r for a in export.artifacts if a.tower == "preprocess" for r in a.parity]
    float32_bytes = {a.tower: os.path.getsize(os.path.join(export_dir, a.path)) for a in encoders
                     if a.variant == "float32"}
    lines = [REPORT_TITLE + export.name, "",
             f"Preset: {export.preset or 'none (architecture from the checkpoint)'}. "
             f"Weights: {_describe_weights(export.weights_source)}.", "",
             "Every TFLite artifact against the float32 SavedModel on held-out real photos and sentences "
             f"(never the calibration ones). Latency: median of 10 runs, ai_edge_litert, {export.threads} "
             f"thread{'s' if export.threads != 1 else ''}, batch 1.", "",
             "Text encoders: one row per signature (token length). A shorter signature is measured on the "
             "sentences that fit it, including ones that exactly fill it; `vs full length` compares it with "
             "the same file's full-length signature on those sentences.", "",
             format_table([r for a in encoders for r in a.parity]), "",
             "| artifact | bytes | size vs float32 | recipe | delegate readiness |", "|---|---|---|---|---|"]
    if export.zero_shot:
        zero_shot = export.zero_shot
        lines[-2:-2] = [f"Zero-shot classifiers: {len(zero_shot['labels'])} classes ({zero_shot['labels_path']}), "
                        f"{len(zero_shot['templates'])} templates averaged per class, logit scale "
                        f"{zero_shot['logit_scale']:.4g}; reference: the float zero-shot from the SavedModel's "
                        f"encode_text and encode_pixels with the same texts.", ""]
    for record in encoders:
        size = os.path.getsize(os.path.join(export_dir, record.path))
        ratio = f"{size / float32_bytes[record.tower]:.2f}x" if record.tower in float32_bytes else ""
        lines.append(f"| {record.path} | {size:,} | {ratio} | {record.recipe or ''} | {_readiness(record)} |")
    for record in encoders:
        if record.variant == "int8":
            lines += ["", f"Ops of {record.path} kept in float by measurement (besides what its recipe leaves in "
                      f"float): " + ("none" if not record.float_ops else "")]
            lines += [f"- `{op['op']}`: {op['why']}" for op in record.float_ops]
    for result in preprocess:
        lines += ["", "Preprocessing against the SavedModel's resize and crop: " + result.format()]
    failed = [shortfall for a in export.artifacts for shortfall in a.shortfalls()]
    shipped = sorted({a.variant for a in encoders if not a.rejected})
    if export.rejected_variants:
        result = (f"variants rejected, not shipped (files in {REJECTED_DIR}/): "
                  + "; ".join(f"{v} ({'; '.join(s)})" for v, s in export.rejected_variants.items())
                  + f". Shipped: {', '.join(shipped)}.**")
    else:
        result = "all artifacts meet their bars.**" if not failed else "FAILED: " + "; ".join(failed) + "**"
    lines += ["", "**Result: " + result]
    with open(os.path.join(export_dir, REPORT), "w") as file:
        file.write("\n".join(lines) + "\n")
