"""The export contract, written once: manifest.json's format_version and "contract" section against the Python
definitions they come from and against the export they describe; android_demo's compile-time copies (Contract.java)
against the same definitions; a manifest of a newer format refused by every reader (Beam, the parity harness,
clip-jvm), one without format_version read as before the contract."""

import importlib
import json
import os
import pathlib
import re
import shutil

import pytest

from tests import jvm
from tests.test_beam import embed_command, run_beam_commands

from clip_edge import export_format
from clip_edge.export_format import FORMAT_VERSION, ManifestFormatError, check_format_version
from clip_edge.image_decoding import MAX_PIXELS, MAX_SIDE
from clip_edge.model import MAX_LOGIT_SCALE
from clip_edge.preprocessing import OPENAI_MEAN, OPENAI_STD, RESIZE_RULE
from clip_edge.text_cleaning_tables import TEXT_CLEANING_FORMAT
from clip_edge.tokenizer import END_TOKEN_NAMES, HF_END_TOKEN, HF_START_TOKEN, START_TOKEN_NAMES
from converters import parity
from converters.variants import DEFAULT_SIGNATURE

CONTRACT_JAVA = (pathlib.Path(__file__).resolve().parents[1] / "android_demo" / "clip" / "src" / "main" / "java"
                 / "dev" / "clipedge" / "clip" / "Contract.java")


@pytest.fixture(scope="module")
def manifest(small_export):
    with open(os.path.join(small_export, export_format.MANIFEST)) as file:
        return json.load(file)


def _artifact(manifest, path):
    (entry,) = [a for a in manifest["artifacts"] if a["path"] == path]
    return entry


def test_manifest_states_its_format_version_and_the_python_definitions(manifest):
    assert manifest["format_version"] == FORMAT_VERSION
    contract = manifest["contract"]
    assert {key: contract["image"][key] for key in ("mean", "std", "max_side", "max_pixels", "resize")} == {
        "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "max_side": MAX_SIDE, "max_pixels": MAX_PIXELS,
        "resize": RESIZE_RULE}
    assert contract["text"]["start_token"]["spellings"] == list(START_TOKEN_NAMES)
    assert contract["text"]["end_token"]["spellings"] == list(END_TOKEN_NAMES)
    assert contract["text"]["text_cleaning_format"] == TEXT_CLEANING_FORMAT
    assert contract["zero_shot"] == {"max_logit_scale": MAX_LOGIT_SCALE}
    assert contract["signatures"]["default"] == DEFAULT_SIGNATURE
    assert contract["layout"] == {
        "manifest": export_format.MANIFEST, "report": export_format.REPORT, "saved_model": export_format.SAVED_MODEL,
        "rejected": export_format.REJECTED_DIR, "vocab": export_format.VOCAB, "merges": export_format.MERGES,
        "text_cleaning": export_format.TEXT_CLEANING, "preprocess": export_format.PREPROCESS_PATH,
        "zero_shot_labels": export_format.ZERO_SHOT_LABELS, "zero_shot_templates": export_format.ZERO_SHOT_TEMPLATES}


