"""TFLite variants and int8 recipes, side by side: cosine to the float TF model on the exporter's held-out data,
model size, and CPU latency as a ratio to float32 (ai_edge_litert, XNNPACK, batch 1).

    python -m benchmarks.bench_tflite_variants --model=small
    python -m benchmarks.bench_tflite_variants --model=clip-vit-base-patch32 --repeats=5   # random weights

Data and conversions are the exporter's, as in benchmarks/bench_int8_outliers.py (whose helpers this uses):
calibration and held-out data from converters.datasets (24 crops of six photos and 64 documentation sentences;
32 crops of eight other photos and 22 prompts and captions), tokenised by clip_edge's tokenizer as an export
does; `eq_*` recipes and `eq_dynamic_int8` convert the equalised model as converters.export does. The cosine is
the parity harness's (converters.parity): per embedding against the float model, min and mean over the held-out
set. Latency: median of --repeats invokes per model, the models of a tower taking turns invoke by invoke, at each
of the --threads counts (a row per count, the same models). Random weights give near-isotropic embeddings, which
makes quantisation look worse than it would with trained weights.
"""

import argparse

import numpy as np
import tensorflow as tf

import clip_edge
from converters import datasets, parity, tflite_variants

from benchmarks.bench_int8_outliers import convert, data, function_of, latencies_ms
from benchmarks.machine import cpu_model

SMALL_CONFIG = dict(embed_dim=64, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16,
                    context_length=16, vocab_size=49408, transformer_width=64, transformer_heads=2,
                    transformer_layers=2)
# The converter's variants besides float32 (eq_dynamic_int8: dynamic_int8 of the equalised model, what
# converters.export ships), then every int8 recipe.
DEFAULT_RECIPES = ("float16", "dynamic_int8", "eq_dynamic_int8", *tflite_variants.INT8_RECIPES)


def measure(model, tower, calibration, held_out, recipes, threads, repeats):
    """[(tower, recipe, threads, min cosine, mean cosine, MB, ms, ms / float32 ms)], float32 first, a row per
    recipe and thread count (the same converted models at each count)."""
    held_out = [x[None] for x in held_out]
    function = function_of(model, tower)
    float_embeddings = np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in held_out])
    models = {"float32": convert(model, tower, "float32", calibration, None)}
    models.update((recipe, convert(model, tower, recipe, calibration, None)) for recipe in recipes)
    cosines = {recipe: parity.cosine_rows(tflite_variants.run_tflite(tflite, held_out, threads[0]), float_embeddings)
               for recipe, tflite in models.items()}
    rows = []
    for count in threads:
        milliseconds = latencies_ms(models, held_out[0], count, repeats)
        rows += [(tower, recipe, count, cosines[recipe].min(), cosines[recipe].mean(), len(tflite) / 1e6,
                  milliseconds[recipe], milliseconds[recipe] / milliseconds["float32"])
                 for recipe, tflite in models.items()]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small", help="'small' or a preset name (random weights)")
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                        help="float16, dynamic_int8, eq_dynamic_int8 and names of tflite_variants.INT8_RECIPES")
    parser.add_argument("--towers", default="image,text")
    parser.add_argument("--threads", default="2", help="thread counts, comma-separated: 1,2")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    try:
        threads = [int(count) for count in args.threads.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1 or max(threads) > 256:
        parser.error(f"--threads: comma-separated counts from 1 to 256, got {args.threads!r}")

    tf.random.set_seed(0)
    if args.model == "small":
        model = clip_edge.CLIP(**SMALL_CONFIG)
    else:
        model = clip_edge.CLIP.from_preset(args.model, load_weights=False)
    inputs = data(model)
    rows = []
    for tower in args.towers.split(","):
        calibration, held_out = inputs[tower]
        rows += measure(model, tower, calibration, held_out, args.recipes.split(","), threads, args.repeats)
    print(f"\nmodel: {args.model} (random weights); held-out: {len(inputs['image'][1])} crops of "
          f"{len(datasets.HELD_OUT_PHOTOS)} photos, {len(inputs['text'][1])} sentences; calibration: "
          f"{len(inputs['image'][0])} crops, {len(inputs['text'][0])} sentences; median of {args.repeats} invokes; "
          f"{cpu_model()}\n")
    print("| tower | variant | threads | min cosine | mean cosine | MB | ms | latency / float32 |")
    print("|---|---|---|---|---|---|---|---|")
    for tower, name, count, low, mean, size, ms, ratio in rows:
        print(f"| {tower} | {name} | {count} | {low:.5f} | {mean:.5f} | {size:.1f} | {ms:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
