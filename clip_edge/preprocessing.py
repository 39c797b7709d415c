"""CLIP's image preprocessing as a TensorFlow graph, ImagePreprocessor: the resize, centre crop and normalisation of
decoded pixels, equal to transformers' CLIPImageProcessor (PIL backend).

Steps, as OpenAI's CLIP and CLIPImageProcessor do them:
  decode (JPEG, PNG, GIF first frame, BMP) -> RGB (grey replicated, alpha composited onto white)
  -> bicubic resize of the shortest side to R (PIL's filter, antialiased when shrinking) -> centre crop R x R
  -> x / 255 -> (x - OPENAI_MEAN) / OPENAI_STD.
The decoding, with the checks of each file and the size limits, is clip_edge.image_decoding's; ImagePreprocessor
runs it before the rest, which is this module's.

Everything is tf ops so it lives inside a SavedModel. The resize is two matrix products with resampling matrices
computed from the input size, so with a fixed input size it converts to TFLite builtins (FULLY_CONNECTED), unlike
tf.image.resize(antialias=True), which needs Flex ops and differs from PIL by up to 5 levels. For any input size
the export's preprocess.tflite rebuilds the matrices from TFLite's int32 and float32 ops instead
(converters/preprocess_tflite.py, with this module's kernel, weight rounding and sizes).
"""

import os

import numpy as np
import tensorflow as tf

from clip_edge.image_decoding import (MAX_PIXELS, all_present, check_size, decode_checked, decode_image, each_image,
                                      header_checks, jpeg_header_shape, readable_error, to_rgb)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# The name of the resize and crop below, as an export's manifest states it (its contract section): the shortest
# side to R with Pillow's bicubic filter (antialiased when shrinking, weights rounded to 22 bits, horizontal pass
# first), then CLIPImageProcessor's centre crop to R x R. Readers that implement one rule refuse an export naming
# another, so a change to the rule that moves pixels must change the name.
RESIZE_RULE = "pil_bicubic_shortest_side_centre_crop"

# Pillow's resampler rounds its normalised filter weights to fixed point with this many fractional bits
# (PRECISION_BITS = 32 - 8 - 2 in Pillow's libImaging/Resample.c); we use the same rounded weights.
PIL_WEIGHT_BITS = 22
# The parameter of Keys' cubic convolution that Pillow's BICUBIC filter uses (its support is [-2, 2]).
PIL_BICUBIC_A = -0.5


def pil_bicubic(x):
    """Pillow's bicubic kernel (Keys, a = PIL_BICUBIC_A), zero outside [-2, 2]."""
    a = PIL_BICUBIC_A
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _resampling_matrix(in_size, out_size, first, count):
    """float32 [count, in_size]: rows first..first+count-1 of PIL's bicubic resampling from in_size to out_size.

    As in Pillow: output pixel o is centred at (o + 0.5) * scale in input coordinates; when shrinking the kernel
    is stretched by the scale (antialiasing); each row is normalised to sum 1, then rounded to 22 fractional bits
    (half away from zero). Pillow evaluates the kernel only inside a window around the centre; the window holds
    exactly the inputs where the kernel is non-zero, so evaluating it everywhere and clipping to the image
    (columns 0..in_size-1) gives the same weights. Built in float64 so centres stay exact for large images.
    """
    in_size = tf.cast(in_size, tf.float64)
    scale = in_size / tf.cast(out_size, tf.float64)
    inverse_filter_scale = 1.0 / tf.maximum(scale, 1.0)
    centres = (tf.cast(first + tf.range(count, dtype=first.dtype), tf.float64) + 0.5) * scale
    inputs = tf.range(in_size, dtype=tf.float64)
    weights = pil_bicubic((inputs[None, :] - centres[:, None] + 0.5) * inverse_filter_scale)
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    weights = tf.math.divide_no_nan(weights, total)
    one = float(1 << PIL_WEIGHT_BITS)
    weights = tf.sign(weights) * tf.floor(tf.abs(weights) * one + 0.5) / one
    return tf.cast(weights, tf.float32)  # k / 2**22 with |k| < 2**23: exact in float32


def round_to_levels(values):
    """Round half up and clip to 0..255, as Pillow's fixed-point resampler stores each pass in 8 bits."""
    return tf.clip_by_value(tf.floor(values + 0.5), 0.0, 255.0)


