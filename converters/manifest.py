"""manifest.json (for programs) and parity_report.md (for people) of an export directory."""

import importlib.metadata
import json
import os
import platform

import numpy as np

from clip_edge.checkpoints import files_sha256

MANIFEST = "manifest.json"
REPORT = "parity_report.md"
TOOLS = ("tensorflow", "tensorflow-text", "ai-edge-litert", "ai-edge-quantizer", "numpy", "clip_edge")


def _versions():
    versions = {"python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = importlib.metadata.version(tool)
        except importlib.metadata.PackageNotFoundError:
            versions[tool] = None
    return versions


def _tensor_details(details):
    scales, zero_points = details["quantization_parameters"]["scales"], details["quantization_parameters"]["zero_points"]
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
            if relative not in (MANIFEST, REPORT):
                yield relative, path


# What preprocess.tflite does and what the app must check (TFLite has no assertions, so nothing refuses).
PREPROCESS_NOTE = ("uint8 RGB [1,H,W,3] of any size (resize_tensor_input) -> uint8 [1,R,R,3], the image encoders' "
                   "input: bicubic resize of the shortest side to R as PIL does it (antialiased when shrinking), "
                   "then the centre crop of CLIPImageProcessor; within one or two 8-bit levels of the SavedModel (see "
                   "parity). CPU only "
                   "(float32). The app must check 1 <= H, W <= {max_side} and H * W <= {max_pixels} first: the "
                   "model has no checks; it gives all zeros for H or W = 0, wrong pixels for a side above the "
                   "limit, and its memory grows with H * W (float32 copies of the image, 12 bytes a pixel each).")


def _preprocess_entry(path, parity):
    from clip_edge.preprocessing import MAX_PIXELS, MAX_SIDE

    inputs, outputs = tflite_io(path)
    return {"role": "preprocess", "inputs": inputs, "outputs": outputs,
            "limits": {"max_side": MAX_SIDE, "max_pixels": MAX_PIXELS},
            "note": PREPROCESS_NOTE.format(max_side=MAX_SIDE, max_pixels=MAX_PIXELS), "parity": parity}


def write_manifest(export_dir, name, preset, config, weights_source, results, recipes, delegate_reports,
                   logit_multiplier, zero_shot=None, preprocess_parity=None):
    """`logit_multiplier`: what serving_default multiplies cosines by (exp(logit_scale), capped); devices that
    rank labels with the TFLite encoders need it to give the same probabilities. `results` hold one entry per
    text signature; the artifact's top-level inputs, outputs and parity are its default signature's (the full
    length), and "signatures" lists every one. `zero_shot`: labels, templates and logit scale of the zero-shot
    classifiers, if any. `preprocess_parity`: preprocess.tflite's, if it was exported."""
    by_path = {r.path: r for r in results if r.label == r.path}
    signatures = {}
    for r in results:
        if r.tower == "text":
            signatures.setdefault(r.path, []).append(r)
    artifacts = []
    for relative, path in sorted(_artifact_files(export_dir)):
        entry = {"path": relative, "sha256": files_sha256([path]), "bytes": os.path.getsize(path)}
        if relative in by_path:
            result = by_path[relative]
            inputs, outputs = tflite_io(path)
            entry.update(tower=result.tower, variant=result.variant, recipe=recipes.get(relative),
                         inputs=inputs, outputs=outputs, parity=_parity_entry(result),
                         latency_ms=_latency_entry(result), delegate=delegate_reports.get(relative))
        if relative in signatures:
            entry["signatures"] = []
            for result in signatures[relative]:
                inputs, outputs = tflite_io(path, result.signature)
                entry["signatures"].append({
                    "key": result.signature, "length": result.length, "inputs": inputs, "outputs": outputs,
                    "parity": _parity_entry(result), "latency_ms": _latency_entry(result),
                    "delegate": delegate_reports.get(result.label)})
        if relative.startswith("tflite/zero_shot_"):
            entry["labels"] = zero_shot and zero_shot["labels_path"]
        if relative == os.path.join("tflite", "preprocess.tflite"):
            entry.update(_preprocess_entry(path, preprocess_parity))
        artifacts.append(entry)
    manifest = {
        "name": name, "preset": preset, "config": config, "logit_multiplier": logit_multiplier,
        "weights": dict(weights_source, description=_describe_weights(weights_source)),
        "saved_model": {"path": "saved_model", "signatures": {
            "tokenize": {"inputs": {"texts": "string [N]"},
                         "outputs": {"token_ids": "int32 [N, L]", "padding_mask": "int32 [N, L]"}},
            "encode_text": {"inputs": {"texts": "string [N]"}, "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
            "encode_image": {"inputs": {"images": "string [N] (JPEG/PNG/GIF/BMP bytes)"},
                             "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
            "encode_pixels": {"inputs": {"pixels": "uint8 [N, H, W, 3]"},
                              "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
            "serving_default": {"inputs": {"images": "string [N]", "texts": "string [M]"},
                                "outputs": {"image_logits": "float32 [N, M]", "text_logits": "float32 [M, N]",
                                            "probs": "float32 [N, M]"}},
        }, "load_note": "import tensorflow_text before tf.saved_model.load (the tokenizer uses its ops)"},
        "artifacts": artifacts,
        "versions": _versions(),
    }
    text_lengths = sorted({r.length for r in results if r.tower == "text"})
    if text_lengths:
        manifest["text_buckets"] = {
            "lengths": text_lengths,
            "signature_keys": {str(r.length): r.signature for r in results if r.tower == "text"},
            "rule": "run the shortest length whose signature holds the text's first end-of-text token (the "
                    "largest id): same embedding as the full length; the full length is signature "
                    "serving_default, subgraph 0"}
    if zero_shot:
        manifest["zero_shot"] = zero_shot
    _write_json_atomically(os.path.join(export_dir, MANIFEST), manifest)


def _write_json_atomically(path, data):
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=1)
    os.replace(temporary, path)


def write_report(export_dir, name, preset, config, weights_source, results, recipes, delegate_reports,
                 zero_shot=None, preprocess_parity=None):
    from .parity import format_preprocess, format_table

    float32_bytes = {r.tower: os.path.getsize(os.path.join(export_dir, r.path)) for r in results
                     if r.variant == "float32"}
    lines = [f"# Parity report: {name}", "",
             f"Preset: {preset or 'none (architecture from the checkpoint)'}. "
             f"Weights: {_describe_weights(weights_source)}.", "",
             "Every TFLite artifact against the float32 SavedModel on held-out real photos and sentences "
             "(never the calibration ones). Latency: median of 10 runs, ai_edge_litert, 2 threads, batch 1.", "",
             "Text encoders: one row per signature (token length). A shorter signature is measured on the "
             "sentences that fit it, including ones that exactly fill it; `vs full length` compares it with "
             "the same file's full-length signature on those sentences.", "",
             format_table(results), "",
             "| artifact | bytes | size vs float32 | recipe | delegate readiness |", "|---|---|---|---|---|"]
    if zero_shot:
        lines[-2:-2] = [f"Zero-shot classifiers: {len(zero_shot['labels'])} classes ({zero_shot['labels_path']}), "
                        f"{len(zero_shot['templates'])} templates averaged per class, logit scale "
                        f"{zero_shot['logit_scale']:.4g}; reference: the float zero-shot from the SavedModel's "
                        f"encode_text and encode_pixels with the same texts.", ""]
    for result in results:
        if result.label != result.path:
            continue
        size = os.path.getsize(os.path.join(export_dir, result.path))
        ratio = f"{size / float32_bytes[result.tower]:.2f}x" if result.tower in float32_bytes else ""
        delegate = delegate_reports.get(result.path)
        extra = [delegate_reports[r.label] for r in results if r.path == result.path and r.label != r.path
                 and r.label in delegate_reports]
        readiness = ""
        if delegate:
            readiness = (f"{delegate['target']}: {'ready' if delegate['ready'] else 'not ready'}, "
                         f"{delegate['delegated_op_count']}/{delegate['op_count']} ops on the accelerator"
                         + (f"; unsupported: {', '.join(delegate['unsupported_ops'])}" if delegate["unsupported_ops"] else ""))
            if extra:
                readiness += f"; shorter signatures: {sum(d['ready'] for d in extra)}/{len(extra)} ready"
        lines.append(f"| {result.path} | {size:,} | {ratio} | {recipes.get(result.path, '')} | {readiness} |")
    failed = [f"{r.label}: {r.shortfall()}" for r in results if not r.passed]
    if preprocess_parity:
        lines += ["", "Preprocessing against the SavedModel's resize and crop: " + format_preprocess(preprocess_parity)]
        if not preprocess_parity["passed"]:
            failed.append(format_preprocess(preprocess_parity))
    lines += ["", "**Result: " + ("all artifacts meet their bars.**" if not failed else
                                 "FAILED: " + "; ".join(failed) + "**")]
    with open(os.path.join(export_dir, REPORT), "w") as file:
        file.write("\n".join(lines) + "\n")
