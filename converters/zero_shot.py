"""The zero-shot classifier artifact: class names and prompt templates in, one image-to-probabilities model out.

    labels = read_labels("labels.txt"); templates = read_templates(None)   # None: DEFAULT_TEMPLATES
    weights, scale = class_weights(model, tokenizer, labels, templates)      # [K, D], scale * unit rows
    tflite_zero_shot(model, weights)                                         # uint8 [1,R,R,3] -> probs [1,K]

Each class embedding is the mean of the normalised text embeddings of its prompts (one per template),
renormalised, as in OpenAI's prompt ensembling (CLIP paper, section 3.1.4; their ImageNet notebook). The rows
are multiplied by the model's logit scale and baked into the graph as a constant, so a device needs neither a
tokenizer nor a text encoder: probabilities = softmax(scale * normalise(image embedding) . class embeddings).
"""

import os
import stat

import numpy as np
import tensorflow as tf

from clip_edge.layers import l2_normalize_rows
from clip_edge.preprocessing import ImagePreprocessor

# A small ensemble taken from the 80 ImageNet prompt templates OpenAI published with CLIP (openai/CLIP,
# data/prompts.md and notebooks/Prompt_Engineering_for_ImageNet.ipynb): the plain prompt plus variations of
# quality, size, framing and colour. Eight rather than eighty keeps the export quick; pass your own file for
# more.
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a bad photo of the {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a black and white photo of the {}.",
)
PLACEHOLDER = "{}"
MAX_FILE_BYTES = 1 << 20  # checked before reading: a label file is text, not a data set
MAX_LINES = 10000
TEXT_BATCH = 256


class ZeroShotInputError(ValueError):
    """A labels or templates file that cannot be used; the message names the file and line."""


def _read_lines(path, what):
    """Non-blank lines with their 1-based line numbers; errors name the file."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise ZeroShotInputError(f"{path}: cannot read the {what} file ({error.strerror or error})") from error
    # Checked before opening: reading a FIFO blocks until a writer comes, a device (/dev/zero) never ends.
    if not stat.S_ISREG(info.st_mode):
        raise ZeroShotInputError(f"{path}: the {what} file is not a regular file (a FIFO, device or folder)")
    size = info.st_size
    if size > MAX_FILE_BYTES:
        raise ZeroShotInputError(f"{path}: the {what} file has {size:,} bytes; at most {MAX_FILE_BYTES:,} are read")
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ZeroShotInputError(f"{path}:{line}: the {what} file is not UTF-8 ({error.reason})") from error
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ZeroShotInputError(f"{path}: the {what} file is empty (one {what[:-1]} per line expected)")
    if len(lines) > MAX_LINES:
        raise ZeroShotInputError(f"{path}: {len(lines):,} {what}; at most {MAX_LINES:,}")
    return lines


def read_labels(path):
    """Class names, one per line (blank lines skipped); duplicates are an error naming both lines."""
    lines = _read_lines(path, "labels")
    first = {}
    for number, label in lines:
        if label in first:
            raise ZeroShotInputError(f"{path}:{number}: duplicate label {label!r} (first on line {first[label]})")
        first[label] = number
    return [label for _, label in lines]


def read_templates(path):
    """Prompt templates, one per line, each with {} where the class name goes; None gives DEFAULT_TEMPLATES."""
    if path is None:
        return list(DEFAULT_TEMPLATES)
    lines = _read_lines(path, "templates")
    first = {}
    for number, template in lines:
        if PLACEHOLDER not in template:
            raise ZeroShotInputError(f"{path}:{number}: template {template!r} has no {PLACEHOLDER} for the class name")
        if template in first:
            raise ZeroShotInputError(f"{path}:{number}: duplicate template {template!r} (first on line "
                                     f"{first[template]})")
        first[template] = number
    return [template for _, template in lines]


def prompts(labels, templates):
    """The K x T prompt texts, class-major (all templates of class 0, then class 1, ...)."""
    # str.replace, not str.format: a class name or template may contain other braces.
    return [template.replace(PLACEHOLDER, label) for label in labels for template in templates]


def average_class_embeddings(text_embeddings, class_count):
    """[K*T, D] normalised prompt embeddings (class-major) -> [K, D] renormalised per-class means."""
    means = np.asarray(text_embeddings, np.float64).reshape(class_count, -1, text_embeddings.shape[-1]).mean(axis=1)
    return (means / np.linalg.norm(means, axis=-1, keepdims=True)).astype(np.float32)


def class_weights(model, tokenizer, labels, templates):
    """(scale * class embeddings float32 [K, D], scale): the classifier's constant, from the float model."""
    texts = prompts(labels, templates)
    embeddings = []
    for start in range(0, len(texts), TEXT_BATCH):
        tokens = tokenizer(tf.constant(texts[start:start + TEXT_BATCH]))
        embeddings.append(l2_normalize_rows(model.encode_text(tokens["token_ids"])).numpy())
    scale = float(model.logit_multiplier())
    return scale * average_class_embeddings(np.concatenate(embeddings), len(labels)), scale


def tflite_zero_shot(model, weights):
    """Concrete function uint8 [1, R, R, 3] (resized and centre-cropped RGB) -> class probabilities [1, K]."""
    resolution = model.get_config()["image_resolution"]
    preprocessor = ImagePreprocessor(resolution)
    weights = tf.constant(np.asarray(weights, np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, resolution, resolution, 3], tf.uint8, name="pixels")],
                 autograph=False)
    def zero_shot(pixels):
        image = l2_normalize_rows(model.encode_images(preprocessor.normalize(pixels)))
        return {"probs": tf.nn.softmax(tf.matmul(image, weights, transpose_b=True), axis=-1)}

    return zero_shot.get_concrete_function()
