"""clip_edge's in-graph ImagePreprocessor vs transformers' CLIPImageProcessor (PIL backend): images/s, same run.

    .venv/bin/python -m benchmarks.bench_preprocessing [--batch=16] [--repeats=7] [--resolution=224]

Three comparisons over the same real photos (scikit-image samples, 9 x 13 up to 872 x 1000, cycled to fill
the batch), timed alternately so that load from other processes hits both alike:

  encoded    JPEG bytes -> normalised float32: from_encoded vs PIL.Image.open + CLIPImageProcessor
  12 MP      the same for phone-camera-sized JPEGs (4032 x 3024, the Hubble photo upscaled): the dense
             resampling matrices cost O(H * W * R), so this is where they are most at a disadvantage
  pixels     uint8 arrays (one size per batch) -> normalised: from_pixels vs CLIPImageProcessor
  tflite     uint8 [1, 427, 640, 3] -> uint8 [1, R, R, 3]: resize_and_crop converted to TFLite (LiteRT
             interpreter) vs PIL's Image.resize(BICUBIC) + crop, the same step done by Pillow
  preprocess.tflite   the exported any-size model (converters.serving.tflite_preprocess, input resized with
             resize_tensor_input before timing) vs the same Pillow step, on 640x480, 1920x1080 and 4032x3024
             photos (the Hubble photo resized): what a phone app gets instead of writing the resize itself

Reports the median images/s of each and the ratio ours / reference (above 1 = we are faster).
"""

import argparse
import io
import statistics
import time

import numpy as np
import tensorflow as tf
from PIL import Image
from transformers import CLIPImageProcessorPil

from clip_edge.preprocessing import ImagePreprocessor
from tests import photos
from tests.reference import pillow_resize_and_crop


def median_seconds(runs, repeats):
    """Median wall time of each callable in `runs`, calls interleaved round-robin after one warm-up each."""
    for run in runs:
        run()
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, spent in zip(runs, times):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def cycled(items, count):
    return [items[index % len(items)] for index in range(count)]


def tflite_resize_and_crop(preprocessor, shape):
    from ai_edge_litert.interpreter import Interpreter

    function = tf.function(preprocessor.resize_and_crop, input_signature=[tf.TensorSpec(shape, tf.uint8)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], preprocessor)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(pixels):
        interpreter.set_tensor(input_detail["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(output_detail["index"])

    return run


def any_size_runner(tflite, shape, threads=2):
    """preprocess.tflite with its input resized to `shape` once; the returned call sets pixels and invokes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=threads)
    (input_detail,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(input_detail["index"], shape, strict=True)
    interpreter.allocate_tensors()
    (output_detail,) = interpreter.get_output_details()

    def run(pixels):
        interpreter.set_tensor(input_detail["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(output_detail["index"])

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()

    resolution = args.resolution
    preprocessor = ImagePreprocessor(resolution)
    reference = CLIPImageProcessorPil(
        size={"shortest_edge": resolution}, crop_size={"height": resolution, "width": resolution}
    )
    sample = photos.sample_photos()
    names = sorted(sample)
    rows = []

    jpegs = cycled([photos.encoded(name, "JPEG") for name in names], args.batch)
    jpeg_tensor = tf.constant(jpegs)
    ours, theirs = median_seconds(
        [
            lambda: preprocessor.from_encoded(jpeg_tensor).numpy(),
            lambda: reference(images=[Image.open(io.BytesIO(data)) for data in jpegs], return_tensors="np"),
        ],
        args.repeats,
    )
    rows.append((f"encoded: {args.batch} JPEGs of {len(names)} photos -> float32", ours, theirs, args.batch))

    large = Image.fromarray(sample["hubble"]).resize((4032, 3024), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, format="JPEG", quality=90)
    large_jpegs = [buffer.getvalue()] * 2
    large_tensor = tf.constant(large_jpegs)
    ours, theirs = median_seconds(
        [
            lambda: preprocessor.from_encoded(large_tensor).numpy(),
            lambda: reference(images=[Image.open(io.BytesIO(data)) for data in large_jpegs], return_tensors="np"),
        ],
        args.repeats,
    )
    rows.append(("12 MP: 2 JPEGs of 4032x3024 -> float32", ours, theirs, len(large_jpegs)))

    # One batch per photo size (from_pixels takes one size per batch); summed over the photos.
    ours_total = theirs_total = 0.0
    for name in names:
        batch = np.stack([sample[name]] * args.batch)
        ours, theirs = median_seconds(
            [
                lambda: preprocessor.from_pixels(batch).numpy(),
                # channels_last: otherwise transformers guesses, and takes a 1 x 257 x 3 photo as channels-first.
                lambda: reference(images=list(batch), return_tensors="np", input_data_format="channels_last"),
            ],
            args.repeats,
        )
        ours_total, theirs_total = ours_total + ours, theirs_total + theirs
    rows.append(
        (f"pixels: {len(names)} batches of {args.batch} uint8 arrays -> float32", ours_total, theirs_total,
         args.batch * len(names))
    )

    rocket = np.ascontiguousarray(sample["rocket"][None])  # 427 x 640
    on_device = tflite_resize_and_crop(preprocessor, rocket.shape)
    ours, theirs = median_seconds(
        [lambda: on_device(rocket), lambda: pillow_resize_and_crop(rocket[0], resolution)], args.repeats * 5
    )
    rows.append(("tflite: resize_and_crop 427x640 uint8 (LiteRT vs Pillow)", ours, theirs, 1))

    from converters import serving, tflite_variants

    any_size = tflite_variants.convert_preprocess(serving.tflite_preprocess(resolution))
    for width, height in ((640, 480), (1920, 1080), (4032, 3024)):
        pixels = np.asarray(Image.fromarray(sample["hubble"]).resize((width, height), Image.Resampling.BICUBIC))[None]
        on_device = any_size_runner(any_size, pixels.shape)
        ours, theirs = median_seconds(
            [lambda: on_device(pixels), lambda: pillow_resize_and_crop(pixels[0], resolution)], args.repeats
        )
        rows.append((f"preprocess.tflite: {width}x{height} uint8 (LiteRT vs Pillow)", ours, theirs, 1))

    print(f"resolution {resolution}, TensorFlow {tf.__version__}, median of {args.repeats} runs")
    print("| case | ours images/s | reference images/s | ratio ours / reference |")
    print("|---|---:|---:|---:|")
    for case, ours, theirs, images in rows:
        print(f"| {case} | {images / ours:.1f} | {images / theirs:.1f} | {theirs / ours:.2f} |")


if __name__ == "__main__":
    main()
