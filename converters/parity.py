"""Parity harness: every TFLite artifact of an export against the float model, on held-out photos and sentences.

The float reference is the export's own SavedModel (float32 TensorFlow, tokenizer inside), so the harness
works on any export directory, in or out of the exporter:

    python -m converters.parity --export_dir=out/clip-vit-base-patch32 [--threads=2] [--require=all|VARIANTS]

For each variant: cosine similarity of embeddings (mean and min), max absolute error, and zero-shot top-1
agreement with the float model (held-out photos x prompts; the other tower stays float). A variant with an
artifact below its bar (converters.variants.VARIANTS) fails, and the verdict is the exporter's (converters.gate):
exit 0 when every variant passes, 3 when some fail and the others would ship, 1 when a required variant
(--require; default float32) or every variant fails, or the folder is not an export or its manifest is of a newer
format than this harness reads (clip_edge.export_format). On a shipped export the harness measures tflite/, the
shipped variants; the exporter keeps rejected ones in rejected/.

Text encoders are measured per signature (one per length bucket): each on the sentences that fit it, plus
sentences that exactly fill each bucket and ones a token too long (which only the next bucket may take),
against the float model and against the same file's full-length signature (float32 must agree with it to
cosine 1 - 1e-7; every bucket must meet its variant's bar). Zero-shot classifiers (tflite/zero_shot_*.tflite)
are compared with the float zero-shot computed from the SavedModel's encode_text and encode_pixels with the
same labels and templates (assets/zero_shot_*.txt): top-1 agreement and max probability error, per variant.
"""

import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time

import numpy as np

from clip_edge.export_format import (MANIFEST, PREPROCESS_PATH, SAVED_MODEL, ZERO_SHOT_LABELS, ZERO_SHOT_TEMPLATES,
                                     ManifestFormatError, check_format_version)
from .gate import DEFAULT_REQUIRED, EXIT_REFUSED, Gate, required_variants
from .parity_table import format_table
from .variants import DEFAULT_SIGNATURE, VARIANTS, tflite_path

TOWERS = ("image", "text")


@dataclasses.dataclass
class ArtifactParity:
    path: str  # relative to the export directory
    tower: str
    variant: str
    cosine_mean: float
    cosine_min: float
    max_abs_error: float
    top1_agreement: float
    latency_ms: float
    bar: float
    examples: int
    threads: int
    signature: str = DEFAULT_SIGNATURE
    length: int | None = None  # text encoders: the signature's token count
    # Shorter text signatures: the same texts through the file's full-length signature.
    full_length_cosine_min: float | None = None
    full_length_max_abs_diff: float | None = None

    @property
    def label(self):
        return self.path if self.signature == DEFAULT_SIGNATURE else f"{self.path} [{self.signature}]"

    @property
    def passed(self):
        return self.cosine_min >= self.bar and not self._bucket_shortfall()

    def _bucket_shortfall(self):
        bar = VARIANTS[self.variant].full_length_bar
        if bar is not None and self.full_length_cosine_min is not None and self.full_length_cosine_min < bar:
            return f"cosine to the full-length signature {self.full_length_cosine_min:.9f} is below {bar:.7f}"
        return ""

    def shortfall(self):
        problems = [self._bucket_shortfall()]
        if self.cosine_min < self.bar:
            problems.insert(0, f"min cosine {self.cosine_min:.6f} is {self.bar - self.cosine_min:.6f} below {self.bar}")
        return "; ".join(p for p in problems if p)

    def to_dict(self):
        return dict(dataclasses.asdict(self), passed=self.passed)


