"""Length-bucketed TFLite text encoders: file size of the multi-signature file against a 77-only conversion of
the same weights, and ai_edge_litert latency per signature for one short prompt (XNNPACK, batch 1).

    python -m benchmarks.bench_text_buckets --preset=clip-vit-base-patch32 --variants=float32,dynamic_int8

Random weights (latency and size do not depend on them). The prompt ("a photo of a cat", 7 tokens with start
and end) runs through every signature; its embedding must be the same in each (max abs difference printed).
"""

import argparse
import statistics
import time

import numpy as np

import clip_edge
from converters import serving, tflite_variants
from tests import reference

PROMPT = "a photo of a cat"


def _latency_ms(runner, token_ids, repeats):
    runner(token_ids=token_ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(token_ids=token_ids)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    from ai_edge_litert.interpreter import Interpreter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--variants", default="float32,dynamic_int8")
    parser.add_argument("--buckets", default="16,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    model = clip_edge.CLIP.from_preset(args.preset, load_weights=False)
    context = model.get_config()["context_length"]
    lengths = clip_edge.model.text_buckets(context, [int(n) for n in args.buckets.split(",")])
    variants = args.variants.split(",")
    calibration = [reference.reference_token_ids(reference.SENTENCES[:8], n) for n in lengths]
    functions = serving.tflite_text_encoders(model, lengths)
    datasets = {key: tflite_variants.representative([r[None] for r in ids])
                for key, ids in zip(functions, [calibration[-1]] + calibration[:-1])}
    multi = tflite_variants.convert_variants(functions, variants, datasets,
                                             tflite_variants.RECOMMENDED_INT8_RECIPES["text_encoder"])
    single = tflite_variants.convert_variants(functions["serving_default"], variants,
                                              datasets["serving_default"],
                                              tflite_variants.RECOMMENDED_INT8_RECIPES["text_encoder"])
    ids = reference.reference_token_ids([PROMPT])
    print(f"{args.preset}, prompt {PROMPT!r} ({int((ids != 0).sum())} tokens), {args.threads} threads, "
          f"median of {args.repeats}")
    print("| variant | 77-only bytes | multi-signature bytes | ratio | signature | length | latency ms | "
          "max abs diff vs 77 |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        interpreter = Interpreter(model_content=multi[variant].tflite, num_threads=args.threads)
        full = interpreter.get_signature_runner("serving_default")(token_ids=ids)["embedding"]
        for key, function in functions.items():
            length = int(function.structured_input_signature[0][0].shape[1])
            runner = interpreter.get_signature_runner(key)
            found = runner(token_ids=ids[:, :length])["embedding"]
            print(f"| {variant} | {len(single[variant].tflite):,} | {len(multi[variant].tflite):,} | "
                  f"{len(multi[variant].tflite) / len(single[variant].tflite):.4f} | {key} | {length} | "
                  f"{_latency_ms(runner, ids[:, :length], args.repeats):.2f} | {np.abs(found - full).max():.1e} |")


if __name__ == "__main__":
    main()
