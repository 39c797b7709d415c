"""Nearest images in an index written by clip_edge.beam.embed_images, by brute force.

    python -m clip_edge.beam.search --index PREFIX --export DIR "a photo of a dog" [--top_k 10]
    python -m clip_edge.beam.search --index PREFIX --export DIR --image query.jpg
    python -m clip_edge.beam.search --index PREFIX --export DIR "a dog" "a cat" --image query.jpg

Embeds the query with the model the index was built with (its summary's "model"; --model chooses another):
the export's own encode_text (or encode_image) signature for a saved_model index, the export's
tflite/text_encoder_VARIANT.tflite over the SavedModel's `tokenize` (or, for --image, the TFLite image path of
clip_edge.beam.tflite) for a tflite:VARIANT one, after checking that the export is the one the index was built
with and, for a TFLite index, that its image encoder is the file the index was built with. Then it streams the
Parquet shards in chunks of --chunk_rows rows and keeps the best k: memory is one chunk plus k rows, time is
linear in the index (docs/beam.md says where a vector index should take over). Prints one line per result, best
first: the cosine score, a tab, the path. Equal scores are ordered by path.

Several queries (texts, then --image files, each in the order given) are embedded with one load of the model and
scored in one pass over the shards; each query's results then follow a line naming it, `# text "..."` or
`# image "..."` (JSON-quoted, so that the line is one line whatever the query holds).
"""

import argparse
import json
import sys

import numpy as np
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clip_edge.beam import index, tflite
from clip_edge.beam.export_reader import Export, ExportReadError, parse_model, tflite_path

MAX_QUERY_IMAGE_BYTES = 100_000_000


def top_k(chunks, query, k):
    """chunks: iterable of (paths, float32 [n, D]); query float32 [D] -> [(score, path)] best first."""
    return top_k_each(chunks, [query], k)[0]


def top_k_each(chunks, queries, k):
    """top_k for each of `queries` in one pass over `chunks` -> one [(score, path)] list per query. Each query's
    scores are its own matrix-vector product, as in a search for it alone (a matrix product over all the queries
    could round them otherwise)."""
    best = [(np.zeros([0], np.float32), []) for _ in queries]
    for paths, embeddings in chunks:
        paths = list(paths)
        for number, query in enumerate(queries):
            best_scores, best_paths = best[number]
            scores = np.concatenate([best_scores, embeddings @ query])
            candidates = best_paths + paths
            if len(scores) > k:
                keep = np.argpartition(-scores, k - 1)[:k]
                scores, candidates = scores[keep], [candidates[i] for i in keep]
            best[number] = (scores, candidates)
    return [sorted(zip(scores.tolist(), paths), key=lambda result: (-result[0], result[1])) for scores, paths in best]


