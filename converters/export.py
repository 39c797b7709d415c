"""Export a CLIP preset to a SavedModel (TF Serving signatures) and TFLite variants, gated by the parity harness.

    python -m converters.export --preset=clip-vit-base-patch32 --weights=hub|random|PATH --output_dir=DIR
    bazel run //converters:export -- --preset=... --weights=... --output_dir=DIR

writes DIR/NAME/ (NAME = the preset, or --name for a checkpoint of another architecture): saved_model/,
tflite/{image,text}_encoder_{float32,float16,dynamic_int8,int8}.tflite (each text encoder with one signature
per --text_buckets length besides the full context), tflite/preprocess.tflite (any-size resize and crop, unless
--nopreprocess), assets/vocab.json, merges.txt and text_cleaning.json, manifest.json and parity_report.md (see
the design's export contract); with --zero_shot_labels also tflite/zero_shot_{variant}.tflite and
assets/zero_shot_{labels,templates}.txt.

Everything is built in a hidden temporary folder beside the target and renamed into place at the end, so an
interrupted export leaves nothing that looks complete, and a re-run replaces the old output whole. If any
artifact misses its parity bar, the export fails (exit 1): DIR/NAME is left as it was, and the artifacts and
the report go to DIR/NAME.rejected/ without a manifest.
"""

import dataclasses
import glob
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ info lines out of the progress output

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", None, "clip-vit-base-patch16, clip-vit-base-patch32, clip-vit-large-patch14 or "
                    "clip-vit-large-patch14-336; may be omitted with --weights=PATH (architecture from the checkpoint)")
flags.DEFINE_string("weights", "hub", "hub (download the preset's Hugging Face repository), random (untrained, "
                    "for testing the pipeline), or a path to a checkpoint directory or file")
flags.DEFINE_string("output_dir", None, "where DIR/NAME/ is written")
flags.DEFINE_string("name", None, "export folder name (default: the preset, or the checkpoint's folder name)")
flags.DEFINE_list("variants", ["float32", "float16", "dynamic_int8", "int8"], "TFLite variants to build")
flags.DEFINE_string("calibration_images", None, "folder of your own photos for int8 calibration "
                    "(default: built-in real photos, disjoint from the parity set)")
flags.DEFINE_string("image_int8_recipe", None, "int8 recipe of the image encoder (converters.tflite_variants."
                    "INT8_RECIPES; default: the recommended one, which met the bar in our measurements)")
flags.DEFINE_string("text_int8_recipe", None, "int8 recipe of the text encoder (as --image_int8_recipe)")
flags.DEFINE_bool("preprocess", True, "also write tflite/preprocess.tflite: uint8 [1,H,W,3] of any size -> the "
                  "image encoder's uint8 [1,R,R,3], PIL's bicubic resize and centre crop in builtin ops")
flags.DEFINE_integer("threads", 2, "threads for TensorFlow, TFLite conversion and latency measurement",
                     lower_bound=1)
flags.DEFINE_list("text_buckets", None, "shorter token lengths the TFLite text encoders also take, as "
                  "signatures tokens_L of the same file (the full context length is always there, as "
                  "serving_default); default 16,32 (those below the context length); empty for none")
flags.DEFINE_string("zero_shot_labels", None, "file of class names, one per line: also export "
                    "tflite/zero_shot_{variant}.tflite (uint8 image -> class probabilities)")
flags.DEFINE_string("zero_shot_templates", None, "file of prompt templates, one per line, {} standing for the "
                    "class name (default: converters.zero_shot.DEFAULT_TEMPLATES, 8 of OpenAI's ImageNet prompts)")
flags.mark_flag_as_required("output_dir")

CALIBRATION_SENTENCE_COUNT = 64


class ExportError(RuntimeError):
    """An export failure; the message names the stage."""


class Progress:
    """One line per stage with its own and the total elapsed time; a progress bar for long loops."""

    def __init__(self):
        self.started = time.monotonic()
        self.stage = None

    def begin(self, stage):
        self.stage = stage
        self.stage_started = time.monotonic()
        print(f"[{self._total():7.1f}s] {stage} ...", flush=True)

    def end(self, detail=""):
        print(f"[{self._total():7.1f}s] {self.stage}: done in {time.monotonic() - self.stage_started:.1f}s"
              f"{'; ' + detail if detail else ''}", flush=True)

    def bar(self, done, total, label):
        """A bar line at each tenth of the work (lines, not carriage returns, so logs stay readable)."""
        if done != total and done * 10 // total == (done - 1) * 10 // total:
            return
        width = 30
        filled = width * done // total
        print(f"    {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", flush=True)

    def _total(self):
        return time.monotonic() - self.started


