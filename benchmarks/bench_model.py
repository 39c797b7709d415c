"""clip_edge.CLIP vs transformers' PyTorch CLIP: encode_images / encode_text latency, same weights, same run.

    .venv/bin/python -m benchmarks.bench_model [--preset=clip-vit-base-patch32] [--repeats=20]

Both models are loaded from one random-weight checkpoint written by transformers' save_pretrained. Runs of
the two frameworks are interleaved so that load from other processes hits both alike. Reports the median
latency, the ratio ours / PyTorch, and achieved GFLOP/s against this machine's float32 matmul peak, measured
in the same run.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
import torch

import clip_edge
from clip_edge import presets

from tests import reference


def transformer_flops(width, length, layers):
    # qkv + output projections 8LW^2, MLP 16LW^2, scores and weighted sum 4L^2W; 2 FLOPs per multiply-add.
    return layers * (24 * length * width**2 + 4 * length**2 * width)


def image_flops(config):
    grid = config["image_resolution"] // config["vision_patch_size"]
    patch_embedding = 2 * grid**2 * 3 * config["vision_patch_size"] ** 2 * config["vision_width"]
    return patch_embedding + transformer_flops(config["vision_width"], grid**2 + 1, config["vision_layers"])


def text_flops(config):
    return transformer_flops(config["transformer_width"], config["context_length"], config["transformer_layers"])


def matmul_peak_gflops(repeats=10):
    """Best float32 GEMM rate this machine reaches: TensorFlow's (oneDNN), numpy's and torch's matmul at a
    few square sizes, best of `repeats`; the highest is the peak the models are compared with."""
    rates = {}
    for size in (1024, 2048, 4096):
        a = np.random.default_rng(0).random((size, size), dtype=np.float32)
        tf_a = tf.constant(a)
        tf_matmul = tf.function(lambda: tf.matmul(tf_a, tf_a))
        torch_a = torch.from_numpy(a)
        for name, run in (("tf.matmul", lambda: tf_matmul().numpy()), ("numpy", lambda: a @ a),
                          ("torch", lambda: torch_a @ torch_a)):
            run()
            best = min(_seconds(run) for _ in range(repeats))
            rates[f"{name} {size}"] = 2 * size**3 / best / 1e9
    return max(rates.values()), rates


def _seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run, repeats):
    run()  # warm-up: tracing, compilation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = presets.get_preset(args.preset)["config"]
    resolution = config["image_resolution"]
    torch.set_num_threads(os.cpu_count())

    hf_config = reference.hf_clip_config(
        config["vision_width"], config["vision_layers"], config["vision_width"] // 64, config["vision_patch_size"],
        resolution, config["transformer_width"], config["transformer_layers"], config["transformer_heads"],
        config["embed_dim"])
    hf_model = reference.random_hf_clip(hf_config)
    with tempfile.TemporaryDirectory() as folder:
        hf_model.save_pretrained(folder)
        ours = clip_edge.CLIP.from_preset(args.preset, weights=folder)

    peak, peak_rates = matmul_peak_gflops()
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 8):
        images = rng.normal(size=(batch, resolution, resolution, 3)).astype(np.float32)
        ids = reference.reference_token_ids((reference.SENTENCES * 8)[:batch])
        torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        torch_ids = torch.from_numpy(ids.astype(np.int64))
        for tower, flops, ours_fn, theirs_fn, arg, torch_arg in (
                ("encode_images", image_flops(config), ours.encode_images,
                 lambda x: hf_model.get_image_features(pixel_values=x), images, torch_images),
                ("encode_text", text_flops(config), ours.encode_text,
                 lambda x: hf_model.get_text_features(input_ids=x), ids, torch_ids)):
            arg = tf.constant(arg)
            variants = {
                "tf.function": tf.function(ours_fn),
                "tf.function(jit_compile=True)": tf.function(ours_fn, jit_compile=True),
            }
            with torch.inference_mode():
                torch_seconds = median_seconds(lambda: theirs_fn(torch_arg), args.repeats)
            for name, fn in variants.items():
                seconds = median_seconds(lambda: fn(arg).numpy(), args.repeats)
                gflops = batch * flops / seconds / 1e9
                rows.append((tower, batch, name, seconds * 1e3, torch_seconds * 1e3, seconds / torch_seconds,
                             gflops, gflops / peak))

    print(f"preset {args.preset}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, float32 "
          f"matmul peak {peak:.0f} GFLOP/s ({', '.join(f'{k}: {v:.0f}' for k, v in peak_rates.items())}), "
          f"image {image_flops(config) / 1e9:.2f} GFLOP, text {text_flops(config) / 1e9:.2f} "
          f"GFLOP per item, median of {args.repeats}")
    print("| tower | batch | clip_edge | ms | PyTorch ms | ratio | GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for tower, batch, name, ms, torch_ms, ratio, gflops, share in rows:
        print(f"| {tower} | {batch} | {name} | {ms:.1f} | {torch_ms:.1f} | {ratio:.2f}x | {gflops:.0f} | "
              f"{share:.0%} |")


if __name__ == "__main__":
    main()
