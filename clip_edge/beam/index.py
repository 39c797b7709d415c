"""The index written by embed_images: file names, the Parquet schema, shard assignment, and chunked reading.

    PREFIX-SSSSS-of-NNNNN.parquet   rows (path, sha256, embedding), sorted by path within each shard
    PREFIX-dead_letters.jsonl       {"path", "reason"} per image that could not be read or decoded, sorted
    PREFIX-summary.json             counts, the export's identity, the model (saved_model or a TFLite file),
                                    the shard list by file name, beside it (written last)

A path goes to shard int(sha256(path)[:8]) mod N, N = ceil(rows / rows_per_shard): the same input gives the
same files with the same rows in the same order, whatever the runner, worker count or batching.
"""

import hashlib
import json
import math
import re
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clip_edge.messages import quoted

SUMMARY_SUFFIX = "-summary.json"
DEAD_LETTERS_SUFFIX = "-dead_letters.jsonl"
SHARD_GLOB_SUFFIX = "-?????-of-?????.parquet"
# Characters that Beam's FileSystems.match reads as a pattern: a prefix holding one would make the clean-up of
# stale shards (prefix + SHARD_GLOB_SUFFIX) match other files.
PATTERN_CHARACTERS = "*?[]{}"


class IndexFileError(Exception):
    """The index is missing, incomplete, or was built with another export."""


def schema(dimensions):
    return pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),  # hex digest of the file's bytes
        pa.field("embedding", pa.list_(pa.float32(), dimensions), nullable=False),  # L2-normalised
    ])


def shard_name(prefix, shard, count):
    return f"{prefix}-{shard:05d}-of-{count:05d}.parquet"


def check_prefix(prefix):
    """Refuse an --output prefix that is a pattern (IndexFileError)."""
    used = sorted(set(prefix) & set(PATTERN_CHARACTERS))
    if used:
        raise IndexFileError(f"--output {quoted(prefix)} holds {' '.join(used)}: the index prefix must be a plain "
                             "path, not a pattern")


def is_shard_of(path, prefix):
    """Whether `path` is named as a shard of the index at `prefix` (PREFIX-SSSSS-of-NNNNN.parquet)."""
    return re.fullmatch(re.escape(prefix) + r"-\d{5}-of-\d{5}\.parquet", path) is not None


def shard_count(rows, rows_per_shard):
    return max(1, math.ceil(rows / rows_per_shard))


def shard_of(path, count):
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") % count


