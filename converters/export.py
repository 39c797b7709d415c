"""Export a CLIP preset to a SavedModel (TF Serving signatures) and TFLite variants, gated by the parity harness.

    python -m converters.export --preset=clip-vit-base-patch32 --weights=hub|random|PATH --output_dir=DIR
    bazel run //converters:export -- --preset=... --weights=... --output_dir=DIR

writes DIR/NAME/ (NAME = the preset, or --name for a checkpoint of another architecture): saved_model/,
tflite/{image,text}_encoder_{float32,float16,dynamic_int8,int8}.tflite (each text encoder with one signature
per --text_buckets length besides the full context), tflite/preprocess.tflite (any-size resize and crop, unless
--nopreprocess), assets/vocab.json, merges.txt and text_cleaning.json, manifest.json and parity_report.md (the
README's "Export" section); with --zero_shot_labels also tflite/zero_shot_{variant}.tflite and
assets/zero_shot_{labels,templates}.txt.

Everything is built in a hidden temporary folder beside the target and renamed into place at the end, so an
interrupted export leaves nothing that looks complete, and a re-run replaces the old output whole.

The parity gate works per variant (converters.gate.Gate). Exit status:
  0  every artifact met its bar; everything shipped.
  3  some variants missed a bar: each such variant's files (image and text encoders, zero-shot classifier) are
     left out of tflite/ and kept in DIR/NAME/rejected/tflite/, manifest.json lists them under "rejected" with
     their shortfalls (not under "artifacts"), parity_report.md says so, and the other variants ship.
  1  the export was refused or failed: a variant named by --require missed its bar (default: float32, the
     reference), every variant did, or preprocess.tflite did (one model serves every variant); or any stage
     failed. DIR/NAME is left as it was, and on a refusal the artifacts and the report go to DIR/NAME.rejected/
     without a manifest.

The command prints our own lines only: one per stage, calibration bars, the parity table. What TensorFlow,
LiteRT and ai-edge-quantizer print (per-tensor progress bars, warnings about debugging options, CUDA probing on
a machine without a GPU) is captured and shown only when the export fails, or as it happens with --verbose.
"""

import contextlib
import dataclasses
import functools
import glob
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import types
from collections.abc import Mapping, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ info lines out of the progress output

from absl import app, flags, logging  # noqa: E402

from clip_edge import export_format  # noqa: E402
from .gate import EXIT_OK, EXIT_REFUSED, EXIT_REJECTED_VARIANTS, Gate, required_variants  # noqa: E402
from .variants import DEFAULT_SIGNATURE, VARIANTS, tflite_path  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", None, "clip-vit-base-patch16, clip-vit-base-patch32, clip-vit-large-patch14 or "
                    "clip-vit-large-patch14-336; may be omitted with --weights=PATH (architecture from the checkpoint)")
flags.DEFINE_string("weights", "hub", "hub (download the preset's Hugging Face repository), random (untrained, "
                    "for testing the pipeline), or a path to a checkpoint directory or file")
flags.DEFINE_string("output_dir", None, "where DIR/NAME/ is written")
flags.DEFINE_string("name", None, "export folder name (default: the preset, or the checkpoint's folder name)")
flags.DEFINE_list("variants", list(VARIANTS), "TFLite variants to build (converters.variants.VARIANTS)")
flags.DEFINE_string("calibration_images", None, "folder of your own photos for int8 calibration "
                    "(default: built-in real photos, disjoint from the parity set)")
flags.DEFINE_string("image_int8_recipe", None, "int8 recipe of the image encoder (converters.tflite_variants."
                    "INT8_RECIPES; default: the recommended one, which met the bar in our measurements)")
flags.DEFINE_string("text_int8_recipe", None, "int8 recipe of the text encoder (as --image_int8_recipe)")
flags.DEFINE_bool("preprocess", True, "also write tflite/preprocess.tflite: uint8 [1,H,W,3] of any size -> the "
                  "image encoder's uint8 [1,R,R,3], PIL's bicubic resize and centre crop in builtin ops")
# TensorFlow starts its whole intra-op pool at once (--threads=100000 took over 6 GB before loading a weight):
# bounded far above any machine's useful count, so a typo fails at once.
MAX_THREADS = 256
# An export name's bytes: DIR/.NAME.tmp-PID, the longest name the exporter makes from it, must be one path
# component of at most 255 bytes.
MAX_NAME_BYTES = 200
flags.DEFINE_integer("threads", 2, "threads for TensorFlow, TFLite conversion and latency measurement",
                     lower_bound=1, upper_bound=MAX_THREADS)
flags.DEFINE_list("text_buckets", None, "shorter token lengths the TFLite text encoders also take, as "
                  "signatures tokens_L of the same file (the full context length is always there, as "
                  "serving_default); default 16,32 (those below the context length); empty for none")
flags.DEFINE_string("zero_shot_labels", None, "file of class names, one per line: also export "
                    "tflite/zero_shot_{variant}.tflite (uint8 image -> class probabilities)")
flags.DEFINE_string("zero_shot_templates", None, "file of prompt templates, one per line, {} standing for the "
                    "class name (default: converters.zero_shot.DEFAULT_TEMPLATES, 8 of OpenAI's ImageNet prompts)")
flags.DEFINE_list("require", None, "all, or the variants whose failure refuses the whole export (exit 1, "
                  "everything in DIR/NAME.rejected/); another variant that misses its bar is left out of tflite/ "
                  "(kept in DIR/NAME/rejected/, listed in manifest.json's rejected section) and the rest ships "
                  "(exit 3). Default: float32 (the reference), when exported")
