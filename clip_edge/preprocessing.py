"""CLIP image preprocessing as a TensorFlow graph, equal to transformers' CLIPImageProcessor (PIL backend).

Steps, as OpenAI's CLIP and CLIPImageProcessor do them:
  decode (JPEG, PNG, GIF first frame, BMP) -> RGB (grey replicated, alpha composited onto white)
  -> bicubic resize of the shortest side to R (PIL's filter, antialiased when shrinking) -> centre crop R x R
  -> x / 255 -> (x - OPENAI_MEAN) / OPENAI_STD.

Everything is tf ops so it lives inside a SavedModel. The resize is two matrix products with resampling matrices
computed from the input size, so with a fixed input size it converts to TFLite builtins (FULLY_CONNECTED), unlike
tf.image.resize(antialias=True), which needs Flex ops and differs from PIL by up to 5 levels.

Known difference from CLIPImageProcessor on PIL-opened files: 16-bit PNGs are scaled to 8 bits, where PIL opens
16-bit grey as mode I;16, which its RGB conversion saturates. Limits, checked from the headers before decoding: at
most 100 megapixels and 65,535 pixels a side (for a GIF, its screen and every frame together, and 300 megapixels
in all its frames); BMP files uncompressed, of 8, 24 or 32 bits per pixel, with an info header Pillow reads
(except the 12-byte OS/2 1.x one). In a batch (from_encoded), an image that no decoder can read is named by its
index.
"""

import os
import re

import numpy as np
import tensorflow as tf

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

MAX_PIXELS = 100_000_000
# The resampling matrices are dense ([R, side] each), so a side is capped as well as the area; JPEG and WebP
# cannot exceed this side length either.
MAX_SIDE = 65_535
# TensorFlow's GIF decoder (giflib) holds every frame of a file in memory, one byte a pixel, though only the
# first is shown: the frames' total is capped at the memory of the largest image allowed (3 bytes a pixel).
MAX_GIF_PIXELS = 3 * MAX_PIXELS

# The name of the resize and crop below, as an export's manifest states it (its contract section): the shortest
# side to R with Pillow's bicubic filter (antialiased when shrinking, weights rounded to 22 bits, horizontal pass
# first), then CLIPImageProcessor's centre crop to R x R. Readers that implement one rule refuse an export naming
# another, so a change to the rule that moves pixels must change the name.
RESIZE_RULE = "pil_bicubic_shortest_side_centre_crop"

# Pillow's resampler rounds its normalised filter weights to fixed point with this many fractional bits
# (PRECISION_BITS = 32 - 8 - 2 in Pillow's libImaging/Resample.c); we use the same rounded weights.
_PIL_WEIGHT_BITS = 22

_JPEG, _PNG, _GIF, _BMP, _UNKNOWN = range(5)
# First bytes of each supported format, indexed by the constants above.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


def _pil_bicubic(x):
    """Pillow's bicubic kernel (Keys, a = -0.5), zero outside [-2, 2]."""
    a = -0.5
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
    weights = _pil_bicubic((inputs[None, :] - centres[:, None] + 0.5) * inverse_filter_scale)
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    weights = tf.math.divide_no_nan(weights, total)
    one = float(1 << _PIL_WEIGHT_BITS)
    weights = tf.sign(weights) * tf.floor(tf.abs(weights) * one + 0.5) / one
    return tf.cast(weights, tf.float32)  # k / 2**22 with |k| < 2**23: exact in float32


def _round_to_levels(values):
    """Round half up and clip to 0..255, as Pillow's fixed-point resampler stores each pass in 8 bits."""
    return tf.clip_by_value(tf.floor(values + 0.5), 0.0, 255.0)


def _resized_size(height, width, resolution, dtype=tf.int64):
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


def _check_size(height, width, label, batch=1):
    """Graph assertions for the size limits; `label` (string tensor) names the image in the message.

    An empty batch (batch = 0) passes whatever its height and width: it gives an empty result.
    """
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    empty = tf.equal(batch, 0)
    return [
        tf.debugging.Assert(
            empty | ((height > 0) & (width > 0)),
            [label, "has no pixels: height", height, "width", width],
        ),
        tf.debugging.Assert(
            empty | (height * width <= MAX_PIXELS),
            [label, f"is larger than {MAX_PIXELS // 1_000_000} megapixels: height", height, "width", width],
        ),
        tf.debugging.Assert(
            empty | (tf.maximum(height, width) <= MAX_SIDE),
            [label, f"has a side longer than {MAX_SIDE} pixels: height", height, "width", width],
        ),
    ]


