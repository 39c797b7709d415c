"""ImagePreprocessor's resize and crop (clip_edge.preprocessing) for TFLite, at any input size and in builtin ops
only: resize_and_crop_any_size, the graph of the export's tflite/preprocess.tflite (converters.serving's
tflite_preprocess), its only user.

TFLite builtins have neither float64 nor int64 arithmetic (FLOOR_DIV, MAXIMUM, RANGE, MUL, ... reject them), so
the resampling matrices are rebuilt from int32 and float32 only. Where float32 alone would be imprecise, integers
keep things exact: the centre of output o, (2o + 1) * in / (2 * out), is split into its integer part and
remainder with int32 arithmetic, so the offset of every input from it, d = (2i + 1) * out - (2o + 1) * in, is an
exact integer and the kernel argument d / (2 * max(in, out)) is one correctly rounded division. The kernel
polynomial, the row sum and the normalisation stay float32 (the SavedModel: float64): float32 cannot hold a
weight to a fraction of the 22-bit fixed point's unit, so about 7% of the weights land 1 to 4 units (2**-22)
away from the float64 ones (measured over 1,154 sizes from 1 to 65,535); tests/test_preprocess_tflite.py
bounds it. A pixel moves only when its sum lies within about 1e-3 of a rounding boundary, which is common only
where in / out is a ratio of small integers (256 -> 224): there exact ties are frequent, and a tie broken the
other way in both passes gives 2 levels (converters/parity.py's bar).
"""

import tensorflow as tf

from clip_edge.preprocessing import PIL_WEIGHT_BITS, crop_offsets, pil_bicubic, resized_size, round_to_levels

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
    """clip_edge.preprocessing._resampling_matrix's rows first..first+count-1 in `bands` bands of count / bands
    outputs, each restricted to the inputs it uses, from int32 and float32 ops only (see the module docstring):
    (weights float32 [bands, size, longest], starts int32 [bands], lengths int32 [bands]); band b's weights are
    weights[b, :, :lengths[b]], for the inputs starts[b]..starts[b]+lengths[b]-1."""
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
    weights = pil_bicubic(tf.cast(offsets, tf.float32) / tf.cast(2 * tf.maximum(in_size, out_size), tf.float32))
    # Bands shorter than the longest are padded with positions past the image, which must weigh nothing.
    weights = weights * tf.cast(inputs < in_size, tf.float32)[:, None, :]
    total = tf.reduce_sum(weights, axis=2, keepdims=True)
    weights = weights / total  # total > 0: the kernel is positive within 1 of the centre, which has an input
    one = float(1 << PIL_WEIGHT_BITS)
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

    Equal to it within one 8-bit level, two on scalings with many exact ties (float32 weights, see the module
    docstring). No size checks: TFLite has no assertions, so callers must keep 1 <= H, W <= MAX_SIDE and
    H * W <= MAX_PIXELS (clip_edge.image_decoding's limits). An empty image (H or W = 0) gives zeros; sides of
    65,536 or more give wrong pixels (the exact centres take 16-bit sizes), silently.
    """
    if not 0 < resolution <= 512:  # 16 * 2 * out < 2**30 for out <= 512 * MAX_SIDE in _centre_divmod
        raise ValueError(f"resolution must be in 1..512, got {resolution}")
    shape = tf.shape(pixels)
    height, width = shape[1], shape[2]
    # Both are at least R for any image; the maximum only keeps a 0 x 0 input from dividing by zero (zeros out).
    new_height, new_width = (tf.maximum(size, resolution)
                             for size in resized_size(height, width, resolution, tf.int32))
    top, left = crop_offsets(new_height, new_width, resolution)
    # Only the rows and columns that the crop's outputs use are read, and each pass is split into bands of
    # outputs, each a product with only the inputs its band uses: the matrices are mostly zeros (Pillow's kernel
    # spans about 4 x the scale), so dense products over the whole image would do R / band_count times the work.
    bands = _band_count(resolution)
    _, row_start, row_count = _band_matrices(height, new_height, top, resolution, 1)
    _, column_start, column_count = _band_matrices(width, new_width, left, resolution, 1)
    row_start, row_count, column_start, column_count = row_start[0], row_count[0], column_start[0], column_count[0]
    used = tf.slice(pixels[0], tf.stack([row_start, column_start, 0]), tf.stack([row_count, column_count, 3]))

    # Horizontal pass first, rounded to 8 bits, then vertical: Pillow's order, as ImagePreprocessor's.
    values = tf.transpose(tf.cast(used, tf.float32), [0, 2, 1])  # [rows, 3, columns]
    values = _banded_product(tf.reshape(values, [row_count * 3, column_count]), column_start, width, new_width,
                             left, resolution, bands)
    values = round_to_levels(values)
    values = tf.transpose(tf.reshape(values, [row_count, 3 * resolution]))  # [3 * R, rows]
    values = _banded_product(values, row_start, height, new_height, top, resolution, bands)
    values = round_to_levels(values)  # [3 * R (channel, column), R (row)]
    values = tf.transpose(tf.reshape(values, [3, resolution, resolution]), [2, 1, 0])
    return tf.cast(values, tf.uint8)[None]