flags.DEFINE_bool("verbose", False, "show what TensorFlow, LiteRT and ai-edge-quantizer print (progress bars, "
                  "warnings, CUDA probing); without it their output is captured and shown only if the export fails")
flags.mark_flag_as_required("output_dir")

CALIBRATION_SENTENCE_COUNT = 64


class ExportError(RuntimeError):
    """An export failure; the message names the stage."""


class Progress:
    """One line per stage with its own and the total elapsed time; a progress bar for long loops. Written to
    `out` (default sys.stdout): the command line gives the terminal, while third parties' output is captured."""

    def __init__(self, out=None):
        self.started = time.monotonic()
        self.out = out or sys.stdout

    def print(self, text):
        print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def stage(self, name, detail=""):
        """Start and end lines of stage `name` (`detail` added to them); the body may set `.summary` for the end
        line. Any error inside becomes an ExportError naming the stage."""
        title = f"{name} ({detail})" if detail else name
        started = time.monotonic()
        self._line(f"{title} ...")
        stage = types.SimpleNamespace(summary="")
        try:
            yield stage
        except ExportError:
            raise
        except Exception as error:
            raise ExportError(f"stage {name!r} failed: {type(error).__name__}: {error}") from error
        self._line(f"{title}: done in {time.monotonic() - started:.1f}s{'; ' + stage.summary if stage.summary else ''}")

    def bar(self, done, total, label):
        """A bar line at each tenth of the work (lines, not carriage returns, so logs stay readable)."""
        if done != total and done * 10 // total == (done - 1) * 10 // total:
            return
        width = 30
        filled = width * done // total
        self.print(f"    {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")

    def _line(self, text):
        self.print(f"[{time.monotonic() - self.started:7.1f}s] {text}")


def _resolve_model(preset, weights):
    """(clip_edge.CLIP, where its weights came from, for the manifest)."""
    import clip_edge
    from clip_edge import checkpoint_files, hub

    if weights == "random":
        if not preset:
            raise ExportError("--weights=random needs --preset")
        return clip_edge.CLIP.from_preset(preset, load_weights=False), {"kind": "random, untrained"}
    if weights == "hub":
        if not preset:
            raise ExportError("--weights=hub needs --preset")
        local = hub.download_preset(preset)
        source = {"kind": "hub", "repository": clip_edge.PRESETS[preset]["hf_repo"],
                  "revision": os.path.basename(local), "sha256": checkpoint_files.weight_files_sha256(local)}
        return clip_edge.CLIP.from_preset(preset, weights=local), source
    source = {"kind": "checkpoint", "path": os.path.abspath(weights),
              "sha256": checkpoint_files.checkpoint_sha256(weights)}
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


def _calibration(model, tokenizer, images_folder, text_signatures):
    """Calibration inputs per tower kind and signature key, {"image": {key: [N, R, R, 3] uint8}, "text": {key:
    [N, L] int32}} (`text_signatures` = {key: length}), and the untruncated ones for equalisation."""
    import numpy as np

    from . import datasets

    resolution = model.get_config()["image_resolution"]
    pixels = (datasets.folder_images(images_folder, resolution) if images_folder
              else datasets.builtin_images(datasets.CALIBRATION_PHOTOS, resolution))
    token_ids = tokenizer(datasets.calibration_sentences(CALIBRATION_SENTENCE_COUNT))["token_ids"].numpy()
    return ({"image": {DEFAULT_SIGNATURE: np.stack(pixels)},
             "text": {key: _truncated(token_ids, length) for key, length in text_signatures.items()}},
            {"image": pixels, "text": token_ids})


# -- outlier equalisation --------------------------------------------------------------------------------------
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


def _variant_groups(variants, int8_recipe):
    """{equalisation alpha or None: the variants converted from that model}: dynamic_int8, and int8 when its
    recipe says so, come from an equalised copy, the rest from the plain model."""
    from . import tflite_variants

    recipe = tflite_variants.INT8_RECIPES.get(int8_recipe)
    alphas = {"dynamic_int8": tflite_variants.DYNAMIC_INT8_EQUALIZATION_ALPHA}
    if recipe is not None and recipe.equalization_alpha is not None:
        alphas["int8"] = recipe.equalization_alpha
    groups = {}
    for variant in variants:
        groups.setdefault(alphas.get(variant), []).append(variant)
    return groups


def _text_encoders(plain, traced, lengths, model):
    """The text tower's functions for `model`: those already traced for the plain model, else traced anew."""
    from . import serving

    return traced if model is plain else serving.tflite_text_encoders(model, lengths)


def _write_sources(scratch, tower, build, model, equalized, variants, int8_recipe, calibration, crops_per_photo):
    """The tower's functions as SavedModels under `scratch`, one per model its variants come from (see
    _variant_groups); returns the tower's plan for _convert, one group of variants per SavedModel."""
    from . import tflite_variants

    groups = []
    for alpha, names in _variant_groups(variants, int8_recipe).items():
        functions = build(model if alpha is None else equalized(alpha))
        if not isinstance(functions, dict):
            functions = {DEFAULT_SIGNATURE: functions}
        path = os.path.join(scratch, f"{tower}-{'plain' if alpha is None else f'equalised-{alpha}'}")
        source = tflite_variants.SavedModelSource.save(functions, path)
        groups.append({"variants": names, "path": path, "inputs": {k: list(v) for k, v in source.inputs.items()},
                       "alpha": alpha})
    calibration_path = None
    if calibration is not None and any(VARIANTS[v].calibrated for v in variants):
        import numpy as np

        calibration_path = os.path.join(scratch, f"{tower}-calibration.npz")
        np.savez(calibration_path, **calibration)
    return {"tower": tower, "variants": list(variants), "groups": groups, "int8_recipe": int8_recipe,
            "calibration": calibration_path, "crops_per_photo": crops_per_photo}


