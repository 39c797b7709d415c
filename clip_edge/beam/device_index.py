"""Convert an index written by clip_edge.beam.embed_images --model tflite:VARIANT into a device index (`.clipidx`,
docs/device_index.md), which android_demo's core searches on the phone.

    python -m clip_edge.beam.device_index --index PREFIX --export DIR --output FILE [--dtype float16|int8]

Only an index built with a TFLite image encoder converts: the file's fingerprint names that encoder (its
variant and the sha256 the summary recorded), and a device answers a query only with the text encoder exported
beside it. The export must be the one the index was built with (the same checks as clip_edge.beam.search).

The header needs the row count, which the summary gives, so the rows are converted chunk by chunk
(--chunk_rows float32 rows at a time) into one N x D float16 or int8 array, then written sorted by id. int8
rows are differences from the mean of all rows (docs/device_index.md), so int8 reads the shards twice: once to
sum the mean (exact integer sums, the same in any order), once to quantise; float16 reads them once. Memory is
that array (1M x 512 int8: 512 MB, float16 twice that) plus the ids and one chunk; holding the float32 rows
between the passes instead would take 2 GB. The file is written as FILE.tmp-PID, synced and renamed over FILE:
a kill leaves the previous FILE whole (and the next run deletes the orphan).
"""

import argparse
import os
import sys

import numpy as np
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from clip_edge import device_index
from clip_edge.beam import index
from clip_edge.beam.export_reader import Export, ExportReadError, tflite_path
from clip_edge.beam.search import check_built_with

MAX_CHUNK_ROWS = 1 << 20


class ConversionError(Exception):
    """The index cannot become a device index (built with the SavedModel, or inconsistent with its summary)."""


def _mean(summary, where, chunk_rows):
    """The document's mean of every shard's rows: a first pass over them."""
    sums, done = np.zeros(summary["dimensions"], np.int64), 0
    for _, embeddings in index.iter_chunks(summary, chunk_rows):
        sums += device_index.mean_sums(embeddings)
        done += len(embeddings)
    if done != summary["count"]:
        raise ConversionError(f"{where}: the shards hold {done} rows, its count is {summary['count']}")
    return device_index.mean_of_sums(sums, done)


def _read_rows(summary, where, dtype, chunk_rows):
    """(ids, uint8 [N, 16] content hashes, rows, scales, mean) of every shard, in the shards' order;
    ConversionError naming the summary file `where` when the shards disagree with it."""
    count, dimensions = summary["count"], summary["dimensions"]
    listed = sum(shard["rows"] for shard in summary["shards"])
    if listed != count:
        raise ConversionError(f"{where}: its shards list {listed} rows, its count is {count}")
    element = np.float16 if dtype == "float16" else np.int8
    # Before allocating: a summary's count decides the size of the array.
    if (dimensions > device_index.MAX_DIMENSION
            or count * dimensions * np.dtype(element).itemsize > device_index.MAX_EMBEDDING_BYTES):
        raise ConversionError(f"{where}: {count} rows of {dimensions} {dtype} do not fit format version 1 "
                              f"(dimension at most {device_index.MAX_DIMENSION}, embeddings at most "
                              f"{device_index.MAX_EMBEDDING_BYTES} bytes)")
    mean = _mean(summary, where, chunk_rows) if dtype == "int8" else None
    rows = np.empty([count, dimensions], element)
    scales = np.empty([count], np.float32) if dtype == "int8" else None
    hashes = np.empty([count, device_index.CONTENT_HASH_BYTES], np.uint8)
    ids, done = [], 0
    for paths, sha256s, embeddings in index.iter_chunks(summary, chunk_rows, with_sha256=True):
        if done + len(paths) > count:
            raise ConversionError(f"{where}: the shards hold more rows than its count, {count}")
        try:
            digests = np.frombuffer(bytes.fromhex("".join(sha256s)), np.uint8).reshape(-1, 32)
        except ValueError:  # not hex, or (fromhex skips spaces) not a whole number of digests
            digests = None
        if digests is None or len(digests) != len(sha256s) or any(len(digest) != 64 for digest in sha256s):
            raise ConversionError(f"{where}: a shard's sha256 column holds a value that is not 64 hex digits")
        block = slice(done, done + len(paths))
        rows[block], chunk_scales, _ = device_index.quantize(embeddings, dtype, mean)
        if scales is not None:
            scales[block] = chunk_scales
        hashes[block] = digests[:, :device_index.CONTENT_HASH_BYTES]
        ids += paths
        done += len(paths)
    if done != count:
        raise ConversionError(f"{where}: the shards hold {done} rows, its count is {count}")
    return ids, hashes, rows, scales, mean