def _to_rgb(pixels):
    """uint8 [H, W, C] with C in 1..4 -> [H, W, 3]: grey replicated, alpha composited onto white.

    Compositing onto white is what CLIPImageProcessor's convert_to_rgb does; PIL's plain convert("RGB") and
    tf.image decoders with channels=3 would instead drop the alpha and keep whatever colour hides under it.
    """
    channels = tf.shape(pixels)[-1]
    colour = tf.cond(
        channels < 3,
        lambda: tf.repeat(pixels[..., :1], 3, axis=-1),
        lambda: pixels[..., :3],
    )

    def composite():
        alpha = tf.cast(pixels[..., -1:], tf.float32) / 255.0
        blended = tf.cast(colour, tf.float32) * alpha + 255.0 * (1.0 - alpha)
        return tf.cast(tf.round(blended), tf.uint8)

    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    rgb = tf.cond(has_alpha, composite, lambda: colour)
    return tf.ensure_shape(rgb, [None, None, 3])


def _image_format(encoded):
    """int32 scalar: _JPEG, _PNG, _GIF, _BMP or _UNKNOWN, from the file signature."""
    found = tf.constant(_UNKNOWN)
    for index, signature in enumerate(_SIGNATURES):
        starts = tf.equal(tf.strings.substr(encoded, 0, len(signature)), signature)
        found = tf.where(starts, index, found)
    return found


def _leading_bytes(encoded, count):
    """int64 [count]: the first `count` bytes, zero-padded, so header fields of truncated files read as zeros
    (such files then fail in the decoder, with its message)."""
    padded = tf.strings.join([encoded, b"\0" * count])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, count), tf.uint8), tf.int64)


def _first_bytes(encoded, count):
    """uint8 [<= count]: the first bytes of `encoded`, unpadded."""
    return tf.io.decode_raw(tf.strings.substr(encoded, 0, count), tf.uint8)


def _big_endian(header, start, length):
    return sum(header[start + i] * (1 << (8 * (length - 1 - i))) for i in range(length))


def _little_endian(header, start, length):
    return sum(header[start + i] * (1 << (8 * i)) for i in range(length))


def _bmp_fields(header):
    """(height, width, bits per pixel, info header size, compression) of a BMP from its first 34 bytes, as the
    info headers from BITMAPINFOHEADER (40 bytes) on store them: 32-bit signed sizes (a negative height means
    rows stored top-down)."""

    def signed32(value):
        return tf.where(value >= 1 << 31, value - (1 << 32), value)

    width = signed32(_little_endian(header, 18, 4))
    height = tf.abs(signed32(_little_endian(header, 22, 4)))
    return (height, width, _little_endian(header, 28, 2), _little_endian(header, 14, 4),
            _little_endian(header, 30, 4))


# Info header sizes Pillow reads, except the 12-byte OS/2 1.x header (16-bit sizes, 3-byte palette entries),
# which TensorFlow's BMP decoder misreads. Any other size is refused, as Pillow does: the palette follows the
# header, so a wrong size would silently give wrong colours.
_BMP_HEADER_SIZES = (40, 52, 56, 64, 108, 124)


def _bmp_checks(encoded, is_bmp, label):
    """Assertions, where `is_bmp`, that TensorFlow's BMP decoder reads this file as Pillow does."""
    header = _leading_bytes(encoded, 34)
    _, _, bits, header_size, compression = _bmp_fields(header)
    data_offset = _little_endian(header, 10, 4)
    not_bmp = tf.logical_not(is_bmp)
    return [
        tf.debugging.Assert(
            not_bmp | tf.reduce_any(tf.equal(header_size, _BMP_HEADER_SIZES)),
            [label, "is a BMP with an info header of", header_size,
             f"bytes; supported are {', '.join(map(str, _BMP_HEADER_SIZES))}"],
        ),
        tf.debugging.Assert(
            not_bmp | tf.equal(compression, 0),
            # TensorFlow's decoder ignores the field and would read run-length or bit-field data as pixels.
            [label, "is a compressed BMP (compression type", compression, "); only uncompressed BMP is supported"],
        ),
        tf.debugging.Assert(
            not_bmp | (data_offset >= 14 + header_size),
            [label, "is a BMP whose pixel data (at byte", data_offset, ") overlaps its header"],
        ),
        tf.debugging.Assert(
            not_bmp | tf.reduce_any(tf.equal(bits, [8, 24, 32])),
            [label, "is a BMP with", bits, "bits per pixel; 8 (palette), 24 and 32 are supported"],
        ),
    ]


