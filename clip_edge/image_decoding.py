"""Image decoding as TensorFlow ops: JPEG, PNG, GIF and BMP bytes to uint8 RGB as PIL opens them, after the checks
of each file's format, header and size that need no decoding.

decode_image: tf.string scalar -> uint8 [H, W, 3], grey replicated and alpha composited onto white (to_rgb), in tf
ops so that it lives inside a SavedModel. clip_edge.preprocessing.ImagePreprocessor resizes, crops and normalises
what comes out, and applies the size limits (check_size) and to_rgb to pixels given as arrays too.

Where TensorFlow's decoders read a file otherwise than Pillow, the bytes are edited before decoding, or the pixels
after, so that Pillow's reading comes out (the JVM's decoding, android_demo/clip-desktop's ImageFiles, follows the same
rules):
  - JPEGs of four components, CMYK or YCCK, are read as Adobe's inverted CMYK whether or not the file has Adobe's
    segment (_with_adobe_convention); TensorFlow rounds K * C / 255 down where Pillow rounds to nearest, so these
    come out within one level of Pillow's, not equal (in the tests' photos, a third to two fifths of the values
    one level below).
  - GIF: the first frame on Pillow's canvas, the logical screen grown to hold the frame at its position, with the
    frame's transparent colour (white once composited) or else its palette's entry 0 around it (_decode_gif).
EXIF orientation is ignored, as by Pillow's Image.open: a photo stored sideways is decoded as stored.

Known difference from CLIPImageProcessor on PIL-opened files: 16-bit PNGs are scaled to 8 bits, where PIL opens
16-bit grey as mode I;16, which its RGB conversion saturates. Limits, checked from the headers before decoding: at
most 100 megapixels and 65,535 pixels a side (for a GIF, its screen and every frame together, and 300 megapixels
in all its frames); BMP files uncompressed, of 8, 24 or 32 bits per pixel, with an info header Pillow reads
(except the 12-byte OS/2 1.x one). In a batch (each_image and all_present, as ImagePreprocessor.from_encoded runs
them), an image that no decoder can read is named by its index.
"""

import re

import tensorflow as tf

MAX_PIXELS = 100_000_000
# The resampling matrices (clip_edge.preprocessing's) are dense ([R, side] each), so a side is capped as well as
# the area; JPEG and WebP cannot exceed this side length either.
MAX_SIDE = 65_535
# TensorFlow's GIF decoder (giflib) holds every frame of a file in memory, one byte a pixel, though only the
# first is shown: the frames' total is capped at the memory of the largest image allowed (3 bytes a pixel).
MAX_GIF_PIXELS = 3 * MAX_PIXELS

_JPEG, _PNG, _GIF, _BMP, _UNKNOWN = range(5)
# First bytes of each supported format, indexed by the constants above.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


def check_size(height, width, label, batch=1):
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


def to_rgb(pixels):
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


def jpeg_header_shape(encoded):
    """int64 [2]: (height, width) from a JPEG's header by libjpeg, whose error names no image; zeros for other
    formats."""
    return tf.cond(tf.equal(_image_format(encoded), _JPEG),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64),
                   lambda: tf.zeros([2], tf.int64))


