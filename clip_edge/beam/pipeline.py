"""The image-embedding pipeline's steps; the command line is clip_edge/beam/embed_images.py.

These live apart from the command so that Beam pickles them by this module's name: classes defined in a module
run with `python -m` are `__main__.X`, which workers cannot import.
"""

import errno
import glob
import hashlib
import json
import os
import re
import stat
import typing

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from clip_edge.beam import index
from clip_edge.beam.export_reader import Export, parse_model

DEAD = "dead_letters"


class Image(typing.NamedTuple):
    path: str
    sha256: str
    data: bytes


def not_a_regular_file(path):
    """Why a local `path` must not be opened, or None: reading a FIFO blocks until a writer comes (forever, in
    a pipeline), a device (/dev/zero, or a link to it) never ends. Other filesystems (gs://) hold objects."""
    if FileSystems.get_scheme(path) is not None:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"cannot read: {error.strerror}"
    return None if stat.S_ISREG(mode) else "not a regular file (a FIFO, device or folder)"


def unlisted_matches(pattern):
    """Dead letters {"path", "reason"} for what a local `pattern` matches and Beam's MatchFiles drops without a
    word: it lists folders with os.walk and skips every entry whose size it cannot read (a symbolic link to nothing,
    a link loop), which would then be neither embedded nor dead-lettered, and the summary's counts would not add
    up. glob matches them (it tests names, not targets); what it matches and stat can read, MatchFiles lists."""
    if FileSystems.get_scheme(pattern) is not None:
        return []
    letters = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        try:
            os.stat(path)
        except OSError as error:
            broken = os.path.islink(path) and error.errno == errno.ENOENT
            letters.append({"path": path, "reason": f"cannot read: {error.strerror}"
                                                    + (" (a symbolic link to a missing file)" if broken else "")})
    return letters


class ReadImages(beam.DoFn):
    """FileMetadata -> Image, or a dead letter {"path", "reason"} for files that are empty, too large, not
    regular files or unreadable. The kind and size are checked before opening, and the read stops past the
    limit in case the file grew."""

    def __init__(self, max_bytes):
        self._max_bytes = max_bytes

    def process(self, metadata):
        path = metadata.path
        problem = not_a_regular_file(path)
        if problem:
            yield beam.pvalue.TaggedOutput(DEAD, {"path": path, "reason": problem})
            return
        if metadata.size_in_bytes > self._max_bytes:
            yield beam.pvalue.TaggedOutput(DEAD, {"path": path, "reason": (
                f"{metadata.size_in_bytes} bytes, more than --max_image_bytes={self._max_bytes}")})
            return
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
                data = file.read(self._max_bytes + 1)
        except (OSError, BeamIOError) as error:
            yield beam.pvalue.TaggedOutput(DEAD, {"path": path, "reason": f"cannot read: {error}"})
            return
        if len(data) > self._max_bytes:
            reason = f"more than --max_image_bytes={self._max_bytes} bytes"
        elif not data:
            reason = "empty file (0 bytes)"
        else:
            yield Image(path, hashlib.sha256(data).hexdigest(), data)
            return
        yield beam.pvalue.TaggedOutput(DEAD, {"path": path, "reason": reason})


# Lines of a TensorFlow error message around the reason: the node, the missing traces, the node list.
_NOISE = re.compile(r"^(Graph execution error:|Detected at node |<stack traces unavailable>|\[\[)")


def failure_reason(error):
    """One line from the SavedModel's error for a batch of one image: our assertions' text ("image 0 is not a
    JPEG, PNG, GIF or BMP file; ..."), or the decoder's message. Indented lines are skipped: a function traced
    in this process (the TFLite path's decoder) lists where the failing node was defined, one indented line per
    frame, which a loaded SavedModel does not."""
    lines = [line.strip() for line in error.message.splitlines() if not line[:1].isspace()]
    reason = next((line for line in lines if line and not _NOISE.match(line)), "unknown error")
    if reason.startswith("assertion failed:"):
        return re.sub(r"^image 0\b", "image", re.sub(r"[\[\]]", "", reason[len("assertion failed:"):]).strip())
    return f"cannot decode: {reason}"


