"""The int8 float fallback's check on its first quarter of the photometric views against all of them
(converters.int8_fallback: QUICK_DEFICIT_SHARE decides when the first quarter is enough).

    python -m benchmarks.bench_fallback_views --family=797256658,1618895654 --count=2 --sizes=tiny,small

For each member of tests/stress_checkpoints.py's generated family (drawn from each --family seed), the image
tower as the exporter makes it for the shipped recipe (equalised, float32, then int8 everywhere: the recipe
without its fallback), and the min cosine of int8 to float32 on the exporter's calibration photos with the first
quarter of the views (photometric_views' first set) and with every view. One JSON line per member, then the
largest ratio of the two distances from 1 (every view over the first quarter), the figure QUICK_DEFICIT_SHARE's
comment relies on. Accuracy only: no timing.
"""

import argparse
import dataclasses
import json

from converters import datasets, int8_fallback, tflite_variants

from tests import stress_checkpoints

from .bench_int8_outliers import build_member, data, equalized_model, function_of

RECIPE = tflite_variants.RECOMMENDED_INT8_RECIPES["image_encoder"]


def measure(member, threads):
    model = build_member(member)
    calibration = data(model)["image"][0]
    recipe = tflite_variants.INT8_RECIPES[RECIPE]
    source = equalized_model(model, "image", calibration, recipe.equalization_alpha)
    float32 = tflite_variants.convert_variants(function_of(source, "image"), ["float32"])["float32"].tflite
    int8, _ = tflite_variants.quantize_with_ai_edge_quantizer(
        float32, dataclasses.replace(recipe, float_fallback=False),
        tflite_variants.representative([x[None] for x in calibration]), threads)
    # The check's first set as the exporter splits its own calibration crops (the fallback is off above).
    samples = {"serving_default": [{"pixels": x[None]} for x in calibration]}
    first, rest = int8_fallback.photometric_views(samples, datasets.CROPS_PER_PHOTO)
    quick = {key: samples[key] + first[key] for key in samples}
    every = {key: quick[key] + rest[key] for key in samples}

    def min_cosine(inputs):
        reference = int8_fallback.signature_outputs(float32, inputs, threads)
        return int8_fallback.min_cosine(reference, int8, inputs, threads)

    return min_cosine(quick), min_cosine(every)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, help="comma-separated seeds of generated families")
    parser.add_argument("--count", type=int, default=2, help="members per family (1 to 16)")
    parser.add_argument("--sizes", default="tiny,small", help="sizes to draw from: "
                        + ",".join(stress_checkpoints.FAMILY_SIZES))
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads (1 to 8)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.family.split(",") if seed]
    sizes = tuple(args.sizes.split(","))
    if not 1 <= args.count <= 16 or not 1 <= args.threads <= 8 or not 1 <= len(seeds) <= 64:
        parser.error("--count must be 1 to 16, --threads 1 to 8, --family 1 to 64 seeds")
    if not set(sizes) <= set(stress_checkpoints.FAMILY_SIZES):
        parser.error(f"--sizes: each of {sorted(stress_checkpoints.FAMILY_SIZES)}")
    ratios = []
    for seed in seeds:
        for member in stress_checkpoints.family(seed, args.count, sizes):
            quick, every = measure(member, args.threads)
            ratios.append((1 - every) / (1 - quick))
            print(json.dumps({"family": seed, "member": member.name, "first_quarter_min": round(quick, 5),
                              "every_view_min": round(every, 5), "ratio": round(ratios[-1], 3)}), flush=True)
    print(f"{len(ratios)} members; largest ratio of distances from 1 (every view / first quarter): {max(ratios):.3f}")


if __name__ == "__main__":
    main()
