"""Two edge artifacts of the exporter, on a scaled-down CLIP with random weights (transformers' CLIPModel):

- length-bucketed text encoding: the TFLite signatures tokens_16 / tokens_32 beside the full-length one, and
  CLIP.encode_text, the SavedModel and the processor at the shortest bucket, against transformers' PyTorch CLIP
  (tests/reference.py) and against the 77-length encoder, on real sentences including ones that exactly fill
  a bucket and ones a token too long for it;
- the zero-shot classifier tflite/zero_shot_{variant}.tflite against transformers' zero-shot with the same
  prompts, and the label and template files' errors.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import clip_edge
from converters import datasets, export, parity, zero_shot
from converters.variants import VARIANTS

from tests import reference

# Sentences with exactly L tokens (start and end included) and L + 1, by OpenAI's tokenizer (asserted below).
FILLS = {16: "a photo of a cat sitting on a red chair next to a window",
         17: "a photo of a cat sitting on a red chair next to a big window",
         32: "the deep field: thousands of galaxies in a tiny patch of the night sky, seen by the Hubble space "
             "telescope in orbit around the earth in december.",
         33: "the deep field: thousands of galaxies in a tiny patch of the night sky, seen by the Hubble space "
             "telescope in orbit around the earth in december last year"}
SENTENCES = reference.SENTENCES + list(FILLS.values())
# Against transformers: the export's own bars (its harness measures against the float SavedModel, which equals
# transformers to float rounding).
BARS_VS_TRANSFORMERS = {name: v.bar for name, v in VARIANTS.items()}


LABELS, TEMPLATES = reference.ZERO_SHOT_LABELS, reference.ZERO_SHOT_TEMPLATES
RESOLUTION, EMBED = 32, 32  # conftest's small_checkpoint; its small_export has the zero-shot classifier


@pytest.fixture(scope="module")
def clip_model(small_checkpoint):
    """small_checkpoint as our CLIP, for the tests that convert encoders of their own from it (none changes it)."""
    return clip_edge.CLIP.from_checkpoint(small_checkpoint)


@pytest.fixture(scope="module")
def float_reference(small_export):
    """The harness's float reference (parity.FloatReference) on small_export's SavedModel, loaded and run once
    for the module (about 10 s each time): held-out photos and sentences."""
    pixels = datasets.builtin_images(datasets.HELD_OUT_PHOTOS[:3], RESOLUTION)
    return parity.FloatReference(os.path.join(small_export, "saved_model"), pixels, datasets.held_out_sentences())


@pytest.fixture(scope="module")
def hf_model(small_checkpoint):
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(small_checkpoint).eval()


def _normalised(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def token_ids():
    return reference.reference_token_ids(SENTENCES)


@pytest.fixture(scope="module")
def hf_text(hf_model, token_ids):
    return _hf_text_features(hf_model, token_ids)


def _hf_text_features(hf_model, token_ids):
    import torch

    with torch.no_grad():
        features = hf_model.get_text_features(input_ids=torch.from_numpy(token_ids.astype(np.int64)))
    return _normalised(getattr(features, "pooler_output", features).numpy())


def test_fill_sentences_have_the_lengths_they_claim(token_ids):
    lengths = (token_ids != 0).sum(axis=1)[len(reference.SENTENCES):]
    assert list(lengths) == list(FILLS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_signature_matches_transformers_and_the_full_length(small_export, hf_text, token_ids, variant):
    path = os.path.join(small_export, f"tflite/text_encoder_{variant}.tflite")
    interpreter = Interpreter(model_path=path)
    # Plain Interpreter use (no signature) still runs the 77-length encoder: existing callers keep working.
    interpreter.allocate_tensors()
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 77]
    assert sorted(interpreter.get_signature_list()) == ["serving_default", "tokens_16", "tokens_32"]

    def run(key, rows):
        runner = interpreter.get_signature_runner(key)
        return np.stack([runner(token_ids=row[None])["embedding"][0] for row in rows])

    full = run("serving_default", token_ids)
    assert parity.cosine_rows(full, hf_text).min() >= BARS_VS_TRANSFORMERS[variant]
    ends = np.argmax(token_ids, axis=1)  # OpenAI pools at the first largest id, the end token
    fill = {length: SENTENCES.index(text) for length, text in FILLS.items()}
    for key, length in (("tokens_16", 16), ("tokens_32", 32)):
        fits = ends < length
        assert fits[fill[length]] and not fits[fill[length + 1]]  # filled: in; a token too long: next bucket
        assert fits.sum() >= 8
        found = run(key, token_ids[fits, :length])
        if variant == "float32":
            # Exactly equal, not merely close: the same arithmetic on the positions the bucket keeps.
            np.testing.assert_array_equal(found, full[fits], err_msg=key)
        else:
            assert parity.cosine_rows(found, full[fits]).min() >= VARIANTS[variant].bar, key
        assert parity.cosine_rows(found, hf_text[fits]).min() >= BARS_VS_TRANSFORMERS[variant], key
        # The text one token too long, cut to the bucket, loses its end token: a different embedding. The
        # bucket rule is not a formality.
        cut = run(key, token_ids[fill[length + 1]][None, :length])
        assert parity.cosine_rows(cut, hf_text[fill[length + 1]][None])[0] < 0.99


def test_manifest_lists_every_signature(small_export):
    manifest = json.loads(open(os.path.join(small_export, "manifest.json")).read())
    assert manifest["text_buckets"]["lengths"] == [16, 32, 77]
    for variant in VARIANTS:
        (entry,) = [a for a in manifest["artifacts"] if a["path"] == f"tflite/text_encoder_{variant}.tflite"]
        assert [(s["key"], s["length"]) for s in entry["signatures"]] == [
            ("serving_default", 77), ("tokens_16", 16), ("tokens_32", 32)]
        for signature in entry["signatures"]:
            assert signature["inputs"][0]["shape"] == [1, signature["length"]]
            assert signature["inputs"][0]["dtype"] == "int32" and signature["outputs"][0]["shape"] == [1, EMBED]
            assert signature["parity"]["passed"] and signature["parity"]["examples"] > 0
            if variant == "float16":  # each signature's own subgraph is checked, the others are not control flow
                assert signature["delegate"]["target"] == "gpu" and signature["delegate"]["model_problems"] == []
        assert entry["inputs"][0]["shape"] == [1, 77]  # the default subgraph, as before
    report = open(os.path.join(small_export, "parity_report.md")).read()
    assert "text_encoder_float32.tflite [tokens_16]" in report


def test_weights_are_stored_once(small_export, clip_model):
    """The three-signature float32 file is barely larger than a 77-only conversion of the same model."""
    from converters import serving, tflite_variants

    single = tflite_variants.convert_variants(serving.tflite_text_encoder(clip_model), ["float32"])["float32"].tflite
    multi = os.path.getsize(os.path.join(small_export, "tflite/text_encoder_float32.tflite"))
    assert len(single) < multi < 1.02 * len(single)


def test_clip_encode_text_runs_the_shortest_bucket(small_checkpoint, hf_text, token_ids):
    model = clip_edge.CLIP.from_checkpoint(small_checkpoint)
    assert model.text_buckets == (16, 32, 77)
    fill = {length: SENTENCES.index(text) for length, text in FILLS.items()}
    batches = {16: [0, 1, fill[16]], 32: [0, fill[17], fill[32]], 77: [fill[33], 2]}
    for expected_length, rows in batches.items():
        ids = token_ids[rows]
        assert int(clip_edge.model.text_bucket_length(ids, model.text_buckets)) == expected_length
        bucketed = model.encode_text(ids, padding_mask=(ids != 0).astype(np.int32)).numpy()
        np.testing.assert_allclose(_normalised(bucketed), hf_text[rows], atol=2e-5)
        model.text_buckets = ()
        np.testing.assert_array_equal(bucketed, model.encode_text(ids).numpy())  # bit for bit
        model.text_buckets = (16, 32, 77)
    assert model.encode_text(np.zeros([0, 77], np.int32)).shape == (0, EMBED)


def test_processor_trims_to_the_bucket(token_ids):
    processor = clip_edge.CLIPProcessor.from_preset("clip-vit-base-patch32")
    short = processor([SENTENCES[0], FILLS[16]], buckets=(16, 32))
    assert short["token_ids"].shape == (2, 16)
    np.testing.assert_array_equal(short["token_ids"].numpy(), token_ids[[0, len(reference.SENTENCES)], :16])
    assert processor([FILLS[17]], buckets=(16, 32))["token_ids"].shape == (1, 32)
    assert processor([FILLS[33]], buckets=(16, 32))["token_ids"].shape == (1, 77)
    assert processor([FILLS[16]])["token_ids"].shape == (1, 77)


def test_saved_model_encode_text_matches_transformers(float_reference, hf_text):
    model = float_reference.model  # small_export's SavedModel
    found = {}
    for rows in ([0, 1], [0, SENTENCES.index(FILLS[17])], [0, SENTENCES.index(FILLS[33])],
                 list(range(len(SENTENCES)))):
        found[tuple(rows)] = model.signatures["encode_text"](
            texts=tf.constant([SENTENCES[i] for i in rows]))["embeddings"].numpy()
        np.testing.assert_allclose(found[tuple(rows)], hf_text[rows], atol=2e-5)
    # The README's promise: the bucket a batch runs (16, 32 or 77 here, set by its longest text) changes no bit.
    first = [embeddings[0] for embeddings in found.values()]
    assert all(np.array_equal(first[0], other) for other in first[1:])


def test_harness_refuses_a_bucket_that_differs_from_the_full_length(small_export, small_checkpoint, clip_model,
                                                                   float_reference, tmp_path):
    """A text encoder whose tokens_16 signature was traced from another model (the last layer's layer_norm2
    weight 1% off, as a stale bucket would be) is refused on that signature alone; the real file passes every
    one."""
    from converters import serving, tflite_variants

    stale = clip_edge.CLIP.from_checkpoint(small_checkpoint)
    weights = stale.text_encoder.encoder.layers[-1].layer_norm2.weight
    weights.assign(weights * 1.01)
    functions = serving.tflite_text_encoders(clip_model, [16, 32])
    functions["tokens_16"] = serving.tflite_text_encoder(stale, 16)
    broken = tmp_path / "export"
    shutil.copytree(small_export, broken)
    (broken / "tflite/text_encoder_float32.tflite").write_bytes(
        tflite_variants.convert_variants(functions, ["float32"])["float32"].tflite)
    for folder, expected in ((small_export, {"serving_default": True, "tokens_16": True, "tokens_32": True}),
                             (broken, {"serving_default": True, "tokens_16": False, "tokens_32": True})):
        results = parity.measure(str(folder), ["float32"], float_reference.pixels, datasets.held_out_sentences(),
                                 latency_repeats=1, towers=("text",), reference=float_reference)
        assert {r.signature: r.passed for r in results} == expected, folder
    (refused,) = [r for r in results if r.signature == "tokens_16"]
    assert "full-length signature" in refused.shortfall(), refused.shortfall()


def test_bad_buckets():
    with pytest.raises(ValueError, match=r"text buckets \[80\] are outside 2..76"):
        clip_edge.model.text_buckets(77, (16, 80))
    assert clip_edge.model.text_buckets(77, ()) == (77,)


class _WordCountReference:
    """parity.boundary_sentences' view of a tokenizer: a word of n hyphen-joined parts is n tokens."""

    def texts(self, sentences):
        counts = [2 + sum(len(word.split("-")) for word in s.split()) for s in sentences]
        return np.array([[1] * n + [0] * (77 - n) for n in counts]), None


