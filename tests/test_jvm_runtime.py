"""The Java core on LiteRT (android_demo/clip-jvm embed-image, embed-text, classify) against the exported
SavedModel, the reference for every device-side number, on real photos and sentences, for every TFLite variant.

The JVM path is all ours (Java PNG decoding, Java resize and crop, Java tokenizer, LiteRT through JNI); the
reference is the SavedModel's own signatures on the same files or the same pixels decoded by Pillow.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the SavedModel's tokenizer uses)

from tests import jvm
from tests import photos
from tests import reference
from converters import parity, tflite_variants, variants
from converters.variants import DEFAULT_SIGNATURE, VARIANTS

# Full-size photos and the odd shapes where resizing and cropping go wrong.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "tall", "wide_strip", "small", "tiny")
# Classifier labels: six captions of reference.SENTENCES (not the long one or the one with an end token inside).
LABELS = [reference.SENTENCES[i] for i in (0, 1, 2, 3, 7, 10)]


@pytest.fixture(scope="module")
def saved_model(small_export):
    return tf.saved_model.load(os.path.join(small_export, "saved_model"))


@pytest.fixture(scope="module")
def png_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        path = folder / f"{name}.png"
        path.write_bytes(photos.encoded(name, "PNG"))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def image_reference(saved_model, png_files):
    """encode_pixels on each PNG as Pillow decodes it (one call per photo: the sizes differ)."""
    from PIL import Image

    rows = []
    for path in png_files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        rows.append(saved_model.signatures["encode_pixels"](pixels=tf.constant(pixels[None]))["embeddings"][0])
    return np.stack(rows)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_embed_image_matches_saved_model(small_export, png_files, image_reference, variant):
    result = jvm.run("embed-image", "--export", small_export, "--variant", variant, *png_files)
    embeddings = np.array(jvm.json_lines(result), np.float64)
    assert embeddings.shape == image_reference.shape
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    cosines = parity.cosine_rows(embeddings, image_reference)
    assert cosines.min() >= VARIANTS[variant].bar, dict(zip(PHOTOS, cosines.round(6)))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_embed_text_matches_saved_model(small_export, saved_model, variant):
    expected = saved_model.signatures["encode_text"](texts=tf.constant(reference.SENTENCES))["embeddings"].numpy()
    result = jvm.run("embed-text", "--export", small_export, "--variant", variant, lines=reference.SENTENCES)
    embeddings = np.array(jvm.json_lines(result), np.float64)
    assert embeddings.shape == expected.shape
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    cosines = parity.cosine_rows(embeddings, expected)
    assert cosines.min() >= VARIANTS[variant].bar, dict(zip(reference.SENTENCES, cosines.round(6)))


@pytest.mark.parametrize("variant", ["float32", "dynamic_int8"])
def test_embed_text_length_buckets_equal_the_full_length(small_export, variant):
    """Texts one token short of, exactly filling and one token over each length bucket: the Java encoder picks
    the signature; Python's ai_edge_litert runs the same file's full-length signature on OpenAI's token ids."""
    with open(os.path.join(small_export, "manifest.json")) as file:
        manifest = json.load(file)
    lengths = manifest["text_buckets"]["lengths"]
    assert len(lengths) > 1, lengths
    texts, counts = [], []
    for length in lengths[:-1]:
        for count in (length - 1, length, length + 1):
            texts.append(" ".join(["a"] * (count - 2)))  # start, count - 2 words of one token, end
            counts.append(count)
    ids = reference.reference_token_ids(texts, lengths[-1])
    assert [int(np.count_nonzero(row)) for row in ids] == counts
    with open(os.path.join(small_export, variants.tflite_path("text", variant)), "rb") as file:
        full_length = tflite_variants.run_tflite(file.read(), [row[None].astype(np.int32) for row in ids],
                                                 signature=DEFAULT_SIGNATURE)
    result = jvm.run("embed-text", "--export", small_export, "--variant", variant, lines=texts)
    cosines = parity.cosine_rows(np.array(jvm.json_lines(result), np.float64), full_length)
    # float32: the same arithmetic on the kept positions; quantised: the bucket may round differently.
    bar = 1 - 1e-6 if variant == "float32" else VARIANTS[variant].bar
    assert cosines.min() >= bar, dict(zip(counts, cosines.round(7)))


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "tall"])
def test_classify_ranks_as_serving_default(small_export, saved_model, png_files, name):
    path = png_files[PHOTOS.index(name)]
    expected = saved_model.signatures["serving_default"](
        images=tf.constant([path.read_bytes()]), texts=tf.constant(LABELS))["probs"].numpy()[0]
    result = jvm.run("classify", "--export", small_export, "--variant", "float32", path, *LABELS)
    ranked = jvm.json_lines(result)
    assert sorted(entry["label"] for entry in ranked) == sorted(LABELS)
    by_label = dict(zip(LABELS, expected))
    for entry in ranked:
        assert entry["probability"] == pytest.approx(by_label[entry["label"]], abs=1e-4), entry
    # Highest first, in serving_default's order (labels whose probabilities tie to 1e-6 may swap).
    reference_in_our_order = [by_label[entry["label"]] for entry in ranked]
    assert all(a >= b - 1e-6 for a, b in zip(reference_in_our_order, reference_in_our_order[1:])), ranked
    assert sum(entry["probability"] for entry in ranked) == pytest.approx(1.0, abs=1e-6)