def convert(index_prefix, export_dir, output, dtype="float16", chunk_rows=65_536):
    """Write the device index of the Beam index at `index_prefix` to `output`; returns (summary, Layout)."""
    where = index_prefix + index.SUMMARY_SUFFIX
    summary = index.read_summary(index_prefix)
    model = index.model_of(summary)
    if model["model"] != "tflite":
        raise ConversionError(
            f"{where}: the index was built with the SavedModel (--model {index.model_flag(model)}), which no device "
            f"runs, so there is no device image encoder to fingerprint; build it with clip_edge.beam.embed_images "
            f"--model tflite:VARIANT (e.g. tflite:dynamic_int8) to convert it")
    export = Export(export_dir)
    check_built_with(summary, export, index_prefix)  # the export's identity, and its image encoder's sha256
    try:
        ids, hashes, rows, scales, mean = _read_rows(summary, where, dtype, chunk_rows)
    except device_index.IndexFormatError as error:  # from quantize: rows that are not unit vectors
        raise ConversionError(f"the shards of index {index_prefix}: {error}") from None
    try:
        written = device_index.write(output, ids, hashes, rows, scales, mean, image_encoder_sha256=model["sha256"],
                                     variant=model["variant"], export_name=export.name)
    except device_index.IndexFormatError as error:
        raise ConversionError(f"{where} cannot be written as a device index: {error}") from None
    return summary, written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m clip_edge.beam.device_index",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="the --output PREFIX of clip_edge.beam.embed_images, "
                                                       "run with --model tflite:VARIANT")
    parser.add_argument("--export", required=True, help="the export folder the index was built with")
    parser.add_argument("--output", required=True, help="the device index file to write (a local path)")
    parser.add_argument("--dtype", choices=sorted(device_index.ELEMENT_TYPES), default="float16",
                        help="float16 (2 bytes per element) or int8 (1 byte plus a float32 scale per row, and a mean)")
    parser.add_argument("--chunk_rows", type=int, default=65_536, help="float32 rows read from the shards at a time")
    args = parser.parse_args(argv)
    if not 1 <= args.chunk_rows <= MAX_CHUNK_ROWS:
        parser.error(f"--chunk_rows must be in 1..{MAX_CHUNK_ROWS}, got {args.chunk_rows}")
    # The rename that replaces FILE whole needs a local filesystem (gs:// has no atomic rename).
    folder = os.path.dirname(os.path.abspath(args.output))
    if FileSystems.get_scheme(args.output) is not None:
        problem = "is not a local path; write the file locally, then copy it"
    elif os.path.isdir(args.output):
        problem = "is a folder"
    elif not os.path.isdir(folder):
        problem = f"is in {folder}, which does not exist or is not a folder"
    else:
        problem = None
    if problem:
        print(f"error: --output {args.output} {problem}", file=sys.stderr)
        return 1
    try:
        summary, written = convert(args.index, args.export, args.output, args.dtype, args.chunk_rows)
    except (ConversionError, ExportReadError, index.IndexFileError, OSError, BeamIOError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model = index.model_of(summary)
    print(f"{args.output}: {summary['count']} rows of {summary['dimensions']} {args.dtype}, {written.file_size} "
          f"bytes; fingerprint {tflite_path('image', model['variant'])} sha256 {model['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
