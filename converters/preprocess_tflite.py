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
# The horizontal pass reads the image in blocks, a band of the crop's columns by a strip of rows: _STRIPS strips
# per band (see resize_and_crop_any_size for why, _strips for their sizes).
_STRIPS = 8
# LiteRT's float32 products (FULLY_CONNECTED; Eigen's on x86) take the rows of their input _ROW_STEP at a time
# and the rows left over another way, and work out tiny products (rows + inputs + outputs < 20) coefficient by
# coefficient, each way rounding differently. A product over some of the rows gives every row the result that
# one product over all of them gives (so blocks change no bit of the output) when each row takes the same way
# in both: every strip but the last is a whole number of steps, the last ends where all rows end, and a strip
# has at least _MIN_STRIP_ROWS rows (48 product rows, never a tiny product) unless it is the image's only one.
_ROW_STEP = 4
_MIN_STRIP_ROWS = 16

# The most memory preprocess.tflite takes in LiteRT beyond the interpreter's own (its input included):
# PREPROCESS_PEAK_BYTES_PER_PIXEL bytes per input pixel (the uint8 input is 3) plus PREPROCESS_PEAK_EXTRA_BYTES.
# Measured (ai_edge_litert 2.3.0, 33 sizes): 7.4 bytes a pixel at 10,000 x 10,000, 6.1 at 1,525 x 65,535, at most
# 7.6 from 36 megapixels up and 8.1 from 16 up; smaller images take more a pixel but a few MB (11 at 1,000 x
# 1,000), within the extra. README.md and the manifest's note promise it; tests/test_preprocess_tflite.py checks
# it.
PREPROCESS_PEAK_BYTES_PER_PIXEL = 8
PREPROCESS_PEAK_EXTRA_BYTES = 20 << 20


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


def _band_weights(weights, lengths):
    """Each band's weights [size, lengths[b]], from _band_matrices' weights [bands, size, longest]."""
    bands, size = weights.shape[0], weights.shape[1]
    return [tf.slice(weights[band], [0, 0], tf.stack([size, lengths[band]])) for band in range(bands)]


def _banded_product(values, values_start, weights, starts, lengths):
    """values uint8 [N, inputs values_start...] x the resampling matrix (_band_matrices' starts and lengths, its
    weights from _band_weights), transposed -> float32 [N, outputs]: one product per band of outputs, of the
    inputs it uses, each made float32 on its own."""
    rows = tf.shape(values)[0]
    products = []
    for band_weights, start, length in zip(weights, tf.unstack(starts), tf.unstack(lengths)):
        inputs = tf.slice(values, tf.stack([0, start - values_start]), tf.stack([rows, length]))
        products.append(tf.matmul(tf.cast(inputs, tf.float32), band_weights, transpose_b=True))
    return tf.concat(products, axis=1)


def _strips(row_start, row_count):
    """The strips of rows, [(first row, rows)], of every band of columns but the first, and of the first.

    The last strip has `unit` rows and those left over by whole steps (_ROW_STEP), the _STRIPS - 2 before it a
    unit each, and the first the rest: a unit and up to _ROW_STEP * _STRIPS - 1 rows; an image with less than
    _MIN_STRIP_ROWS rows per unit has one strip. The first band reads its first two strips as one, so that its
    first block is the largest of all (see resize_and_crop_any_size): it has at least 1.34 times the rows of any
    other block (two units and the first strip's extra rows, against one unit and up to 31 extra rows), and no
    band reads more than 1.3 times the first band's inputs (bands differ by an input at most, and the first one
    can be cut short by the image's edge; measured over 450 sizes)."""
    unit = row_count // _STRIPS // _ROW_STEP * _ROW_STEP
    unit = tf.where(unit >= _MIN_STRIP_ROWS, unit, row_count + _ROW_STEP)
    ends = [tf.maximum(row_count - row_count % _ROW_STEP - (_STRIPS - 1 - strip) * unit, 0)
            for strip in range(_STRIPS - 1)] + [row_count]
    strips = [(row_start + first, end - first) for first, end in zip([0] + ends[:-1], ends)]
    return strips, [(row_start, ends[1])] + strips[2:]


def _zero_after(tensor):
    """0, computed from the shape of `tensor` (which the converter must not know in full), so after it."""
    return tf.minimum(tf.reduce_min(tf.shape(tensor)), 0)


def _own_buffer(tensor, rows):
    """All of `tensor` [rows, M], copied by a slice of `rows` rows, a count known only while running: LiteRT
    gives a tensor whose shape it learns only while running a buffer of its own instead of a place in its arena
    (see resize_and_crop_any_size). The converter cannot know the copy's shape either, so _zero_after takes it."""
    return tf.slice(tensor, [0, 0], tf.stack([rows, -1]))