def _header_size(encoded, image_format, jpeg_shape=None):
    """(height, width, pixels decoded) int64 read from the file header (every frame's, for GIF), so oversized
    images are refused before decoding. pixels is height x width except for GIF, where every frame counts.
    jpeg_shape: jpeg_header_shape(encoded) if already read."""
    header = _leading_bytes(encoded, 34)
    if jpeg_shape is None:
        jpeg_shape = jpeg_header_shape(encoded)

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

    giflib, under TensorFlow's decoder, reads every frame at its own declared size, whatever the screen says,
    and the canvas _decode_gif gives (Pillow's) is the screen grown to hold the first frame: so the size checked
    is that of the screen and all frames together, and the frames' total is bounded too."""
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


def _replace_bytes(encoded, size, edits):
    """`encoded` (of `size` bytes) with each (position, replacement) of `edits` written over the bytes from
    `position` on. The replaced ranges must lie inside the string and not overlap; an edit of b"" changes nothing."""
    positions = tf.stack([position for position, _ in edits])
    replacements = tf.stack([replacement for _, replacement in edits])
    order = tf.argsort(positions, stable=True)
    positions, replacements = tf.gather(positions, order), tf.gather(replacements, order)
    starts = tf.concat([[0], positions + tf.cast(tf.strings.length(replacements), tf.int64)], 0)
    kept = tf.strings.substr(encoded, starts, tf.concat([positions, [size]], 0) - starts)
    return tf.strings.join([tf.strings.reduce_join(tf.reshape(tf.stack([kept[:-1], replacements], 1), [-1])),
                            kept[-1]])


def _decode_gif(encoded):
    """The first frame of a GIF as Pillow opens it, transparency composited onto white: uint8 [H, W, 3].

    Pillow's canvas is the logical screen, grown to hold the first frame at its position; outside the frame it
    holds the frame's transparent colour if it has one (white, composited as CLIPImageProcessor does), else entry
    0 of the frame's palette. TensorFlow's decoder differs in three ways, each undone here:
      - its canvas is as large as the largest frame, with the first frame at its position in it and whatever
        falls outside cut off: the frame is moved to the corner (its descriptor's left and top made 0) so that
        it is decoded whole, then placed on Pillow's canvas;
      - outside the first frame it gives black;
      - it gives transparent pixels black and cannot say which they are: the frame's graphic control extension
        loses its transparency flag and the transparent palette entry becomes white, which gives exactly the
        composited result.
    Files with a structure we cannot follow are decoded unchanged (and then decoded, or refused, by TF).
    """
    size, byte, skip_sub_blocks, first_block = _gif_reader(encoded)

    def little16(at):
        return byte(at) + 256 * byte(at + 1)

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
    # The descriptor: 0x2C, left, top, width, height (16 bits each), flags, then the local palette if any.
    is_frame = tf.equal(byte(descriptor), 0x2C) & (descriptor + 10 <= size)
    left, top = little16(descriptor + 1), little16(descriptor + 3)
    frame_width, frame_height = little16(descriptor + 5), little16(descriptor + 7)
    frame_flags = byte(descriptor + 9)
    has_local_palette = tf.bitwise.bitwise_and(frame_flags, 0x80) > 0
    palette_start = tf.where(has_local_palette, descriptor + 10, 13)
    palette_flags = tf.where(has_local_palette, frame_flags, screen_flags)
    palette_entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(palette_flags, 7))
    control_flags, transparent_index = byte(control + 3), byte(control + 6)
    has_transparency = is_frame & (control >= 0) & (tf.bitwise.bitwise_and(control_flags, 1) > 0)
    colour = palette_start + 3 * transparent_index
    whiten = (has_transparency & (has_local_palette | has_global_palette) & (transparent_index < palette_entries)
              & (colour + 3 <= size))

    move = is_frame & ((left > 0) | (top > 0))

    def patched():
        # Disjoint places: the global palette, then the extension, then the descriptor, then the local palette.
        one = tf.constant(1, tf.int64)
        flags = tf.strings.substr(_BYTE_VALUES, tf.bitwise.bitwise_and(control_flags, 0xFE), one)
        return _replace_bytes(encoded, size, [
            (tf.where(whiten, control + 3, 0), tf.where(whiten, flags, b"")),
            (tf.where(whiten, colour, 0), tf.where(whiten, b"\xff\xff\xff", b"")),
            (tf.where(move, descriptor + 1, 0), tf.where(move, b"\0\0\0\0", b"")),
        ])

    gif = tf.cond(whiten | move, patched, lambda: encoded)
    decoded = tf.ensure_shape(tf.io.decode_image(gif, channels=3, expand_animations=False), [None, None, 3])
    frame = decoded[:frame_height, :frame_width]
    height, width = tf.unstack(tf.shape(frame, out_type=tf.int64)[:2])
    canvas_height, canvas_width = tf.maximum(little16(8), top + height), tf.maximum(little16(6), left + width)

    def on_canvas():
        padding = tf.stack([[top, canvas_height - top - height], [left, canvas_width - left - width], [0, 0]])
        inside = tf.pad(tf.ones([height, width, 1], tf.bool), padding)
        palette_zero = tf.cast(tf.stack([byte(palette_start + channel) for channel in range(3)]), tf.uint8)
        background = tf.where(has_transparency, tf.constant([255, 255, 255], tf.uint8), palette_zero)
        return tf.where(inside, tf.pad(frame, padding), background)

    # Most GIFs: a first frame at the corner that covers the screen, and no larger frame after it.
    canvas = tf.stack([canvas_height, canvas_width])
    covered = tf.equal(left, 0) & tf.equal(top, 0) & tf.reduce_all(
        tf.equal(tf.stack([height, width]), canvas) & tf.equal(tf.shape(decoded, out_type=tf.int64)[:2], canvas))
    return tf.cond(is_frame & tf.logical_not(covered), on_canvas, lambda: decoded)