def _convert(work, scratch, job, threads, progress, record):
    """Converts the tower's variants, one process (converters.convert_tower) per model they come from: what one
    model's conversions leave behind would add to the next one's peak (clip-vit-large-patch14-336's image tower:
    11.6 GB with one process per tower, docs/benchmarks.md); in this process for a model under
    IN_PROCESS_CONVERSION_BYTES. Records the files they wrote."""
    from . import manifest

    try:
        progress_fd = progress.out.fileno()
        progress.out.flush()
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO, pytest's capture): the child's stdout
        progress_fd = None
    recipes, float_ops = {}, {}
    for index, group in enumerate(job["groups"]):
        name = f"{job['tower']}-{index}"
        conversion = {
            "tower": job["tower"], "variants": group["variants"], "path": group["path"], "inputs": group["inputs"],
            "int8_recipe": job["int8_recipe"], "calibration": job["calibration"], "threads": threads,
            "crops_per_photo": job["crops_per_photo"],
            "outputs": {v: os.path.join(work, tflite_path(job["tower"], v)) for v in group["variants"]},
            "result": os.path.join(scratch, f"{name}.result"), "parent_pid": os.getpid(),
            "progress_fd": progress_fd}
        if _folder_bytes(group["path"]) < IN_PROCESS_CONVERSION_BYTES:
            outcome = _convert_in_process(conversion, progress)
        else:
            outcome = _conversion_process(scratch, name, conversion)
        recipes.update(outcome["recipes"])
        float_ops.update(outcome["float_ops"])
    alphas = {v: g["alpha"] for g in job["groups"] for v in g["variants"]}
    for variant in job["variants"]:
        recipe = recipes[variant]
        if variant == "dynamic_int8" and alphas[variant] is not None:  # the int8 recipe's text says it itself
            recipe = f"equalised model (alpha {alphas[variant]}), then {recipe}"
        record.artifacts.append(manifest.ArtifactRecord(tflite_path(job["tower"], variant), job["tower"], variant,
                                                        recipe=recipe, float_ops=float_ops[variant]))


# A tower whose SavedModel holds fewer bytes than this converts in the exporter's own process. The process of its
# own (converters.convert_tower) bounds the converter's peak, about six times the weights, for large towers; it
# costs an interpreter start and a TensorFlow import, about 4 s, per conversion, which small models (the tests'
# and Bazel's, 1 to 10 MB) paid several times per export for no memory gain: their peak stays under 0.5 GB.
IN_PROCESS_CONVERSION_BYTES = 64 << 20


def _folder_bytes(path):
    return sum(os.path.getsize(os.path.join(folder, f)) for folder, _, files in os.walk(path) for f in files)


def _convert_in_process(job, progress):
    """converters.convert_tower's conversion of `job` here; its outcome as _conversion_process gives it."""
    from . import convert_tower, tflite_variants

    try:
        recipes, float_ops = convert_tower.convert(job, progress, own_process=False)
        return {"recipes": recipes, "float_ops": float_ops}
    except Exception as error:  # named as the process's outcome is
        raise ExportError(f"converting the {job['tower']} tower ({', '.join(job['variants'])}) failed: "
                          f"{type(error).__name__}: {error}") from error
    finally:
        tflite_variants.release_memory()


def _conversion_process(scratch, name, job):
    """Runs converters.convert_tower on `job` in a process of its own; its outcome, {"recipes": {variant:
    recipe}, "float_ops": {variant: [...]}}."""
    import subprocess

    job_path = os.path.join(scratch, f"{name}.job.json")
    with open(job_path, "w", encoding="utf-8") as file:
        json.dump(job, file)
    # The package's own name: converters in the repository and under Bazel, clip_edge.converters when installed.
    command = [sys.executable, "-m", f"{__package__}.convert_tower", job_path]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    fds = () if job["progress_fd"] is None else (job["progress_fd"],)
    status = subprocess.run(command, env=env, pass_fds=fds).returncode
    outcome = {}
    if os.path.exists(job["result"]):
        with open(job["result"], encoding="utf-8") as file:
            outcome = json.load(file)
    what = f"converting the {job['tower']} tower ({', '.join(job['variants'])})"
    if status < 0:
        raise ExportError(f"{what}: its process was killed by signal {-status}"
                          + (" (out of memory?)" if -status == signal.SIGKILL else ""))
    if status != 0 or "recipes" not in outcome:
        raise ExportError(f"{what} failed: " + outcome.get("error", f"its process exited with status {status}"))
    return outcome


def _write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def _remove_stale_temporaries(output_dir, name):
    """Folders of earlier exports that were killed: work folders whose pid is gone, and replaced exports left
    aside by _replace_directory. A kill between its two renames left no DIR/NAME and the previous export in
    .NAME.old-*/previous: that one is put back, so that a kill costs at most the new export, never the old.
    Only folders whose contents are what this tool puts there are touched: a user's `.NAME.old-mybackup` stays."""
    for stale in glob.glob(os.path.join(output_dir, f".{name}.tmp-*")):
        pid = stale.rsplit("-", 1)[-1]
        if (pid.isdigit() and not os.path.exists(f"/proc/{pid}") and _is_plain_folder(stale)
                and set(os.listdir(stale)) <= _WORK_ENTRIES):
            shutil.rmtree(stale, ignore_errors=True)
    target = os.path.join(output_dir, name)
    for replaced in glob.glob(os.path.join(output_dir, f".{name}.old-*")):
        previous = os.path.join(replaced, "previous")
        if not (_is_plain_folder(replaced) and set(os.listdir(replaced)) <= {"previous"}
                and (not os.path.lexists(previous) or _is_export(previous))):
            continue
        if not os.path.lexists(target) and os.path.isdir(previous):
            os.rename(previous, target)
        shutil.rmtree(replaced, ignore_errors=True)