def test_boundary_sentences_give_every_bucket_a_text_that_fits():
    # Prefix token counts 2 (the empty text), 3, 4, 7, 8: no prefix has 5 or 6 tokens.
    pool = ["a cat big-red-dog", "sat"]
    counts = lambda texts: list((_WordCountReference().texts(texts)[0] != 0).sum(axis=1))  # noqa: E731
    for lengths in ([2, 77], [3, 77], [5, 77], [6, 77], [2, 3, 5, 77]):
        chosen = parity.boundary_sentences(_WordCountReference(), lengths, pool)
        for length in lengths[:-1]:
            assert any(n <= length for n in counts(chosen)), (length, chosen)
            assert any(n > length for n in counts(chosen)), (length, chosen)
    # Exact fills (and a token too long) when prefixes have them.
    assert counts(parity.boundary_sentences(_WordCountReference(), [3, 77], pool)) == [3, 4]
    assert parity.boundary_sentences(_WordCountReference(), [2, 77], pool) == ["", "a"]


def test_the_smallest_buckets_are_measured_on_every_signature(small_export, clip_model, float_reference, tmp_path):
    # --text_buckets=2 used to fail in the parity stage ("need at least one array to stack"): no measured
    # sentence had 2 tokens. The empty text does; 5 is a length no caption prefix has exactly. The export's parity
    # stage is parity.measure on the converted file, run here on a text encoder converted with those buckets.
    from converters import serving, tflite_variants

    folder = tmp_path / "export"
    shutil.copytree(small_export, folder)
    (folder / "tflite/text_encoder_float32.tflite").write_bytes(tflite_variants.convert_variants(
        serving.tflite_text_encoders(clip_model, [2, 3, 5]), ["float32"])["float32"].tflite)
    rows = {r.signature: r for r in parity.measure(str(folder), ["float32"], float_reference.pixels,
                                                   datasets.held_out_sentences(), latency_repeats=1, towers=("text",),
                                                   reference=float_reference)}
    assert sorted(rows) == ["serving_default", "tokens_2", "tokens_3", "tokens_5"]
    assert all(r.examples >= 1 and r.passed for r in rows.values()), rows