def test_contract_describes_the_export(small_export, manifest):
    """Every value a reader takes from the contract is what the export's files and older fields say."""
    contract, config = manifest["contract"], manifest["config"]
    image = _artifact(manifest, "tflite/image_encoder_float32.tflite")
    assert contract["image"]["resolution"] == config["image_resolution"] == image["inputs"][0]["shape"][1]
    limits = _artifact(manifest, export_format.PREPROCESS_PATH)["limits"]
    assert limits == {"max_side": contract["image"]["max_side"], "max_pixels": contract["image"]["max_pixels"]}

    with open(os.path.join(small_export, contract["layout"]["vocab"]), encoding="utf-8") as file:
        vocab = json.load(file)
    assert contract["text"]["start_token"]["id"] == vocab[HF_START_TOKEN]
    assert contract["text"]["end_token"]["id"] == vocab[HF_END_TOKEN]
    with open(os.path.join(small_export, contract["layout"]["text_cleaning"]), encoding="utf-8") as file:
        assert contract["text"]["text_cleaning_format"] == json.load(file)["format"]
    text = _artifact(manifest, "tflite/text_encoder_float32.tflite")
    keys = {str(s["length"]): s["key"] for s in text["signatures"]}
    assert contract["text"]["context_length"] == config["context_length"] == text["inputs"][0]["shape"][1]
    assert contract["text"]["bucket_lengths"] == manifest["text_buckets"]["lengths"] == sorted(map(int, keys))
    assert contract["signatures"]["text_buckets"] == manifest["text_buckets"]["signature_keys"] == keys
    assert keys[str(config["context_length"])] == contract["signatures"]["default"]
    assert contract["signatures"]["saved_model"] == list(manifest["saved_model"]["signatures"])
    assert 0 < manifest["logit_multiplier"] <= contract["zero_shot"]["max_logit_scale"]

    layout = contract["layout"]
    listed = {a["path"] for a in manifest["artifacts"]}
    for key in ("vocab", "merges", "text_cleaning", "preprocess", "zero_shot_labels", "zero_shot_templates"):
        assert layout[key] in listed, key
    assert manifest["zero_shot"]["labels_path"] == layout["zero_shot_labels"]
    assert manifest["saved_model"]["path"] == layout["saved_model"]
    assert any(path.startswith(layout["saved_model"] + "/") for path in listed)
    for key in ("manifest", "report"):
        assert os.path.isfile(os.path.join(small_export, layout[key])), key


def _java_constants():
    """{name: (value, "module.NAME" its javadoc names)} of Contract.java's constants."""
    source = CONTRACT_JAVA.read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"/\*\*((?:(?!\*/).)*)\*/\s*(?:public\s+)?static final [\w<>]+ ([A-Z_]+) = ([^;]+);",
                             source, re.DOTALL):
        doc, name, literal = match.groups()
        if literal.startswith("new "):
            continue  # PRE_CONTRACT, built from the constants
        definition = re.findall(r"([a-z_]+(?:\.[a-z_]+)+\.[A-Z_]+)", doc)
        assert definition, f"Contract.java's {name} does not name the Python definition it copies"
        if literal.startswith("List.of("):  # of strings or numbers, or of such lists
            value = json.loads(re.sub(r"\s+", " ", literal).replace("List.of(", "[").replace(")", "]"))
        elif literal.startswith('"'):
            value = json.loads(literal)
        else:  # a number: 65_535, 100_000_000L, 100.0
            value = json.loads(literal.replace("_", "").removesuffix("L"))
        found[name] = value, definition[-1]
    return found


def test_java_copies_equal_the_python_definitions():
    """Contract.java's compile-time constants against the definitions their javadoc names (the JUnit tests and the
    fallback for manifests without a contract use them). A Python definition that changes makes this fail: new
    exports state the new value in their contract, and the Java copy is the value of exports without one, so change
    it only when that is still true, and change FORMAT_VERSION and RESIZE_RULE only with the Java code."""
    constants = _java_constants()
    assert {"FORMAT_VERSION", "RESIZE_RULE", "TEXT_CLEANING_FORMAT", "MAX_SIDE", "MAX_PIXELS", "MAX_GIF_PIXELS",
            "MAX_LOGIT_SCALE", "START_TOKEN_SPELLINGS", "END_TOKEN_SPELLINGS", "DEFAULT_SIGNATURE", "MANIFEST",
            "VOCAB", "PIL_WEIGHT_BITS", "PIL_BICUBIC_A", "PRINTABLE_BYTES"} <= set(constants)
    differing = {}
    for name, (value, definition) in constants.items():
        module, _, attribute = definition.rpartition(".")
        python = getattr(importlib.import_module(module), attribute)
        if json.loads(json.dumps(python)) != value:  # tuples as lists, as in the Java literal
            differing[name] = (value, definition, python)
    assert not differing, f"{CONTRACT_JAVA.name}: {differing}"