def _jpeg_shape(encoded):
    """int64 [2]: (height, width) from a JPEG's header by libjpeg, whose error names no image; zeros for other
    formats."""
    return tf.cond(tf.equal(_image_format(encoded), _JPEG),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64),
                   lambda: tf.zeros([2], tf.int64))


def _header_size(encoded, image_format, jpeg_shape=None):
    """(height, width, pixels decoded) int64 read from the file header (every frame's, for GIF), so oversized
    images are refused before decoding. pixels is height x width except for GIF, where every frame counts.
    jpeg_shape: _jpeg_shape(encoded) if already read."""
    header = _leading_bytes(encoded, 34)
    if jpeg_shape is None:
        jpeg_shape = _jpeg_shape(encoded)

    def one_frame(height, width):
        return height, width, height * width

    return tf.switch_case(
        image_format,
        branch_fns=[
            lambda: one_frame(*tf.unstack(jpeg_shape)),
            lambda: one_frame(_big_endian(header, 20, 4), _big_endian(header, 16, 4)),
            lambda: _gif_size(encoded),
            lambda: one_frame(*_bmp_fields(header)[:2]),
        ],
        default=lambda: one_frame(tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
    )


def _decode_bmp(encoded):
    """BMP (checked by _bmp_checks) -> uint8 [H, W, 3], as PIL reads it: palette colours for 8-bit files, the
    fourth channel of 32-bit files ignored. TF's BMP decoder returns 8-bit files as raw palette indices, so the
    palette is applied here."""
    header = _leading_bytes(encoded, 34)
    _, _, bits, header_size, _ = _bmp_fields(header)
    decoded = tf.io.decode_bmp(encoded, channels=0)

    def apply_palette():
        # The palette follows the 14-byte file header and the info header, blue-green-red-reserved order; at
        # most 256 entries for 8 bits.
        palette_bytes = _leading_bytes(encoded, 14 + 124 + 4 * 256)  # 124: the largest (V5) info header
        start = 14 + header_size
        positions = start + tf.range(256, dtype=tf.int64)[:, None] * 4 + tf.constant([2, 1, 0], tf.int64)
        palette = tf.cast(tf.gather(palette_bytes, tf.minimum(positions, 14 + 124 + 4 * 256 - 1)), tf.uint8)
        return tf.gather(palette, tf.cast(decoded[..., 0], tf.int32))

    rgb = tf.cond(tf.equal(bits, 8), apply_palette, lambda: decoded[..., :3])
    return tf.ensure_shape(rgb, [None, None, 3])


_BYTE_VALUES = bytes(range(256))  # substr(_BYTE_VALUES, v, 1) turns a number into that byte


def _gif_reader(encoded):
    """(size, byte, skip_sub_blocks, first_block) for walking a GIF's blocks in graph: byte(at) is the byte at
    `at` as int64 (0 past the end, so that truncated files walk to the end and stop), skip_sub_blocks(at) the
    position after the data sub-blocks starting at `at`, first_block the position after the global palette."""
    data = tf.io.decode_raw(encoded, tf.uint8)
    size = tf.size(data, out_type=tf.int64)

    def byte(position):
        position = tf.convert_to_tensor(position, tf.int64)
        inside = (position >= 0) & (position < size)
        value = tf.cast(tf.gather(data, tf.clip_by_value(position, 0, tf.maximum(size - 1, 0))), tf.int64)
        return tf.where(inside, value, 0)

    def skip_sub_blocks(position):  # data sub-blocks: a length byte then that many bytes, until a 0 length
        return tf.while_loop(
            lambda at: (at < size) & (byte(at) != 0), lambda at: [at + byte(at) + 1], [position]
        )[0] + 1

    screen_flags = byte(10)
    global_palette_bytes = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(screen_flags, 7))
    first_block = 13 + tf.where(tf.bitwise.bitwise_and(screen_flags, 0x80) > 0, global_palette_bytes, 0)
    return size, byte, skip_sub_blocks, first_block