# What a work folder .NAME.tmp-PID holds at any stage: the export's top level and the conversion sources.
_WORK_ENTRIES = {export_format.SAVED_MODEL, "tflite", "assets", ".sources", export_format.MANIFEST,
                 export_format.REPORT, export_format.REJECTED_DIR}
# A manifest.json larger than this is not one of ours (a large preset's is about 100 KB).
_MAX_MANIFEST_BYTES = 64 << 20


def _is_plain_folder(path):
    return os.path.isdir(path) and not os.path.islink(path)


def _is_export(path):
    """Whether `path` is a folder this tool wrote: an export (its manifest.json) or a refused one (NAME.rejected,
    its parity_report.md)."""
    from . import manifest as manifest_names

    if not _is_plain_folder(path):
        return False
    manifest_path = os.path.join(path, manifest_names.MANIFEST)
    if os.path.isfile(manifest_path) and os.path.getsize(manifest_path) <= _MAX_MANIFEST_BYTES:
        try:
            with open(manifest_path, "rb") as file:
                data = json.loads(file.read())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and {"name", "saved_model", "artifacts"} <= data.keys():
            return True
    report_path = os.path.join(path, manifest_names.REPORT)
    if not os.path.isfile(report_path):
        return False
    with open(report_path, "rb") as file:
        return file.readline(200).startswith(manifest_names.REPORT_TITLE.encode())


def _check_replaceable(target):
    """Refuse to replace anything at `target` but an earlier export of this tool (ExportError naming it)."""
    if os.path.lexists(target) and not _is_export(target):
        kind = "a folder" if _is_plain_folder(target) else "a file" if os.path.isfile(target) else "an entry"
        raise ExportError(f"{target} is {kind} that is not an export of clip_edge (no manifest.json of one): "
                          "the export would replace it. Move it away, or choose another --output_dir or --name")


def _check_inputs_outside(targets, inputs):
    """Refuse inputs (flag name -> path) that are, or lie inside, a folder the export replaces."""
    for flag, path in inputs.items():
        if not path or not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        for target in targets:
            replaced = os.path.realpath(target)
            if real == replaced or real.startswith(replaced + os.sep):
                raise ExportError(f"--{flag} {path} is inside {target}, which the export replaces: choose another "
                                  "--output_dir or --name")


