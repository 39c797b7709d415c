"""The device index (docs/device_index.md): recall@10 of its float16 and int8 rows against exact float32 search,
and the time, peak memory and file size of converting a 100k-row Beam index. Run in the Beam virtualenv:

    .venv-beam/bin/python -m benchmarks.bench_device_index [--rows 100000] [--photos 1000] [--centroids 16 64 256]

Two sets of embeddings:

- synthetic clustered unit vectors: --rows in --clusters clusters (random unit centres, each point its centre
  plus Gaussian noise of norm --spread, normalised; points of one cluster have cosine about 1 / (1 + spread^2)),
  queries drawn the same way. Written as a Beam index (Parquet shards of 50,000 rows and a summary, as
  embed_images writes them, with a manifest.json that names a tflite:dynamic_int8 image encoder: the converter
  reads only the manifest of an export), converted by `python -m clip_edge.beam.device_index` in a subprocess
  (wall time, peak RSS) and by clip_edge.beam.device_index.convert in this process (the conversion alone), and
  searched through clip_edge.device_index.read.
- real photos: random crops (10 to 100 % of each side), flips and the odd sizes of tests/photos.py's photographs,
  embedded by a clip-vit-base-patch32 with random weights (clip_edge.CLIP.from_preset(load_weights=False), seeded
  with --seed): no trained weights are available here, so these are embeddings of real pixels by an untrained
  model, not CLIP's geometry; queries are other crops. Quantised with clip_edge.device_index.quantize, as the
  converter does.

Recall@10: the share of the exact top 10 (float32 brute force over the float32 embeddings) found in the top 10
by the device index's own scores (float32 dot products of its float16 rows, or mean . query + scale x dot of its
int8 rows, the rows being codes of their difference from the index's mean).

--centroids K...: also the recall@10 of an int8 coding the format does not have (an experiment, recorded in
docs/benchmarks.md): residuals to K k-means centroids instead of to the one mean. Each row stores its nearest
centroid c and int8 codes of d = e - c with a scale per row (clip_edge.device_index.quantize's rule, against c),
scored as q . c + s x (q . codes); K = 1 with the mean as its centroid is the format's coding. It also prints the
bytes such a file of the same rows would add (K float32 centroids, a 16-bit centroid id per row).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.machine import cpu_model

K = 10
# Runs module argv... as `python -m` does, then prints the process's VmHWM (peak RSS, kB) as its last stderr line.
# Not getrusage(RUSAGE_CHILDREN): Linux counts in a child's ru_maxrss the pages of this process, which the child
# shares between fork and exec (gigabytes here, after the exact search).
PEAK_RSS = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).strip(), file=sys.stderr)
"""


def unit(vectors):
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def clustered(centres, count, spread, rng):
    """count unit vectors, each a random centre plus Gaussian noise of norm about `spread`, normalised."""
    points = centres[rng.integers(0, len(centres), count)]
    return unit(points + rng.normal(scale=spread / np.sqrt(centres.shape[1]), size=points.shape))


def photo_crops(count, rng):
    """count uint8 [H, W, 3] crops of tests/photos.py's photographs."""
    from tests import photos

    sources = list(photos.sample_photos().values())
    crops = []
    for _ in range(count):
        pixels = sources[rng.integers(len(sources))]
        height, width = pixels.shape[:2]
        h, w = max(1, int(height * rng.uniform(0.1, 1))), max(1, int(width * rng.uniform(0.1, 1)))
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        crop = pixels[top:top + h, left:left + w]
        crops.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return crops


def photo_embeddings(count, rng, seed, batch=32):
    """count crops' embeddings by a model whose random weights are drawn from `seed` (Keras's global seed): the
    same embeddings in every run."""
    import keras

    import clip_edge

    keras.utils.set_random_seed(seed)
    model = clip_edge.CLIP.from_preset("clip-vit-base-patch32", load_weights=False)
    processor = clip_edge.CLIPProcessor.from_preset("clip-vit-base-patch32")
    crops = photo_crops(count, rng)
    embeddings = []
    for start in range(0, count, batch):
        embeddings.append(model.encode_images(processor.process_images(crops[start:start + batch])).numpy())
    return unit(np.concatenate(embeddings))


def exact_top(database, queries):
    """float32 brute force: the top-K row indices per query."""
    scores = queries @ database.T
    return np.argpartition(-scores, K - 1, axis=1)[:, :K]


def recall(device, queries, exact):
    """Mean recall@K of a clip_edge.device_index.DeviceIndex's own scores against `exact` (row order = id
    order)."""
    rows = device.rows.astype(np.float32)  # all at once: 100k x 512 float32 is 200 MB
    if device.scales is None:
        return recall_of_codes(rows, None, None, None, queries, exact)
    return recall_of_codes(rows, device.scales, device.mean[None], np.zeros(len(rows), np.intp), queries, exact)