class EncodeImageHandler(ModelHandler):
    """RunInference handler for the export's encode_image signature: Image -> PredictionResult whose example
    is (path, sha256) and whose inference is the float32 [D] embedding, or a str reason when the SavedModel
    cannot decode the image. Beam loads the model once per worker process and shares it between threads."""

    def __init__(self, export_dir, max_batch_size=16):
        # Batches are bounded by count only: ModelHandler documents max_batch_weight, but Beam 2.77's
        # BatchElements does not accept it. Each image is bounded by --max_image_bytes instead.
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size)
        self._export_dir = export_dir

    def load_model(self):
        return Export(self._export_dir).load().signatures["encode_image"]

    def run_inference(self, batch, model, inference_args=None):
        import tensorflow as tf

        def encode(images):
            return model(images=tf.constant([image.data for image in images]))["embeddings"].numpy()

        try:
            embeddings = list(encode(batch))
        except tf.errors.OpError:
            # One bad image fails its whole batch: run the batch again item by item to find it.
            embeddings = []
            for image in batch:
                try:
                    embeddings.append(encode([image])[0])
                except tf.errors.OpError as error:
                    embeddings.append(failure_reason(error))
        return [PredictionResult((image.path, image.sha256), embedding) for image, embedding in zip(batch, embeddings)]

    def get_num_bytes(self, batch):
        return sum(len(image.data) for image in batch)

    def get_metrics_namespace(self):
        return "clip_edge_encode_image"


class EncodeImagesTFLite(beam.DoFn):
    """[Image] (a batch from BatchElements) -> a PredictionResult per image, as EncodeImageHandler gives them:
    the batch is decoded, resized and cropped as encode_image does it (one bad image fails the batch, which is
    then decoded one image at a time for the reasons), then each image goes through the export's TFLite image
    encoder, one invoke per image. setup() checks the file's sha256 against the manifest and creates one
    Interpreter per DoFn instance, which Beam uses from one thread at a time."""

    def __init__(self, export_dir, variant, num_threads=None):
        self._export_dir, self._variant, self._num_threads = export_dir, variant, num_threads

    def setup(self):
        import tensorflow as tf

        from clip_edge.beam import tflite

        export = Export(self._export_dir)
        self._encoder = tflite.Encoder(export.read_verified(export.tflite_entry("image", self._variant)),
                                       self._num_threads)
        self._decoder = tflite.PixelDecoder(export.resolution)
        self._errors = tf.errors.OpError

    def process(self, batch):
        try:
            pixels = list(self._decoder([image.data for image in batch]))
        except self._errors:
            pixels = []
            for image in batch:
                try:
                    pixels.append(self._decoder([image.data])[0])
                except self._errors as error:
                    pixels.append(failure_reason(error))
        for image, item in zip(batch, pixels):
            yield PredictionResult((image.path, image.sha256), item if isinstance(item, str) else self._encoder(item))


def _split(result):
    (path, sha256), inference = result.example, result.inference
    if isinstance(inference, str):
        yield beam.pvalue.TaggedOutput(DEAD, {"path": path, "reason": inference})
    else:
        yield path, sha256, np.asarray(inference, np.float32)


class _EncodeTFLite(beam.PTransform):
    """Image -> PredictionResult through the TFLite image encoder: batches for the decoder, then
    EncodeImagesTFLite."""

    def __init__(self, export_dir, variant, batch_size, num_threads):
        super().__init__()
        self._args, self._batch_size = (export_dir, variant, num_threads), batch_size

    def expand(self, images):
        return (images
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self._batch_size)
                | "EncodeTFLite" >> beam.ParDo(EncodeImagesTFLite(*self._args)))


class WriteShard(beam.DoFn):
    """(shard, rows) -> one Parquet file with the rows sorted by path; yields {"path", "rows"}."""

    def __init__(self, prefix, dimensions):
        self._prefix, self._dimensions = prefix, dimensions

    def process(self, element, rows_total, rows_per_shard):
        shard, rows = element
        rows = sorted(rows, key=lambda row: row[0])
        path = index.shard_name(self._prefix, shard, index.shard_count(rows_total, rows_per_shard))
        index.write_shard(path, rows, self._dimensions)
        yield {"path": path, "rows": len(rows)}


