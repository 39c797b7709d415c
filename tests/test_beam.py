"""clip_edge.beam against the export's own signatures, on Beam's local runner with two worker processes, and
with --model tflite:VARIANT against the same signatures within each variant's parity bar.

The pipeline and the search run in the Beam virtualenv (`make beam-venv`: apache-beam needs older protobuf
and pillow than this virtualenv has) as subprocesses, one for all the commands of a fixture (COMMANDS_SCRIPT),
named by CLIP_EDGE_BEAM_PYTHON (`make test` sets it) or found at .venv-beam/; without it these tests fail
(CLIP_EDGE_SKIP_BEAM=1 skips them). The references are computed here, in the main virtualenv: the SavedModel's
encode_image called on one file at a time, its encode_text, and numpy brute force. The photos are variants (crops,
flips, rotations, resizes; JPEG, PNG, GIF, BMP) of tests/photos.py's real photographs. The device index converter
(clip_edge.beam.device_index) is tested on the tflite:dynamic_int8 index built here; the file format itself in
test_device_index.py.
"""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from PIL import Image

from tests import photos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Files the SavedModel cannot decode, each with a word its dead-letter reason must contain.
CORRUPT = {
    "corrupt_truncated.jpg": "cannot be decoded: corrupt or truncated JPEG",
    "corrupt_random_bytes.jpg": "not a JPEG, PNG, GIF or BMP",
    "corrupt_empty.jpg": "empty",
    "corrupt_bogus_signature.png": "not a JPEG, PNG, GIF or BMP",
    "corrupt_zero_width.png": "no pixels",
    # Beam's own matching skips these without a word; the pipeline's UnlistedMatches step dead-letters them.
    "corrupt_broken_link.jpg": "a symbolic link to a missing file",
    "corrupt_link_loop.jpg": "Too many levels of symbolic links",
}
QUERIES = ["a photo of a dog", "an astronaut in a white suit"]


def _beam_python():
    configured = os.environ.get("CLIP_EDGE_BEAM_PYTHON")
    if configured:
        if not os.path.exists(configured):
            pytest.fail(f"CLIP_EDGE_BEAM_PYTHON={configured}: no such file (make beam-venv creates it)")
        return configured
    default = os.path.join(REPO, ".venv-beam", "bin", "python")
    if not os.path.exists(default):
        # As tests/jvm.py does for Java: the pipeline is part of the product, so its absence fails unless asked.
        message = "no Beam virtualenv: run `make beam-venv` (make test does) or set CLIP_EDGE_BEAM_PYTHON"
        if os.environ.get("CLIP_EDGE_SKIP_BEAM") == "1":
            pytest.skip(message)
        pytest.fail(message + " (or set CLIP_EDGE_SKIP_BEAM=1 to skip these tests)")
    return default


# Every command of a fixture in one Beam-virtualenv process: a module's main() (what `python -m` runs) or a script
# (what `python -c` runs), each with stdout and stderr captured and its status recorded, so that TensorFlow and
# Beam are imported once (about 8 s per process on a busy 2-core machine) instead of once per command. The
# results go to a file (argv[1]): Beam's worker processes write to the same stdout.
COMMANDS_SCRIPT = """
import contextlib, importlib, io, json, sys, time, traceback
commands, results, argv = json.load(sys.stdin), [], sys.argv
for command in commands:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if "script" in command:
                sys.argv = ["-c", *command["argv"]]
                exec(compile(command["script"], "<string>", "exec"), {"__name__": "__main__"})
                status = 0
            else:
                status = importlib.import_module("clip_edge.beam." + command["module"]).main(command["argv"])
        except SystemExit as exit:  # argparse's usage errors
            status = exit.code
        except BaseException:
            traceback.print_exc()
            status = "uncaught exception"
        finally:
            sys.argv = argv
    results.append({"status": status, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "seconds": time.perf_counter() - started})
with open(argv[1], "w") as file:
    json.dump(results, file)
"""


def module(name, *args):
    """`python -m clip_edge.beam.NAME args`, for run_beam_commands."""
    return {"module": name, "argv": [str(arg) for arg in args]}


def script(code, *args):
    """`python -c CODE args`, for run_beam_commands."""
    return {"script": code, "argv": [str(arg) for arg in args]}


def run_beam_commands(commands, timeout=1800):
    """{key: module(...) or script(...)} -> {key: {"status", "stdout", "stderr", "seconds"}}, in the order given,
    in one process of the Beam virtualenv with this tree on the path (COMMANDS_SCRIPT). A command that fails
    does not stop the others; the caller checks each status."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "results.json")
        result = subprocess.run([_beam_python(), "-c", COMMANDS_SCRIPT, output], input=json.dumps(list(
            commands.values())), capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"the Beam commands exited {result.returncode}:\n{result.stderr[-5000:]}")
        with open(output) as file:
            return dict(zip(commands, json.load(file)))


def succeeded(result, what):
    """The result of a command that must succeed, or the test fails with its stderr."""
    if result["status"] != 0:
        pytest.fail(f"{what} exited {result['status']}:\n{result['stderr'][-5000:]}")
    return result


def embed_command(export, pattern, prefix, *options):
    return module("embed_images", "--export", export, "--input", pattern, "--output", prefix, *options)


# FnApiRunner is what Beam 2.77's DirectRunner falls back to after trying Prism, which it downloads from
# GitHub on first use: naming it keeps the runner the same on machines with and without network access.
TWO_PROCESSES = ("--runner=FnApiRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing")
ONE_PROCESS = ("--runner=FnApiRunner", "--direct_num_workers=1")

# Every shard's rows, read with pyarrow in the Beam virtualenv (independently of clip_edge.beam.index) into
# PREFIX-rows.npz, for read_index. The summary names its shards by file name.
DUMP_ROWS = """
import json, os, sys
import numpy as np, pyarrow.parquet as pq
prefix = sys.argv[1]
with open(prefix + "-summary.json") as file:
    shards = [os.path.join(os.path.dirname(prefix), shard["path"]) for shard in json.load(file)["shards"]]
tables = [pq.read_table(path) for path in shards]
np.savez(prefix + "-rows.npz", files=np.array([len(t) for t in tables]),
  paths=np.array(sum((t['path'].to_pylist() for t in tables), []), dtype=object),
  sha256=np.array(sum((t['sha256'].to_pylist() for t in tables), []), dtype=object),
  embeddings=np.concatenate([np.array(t['embedding'].to_pylist(), np.float32).reshape(len(t), -1)
                             for t in tables]))
"""


def dump_rows_command(prefix):
    return script(DUMP_ROWS, prefix)


def read_index(prefix):
    """The summary, the dead letters and every shard's rows (PREFIX-rows.npz, which dump_rows_command wrote)."""
    with open(prefix + "-summary.json") as file:
        summary = json.load(file)
    with open(prefix + "-dead_letters.jsonl") as file:
        dead_letters = [json.loads(line) for line in file]
    rows = dict(np.load(prefix + "-rows.npz", allow_pickle=True))
    return summary, dead_letters, rows