def resized_size(height, width, resolution, dtype=tf.int64):
    """(new_height, new_width) with the shortest side = resolution, as transformers' get_resize_output_image_size.

    transformers computes int(resolution * long / short) in floating point; the floor of the exact quotient is the
    same integer (the quotient is at least 1/short away from the next integer, far more than double rounding).
    `dtype`: int64 in the SavedModel; TFLite's builtins take int32 (R * MAX_SIDE < 2**31 keeps it exact).
    """
    height, width = tf.cast(height, dtype), tf.cast(width, dtype)
    short = tf.maximum(tf.minimum(height, width), 1)
    resolution = tf.constant(resolution, dtype)
    new_height = tf.where(height <= width, resolution, resolution * height // short)
    new_width = tf.where(height <= width, resolution * width // short, resolution)
    return new_height, new_width


def crop_offsets(new_height, new_width, resolution):
    """(top, left) of the R x R centre crop of the resized image: transformers' center_crop offset,
    (size - crop) // 2; no padding is ever needed as both sides >= R."""
    return (new_height - resolution) // 2, (new_width - resolution) // 2


class ImagePreprocessor(tf.Module):
    """CLIP's image preprocessing in TensorFlow; see the module docstring for the steps."""

    def __init__(self, input_resolution=224):
        super().__init__(name="image_preprocessor")
        self.input_resolution = int(input_resolution)
        if self.input_resolution <= 0:
            raise ValueError(f"input_resolution must be positive, got {input_resolution}")
        self._mean = tf.constant(OPENAI_MEAN, tf.float32)
        self._std = tf.constant(OPENAI_STD, tf.float32)
        # Per-item graphs for load(): images of different sizes reuse one trace.
        self._encoded_to_pixels = tf.function(
            lambda encoded, label: self._resize_and_crop_batch(decode_image(encoded, label)[None], label)[0],
            input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)], autograph=False)
        self._array_to_pixels = tf.function(
            lambda pixels, label: self._resize_and_crop_batch(to_rgb(pixels)[None], label)[0],
            input_signature=[tf.TensorSpec([None, None, None], tf.uint8), tf.TensorSpec([], tf.string)],
            autograph=False)

    def decode(self, encoded):
        """tf.string scalar (JPEG/PNG/GIF/BMP bytes) -> uint8 [H, W, 3]."""
        return decode_image(encoded, tf.constant("image"))

    def resize_and_crop(self, pixels):
        """uint8 [H, W, 3] (or a batch [N, H, W, 3] of one size) -> uint8 [R, R, 3] (or [N, R, R, 3]).

        Bicubic resize of the shortest side to R exactly as PIL does it (within one level: float32 sums instead
        of Pillow's 32-bit integers), then the centre crop of CLIPImageProcessor.
        """
        pixels = tf.convert_to_tensor(pixels, tf.uint8)
        if pixels.shape.rank == 3:
            return self._resize_and_crop_batch(pixels[None], tf.constant("image"))[0]
        return self._resize_and_crop_batch(pixels, tf.constant("pixels"))

    def normalize(self, pixels):
        """uint8/float [..., R, R, 3] in 0..255 -> float32 (x / 255 - OPENAI_MEAN) / OPENAI_STD."""
        return (tf.cast(pixels, tf.float32) / 255.0 - self._mean) / self._std

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def from_encoded(self, images):
        """tf.string [N] of JPEG/PNG/GIF/BMP bytes -> float32 [N, R, R, 3]; N = 0 gives [0, R, R, 3]."""
        return self.normalize(self.pixels_from_encoded(images))

    def pixels_from_encoded(self, images):
        """from_encoded's checks, decoding, resize and crop, before normalisation: tf.string [N] -> uint8
        [N, R, R, 3], the TFLite image encoders' input. Not a tf.function itself (so that it is not saved with the
        SavedModel): wrap it in one to call it eagerly. Its errors are from_encoded's, naming "image <index>"."""
        resolution = self.input_resolution
        count = tf.size(images)
        labels = tf.strings.join(["image ", tf.strings.as_string(tf.range(count))])

        # JPEG sizes first: libjpeg's header reader fails on a file cut short within its header, and its error
        # names no image; a JPEG whose header it cannot read is named instead.
        read, jpeg_shapes = each_image(jpeg_header_shape, images)
        with tf.control_dependencies([all_present(read, images, labels)]):
            jpeg_shapes = tf.scatter_nd(read[:, None], jpeg_shapes, [count, 2])

        def check(args):
            with tf.control_dependencies(header_checks(*args)):
                return tf.constant(True)

        # Then every header, so that those errors name their image; then the decoders, whose own errors name
        # no image either: an image whose decoder fails is named.
        checked = tf.reduce_all(tf.map_fn(check, (images, labels, jpeg_shapes), fn_output_signature=tf.bool))
        with tf.control_dependencies([checked]):
            decoded, pixels = each_image(
                lambda encoded: self._resize_and_crop_batch(decode_checked(encoded)[None], tf.constant("image"))[0],
                images)
        with tf.control_dependencies([all_present(decoded, images, labels)]):
            return tf.ensure_shape(pixels, [None, resolution, resolution, 3])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)], autograph=False)
    def from_pixels(self, pixels):
        """uint8 [N, H, W, 3] -> float32 [N, R, R, 3]; N = 0 gives [0, R, R, 3]."""
        return self.normalize(self._resize_and_crop_batch(pixels, tf.constant("pixels")))

    def _resize_and_crop_batch(self, pixels, label):
        """uint8 [N, H, W, 3] -> uint8 [N, R, R, 3]; only the rows and columns kept by the crop are computed."""
        resolution = self.input_resolution
        shape = tf.shape(pixels)
        batch, height, width = shape[0], shape[1], shape[2]
        with tf.control_dependencies(check_size(height, width, label, batch)):
            new_height, new_width = resized_size(height, width, resolution)
        top, left = crop_offsets(new_height, new_width, resolution)
        rows = _resampling_matrix(height, new_height, top, resolution)  # [R, H]
        columns = _resampling_matrix(width, new_width, left, resolution)  # [R, W]

        # Horizontal pass first, rounded to 8 bits, then vertical: Pillow's order, and its intermediate rounding.
        values = tf.transpose(tf.cast(pixels, tf.float32), [0, 1, 3, 2])  # [N, H, 3, W]
        # Explicit reshape sizes (no -1) so that an empty batch, possibly with zero height and width, works.
        values = tf.matmul(tf.reshape(values, [batch * height * 3, width]), columns, transpose_b=True)
        values = round_to_levels(values)
        values = tf.transpose(tf.reshape(values, [batch, height, 3, resolution]), [0, 2, 3, 1])  # [N, 3, R, H]
        values = tf.matmul(tf.reshape(values, [batch * 3 * resolution, height]), rows, transpose_b=True)
        values = round_to_levels(values)
        values = tf.transpose(tf.reshape(values, [batch, 3, resolution, resolution]), [0, 3, 2, 1])
        return tf.cast(values, tf.uint8)  # [N, R (rows), R (columns), 3]

    def load(self, items):
        """Eager helper: list of paths / encoded bytes / uint8 numpy arrays -> float32 numpy [N, R, R, 3].

        Arrays may be [H, W] grey or [H, W, C] with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
        Each item is checked and any problem raises FileNotFoundError / ValueError / TypeError naming the
        item's index (and path); an empty list gives an empty [0, R, R, 3] array.
        """
        resolution = self.input_resolution
        if isinstance(items, (str, bytes, os.PathLike, np.ndarray)):
            raise TypeError(f"load() takes a list of images, got a single {type(items).__name__}")
        pixels = [self._load_one(index, item) for index, item in enumerate(items)]
        if not pixels:
            return np.zeros([0, resolution, resolution, 3], np.float32)
        return self.normalize(tf.stack(pixels)).numpy()

    def _load_one(self, index, item):
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            label = f"image {index} ({path})"
            if not os.path.exists(path):
                raise FileNotFoundError(f"{label}: no such file")
            if not os.path.isfile(path):
                raise ValueError(f"{label}: not a regular file")
            with open(path, "rb") as file:
                item = file.read()
        else:
            label = f"image {index}"

        if isinstance(item, (bytes, bytearray, memoryview)):
            if len(item) == 0:
                raise ValueError(f"{label}: empty image bytes")
            run, argument = self._encoded_to_pixels, tf.constant(bytes(item))
        elif isinstance(item, np.ndarray):
            run, argument = self._array_to_pixels, tf.constant(self._checked_array(item, label))
        else:
            raise TypeError(
                f"{label}: expected a path, encoded image bytes or a uint8 numpy array, got {type(item).__name__}"
            )
        try:
            return run(argument, tf.constant(label))
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(readable_error(error.message, label)) from None

    @staticmethod
    def _checked_array(pixels, label):
        if pixels.dtype != np.uint8:
            raise ValueError(f"{label}: pixels must be uint8 (0..255), got {pixels.dtype}")
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.ndim != 3 or not 1 <= pixels.shape[-1] <= 4:
            raise ValueError(f"{label}: pixels must be [H, W] or [H, W, 1..4 channels], got shape {pixels.shape}")
        height, width = pixels.shape[:2]
        if height * width > MAX_PIXELS:
            raise ValueError(f"{label}: {height} x {width} is larger than {MAX_PIXELS // 1_000_000} megapixels")
        return pixels
