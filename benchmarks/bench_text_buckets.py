"""Length-bucketed TFLite text encoders: file size of the multi-signature file against a 77-only conversion of
the same weights, and ai_edge_litert latency per signature for one short prompt (XNNPACK, batch 1).

    python -m benchmarks.bench_text_buckets --preset=clip-vit-base-patch32 --variants=float32,dynamic_int8
    python -m benchmarks.bench_text_buckets --preset=clip-vit-base-patch32 --saved_model

Random weights (latency and size do not depend on them). The prompt ("a photo of a cat", 7 tokens with start
and end) runs through every signature; its embedding must be the same in each (max abs difference printed).
--saved_model instead times the SavedModel's encode_text with the model's buckets and with text_buckets=()
(always 77), for the prompt alone and a batch of 8 short prompts.
"""

import argparse
import os
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


def _saved_model_latency(preset, repeats):
    import tempfile

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer's ops

    batches = {1: [PROMPT], 8: [PROMPT, "a photo of a dog", "a diagram", "two dogs playing in the snow"] * 2}
    print(f"{preset} SavedModel encode_text, TensorFlow intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}, median of {repeats}")
    print("| batch | buckets ms | always 77 ms |\n|---|---|---|")
    timings = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, buckets in (("buckets", None), ("77", ())):
            model = clip_edge.CLIP.from_preset(preset, load_weights=False)
            if buckets is not None:
                model.text_buckets = buckets
            serving.save_serving_model(model, os.path.join(folder, name))
            encode = tf.saved_model.load(os.path.join(folder, name)).signatures["encode_text"]
            for size, texts in batches.items():
                texts = tf.constant(texts)
                encode(texts=texts)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    encode(texts=texts)["embeddings"].numpy()
                    times.append(time.perf_counter() - start)
                timings[size, name] = 1e3 * statistics.median(times)
    for size in batches:
        print(f"| {size} | {timings[size, 'buckets']:.1f} | {timings[size, '77']:.1f} |")


def main():
    from ai_edge_litert.interpreter import Interpreter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--variants", default="float32,dynamic_int8")
    parser.add_argument("--buckets", default="16,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--saved_model", action="store_true", help="time the SavedModel's encode_text instead")
    args = parser.parse_args()
    if args.saved_model:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        _saved_model_latency(args.preset, min(args.repeats, 5))
        return
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
