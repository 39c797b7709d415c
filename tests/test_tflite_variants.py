"""TFLite variants of a scaled-down, randomly initialised CLIP, compared with the float TF model on real photos
and real sentences (tokenised by OpenAI's tokenizer) that calibration never saw: the exporter's calibration and
held-out photos and its calibration sentences (converters.datasets), and tests/reference.py's sentences.

Random weights give near-isotropic embeddings, the hard case for quantisation; docs/delegates.md has the
measured numbers for the full-size model.
"""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import clip_edge
from converters import datasets, export, parity, serving, tflite_model, tflite_variants
from converters.variants import VARIANTS

from tests import reference

RESOLUTION, LENGTH, EMBED = 64, 16, 48
SMALL = dict(embed_dim=EMBED, image_resolution=RESOLUTION, vision_layers=2, vision_width=64, vision_patch_size=16,
             context_length=LENGTH, vocab_size=49408, transformer_width=64, transformer_heads=2,
             transformer_layers=2)
# Cosine bars for the export (min over the held-out set); see the module docstring for int8.
BARS = {name: v.bar for name, v in VARIANTS.items() if not v.calibrated}
INT8_IMAGE_BAR = VARIANTS["int8"].bar
# The text tower's recommended recipe (here without the exporter's equalisation) measured 0.990 (the
# converter's int8: 0.485; the earlier recipe, attention in float, 0.985): held to the export's own bar.
# (The image tower's: 0.994.)
INT8_TEXT_RANDOM_WEIGHTS_BAR = VARIANTS["int8"].bar


@pytest.fixture(scope="module")
def model():
    tf.random.set_seed(1)
    return clip_edge.CLIP(**SMALL)


@pytest.fixture(scope="module")
def image_case(model):
    calibration = [x[None] for x in datasets.builtin_images(datasets.CALIBRATION_PHOTOS, RESOLUTION)]
    held_out = [x[None] for x in datasets.builtin_images(datasets.HELD_OUT_PHOTOS, RESOLUTION)]
    function = serving.tflite_image_encoder(model)
    variants = tflite_variants.convert_variants(
        function, tflite_variants.VARIANTS, tflite_variants.representative(calibration),
        int8_recipe=tflite_variants.RECOMMENDED_INT8_RECIPES["image_encoder"])
    return function, variants, calibration, held_out


@pytest.fixture(scope="module")
def text_case(model):
    sentences = datasets.calibration_sentences(export.CALIBRATION_SENTENCE_COUNT)
    calibration = [r[None] for r in reference.reference_token_ids(sentences, LENGTH)]
    held_out = [r[None] for r in reference.reference_token_ids(reference.SENTENCES, LENGTH)]
    function = serving.tflite_text_encoder(model)
    variants = tflite_variants.convert_variants(
        function, tflite_variants.VARIANTS, tflite_variants.representative(calibration),
        int8_recipe=tflite_variants.RECOMMENDED_INT8_RECIPES["text_encoder"])
    return function, variants, calibration, held_out


def _float_embeddings(function, inputs):
    return np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in inputs])


@pytest.mark.parametrize("case", ["image_case", "text_case"])
def test_variants_keep_the_contract_interface(case, request):
    _, variants, _, held_out = request.getfixturevalue(case)
    assert list(variants) == list(tflite_variants.VARIANTS)
    for name, variant in variants.items():
        interpreter = Interpreter(model_content=variant.tflite)
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert inp["dtype"] == held_out[0].dtype, name  # uint8 pixels / int32 token ids, even for int8
        assert list(inp["shape"]) == list(held_out[0].shape), name
        assert out["dtype"] == np.float32 and list(out["shape"]) == [1, EMBED], name
        ops = tflite_model.parse_model(variant.tflite, name).ops
        assert not [op.name for op in ops if op.is_custom], name  # no Flex / custom ops
        assert variant.recipe