@dataclasses.dataclass
class ZeroShotParity:
    path: str
    variant: str
    top1_agreement: float
    max_prob_error: float
    latency_ms: float
    examples: int
    classes: int
    threads: int
    tower: str = "zero_shot"

    @property
    def label(self):
        return self.path

    @property
    def bars(self):
        return VARIANTS[self.variant].zero_shot_bars

    @property
    def passed(self):
        return self.top1_agreement >= self.bars[0] and self.max_prob_error <= self.bars[1]

    def shortfall(self):
        problems = []
        if self.top1_agreement < self.bars[0]:
            problems.append(f"top-1 agreement {self.top1_agreement:.1%} is below {self.bars[0]:.0%}")
        if self.max_prob_error > self.bars[1]:
            problems.append(f"max probability error {self.max_prob_error:.2e} is above {self.bars[1]}")
        return "; ".join(problems)

    def to_dict(self):
        return dict(dataclasses.asdict(self), bars={"top1_agreement_min": self.bars[0],
                                                     "max_prob_error_max": self.bars[1]}, passed=self.passed)


class TFLiteEncoder:
    """One signature of a .tflite encoder in ai_edge_litert, checked against the export contract."""

    def __init__(self, path, expected_input_dtype, expected_input_shape, threads, signature=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self._times = []  # of every invoke embed() made, in order
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        signatures = self.interpreter.get_signature_list()
        signature = signature or (DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else None)
        if signature is None:
            raise ValueError(f"{path}: no {DEFAULT_SIGNATURE} signature (found {sorted(signatures)})")
        self.runner = self.interpreter.get_signature_runner(signature)
        (self.input_name, self.input), = self.runner.get_input_details().items()
        (self.output_name, self.output), = self.runner.get_output_details().items()
        found = (np.dtype(self.input["dtype"]).name, tuple(self.input["shape"]))
        if found != (np.dtype(expected_input_dtype).name, tuple(expected_input_shape)):
            raise ValueError(f"{path} [{signature}]: input is {found}, the contract says "
                             f"{(np.dtype(expected_input_dtype).name, tuple(expected_input_shape))}")
        if np.dtype(self.output["dtype"]) != np.float32:
            raise ValueError(f"{path} [{signature}]: output is {np.dtype(self.output['dtype']).name}, the contract "
                             f"says float32")

    def __call__(self, item):
        return self.runner(**{self.input_name: item[np.newaxis]})[self.output_name][0].copy()

    def _timed(self, item):
        start = time.perf_counter()
        output = self(item)
        self._times.append(time.perf_counter() - start)
        return output

    def embed(self, items):
        """One invoke per item; their times are kept for median_latency_ms."""
        return np.stack([self._timed(item) for item in items])

    def median_latency_ms(self, item, repeats=10):
        """Median of `repeats` timed invokes after the first (a warm-up: the interpreter's first invoke allocates).
        The invokes embed() made count: the parity inputs of one signature all have its shape, and a large
        encoder's 32 held-out crops already take minutes (2.2-2.6 s each for clip-vit-large-patch14-336's float
        encoders), so only the invokes missing from `repeats` are made here, on `item`."""
        while len(self._times) < repeats + 1:
            self._timed(item)
        return 1e3 * statistics.median(self._times[1:repeats + 1])


def text_signatures(path):
    """{signature key: token length} of a text encoder file, the full length first."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    lengths = {}
    for key in interpreter.get_signature_list():
        (detail,) = interpreter.get_signature_runner(key).get_input_details().values()
        lengths[key] = int(detail["shape"][1])
    return dict(sorted(lengths.items(), key=lambda item: (item[0] != DEFAULT_SIGNATURE, item[1])))


def end_positions(token_ids):
    """Each row's first largest id (the end token, where CLIP pools)."""
    return np.argmax(token_ids, axis=1)


def cosine_rows(a, b):
    """The cosine of each row of `a` with the same row of `b`, in float64 (every parity figure is one of these;
    tests and benchmarks use it too)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@contextlib.contextmanager
def _graph_rewrites_off():
    """TensorFlow's graph optimiser (grappler) off for the SavedModel functions first called inside: it rewrites a
    function when it is first called, and on the tokenizer's and image decoder's large graphs that took most of
    the reference's time for a few dozen inputs, while the embeddings moved by at most 1.2e-7; the image encoder
    alone runs as fast either way (docs/benchmarks.md, "Parity harness"). The setting is the process's, so it is
    put back on the way out."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


# Held-out crops per call of the SavedModel's image encoder: memory in proportion to a few crops (a batch of 32
# at 336 px holds attention scores of 0.7 GB per layer), not to the held-out set.
REFERENCE_BATCH = 8


def embed_pixels(model, pixels):
    """The loaded SavedModel's encode_pixels on uint8 [N, R, R, 3], REFERENCE_BATCH crops a call."""
    import tensorflow as tf

    encode = model.signatures["encode_pixels"]
    return np.concatenate([encode(pixels=tf.constant(pixels[i:i + REFERENCE_BATCH]))["embeddings"].numpy()
                           for i in range(0, len(pixels), REFERENCE_BATCH)])


class FloatReference:
    """Float embeddings and token ids of the held-out data, from the export's SavedModel."""

    def __init__(self, saved_model_dir, pixels, sentences):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokenizer's ops before loading

        self.model = tf.saved_model.load(saved_model_dir)
        self.pixels = pixels
        self.token_ids, self.text = self.texts(sentences)
        with _graph_rewrites_off():
            self.image = embed_pixels(self.model, pixels)

    def texts(self, sentences):
        """(token ids [N, L], float embeddings [N, D]) of `sentences`."""
        import tensorflow as tf

        texts = tf.constant(list(sentences), tf.string)
        with _graph_rewrites_off():
            return (self.model.signatures["tokenize"](texts=texts)["token_ids"].numpy(),
                    self.model.signatures["encode_text"](texts=texts)["embeddings"].numpy())

    def logit_scale(self, texts):
        """The model's logit scale as serving_default applies it: least squares of its image logits against
        the cosines of encode_image and encode_text (one held-out photo, PNG-encoded, and `texts`)."""
        import tensorflow as tf

        png = tf.io.encode_png(tf.constant(self.pixels[0]))[tf.newaxis]
        texts = tf.constant(list(texts), tf.string)
        with _graph_rewrites_off():
            logits = self.model.signatures[DEFAULT_SIGNATURE](images=png, texts=texts)["image_logits"].numpy()[0]
            cosines = (self.model.signatures["encode_image"](images=png)["embeddings"].numpy()
                       @ self.model.signatures["encode_text"](texts=texts)["embeddings"].numpy().T)[0]
        return float(np.sum(logits * cosines) / np.sum(cosines * cosines))

    def zero_shot(self, image, text):
        return np.argmax(image @ text.T, axis=1)


def boundary_sentences(reference, lengths, pool=None):
    """Word prefixes of held-out captions, for each length L below the largest: the longest with at most L
    tokens (start and end included; exactly L when a prefix has that many) and the shortest with more (L + 1
    when there is one): the texts that fill a bucket and the ones it must refuse. The empty prefix (2 tokens)
    counts, so every bucket, down to 2, holds at least one text to measure; exact counts may be missing (a word
    of several tokens skips them), and a bucket without texts would have nothing to measure."""
    from . import datasets

    words = " ".join(pool or datasets.HELD_OUT_CAPTIONS).split()
    prefixes = [" ".join(words[:k]) for k in range(len(words) + 1)]
    counts = [int(n) for n in (reference.texts(prefixes)[0] != 0).sum(axis=1)]  # non-decreasing
    chosen = []
    for length in sorted(lengths)[:-1]:
        fitting = [k for k, count in enumerate(counts) if count <= length]
        longer = [k for k, count in enumerate(counts) if count > length]
        for k in fitting[-1:] + longer[:1]:
            if prefixes[k] not in chosen:
                chosen.append(prefixes[k])
    return chosen


def _measure_text_signatures(export_dir, relative, variant, reference, threads, latency_repeats):
    path = os.path.join(export_dir, relative)
    signatures = text_signatures(path)
    full = TFLiteEncoder(path, np.int32, (1, reference.token_ids.shape[1]), threads)
    full_found = full.embed(reference.token_ids)
    results = []
    for key, length in signatures.items():
        fits = end_positions(reference.token_ids) < length
        if not fits.any():  # boundary_sentences gives every bucket a text; a caller's own sentences may not
            raise ValueError(f"{relative}: no measured sentence fits signature {key} ({length} tokens); "
                             "--text_buckets lengths need texts that short")
        inputs = reference.token_ids[fits, :length]
        expected = reference.text[fits]
        encoder = full if key == DEFAULT_SIGNATURE else TFLiteEncoder(path, np.int32, (1, length), threads, key)
        found = full_found if key == DEFAULT_SIGNATURE else encoder.embed(inputs)
        cosines = cosine_rows(found, expected)
        top1 = reference.zero_shot(reference.image, found) == reference.zero_shot(reference.image, expected)
        extra = {}
        if key != DEFAULT_SIGNATURE:
            extra = dict(full_length_cosine_min=float(np.min(cosine_rows(found, full_found[fits]))),
                         full_length_max_abs_diff=float(np.max(np.abs(found - full_found[fits]))))
        results.append(ArtifactParity(
            path=relative, tower="text", variant=variant, cosine_mean=float(np.mean(cosines)),
            cosine_min=float(np.min(cosines)), max_abs_error=float(np.max(np.abs(found - expected))),
            top1_agreement=float(np.mean(top1)), latency_ms=encoder.median_latency_ms(inputs[0], latency_repeats),
            bar=VARIANTS[variant].bar, examples=len(inputs), threads=threads, signature=key, length=length, **extra))
    return results


def measure(export_dir, variants, pixels, sentences, threads=2, latency_repeats=10, towers=TOWERS, reference=None):
    """[ArtifactParity] for each tower and variant present in export_dir (text: one per signature).
    `reference`: a FloatReference of the same pixels and sentences, to reuse a loaded SavedModel."""
    reference = reference or FloatReference(os.path.join(export_dir, "saved_model"), pixels, sentences)
    float_top1 = reference.zero_shot(reference.image, reference.text)
    results, text_references = [], {}  # {signature lengths: the float reference with their boundary sentences}
    for tower in towers:
        for variant in variants:
            relative = tflite_path(tower, variant)
            if tower == "text":
                lengths = tuple(text_signatures(os.path.join(export_dir, relative)).values())
                if lengths not in text_references:  # every variant has the same buckets: one float pass for all
                    extra = [s for s in boundary_sentences(reference, lengths) if s not in sentences]
                    text_references[lengths] = _ExtendedTexts(reference, extra) if extra else reference
                results += _measure_text_signatures(export_dir, relative, variant, text_references[lengths], threads,
                                                    latency_repeats)
                continue
            encoder = TFLiteEncoder(os.path.join(export_dir, relative), np.uint8, (1,) + pixels.shape[1:], threads)
            found = encoder.embed(reference.pixels)
            cosines = cosine_rows(found, reference.image)
            top1 = reference.zero_shot(found, reference.text)
            results.append(ArtifactParity(
                path=relative, tower=tower, variant=variant, cosine_mean=float(np.mean(cosines)),
                cosine_min=float(np.min(cosines)), max_abs_error=float(np.max(np.abs(found - reference.image))),
                top1_agreement=float(np.mean(top1 == float_top1)),
                latency_ms=encoder.median_latency_ms(reference.pixels[0], latency_repeats), bar=VARIANTS[variant].bar,
                examples=len(reference.pixels), threads=threads))
    return results


class _ExtendedTexts:
    """A FloatReference view with more sentences (the bucket-boundary ones) after the held-out ones."""

    def __init__(self, reference, sentences):
        token_ids, text = reference.texts(sentences)
        self.image = reference.image
        self.token_ids = np.concatenate([reference.token_ids, token_ids])
        self.text = np.concatenate([reference.text, text])
        self.zero_shot = reference.zero_shot


def read_zero_shot_texts(export_dir):
    """(labels, templates) from the export's assets."""
    def lines(relative):
        with open(os.path.join(export_dir, relative), encoding="utf-8") as file:
            return [line.rstrip("\n") for line in file if line.strip()]
    return lines(ZERO_SHOT_LABELS), lines(ZERO_SHOT_TEMPLATES)


def measure_zero_shot(export_dir, variants, pixels, threads=2, latency_repeats=10, reference=None):
    """[ZeroShotParity] for each variant's tflite/zero_shot_{variant}.tflite, against the float zero-shot of
    the SavedModel with the export's labels and templates."""
    from . import zero_shot

    labels, templates = read_zero_shot_texts(export_dir)
    reference = reference or FloatReference(os.path.join(export_dir, "saved_model"), pixels, [])
    texts = zero_shot.prompts(labels, templates)
    text = np.concatenate([reference.texts(texts[i:i + 256])[1] for i in range(0, len(texts), 256)])
    classes = zero_shot.average_class_embeddings(text, len(labels))
    logits = reference.logit_scale(texts[:16]) * (reference.image @ classes.T)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    results = []
    for variant in variants:
        relative = tflite_path("zero_shot", variant)
        encoder = TFLiteEncoder(os.path.join(export_dir, relative), np.uint8, (1,) + pixels.shape[1:], threads)
        found = encoder.embed(reference.pixels)
        if found.shape[1] != len(labels):
            raise ValueError(f"{relative}: {found.shape[1]} outputs for {len(labels)} labels in {ZERO_SHOT_LABELS}")
        results.append(ZeroShotParity(
            path=relative, variant=variant,
            top1_agreement=float(np.mean(np.argmax(found, 1) == np.argmax(expected, 1))),
            max_prob_error=float(np.max(np.abs(found - expected))),
            latency_ms=encoder.median_latency_ms(reference.pixels[0], latency_repeats), examples=len(found),
            classes=len(labels), threads=threads))
    return results


# Max abs difference from ImagePreprocessor.resize_and_crop, in 8-bit levels. The aim is 1; the float32 weights
# (see converters/preprocess_tflite.py) break exact ties differently from the float64 ones, and on scalings with many
# ties (256 -> 224 crops of the moon and gravel photos) a tie in the first pass then meets one in the second:
# 2 levels on a few values (1,845 of 6,021,120 values differ on the held-out photos at R = 224, 2026-12-01).
PREPROCESS_BAR_LEVELS = 2


@dataclasses.dataclass
class PreprocessParity:
    """preprocess.tflite against the SavedModel's resize and crop, in 8-bit levels."""

    max_level_difference: int
    values_differing: int
    values: int
    images: int
    bar_levels: int
    path: str = PREPROCESS_PATH
    label = PREPROCESS_PATH
    variant = None  # one preprocessing model serves every variant

    @property
    def passed(self):
        return self.max_level_difference <= self.bar_levels

    def shortfall(self):
        return "" if self.passed else (f"max difference {self.max_level_difference} levels is above "
                                       f"{self.bar_levels}")

    def to_dict(self):
        return dict({k: v for k, v in dataclasses.asdict(self).items() if k != "path"}, passed=self.passed)

    def format(self):
        """One line for people: how far preprocess.tflite is from the SavedModel's resize and crop."""
        return (f"{self.path}: max difference {self.max_level_difference} level(s) (bar {self.bar_levels}), "
                f"{self.values_differing:,} of {self.values:,} values differ, {self.images} held-out photos and "
                f"crops at their own sizes: {'pass' if self.passed else 'FAIL'}")


def measure_preprocess(export_dir, images, resolution, threads=2):
    """PreprocessParity of preprocess.tflite against the SavedModel's resize and crop
    (ImagePreprocessor.resize_and_crop, the same graph code) on uint8 [H, W, 3] images of their own sizes."""
    from clip_edge.preprocessing import ImagePreprocessor
    from .tflite_variants import run_preprocess

    with open(os.path.join(export_dir, PREPROCESS_PATH), "rb") as file:
        tflite = file.read()
    preprocessor = ImagePreprocessor(resolution)
    worst, differing, values = 0, 0, 0
    for image in images:
        found = run_preprocess(tflite, image[np.newaxis], threads)[0].astype(np.int16)
        expected = preprocessor.resize_and_crop(image).numpy().astype(np.int16)
        difference = np.abs(found - expected)
        worst, differing, values = max(worst, int(difference.max())), differing + int(np.count_nonzero(difference)), \
            values + difference.size
    return PreprocessParity(max_level_difference=worst, values_differing=differing, values=values, images=len(images),
                            bar_levels=PREPROCESS_BAR_LEVELS)


def _check_manifest(export_dir):
    """Exits unless the export's manifest, if it has one, is of a format this harness reads (a refused export,
    NAME.rejected, has none)."""
    path = os.path.join(export_dir, MANIFEST)
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as file:
            check_format_version(json.loads(file.read()), path)
    except ManifestFormatError as error:
        sys.exit(str(error))
    except (OSError, ValueError) as error:
        sys.exit(f"{path}: not an export manifest ({type(error).__name__}: {error})")


def main(argv=None):
    import argparse

    from . import datasets

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_dir", required=True, help="an export's DIR/NAME folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--require", default=None, help="all, or comma-separated variants whose failure is fatal "
                        f"(exit {EXIT_REFUSED}); default: {','.join(DEFAULT_REQUIRED)} when present (as the exporter)")
    args = parser.parse_args(argv)
    tflite_dir = os.path.join(args.export_dir, "tflite")
    if not os.path.isdir(os.path.join(args.export_dir, SAVED_MODEL)) or not os.path.isdir(tflite_dir):
        sys.exit(f"{args.export_dir}: not an export directory (needs {SAVED_MODEL}/ and tflite/)")
    _check_manifest(args.export_dir)
    variants = [v for v in VARIANTS if all(os.path.exists(os.path.join(args.export_dir, tflite_path(t, v)))
                                       for t in TOWERS)]
    if not variants:
        sys.exit(f"{tflite_dir}: no pair of image and text encoders of one variant")
    try:
        required = required_variants(None if args.require is None else args.require.split(","), variants)
    except ValueError as error:
        sys.exit(str(error))
    from ai_edge_litert.interpreter import Interpreter

    resolution = Interpreter(model_path=os.path.join(args.export_dir, tflite_path("image", variants[0]))
                             ).get_input_details()[0]["shape"][1]
    pixels = datasets.builtin_images(datasets.HELD_OUT_PHOTOS, resolution)
    reference = FloatReference(os.path.join(args.export_dir, "saved_model"), pixels, datasets.held_out_sentences())
    results = measure(args.export_dir, variants, pixels, datasets.held_out_sentences(), threads=args.threads,
                      reference=reference)
    zero_shot_variants = [v for v in VARIANTS
                          if os.path.exists(os.path.join(args.export_dir, tflite_path("zero_shot", v)))]
    if zero_shot_variants:
        results += measure_zero_shot(args.export_dir, zero_shot_variants, pixels, threads=args.threads,
                                     reference=reference)
    print(format_table(results))
    gate = Gate.of(results, variants, required)
    for variant, shortfalls in gate.rejected.items():
        print(f"FAIL {variant}: {'; '.join(shortfalls)}", file=sys.stderr)
    if gate.refused:
        print("refused: " + "; ".join(gate.refused), file=sys.stderr)
    return gate.exit_code


if __name__ == "__main__":
    sys.exit(main())
