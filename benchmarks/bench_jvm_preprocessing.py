"""The Java resize and crop (android_demo/clip ImagePreprocessor) vs Pillow's, ms per image, same run.

    .venv/bin/python -m benchmarks.bench_jvm_preprocessing [--repeats=50] [--resolution=224]

Both do the same step: RGB pixels already in memory -> bicubic resize of the shortest side to R -> centre crop
R x R, uint8 out (decoding is not timed on either side). Pillow: Image.resize(BICUBIC) + crop on an opened RGB
image, as transformers' CLIPImageProcessor does it. Java: ImagePreprocessor.fromArgb on Bitmap-style ARGB ints,
timed inside the JVM by the hidden `clip-jvm preprocess --repeat N` option (N warm-up calls, then the median of
N timed calls). Both single-threaded. The two sides run alternately per image (Pillow, Java, Pillow) and Pillow's
figure is the lower of its two medians, so load from other processes does not favour Java.

Images: a phone-camera 4032 x 3024 (the Hubble photo upscaled), a 640 x 480 (the rocket photo resized) and the
sample photos at their own sizes. Reports the CPU model, each median and the ratio Pillow / Java (above 1 = Java
is faster).
"""

import argparse
import pathlib
import re
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks.machine import cpu_model
from tests import jvm
from tests import photos
from tests import reference


def pillow_median_ms(pixels, resolution, repeats):
    for _ in range(3):
        reference.pillow_resize_and_crop(pixels, resolution)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reference.pillow_resize_and_crop(pixels, resolution)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def java_median_ms(path, resolution, repeats, directory):
    result = jvm.run("preprocess", "--resolution", resolution, "--output", directory / "out.rgb",
                     "--repeat", repeats, path)
    match = re.search(r"preprocess_ms_median=([0-9.]+)", result.stderr.decode("utf-8"))
    if not match:
        raise RuntimeError(f"clip-jvm printed no timing: {result.stderr.decode('utf-8', 'replace')[-500:]}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()

    sample = photos.sample_photos()
    images = {
        "4032x3024": np.asarray(Image.fromarray(sample["hubble"]).resize((4032, 3024), Image.Resampling.BICUBIC)),
        "640x480": np.asarray(Image.fromarray(sample["rocket"]).resize((640, 480), Image.Resampling.BICUBIC)),
    }
    images.update({f"{name} {pixels.shape[1]}x{pixels.shape[0]}": pixels for name, pixels in sample.items()})

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        for index, (name, pixels) in enumerate(images.items()):
            path = directory / f"image{index}.png"
            Image.fromarray(np.ascontiguousarray(pixels)).save(path)
            pillow_first = pillow_median_ms(pixels, args.resolution, args.repeats)
            java = java_median_ms(path, args.resolution, args.repeats, directory)
            pillow = min(pillow_first, pillow_median_ms(pixels, args.resolution, args.repeats))
            rows.append((name, java, pillow))

    print(f"CPU: {cpu_model()}; Pillow {Image.__version__}; R = {args.resolution}; median of {args.repeats} runs, "
          "one thread each")
    print("| image | Java ms | Pillow ms | ratio Pillow / Java |")
    print("|---|---:|---:|---:|")
    for name, java, pillow in rows:
        print(f"| {name} | {java:.2f} | {pillow:.2f} | {pillow / java:.2f} |")


if __name__ == "__main__":
    main()