class QueryEncoder:
    """Embeds queries with --model `model` ("saved_model" or "tflite:VARIANT"): float32 [D] per query. The
    SavedModel and each TFLite encoder are loaded at most once, on first use, for all the queries of a run
    (loading a SavedModel and the first call of each signature cost seconds even for a small model)."""

    def __init__(self, export, model):
        self._export = export
        self._kind, self._variant = parse_model(model)
        self._loaded = {}

    def _once(self, name, load):
        if name not in self._loaded:
            self._loaded[name] = load()
        return self._loaded[name]

    def _tflite_encoder(self, tower):
        export = self._export
        return self._once(f"{tower}_encoder", lambda: tflite.Encoder(
            export.read_verified(export.tflite_entry(tower, self._variant))))

    def text(self, text):
        import tensorflow as tf

        saved_model = self._once("saved_model", self._export.load)
        if self._kind == "saved_model":
            return saved_model.signatures["encode_text"](texts=tf.constant([text]))["embeddings"].numpy()[0]
        token_ids = saved_model.signatures["tokenize"](texts=tf.constant([text]))["token_ids"].numpy()
        encoder = self._tflite_encoder("text")
        if encoder.input_shape != (1, token_ids.shape[1]):
            raise ExportReadError(f"{self._export.dir}/{tflite_path('text', self._variant)}: input "
                                  f"{list(encoder.input_shape)}, but the SavedModel's tokenize gives "
                                  f"{token_ids.shape[1]} token ids")
        return encoder(token_ids[0])

    def image(self, image_path):
        import tensorflow as tf

        from clip_edge.beam.pipeline import failure_reason

        with FileSystems.open(image_path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
            data = file.read(MAX_QUERY_IMAGE_BYTES + 1)
        if len(data) > MAX_QUERY_IMAGE_BYTES:
            raise ValueError(f"{image_path}: larger than {MAX_QUERY_IMAGE_BYTES} bytes")
        try:
            if self._kind == "saved_model":
                saved_model = self._once("saved_model", self._export.load)
                return saved_model.signatures["encode_image"](images=tf.constant([data]))["embeddings"].numpy()[0]
            encoder = self._tflite_encoder("image")
            decoder = self._once("pixel_decoder", lambda: tflite.PixelDecoder(self._export.resolution))
            return encoder(decoder([data])[0])
        except tf.errors.OpError as error:
            raise ValueError(f"{image_path}: {failure_reason(error)}") from None


def check_built_with(summary, export, index_prefix):
    """ExportReadError unless `export` is the export the index was built with, and, for a TFLite index, its image
    encoder file is the one the index was built with (the summary's sha256 equals the manifest's)."""
    built_with = summary["export"]
    where = f"{index_prefix}{index.SUMMARY_SUFFIX}"
    if built_with["saved_model_sha256"] != export.saved_model_sha256:
        raise ExportReadError(f"{where} was built with export {built_with['name']!r} "
                          f"(saved_model sha256 {built_with['saved_model_sha256']}), but --export "
                          f"{export.dir} is {export.name!r} (saved_model sha256 {export.saved_model_sha256})")
    model = index.model_of(summary)
    if model["model"] == "tflite":
        path = tflite_path("image", model["variant"])
        try:
            current = export.tflite_entry("image", model["variant"])["sha256"]
        except ExportReadError as error:
            raise ExportReadError(f"{where} was built with {path} (sha256 {model['sha256']}), but {error}") from None
        if current != model["sha256"]:
            raise ExportReadError(f"{where} was built with {path} of sha256 {model['sha256']}, but --export "
                              f"{export.dir} has {path} of sha256 {current}: another model")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m clip_edge.beam.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("query", nargs="*", metavar="TEXT", help="a text to search for (several: one search each)")
    parser.add_argument("--image", action="append", default=[], metavar="PATH",
                        help="search with this image (repeat it for several; after the texts, in this order)")
    parser.add_argument("--index", required=True, help="the --output PREFIX of clip_edge.beam.embed_images")
    parser.add_argument("--export", required=True, help="the export folder the index was built with")
    parser.add_argument("--model", help="the query's model, saved_model or tflite:VARIANT (default: the one the "
                                        "index was built with, as its summary says)")
    parser.add_argument("--top_k", type=int, default=10, help="results per query")
    parser.add_argument("--chunk_rows", type=int, default=65_536, help="rows scored at a time")
    args = parser.parse_args(argv)
    if not args.query and not args.image:
        parser.error("give a query text or --image PATH (or several)")
    if args.top_k <= 0 or args.chunk_rows <= 0:
        parser.error("--top_k and --chunk_rows must be positive")
    if args.model is not None:
        try:
            parse_model(args.model)
        except ValueError as error:
            parser.error(str(error))
    if args.image:
        from clip_edge.beam.pipeline import not_a_regular_file

        for image in args.image:
            problem = not_a_regular_file(image)  # before anything opens it: a FIFO would block the search
            if problem:
                print(f"error: --image {image}: {problem}", file=sys.stderr)
                return 1
    queries = [("text", text) for text in args.query] + [("image", image) for image in args.image]
    try:
        summary = index.read_summary(args.index)
        export = Export(args.export)
        check_built_with(summary, export, args.index)
        encoder = QueryEncoder(export, args.model or index.model_flag(index.model_of(summary)))
        # Every query is embedded before a shard is read: a query that fails does so before the long part.
        embeddings = [encoder.text(value) if kind == "text" else encoder.image(value) for kind, value in queries]
        results = top_k_each(index.iter_chunks(summary, args.chunk_rows), embeddings, args.top_k)
    except (ExportReadError, index.IndexFileError, ValueError, OSError, BeamIOError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for (kind, value), found in zip(queries, results):
        if len(queries) > 1:
            print(f"# {kind} {json.dumps(value, ensure_ascii=False)}")
        for score, path in found:
            print(f"{score:.6f}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