def _resolve_model(preset, weights):
    """(clip_edge.CLIP, where its weights came from, for the manifest)."""
    import clip_edge
    from clip_edge import checkpoints

    if weights == "random":
        if not preset:
            raise ExportError("--weights=random needs --preset")
        return clip_edge.CLIP.from_preset(preset, load_weights=False), {"kind": "random, untrained"}
    if weights == "hub":
        if not preset:
            raise ExportError("--weights=hub needs --preset")
        local = checkpoints.download_preset(preset)
        source = {"kind": "hub", "repository": clip_edge.PRESETS[preset]["hf_repo"],
                  "revision": os.path.basename(local)}
        return clip_edge.CLIP.from_preset(preset, weights=local), source
    source = {"kind": "checkpoint", "path": os.path.abspath(weights),
              "sha256": checkpoints.checkpoint_sha256(weights)}
    if preset:
        return clip_edge.CLIP.from_preset(preset, weights=weights), source
    return clip_edge.CLIP.from_checkpoint(weights), source


def _truncated(token_ids, length):
    """[N, L] token ids cut to `length` as OpenAI's tokenizer truncates: the end token (the largest id) kept
    last, so every calibration sentence also exercises the shorter text signatures."""
    import numpy as np

    cut = np.array(token_ids[:, :length])
    too_long = np.argmax(token_ids, axis=1) >= length
    cut[too_long, -1] = token_ids.max()
    return cut


def _calibration(model, tokenizer, images_folder, progress, text_signatures):
    """Representative datasets (generators of [input] lists) for the image and text int8 calibration; the text
    one per signature ({key: dataset}, `text_signatures` = {key: length})."""
    import numpy as np

    from converters import datasets

    resolution = model.get_config()["image_resolution"]
    pixels = (datasets.folder_images(images_folder, resolution) if images_folder
              else datasets.builtin_images(datasets.CALIBRATION_PHOTOS, resolution))
    token_ids = tokenizer(datasets.calibration_sentences(CALIBRATION_SENTENCE_COUNT))["token_ids"].numpy()

    def dataset(items, label):
        def generate():
            for index, item in enumerate(items):
                progress.bar(index + 1, len(items), label)
                yield [np.asarray(item)[np.newaxis]]
        return generate

    return {"image": dataset(pixels, "calibrating image encoder"),
            "text": {key: dataset(_truncated(token_ids, length), f"calibrating text encoder [{key}]")
                     for key, length in text_signatures.items()}}, {"image": pixels, "text": token_ids}


# -- outlier equalisation (issue 9) -----------------------------------------------------------------------------
# The quantised variants are converted from an equalised copy of the model (clip_edge.equalization: the same
# float function, activation outliers moved into the weights): int8 when its recipe has an equalization_alpha,
# dynamic_int8 always, because its per-row activation scales do not help against outlier channels
# (docs/quantization.md has the measurements).


class _EqualizedModels:
    """Equalised copies of `model` per alpha, made on first use from the calibration inputs."""

    def __init__(self, model, calibration_inputs):
        self.model, self.inputs, self.copies = model, calibration_inputs, {}

    def __call__(self, alpha):
        if alpha not in self.copies:
            from clip_edge import equalization
            from clip_edge.preprocessing import ImagePreprocessor

            images = ImagePreprocessor(self.model.get_config()["image_resolution"]).normalize(self.inputs["image"])
            self.copies[alpha] = equalization.equalize(self.model, images=images.numpy(),
                                                       token_ids=self.inputs["text"], alpha=alpha)
        return self.copies[alpha]


