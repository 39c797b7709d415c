"""The parity harness's float reference on an export: the SavedModel's image encoder (encode_pixels) on the
held-out crops, with TensorFlow's graph optimiser off (as converters.parity.FloatReference runs every signature,
parity._graph_rewrites_off) or on, each in a fresh process.

    python -m benchmarks.bench_parity_reference --export_dir=out/clip-vit-base-patch32 --rounds=3

Prints, per setting and round, the SavedModel's load and the held-out crops' first encode (the optimiser's
rewrite included, as the harness pays it), in seconds; the settings take turns.
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import contextlib, json, sys, time
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops before loading
from converters import datasets, parity

export_dir, rewrites = sys.argv[1], sys.argv[2] == "on"
with open(export_dir + "/manifest.json") as file:
    resolution = json.load(file)["contract"]["image"]["resolution"]
pixels = datasets.builtin_images(datasets.HELD_OUT_PHOTOS, resolution)
start = time.perf_counter()
model = tf.saved_model.load(export_dir + "/saved_model")
loaded = time.perf_counter()
with contextlib.nullcontext() if rewrites else parity._graph_rewrites_off():
    parity.embed_pixels(model, pixels)
print(json.dumps({"load_s": loaded - start, "encode_s": time.perf_counter() - loaded, "crops": len(pixels)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--rounds", type=int, default=3, help="1 to 20")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    if not os.path.isfile(os.path.join(args.export_dir, "manifest.json")):
        parser.error(f"{args.export_dir}: no manifest.json (not an export)")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")  # as the exporter runs it
    for round_ in range(args.rounds):
        for setting in ("on", "off"):
            out = subprocess.run([sys.executable, "-c", CHILD, args.export_dir, setting], cwd=repo, env=env,
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"round {round_ + 1}, optimiser {setting}: load {result['load_s']:.1f} s, "
                  f"{result['crops']} crops {result['encode_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
