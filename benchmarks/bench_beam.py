"""clip_edge.beam.embed_images on Beam's local runner (1 and 2 worker processes) vs a plain loop over the
SavedModel in one process: images/s on the same images, in the same run.

    .venv-beam/bin/python -m benchmarks.bench_beam --export out/clip-vit-base-patch32 [--images=512]
        [--batch_size=16] [--workers=1,2] [--model=saved_model,tflite:float32,tflite:dynamic_int8,tflite:int8]
        [--tflite_threads=N]

--model takes a comma-separated list: each model gets its plain loop and its pipeline runs (embed_images
--model=...). A TFLite model's plain loop decodes, resizes and crops batches of --batch_size with the
SavedModel's preprocessing (clip_edge.beam.tflite.PixelDecoder) and invokes the encoder once per image, as the
pipeline's workers do.

Runs in the Beam virtualenv (`make beam-venv`). The images are JPEG variants (crops, flips, resizes) of the
real photos in tests/photos.py, 9 x 13 up to 872 x 1000 pixels. Each pipeline run is a fresh
`python -m clip_edge.beam.embed_images` process, so its time includes what a real run pays once: start-up,
matching, each worker's model load and sha256 check, shuffles and the Parquet writes. The plain loop loads
the SavedModel once (timed apart) and calls encode_image on batches of --batch_size.

The model printed at the end: with r the plain loop's images/s and c the pipeline's fixed cost (its 1-worker
time minus n / r), N workers on N machines like this one embed n images in about c + n / (N e r) seconds,
where e is the per-worker efficiency measured with 2 workers here (on one machine the workers share its
cores, so e there is a lower bound for separate machines).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from tests import photos


def write_images(folder, count):
    """`count` distinct JPEGs cycled from the real photos with different crops, flips and sizes."""
    rng = np.random.default_rng(0)
    names = sorted(photos.sample_photos())
    for number in range(count):
        pixels = photos.photo(names[number % len(names)])
        height, width = pixels.shape[:2]
        top, left = rng.integers(0, max(1, height // 4)), rng.integers(0, max(1, width // 4))
        image = Image.fromarray(np.ascontiguousarray(pixels[top:, left:]))
        if number % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        scale = rng.uniform(0.5, 1.0)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        image.save(os.path.join(folder, f"{number:06d}.jpg"), quality=90)


def plain_loop(export, paths, batch_size, model="saved_model", tflite_threads=None):
    """(load seconds, loop seconds) for the model over the files in batches, one process."""
    import tensorflow as tf

    from clip_edge.beam import tflite
    from clip_edge.beam.export_reader import Export, parse_model

    kind, variant = parse_model(model)
    started = time.perf_counter()
    export = Export(export)
    if kind == "saved_model":
        encode_image = export.load().signatures["encode_image"]

        def encode(images):
            encode_image(images=tf.constant(images))["embeddings"].numpy()
    else:
        encoder = tflite.Encoder(export.read_verified(export.tflite_entry("image", variant)), tflite_threads)
        decoder = tflite.PixelDecoder(export.resolution)

        def encode(images):
            for pixels in decoder(images):
                encoder(pixels)
    loaded = time.perf_counter()
    for start in range(0, len(paths), batch_size):
        images = []
        for path in paths[start:start + batch_size]:
            with open(path, "rb") as file:
                images.append(file.read())
        encode(images)
    return loaded - started, time.perf_counter() - loaded


def pipeline_run(export, folder, prefix, batch_size, workers, model="saved_model", tflite_threads=None,
                 mode="multi_processing"):
    # FnApiRunner: what the DirectRunner runs when it cannot fetch Prism (tests/test_beam.py says why).
    options = ["--runner=FnApiRunner", f"--direct_num_workers={workers}", f"--model={model}"]
    if tflite_threads:
        options.append(f"--tflite_threads={tflite_threads}")
    if workers > 1:
        options.append(f"--direct_running_mode={mode}")
    command = [sys.executable, "-m", "clip_edge.beam.embed_images", "--export", export, "--input",
               os.path.join(folder, "*.jpg"), "--output", prefix, f"--batch_size={batch_size}", *options]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"embed_images with {workers} worker(s) failed:\n{result.stderr[-3000:]}")
    return seconds


def report(n, batch_size, export, model, load_seconds, loop_seconds, runs):
    rate = n / loop_seconds
    print(f"\n== --model={model}: {n} JPEGs, batch {batch_size}, {os.cpu_count()} CPUs, export {export}")
    print(f"plain loop, one process: {rate:.1f} images/s (model load and sha256 check {load_seconds:.1f} s apart)")
    for count, seconds in runs.items():
        print(f"Beam local runner, {count} worker(s): {n / seconds:.1f} images/s "
              f"({seconds:.1f} s wall, everything included)")
    if 1 in runs and rate == rate:  # not with --skip_loop (rate NaN)
        fixed = max(0.0, runs[1] - n / rate)
        print(f"model: fixed cost c = {fixed:.1f} s (1-worker wall minus n / r)")
        if n / rate < fixed:
            print(f"  (n / r = {n / rate:.1f} s is below c: too few images for e to mean much; use --images in "
                  f"the thousands)")
        for count, seconds in runs.items():
            if count > 1 and seconds > fixed:
                efficiency = (n / (seconds - fixed)) / (count * rate)
                print(f"  {count} workers here: per-worker efficiency e = {efficiency:.2f} "
                      f"({os.cpu_count()} CPUs shared by {count} worker processes)")
        print("  N workers on N such machines: time(n) ~ c + n / (N e r); for 10^6 images and e = 1: "
              + ", ".join(f"N={workers_n}: {(fixed + 1e6 / (workers_n * rate)) / 3600:.1f} h"
                          for workers_n in (1, 10, 100)))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the local runner")
    parser.add_argument("--model", default="saved_model",
                        help="comma-separated models: saved_model, tflite:VARIANT (embed_images --model)")
    parser.add_argument("--tflite_threads", type=int, default=None, help="embed_images --tflite_threads")
    parser.add_argument("--mode", default="multi_processing", choices=("multi_processing", "multi_threading"),
                        help="the local runner's --direct_running_mode for more than one worker: one process (and "
                             "model) per worker, or one process whose worker threads each hold a TFLite interpreter")
    parser.add_argument("--skip_loop", action="store_true", help="pipeline runs only")
    args = parser.parse_args()
    workers = [int(count) for count in args.workers.split(",") if count]
    with tempfile.TemporaryDirectory(prefix="bench_beam_") as scratch:
        folder = os.path.join(scratch, "images")
        os.mkdir(folder)
        write_images(folder, args.images)
        paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
        for model in args.model.split(","):
            load_seconds, loop_seconds = (float("nan"), float("nan")) if args.skip_loop else plain_loop(
                args.export, paths, args.batch_size, model, args.tflite_threads)
            runs = {}
            for count in workers:
                prefix = os.path.join(scratch, f"index-{model.replace(':', '-')}-{count}")
                runs[count] = pipeline_run(args.export, folder, prefix, args.batch_size, count, model,
                                           args.tflite_threads, args.mode)
            report(args.images, args.batch_size, args.export, model, load_seconds, loop_seconds, runs)


if __name__ == "__main__":
    main()
