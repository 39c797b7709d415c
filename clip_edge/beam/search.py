"""Nearest images in an index written by clip_edge.beam.embed_images, by brute force.

    python -m clip_edge.beam.search --index PREFIX --export DIR "a photo of a dog" [--top_k 10]
    python -m clip_edge.beam.search --index PREFIX --export DIR --image query.jpg

Embeds the query with the model the index was built with (its summary's "model"; --model chooses another):
the export's own encode_text (or encode_image) signature for a saved_model index, the export's
tflite/text_encoder_VARIANT.tflite over the SavedModel's `tokenize` (or, for --image, the TFLite image path of
clip_edge.beam.tflite) for a tflite:VARIANT one, after checking that the export is the one the index was built
with and, for a TFLite index, that its image encoder is the file the index was built with. Then it streams the
Parquet shards in chunks of --chunk_rows rows and keeps the best k: memory is one chunk plus k rows, time is
linear in the index (docs/beam.md says where a vector index should take over). Prints one line per result, best
first: the cosine score, a tab, the path. Equal scores are ordered by path.
"""

import argparse
import sys

import numpy as np
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clip_edge.beam import index
from clip_edge.beam.export_reader import Export, ExportReadError, parse_model, tflite_path

MAX_QUERY_IMAGE_BYTES = 100_000_000


def top_k(chunks, query, k):
    """chunks: iterable of (paths, float32 [n, D]); query float32 [D] -> [(score, path)] best first."""
    best_scores, best_paths = np.zeros([0], np.float32), []
    for paths, embeddings in chunks:
        scores = np.concatenate([best_scores, embeddings @ query])
        paths = best_paths + list(paths)
        if len(scores) > k:
            keep = np.argpartition(-scores, k - 1)[:k]
            scores, paths = scores[keep], [paths[i] for i in keep]
        best_scores, best_paths = scores, paths
    return sorted(zip(best_scores.tolist(), best_paths), key=lambda result: (-result[0], result[1]))


def _query_embedding(export, model, text, image_path):
    """The query's embedding, float32 [D], with --model `model` ("saved_model" or "tflite:VARIANT")."""
    import tensorflow as tf

    from clip_edge.beam import tflite
    from clip_edge.beam.pipeline import failure_reason

    kind, variant = parse_model(model)
    if text is not None:
        saved_model = export.load()
        if kind == "saved_model":
            return saved_model.signatures["encode_text"](texts=tf.constant([text]))["embeddings"].numpy()[0]
        token_ids = saved_model.signatures["tokenize"](texts=tf.constant([text]))["token_ids"].numpy()
        encoder = tflite.Encoder(export.read_verified(export.tflite_entry("text", variant)))
        if encoder.input_shape != (1, token_ids.shape[1]):
            raise ExportReadError(f"{export.dir}/{tflite_path('text', variant)}: input {list(encoder.input_shape)}, "
                              f"but the SavedModel's tokenize gives {token_ids.shape[1]} token ids")
        return encoder(token_ids[0])
    with FileSystems.open(image_path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        data = file.read(MAX_QUERY_IMAGE_BYTES + 1)
    if len(data) > MAX_QUERY_IMAGE_BYTES:
        raise ValueError(f"{image_path}: larger than {MAX_QUERY_IMAGE_BYTES} bytes")
    try:
        if kind == "saved_model":
            return export.load().signatures["encode_image"](images=tf.constant([data]))["embeddings"].numpy()[0]
        encoder = tflite.Encoder(export.read_verified(export.tflite_entry("image", variant)))
        return encoder(tflite.PixelDecoder(export.resolution)([data])[0])
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
    parser.add_argument("query", nargs="?", help="the text to search for")
    parser.add_argument("--image", help="search with this image instead of a text")
    parser.add_argument("--index", required=True, help="the --output PREFIX of clip_edge.beam.embed_images")
    parser.add_argument("--export", required=True, help="the export folder the index was built with")
    parser.add_argument("--model", help="the query's model, saved_model or tflite:VARIANT (default: the one the "
                                        "index was built with, as its summary says)")
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--chunk_rows", type=int, default=65_536, help="rows scored at a time")
    args = parser.parse_args(argv)
    if (args.query is None) == (args.image is None):
        parser.error("give either a query text or --image PATH")
    if args.top_k <= 0 or args.chunk_rows <= 0:
        parser.error("--top_k and --chunk_rows must be positive")
    if args.model is not None:
        try:
            parse_model(args.model)
        except ValueError as error:
            parser.error(str(error))
    if args.image is not None:
        from clip_edge.beam.pipeline import not_a_regular_file

        problem = not_a_regular_file(args.image)  # before anything opens it: a FIFO would block the search
        if problem:
            print(f"error: --image {args.image}: {problem}", file=sys.stderr)
            return 1
    try:
        summary = index.read_summary(args.index)
        export = Export(args.export)
        check_built_with(summary, export, args.index)
        model = args.model or index.model_flag(index.model_of(summary))
        query = _query_embedding(export, model, args.query, args.image)
        results = top_k(index.iter_chunks(summary, args.chunk_rows), query, args.top_k)
    except (ExportReadError, index.IndexFileError, ValueError, OSError, BeamIOError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for score, path in results:
        print(f"{score:.6f}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