def _fails_with_one_line(result, *expected):
    line = jvm.error_line(result)
    for text in expected:
        assert text in line, line
    return line


def test_missing_export(tmp_path, png_files):
    missing = tmp_path / "no_such_export"
    result = jvm.run("embed-image", "--export", missing, "--variant", "float32", png_files[0], check=False)
    _fails_with_one_line(result, str(missing), "does not exist")


def test_folder_that_is_not_an_export(tmp_path):
    result = jvm.run("embed-text", "--export", tmp_path, "--variant", "float32", lines=["x"], check=False)
    _fails_with_one_line(result, str(tmp_path), "manifest.json")


def test_unknown_variant_lists_the_available_ones(small_export, png_files):
    result = jvm.run("embed-image", "--export", small_export, "--variant", "float64", png_files[0], check=False)
    line = _fails_with_one_line(result, "'float64'", "available:")
    assert all(variant in line for variant in VARIANTS)


def test_corrupt_and_missing_images_are_named(small_export, png_files, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(png_files[0].read_bytes()[:100])  # a PNG cut short
    result = jvm.run("embed-image", "--export", small_export, "--variant", "float32", corrupt, check=False)
    _fails_with_one_line(result, str(corrupt))
    missing = tmp_path / "missing.png"
    result = jvm.run("classify", "--export", small_export, "--variant", "float32", missing, "a cat", check=False)
    _fails_with_one_line(result, str(missing))


def test_tampered_artifact_fails_its_sha256(small_export, png_files, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(small_export, tampered, ignore=shutil.ignore_patterns("saved_model"))
    model = tampered / "tflite" / "image_encoder_float32.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: same size, a model that would still load
    model.write_bytes(bytes(data))
    result = jvm.run("embed-image", "--export", tampered, "--variant", "float32", png_files[0], check=False)
    _fails_with_one_line(result, str(model), "sha256")


def test_corrupt_manifest_is_named(small_export, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_export, broken, ignore=shutil.ignore_patterns("saved_model", "tflite"))
    text = (broken / "manifest.json").read_text()
    (broken / "manifest.json").write_text(text[: len(text) // 2])
    result = jvm.run("embed-text", "--export", broken, "--variant", "float32", lines=["x"], check=False)
    _fails_with_one_line(result, str(broken / "manifest.json"), "corrupt")


def test_bad_stdin_line_is_named(small_export):
    result = jvm.run("embed-text", "--export", small_export, "--variant", "float32", lines=["fine"], check=False)
    assert result.returncode == 0
    result = jvm.run("embed-text", "--export", small_export, "--variant", "float32", check=False)
    assert result.returncode == 0 and result.stdout == b""
    bad = subprocess.run([str(jvm.CLIP_JVM), "embed-text", "--export", str(small_export), "--variant", "float32"],
                         input=b'"fine"\n42\n', capture_output=True, timeout=jvm.TIMEOUT_S)
    _fails_with_one_line(bad, "stdin line 2", "not a JSON string")
    assert len(bad.stdout.decode().splitlines()) == 1  # the good line before it was answered



def test_junit_runner_tests_on_the_small_export(small_export, png_files):
    """LiteRtJvmModelTest (describe, run, close twice, length-bucket signatures equal to the full length, bad
    buffers, not-a-model errors, --threads N starting N - 1 pool threads, --accelerator gpu/npu falling back to the
    CPU's numbers), ClipClassifierOnLiteRtTest (probabilities equal to a softmax of cosines of the encoders'
    outputs) and ExportFlagsTest's loader test (clip-jvm's --threads reaching the models it opens) skip without an
    export; run them here, in one Maven process, on this one, with the JNI library clip-jvm built."""
    jvm.run("embed-image", "--export", small_export, "--variant", "float32", png_files[0])  # builds the library
    build = jvm.REPO / "android_demo"
    desktop = build / "clip-desktop"
    library = desktop / "target" / "native" / "libclipedge_litert_jni.so"
    # Under clip-jvm's build lock: both write the modules' target/. The desktop module needs the core built in the
    # same Maven run (-am), where no test matches the filter (-DfailIfNoTests=false).
    result = subprocess.run(["flock", str(desktop / "target" / ".build.lock"),
                             "mvn", "-B", "-q", "-o", "-s", "maven-settings.xml", "-pl", "clip-desktop", "-am", "test",
                             "-Dtest=LiteRtJvmModelTest,ClipClassifierOnLiteRtTest,ExportFlagsTest",
                             "-DfailIfNoTests=false", f"-Dclipedge.litert.jni={library}",
                             f"-Dclipedge.test.export={small_export}"],
                            cwd=build, capture_output=True, timeout=jvm.TIMEOUT_S)
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")[-3000:]
    reports = desktop / "target" / "surefire-reports"
    report = (reports / "dev.clipedge.clip.runtime.LiteRtJvmModelTest.txt").read_text()
    # Only the test of an unset library property may skip (the property is set here).
    assert "Tests run: 9, Failures: 0, Errors: 0, Skipped: 1" in report, report
    report = (reports / "dev.clipedge.clip.ClipClassifierOnLiteRtTest.txt").read_text()
    assert "Tests run: 1, Failures: 0, Errors: 0, Skipped: 0" in report, report
    report = (reports / "dev.clipedge.clip.cli.ExportFlagsTest.txt").read_text()
    assert "Tests run: 6, Failures: 0, Errors: 0, Skipped: 0" in report, report