def _gif_size(encoded):
    """(height, width, pixels of all frames) int64 of a GIF, from its screen and every image descriptor.

    giflib, under TensorFlow's decoder, reads every frame at its own declared size and position, whatever the
    screen says, and the first frame's canvas grows to hold it (as Pillow's does): so the size checked is that
    of the screen and all frames together, and the frames' total is bounded too."""
    size, byte, skip_sub_blocks, first_block = _gif_reader(encoded)

    def little16(at):
        return byte(at) + 256 * byte(at + 1)

    def next_block(at, height, width, pixels):
        def image():  # descriptor: 0x2C, left, top, width, height (16 bits each), flags
            left, top = little16(at + 1), little16(at + 3)
            frame_width, frame_height = little16(at + 5), little16(at + 7)
            flags = byte(at + 9)
            palette = tf.where(tf.bitwise.bitwise_and(flags, 0x80) > 0,
                               3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7)), 0)
            # Then the local palette, the LZW minimum code size (1 byte) and the image data's sub-blocks.
            return (skip_sub_blocks(at + 10 + palette + 1), tf.maximum(height, top + frame_height),
                    tf.maximum(width, left + frame_width), pixels + frame_width * frame_height)

        def extension():  # 0x21, label, then sub-blocks
            return skip_sub_blocks(at + 2), height, width, pixels

        return tf.cond(tf.equal(byte(at), 0x2C), image, extension)

    _, height, width, pixels = tf.while_loop(
        lambda at, *_: (at < size) & (tf.equal(byte(at), 0x2C) | tf.equal(byte(at), 0x21)),
        next_block,
        [first_block, little16(8), little16(6), tf.constant(0, tf.int64)],
    )
    return height, width, pixels


def _gif_with_white_transparency(encoded):
    """GIF bytes in which the first frame's transparent palette entry is opaque white.

    TF's GIF decoder leaves transparent pixels black and cannot say which they are; CLIPImageProcessor composites
    them onto white. Clearing the transparency flag of the frame's graphic control extension and making the
    transparent index's palette colour white gives exactly the composited result. Files without transparency
    or with a structure we cannot follow are returned unchanged (and then decoded, or refused, by TF).
    """
    size, byte, skip_sub_blocks, first_block = _gif_reader(encoded)
    screen_flags = byte(10)
    has_global_palette = tf.bitwise.bitwise_and(screen_flags, 0x80) > 0

    def next_extension(position, control):
        is_control = tf.equal(byte(position + 1), 0xF9)
        return skip_sub_blocks(position + 2), tf.where(is_control, position, control)

    # Extensions (0x21) precede the first image descriptor (0x2C); the last graphic control extension among
    # them (0xF9: size 4, flags, delay 2 bytes, transparent index) applies to the first frame.
    descriptor, control = tf.while_loop(
        lambda at, _: (at < size) & tf.equal(byte(at), 0x21),
        next_extension,
        [first_block, tf.constant(-1, tf.int64)],
    )
    frame_flags = byte(descriptor + 9)
    has_local_palette = tf.bitwise.bitwise_and(frame_flags, 0x80) > 0
    palette_start = tf.where(has_local_palette, descriptor + 10, 13)
    palette_flags = tf.where(has_local_palette, frame_flags, screen_flags)
    palette_entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(palette_flags, 7))
    control_flags, transparent_index = byte(control + 3), byte(control + 6)
    colour = palette_start + 3 * transparent_index
    transparent = (
        (control >= 0)
        & (tf.bitwise.bitwise_and(control_flags, 1) > 0)
        & tf.equal(byte(descriptor), 0x2C)
        & (has_local_palette | has_global_palette)
        & (transparent_index < palette_entries)
        & (colour + 3 <= size)
    )

    def patched():
        # Two edits in disjoint places (the extension follows the global palette and precedes a local one):
        # the flags byte without its transparency bit, and the palette colour made white.
        one = tf.constant(1, tf.int64)
        flags_edit = tf.strings.substr(_BYTE_VALUES, tf.bitwise.bitwise_and(control_flags, 0xFE), one)
        white = tf.constant(b"\xff\xff\xff")
        flags_first = control + 3 < colour
        first_at, second_at = tf.where(flags_first, control + 3, colour), tf.where(flags_first, colour, control + 3)
        first_length = tf.where(flags_first, one, 3)
        second_length = 4 - first_length
        first_edit, second_edit = tf.where(flags_first, flags_edit, white), tf.where(flags_first, white, flags_edit)
        first_end, second_end = first_at + first_length, second_at + second_length
        return tf.strings.join(
            [
                tf.strings.substr(encoded, tf.constant(0, tf.int64), first_at),
                first_edit,
                tf.strings.substr(encoded, first_end, second_at - first_end),
                second_edit,
                tf.strings.substr(encoded, second_end, size - second_end),
            ]
        )

    return tf.cond(transparent, patched, lambda: encoded)


