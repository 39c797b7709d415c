"""int8 on checkpoints with trained-like activation outliers.

The stress checkpoints (tests/stress_checkpoints.py) are checked against transformers itself: the
function-preserving kinds must give transformers' outputs of the unedited model. The equalisation
(clip_edge.equalization) must keep clip_edge's float function, and the q/k balancing must keep attention scores
while giving q and k the same range. Then the claim that matters: on a tiny stressed checkpoint the old image
recipe misses the int8 bar and the recommended one meets it, measured on the exporter's held-out photos.
"""

import numpy as np
import pytest
import tensorflow as tf

import clip_edge
from clip_edge import equalization
from clip_edge.preprocessing import ImagePreprocessor
from converters import datasets, parity, serving, tflite_variants
from converters.variants import VARIANTS

import photos
import reference
import stress_checkpoints

# Width 64, two layers per tower, 32-pixel images with patch 8: conversions take seconds.
CONFIG = reference.hf_clip_config(64, 2, 4, 8, 32, 64, 2, 4, 32)
RESOLUTION = 32


def _inputs():
    preprocessor = ImagePreprocessor(RESOLUTION)
    pixels = np.stack([preprocessor.resize_and_crop(photos.photo(n)).numpy() for n in ("chelsea", "rocket")])
    normalised = reference.hf_pixel_values([photos.photo(n) for n in ("chelsea", "rocket")], RESOLUTION)
    return pixels, normalised, reference.reference_token_ids(reference.SENTENCES[:6], 77)


@pytest.mark.parametrize("kind", stress_checkpoints.KINDS)
def test_stress_checkpoints_against_transformers(kind):
    """Function-preserving kinds give transformers' outputs of the original model (to float32 rounding); the
    others change them. Both carry the outliers they claim (checked on transformers' own parameters)."""
    _, pixels, ids = _inputs()
    original = reference.random_hf_clip(CONFIG, seed=0)
    stressed = stress_checkpoints.random_stressed_clip(CONFIG, kind, 100.0, seed=0)
    before = reference.hf_features(original, pixels, ids)
    after = reference.hf_features(stressed, pixels, ids)
    differences = [np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip(after, before)]
    if kind in stress_checkpoints.FUNCTION_PRESERVING:
        assert max(differences) < 1e-4, differences
    else:
        assert min(differences) > 1e-2, differences
    layer = stressed.vision_model.encoder.layers[1]
    gamma = layer.layer_norm1.weight.detach().abs().numpy()
    q_rows = layer.self_attn.q_proj.weight.detach().abs().sum(axis=1).numpy()
    if kind in ("ln_channels", "combined"):
        assert gamma.max() > 30 * np.median(gamma)
    if kind in ("qk_dims", "combined"):
        assert q_rows.max() > 30 * np.median(q_rows)
    if kind in ("residual_channels", "massive_tokens"):
        assert gamma.max() < 3 * np.median(gamma) and q_rows.max() < 3 * np.median(q_rows)


@pytest.fixture(scope="module")
def stressed(tmp_path_factory):
    """clip_edge's model of the combined stress checkpoint (LayerNorm channels, q/k dims, massive tokens)."""
    folder = tmp_path_factory.mktemp("stressed")
    stress_checkpoints.write_stressed_checkpoint(folder, CONFIG, "combined", 100.0, seed=0)
    return clip_edge.CLIP.from_checkpoint(str(folder))


def _calibration(model):
    pixels = datasets.builtin_images(datasets.CALIBRATION_PHOTOS, RESOLUTION)
    images = ImagePreprocessor(RESOLUTION).normalize(pixels).numpy()
    return pixels, images, reference.reference_token_ids(reference.SENTENCES, 77)


def test_equalization_keeps_the_float_function(stressed):
    _, images, ids = _calibration(stressed)
    before = [v.numpy().copy() for v in stressed.variables]
    equalized = equalization.equalize(stressed, images=images[:8], token_ids=ids[:8], alpha=0.5)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, stressed.variables)), "the model was changed"
    for tower in ("image", "text"):
        a = stressed.encode_images(images[8:]) if tower == "image" else stressed.encode_text(ids[8:])
        b = equalized.encode_images(images[8:]) if tower == "image" else equalized.encode_text(ids[8:])
        assert np.max(np.abs(a.numpy() - b.numpy())) <= 2e-6 * np.max(np.abs(a.numpy())), tower
    # ... and the LayerNorm outputs lost their outlier channels (100x before).
    old, new = (equalization.activation_statistics(m, images[:8], ids[:8]) for m in (stressed, equalized))
    for key in ("image/1/ln_1", "image/1/ln_2", "text/0/ln_1", "text/1/ln_2"):
        assert old[key].max() > 20 * np.median(old[key]), key
        assert new[key].max() < 3 * np.median(new[key]), (key, new[key].max(), np.median(new[key]))