def recall_of_codes(rows, scales, centroids, nearest, queries, exact, block=100):
    """Mean recall@K against `exact` of the scores q . centroids[nearest] + scales x (q . rows), float32 [N, D]
    rows (float16 rows: scales and centroids None)."""
    found = 0
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ rows.T
        if scales is not None:
            scores *= scales
            scores += (queries[start:start + block] @ centroids.T)[:, nearest]
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        found += sum(len(set(a) & set(b)) for a, b in zip(top, exact[start:start + block]))
    return found / (K * len(queries))


def nearest_centroid(rows, centroids, block=16384):
    """Each row's nearest centroid (squared Euclidean distance), its index."""
    norms = np.einsum("ij,ij->i", centroids, centroids)
    return np.concatenate([np.argmin(norms - 2 * rows[start:start + block] @ centroids.T, axis=1)
                           for start in range(0, len(rows), block)])


def kmeans(rows, k, seed, iterations=8):
    """k centroids of float32 rows by Lloyd's algorithm, started from k distinct rows drawn with `seed`; a
    centroid left without rows keeps its place. Returns (centroids float32 [k, D], each row's nearest)."""
    centroids = rows[np.random.default_rng(seed).choice(len(rows), k, replace=False)].astype(np.float64)
    for _ in range(iterations):
        nearest = nearest_centroid(rows, centroids.astype(np.float32))
        order = np.argsort(nearest, kind="stable")
        members, starts = np.unique(nearest[order], return_index=True)
        sums = np.add.reduceat(rows[order].astype(np.float64), starts, axis=0)
        centroids[members] = sums / np.diff(np.append(starts, len(rows)))[:, None]
    centroids = centroids.astype(np.float32)
    return centroids, nearest_centroid(rows, centroids)


def residual_recalls(database, queries, exact, ks, seed):
    """Prints, for each k, the recall@K of int8 codes of the rows' residuals to k k-means centroids (k = 1: the
    format's mean), the residuals' mean norm and the bytes the centroids and ids would add to the file."""
    from clip_edge import device_index

    for k in ks:
        if k > len(database):
            print(f"int8, residuals to {k} centroids: more centroids than the {len(database)} rows, skipped")
            continue
        if k == 1:
            centroids, nearest = device_index.mean(database)[None], np.zeros(len(database), np.intp)
        else:
            centroids, nearest = kmeans(database, k, seed)
        residuals = database - centroids[nearest]
        codes, scales, _ = device_index.quantize(residuals, "int8", np.zeros(database.shape[1], np.float32))
        found = recall_of_codes(codes.astype(np.float32), scales, centroids, nearest, queries, exact)
        extra = 4 * k * database.shape[1] + 2 * len(database) if k > 1 else 0
        print(f"int8, residuals to {k} centroid{'s' if k > 1 else ''}: recall@{K} {found:.4f}; residual norm, mean "
              f"{float(np.mean(np.linalg.norm(residuals, axis=1))):.3f}; {extra:,} bytes more than the format's "
              f"int8 file", flush=True)


def neighbour_gaps(database, queries, exact):
    """Median cosine of the 10th neighbour and median gap between the 10th and 11th: how tight the top 10 is."""
    scores = np.sort(queries @ database.T, axis=1)[:, ::-1]
    return float(np.median(scores[:, K - 1])), float(np.median(scores[:, K - 1] - scores[:, K]))


def write_beam_index(folder, embeddings, rows_per_shard=50_000):
    """A Beam index of `embeddings` (PREFIX-SSSSS-of-NNNNN.parquet, PREFIX-summary.json) and an export folder
    whose manifest.json names a tflite:dynamic_int8 image encoder; returns (prefix, export folder)."""
    from clip_edge.beam import index
    from clip_edge.beam.export_reader import Export

    export_dir = os.path.join(folder, "export")
    os.makedirs(export_dir)
    artifacts = [{"path": path, "sha256": hashlib.sha256(path.encode()).hexdigest(), "bytes": 1}
                 for path in ("saved_model/saved_model.pb", "tflite/image_encoder_dynamic_int8.tflite")]
    with open(os.path.join(export_dir, "manifest.json"), "w") as file:
        json.dump({"name": "synthetic", "config": {"embed_dim": embeddings.shape[1], "image_resolution": 224},
                   "weights": {"description": "synthetic"}, "artifacts": artifacts}, file)
    export = Export(export_dir)
    prefix = os.path.join(folder, "index")
    count = index.shard_count(len(embeddings), rows_per_shard)
    shards = [[] for _ in range(count)]
    for number, embedding in enumerate(embeddings):
        path = f"photos/{number:07d}.jpg"
        shards[index.shard_of(path, count)].append((path, hashlib.sha256(path.encode()).hexdigest(), embedding))
    listed = []
    for shard, rows in enumerate(shards):
        rows.sort(key=lambda row: row[0])
        listed.append({"path": index.shard_name(prefix, shard, count), "rows": len(rows)})
        index.write_shard(listed[-1]["path"], rows, embeddings.shape[1])
    summary = {"count": len(embeddings), "failures": 0, "input": "photos/*.jpg", "dimensions": embeddings.shape[1],
               "export": export.describe(), "model": export.describe_model("tflite:dynamic_int8"),
               "shards": listed, "dead_letters": prefix + index.DEAD_LETTERS_SUFFIX}
    with open(prefix + index.SUMMARY_SUFFIX, "w") as file:
        json.dump(summary, file)
    return prefix, export_dir