@pytest.mark.parametrize("case", ["image_case", "text_case"])
def test_float_and_dynamic_variants_meet_the_bars(case, request):
    function, variants, _, held_out = request.getfixturevalue(case)
    reference_embeddings = _float_embeddings(function, held_out)
    for name, bar in BARS.items():
        output = tflite_variants.run_tflite(variants[name].tflite, held_out)
        np.testing.assert_allclose(np.linalg.norm(output, axis=-1), 1.0, atol=1e-3, err_msg=name)
        cosines = parity.cosine_rows(output, reference_embeddings)
        assert cosines.min() >= bar, f"{name}: min cosine {cosines.min():.6f} < {bar}"


def test_float16_variant_stores_float16_weights(image_case):
    _, variants, _, _ = image_case
    ops = tflite_model.parse_model(variants["float16"].tflite).ops
    assert any(op.name == "DEQUANTIZE" and op.inputs[0].dtype == "float16" for op in ops)
    assert len(variants["float16"].tflite) < 0.6 * len(variants["float32"].tflite)


def test_int8_image_variant(image_case):
    function, variants, _, held_out = image_case
    cosines = parity.cosine_rows(tflite_variants.run_tflite(variants["int8"].tflite, held_out),
                                          _float_embeddings(function, held_out))
    assert cosines.min() >= INT8_IMAGE_BAR, variants["int8"].recipe


def test_int8_text_recipe_beats_the_converters_int8(text_case):
    function, variants, calibration, held_out = text_case
    reference_embeddings = _float_embeddings(function, held_out)
    converter_int8 = tflite_variants.convert_variants(function, ["int8"], tflite_variants.representative(calibration),
                                                      int8_recipe="converter_a8w8")["int8"]
    ours = parity.cosine_rows(tflite_variants.run_tflite(variants["int8"].tflite, held_out),
                                       reference_embeddings)
    converters = parity.cosine_rows(tflite_variants.run_tflite(converter_int8.tflite, held_out),
                                             reference_embeddings)
    assert ours.min() >= INT8_TEXT_RANDOM_WEIGHTS_BAR
    assert ours.min() > converters.min() + 0.1


def test_int8_quantizes_the_weight_matmuls(text_case):
    """Every weight matmul has int8 weights, but the few the recipe's float fallback names (float32 ones)."""
    from converters import int8_fallback

    _, variants, _, _ = text_case
    kept = {op["op"].split(" ", 1)[1] for op in variants["int8"].float_ops}
    ops = tflite_model.parse_model(variants["int8"].tflite).ops
    fully_connected = [op for op in ops if op.name == "FULLY_CONNECTED"]
    assert fully_connected and len(kept) <= len(fully_connected) // 4, variants["int8"].float_ops
    assert all(op.inputs[1].dtype == ("float32" if int8_fallback.op_scope(op) in kept else "int8")
               for op in fully_connected), kept


def test_softmax_input_adds_are_found(text_case, image_case):
    # The text tower masks attention scores with an ADD before each SOFTMAX; the image tower does not.
    text_f32, image_f32 = text_case[1]["float32"].tflite, image_case[1]["float32"].tflite
    assert len(tflite_variants.softmax_input_add_names(text_f32)) == SMALL["transformer_layers"]
    assert tflite_variants.softmax_input_add_names(image_f32) == []


def test_bad_arguments(model):
    function = serving.tflite_text_encoder(model)
    with pytest.raises(ValueError, match="unknown TFLite variants"):
        tflite_variants.convert_variants(function, ["int4"])
    with pytest.raises(ValueError, match="needs a representative_dataset"):
        tflite_variants.convert_variants(function, ["int8"])
    with pytest.raises(ValueError, match="unknown int8 recipe"):
        tflite_variants.convert_variants(function, ["int8"], lambda: iter([]), int8_recipe="magic")

    @tf.function(input_signature=[tf.TensorSpec([None, LENGTH], tf.int32, name="token_ids")])
    def dynamic_batch(token_ids):
        return model.encode_text(token_ids)

    with pytest.raises(ValueError, match="static signature with batch 1.*token_ids"):
        tflite_variants.convert_variants(dynamic_batch.get_concrete_function(), ["float32"])