# -- zero-shot classifier ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_zero_shot(hf_model):
    """(uint8 photos [N, R, R, 3], class probabilities [N, K]) from transformers: prompt embeddings averaged per
    class and renormalised, times exp(logit_scale), softmax over image . class."""
    import torch

    prompts = [t.replace("{}", label) for label in LABELS for t in TEMPLATES]
    text = _hf_text_features(hf_model, reference.reference_token_ids(prompts)).reshape(len(LABELS), len(TEMPLATES), -1)
    classes = _normalised(text.mean(axis=1))
    photos = datasets.builtin_images(datasets.HELD_OUT_PHOTOS, RESOLUTION)
    with torch.no_grad():
        image = hf_model.get_image_features(pixel_values=torch.from_numpy(np.ascontiguousarray(
            reference.hf_pixel_values(list(photos), RESOLUTION).transpose(0, 3, 1, 2))))
    image = _normalised(getattr(image, "pooler_output", image).numpy())
    logits = float(hf_model.logit_scale.detach().exp()) * image @ classes.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return photos, probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_shot_classifier_matches_transformers(small_export, hf_zero_shot, variant):
    photos, expected = hf_zero_shot
    interpreter = Interpreter(model_path=os.path.join(small_export, f"tflite/zero_shot_{variant}.tflite"))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.uint8 and list(inp["shape"]) == [1, RESOLUTION, RESOLUTION, 3]
    assert out["dtype"] == np.float32 and list(out["shape"]) == [1, len(LABELS)]
    found = []
    for photo in photos:
        interpreter.set_tensor(inp["index"], photo[None])
        interpreter.invoke()
        found.append(interpreter.get_tensor(out["index"])[0].copy())
    found = np.array(found)
    # int8 keeps the SOFTMAX in float (only the ops with weights are integer): probabilities sum to 1.
    np.testing.assert_allclose(found.sum(axis=1), 1.0, atol=1e-3)
    top1, max_error = np.mean(found.argmax(1) == expected.argmax(1)), np.abs(found - expected).max()
    print(f"{variant}: top-1 agreement with transformers {top1:.1%}, max probability error {max_error:.2e}")
    # transformers' preprocessing of the same pixels agrees with ours to float rounding, so the export's own
    # bars apply (the float32 one with a little room for it).
    min_top1, max_prob_error = VARIANTS[variant].zero_shot_bars
    assert top1 >= min_top1 and max_error <= max(max_prob_error, 1e-3)