def _variants(pixels):
    """Crops, flips, a rotation and resizes of one photo (never empty: tiny photos keep at least a pixel)."""
    height, width = pixels.shape[:2]
    h, w = max(1, height * 3 // 5), max(1, width * 3 // 5)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    yield "whole", image
    yield "flip_lr", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    yield "flip_tb", image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    yield "rot90", image.transpose(Image.Transpose.ROTATE_90)
    yield "crop_tl", image.crop((0, 0, w, h))
    yield "crop_br", image.crop((width - w, height - h, width, height))
    yield "crop_centre", image.crop(((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h))
    for scale in (2, 3, 5):
        size = (max(1, width // scale), max(1, height // scale))
        yield f"shrink{scale}", image.resize(size, Image.Resampling.BILINEAR)
    yield "grow", image.resize((width * 3 // 2 or 1, height * 3 // 2 or 1), Image.Resampling.BICUBIC)
    yield "square97", image.resize((97, 97), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """A few hundred real-photo files plus CORRUPT; returns the folder."""
    folder = tmp_path_factory.mktemp("beam_photos")
    for number, (name, pixels) in enumerate(sorted(photos.sample_photos().items())):
        for variant, image in _variants(pixels):
            image.save(folder / f"{name}_{variant}.jpg", quality=85 + number % 10)
            image.save(folder / f"{name}_{variant}.png")
        whole = Image.fromarray(np.ascontiguousarray(pixels))
        whole.save(folder / f"{name}.gif")
        whole.save(folder / f"{name}.bmp")
    jpeg = photos.encoded("rocket", "JPEG")
    png = photos.encoded("chelsea", "PNG")
    (folder / "corrupt_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "corrupt_random_bytes.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "corrupt_empty.jpg").write_bytes(b"")
    (folder / "corrupt_bogus_signature.png").write_bytes(b"\x89PNG\r\n\x1a\x0b" + png[8:])
    # IHDR's width (bytes 16..19) set to 0, its CRC left as it was.
    (folder / "corrupt_zero_width.png").write_bytes(png[:16] + b"\0\0\0\0" + png[20:])
    (folder / "corrupt_broken_link.jpg").symlink_to(folder / "missing.jpg")
    (folder / "corrupt_link_loop.jpg").symlink_to(folder / "corrupt_link_loop.jpg")
    return folder


@pytest.fixture(scope="module")
def saved_model(float32_export):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(os.path.join(float32_export, "saved_model"))


@pytest.fixture(scope="module")
def direct(photo_folder, saved_model):
    """{path: embedding} from encode_image on batches of 32 files, and the set of files it refuses or that cannot
    be read (a batch that fails is run again one file at a time)."""
    import tensorflow as tf

    encode = saved_model.signatures["encode_image"]
    paths = sorted(str(p) for p in photo_folder.iterdir())
    unreadable = {path for path in paths if not os.path.exists(path)}  # the links to nothing (or to themselves)
    paths = [path for path in paths if path not in unreadable]
    embeddings, refused = {}, set(unreadable)
    for start in range(0, len(paths), 32):
        batch = paths[start:start + 32]
        data = [open(path, "rb").read() for path in batch]
        try:
            embeddings.update(zip(batch, encode(images=tf.constant(data))["embeddings"].numpy()))
            continue
        except tf.errors.InvalidArgumentError:
            pass
        for path, encoded in zip(batch, data):
            try:
                embeddings[path] = encode(images=tf.constant([encoded]))["embeddings"].numpy()[0]
            except tf.errors.InvalidArgumentError:
                refused.add(path)
    return embeddings, refused


# The TFLite variants in float32_export and their parity bars (converters.variants.VARIANTS[...].bar): min
# cosine to the SavedModel's embedding of the same image.
TFLITE_BARS = {"dynamic_int8": 0.99, "float32": 0.99999}
# The pipeline runs over the folder, one index each: the SavedModel's (the default --model) with two worker
# processes and 100 rows per shard, tflite:dynamic_int8 with two worker processes, tflite:float32 with one.
INDEXES = {"saved_model": ("--rows_per_shard=100", *TWO_PROCESSES),
           "tflite:dynamic_int8": ("--model=tflite:dynamic_int8", *TWO_PROCESSES),
           "tflite:float32": ("--model=tflite:float32", *ONE_PROCESS)}
QUERY_IMAGE = "coffee_crop_tl.jpg"  # in photo_folder, so in every index


@pytest.fixture(scope="module")
def beam_run(float32_export, photo_folder, tmp_path_factory):
    """The pipeline run over the folder for each of INDEXES, each index's rows dumped, then every command the
    tests below check over those indexes or over copies of the export (device index conversions and refusals,
    searches, refused exports and command lines), in the order given, all in one Beam-virtualenv process:
    {"prefixes": {model: prefix}, "results": {group: {name: result}}, "folders": {group: folder}}."""
    prefixes = {model: str(tmp_path_factory.mktemp("beam_index") / "photos") for model in INDEXES}
    commands = {("embed", model): embed_command(float32_export, f"{photo_folder}/*", prefixes[model], *options)
                for model, options in INDEXES.items()}
    commands.update((("rows", model), dump_rows_command(prefixes[model])) for model in INDEXES)
    folders = {}
    for group, build in (("device", _device_index_commands), ("search", _search_commands),
                         ("refusals", _refusal_commands)):
        folders[group] = tmp_path_factory.mktemp(group)
        commands.update(((group, name), command)
                        for name, command in build(folders[group], prefixes, float32_export, photo_folder).items())
    started = time.perf_counter()
    flat = run_beam_commands(commands)
    sys.stderr.write(f"\n{len(commands)} Beam commands in one process: {time.perf_counter() - started:.1f} s\n")
    for model in INDEXES:
        sys.stderr.write(f"embed_images {' '.join(INDEXES[model])}, {len(os.listdir(photo_folder))} files: "
                         f"{flat['embed', model]['seconds']:.1f} s\n")
    results = {}
    for (group, name), result in flat.items():
        results.setdefault(group, {})[name] = result
    return {"prefixes": prefixes, "results": results, "folders": folders}


def _index(beam_run, model):
    succeeded(beam_run["results"]["embed"][model], f"clip_edge.beam.embed_images {' '.join(INDEXES[model])}")
    succeeded(beam_run["results"]["rows"][model], f"reading the shards of {model}")
    return beam_run["prefixes"][model]


@pytest.fixture(scope="module")
def index_prefix(beam_run):
    """The pipeline run once over the folder with two worker processes, 100 rows per shard."""
    return _index(beam_run, "saved_model")


@pytest.fixture(scope="module")
def tflite_indexes(beam_run):
    """{variant: prefix} of the pipeline run with --model tflite:VARIANT over the folder."""
    return {variant: _index(beam_run, f"tflite:{variant}") for variant in TFLITE_BARS}


def _manifest_entry(export, path):
    with open(os.path.join(export, "manifest.json")) as file:
        return next(a for a in json.load(file)["artifacts"] if a["path"] == path)


def test_folder_is_what_the_test_means(photo_folder, direct):
    """The reference refuses exactly the files meant to be corrupt, and there are a few hundred others."""
    embeddings, refused = direct
    assert refused == {str(photo_folder / name) for name in CORRUPT}
    assert len(embeddings) >= 250


def test_embeddings_equal_direct_savedmodel_calls(index_prefix, direct):
    embeddings, _ = direct
    _, _, rows = read_index(index_prefix)
    assert sorted(rows["paths"]) == sorted(embeddings)
    expected = np.stack([embeddings[path] for path in rows["paths"]])
    cosines = np.sum(rows["embeddings"] * expected, axis=1) / (
        np.linalg.norm(rows["embeddings"], axis=1) * np.linalg.norm(expected, axis=1))
    sys.stderr.write(f"\nBeam vs direct encode_image, {len(cosines)} images: min cosine {cosines.min():.8f}, "
                     f"max |difference| {np.abs(rows['embeddings'] - expected).max():.2e}\n")
    assert cosines.min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(rows["embeddings"], axis=1), 1.0, atol=1e-5)
    for path, sha256 in zip(rows["paths"], rows["sha256"]):
        assert sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest(), path


def test_dead_letters_are_exactly_the_corrupt_files(index_prefix, photo_folder):
    _, dead_letters, _ = read_index(index_prefix)
    assert [letter["path"] for letter in dead_letters] == sorted(str(photo_folder / name) for name in CORRUPT)
    for letter in dead_letters:
        assert CORRUPT[os.path.basename(letter["path"])] in letter["reason"], letter


def test_shards_sorted_and_summary(index_prefix, float32_export, direct):
    summary, dead_letters, rows = read_index(index_prefix)
    embeddings, refused = direct
    with open(os.path.join(float32_export, "manifest.json"), "rb") as file:
        manifest_bytes = file.read()
    manifest = json.loads(manifest_bytes)
    assert summary["count"] == len(embeddings) and summary["failures"] == len(refused) == len(dead_letters)
    assert summary["dimensions"] == manifest["config"]["embed_dim"] == rows["embeddings"].shape[1]
    assert summary["export"]["name"] == manifest["name"]
    assert summary["export"]["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert summary["model"] == {"model": "saved_model"}
    count = len(summary["shards"])
    assert count == -(-len(embeddings) // 100)  # ceil(rows / --rows_per_shard)
    # File names, not paths: the index folder can move.
    name = os.path.basename(index_prefix)
    assert [shard["path"] for shard in summary["shards"]] == [
        f"{name}-{shard:05d}-of-{count:05d}.parquet" for shard in range(count)]
    assert summary["dead_letters"] == f"{name}-dead_letters.jsonl"
    assert list(rows["files"]) == [shard["rows"] for shard in summary["shards"]]
    start = 0
    for rows_in_shard in rows["files"]:
        paths = list(rows["paths"][start:start + rows_in_shard])
        assert paths == sorted(paths)
        start += rows_in_shard


@pytest.mark.slow  # a second pipeline run
def test_rerun_with_one_worker_writes_the_same_index(index_prefix, float32_export, photo_folder, tmp_path):
    """Same input, another worker count and batching: the same files, rows and order; embeddings may differ
    in their last bits only when batches are composed differently. Shards left under the prefix by an earlier
    run with another shard count are removed."""
    prefix = str(tmp_path / "photos")
    stale = [tmp_path / "photos-00000-of-00007.parquet", tmp_path / "photos-00006-of-00007.parquet"]
    for path in stale:
        path.write_bytes(b"PAR1")
    # Shards of other indexes in the same folder are not this index's to remove.
    others = [tmp_path / "photos-2-00000-of-00001.parquet", tmp_path / "more_photos-00000-of-00001.parquet"]
    for path in others:
        path.write_bytes(b"another index's shard")
    results = run_beam_commands({
        "embed": embed_command(float32_export, f"{photo_folder}/*", prefix, "--rows_per_shard=100", "--batch_size=5",
                               *ONE_PROCESS),
        "rows": dump_rows_command(prefix)})
    succeeded(results["embed"], "clip_edge.beam.embed_images with one worker")
    succeeded(results["rows"], "reading the shards")
    assert all(path.read_bytes() == b"another index's shard" for path in others)
    for path in others:
        path.unlink()
    first, second = read_index(index_prefix), read_index(prefix)
    assert [(os.path.basename(s["path"]), s["rows"]) for s in first[0]["shards"]] == [
        (os.path.basename(s["path"]), s["rows"]) for s in second[0]["shards"]]
    assert sorted(path.name for path in tmp_path.glob("photos-*.parquet")) == [
        os.path.basename(s["path"]) for s in second[0]["shards"]]
    assert first[1] == second[1]
    assert list(first[2]["paths"]) == list(second[2]["paths"])
    assert list(first[2]["sha256"]) == list(second[2]["sha256"])
    difference = np.abs(first[2]["embeddings"] - second[2]["embeddings"]).max()
    sys.stderr.write(f"\nre-run with 1 worker and batches of 5: max |embedding difference| {difference:.2e}\n")
    assert difference <= 1e-6


@pytest.mark.parametrize("variant", sorted(TFLITE_BARS))
def test_tflite_index_equals_savedmodel_per_image(tflite_indexes, index_prefix, float32_export, direct, variant):
    """--model tflite:VARIANT: every image within the variant's parity bar of encode_image, the same rows and
    dead letters as the SavedModel's index, and the summary names the file."""
    embeddings, _ = direct
    summary, dead_letters, rows = read_index(tflite_indexes[variant])
    saved_summary, saved_dead_letters, saved_rows = read_index(index_prefix)
    assert sorted(rows["paths"]) == sorted(embeddings)
    assert dict(zip(rows["paths"], rows["sha256"])) == dict(zip(saved_rows["paths"], saved_rows["sha256"]))
    expected = np.stack([embeddings[path] for path in rows["paths"]])
    cosines = np.sum(rows["embeddings"] * expected, axis=1) / (
        np.linalg.norm(rows["embeddings"], axis=1) * np.linalg.norm(expected, axis=1))
    sys.stderr.write(f"\ntflite:{variant} index vs direct encode_image, {len(cosines)} images: min cosine "
                     f"{cosines.min():.8f}, mean {cosines.mean():.8f}\n")
    assert cosines.min() >= TFLITE_BARS[variant], rows["paths"][np.argmin(cosines)]
    np.testing.assert_allclose(np.linalg.norm(rows["embeddings"], axis=1), 1.0, atol=1e-5)
    assert dead_letters == saved_dead_letters
    entry = _manifest_entry(float32_export, f"tflite/image_encoder_{variant}.tflite")
    assert summary["model"] == {"model": "tflite", "variant": variant, "sha256": entry["sha256"]}
    assert summary["export"] == saved_summary["export"]


def _tflite_text_embedding(saved_model, export, variant, text):
    """The SavedModel's tokenize, then tflite/text_encoder_VARIANT.tflite: float32 [D]."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    token_ids = saved_model.signatures["tokenize"](texts=tf.constant([text]))["token_ids"].numpy()
    interpreter = Interpreter(model_path=os.path.join(export, f"tflite/text_encoder_{variant}.tflite"))
    interpreter.allocate_tensors()
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(input_detail["index"], token_ids.astype(np.int32))
    interpreter.invoke()
    return interpreter.get_tensor(output_detail["index"])[0]


@pytest.fixture(scope="module")
def tflite_query(saved_model, float32_export):
    """QUERIES[0] embedded as a search over the tflite:dynamic_int8 index embeds it (_tflite_text_embedding)."""
    return _tflite_text_embedding(saved_model, float32_export, "dynamic_int8", QUERIES[0])


def _search_commands(folder, prefixes, export, photo_folder):
    """The searches, run by beam_run. Over the SavedModel's index, both QUERIES and QUERY_IMAGE in one run (one
    load of the SavedModel for the three), 7 results each, in chunks of 37 rows so that the top-k is merged
    across chunks and across shards. Over the tflite:dynamic_int8 index, each a run with one query: QUERIES[0]
    over every row (which the device index tests rank against too), and QUERY_IMAGE."""
    image = photo_folder / QUERY_IMAGE
    every_row = len(os.listdir(photo_folder))  # the files, at least as many as the rows
    tflite = ("--index", prefixes["tflite:dynamic_int8"], "--export", export)
    return {"saved_model": module("search", "--index", prefixes["saved_model"], "--export", export, *QUERIES,
                                  "--image", image, "--top_k=7", "--chunk_rows=37"),
            "tflite text": module("search", *tflite, QUERIES[0], f"--top_k={every_row}"),
            "tflite image": module("search", *tflite, "--image", image, "--top_k=2")}


def _search_output(result):
    """clip_edge.beam.search's lines for one query -> [(score, path)], best first."""
    assert result["status"] == 0, result["stderr"][-3000:]
    return [(float(score), path) for score, path in (line.split("\t") for line in result["stdout"].splitlines())]


def _search_outputs(result):
    """clip_edge.beam.search's output for several queries -> [((kind, query), [(score, path)])] in its order,
    each query's results after its line `# text "..."` or `# image "..."`."""
    assert result["status"] == 0, result["stderr"][-3000:]
    found = []
    for line in result["stdout"].splitlines():
        if line.startswith("# "):
            kind, _, query = line[2:].partition(" ")
            found.append(((kind, json.loads(query)), []))
        else:
            assert found, f"a result before the first query's line: {line!r}"
            score, path = line.split("\t")
            found[-1][1].append((float(score), path))
    return found


def test_several_queries_are_answered_in_one_run_in_order(beam_run, photo_folder):
    """The texts first, then the images, each query's results after a line naming it (the results themselves are
    checked below, against the references)."""
    found = _search_outputs(beam_run["results"]["search"]["saved_model"])
    assert [query for query, _ in found] == [("text", QUERIES[0]), ("text", QUERIES[1]),
                                             ("image", str(photo_folder / QUERY_IMAGE))]
    assert [len(results) for _, results in found] == [7, 7, 7]


def test_tflite_search_uses_the_tflite_encoders(beam_run, tflite_indexes, tflite_query, photo_folder):
    """A tflite:dynamic_int8 index is queried with text_encoder_dynamic_int8.tflite over the SavedModel's
    tokenize (here: the reference computed in this virtualenv), and --image with the TFLite image path."""
    _, _, rows = read_index(tflite_indexes["dynamic_int8"])
    scores = rows["embeddings"] @ tflite_query
    expected = np.argsort(-scores, kind="stable")
    # Every row, best first (the top 5 among them), within float32 rounding of the reference's scores.
    found = _search_output(beam_run["results"]["search"]["tflite text"])
    assert len(found) == len(scores)
    np.testing.assert_allclose([score for score, _ in found], scores[expected], atol=2e-5)
    by_path = dict(zip(rows["paths"], scores))
    for score, path in found:
        assert abs(by_path[path] - score) < 2e-5, path
    query = str(photo_folder / QUERY_IMAGE)
    found = _search_output(beam_run["results"]["search"]["tflite image"])
    assert len(found) == 2
    assert found[0][1] == query and found[0][0] > 0.9999


@pytest.mark.parametrize("query", QUERIES)
def test_text_search_equals_numpy_brute_force(beam_run, saved_model, direct, query):
    import tensorflow as tf

    embeddings, _ = direct
    paths = sorted(embeddings)
    matrix = np.stack([embeddings[path] for path in paths])
    text = saved_model.signatures["encode_text"](texts=tf.constant([query]))["embeddings"].numpy()[0]
    scores = matrix @ text
    expected = np.argsort(-scores, kind="stable")[:7]
    # Chunks of 37 rows (_search_commands): the top-k is merged across chunks and across shards.
    found = dict(_search_outputs(beam_run["results"]["search"]["saved_model"]))["text", query]
    assert len(found) == 7
    np.testing.assert_allclose([score for score, _ in found], scores[expected], atol=2e-5)
    by_path = dict(zip(paths, scores))
    for score, path in found:
        assert abs(by_path[path] - score) < 2e-5, path


def test_image_search_finds_the_image_itself(beam_run, photo_folder):
    query = str(photo_folder / QUERY_IMAGE)
    found = dict(_search_outputs(beam_run["results"]["search"]["saved_model"]))["image", query]
    assert found[0][1] == query and found[0][0] > 0.9999
    assert all(later[0] <= earlier[0] for earlier, later in zip(found, found[1:]))


def _copy_export(float32_export, folder):
    copy = folder / "export"
    shutil.copytree(float32_export, copy)
    return copy


def _change_a_byte(path):
    """The middle byte of the file XOR 1; returns the file's new bytes."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    return bytes(data)


VARIABLES = "saved_model/variables/variables.data-00000-of-00001"
TFLITE_IMAGE_ENCODER = "tflite/image_encoder_dynamic_int8.tflite"
# The command lines embed_images refuses, each with what its error says.
COMMAND_LINE_ERRORS = [
    (["--input", "{folder}/*.tiff"], "matches no file"),
    (["--export", "{folder}"], "manifest.json: no such file"),
    (["--batch_size", "0"], "--batch_size must be positive"),
    (["--model", "tflite:dynamic_int8", "--tflite_threads", "1000000"], "--tflite_threads must be in 1..256"),
]


def _refusal_commands(folder, prefixes, export, photo_folder):
    """The refused exports and command lines, run by beam_run, each over a folder of its own under `folder`
    (named as the tests below name it): a tampered export (the launcher of embed_images, a search and a
    pipeline worker's model handler), an index searched with another export or another TFLite image encoder,
    an --output that is a pattern, and COMMAND_LINE_ERRORS."""
    commands = {}
    tampered = _copy_export(export, folder / "tampered")
    _change_a_byte(tampered / VARIABLES)
    commands["tampered embed_images"] = embed_command(tampered, f"{photo_folder}/*.gif", folder / "tampered" / "index")
    commands["tampered search"] = module("search", "--index", prefixes["saved_model"], "--export", tampered, "a dog")
    commands["tampered worker"] = script("import sys; from clip_edge.beam.pipeline import EncodeImageHandler\n"
                                         "EncodeImageHandler(sys.argv[1]).load_model()", tampered)
    # One byte, with a manifest that agrees: another SavedModel, then another TFLite image encoder.
    for name, path, index in (("another export", VARIABLES, "saved_model"),
                              ("tflite model differs", TFLITE_IMAGE_ENCODER, "tflite:dynamic_int8")):
        copy = _copy_export(export, folder / name.replace(" ", "_"))
        data = _change_a_byte(copy / path)
        manifest = json.loads((copy / "manifest.json").read_text())
        next(artifact for artifact in manifest["artifacts"] if artifact["path"] == path)["sha256"] = (
            hashlib.sha256(data).hexdigest())
        (copy / "manifest.json").write_text(json.dumps(manifest))
        commands[name] = module("search", "--index", prefixes[index], "--export", copy, "a dog")
    pattern = folder / "pattern"
    pattern.mkdir()
    (pattern / "other-00000-of-00001.parquet").write_bytes(b"another index's shard")
    for prefix in (f"{pattern}/*", f"{pattern}/photos[12]"):
        commands[f"--output {prefix}"] = embed_command(export, f"{photo_folder}/*.gif", prefix)
    for number, (args, _) in enumerate(COMMAND_LINE_ERRORS):
        flags = {"--export": str(export), "--input": f"{photo_folder}/*.gif",
                 "--output": str(folder / f"command_line_{number}" / "x")}
        extra = []
        for flag, value in zip(args[::2], args[1::2]):
            if flag in flags:
                flags[flag] = value.format(folder=photo_folder)
            else:
                extra += [flag, value]
        commands[f"command line {args}"] = module("embed_images", *[part for item in flags.items() for part in item],
                                                    *extra)
    return commands


def test_tampered_export_is_refused(beam_run):
    results, folder = beam_run["results"]["refusals"], beam_run["folders"]["refusals"] / "tampered"
    for result in (results["tampered embed_images"], results["tampered search"]):
        assert result["status"] == 1, result
        assert "variables.data-00000-of-00001: sha256" in result["stderr"] and "Traceback" not in result["stderr"]
    assert not list(folder.glob("index*"))
    # The workers' own check, which the launcher's does not replace (the export may change after launch).
    worker = results["tampered worker"]
    assert worker["status"] != 0
    assert "ExportReadError" in worker["stderr"] and "variables.data-00000-of-00001: sha256" in worker["stderr"]


def test_search_refuses_an_index_of_another_export(beam_run):
    """An export whose SavedModel differs (here: one byte, with a manifest that agrees) is another model."""
    result = beam_run["results"]["refusals"]["another export"]
    assert result["status"] == 1 and "was built with export" in result["stderr"], result["stderr"]


def test_search_refuses_a_tflite_index_whose_model_file_differs(beam_run, float32_export):
    """Same SavedModel, another image_encoder_dynamic_int8.tflite (one byte, with a manifest that agrees): the
    index's embeddings came from another model; the error names both sha256s."""
    result = beam_run["results"]["refusals"]["tflite model differs"]
    old = _manifest_entry(float32_export, TFLITE_IMAGE_ENCODER)["sha256"]
    new = _manifest_entry(beam_run["folders"]["refusals"] / "tflite_model_differs" / "export",
                          TFLITE_IMAGE_ENCODER)["sha256"]
    assert new != old
    assert result["status"] == 1 and "Traceback" not in result["stderr"], result["stderr"]
    assert f"built with {TFLITE_IMAGE_ENCODER} of sha256 {old}" in result["stderr"]
    assert f"of sha256 {new}" in result["stderr"]


def test_an_output_prefix_that_is_a_pattern_is_refused(beam_run):
    """`--output 'DIR/*'` would make the clean-up of stale shards match every index's shards in DIR."""
    folder = beam_run["folders"]["refusals"] / "pattern"
    other = folder / "other-00000-of-00001.parquet"
    for prefix in (f"{folder}/*", f"{folder}/photos[12]"):
        result = beam_run["results"]["refusals"][f"--output {prefix}"]
        assert result["status"] == 1 and "Traceback" not in result["stderr"], result["stderr"]
        assert f"--output {prefix!r} holds" in result["stderr"] and "not a pattern" in result["stderr"]
    assert os.listdir(folder) == [other.name] and other.read_bytes() == b"another index's shard"


@pytest.mark.parametrize("args, message", COMMAND_LINE_ERRORS)
def test_command_line_errors(beam_run, args, message):
    result = beam_run["results"]["refusals"][f"command line {args}"]
    assert result["status"] != 0 and message in result["stderr"] and "Traceback" not in result["stderr"]


# -- the device index (clip_edge.beam.device_index, docs/device_index.md) of the tflite:dynamic_int8 index ------------
# |float16 score - float32 score| <= 2^-11 for a unit row and query (each element rounded within 2^-11 of its
# magnitude, Cauchy-Schwarz), plus the search's 6 printed decimals and float32 summation.
FLOAT16_SCORE_ERROR = 2**-11 + 2e-6
# What a killed writer leaves beside FILE: FILE.tmp-PID of a process that is gone. Run in the Beam process just
# before the conversions, so that the pid has no time to be reused by another process.
LEAVE_A_KILLED_WRITERS_FILE = """
import subprocess, sys
gone = subprocess.Popen(["true"])
gone.wait()
with open(f"{sys.argv[1]}.tmp-{gone.pid}", "wb") as file:
    file.write(b"a killed writer's")
"""


def _device_index_commands(folder, prefixes, export, photo_folder):
    """Both --dtype conversions of the tflite:dynamic_int8 index and the refusals, run by beam_run."""
    prefix = prefixes["tflite:dynamic_int8"]
    # The int8 file replaces an older file whole, and a killed writer's temporary file (its pid gone) is deleted.
    (folder / "int8.clipidx").write_bytes(b"an older index")
    # Another image encoder (its sha256 in the manifest; the converter reads only the manifest of an export).
    other = folder / "other_export"
    other.mkdir()
    manifest = json.loads((pathlib.Path(export) / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["path"] == TFLITE_IMAGE_ENCODER)
    entry["sha256"] = hashlib.sha256(b"another model").hexdigest()
    (other / "manifest.json").write_text(json.dumps(manifest))
    commands = {"killed writer": script(LEAVE_A_KILLED_WRITERS_FILE, folder / "int8.clipidx")}
    for dtype in ("float16", "int8"):
        commands[dtype] = module("device_index", "--index", prefix, "--export", export, "--output",
                                 folder / f"{dtype}.clipidx", "--dtype", dtype, "--chunk_rows", "50")
    refused = folder / "refused.clipidx"
    commands["saved_model index"] = module("device_index", "--index", prefixes["saved_model"], "--export", export,
                                           "--output", refused)
    commands["other image encoder"] = module("device_index", "--index", prefix, "--export", other, "--output", refused)
    commands["--dtype float32"] = module("device_index", "--index", prefix, "--export", export, "--output", refused,
                                         "--dtype", "float32")
    return commands


@pytest.fixture(scope="module")
def device_indexes(beam_run, tflite_indexes):
    """Both --dtype conversions of the tflite:dynamic_int8 index, the refusals, and clip_edge.beam.search over
    every row for QUERIES[0] (_search_commands' "tflite text"):
    {"files": {dtype: path}, "results": {name: result}, "folder", "rows"}."""
    folder = beam_run["folders"]["device"]
    results = dict(beam_run["results"]["device"], search=beam_run["results"]["search"]["tflite text"])
    succeeded(results.pop("killed writer"), "leaving a killed writer's file")
    return {"files": {dtype: str(folder / f"{dtype}.clipidx") for dtype in ("float16", "int8")},
            "results": results, "folder": folder, "rows": read_index(tflite_indexes["dynamic_int8"])[0]["count"]}


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_device_index_holds_the_beam_index_rows(device_indexes, tflite_indexes, float32_export, dtype):
    """The rows are the Beam index's embeddings rounded by the document's rules, sorted by id (unsigned
    UTF-8 bytes), with the first 16 bytes of each file's sha256 and the image encoder's fingerprint."""
    from clip_edge import device_index
    from tests.test_device_index import int8_by_the_document

    result = device_indexes["results"][dtype]
    assert result["status"] == 0 and f"{device_indexes['rows']} rows" in result["stdout"], result["stderr"][-3000:]
    summary, _, rows = read_index(tflite_indexes["dynamic_int8"])
    index = device_index.read(device_indexes["files"][dtype])
    order = sorted(range(len(rows["paths"])), key=lambda i: rows["paths"][i].encode("utf-8"))
    assert index.ids == [rows["paths"][i] for i in order]
    assert index.content_hashes.tolist() == [list(bytes.fromhex(rows["sha256"][i])[:16]) for i in order]
    embeddings = rows["embeddings"][order]
    if dtype == "float16":
        assert index.scales is None and index.mean is None
        assert np.array_equal(index.rows.view(np.uint16), embeddings.astype(np.float16).view(np.uint16))
    else:  # against the mean of all rows, which the converter sums in a first pass over the shards
        expected_rows, expected_scales, expected_mean = int8_by_the_document(embeddings)
        assert np.array_equal(index.rows, expected_rows) and np.array_equal(index.scales, expected_scales)
        assert np.array_equal(index.mean, expected_mean)
    entry = _manifest_entry(float32_export, "tflite/image_encoder_dynamic_int8.tflite")
    with open(os.path.join(float32_export, "manifest.json")) as file:
        name = json.load(file)["name"]
    assert (index.image_encoder_sha256, index.variant, index.export_name) == (entry["sha256"], "dynamic_int8", name)
    assert index.image_encoder_sha256 == summary["model"]["sha256"]


def _check_ranking(found, searched, dtype, what):
    """found: [(score, id)] best first over every row, from a device index; searched: clip_edge.beam.search's
    [(score, path)] for the same query over the Beam index. float16: the same order but for ties, pairs whose
    search scores are within float16's error (FLOAT16_SCORE_ERROR each); int8: recall@10 >= 0.99."""
    exact = {path: score for score, path in searched}
    assert sorted(exact) == sorted(identifier for _, identifier in found), what
    if dtype == "float16":
        for score, identifier in found:
            assert abs(score - exact[identifier]) <= FLOAT16_SCORE_ERROR, (what, identifier)
        in_order = [exact[identifier] for _, identifier in found]
        later_best = np.maximum.accumulate(in_order[::-1])[::-1]  # best search score at or after each position
        worst = max(later - current for current, later in zip(in_order, later_best))
        moved = sum(a != b for (_, a), (_, b) in zip(found, searched))
        sys.stderr.write(f"\n{what}: {moved} of {len(found)} positions differ from the search's, by ties within "
                         f"{worst:.2e}\n")
        assert worst <= 2 * FLOAT16_SCORE_ERROR, what
    else:
        recall = len({i for _, i in found[:10]} & {p for _, p in searched[:10]}) / 10
        sys.stderr.write(f"\n{what}: recall@10 {recall:.2f}\n")
        assert recall >= 0.99, (what, found[:10], searched[:10])


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_device_index_ranks_as_the_search_does(device_indexes, tflite_query, dtype):
    """NumPy brute force over the device index (its scores as the document defines them) against
    clip_edge.beam.search over the Beam index, the query embedded as the search embeds it."""
    from clip_edge import device_index

    index = device_index.read(device_indexes["files"][dtype])
    _check_ranking(index.top_k(tflite_query, len(index.ids)), _search_output(device_indexes["results"]["search"]),
                   dtype, f"NumPy over the {dtype} device index, {QUERIES[0]!r}")


def _error_line(result, module):
    """The one error line clip_edge.beam.MODULE printed, "error: ..." or argparse's "python -m ...: error: ..."
    after its usage; a library's warning beside it on stderr is not ours to count."""
    ours = [line for line in result["stderr"].splitlines()
            if re.match(rf"(python -m clip_edge\.beam\.{module}: )?error: ", line)]
    assert len(ours) == 1, result["stderr"]
    return ours[0]


def test_device_index_refusals(device_indexes, index_prefix, float32_export):
    results = device_indexes["results"]
    for name, message in [
            ("saved_model index", f"error: {index_prefix}-summary.json: the index was built with the SavedModel "
                                  "(--model saved_model), which no device runs"),
            ("other image encoder", "was built with tflite/image_encoder_dynamic_int8.tflite of sha256 "),
            ("--dtype float32", "argument --dtype: invalid choice: 'float32'")]:
        result = results[name]
        assert result["status"] not in (0, None, "uncaught exception"), (name, result)
        assert "Traceback" not in result["stderr"], (name, result["stderr"])
        assert message in _error_line(result, "device_index"), name
    assert "tflite:VARIANT" in results["saved_model index"]["stderr"]
    assert hashlib.sha256(b"another model").hexdigest() in results["other image encoder"]["stderr"]
    assert not (device_indexes["folder"] / "refused.clipidx").exists()
    # The int8 conversion replaced the older file whole and deleted the killed writer's temporary file.
    assert sorted(p.name for p in device_indexes["folder"].glob("*.clipidx*")) == ["float16.clipidx", "int8.clipidx"]


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_jvm_search_over_the_device_index_ranks_as_the_search_does(device_indexes, tflite_query, float32_export,
                                                                   dtype):
    """android_demo/clip-jvm search (the Java core's searcher, its own tokenizer and LiteRT text encoder) over the
    converted file: the NumPy brute force over the same file, and clip_edge.beam.search over the Beam index."""
    from clip_edge import device_index
    from tests import jvm

    found = jvm.json_lines(jvm.run("search", "--export", float32_export, "--index", device_indexes["files"][dtype],
                                   "--top_k", device_indexes["rows"], QUERIES[0]))
    found = [(line["score"], line["id"]) for line in found]
    expected = device_index.read(device_indexes["files"][dtype]).top_k(tflite_query, len(found))
    # Both score by the document's rule; the query embeddings come from the same .tflite file through two
    # runtimes (LiteRT's C API, ai_edge_litert), equal but for float32 rounding: the same scores to 1e-6, and
    # Java's order is NumPy's but for rows whose NumPy scores are that close.
    by_id = {identifier: score for score, identifier in expected}
    assert sorted(by_id) == sorted(identifier for _, identifier in found)
    assert max(abs(score - by_id[identifier]) for score, identifier in found) <= 1e-6
    in_java_order = [by_id[identifier] for _, identifier in found]
    assert all(later <= earlier + 2e-6 for earlier, later in zip(in_java_order, in_java_order[1:]))
    _check_ranking(found, _search_output(device_indexes["results"]["search"]), dtype,
                   f"clip-jvm search over the {dtype} device index, {QUERIES[0]!r}")


# -- hostile files: no export or pipeline run needed ---------------------------------------------------------------
# A hang is a failure: the one process that runs the commands of these tests (the hostile fixture) gets a short
# timeout (subprocess.TimeoutExpired fails them).
HANG_TIMEOUT_S = 120
SUMMARY = {"count": 0, "failures": 0, "input": "x/*", "dimensions": 32, "shards": [], "dead_letters": "x",
           "export": {"name": "small", "saved_model_sha256": "0" * 64}}
SUMMARY_CHANGES = [
    (lambda summary: summary.pop("export"), "field 'export' is missing"),
    (lambda summary: summary["export"].pop("saved_model_sha256"), "field 'export.saved_model_sha256' is missing"),
    (lambda summary: summary.update(shards={"path": "x"}), "field 'shards' is dict, not list"),
    (lambda summary: summary.update(shards=[{"path": "x"}]), "field 'shards[0].rows' is missing"),
    (lambda summary: summary.update(dimensions="32"), "field 'dimensions' is str, not int"),
    (lambda summary: summary.update(dimensions=0), "field 'dimensions' must be positive"),
    (lambda summary: summary.update(model={"model": "tflite", "variant": "int8"}), "field 'model.sha256' is missing"),
    (lambda summary: summary.update(model={"model": "onnx"}), "field 'model.model' is 'onnx'"),
]
# The pipeline's ReadImages step on each file of argv (what the pipeline gives it: a path and the size matching
# saw, 0 for a FIFO or device): one JSON line per output.
READ_IMAGES = ("import json, sys\n"
               "from apache_beam.io.filesystem import FileMetadata\n"
               "from clip_edge.beam.pipeline import ReadImages\n"
               "for path in sys.argv[1:]:\n"
               "    for item in ReadImages(100_000_000).process(FileMetadata(path, 0)):\n"
               "        found = getattr(item, 'value', None) or {'path': item.path, 'read': len(item.data)}\n"
               "        print(json.dumps(found))\n")
# What Beam's matching lists for the pattern argv[1], and the dead letters of the entries it skips.
UNLISTED_MATCHES = ("import json, sys\n"
                    "from apache_beam.io.filesystems import FileSystems\n"
                    "from clip_edge.beam.pipeline import unlisted_matches\n"
                    "listed = [m.path for m in FileSystems.match([sys.argv[1]])[0].metadata_list]\n"
                    "print(json.dumps([listed, unlisted_matches(sys.argv[1])]))\n")
# An index of three rows written in BUILT, moved to MOVED, then read there: its dead letters' path and its rows.
MOVED_INDEX = ("import json, os, shutil, sys\n"
               "import numpy as np\n"
               "from clip_edge.beam import index\n"
               "built, moved = sys.argv[1:3]\n"
               "os.makedirs(built)\n"
               "index.write_shard(os.path.join(built, 'p-00000-of-00001.parquet'),\n"
               "                  [(f'{i}.jpg', '0' * 64, np.eye(4, dtype=np.float32)[i]) for i in range(3)], 4)\n"
               "summary = dict(count=3, failures=0, dimensions=4, dead_letters='p-dead_letters.jsonl',\n"
               "               export=dict(name='small', saved_model_sha256='0' * 64),\n"
               "               shards=[dict(path='p-00000-of-00001.parquet', rows=3)])\n"
               "with open(os.path.join(built, 'p-summary.json'), 'w') as file:\n"
               "    json.dump(summary, file)\n"
               "shutil.move(built, moved)\n"
               "read = index.read_summary(os.path.join(moved, 'p'))\n"
               "print(json.dumps([read['dead_letters'], [p for c in index.iter_chunks(read, 2) for p in c[0]]]))\n")
# A shard whose second row is bad (argv[2]: x1000 or nan), read by iter_chunks: the error, printed.
BAD_ROWS = [("x1000", "has L2 norm 1000, not 1"), ("nan", "is not finite")]
SHARD_WITH_A_BAD_ROW = ("import sys\n"
                        "import numpy as np\n"
                        "from clip_edge.beam import index\n"
                        "rows = [(f'photo{i}.jpg', '0' * 64, np.eye(4, dtype=np.float32)[i]) for i in range(3)]\n"
                        "rows[1] = (rows[1][0], rows[1][1], rows[1][2] * 1000 if sys.argv[2] == 'x1000' "
                        "else np.full(4, np.nan, np.float32))\n"
                        "index.write_shard(sys.argv[1], rows, 4)\n"
                        "summary = {'dimensions': 4, 'shards': [{'path': sys.argv[1], 'rows': 3}]}\n"
                        "try:\n"
                        "    list(index.iter_chunks(summary, 2))\n"
                        "except index.IndexFileError as error:\n"
                        "    print(error)\n")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The commands of the tests below, each over a folder of its own, in one Beam-virtualenv process:
    {"results": {key: result}, "paths": {key: what the test checks the result against}}."""
    base = tmp_path_factory.mktemp("hostile")
    commands, paths = {}, {}
    for number, (change, message) in enumerate(SUMMARY_CHANGES):
        folder = base / f"summary_{number}"
        folder.mkdir()
        summary = json.loads(json.dumps(SUMMARY))
        change(summary)
        (folder / "photos-summary.json").write_text(json.dumps(summary))
        # The summary is read before the export: --export need not exist.
        paths["summary", message] = folder / "photos"
        commands["summary", message] = module("search", "--index", folder / "photos", "--export",
                                              folder / "no-export", "a dog")
    folder = base / "fifo_query"
    folder.mkdir()
    paths["fifo query"] = fifo = folder / "query.jpg"
    os.mkfifo(fifo)
    (folder / "photos-summary.json").write_text(json.dumps(SUMMARY))
    commands["fifo query"] = module("search", "--index", folder / "photos", "--export", folder / "no-export",
                                    "--image", fifo)
    # Among several queries, after a text and a photo.
    (folder / "photo.jpg").write_bytes(photos.encoded("rocket", "JPEG"))
    commands["fifo among queries"] = module("search", "--index", folder / "photos", "--export", folder / "no-export",
                                            "a dog", "--image", folder / "photo.jpg", "--image", fifo)
    commands["no query"] = module("search", "--index", folder / "photos", "--export", folder / "no-export")
    folder = base / "inputs"
    folder.mkdir()
    photo, fifo, zeros, not_a_file = (folder / name for name in ("photo.jpg", "fifo.jpg", "zeros.jpg", "folder.jpg"))
    photo.write_bytes(photos.encoded("rocket", "JPEG"))
    os.mkfifo(fifo)
    zeros.symlink_to("/dev/zero")
    not_a_file.mkdir()
    paths["inputs"] = (photo, fifo, zeros, not_a_file)
    commands["inputs"] = script(READ_IMAGES, *paths["inputs"])
    paths["links"] = folder = base / "links"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(photos.encoded("rocket", "JPEG"))
    (folder / "broken.jpg").symlink_to(folder / "missing.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    commands["links"] = script(UNLISTED_MATCHES, f"{folder}/*.jpg")
    paths["moved"] = (base / "built", base / "moved")
    commands["moved"] = script(MOVED_INDEX, *paths["moved"])
    for bad_row, _ in BAD_ROWS:
        folder = base / f"bad_row_{bad_row}"
        folder.mkdir()
        paths["bad row", bad_row] = shard = folder / "photos-00000-of-00001.parquet"
        commands["bad row", bad_row] = script(SHARD_WITH_A_BAD_ROW, shard, bad_row)
    return {"results": run_beam_commands(commands, timeout=HANG_TIMEOUT_S), "paths": paths}


@pytest.mark.parametrize("change, message", SUMMARY_CHANGES)
def test_search_names_the_summary_field_that_is_wrong(hostile, change, message):
    result, prefix = hostile["results"]["summary", message], hostile["paths"]["summary", message]
    assert result["status"] == 1, result["stderr"]
    assert f"error: {prefix}-summary.json: {message}" in result["stderr"] and "Traceback" not in result["stderr"]


def test_search_refuses_a_fifo_as_image_without_opening_it(hostile):
    fifo = hostile["paths"]["fifo query"]
    for name in ("fifo query", "fifo among queries"):
        result = hostile["results"][name]
        assert result["status"] == 1 and "Traceback" not in result["stderr"], result["stderr"]
        assert f"error: --image {fifo}: not a regular file" in result["stderr"]


def test_search_needs_a_query(hostile):
    result = hostile["results"]["no query"]
    assert result["status"] == 2 and "Traceback" not in result["stderr"], result["stderr"]
    assert "give a query text or --image PATH (or several)" in _error_line(result, "search")


def test_fifos_and_devices_among_the_inputs_are_dead_letters(hostile):
    """The pipeline's ReadImages step on each kind of file (READ_IMAGES)."""
    result = hostile["results"]["inputs"]
    photo, fifo, zeros, folder = hostile["paths"]["inputs"]
    assert result["status"] == 0, result["stderr"]
    found = [json.loads(line) for line in result["stdout"].splitlines()]
    not_regular = "not a regular file (a FIFO, device or folder)"
    assert found == [{"path": str(photo), "read": photo.stat().st_size},
                     {"path": str(fifo), "reason": not_regular}, {"path": str(zeros), "reason": not_regular},
                     {"path": str(folder), "reason": not_regular}]


def test_links_to_nothing_and_link_loops_among_the_inputs_are_dead_letters(hostile):
    """Beam's matching skips them without a word (it cannot read their size); the pipeline's UnlistedMatches step
    gives each a dead letter, so that every input is embedded or dead-lettered."""
    result, folder = hostile["results"]["links"], hostile["paths"]["links"]
    assert result["status"] == 0, result["stderr"]
    listed, letters = json.loads(result["stdout"].strip().splitlines()[-1])
    assert listed == [str(folder / "photo.jpg")]
    assert letters == [
        {"path": str(folder / "broken.jpg"),
         "reason": "cannot read: No such file or directory (a symbolic link to a missing file)"},
        {"path": str(folder / "loop.jpg"), "reason": "cannot read: Too many levels of symbolic links"}]


def test_an_index_folder_that_moved_is_still_read(hostile):
    """Shards are listed by file name beside the summary: a folder moved after embed_images still reads (a
    summary of an earlier version, with whole paths, too)."""
    result, (_, moved) = hostile["results"]["moved"], hostile["paths"]["moved"]
    assert result["status"] == 0, result["stderr"]
    assert json.loads(result["stdout"]) == [str(moved / "p-dead_letters.jsonl"), ["0.jpg", "1.jpg", "2.jpg"]]


@pytest.mark.parametrize("bad_row, message", BAD_ROWS)
def test_search_refuses_shard_rows_that_are_not_unit_embeddings(hostile, bad_row, message):
    """A shard edited by hand (a row x1000 scored a cosine of 22.99) or holding NaN is named, not ranked."""
    result, shard = hostile["results"]["bad row", bad_row], hostile["paths"]["bad row", bad_row]
    assert result["status"] == 0, result["stderr"]
    assert result["stdout"].strip() == (f"{shard}: the embedding of 'photo1.jpg' {message} (1 such rows in this "
                                        "chunk); the shard was not written by clip_edge.beam.embed_images as is")