def synthetic(args, folder):
    from clip_edge import device_index
    from clip_edge.beam import device_index as converter

    rng = np.random.default_rng(args.seed)
    for spread in args.spreads:
        centres = unit(rng.normal(size=(args.clusters, args.dimension)))
        embeddings, queries = clustered(centres, args.rows, spread, rng), clustered(centres, args.queries, spread, rng)
        exact = exact_top(embeddings, queries)
        tenth, gap = neighbour_gaps(embeddings, queries, exact)
        run = os.path.join(folder, f"spread{spread}")
        os.makedirs(run)
        prefix, export_dir = write_beam_index(run, embeddings)
        print(f"\n== synthetic: {args.rows} x {args.dimension}, {args.clusters} clusters, spread {spread} "
              f"(10th neighbour's cosine, median {tenth:.3f}; gap to the 11th {gap:.4f}), {args.queries} queries")
        residual_recalls(embeddings, queries, exact, args.centroids, args.seed)
        for dtype in ("int8", "float16"):
            output = os.path.join(run, f"{dtype}.clipidx")
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", PEAK_RSS, "clip_edge.beam.device_index", "--index", prefix,
                                     "--export", export_dir, "--output", output, "--dtype", dtype],
                                    capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            wall = time.perf_counter() - started
            if result.returncode != 0:
                sys.exit(f"device_index --dtype {dtype} failed:\n{result.stderr[-3000:]}")
            peak = int(result.stderr.strip().splitlines()[-1].split()[1]) / 1024
            started = time.perf_counter()
            converter.convert(prefix, export_dir, output, dtype)
            alone = time.perf_counter() - started
            started = time.perf_counter()
            device = device_index.read(output)
            read = time.perf_counter() - started
            print(f"{dtype}: recall@{K} {recall(device, queries, exact):.4f}; file {os.path.getsize(output):,} bytes; "
                  f"conversion {alone:.1f} s in-process ({wall:.1f} s as a command, imports included, peak RSS "
                  f"{peak:.0f} MB); read and checked in {read:.2f} s")


def real_photos(args):
    from clip_edge import device_index

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    embeddings = photo_embeddings(args.photos + args.photo_queries, rng, args.seed)
    seconds = time.perf_counter() - started
    database, queries = embeddings[:args.photos], embeddings[args.photos:]
    exact = exact_top(database, queries)
    tenth, gap = neighbour_gaps(database, queries, exact)
    print(f"\n== real photos: {args.photos} crops embedded by a random-weight clip-vit-base-patch32 ({seconds:.0f} s), "
          f"{args.photo_queries} other crops as queries (10th neighbour's cosine, median {tenth:.4f}; gap to the "
          f"11th {gap:.5f}; mean cosine between crops {float(np.mean(database @ database.T)):.3f})")
    residual_recalls(database, queries, exact, args.centroids, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_device_index_") as folder:
        for dtype in ("int8", "float16"):
            quantized = device_index.quantize(database, dtype)
            path = os.path.join(folder, f"{dtype}.clipidx")
            ids, hashes = [f"{i:07d}" for i in range(len(database))], np.zeros([len(database), 16], np.uint8)
            device_index.write(path, ids, hashes, *quantized, image_encoder_sha256="0" * 64,
                               variant="dynamic_int8", export_name="random")
            print(f"{dtype}: recall@{K} {recall(device_index.read(path), queries, exact):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spreads", type=float, nargs="+", default=[0.5, 1.0],
                        help="noise norm around each centre (cluster cosine about 1 / (1 + spread^2))")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=1000, help="photo crops in the database (0: skip photos)")
    parser.add_argument("--photo_queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--centroids", type=int, nargs="*", default=[],
                        help="also int8 residuals to this many k-means centroids (an experiment; 1: the mean)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    with tempfile.TemporaryDirectory(prefix="bench_device_index_") as folder:
        synthetic(args, folder)
    if args.photos:
        real_photos(args)


if __name__ == "__main__":
    main()
