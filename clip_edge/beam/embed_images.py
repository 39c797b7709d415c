"""Embed every image matching a pattern with an export's encode_image signature, as an Apache Beam pipeline.

    python -m clip_edge.beam.embed_images --export DIR --input 'PATTERN' --output PREFIX
        [--model saved_model|tflite:VARIANT] [Beam pipeline options]

Reads files through Beam's filesystems (local paths; gs:// and s3:// with apache-beam[gcp] / [aws]), batches
them, runs the SavedModel's `encode_image` through RunInference with a model handler that loads the export
once per worker process after checking every SavedModel file against the manifest's sha256, and writes
Parquet shards, a dead-letter file and a summary (file names and schema in clip_edge/beam/index.py).
With --model tflite:VARIANT (float32, float16, dynamic_int8, int8) the images are decoded, resized and cropped
as encode_image does it, then embedded by the export's tflite/image_encoder_VARIANT.tflite (checked against
the manifest's sha256) in ai_edge_litert, one Interpreter per DoFn instance, one image per invoke.

An image that cannot be read or decoded never fails the pipeline: files that are empty or larger than
--max_image_bytes are set aside when read, and a batch the SavedModel refuses is run again one image at a
time, so that only the images the SavedModel itself cannot decode go to the dead letters, each with its reason.
"""

import argparse
import logging
import sys

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from clip_edge.beam import index, pipeline, tflite
from clip_edge.beam.export_reader import TFLITE_VARIANTS, Export, ExportReadError, parse_model
from clip_edge.messages import quoted


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m clip_edge.beam.embed_images", description=__doc__.split("\n\n")[0],
        epilog="Other arguments are Beam pipeline options, e.g. --runner=DataflowRunner (docs/beam.md).")
    parser.add_argument("--export", required=True, help="export folder DIR/NAME (manifest.json, saved_model/)")
    parser.add_argument("--input", required=True, help="file pattern of the images, e.g. 'photos/**.jpg'")
    parser.add_argument("--output", required=True, help="prefix of the index files")
    parser.add_argument("--batch_size", type=int, default=16, help="largest batch given to encode_image")
    parser.add_argument("--max_image_bytes", type=int, default=100_000_000,
                        help="larger files go to the dead letters unread")
    parser.add_argument("--rows_per_shard", type=int, default=50_000,
                        help="rows per Parquet shard, about; a shard is sorted in one worker's memory")
    parser.add_argument("--model", default="saved_model",
                        help="saved_model (encode_image) or tflite:VARIANT, VARIANT one of "
                             f"{', '.join(TFLITE_VARIANTS)} (tflite/image_encoder_VARIANT.tflite)")
    parser.add_argument("--tflite_threads", type=int, default=None,
                        help="threads per TFLite interpreter (default: the CPUs the worker process may use)")
    args, pipeline_args = parser.parse_known_args(argv)
    try:
        parse_model(args.model)
    except ValueError as error:
        parser.error(str(error))
    if args.tflite_threads is not None and not 1 <= args.tflite_threads <= tflite.MAX_THREADS:
        parser.error(f"--tflite_threads must be in 1..{tflite.MAX_THREADS}, got {args.tflite_threads}")
    for flag in ("batch_size", "max_image_bytes", "rows_per_shard"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be positive, got {getattr(args, flag)}")
    try:
        index.check_prefix(args.output)
        export = Export(args.export)
        # Here as well as in every worker: a wrong export fails before the job starts.
        export.verify_model(args.model)
        matched = FileSystems.match([args.input], limits=[1])[0].metadata_list
    except (ExportReadError, BeamIOError, index.IndexFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not matched:
        print(f"error: --input {quoted(args.input)} matches no file", file=sys.stderr)
        return 1
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as beam_pipeline:
        pipeline.build(beam_pipeline, export, args.input, args.output, args.max_image_bytes, args.batch_size,
                       args.rows_per_shard, model=args.model, tflite_threads=args.tflite_threads)
    summary = index.read_summary(args.output)
    print(f"{summary['count']} images embedded with {args.model} into {len(summary['shards'])} shard(s); "
          f"{summary['failures']} "
          f"failed, listed in {summary['dead_letters']}; summary: {args.output}{index.SUMMARY_SUFFIX}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