def header_checks(encoded, label, jpeg_shape=None):
    """Assertions on one encoded image that need no decoding: bytes present, a supported format, the declared
    size within the limits, and the format's details; `label` (string tensor) names the image. jpeg_shape:
    jpeg_header_shape(encoded) if already read."""
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
    return checks + check_size(height, width, label) + _bmp_checks(encoded, tf.equal(image_format, _BMP), label) + [
        tf.debugging.Assert(
            pixels <= MAX_GIF_PIXELS,
            [label, "is a GIF whose frames hold", pixels, f"pixels in all; at most {MAX_GIF_PIXELS:,} are decoded"],
        )
    ]


# An Adobe APP14 segment: length 14, "Adobe", version 100, two flag words, colour transform 0 (no YCCK).
_ADOBE_SEGMENT = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


def _with_adobe_convention(encoded):
    """A JPEG of four components (CMYK, or YCCK converted to CMYK by libjpeg) with an Adobe segment first, so that
    TensorFlow reads its values as Adobe's inverted CMYK (0 = full ink), as Pillow reads every CMYK JPEG.

    TF's decoder takes that convention only when it saw an Adobe marker and otherwise reads the values as plain
    CMYK, the inverse colours. The segment goes right after the start marker; a file's own Adobe segment comes
    later and still decides whether the components are CMYK or YCCK (libjpeg keeps the last one). Other JPEGs
    are returned unchanged. TF then rounds k * c / 255 down where Pillow rounds it to nearest: within one level.
    """
    return tf.cond(
        tf.equal(tf.image.extract_jpeg_shape(encoded)[2], 4),
        lambda: tf.strings.join([tf.strings.substr(encoded, 0, 2), _ADOBE_SEGMENT,
                                 tf.strings.substr(encoded, 2, tf.strings.length(encoded) - 2)]),
        lambda: encoded,
    )


def decode_checked(encoded):
    """tf.string scalar that passed header_checks -> uint8 [H, W, 3]."""
    image_format = _image_format(encoded)

    def jpeg():
        # INTEGER_ACCURATE is libjpeg's islow IDCT, the one PIL uses: the pixels come out identical.
        return tf.io.decode_jpeg(_with_adobe_convention(encoded), channels=3, dct_method="INTEGER_ACCURATE")

    def png():
        return to_rgb(tf.io.decode_png(encoded, channels=0))

    def gif():
        return _decode_gif(encoded)

    return tf.switch_case(
        image_format,
        branch_fns=[jpeg, png, gif, lambda: _decode_bmp(encoded)],
        default=png,  # unreachable: unknown formats fail the header checks
    )


def each_image(function, images):
    """(indices int32 [K], results [K, ...]) of `function` on the images it succeeds on, K <= N, in order.

    In tf.data, the only graph construct that survives an op's error: ignore_errors drops an image whose ops
    fail. The dataset is built at every call, but get_single_element reuses the map function's instantiation
    from call to call, where Dataset.reduce instantiated it anew: for from_encoded's decoders and resize, a large
    graph, that was most of a small request's time (docs/benchmarks.md, "Preprocessing").
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


def all_present(indices, images, labels):
    """Assertion that `indices` (from each_image) hold every image, naming the first missing and its format."""
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


def decode_image(encoded, label):
    """tf.string scalar -> uint8 [H, W, 3]; `label` (string tensor) names the image in error messages."""
    with tf.control_dependencies(header_checks(encoded, label)):
        return decode_checked(encoded)


def readable_error(message, label):
    """One line from a TensorFlow error: our assertions already name the image, decoder errors get the label."""
    # TensorFlow wraps the message in function names ({{function_node ...}}) and appends node traces ([[...]]).
    lines = [re.sub(r"\{\{[^}]*\}\}\s*", "", line).strip() for line in message.splitlines()]
    reason = next((line for line in lines if line and not line.startswith("[[")), "unknown error")
    if reason.startswith("assertion failed:"):
        return re.sub(r"[\[\]]", "", reason[len("assertion failed:") :]).strip()
    return f"{label}: cannot decode: {reason}"