def _header_checks(encoded, label, jpeg_shape=None):
    """Assertions on one encoded image that need no decoding: bytes present, a supported format, the declared
    size within the limits, and the format's details; `label` (string tensor) names the image. jpeg_shape:
    _jpeg_shape(encoded) if already read."""
    length = tf.strings.length(encoded)
    image_format = _image_format(encoded)
    checks = [
        tf.debugging.Assert(length > 0, [label, "is empty (0 bytes)"]),
        tf.debugging.Assert(
            tf.not_equal(image_format, _UNKNOWN),
            # The first bytes as numbers: raw bytes in an error message break TensorFlow's UTF-8 decoding of it.
            [label, "is not a JPEG, PNG, GIF or BMP file; its first bytes are", _first_bytes(encoded, 8)],
        ),
    ]
    with tf.control_dependencies(checks):
        height, width, pixels = _header_size(encoded, image_format, jpeg_shape)
    return checks + _check_size(height, width, label) + _bmp_checks(encoded, tf.equal(image_format, _BMP), label) + [
        tf.debugging.Assert(
            pixels <= MAX_GIF_PIXELS,
            [label, "is a GIF whose frames hold", pixels, f"pixels in all; at most {MAX_GIF_PIXELS:,} are decoded"],
        )
    ]


def _decode_checked(encoded):
    """tf.string scalar that passed _header_checks -> uint8 [H, W, 3]."""
    image_format = _image_format(encoded)

    def jpeg():
        # INTEGER_ACCURATE is libjpeg's islow IDCT, the one PIL uses: the pixels come out identical.
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def png():
        return _to_rgb(tf.io.decode_png(encoded, channels=0))

    def gif():
        # Only the first frame, the one PIL shows when it opens a file (decode_gif would decode all frames).
        gif_bytes = _gif_with_white_transparency(encoded)
        return tf.ensure_shape(tf.io.decode_image(gif_bytes, channels=3, expand_animations=False), [None, None, 3])

    return tf.switch_case(
        image_format,
        branch_fns=[jpeg, png, gif, lambda: _decode_bmp(encoded)],
        default=png,  # unreachable: unknown formats fail the header checks
    )


def _each_image(function, images):
    """(indices int32 [K], results [K, ...]) of `function` on the images it succeeds on, K <= N, in order.

    In tf.data, the only graph construct that survives an op's error: ignore_errors drops an image whose ops
    fail. The dataset is built at every call, but get_single_element reuses the map function's instantiation
    from call to call, where Dataset.reduce instantiated it anew (for from_encoded's decoders and resize, a large
    graph: one 640x480 JPEG took 221 ms with reduce, 20 ms now; 16 of them 455 -> 149 ms; 2-core AMD EPYC).
    """
    count = tf.size(images)
    batches = (
        tf.data.Dataset.from_tensor_slices((tf.range(count), images))
        .map(lambda index, encoded: (index, function(encoded)),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)  # in parallel, kept in order
        .ignore_errors()
        .batch(tf.cast(tf.maximum(count, 1), tf.int64))
    )
    # No batch comes when no image succeeds (or there are none): this empty one then.
    empty = tf.nest.map_structure(lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype), batches.element_spec)
    return batches.concatenate(tf.data.Dataset.from_tensors(empty)).take(1).get_single_element()