def test_zero_shot_manifest_and_assets(small_export):
    manifest = json.loads(open(os.path.join(small_export, "manifest.json")).read())
    assert manifest["zero_shot"]["labels"] == LABELS and manifest["zero_shot"]["templates"] == TEMPLATES
    assert open(os.path.join(small_export, "assets/zero_shot_labels.txt")).read().splitlines() == LABELS
    listed = {a["path"]: a for a in manifest["artifacts"]}
    for variant in VARIANTS:
        entry = listed[f"tflite/zero_shot_{variant}.tflite"]
        assert entry["labels"] == "assets/zero_shot_labels.txt" and entry["parity"]["passed"]
        assert entry["outputs"][0]["shape"] == [1, len(LABELS)] and entry["inputs"][0]["dtype"] == "uint8"
    gpu = listed["tflite/zero_shot_float16.tflite"]["delegate"]
    # As the image encoder: everything but the uint8 -> float CAST at the input runs on the GPU delegate.
    assert gpu["target"] == "gpu" and gpu["unsupported_ops"] == ["CAST"] and not gpu["model_problems"]
    assert "zero_shot_float16.tflite" in open(os.path.join(small_export, "parity_report.md")).read()


def test_zero_shot_harness_refuses_permuted_classes(small_export, float_reference, tmp_path):
    """A classifier whose class embeddings are in another order than assets/zero_shot_labels.txt is refused (here
    the defect itself: the label file edited after export, its classes rolled by one); the shipped one passes."""
    permuted = tmp_path / "export"
    shutil.copytree(small_export, permuted)
    (permuted / parity.ZERO_SHOT_LABELS).write_text("\n".join(LABELS[-1:] + LABELS[:-1]) + "\n")
    pixels = float_reference.pixels
    (shipped,) = parity.measure_zero_shot(small_export, ["float32"], pixels, latency_repeats=1,
                                          reference=float_reference)
    (result,) = parity.measure_zero_shot(str(permuted), ["float32"], pixels, latency_repeats=1,
                                         reference=float_reference)
    assert shipped.passed and not result.passed, (shipped, result)
    assert "max probability error" in result.shortfall() and result.top1_agreement < 0.5, result