def test_qk_balancing_keeps_scores_and_equalises_ranges(stressed):
    _, images, ids = _calibration(stressed)
    statistics = equalization.activation_statistics(stressed, images[:8], ids[:8])
    balanced = equalization.equalize(stressed, images=images[:8], token_ids=ids[:8], alpha=0.0,
                                     statistics=statistics)
    new = equalization.activation_statistics(balanced, images[:8], ids[:8])
    x = tf.random.stateless_normal([1, 17, 64], seed=[1, 2])
    for tower in ("image", "text"):
        blocks = [getattr(m, f"{tower}_encoder").transformer.resblocks[0] for m in (stressed, balanced)]
        # The scores q k^T per head from an arbitrary residual stream (exact for every input); through ln_1,
        # which the LayerNorm rescaling changed together with q/k/v's input rows.
        scores = [tf.matmul(b.attn._split_heads(b.attn.q_proj(b.ln_1(x)), 17),
                            b.attn._split_heads(b.attn.k_proj(b.ln_1(x)), 17), transpose_b=True) for b in blocks]
        np.testing.assert_allclose(scores[1].numpy(), scores[0].numpy(), rtol=1e-5,
                                   atol=1e-6 * np.max(np.abs(scores[0].numpy())))
        q, k = statistics[f"{tower}/0/q"], statistics[f"{tower}/0/k"]
        assert q.max() > 30 * np.median(q)  # the stress checkpoint's outlier q dims
        np.testing.assert_allclose(new[f"{tower}/0/q"], new[f"{tower}/0/k"], rtol=1e-4)
        np.testing.assert_allclose(new[f"{tower}/0/q"], np.sqrt(q * k), rtol=1e-4)


def _int8_image_cosine(model, recipe_name):
    pixels, images, _ = _calibration(model)
    recipe = tflite_variants.INT8_RECIPES[recipe_name]
    source = model
    if recipe.equalization_alpha is not None:
        source = equalization.equalize(model, images=images, alpha=recipe.equalization_alpha, towers=("image",))
    held_out = [x[None] for x in datasets.builtin_images(datasets.HELD_OUT_PHOTOS, RESOLUTION)]
    function = serving.tflite_image_encoder(model)
    reference_embeddings = np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in held_out])
    int8 = tflite_variants.convert_variants(serving.tflite_image_encoder(source), ["int8"],
                                            tflite_variants.representative([x[None] for x in pixels]),
                                            int8_recipe=recipe_name)["int8"]
    return parity.cosine_rows(tflite_variants.run_tflite(int8.tflite, held_out), reference_embeddings).min()


def test_recommended_image_recipe_meets_the_bar_where_the_old_one_fails(stressed):
    old = _int8_image_cosine(stressed, "aeq_a16w8")
    new = _int8_image_cosine(stressed, tflite_variants.RECOMMENDED_INT8_RECIPES["image_encoder"])
    assert old < VARIANTS["int8"].bar <= new, (old, new)


def test_export_of_a_stressed_checkpoint_ships_every_quantised_variant(tmp_path):
    """The exporter with its default recipes on the combined stress checkpoint: dynamic_int8 (equalised) and
    int8 of both towers meet their bars on the held-out data, and the manifest says they were equalised."""
    import json

    from converters import export, parity, variants

    checkpoint = stress_checkpoints.write_stressed_checkpoint(tmp_path / "stressed", CONFIG, "combined", 100.0)
    target, record = export.run_export(None, str(checkpoint), str(tmp_path / "out"), name="stressed",
                                       variants=("float32", "dynamic_int8", "int8"), text_buckets=[],
                                       preprocess=False)
    assert not record.rejected_variants, record.rejected_variants
    results = record.results
    assert {(r.tower, r.variant) for r in results} == {(t, v) for t in parity.TOWERS
                                                      for v in ("float32", "dynamic_int8", "int8")}
    assert all(r.passed for r in results), [r.label + " " + r.shortfall() for r in results if not r.passed]
    manifest = json.loads((tmp_path / "out" / "stressed" / "manifest.json").read_text())
    recipes = {a["path"]: a.get("recipe", "") for a in manifest["artifacts"]}
    for tower in parity.TOWERS:
        for variant in ("dynamic_int8", "int8"):
            assert recipes[variants.tflite_path(tower, variant)].startswith("equalised model"), recipes