def _all_present(indices, images, labels):
    """Assertion that `indices` (from _each_image) hold every image, naming the first missing and its format."""
    count = tf.size(images)
    present = tf.scatter_nd(indices[:, None], tf.ones_like(indices), [count])
    # The first image missing (index `count`, a placeholder, when none is: the data of an assertion are
    # computed even when it holds).
    first_missing = tf.concat([tf.where(tf.equal(present, 0))[:, 0], [tf.cast(count, tf.int64)]], 0)[0]
    label = tf.gather(tf.concat([labels, ["image"]], 0), first_missing)
    format_name = tf.gather(tf.constant(["JPEG", "PNG", "GIF", "BMP", "image"]),
                            _image_format(tf.gather(tf.concat([images, [""]], 0), first_missing)))
    return tf.debugging.Assert(
        tf.equal(tf.size(indices), count),
        [label, "cannot be decoded: corrupt or truncated", format_name, "data"],
    )


def _decode(encoded, label):
    """tf.string scalar -> uint8 [H, W, 3]; `label` (string tensor) names the image in error messages."""
    with tf.control_dependencies(_header_checks(encoded, label)):
        return _decode_checked(encoded)


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
            lambda encoded, label: self._resize_and_crop_batch(_decode(encoded, label)[None], label)[0],
            input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)], autograph=False)
        self._array_to_pixels = tf.function(
            lambda pixels, label: self._resize_and_crop_batch(_to_rgb(pixels)[None], label)[0],
            input_signature=[tf.TensorSpec([None, None, None], tf.uint8), tf.TensorSpec([], tf.string)],
            autograph=False)

    def decode(self, encoded):
        """tf.string scalar (JPEG/PNG/GIF/BMP bytes) -> uint8 [H, W, 3]."""
        return _decode(encoded, tf.constant("image"))

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
        read, jpeg_shapes = _each_image(_jpeg_shape, images)
        with tf.control_dependencies([_all_present(read, images, labels)]):
            jpeg_shapes = tf.scatter_nd(read[:, None], jpeg_shapes, [count, 2])

        def check(args):
            with tf.control_dependencies(_header_checks(*args)):
                return tf.constant(True)

        # Then every header, so that those errors name their image; then the decoders, whose own errors name
        # no image either: an image whose decoder fails is named.
        checked = tf.reduce_all(tf.map_fn(check, (images, labels, jpeg_shapes), fn_output_signature=tf.bool))
        with tf.control_dependencies([checked]):
            decoded, pixels = _each_image(
                lambda encoded: self._resize_and_crop_batch(_decode_checked(encoded)[None], tf.constant("image"))[0],
                images)
        with tf.control_dependencies([_all_present(decoded, images, labels)]):
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
        with tf.control_dependencies(_check_size(height, width, label, batch)):
            new_height, new_width = _resized_size(height, width, resolution)
        # transformers' center_crop offset: (size - crop) // 2; no padding is ever needed as both sides >= R.
        top, left = (new_height - resolution) // 2, (new_width - resolution) // 2
        rows = _resampling_matrix(height, new_height, top, resolution)  # [R, H]
        columns = _resampling_matrix(width, new_width, left, resolution)  # [R, W]

        # Horizontal pass first, rounded to 8 bits, then vertical: Pillow's order, and its intermediate rounding.
        values = tf.transpose(tf.cast(pixels, tf.float32), [0, 1, 3, 2])  # [N, H, 3, W]
        # Explicit reshape sizes (no -1) so that an empty batch, possibly with zero height and width, works.
        values = tf.matmul(tf.reshape(values, [batch * height * 3, width]), columns, transpose_b=True)
        values = _round_to_levels(values)
        values = tf.transpose(tf.reshape(values, [batch, height, 3, resolution]), [0, 2, 3, 1])  # [N, 3, R, H]
        values = tf.matmul(tf.reshape(values, [batch * 3 * resolution, height]), rows, transpose_b=True)
        values = _round_to_levels(values)
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
            raise ValueError(_readable_error(error.message, label)) from None

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


def _readable_error(message, label):
    """One line from a TensorFlow error: our assertions already name the image, decoder errors get the label."""
    # TensorFlow wraps the message in function names ({{function_node ...}}) and appends node traces ([[...]]).
    lines = [re.sub(r"\{\{[^}]*\}\}\s*", "", line).strip() for line in message.splitlines()]
    reason = next((line for line in lines if line and not line.startswith("[[")), "unknown error")
    if reason.startswith("assertion failed:"):
        return re.sub(r"[\[\]]", "", reason[len("assertion failed:") :]).strip()
    return f"{label}: cannot decode: {reason}"