def write_atomically(path, write):
    """Run write(file) on a temporary file beside `path`, then rename it to `path` (readers never see half a
    file; a retried bundle replaces the file whole)."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        write(file)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def write_shard(path, rows, dimensions):
    """rows: (path, sha256, float32 [D]) sorted by path -> one Parquet file."""
    embeddings = np.stack([row[2] for row in rows]).astype(np.float32, copy=False).reshape(-1)
    table = pa.Table.from_arrays([
        pa.array([row[0] for row in rows], pa.string()),
        pa.array([row[1] for row in rows], pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(embeddings, pa.float32()), dimensions),
    ], schema=schema(dimensions))
    write_atomically(path, lambda file: pq.write_table(table, file))


# A summary lists one entry per shard (50,000 rows each by default): a few MB even for a billion images.
MAX_SUMMARY_BYTES = 64 << 20


def read_summary(prefix):
    """PREFIX-summary.json, its fields checked (IndexFileError naming the file and the field)."""
    path = prefix + SUMMARY_SUFFIX
    if not FileSystems.exists(path):
        raise IndexFileError(f"{path}: no such file; --index takes the --output PREFIX of a finished "
                             f"clip_edge.beam.embed_images run")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        data = file.read(MAX_SUMMARY_BYTES + 1)
    if len(data) > MAX_SUMMARY_BYTES:
        raise IndexFileError(f"{path}: larger than {MAX_SUMMARY_BYTES} bytes; not a summary of embed_images")
    try:
        summary = json.loads(data)
    except ValueError as error:
        raise IndexFileError(f"{path}: not JSON ({error})") from None
    _check_summary(path, summary)
    # Shard and dead-letter names are relative to the summary's folder (older summaries hold whole paths).
    folder = FileSystems.split(path)[0]
    for shard in summary["shards"]:
        shard["path"] = _beside(folder, shard["path"])
    summary["dead_letters"] = _beside(folder, summary["dead_letters"])
    return summary


def _beside(folder, name):
    """`name` from a summary in `folder`: a whole path (absolute, or with a scheme such as gs://) as it is."""
    return name if name.startswith("/") or "://" in name else FileSystems.join(folder, name)


def _check_summary(path, summary):
    """The fields search and embed_images read, with their types: a hand-edited or truncated summary is named
    here, not by a KeyError or TypeError later."""
    def field(container, name, kind, where=""):
        value = container.get(name) if isinstance(container, dict) else None
        if value is None:
            raise IndexFileError(f"{path}: field '{where}{name}' is missing; rerun clip_edge.beam.embed_images")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise IndexFileError(f"{path}: field '{where}{name}' is {type(value).__name__}, not {kind.__name__}")
        return value

    if not isinstance(summary, dict):
        raise IndexFileError(f"{path}: not a JSON object")
    export = field(summary, "export", dict)
    for name in ("name", "saved_model_sha256"):
        field(export, name, str, "export.")
    for name in ("count", "failures"):
        if field(summary, name, int) < 0:
            raise IndexFileError(f"{path}: field {name!r} is negative")
    if field(summary, "dimensions", int) < 1:
        raise IndexFileError(f"{path}: field 'dimensions' must be positive")
    field(summary, "dead_letters", str)
    model = summary.get("model")
    if model is not None:  # absent in summaries written before --model: those indexes are saved_model ones
        if field(summary, "model", dict).get("model") not in ("saved_model", "tflite"):
            raise IndexFileError(f"{path}: field 'model.model' is {model.get('model')!r}, not 'saved_model' or "
                                 f"'tflite'")
        if model["model"] == "tflite":
            for name in ("variant", "sha256"):
                field(model, name, str, "model.")
    for number, shard in enumerate(field(summary, "shards", list)):
        if not isinstance(shard, dict):
            raise IndexFileError(f"{path}: field 'shards[{number}]' is {type(shard).__name__}, not dict")
        field(shard, "path", str, f"shards[{number}].")
        field(shard, "rows", int, f"shards[{number}].")


def model_of(summary):
    """The summary's "model" field; {"model": "saved_model"} for a summary written before there was a choice."""
    return summary.get("model") or {"model": "saved_model"}


def model_flag(model):
    """A summary's model field -> the --model flag that builds it: "saved_model" or "tflite:VARIANT"."""
    return "saved_model" if model["model"] == "saved_model" else f"tflite:{model['variant']}"


def iter_chunks(summary, chunk_rows, with_sha256=False):
    """Yield (paths list, float32 [n, D]) chunks of at most `chunk_rows` rows over every shard in the summary
    ((paths, sha256 hex list, float32 [n, D]) with `with_sha256`): memory is bounded by the chunk, not the
    index."""
    dimensions = summary["dimensions"]
    for shard in summary["shards"]:
        with FileSystems.open(shard["path"], compression_type=CompressionTypes.UNCOMPRESSED) as file:
            parquet = pq.ParquetFile(file)
            if parquet.schema_arrow.field("embedding").type != pa.list_(pa.float32(), dimensions):
                raise IndexFileError(f"{shard['path']}: embedding column is "
                                  f"{parquet.schema_arrow.field('embedding').type}, not {dimensions} float32s")
            columns = ["path", "sha256", "embedding"] if with_sha256 else ["path", "embedding"]
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                paths = batch.column("path").to_pylist()
                embeddings = batch.column("embedding").flatten().to_numpy(zero_copy_only=False).reshape(-1, dimensions)
                _check_unit_rows(shard["path"], paths, embeddings)
                if with_sha256:
                    yield paths, batch.column("sha256").to_pylist(), embeddings
                else:
                    yield paths, embeddings


# How far a row's L2 norm may be from 1: float32 rounding of a normalised vector is about 1e-7; a row scaled or
# edited by hand (x1000 gave cosines of 22.99) is far outside.
UNIT_NORM_TOLERANCE = 1e-3


def _check_unit_rows(shard_path, paths, embeddings):
    """Search ranks by dot products, which are cosines only for the L2-normalised rows embed_images writes: a
    row that is NaN, infinite or not of unit length is named (IndexFileError), not scored."""
    norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1) > UNIT_NORM_TOLERANCE))
    if bad.size:
        row = int(bad[0])
        problem = "is not finite" if not np.isfinite(norms[row]) else f"has L2 norm {norms[row]:.6g}, not 1"
        raise IndexFileError(f"{shard_path}: the embedding of {quoted(paths[row])} {problem} ({bad.size} such rows "
                             f"in this chunk); the shard was not written by clip_edge.beam.embed_images as is")
