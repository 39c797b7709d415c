"""Index build throughput of the Java core (`clip-jvm index`): photos per second, decoding, preprocessing and
encoding included, per image encoder variant, one thread.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_index_build --export=DIR [--photos=100] [--threads=1]

The photos are JPEG files of the real photographs in tests/photos.py, full size and cropped (a different crop per
file, so that every file has its own content hash and is embedded), 300 to 1000 pixels a side like phone photos
scaled for a gallery. Each variant indexes a folder of 10 of them and one of 10 + N into new index files; the
difference of the two wall times is N photos' work without the JVM start, the export's checks and the model load
(both runs pay those), so throughput = N / (t(10 + N) - t(10)). Each pair runs twice and the faster counts, so that
other processes' load does not decide the figure.
"""

import argparse
import io
import json
import os
import tempfile
import time

from PIL import Image

from benchmarks.machine import cpu_model
from tests import jvm
from tests import photos

FULL_SIZE = ("astronaut", "coffee", "chelsea", "rocket", "hubble")


def write_photos(folder, count):
    """`count` JPEG files in `folder`: crops of the full-size photos, each cropped differently."""
    os.makedirs(folder)
    for index in range(count):
        pixels = photos.photo(FULL_SIZE[index % len(FULL_SIZE)])
        height, width = pixels.shape[:2]
        step = index // len(FULL_SIZE)
        crop = pixels[step % 7:height - step % 5, step % 11:width - step % 3]
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=90)
        with open(os.path.join(folder, f"photo_{index:04d}.jpg"), "wb") as file:
            file.write(buffer.getvalue())


def index_seconds(export, variant, threads, folder, index_path):
    start = time.perf_counter()
    result = jvm.run("index", "--export", export, "--variant", variant, "--threads", threads, "--index", index_path,
                     folder)
    seconds = time.perf_counter() - start
    summary = json.loads(result.stdout.decode("utf-8").strip().splitlines()[-1])
    return seconds, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=None, help="comma-separated (default: every image encoder shipped)")
    args = parser.parse_args()
    if not 1 <= args.photos <= 10_000 or not 1 <= args.threads <= 64:
        parser.error("--photos must be 1..10000 and --threads 1..64")
    with open(os.path.join(args.export, "manifest.json")) as file:
        manifest = json.load(file)
    shipped = [a["variant"] for a in manifest["artifacts"] if a["path"].startswith("tflite/image_encoder_")]
    variants = args.variants.split(",") if args.variants else shipped
    print(f"CPU: {cpu_model()}; export {manifest.get('name')} ({manifest.get('preset')}); {args.threads} thread(s)")
    jvm.run("tokenize", "--export", args.export, lines=[])  # builds the jar and the JNI library first, untimed
    with tempfile.TemporaryDirectory() as scratch:
        small, large = os.path.join(scratch, "small"), os.path.join(scratch, "large")
        write_photos(small, 10)
        write_photos(large, 10 + args.photos)
        print("| variant | photos/s | ms per photo | 10 photos, s | 10 + N photos, s |")
        print("|---|---:|---:|---:|---:|")
        for variant in variants:
            best = None
            for attempt in range(2):
                paths = [os.path.join(scratch, f"{variant}_{attempt}_{n}.clipidx") for n in ("small", "large")]
                base, _ = index_seconds(args.export, variant, args.threads, small, paths[0])
                total, summary = index_seconds(args.export, variant, args.threads, large, paths[1])
                if summary["added"] != 10 + args.photos:
                    raise SystemExit(f"{variant}: indexed {summary}, expected {10 + args.photos} photos added")
                if best is None or total - base < best[1] - best[0]:
                    best = (base, total)
            per_photo = (best[1] - best[0]) / args.photos
            print(f"| {variant} | {1 / per_photo:.1f} | {1e3 * per_photo:.1f} | {best[0]:.1f} | {best[1]:.1f} |")


if __name__ == "__main__":
    main()