def resize_and_crop_any_size(pixels, resolution):
    """uint8 [1, H, W, 3] of any size -> uint8 [1, R, R, 3]: ImagePreprocessor.resize_and_crop in TFLite builtins.

    Equal to it within one 8-bit level, two on scalings with many exact ties (float32 weights, see the module
    docstring). No size checks: TFLite has no assertions, so callers must keep 1 <= H, W <= MAX_SIDE and
    H * W <= MAX_PIXELS (clip_edge.image_decoding's limits). An empty image (H or W = 0) gives zeros; sides of
    65,536 or more give wrong pixels (the exact centres take 16-bit sizes), silently. A non-empty input of any
    other shape than [1, H, W, 3] (an interpreter resized without strict checking takes any shape) fails the
    call.

    Memory, in LiteRT: with an input whose shape changes, LiteRT plans the tensors whose shapes it can work out
    before running in an arena, where tensors alive at different times share memory, but gives every tensor
    whose shape it learns only while running (here a slice at a position computed from the image's size) a
    buffer of its own, which it keeps until the interpreter goes. The arena holds the input too, and grows by
    reallocation, copying all of it, whenever a tensor does not fit. So the image is read in blocks, a band of
    columns by a strip of rows: the uint8 blocks are kept (the inputs the crop uses, and the bands' overlaps,
    about 1.2 times as many at 100 megapixels), but each is made float32 and multiplied in the arena, where the
    next block reuses its memory; the products are copied out into buffers of their own (_own_buffer) so that
    they do not wedge themselves between blocks, and the first block is the largest (_strips). README.md gives
    the peak this leaves, PREPROCESS_PEAK_BYTES_PER_PIXEL, which tests/test_preprocess_tflite.py measures.
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
    size = resolution // bands
    _, row_start, row_count = _band_matrices(height, new_height, top, resolution, 1)
    row_start, row_count = row_start[0], row_count[0]
    column_weights, column_starts, column_lengths = _band_matrices(width, new_width, left, resolution, bands)
    row_weights, row_starts, row_lengths = _band_matrices(height, new_height, top, resolution, bands)
    # A non-empty input of another shape (an RGBA image, a batch of two: an interpreter resized without strict
    # checking takes any shape) fails the call at this reshape of its first pixel, in every batch and channel, to
    # one pixel's three channels, or, holding three values there (three grey images), at the first block, which
    # reads three channels of one image. Unchecked, the blocks would read the first image's first three channels
    # without a word.
    corner = tf.minimum(shape[1:3], 1)  # 1 x 1, or nothing from an empty image
    corner = tf.reshape(tf.slice(pixels, [0, 0, 0, 0], tf.concat([[-1], corner, [-1]], axis=0)),
                        tf.concat([corner, [3]], axis=0))
    # LiteRT runs the ops in the converter's order, which follows the data only (it sliced every block before the
    # first product): each block starts _zero_after the previous step's result, the first after the check and
    # both passes' weights, which so lie below the blocks in the arena.
    zero = _zero_after(corner) + _zero_after(column_weights) + _zero_after(row_weights)
    column_weights, row_weights = _band_weights(column_weights, column_lengths), _band_weights(row_weights, row_lengths)
    column_starts, column_lengths = tf.unstack(column_starts), tf.unstack(column_lengths)
    strips, first_band_strips = _strips(row_start, row_count)
    # Bands of columns go through both passes a group at a time: the group's vertical product has 3 * group *
    # size rows (channel, column), a whole number of steps and not a tiny product (see _ROW_STEP), as the one
    # product over all 3 * R rows had; a resolution that allows no smaller group has one group.
    group = next(n for n in range(1, bands + 1)
                 if bands % n == 0 and (3 * size * n % _ROW_STEP == 0 and 3 * size * n + size >= 19 or n == bands))

    # Horizontal pass first, rounded to 8 bits, then vertical: Pillow's order, as ImagePreprocessor's.
    previous = None
    columns = []
    for first_band in range(0, bands, group):
        products = []
        for band in range(first_band, first_band + group):
            pieces = []
            for first, count in first_band_strips if band == 0 else strips:
                if previous is not None:
                    zero = _zero_after(previous)
                block = tf.slice(pixels, tf.stack([0, first + zero, column_starts[band], 0]),
                                 tf.stack([1, count, column_lengths[band], 3]))
                block = tf.transpose(block, [0, 1, 3, 2])  # [1, rows, 3, inputs]
                # -> [rows * 3, inputs], in place: the new shape comes from the block's, known before it runs.
                block = tf.reshape(block, tf.concat([[-1], tf.shape(block)[3:]], axis=0))
                product = tf.matmul(tf.cast(block, tf.float32), column_weights[band], transpose_b=True)
                previous = _own_buffer(product, 3 * count)
                pieces.append(previous)
            products.append(tf.concat(pieces, axis=0))
        # [rows * 3 (row, channel), the group's columns], in uint8: the levels exactly, in a quarter of the bytes.
        values = tf.cast(round_to_levels(tf.concat(products, axis=1)), tf.uint8)
        values = tf.transpose(tf.reshape(values, [-1, 3 * group * size]))  # [3 * columns (channel, column), rows]
        values = round_to_levels(_banded_product(values, row_start, row_weights, row_starts, row_lengths))
        previous = _own_buffer(tf.cast(values, tf.uint8), 3 * group * size + zero)
        columns.append(tf.reshape(previous, [3, group * size, resolution]))
    values = tf.concat(columns, axis=1)  # [3 (channel), R (column), R (row)]
    return tf.transpose(values, [2, 1, 0])[None]
