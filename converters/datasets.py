"""Real photos and sentences for calibration and parity, kept apart so that parity is measured on held-out data.

Photos are scikit-image's bundled samples (no download); several crops of each give the quantiser and the
harness more than a handful of views. Sentences are real prose (Python's own documentation, on every
machine) for calibration, and zero-shot prompts plus captions for parity.
"""

import os
import stat

import numpy as np
import skimage.data
import tensorflow as tf

from clip_edge.preprocessing import ImagePreprocessor

CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "grass", "brick")
HELD_OUT_PHOTOS = ("rocket", "hubble_deep_field", "retina", "immunohistochemistry", "stereo_motorcycle", "moon",
                   "gravel", "text")

# One prompt per held-out photo's subject plus distractors: zero-shot classification over these is what the
# top-1 agreement measures.
ZERO_SHOT_LABELS = ("a rocket on a launch pad", "galaxies in deep space", "the retina of an eye",
                    "stained tissue under a microscope", "a motorcycle", "the moon", "gravel", "printed text",
                    "an astronaut", "a cup of coffee", "a cat", "a brick wall", "a dog", "a city street at night")
HELD_OUT_CAPTIONS = (
    "a photo of a rocket ready for launch",
    "thousands of faint galaxies seen by a space telescope",
    "a medical image of the back of an eye with blood vessels",
    "a microscope slide with brown and blue stained cells",
    "a red motorcycle parked in a garage",
    "the cratered surface of the moon in black and white",
    "a close-up of grey gravel stones",
    "a scanned page with a few lines of text",
)

# Larger calibration files are refused unread (as Beam's --max_image_bytes default and search's --image).
MAX_PHOTO_BYTES = 100_000_000
_CROPS = ((0.0, 0.0, 1.0), (0.1, 0.1, 0.7), (0.3, 0.2, 0.6), (0.0, 0.4, 0.5))  # (top, left, size) as fractions
# builtin_images gives each photo's crops in a row, this many (a user's folder_images: one image per photo).
CROPS_PER_PHOTO = len(_CROPS)


def _photo(name):
    pixels = getattr(skimage.data, name)()
    if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
        pixels = pixels[0]
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3].astype(np.uint8))


def _crops(pixels):
    height, width = pixels.shape[:2]
    side = min(height, width)
    for top, left, size in _CROPS:
        crop_side = max(int(side * size), 16)
        y, x = int(top * (height - crop_side)), int(left * (width - crop_side))
        yield pixels[y:y + crop_side, x:x + crop_side]


def _resized(preprocessor, images):
    return np.stack([preprocessor.resize_and_crop(image).numpy() for image in images])


def builtin_images(names, resolution):
    """uint8 [N, R, R, 3]: each named scikit-image photo in several crops, resized and centre-cropped."""
    preprocessor = ImagePreprocessor(resolution)
    return _resized(preprocessor, [crop for name in names for crop in _crops(_photo(name))])


def held_out_photos():
    """[uint8 [H, W, 3]]: the held-out photos at their own sizes and in their crops, before any resizing."""
    return [image for name in HELD_OUT_PHOTOS for image in (_photo(name), *_crops(_photo(name)))]


def image_paths(folder):
    """The JPEG/PNG/GIF/BMP files in `folder` (a user's own calibration photos), sorted; ValueError naming the
    folder if it is not one or has none, or naming a file that _check_photo_file refuses. The export calls
    this before any work: calibration, which reads the files, comes after the SavedModel stage."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: not a folder")
    extensions = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(extensions))
    if not paths:
        raise ValueError(f"{folder}: no JPEG, PNG, GIF or BMP files to calibrate with")
    for path in paths:
        _check_photo_file(path)
    return paths


def _check_photo_file(path):
    """A regular file of at most MAX_PHOTO_BYTES, checked without opening it: reading a FIFO blocks until a
    writer comes, a device (or a link to /dev/zero) never ends."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file (a FIFO, device or folder)")
    if info.st_size > MAX_PHOTO_BYTES:
        raise ValueError(f"{path}: {info.st_size:,} bytes; a photo has at most {MAX_PHOTO_BYTES:,}")


def folder_images(folder, resolution):
    """uint8 [N, R, R, 3] from every file of image_paths(folder)."""
    preprocessor = ImagePreprocessor(resolution)
    images = []
    for path in image_paths(folder):
        with open(path, "rb") as file:
            encoded = file.read(MAX_PHOTO_BYTES + 1)
        if len(encoded) > MAX_PHOTO_BYTES:  # grew since image_paths looked
            raise ValueError(f"{path}: more than {MAX_PHOTO_BYTES:,} bytes; a photo has at most that")
        try:
            images.append(preprocessor.decode(tf.constant(encoded)).numpy())
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{path}: cannot decode this image ({error.message.splitlines()[0]})") from error
    return _resized(preprocessor, images)


def calibration_sentences(count=64):
    """Real sentences from Python's documentation (pydoc_data ships with CPython), deterministic."""
    from pydoc_data.topics import topics

    sentences = []
    for key in sorted(topics):
        for line in topics[key].splitlines():
            line = line.strip()
            if 20 <= len(line) <= 200 and line[0].isalpha():
                sentences.append(line)
    step = max(len(sentences) // count, 1)
    return sentences[::step][:count]


def held_out_sentences():
    return [f"a photo of {label}" for label in ZERO_SHOT_LABELS] + list(HELD_OUT_CAPTIONS)