# --- The same resize and crop for TFLite, any input size -----------------------------------------------------
#
# TFLite builtins have neither float64 nor int64 arithmetic (FLOOR_DIV, MAXIMUM, RANGE, MUL, ... reject them), so
# the resampling matrices are rebuilt from int32 and float32 only. Where float32 alone would be imprecise, integers
# keep things exact: the centre of output o, (2o + 1) * in / (2 * out), is split into its integer part and
# remainder with int32 arithmetic, so the offset of every input from it, d = (2i + 1) * out - (2o + 1) * in, is an
# exact integer and the kernel argument d / (2 * max(in, out)) is one correctly rounded division. The kernel
# polynomial, the row sum and the normalisation stay float32 (the SavedModel: float64): float32 cannot hold a
# weight to a fraction of the 22-bit fixed point's unit, so about 7% of the weights land 1 to 4 units (2**-22)
# away from the float64 ones (measured over 1,154 sizes from 1 to 65,535); tests/test_preprocess_tflite.py
# bounds it. A pixel moves only when its sum lies within about 1e-3 of a rounding boundary, which is common only
# where in / out is a ratio of small integers (256 -> 224): there exact ties are frequent, and a tie broken the
# other way in both passes gives 2 levels (converters/parity.py's bar).

# Digits of the input size taken per step of the exact centre computation (in < 2**16: four 4-bit digits).
_DIGIT_BITS = 4
_DIGITS = 16 // _DIGIT_BITS