def _convert_tower(build, model, equalized, variants, representative, int8_recipe):
    """convert_variants of `build(model)`, with dynamic_int8 and (if its recipe says so) int8 from
    `build(equalized(alpha))` instead; the equalised variants' recipe strings say so."""
    from converters import tflite_variants

    recipe = tflite_variants.INT8_RECIPES.get(int8_recipe)
    alphas = {"dynamic_int8": tflite_variants.DYNAMIC_INT8_EQUALIZATION_ALPHA}
    if recipe is not None and recipe.equalization_alpha is not None:
        alphas["int8"] = recipe.equalization_alpha
    converted = {}
    groups = {None: [v for v in variants if v not in alphas]}
    for variant in variants:
        if variant in alphas:
            groups.setdefault(alphas[variant], []).append(variant)
    for alpha, names in groups.items():
        if names:
            source = model if alpha is None else equalized(alpha)
            converted.update(tflite_variants.convert_variants(build(source), names, representative, int8_recipe))
    if "dynamic_int8" in converted:
        converted["dynamic_int8"] = dataclasses.replace(
            converted["dynamic_int8"], recipe=f"equalised model (alpha {alphas['dynamic_int8']}), then "
                                              f"{converted['dynamic_int8'].recipe}")
    return {v: converted[v] for v in variants}


