"""TFLite variants and int8 recipes, side by side: cosine to the float TF model on real photos and sentences,
model size, and CPU latency as a ratio to float32 (ai_edge_litert, XNNPACK, 2 threads, batch 1).

    python -m benchmarks.bench_tflite_variants --model=small
    python -m benchmarks.bench_tflite_variants --model=clip-vit-base-patch32   # random weights, ~15 min on 2 cores

Calibration uses crops of three photos and caption-like sentences; the cosines are measured on held-out
photos and sentences (tests/reference.py's SENTENCES) that calibration never saw. Random weights give
near-isotropic embeddings, which makes quantisation look worse than it would with trained weights.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

import clip_edge
from clip_edge.preprocessing import ImagePreprocessor
from converters import serving, tflite_variants
import photos
import reference

SMALL_CONFIG = dict(embed_dim=64, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16,
                    context_length=16, vocab_size=49408, transformer_width=64, transformer_heads=2,
                    transformer_layers=2)

CALIBRATION_SENTENCES = [
    "a photo of a dog", "a photo of a bird sitting on a branch", "a painting of a mountain lake at sunset",
    "a red car parked in front of a house", "a bowl of fruit on a wooden table", "people walking in a busy market",
    "a black and white photo of a bridge", "an aerial view of a city at night", "a child flying a kite on the beach",
    "a close-up of a flower with a bee", "a plate of pasta with tomato sauce", "a train crossing a snowy valley",
    "a satellite image of a river delta", "a cartoon of a smiling sun", "a person riding a bicycle in the rain",
    "two cats sleeping on a sofa", "a chart showing sales growth over five years", "the moon rising over the sea",
    "a handwritten note on yellow paper", "an empty classroom with wooden desks", "a laptop on a desk next to a mug",
    "a herd of elephants crossing a dry plain", "a lighthouse on a rocky coast", "fireworks over a harbour",
]
CALIBRATION_PHOTOS = ("astronaut", "coffee", "hubble")
HELD_OUT_PHOTOS = ("chelsea", "rocket", "small", "tiny")


def calibration_pixels(preprocessor, count, seed=0):
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        full = photos.photo(CALIBRATION_PHOTOS[i % len(CALIBRATION_PHOTOS)])
        height, width = full.shape[:2]
        size = int(rng.integers(min(height, width) // 3, min(height, width) + 1))
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        crops.append(preprocessor.resize_and_crop(full[top:top + size, left:left + size]).numpy()[None])
    return crops


def held_out_pixels(preprocessor):
    pixels = [preprocessor.resize_and_crop(photos.photo(name)).numpy()[None] for name in HELD_OUT_PHOTOS]
    return pixels + [p[:, :, ::-1] for p in pixels[:2]]  # mirrored copies: same content, new pixels


def latency_ms(tflite, example, repeats):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=2)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, example)
    interpreter.invoke()
    start = time.perf_counter()
    for _ in range(repeats):
        interpreter.invoke()
    return (time.perf_counter() - start) / repeats * 1000


def measure(tower, function, calibration, held_out, recipes, repeats):
    reference_embeddings = np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in held_out])
    rows = []
    variants = tflite_variants.convert_variants(function, ["float32", "float16", "dynamic_int8"])
    for recipe in recipes:
        variants[f"int8 ({recipe})"] = tflite_variants.convert_variants(
            function, ["int8"], tflite_variants.representative(calibration), int8_recipe=recipe)["int8"]
    base_latency = None
    for name, variant in variants.items():
        cosines = tflite_variants.cosine_rows(tflite_variants.run_tflite(variant.tflite, held_out),
                                              reference_embeddings)
        ms = latency_ms(variant.tflite, held_out[0], repeats)
        base_latency = base_latency or ms
        rows.append((tower, name, cosines.min(), cosines.mean(), len(variant.tflite) / 1e6, ms, ms / base_latency))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small", help="'small' or a preset name (random weights)")
    parser.add_argument("--recipes", default=",".join(tflite_variants.INT8_RECIPES))
    parser.add_argument("--calibration", type=int, default=24, help="calibration samples per tower")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    tf.random.set_seed(0)
    if args.model == "small":
        model = clip_edge.CLIP(**SMALL_CONFIG)
    else:
        model = clip_edge.CLIP.from_preset(args.model, load_weights=False)
    config = model.get_config()
    preprocessor = ImagePreprocessor(config["image_resolution"])
    length = config["context_length"]
    recipes = args.recipes.split(",")

    text_ids = reference.reference_token_ids(CALIBRATION_SENTENCES[:args.calibration], length)
    rows = measure("image", serving.tflite_image_encoder(model),
                   calibration_pixels(preprocessor, args.calibration), held_out_pixels(preprocessor), recipes,
                   args.repeats)
    rows += measure("text", serving.tflite_text_encoder(model), [r[None] for r in text_ids],
                    [r[None] for r in reference.reference_token_ids(reference.SENTENCES, length)], recipes,
                    args.repeats)
    print(f"\nmodel: {args.model} (random weights), held-out: {len(HELD_OUT_PHOTOS) + 2} photos, "
          f"{len(reference.SENTENCES)} sentences; calibration: {args.calibration} per tower\n")
    print("| tower | variant | min cosine | mean cosine | MB | ms | latency / float32 |")
    print("|---|---|---|---|---|---|---|")
    for tower, name, low, mean, size, ms, ratio in rows:
        print(f"| {tower} | {name} | {low:.5f} | {mean:.5f} | {size:.1f} | {ms:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