def _centre_divmod(numerators, in_size, denominator):
    """(floor(n * in_size / denominator), n * in_size mod denominator) for int32 n >= 0, exactly, without
    forming the product (which exceeds int32 for long sides): Horner's rule over the 4-bit digits of in_size.
    Needs in_size < 2**16 and 16 * denominator < 2**30."""
    quotient = tf.zeros_like(numerators)
    remainder = tf.zeros_like(numerators)
    for step in reversed(range(_DIGITS)):
        digit = tf.math.floormod(in_size // (1 << (_DIGIT_BITS * step)), 1 << _DIGIT_BITS)
        partial = remainder * (1 << _DIGIT_BITS) + numerators * digit
        quotient = quotient * (1 << _DIGIT_BITS) + partial // denominator
        remainder = tf.math.floormod(partial, denominator)
    return quotient, remainder


def _band_count(resolution, most=16):
    """The largest divisor of `resolution` up to `most`: the number of output bands per pass."""
    return max(n for n in range(1, most + 1) if resolution % n == 0)


def _band_matrices(in_size, out_size, first, count, bands):
    """_resampling_matrix's rows first..first+count-1 in `bands` bands of count / bands outputs, each restricted
    to the inputs it uses, from int32 and float32 ops only (see above): (weights float32 [bands, size, longest],
    starts int32 [bands], lengths int32 [bands]); band b's weights are weights[b, :, :lengths[b]], for the
    inputs starts[b]..starts[b]+lengths[b]-1."""
    size = count // bands
    outputs = first + tf.range(count, dtype=tf.int32)
    # Centre of output o in input coordinates: base + remainder / (2 * out), 0 <= remainder < 2 * out.
    base, remainder = _centre_divmod(2 * outputs + 1, in_size, 2 * out_size)
    base, remainder = tf.reshape(base, [bands, size]), tf.reshape(remainder, [bands, size])
    # Pillow's kernel reaches 2 * max(in / out, 1) from the centre; inputs further than `reach` get weight 0.
    reach = 2 * (in_size // out_size + 1) + 2
    starts = tf.clip_by_value(base[:, 0] - reach, 0, in_size)
    lengths = tf.clip_by_value(base[:, -1] + reach + 1, 0, in_size) - starts
    inputs = starts[:, None] + tf.range(tf.reduce_max(lengths), dtype=tf.int32)[None, :]  # [bands, longest]
    # Clipping the distance keeps d inside int32 for any image within the limits (weights there are 0 anyway).
    distance = tf.clip_by_value(inputs[:, None, :] - base[:, :, None], -reach, reach)
    offsets = distance * (2 * out_size) + (out_size - remainder)[:, :, None]  # (2i + 1) * out - (2o + 1) * in
    # Pillow stretches the kernel by the scale when shrinking: x = (i + 0.5 - centre) / max(in / out, 1).
    weights = _pil_bicubic(tf.cast(offsets, tf.float32) / tf.cast(2 * tf.maximum(in_size, out_size), tf.float32))
    # Bands shorter than the longest are padded with positions past the image, which must weigh nothing.
    weights = weights * tf.cast(inputs < in_size, tf.float32)[:, None, :]
    total = tf.reduce_sum(weights, axis=2, keepdims=True)
    weights = weights / total  # total > 0: the kernel is positive within 1 of the centre, which has an input
    one = float(1 << _PIL_WEIGHT_BITS)
    return tf.sign(weights) * tf.floor(tf.abs(weights) * one + 0.5) / one, starts, lengths


def _banded_product(values, values_start, in_size, out_size, first, count, bands):
    """values [N, inputs values_start...] x the resampling matrix of outputs first..first+count-1, transposed
    -> [N, count], as `bands` products, each of the inputs its band of outputs uses."""
    weights, starts, lengths = _band_matrices(in_size, out_size, first, count, bands)
    rows = tf.shape(values)[0]
    results = []
    for band in range(bands):
        inputs = tf.slice(values, tf.stack([0, starts[band] - values_start]), tf.stack([rows, lengths[band]]))
        band_weights = tf.slice(weights[band], [0, 0], tf.stack([count // bands, lengths[band]]))
        results.append(tf.matmul(inputs, band_weights, transpose_b=True))
    return tf.concat(results, axis=1)


def resize_and_crop_any_size(pixels, resolution):
    """uint8 [1, H, W, 3] of any size -> uint8 [1, R, R, 3]: ImagePreprocessor.resize_and_crop in TFLite builtins.

    Equal to it within one 8-bit level, two on scalings with many exact ties (float32 weights, see above). No
    size checks: TFLite has no assertions, so
    callers must keep 1 <= H, W <= MAX_SIDE and H * W <= MAX_PIXELS. An empty image (H or W = 0) gives zeros;
    sides of 65,536 or more give wrong pixels (the exact centres take 16-bit sizes), silently.
    """
    if not 0 < resolution <= 512:  # 16 * 2 * out < 2**30 for out <= 512 * MAX_SIDE in _centre_divmod
        raise ValueError(f"resolution must be in 1..512, got {resolution}")
    shape = tf.shape(pixels)
    height, width = shape[1], shape[2]
    # Both are at least R for any image; the maximum only keeps a 0 x 0 input from dividing by zero (zeros out).
    new_height, new_width = (tf.maximum(size, resolution)
                             for size in _resized_size(height, width, resolution, tf.int32))
    top, left = (new_height - resolution) // 2, (new_width - resolution) // 2
    # Only the rows and columns that the crop's outputs use are read, and each pass is split into bands of
    # outputs, each a product with only the inputs its band uses: the matrices are mostly zeros (Pillow's kernel
    # spans about 4 x the scale), so dense products over the whole image would do R / band_count times the work.
    bands = _band_count(resolution)
    _, row_start, row_count = _band_matrices(height, new_height, top, resolution, 1)
    _, column_start, column_count = _band_matrices(width, new_width, left, resolution, 1)
    row_start, row_count, column_start, column_count = row_start[0], row_count[0], column_start[0], column_count[0]
    used = tf.slice(pixels[0], tf.stack([row_start, column_start, 0]), tf.stack([row_count, column_count, 3]))

    # Horizontal pass first, rounded to 8 bits, then vertical: Pillow's order, as _resize_and_crop_batch.
    values = tf.transpose(tf.cast(used, tf.float32), [0, 2, 1])  # [rows, 3, columns]
    values = _banded_product(tf.reshape(values, [row_count * 3, column_count]), column_start, width, new_width,
                             left, resolution, bands)
    values = _round_to_levels(values)
    values = tf.transpose(tf.reshape(values, [row_count, 3 * resolution]))  # [3 * R, rows]
    values = _banded_product(values, row_start, height, new_height, top, resolution, bands)
    values = _round_to_levels(values)  # [3 * R (channel, column), R (row)]
    values = tf.transpose(tf.reshape(values, [3, resolution, resolution]), [2, 1, 0])
    return tf.cast(values, tf.uint8)[None]
