"""clip_edge.CLIP's API and the numerical properties that parity on a few inputs would not catch."""

import numpy as np
import pytest
import tensorflow as tf

import clip_edge
from clip_edge.layers import CAUSAL_MASK_VALUE, causal_attention_mask

from tests import reference

SMALL = dict(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
             context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=2, transformer_layers=2,
             vision_heads=2)


@pytest.fixture(scope="module")
def small_model():
    tf.random.set_seed(1)
    return clip_edge.CLIP(**SMALL)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    ids = reference.reference_token_ids(reference.SENTENCES[:4])
    return images, ids


def test_default_constructor_is_vit_b32():
    config = clip_edge.CLIP().get_config()
    assert config == dict(clip_edge.PRESETS["clip-vit-base-patch32"]["config"], vision_heads=12)


@pytest.mark.parametrize("preset", sorted(clip_edge.PRESETS))
def test_preset_parameter_counts(preset):
    expected = {"clip-vit-base-patch16": 149_620_737, "clip-vit-base-patch32": 151_277_313,
                "clip-vit-large-patch14": 427_616_513, "clip-vit-large-patch14-336": 427_944_193}[preset]
    assert clip_edge.CLIP.from_preset(preset, load_weights=False).count_params() == expected


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="clip-vit-base-patch16, clip-vit-base-patch32, clip-vit-large-patch14,"):
        clip_edge.CLIP.from_preset("clip-vit-huge")


def test_preset_arguments_are_checked():
    with pytest.raises(ValueError, match=r"takes input_shape \(224, 224, 3\), got \(336, 336, 3\)"):
        clip_edge.CLIP.from_preset("clip-vit-base-patch32", load_weights=False, input_shape=(336, 336, 3))
    with pytest.raises(ValueError, match="do not also pass weights"):
        clip_edge.CLIP.from_preset("clip-vit-base-patch32", load_weights=False, weights="hub")


def test_config_round_trip(small_model):
    rebuilt = clip_edge.CLIP.from_config(small_model.get_config())
    assert rebuilt.get_config() == small_model.get_config()
    assert rebuilt.count_params() == small_model.count_params()


def test_call_returns_logits_both_ways(small_model, inputs):
    images, ids = inputs
    image_logits, text_logits = small_model({"images": images, "token_ids": ids, "padding_mask": ids != 0})
    assert image_logits.shape == (3, 4) and text_logits.shape == (4, 3)
    np.testing.assert_allclose(text_logits.numpy(), image_logits.numpy().T)
    with pytest.raises(ValueError, match="lack \\['token_ids'\\]"):
        small_model({"images": images})


def test_normalisation_is_per_row(small_model, inputs):
    """Each image's logits must not depend on which other images share the batch (as they would if the
    embeddings were normalised over the whole batch instead of per row)."""
    images, ids = inputs
    together, _ = small_model({"images": images, "token_ids": ids})
    alone, _ = small_model({"images": images[:1], "token_ids": ids})
    np.testing.assert_allclose(alone.numpy()[0], together.numpy()[0], rtol=1e-5, atol=1e-5)


def test_logit_scale_is_capped_at_100(small_model, inputs):
    """The logits are exactly min(exp(logit_scale), 100) x cosine (OpenAI clamps the learned scale at 100),
    computed here in numpy from the unnormalised features: below the cap and far above it."""
    images, ids = inputs
    model = clip_edge.CLIP.from_config(small_model.get_config())
    image = model.encode_images(images).numpy().astype(np.float64)
    text = model.encode_text(ids).numpy().astype(np.float64)
    cosines = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ (
        text / np.linalg.norm(text, axis=1, keepdims=True)).T
    for logit_scale, multiplier in ((np.log(20.0), 20.0), (10.0, 100.0)):  # exp(10) = 22026, capped
        model.logit_scale.assign(logit_scale)
        image_logits, text_logits = model({"images": images, "token_ids": ids})
        np.testing.assert_allclose(image_logits.numpy(), multiplier * cosines, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(text_logits.numpy(), multiplier * cosines.T, rtol=1e-4, atol=1e-4)


def test_text_attention_is_causal(small_model, inputs):
    _, ids = inputs
    features = small_model.encode_text(ids).numpy()
    end = int(np.argmax(ids[0]))
    after_end = ids.copy()
    after_end[0, end + 1:] = 1234  # anything after the end token must not matter
    np.testing.assert_array_equal(small_model.encode_text(after_end).numpy()[0], features[0])
    before_end = ids.copy()
    before_end[0, 1] = 1234
    assert not np.allclose(small_model.encode_text(before_end).numpy()[0], features[0])


def test_shorter_sequence_with_end_token_gives_same_embedding(small_model, inputs):
    _, ids = inputs
    length = int(np.max(np.argmax(ids, axis=1))) + 1
    np.testing.assert_allclose(small_model.encode_text(ids[:, :length]).numpy(),
                               small_model.encode_text(ids).numpy(), rtol=1e-5, atol=1e-6)


def test_causal_mask_is_finite_in_float16():
    mask = causal_attention_mask(77)
    as_half = tf.cast(mask, tf.float16).numpy()
    assert np.all(np.isfinite(as_half))
    assert as_half[0, 0, 0, 1] == np.float16(CAUSAL_MASK_VALUE) and as_half[0, 0, 1, 0] == 0
    # masked weights vanish: softmax over [0, mask] puts all weight on the first entry in float16 too
    weights = tf.nn.softmax(tf.constant([[0.0, CAUSAL_MASK_VALUE]], tf.float16)).numpy()
    assert weights[0, 1] == 0


def _max_rank(concrete_function):
    return max((t.shape.rank or 0) for op in concrete_function.graph.get_operations() for t in op.outputs)


@pytest.mark.parametrize("batch", [1, None])
def test_traces_with_static_and_dynamic_batch(small_model, inputs, batch):
    images, ids = inputs
    encode_images = tf.function(small_model.encode_images).get_concrete_function(
        tf.TensorSpec([batch, 32, 32, 3], tf.float32))
    encode_text = tf.function(small_model.encode_text).get_concrete_function(tf.TensorSpec([batch, 77], tf.int32))
    count = 1 if batch == 1 else len(ids)
    np.testing.assert_allclose(encode_images(tf.constant(images[:count])).numpy(),
                               small_model.encode_images(images[:count]).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encode_text(tf.constant(ids[:count])).numpy(),
                               small_model.encode_text(ids[:count]).numpy(), rtol=1e-5, atol=1e-5)
    assert _max_rank(encode_images) <= 4 and _max_rank(encode_text) <= 4


def test_bad_inputs_are_named(small_model, inputs):
    images, ids = inputs
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be \[N, 32, 32, 3\]"):
        small_model.encode_images(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than context_length 77"):
        small_model.encode_text(np.zeros((1, 78), np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="padding_mask must have the shape of token_ids"):
        small_model.encode_text(ids, padding_mask=np.ones((1, 3), np.int32))