@pytest.mark.parametrize("labels, templates, message", [
    ("", None, r"labels.txt: the labels file is empty"),
    ("cat\ndog\n\ncat\n", None, r"labels.txt:4: duplicate label 'cat' \(first on line 1\)"),
    ("cat\n", "a photo of a {}.\na photo\n", r"templates.txt:2: template 'a photo' has no \{\}"),
    (b"cat\n\xff\n", None, r"labels.txt:2: the labels file is not UTF-8"),
    ("x" * (zero_shot.MAX_FILE_BYTES + 1), None, r"labels.txt: the labels file has 1,048,577 bytes"),
])
def test_bad_label_files_fail_before_any_work(tmp_path, labels, templates, message):
    (tmp_path / "labels.txt").write_bytes(labels if isinstance(labels, bytes) else labels.encode())
    template_file = None
    if templates is not None:
        template_file = tmp_path / "templates.txt"
        template_file.write_text(templates)
    output = tmp_path / "out"
    with pytest.raises(zero_shot.ZeroShotInputError, match=message):
        export.run_export(None, str(tmp_path / "no-checkpoint"), str(output),
                          zero_shot_labels=str(tmp_path / "labels.txt"),
                          zero_shot_templates=template_file and str(template_file))
    assert not output.exists()  # nothing was started
    with pytest.raises(zero_shot.ZeroShotInputError, match="cannot read the labels file"):
        zero_shot.read_labels(str(tmp_path / "missing.txt"))