def _export_with_manifest(folder, manifest, edit):
    """A folder holding only manifest.json: `manifest` after `edit(copy)`; readers check the format first."""
    copy = json.loads(json.dumps(manifest))
    edit(copy)
    folder.mkdir(parents=True)
    (folder / export_format.MANIFEST).write_text(json.dumps(copy))
    return folder


def _newer(manifest):
    manifest["format_version"] = FORMAT_VERSION + 1


def _pre_contract(manifest):
    del manifest["format_version"], manifest["contract"]


def test_check_format_version(manifest):
    assert check_format_version(manifest, "m.json") == FORMAT_VERSION
    assert check_format_version({"name": "old"}, "m.json") == 0
    with pytest.raises(ManifestFormatError, match=rf"^m.json: format_version is {FORMAT_VERSION + 1}, newer than "
                                                  rf"{FORMAT_VERSION}, the newest this clip_edge reads"):
        check_format_version({"format_version": FORMAT_VERSION + 1}, "m.json")
    for bad in (0, "1", 1.0, True, None):
        with pytest.raises(ManifestFormatError, match="^m.json: format_version is .*; an export writes an integer"):
            check_format_version({"format_version": bad}, "m.json")
    with pytest.raises(ManifestFormatError, match="not a JSON object"):
        check_format_version([], "m.json")


def test_parity_harness_refuses_a_newer_manifest(manifest, tmp_path):
    newer = _export_with_manifest(tmp_path / "newer", manifest, _newer)
    for folder in (export_format.SAVED_MODEL, "tflite"):
        (newer / folder).mkdir()
    with pytest.raises(SystemExit) as exit_info:
        parity.main(["--export_dir", str(newer)])
    assert str(exit_info.value) == (f"{newer / export_format.MANIFEST}: format_version is {FORMAT_VERSION + 1}, "
                                    f"newer than {FORMAT_VERSION}, the newest this clip_edge reads: the export was "
                                    "written by a newer clip_edge; update this one to read it")
    # A manifest from before the contract, and a refused export's folder (no manifest), pass the check.
    parity._check_manifest(_export_with_manifest(tmp_path / "old", manifest, _pre_contract))
    parity._check_manifest(tmp_path)


def test_beam_refuses_a_newer_manifest_and_reads_an_older_one(manifest, tmp_path):
    newer = _export_with_manifest(tmp_path / "newer", manifest, _newer)
    old = _export_with_manifest(tmp_path / "old", manifest, _pre_contract)
    found = run_beam_commands({name: embed_command(export, tmp_path / "*.png", tmp_path / f"index_{name}")
                               for name, export in (("newer", newer), ("old", old))})
    assert found["newer"]["status"] == 1 and "Traceback" not in found["newer"]["stderr"], found["newer"]
    assert (f"error: {newer / export_format.MANIFEST}: format_version is {FORMAT_VERSION + 1}, newer than "
            f"{FORMAT_VERSION}") in found["newer"]["stderr"]
    # Without format_version the manifest is read, and the export is refused only for its missing SavedModel files.
    assert found["old"]["status"] == 1, found["old"]
    assert "saved_model" in found["old"]["stderr"] and "missing" in found["old"]["stderr"], found["old"]


def test_clip_jvm_refuses_a_newer_manifest(small_export, manifest, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(small_export, newer, ignore=shutil.ignore_patterns("saved_model", "tflite"))
    edited = dict(manifest, format_version=FORMAT_VERSION + 1)
    (newer / export_format.MANIFEST).write_text(json.dumps(edited))
    result = jvm.run("tokenize", "--export", newer, lines=["a cat"], check=False)
    line = jvm.error_line(result)  # (clip-jvm's first run also reports building the jar)
    assert not result.stdout, result.stdout
    assert line.endswith(f"{newer / export_format.MANIFEST}: format_version is {FORMAT_VERSION + 1}, newer than "
                         f"{FORMAT_VERSION}, the newest this reader knows: the export was written by a newer "
                         "clip_edge; update android_demo's clip library to read it"), line