def _replace_directory(source, target):
    """Move `source` to `target`, replacing an older export at `target` without ever leaving a half-written one."""
    _check_replaceable(target)
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
        os.rename(target, os.path.join(old, "previous"))
    os.rename(source, target)
    if old:
        shutil.rmtree(old)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What one export is asked for: run_export's arguments, the command line's flags (run_export says what each
    means). `checked` checks them all, before any work."""

    preset: str | None
    weights: str
    output_dir: str
    name: str | None = None
    variants: Sequence[str] = tuple(VARIANTS)
    calibration_images: str | None = None
    threads: int = 2
    int8_recipes: Mapping[str, str | None] | None = None
    text_buckets: Sequence[int] | None = None
    zero_shot_labels: str | None = None
    zero_shot_templates: str | None = None
    preprocess: bool = True
    require: str | Sequence[str] | None = None

    def checked(self):
        """A CheckedExport of these options, once every check passed; otherwise ExportError naming the flag
        (ValueError for the preset and text buckets, converters.zero_shot.ZeroShotInputError for label files).
        Checks, in this order: the preset and text buckets, the zero-shot files, output_dir, the export name and
        variants, threads, inputs inside what the export replaces, what it replaces, require, int8 recipe names,
        calibration photos; then creates output_dir, the first thing written."""
        from clip_edge import model as clip_model
        from clip_edge import presets as preset_table
        from clip_edge.messages import quoted  # not at the top: clip_edge imports TensorFlow (see _export)
        from . import datasets, tflite_variants, zero_shot

        int8_recipes = self.int8_recipes or {}
        text_buckets = None if self.text_buckets is None else tuple(self.text_buckets)
        if self.preset:  # with a checkpoint the context length, and so the buckets' check, waits for the model
            clip_model.text_buckets(preset_table.get_preset(self.preset)["config"]["context_length"], text_buckets)
        labels = templates = None
        if self.zero_shot_labels:  # bad label files fail here, before any work
            labels = zero_shot.read_labels(self.zero_shot_labels)
            templates = zero_shot.read_templates(self.zero_shot_templates)
        elif self.zero_shot_templates:
            raise ExportError("--zero_shot_templates needs --zero_shot_labels")
        output_dir, variants, threads, known_variants = self.output_dir, self.variants, self.threads, list(VARIANTS)
        name = self.name or self.preset or os.path.basename(os.path.abspath(self.weights))

        # Nothing written outside output_dir, no stray folders, something built.
        if not output_dir:
            raise ExportError("--output_dir is empty")
        if os.path.exists(output_dir) and not os.path.isdir(output_dir):
            raise ExportError(f"--output_dir {quoted(output_dir)} exists and is not a directory")
        # The export is renamed to output_dir/NAME and its work folders are output_dir/.NAME.*: NAME must be one
        # plain folder name, or those paths would leave output_dir (../x) or be output_dir itself (.).
        if (not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name
                or "\0" in name):
            raise ExportError(f"export name {quoted(name)} (--name, or the checkpoint's folder name) must be a plain "
                              "folder name: not empty, no '/', not starting with '.'")
        if not variants:
            raise ExportError(f"--variants is empty; name at least one of {known_variants}")
        if len(os.fsencode(name)) > MAX_NAME_BYTES:
            raise ExportError(f"export name {quoted(name)} (--name, or the checkpoint's folder name) is "
                              f"{len(os.fsencode(name)):,} bytes; at most {MAX_NAME_BYTES}")
        unknown = [v for v in variants if v not in known_variants]
        if unknown:
            raise ExportError(f"unknown variants {', '.join(quoted(v) for v in unknown)}; expected some of "
                              f"{known_variants}")
        repeated = sorted({v for v in variants if list(variants).count(v) > 1})
        if repeated:
            raise ExportError(f"--variants lists {', '.join(repeated)} more than once")
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
            raise ExportError(f"--threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")

        # The export replaces DIR/NAME (or DIR/NAME.rejected when refused): only an earlier export may be there, and
        # none of this run's inputs.
        replaced = [os.path.join(output_dir, name), os.path.join(output_dir, f"{name}.rejected")]
        _check_inputs_outside(replaced, {"weights": self.weights, "calibration_images": self.calibration_images,
                                         "zero_shot_labels": self.zero_shot_labels,
                                         "zero_shot_templates": self.zero_shot_templates})
        for target in replaced:
            _check_replaceable(target)
        try:
            required = required_variants(self.require, variants)
        except ValueError as error:
            raise ExportError(str(error)) from None
        # Bad recipe names and calibration folders fail here, before any work, not at the stage that uses them
        # (or, without the int8 variant, never).
        for tower, recipe in int8_recipes.items():
            if recipe is not None and recipe not in tflite_variants.INT8_RECIPES:
                raise ExportError(f"unknown --{tower}_int8_recipe {quoted(recipe)}; expected one of "
                                  f"{', '.join(sorted(tflite_variants.INT8_RECIPES))}")
        if self.calibration_images:
            try:
                datasets.image_paths(self.calibration_images)
            except ValueError as error:
                raise ExportError(f"--calibration_images {error}") from None
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as error:
            raise ExportError(f"cannot create --output_dir {quoted(output_dir)}: {error.strerror}") from error
        options = dataclasses.replace(self, name=name, int8_recipes=int8_recipes, text_buckets=text_buckets)
        return CheckedExport(options, labels, templates, required)


@dataclasses.dataclass(frozen=True)
class CheckedExport:
    """ExportOptions that passed their checks (ExportOptions.checked), with what the checks read and worked out."""

    options: ExportOptions  # name, int8_recipes and text_buckets filled in
    labels: list[str] | None  # the zero-shot classes and templates, read from their files
    templates: list[str] | None
    required: list[str]  # the variants whose failure refuses the export (converters.gate.required_variants)


def _load(preset, weights, name, threads, text_buckets):
    """(model, tokenizer, {text signature key: concrete function}, the ExportRecord to fill in)."""
    from clip_edge import model as clip_model
    from clip_edge.tokenizer import CLIPTokenizer
    from . import manifest, serving

    model, weights_source = _resolve_model(preset, weights)
    config = model.get_config()
    tokenizer = CLIPTokenizer.from_openai_vocabulary(config["context_length"])
    lengths = clip_model.text_buckets(config["context_length"], text_buckets)
    text_functions = serving.tflite_text_encoders(model, lengths)
    record = manifest.ExportRecord(name=name, preset=preset, config=config, weights_source=weights_source,
                                   threads=threads, logit_multiplier=float(model.logit_multiplier()),
                                   special_token_ids={"start": tokenizer.start_token_id,
                                                      "end": tokenizer.end_token_id})
    return model, tokenizer, text_functions, record


def _write_saved_model(work, model, tokenizer):
    """saved_model/ and the tokenizer's assets."""
    from . import serving

    serving.save_serving_model(model, os.path.join(work, export_format.SAVED_MODEL), tokenizer)
    vocab_json, merges_txt = tokenizer.vocabulary_files()
    _write_bytes(os.path.join(work, export_format.VOCAB), vocab_json.encode("utf-8"))
    _write_bytes(os.path.join(work, export_format.MERGES), merges_txt.encode("utf-8"))
    cleaning = json.dumps(tokenizer.text_cleaning_tables(), ensure_ascii=False, separators=(",", ":"))
    _write_bytes(os.path.join(work, export_format.TEXT_CLEANING), cleaning.encode("utf-8"))


def _write_zero_shot(work, model, tokenizer, labels, templates, record):
    """The classifier's assets; returns a builder of its concrete function (class embeddings baked in) from a
    model (the plain one or an equalised copy: the class embeddings come from the plain model's text tower)."""
    from . import zero_shot

    class_weights, scale = zero_shot.class_weights(model, tokenizer, labels, templates)
    labels_path, templates_path = export_format.ZERO_SHOT_LABELS, export_format.ZERO_SHOT_TEMPLATES
    for relative, lines in ((labels_path, labels), (templates_path, templates)):
        _write_bytes(os.path.join(work, relative), ("\n".join(lines) + "\n").encode("utf-8"))
    record.zero_shot = {"labels": labels, "templates": templates, "logit_scale": scale,
                        "labels_path": labels_path, "templates_path": templates_path}
    return lambda source: zero_shot.tflite_zero_shot(source, class_weights)