def _write_dead_letters(_, dead_letters, prefix):
    path = prefix + index.DEAD_LETTERS_SUFFIX
    lines = "".join(json.dumps(letter, ensure_ascii=False) + "\n"
                    for letter in sorted(dead_letters, key=lambda letter: letter["path"]))
    index.write_atomically(path, lambda file: file.write(lines.encode("utf-8")))
    return {"path": path, "count": len(dead_letters)}


def _write_summary(_, shards, dead_letters, prefix, export_description, dimensions, pattern, model_description):
    shards = sorted(shards, key=lambda shard: shard["path"])
    # Shards of an earlier run with another shard count would otherwise sit beside these ones.
    current = {shard["path"] for shard in shards}
    stale = [metadata.path for result in FileSystems.match([prefix + index.SHARD_GLOB_SUFFIX])
             for metadata in result.metadata_list
             if metadata.path not in current and index.is_shard_of(metadata.path, prefix)]
    if stale:
        FileSystems.delete(stale)
    # File names, not paths: they sit beside the summary, and the index keeps working when its folder moves.
    summary = {"count": sum(shard["rows"] for shard in shards), "failures": dead_letters["count"],
               "input": pattern, "export": export_description, "model": model_description, "dimensions": dimensions,
               "shards": [dict(shard, path=FileSystems.split(shard["path"])[1]) for shard in shards],
               "dead_letters": FileSystems.split(dead_letters["path"])[1],
               "schema": {"path": "string", "sha256": "string, hex sha256 of the file's bytes",
                          "embedding": f"fixed_size_list<float32>[{dimensions}], L2-normalised"}}
    path = prefix + index.SUMMARY_SUFFIX
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    index.write_atomically(path, lambda file: file.write(text.encode("utf-8")))
    return summary


def build(pipeline, export, pattern, prefix, max_image_bytes=100_000_000, batch_size=16, rows_per_shard=50_000,
          model="saved_model", tflite_threads=None):
    """Add the pipeline's steps to `pipeline`; `export` is a verified Export, `model` "saved_model" or
    "tflite:VARIANT" (clip_edge.beam.export_reader.parse_model)."""
    index.check_prefix(prefix)
    kind, variant = parse_model(model)
    if kind == "saved_model":
        encode = "Encode" >> RunInference(EncodeImageHandler(export.dir, max_batch_size=batch_size))
    else:
        encode = "Encode" >> _EncodeTFLite(export.dir, variant, batch_size, tflite_threads)
    read = (pipeline
            | "Match" >> fileio.MatchFiles(pattern)
            # Matching yields every file from one element: without a reshuffle, reading and inference would be
            # fused with it and run on a single worker.
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadImages(max_image_bytes)).with_outputs(DEAD, main="images"))
    encoded = (read.images
               | encode
               | "Split" >> beam.ParDo(_split).with_outputs(DEAD, main="rows"))
    rows = encoded.rows
    rows_total = beam.pvalue.AsSingleton(rows | "CountRows" >> beam.combiners.Count.Globally())
    shards = (rows
              | "AssignShard" >> beam.Map(
                  lambda row, total: (index.shard_of(row[0], index.shard_count(total, rows_per_shard)), row),
                  total=rows_total)
              | "GroupShards" >> beam.GroupByKey()
              | "WriteShards" >> beam.ParDo(WriteShard(prefix, export.dimensions), rows_total=rows_total,
                                            rows_per_shard=rows_per_shard))
    unlisted = pipeline | "Unlisted" >> beam.Create([pattern]) | "UnlistedMatches" >> beam.FlatMap(unlisted_matches)
    dead_letters = ((read[DEAD], encoded[DEAD], unlisted)
                    | "AllDeadLetters" >> beam.Flatten()
                    | "CollectDeadLetters" >> beam.combiners.ToList())
    trigger = pipeline | "Once" >> beam.Create([None])
    dead_written = trigger | "WriteDeadLetters" >> beam.Map(
        _write_dead_letters, dead_letters=beam.pvalue.AsSingleton(dead_letters), prefix=prefix)
    trigger | "WriteSummary" >> beam.Map(
        _write_summary, shards=beam.pvalue.AsList(shards), dead_letters=beam.pvalue.AsSingleton(dead_written),
        prefix=prefix, export_description=export.describe(), dimensions=export.dimensions, pattern=pattern,
        model_description=export.describe_model(model))