def _write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def _remove_stale_temporaries(output_dir, name):
    """Folders of earlier exports that were killed: work folders whose pid is gone, and a replaced export
    left aside when a kill fell between the two renames of _replace_directory."""
    for stale in glob.glob(os.path.join(output_dir, f".{name}.tmp-*")):
        pid = stale.rsplit("-", 1)[-1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(stale, ignore_errors=True)
    for replaced in glob.glob(os.path.join(output_dir, f".{name}.old-*")):
        shutil.rmtree(replaced, ignore_errors=True)


def _replace_directory(source, target):
    """Move `source` to `target`, replacing an older `target` without ever leaving a half-written one."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
        os.rename(target, os.path.join(old, "previous"))
    os.rename(source, target)
    if old:
        shutil.rmtree(old)


def _check_arguments(output_dir, name, variants, threads, known_variants):
    """Refuse arguments that would write outside output_dir, leave stray folders or build nothing."""
    if not output_dir:
        raise ExportError("--output_dir is empty")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ExportError(f"--output_dir {output_dir} exists and is not a directory")
    # The export is renamed to output_dir/NAME and its work folders are output_dir/.NAME.*: NAME must be one
    # plain folder name, or those paths would leave output_dir (../x) or be output_dir itself (.).
    if (not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name
            or "\0" in name):
        raise ExportError(f"export name {name!r} (--name, or the checkpoint's folder name) must be a plain folder "
                          "name: not empty, no '/', not starting with '.'")
    if not variants:
        raise ExportError(f"--variants is empty; name at least one of {known_variants}")
    unknown = [v for v in variants if v not in known_variants]
    if unknown:
        raise ExportError(f"unknown variants {unknown}; expected some of {known_variants}")
    repeated = sorted({v for v in variants if list(variants).count(v) > 1})
    if repeated:
        raise ExportError(f"--variants lists {', '.join(repeated)} more than once")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ExportError(f"--threads must be a positive integer, got {threads!r}")


def run_export(preset, weights, output_dir, name=None, variants=("float32", "float16", "dynamic_int8", "int8"),
               calibration_images=None, threads=2, int8_recipes=None, text_buckets=None, zero_shot_labels=None,
               zero_shot_templates=None, preprocess=True):
    """The whole export; returns (path of DIR/NAME, parity results). Raises ExportError naming the stage.
    `threads` applies to TFLite latency measurement; the command line also sets TensorFlow's thread pool.
    `int8_recipes` may name the int8 recipe per tower ({"image": ..., "text": ...}). `text_buckets`: shorter
    text lengths (default: clip_edge.model.DEFAULT_TEXT_BUCKETS below the context length).
    `zero_shot_labels` / `zero_shot_templates`: files for the zero-shot classifiers (templates default to
    converters.zero_shot.DEFAULT_TEMPLATES). `preprocess` adds tflite/preprocess.tflite."""
    int8_recipes = int8_recipes or {}
    from clip_edge import model as clip_model
    from clip_edge import presets as preset_table
    from clip_edge.tokenizer import CLIPTokenizer
    from converters import datasets, delegate_check, manifest, parity, serving, tflite_variants, zero_shot

    text_buckets = None if text_buckets is None else tuple(text_buckets)
    if preset:  # with a checkpoint the context length, and so the buckets' check, waits for the model
        clip_model.text_buckets(preset_table.get_preset(preset)["config"]["context_length"], text_buckets)
    labels = templates = None
    if zero_shot_labels:  # bad label files fail here, before any work
        labels, templates = zero_shot.read_labels(zero_shot_labels), zero_shot.read_templates(zero_shot_templates)
    elif zero_shot_templates:
        raise ExportError("--zero_shot_templates needs --zero_shot_labels")
    name = name or preset or os.path.basename(os.path.abspath(weights))
    _check_arguments(output_dir, name, variants, threads, list(parity.BARS))
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create --output_dir {output_dir}: {error.strerror}") from error
    _remove_stale_temporaries(output_dir, name)
    # The pid in the name tells later runs whether this folder's export is still alive.
    work = os.path.join(output_dir, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    progress = Progress()
    stage = None
    try:
        stage = "load model"
        progress.begin(f"{stage} ({preset or 'from checkpoint'}, weights={weights})")
        model, weights_source = _resolve_model(preset, weights)
        config = model.get_config()
        tokenizer = CLIPTokenizer.from_openai_vocabulary(config["context_length"])
        text_lengths = clip_model.text_buckets(config["context_length"], text_buckets)
        text_functions = serving.tflite_text_encoders(model, text_lengths)
        text_signatures = {key: int(f.structured_input_signature[0][0].shape[1]) for key, f in text_functions.items()}
        progress.end(f"{model.count_params():,} parameters")

        stage = "SavedModel"
        progress.begin(stage)
        serving.save_serving_model(model, os.path.join(work, "saved_model"), tokenizer)
        vocab_json, merges_txt = tokenizer.vocabulary_files()
        _write_bytes(os.path.join(work, "assets", "vocab.json"), vocab_json.encode("utf-8"))
        _write_bytes(os.path.join(work, "assets", "merges.txt"), merges_txt.encode("utf-8"))
        cleaning = json.dumps(tokenizer.text_cleaning_tables(), ensure_ascii=False, separators=(",", ":"))
        _write_bytes(os.path.join(work, "assets", "text_cleaning.json"), cleaning.encode("utf-8"))
        progress.end()

        representative, calibration_inputs = {}, None
        if {"int8", "dynamic_int8"} & set(variants):  # the quantised variants are equalised on this data too
            stage = "calibration data"
            progress.begin(stage)
            representative, calibration_inputs = _calibration(model, tokenizer, calibration_images, progress,
                                                              text_signatures)
            progress.end(f"{len(calibration_inputs['image'])} photos, {len(calibration_inputs['text'])} sentences")
        equalized = _EqualizedModels(model, calibration_inputs)

        zero_shot_info = None
        towers = [("image", serving.tflite_image_encoder), ("text", lambda m: serving.tflite_text_encoders(m, text_lengths))]
        if labels:
            stage = "zero-shot class embeddings"
            progress.begin(f"{stage} ({len(labels)} labels x {len(templates)} templates)")
            class_weights, scale = zero_shot.class_weights(model, tokenizer, labels, templates)
            for relative, lines in ((parity.ZERO_SHOT_LABELS, labels), (parity.ZERO_SHOT_TEMPLATES, templates)):
                _write_bytes(os.path.join(work, relative), ("\n".join(lines) + "\n").encode("utf-8"))
            zero_shot_info = {"labels": labels, "templates": templates, "logit_scale": scale,
                              "labels_path": parity.ZERO_SHOT_LABELS, "templates_path": parity.ZERO_SHOT_TEMPLATES}
            towers.append(("zero_shot", lambda m: zero_shot.tflite_zero_shot(m, class_weights)))
            progress.end()

        recipes = {}
        for tower, build in towers:
            stage = f"TFLite {tower} encoder" if tower != "zero_shot" else "TFLite zero-shot classifier"
            progress.begin(f"{stage} ({', '.join(variants)})")
            # The classifier is the image tower plus one matmul: it is calibrated and quantised as the image one.
            kind = "image" if tower == "zero_shot" else tower
            converted = _convert_tower(
                build, model, equalized, list(variants), representative.get(kind),
                int8_recipes.get(kind) or tflite_variants.RECOMMENDED_INT8_RECIPES[f"{kind}_encoder"])
            for variant, result in converted.items():
                _write_bytes(os.path.join(work, parity.tflite_path(tower, variant)), result.tflite)
                recipes[parity.tflite_path(tower, variant)] = result.recipe
            progress.end()

        if preprocess:
            stage = "TFLite preprocessing"
            progress.begin(stage)
            _write_bytes(os.path.join(work, parity.PREPROCESS_PATH), tflite_variants.convert_preprocess(
                serving.tflite_preprocess(config["image_resolution"])))
            progress.end()

        stage = "parity"
        progress.begin(f"{stage} (held-out photos and sentences vs the float SavedModel)")
        held_out = datasets.builtin_images(datasets.HELD_OUT_PHOTOS, config["image_resolution"])
        reference = parity.FloatReference(os.path.join(work, "saved_model"), held_out, datasets.held_out_sentences())
        results = parity.measure(work, list(variants), held_out, datasets.held_out_sentences(), threads=threads,
                                 reference=reference)
        if labels:
            results += parity.measure_zero_shot(work, list(variants), held_out, threads=threads, reference=reference)
        preprocess_parity = None
        if preprocess:
            preprocess_parity = parity.measure_preprocess(work, datasets.held_out_photos(),
                                                          config["image_resolution"], threads)
        progress.end(f"{sum(r.passed for r in results)}/{len(results)} artifacts meet their bar")
        print(parity.format_table(results), flush=True)
        if preprocess_parity:
            print(parity.format_preprocess(preprocess_parity), flush=True)

        stage = "delegate checks"
        progress.begin(stage)
        delegate_reports, subgraphs = {}, {}
        for result in results:
            target = {"float16": "gpu", "int8": "edgetpu"}.get(result.variant)
            if target:
                path = os.path.join(work, result.path)
                if path not in subgraphs:  # a delegate runs one signature's subgraph: each is checked
                    with open(path, "rb") as file:
                        subgraphs[path] = delegate_check.signature_subgraphs(file.read(), path)
                subgraph = subgraphs[path][getattr(result, "signature", parity.FULL_LENGTH_SIGNATURE)]
                report = delegate_check.check(path, target, subgraph).to_dict()
                delegate_reports[result.label] = {key: report[key] for key in (
                    "target", "ready", "op_count", "delegated_op_count", "model_problems", "unsupported_ops")}
        progress.end()

        stage = "manifest"
        progress.begin(stage)
        failed = [f"{r.label} {r.shortfall()}" for r in results if not r.passed]
        if preprocess_parity and not preprocess_parity["passed"]:
            failed.append(parity.format_preprocess(preprocess_parity))
        manifest.write_report(work, name, preset, config, weights_source, results, recipes, delegate_reports,
                              zero_shot_info, preprocess_parity)
        if failed:
            rejected = os.path.join(output_dir, f"{name}.rejected")
            _replace_directory(work, rejected)
            raise ExportError("parity: " + "; ".join(failed)
                              + f". Nothing was shipped; artifacts and report are in {rejected}")
        manifest.write_manifest(work, name, preset, config, weights_source, results, recipes, delegate_reports,
                                logit_multiplier=float(model.logit_multiplier()), zero_shot=zero_shot_info,
                                preprocess_parity=preprocess_parity)
        target = os.path.join(output_dir, name)
        _replace_directory(work, target)
        progress.end(f"wrote {target}")
        return target, results
    except ExportError:
        raise
    except Exception as error:
        raise ExportError(f"stage {stage!r} failed: {type(error).__name__}: {error}") from error
    finally:
        if os.path.exists(work):
            shutil.rmtree(work, ignore_errors=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)  # before TensorFlow runs anything
    buckets = FLAGS.text_buckets
    if buckets is not None:
        bad = [n for n in buckets if not n.strip().isdigit()]
        if bad:
            print(f"export failed: --text_buckets takes token lengths (integers), got {bad}", file=sys.stderr)
            return 1
        buckets = [int(n) for n in buckets]
    try:
        run_export(FLAGS.preset, FLAGS.weights, FLAGS.output_dir, FLAGS.name, FLAGS.variants,
                   FLAGS.calibration_images, FLAGS.threads,
                   {"image": FLAGS.image_int8_recipe, "text": FLAGS.text_int8_recipe},
                   buckets, FLAGS.zero_shot_labels, FLAGS.zero_shot_templates, FLAGS.preprocess)
    except (ExportError, ValueError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