def _float_reference(work, resolution):
    """The parity harness's float reference: the export's SavedModel on the held-out photos and sentences."""
    from . import datasets, parity

    return parity.FloatReference(os.path.join(work, export_format.SAVED_MODEL),
                                 datasets.builtin_images(datasets.HELD_OUT_PHOTOS, resolution),
                                 datasets.held_out_sentences())


class _ReferenceAhead:
    """_float_reference computed in a thread while this process only waits for the text tower's conversion
    processes: much of their time is the TFLite converter, which runs on one core, so one after the other leaves
    a core idle (docs/benchmarks.md, "Export", has the large preset's stages). Only beside conversion processes:
    a conversion in this process would run TensorFlow beside the thread, which changes TensorFlow's process-wide
    optimiser setting (parity._graph_rewrites_off); and only beside the text tower's, whose processes take a
    third of the image tower's memory (the zero-shot classifier's are the image tower's)."""

    def __init__(self, work, resolution):
        import threading

        self.reference, self.error = None, None
        self._thread = threading.Thread(target=self._run, args=(work, resolution), daemon=True)
        self._thread.start()

    def _run(self, work, resolution):
        try:
            self.reference = _float_reference(work, resolution)
        except BaseException as error:  # raised where the reference is used, in the parity stage
            self.error = error

    def join(self):
        self._thread.join()

    def get(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.reference


def _measure(work, record, preprocess_photos, threads, reference=None):
    """Fills in every artifact's parity: the harness against the float SavedModel on held-out data.
    `reference`: _float_reference's result when it was made ahead."""
    from . import datasets, parity

    resolution = record.config["image_resolution"]
    reference = reference or _float_reference(work, resolution)
    held_out = reference.pixels
    by_path = {a.path: a for a in record.artifacts}

    def variants(tower):
        return [a.variant for a in record.artifacts if a.tower == tower]

    results = parity.measure(work, variants("image"), held_out, datasets.held_out_sentences(), threads=threads,
                             reference=reference)
    if variants("zero_shot"):
        results += parity.measure_zero_shot(work, variants("zero_shot"), held_out, threads=threads,
                                            reference=reference)
    if export_format.PREPROCESS_PATH in by_path:
        results.append(parity.measure_preprocess(work, preprocess_photos, resolution, threads))
    for result in results:
        by_path[result.path].parity.append(result)


def _check_delegates(work, record):
    """Fills in delegate readiness, per signature (a delegate runs one signature's subgraph), for the variants
    made for a delegate."""
    from . import delegate_check, tflite_model

    for artifact in record.artifacts:
        target = artifact.variant and VARIANTS[artifact.variant].delegate
        if not target:
            continue
        path = os.path.join(work, artifact.path)
        with open(path, "rb") as file:
            subgraphs = tflite_model.signature_subgraphs(file.read(), path)
        for result in artifact.parity:
            signature = getattr(result, "signature", DEFAULT_SIGNATURE)
            report = delegate_check.check(path, target, subgraphs[signature]).to_dict()
            artifact.delegate[signature] = {key: report[key] for key in (
                "target", "ready", "op_count", "delegated_op_count", "model_problems", "unsupported_ops")}


def _set_aside(work, record, rejected):
    """Moves every file of the `rejected` variants ({variant: shortfalls}) from tflite/ to rejected/tflite/."""
    for artifact in record.artifacts:
        if artifact.variant in rejected:
            moved = os.path.join(export_format.REJECTED_DIR, artifact.path)
            os.makedirs(os.path.dirname(os.path.join(work, moved)), exist_ok=True)
            os.rename(os.path.join(work, artifact.path), os.path.join(work, moved))
            artifact.path, artifact.rejected = moved, True
    record.rejected_variants = dict(rejected)


def run_export(preset, weights, output_dir, name=None, variants=tuple(VARIANTS),
               calibration_images=None, threads=2, int8_recipes=None, text_buckets=None, zero_shot_labels=None,
               zero_shot_templates=None, preprocess=True, require=None, log=None):
    """The whole export, stage by stage; returns (path of DIR/NAME, its manifest.ExportRecord). Raises
    ExportError naming the stage. `threads` applies to TFLite latency measurement; the command line also sets
    TensorFlow's thread pool. `int8_recipes` may name the int8 recipe per tower ({"image": ..., "text": ...}).
    `text_buckets`: shorter text lengths (default: clip_edge.model.DEFAULT_TEXT_BUCKETS below the context
    length). `zero_shot_labels` / `zero_shot_templates`: files for the zero-shot classifiers (templates default
    to converters.zero_shot.DEFAULT_TEMPLATES). `preprocess` adds tflite/preprocess.tflite. `require`: "all" or
    the variants whose failure refuses the export (default converters.gate.DEFAULT_REQUIRED); the others are
    set aside when they miss a bar (the record's rejected_variants) and the rest ships. `log`: where the progress
    lines go (default sys.stdout)."""
    from . import tflite_variants

    checked = ExportOptions(
        preset=preset, weights=weights, output_dir=output_dir, name=name, variants=variants,
        calibration_images=calibration_images, threads=threads, int8_recipes=int8_recipes, text_buckets=text_buckets,
        zero_shot_labels=zero_shot_labels, zero_shot_templates=zero_shot_templates, preprocess=preprocess,
        require=require).checked()
    options = checked.options
    work = _work_folder(options.output_dir, options.name)
    progress = Progress(log)
    try:
        record, scratch, jobs = _model_stages(checked, work, progress)
        tflite_variants.release_memory()  # the model and its equalised copies went with _model_stages's frame
        ahead = _conversion_stages(work, scratch, jobs, options, progress, record)
        if options.preprocess:
            _preprocess_stage(work, record, progress)
        _parity_stage(work, record, options.threads, progress, ahead)
        with progress.stage("delegate checks"):
            _check_delegates(work, record)
        return _manifest_stage(work, record, checked, progress), record
    finally:
        if os.path.exists(work):
            shutil.rmtree(work, ignore_errors=True)


def _work_folder(output_dir, name):
    """This export's work folder, DIR/.NAME.tmp-PID, made empty, after removing what killed exports left there
    (_remove_stale_temporaries). The pid in the name tells later runs whether this folder's export is still alive."""
    _remove_stale_temporaries(output_dir, name)
    work = os.path.join(output_dir, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return work


def _model_stages(checked, work, progress):
    """The stages that hold the model: load model, SavedModel, calibration data, zero-shot class embeddings and
    TFLite sources. Returns (the ExportRecord, the scratch folder of the TFLite sources, the towers' conversion
    jobs); the model goes with this frame, before the conversions."""
    from . import serving

    options = checked.options
    with progress.stage("load model", f"{options.preset or 'from checkpoint'}, weights={options.weights}") as stage:
        model, tokenizer, text_functions, record = _load(options.preset, options.weights, options.name,
                                                         options.threads, options.text_buckets)
        stage.summary = f"{model.count_params():,} parameters"

    with progress.stage("SavedModel"):
        _write_saved_model(work, model, tokenizer)

    # {signature key: token length} of the text encoders.
    text_signatures = {key: int(f.structured_input_signature[0][0].shape[1]) for key, f in text_functions.items()}
    calibration, calibration_inputs = _calibration_stage(model, tokenizer, options, text_signatures, progress)
    equalized = _EqualizedModels(model, calibration_inputs)

    lengths = list(text_signatures.values())
    # Builders of each tower's functions from a model: the plain one, or an equalised copy for the quantised
    # variants (the plain model's text functions are already traced).
    towers = [("image", serving.tflite_image_encoder),
              ("text", functools.partial(_text_encoders, model, text_functions, lengths))]
    if checked.labels:
        labels, templates = checked.labels, checked.templates
        with progress.stage("zero-shot class embeddings", f"{len(labels)} labels x {len(templates)} templates"):
            towers.append(("zero_shot", _write_zero_shot(work, model, tokenizer, labels, templates, record)))

    scratch = os.path.join(work, ".sources")
    return record, scratch, _sources_stage(scratch, towers, model, equalized, calibration, options, progress)


def _calibration_stage(model, tokenizer, options, text_signatures, progress):
    """_calibration's inputs when a variant needs them, else ({}, None): int8 is calibrated on them; dynamic_int8
    is converted from the model equalised on them."""
    if not any(VARIANTS[v].calibrated or v == "dynamic_int8" for v in options.variants):
        return {}, None
    with progress.stage("calibration data") as stage:
        calibration, calibration_inputs = _calibration(model, tokenizer, options.calibration_images,
                                                       text_signatures)
        stage.summary = (f"{len(calibration_inputs['image'])} photos, "
                         f"{len(calibration_inputs['text'])} sentences")
    return calibration, calibration_inputs


def _sources_stage(scratch, towers, model, equalized, calibration, options, progress):
    """Each tower's functions as SavedModels under `scratch` (_write_sources); returns the towers' conversion jobs.
    The towers are converted in processes of their own (but small ones) from these (converters.convert_tower has
    the reasons)."""
    from . import datasets, tflite_variants

    # The exporter's own calibration photos come as crops of each in a row; a user's folder, one image per photo.
    crops_per_photo = 1 if options.calibration_images else datasets.CROPS_PER_PHOTO
    with progress.stage("TFLite sources", "each tower's functions as SavedModels") as stage:
        jobs = []
        for tower, build in towers:
            # The classifier is the image tower plus one matmul: calibrated and quantised as the image one.
            kind = "image" if tower == "zero_shot" else tower
            recipe = (options.int8_recipes.get(kind)
                      or tflite_variants.RECOMMENDED_INT8_RECIPES[f"{kind}_encoder"])
            jobs.append(_write_sources(scratch, tower, build, model, equalized, options.variants, recipe,
                                       calibration.get(kind), crops_per_photo))
        stage.summary = f"{sum(len(j['groups']) for j in jobs)} SavedModels"
    return jobs


def _conversion_stages(work, scratch, jobs, options, progress, record):
    """One stage per tower: its variants converted (_convert); then the sources are removed. Returns the parity
    stage's float reference (_ReferenceAhead) when it was made beside the text tower's conversion processes,
    else None."""
    ahead = None
    for index, job in enumerate(jobs):
        tower = job["tower"]
        stage_name = f"TFLite {tower} encoder" if tower != "zero_shot" else "TFLite zero-shot classifier"
        with progress.stage(stage_name, ", ".join(options.variants)):
            if tower == "text" and all(_folder_bytes(g["path"]) >= IN_PROCESS_CONVERSION_BYTES
                                       for g in job["groups"]):
                ahead = _ReferenceAhead(work, record.config["image_resolution"])
            try:
                _convert(work, scratch, job, options.threads, progress, record)
            finally:
                # TensorFlow is this process's own again after this stage; a failed or interrupted conversion
                # waits for the reference too (it cannot be stopped midway), up to its minute on a large preset.
                if ahead is not None:
                    ahead.join()
    shutil.rmtree(scratch)
    return ahead


def _preprocess_stage(work, record, progress):
    """tflite/preprocess.tflite."""
    from . import manifest, serving, tflite_variants

    with progress.stage("TFLite preprocessing"):
        _write_bytes(os.path.join(work, export_format.PREPROCESS_PATH), tflite_variants.convert_preprocess(
            serving.tflite_preprocess(record.config["image_resolution"])))
        record.artifacts.append(manifest.ArtifactRecord(export_format.PREPROCESS_PATH, "preprocess", None))


def _parity_stage(work, record, threads, progress, ahead=None):
    """Every artifact's parity (_measure), then its table. `ahead`: the float reference made ahead, if it was."""
    from . import datasets
    from .parity_table import format_table

    with progress.stage("parity", "held-out photos and sentences vs the float SavedModel") as stage:
        _measure(work, record, datasets.held_out_photos(), threads, ahead.get() if ahead is not None else None)
        passed = sum(a.passed for a in record.artifacts)
        stage.summary = f"{passed}/{len(record.artifacts)} artifacts meet their bar"
    progress.print(format_table([r for a in record.artifacts if a.tower != "preprocess" for r in a.parity]))
    for artifact in record.artifacts:
        if artifact.tower == "preprocess":
            progress.print(artifact.parity[0].format())


def _manifest_stage(work, record, checked, progress):
    """The gate's verdict on the parity: the export renamed into place at DIR/NAME (returned) with the variants
    it rejects set aside, or refused (ExportError) and renamed to DIR/NAME.rejected with its report."""
    from . import manifest

    options = checked.options
    with progress.stage("manifest") as stage:
        gate = Gate.of(record.results, options.variants, checked.required)
        if gate.refused:
            manifest.write_report(work, record)
            refused = os.path.join(options.output_dir, f"{options.name}.rejected")
            _replace_directory(work, refused)
            raise ExportError("parity: " + "; ".join(gate.refused)
                              + f". Nothing was shipped; artifacts and report are in {refused}")
        _set_aside(work, record, gate.rejected)
        manifest.write_report(work, record)
        manifest.write_manifest(work, record)
        target = os.path.join(options.output_dir, options.name)
        _replace_directory(work, target)
        stage.summary = f"wrote {target}"
    return target


# Lines of captured third-party output replayed when an export fails.
CAPTURED_TAIL_LINES = 200


@contextlib.contextmanager
def _capture_third_party_output(verbose):
    """Yields (stream for our own lines, outcome): file descriptors 1 and 2, where TensorFlow's C++ logging
    (CUDA probing on a machine without a GPU), Python warnings, ai-edge-quantizer's per-tensor progress bars and
    LiteRT's notices all write, go to a temporary file meanwhile. Set outcome.failed to have the last
    CAPTURED_TAIL_LINES lines replayed on stderr (also done on an exception). `verbose`: capture nothing."""
    outcome = types.SimpleNamespace(failed=False)
    if verbose:
        yield sys.stdout, outcome
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(saved[1]), "w")
    with tempfile.TemporaryFile() as captured:
        for fd in (1, 2):
            os.dup2(captured.fileno(), fd)
        try:
            yield console, outcome
        except BaseException:
            outcome.failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            console.close()
            if outcome.failed:
                captured.seek(0)
                lines = captured.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()
                shown = lines[-CAPTURED_TAIL_LINES:]
                print(f"--- what TensorFlow and other libraries printed (last {len(shown)} of {len(lines)} lines; "
                      "--verbose shows it as it happens) ---", *shown, "---", sep="\n", file=sys.stderr, flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    messages = []  # for stderr once it is ours again
    with _capture_third_party_output(FLAGS.verbose) as (console, outcome):
        status = _export(console, messages)
        outcome.failed = status == EXIT_REFUSED
    for message in messages:
        print(message, file=sys.stderr)
    return status


def _export(console, messages):
    """The command line's export: progress lines to `console`, the outcome appended to `messages`; the status."""
    logging.set_verbosity(logging.WARNING)
    # TensorFlow's oneDNN allocator never returns what it frees, so the model this process lets go of before the
    # conversions (run_export) would stay resident: 4.8 GB beside the image tower's conversion for
    # clip-vit-large-patch14-336. TensorFlow's own allocator returns it. Set before TensorFlow is imported.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)  # before TensorFlow runs anything
    buckets = FLAGS.text_buckets
    if buckets is not None:
        bad = [n for n in buckets if not n.strip().isdigit()]
        if bad:
            messages.append(f"export failed: --text_buckets takes token lengths (integers), got {bad}")
            return EXIT_REFUSED
        buckets = [int(n) for n in buckets]
    try:
        target, record = run_export(FLAGS.preset, FLAGS.weights, FLAGS.output_dir, FLAGS.name, FLAGS.variants,
                                    FLAGS.calibration_images, FLAGS.threads,
                                    {"image": FLAGS.image_int8_recipe, "text": FLAGS.text_int8_recipe},
                                    buckets, FLAGS.zero_shot_labels, FLAGS.zero_shot_templates, FLAGS.preprocess,
                                    FLAGS.require, log=console)
    except (ExportError, ValueError) as error:
        messages.append(f"export failed: {error}")
        return EXIT_REFUSED
    if record.rejected_variants:
        messages.append(f"exported {target} without the variants that missed their bars (kept in "
                        f"{target}/rejected/): "
                        + "; ".join(f"{v}: {'; '.join(s)}" for v, s in record.rejected_variants.items()))
        return EXIT_REJECTED_VARIANTS
    return EXIT_OK


if __name__ == "__main__":
    app.run(main)
