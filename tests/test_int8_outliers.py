"""int8 on checkpoints with trained-like activation outliers.

The stress checkpoints (tests/stress_checkpoints.py) are checked against transformers itself: the
function-preserving kinds must give transformers' outputs of the unedited model. The equalisation
(clip_edge.equalization) must keep clip_edge's float function, and the q/k balancing must keep attention scores
while giving q and k the same range. Then the claim that matters: on a tiny stressed checkpoint the old image
recipe misses the int8 bar and the recommended one meets it, measured on the exporter's held-out photos; and on
members of the generated family, drawn anew every run (the seed is printed and named in every failure;
CLIP_EDGE_STRESS_SEED=N replays it), both int8 encoders meet the bar. The float fallback
(converters.int8_fallback) is checked on its own: its sensitivity finds the ops that read outlier channels, and
the ops it names are the ones left in float in the file.
"""

import dataclasses
import os
import secrets

import numpy as np
import pytest
import tensorflow as tf

import clip_edge
from clip_edge import equalization
from clip_edge.preprocessing import ImagePreprocessor
from converters import datasets, int8_fallback, parity, serving, tflite_model, tflite_variants
from converters.variants import VARIANTS

from tests import photos
from tests import reference
from tests import stress_checkpoints

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
    for key in ("image/1/layer_norm1", "image/1/layer_norm2", "text/0/layer_norm1", "text/1/layer_norm2"):
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
        layers = [getattr(m, f"{tower}_encoder").encoder.layers[0] for m in (stressed, balanced)]
        # The scores q k^T per head from an arbitrary residual stream (exact for every input); through layer_norm1,
        # which the LayerNorm rescaling changed together with q/k/v's input rows.
        scores = [tf.matmul(layer.self_attn._split_heads(layer.self_attn.q_proj(layer.layer_norm1(x)), 17),
                            layer.self_attn._split_heads(layer.self_attn.k_proj(layer.layer_norm1(x)), 17),
                            transpose_b=True) for layer in layers]
        np.testing.assert_allclose(scores[1].numpy(), scores[0].numpy(), rtol=1e-5,
                                   atol=1e-6 * np.max(np.abs(scores[0].numpy())))
        q, k = statistics[f"{tower}/0/q"], statistics[f"{tower}/0/k"]
        assert q.max() > 30 * np.median(q)  # the stress checkpoint's outlier q dims
        np.testing.assert_allclose(new[f"{tower}/0/q"], new[f"{tower}/0/k"], rtol=1e-4)
        np.testing.assert_allclose(new[f"{tower}/0/q"], np.sqrt(q * k), rtol=1e-4)


def _int8_cosine(model, recipe_name, tower="image"):
    """Min cosine of the tower's int8 variant to the float model on held-out photos or sentences, as the
    exporter makes it (equalised first when the recipe says so, calibrated on the exporter's photos)."""
    resolution = model.get_config()["image_resolution"]
    recipe = tflite_variants.INT8_RECIPES[recipe_name]
    if tower == "image":
        calibration = datasets.builtin_images(datasets.CALIBRATION_PHOTOS, resolution)
        held_out = [x[None] for x in datasets.builtin_images(datasets.HELD_OUT_PHOTOS, resolution)]
        inputs = {"images": ImagePreprocessor(resolution).normalize(calibration).numpy()}
        encoder = serving.tflite_image_encoder
    else:
        calibration = reference.reference_token_ids(reference.SENTENCES, 77)
        held_out = [x[None] for x in reference.reference_token_ids(datasets.held_out_sentences(), 77)]
        inputs = {"token_ids": calibration}
        encoder = serving.tflite_text_encoder
    source = model
    if recipe.equalization_alpha is not None:
        source = equalization.equalize(model, alpha=recipe.equalization_alpha, towers=(tower,), **inputs)
    function = encoder(model)
    reference_embeddings = np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in held_out])
    int8 = tflite_variants.convert_variants(encoder(source), ["int8"],
                                            tflite_variants.representative([x[None] for x in calibration]),
                                            int8_recipe=recipe_name, crops_per_photo=datasets.CROPS_PER_PHOTO)["int8"]
    return parity.cosine_rows(tflite_variants.run_tflite(int8.tflite, held_out), reference_embeddings).min()


def _int8_image_cosine(model, recipe_name):
    return _int8_cosine(model, recipe_name, "image")


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
    # Every int8 artifact says which ops the float fallback kept in float (a list, empty when none), with why.
    int8 = [a for a in manifest["artifacts"] if a.get("variant") == "int8"]
    assert len(int8) == len(parity.TOWERS)
    for artifact in int8:
        assert isinstance(artifact["float_ops"], list), artifact
        assert all(op["op"] and op["why"] for op in artifact["float_ops"]), artifact["float_ops"]
    report = (tmp_path / "out" / "stressed" / "parity_report.md").read_text()
    assert report.count("kept in float by measurement") == len(parity.TOWERS), report


# The generated family in CI: members of these sizes, this many per run.
CI_FAMILY_SIZES = ("tiny", "small")
CI_FAMILY_COUNT = 2


@pytest.fixture(scope="module")
def family_seed():
    """Drawn anew every run, so that the recipes cannot be tuned to a fixed list; CLIP_EDGE_STRESS_SEED=N
    replays run N. Printed here and named in every assertion message."""
    seed = os.environ.get("CLIP_EDGE_STRESS_SEED")
    seed = int(seed) if seed else secrets.randbelow(2**31)
    print(f"stress family seed {seed} (replay: CLIP_EDGE_STRESS_SEED={seed})")
    return seed


def _replay(seed):
    return f"stress family seed {seed}, replay with CLIP_EDGE_STRESS_SEED={seed}"


def test_family_members_are_replayable_and_carry_their_outliers(family_seed):
    """The same seed draws the same members; a member keeps transformers' float function of its unedited model
    unless it has massive tokens, and has the outliers its pattern names (on transformers' own parameters)."""
    members = stress_checkpoints.family(family_seed, CI_FAMILY_COUNT, CI_FAMILY_SIZES)
    assert members == stress_checkpoints.family(family_seed, CI_FAMILY_COUNT, CI_FAMILY_SIZES), _replay(family_seed)
    for member in members:
        label = f"{member.name} ({_replay(family_seed)})"
        size = stress_checkpoints.FAMILY_SIZES[member.size]
        resolution = size[4]
        pixels = reference.hf_pixel_values([photos.photo(n) for n in ("chelsea", "rocket")], resolution)
        ids = reference.reference_token_ids(reference.SENTENCES[:6], 77)
        before = reference.hf_features(reference.random_hf_clip(member.config(), seed=member.seed), pixels, ids)
        stressed = member.hf_model()
        after = reference.hf_features(stressed, pixels, ids)
        differences = [np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip(after[:2], before[:2])]
        if member.function_preserving:
            assert max(differences) < 1e-4, (label, differences)
        else:
            assert max(differences) > 1e-2, (label, differences)
        for tower in (stressed.vision_model, stressed.text_model):
            layer = tower.encoder.layers[-1]
            final = getattr(tower, "post_layernorm", None) or getattr(tower, "final_layer_norm")
            for target, norm in (("qkv", layer.layer_norm1), ("fc1", layer.layer_norm2), ("projection", final)):
                gamma = norm.weight.detach().abs().numpy()
                outlying = gamma.max() > 5 * np.median(gamma)
                assert outlying == (target in member.targets), (label, target, gamma.max(), np.median(gamma))
            q, k = (getattr(layer.self_attn, n).weight.detach().abs().sum(axis=1).numpy() for n in ("q_proj", "k_proj"))
            spread = max(q.max() / np.median(q), k.max() / np.median(k))
            assert (spread > 5) == bool(member.qk_dims), (label, spread)


def test_int8_meets_the_bar_on_members_of_the_family(family_seed, tmp_path):
    """The recommended int8 recipe of each tower meets the int8 bar on held-out data, for members drawn anew
    every run (small sizes here; the benchmark measures the whole family, docs/quantization.md)."""
    bar = VARIANTS["int8"].bar
    for index, member in enumerate(stress_checkpoints.family(family_seed, CI_FAMILY_COUNT, CI_FAMILY_SIZES)):
        model = clip_edge.CLIP.from_checkpoint(str(member.write(tmp_path / str(index))))
        for tower in ("image", "text"):
            cosine = _int8_cosine(model, tflite_variants.RECOMMENDED_INT8_RECIPES[f"{tower}_encoder"], tower)
            assert cosine >= bar, f"{tower} int8 {cosine:.4f} < {bar} on {member.name} ({_replay(family_seed)})"


def _weight_op_outputs(tflite):
    """{scope: output dtype} of subgraph 0's ops with weights."""
    return {int8_fallback.op_scope(op): op.outputs[0].dtype
            for op in tflite_model.parse_model(tflite, "model").ops if op.name in int8_fallback.CANDIDATE_OPS}


def _quantized(float32, recipe, pixels, keep_float=()):
    from ai_edge_quantizer import quantizer

    qt = quantizer.Quantizer(float32, tflite_variants.ai_edge_quantizer_recipe(recipe, float32, keep_float))
    calibration = qt.calibrate({"serving_default": [{"pixels": x[None]} for x in pixels]}, num_threads=1)
    return bytes(qt.quantize(calibration, enable_progress_bar=False, enable_progress_report=False).quantized_model)


def _tensors(tflite, sample):
    """{tensor name: value (dequantised if int8)} of every tensor of subgraph 0 after one run."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=tflite, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.get_signature_runner("serving_default")(**sample)
    values = {}
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # tensors without data (none kept for them)
            continue
        scale, zero_point = detail["quantization"]
        values.setdefault(detail["index"], (value.astype(np.float64) - zero_point) * scale
                          if value.dtype == np.int8 and scale else value.astype(np.float64))
    return values


def test_sensitivity_is_each_ops_own_error(stressed):
    """op_errors computes what each op should have returned in numpy; checked against LiteRT itself: in a model
    where that op alone is quantised its input is the float model's, so its error is the difference between the
    two models' outputs of the op."""
    pixels, _, _ = _calibration(stressed)
    float32 = tflite_variants.convert_variants(serving.tflite_image_encoder(stressed), ["float32"])["float32"].tflite
    recipe = tflite_variants.INT8_RECIPES["aeq_a8w8_weight_ops"]
    float_ops = [op for op in tflite_model.parse_model(float32, "float32").ops
                 if op.name in int8_fallback.CANDIDATE_OPS]
    scopes = [int8_fallback.op_scope(op) for op in float_ops]
    samples = [{"pixels": x[None]} for x in pixels[:2]]
    for index in (0, 5, len(scopes) - 1):  # the patch embedding, fc1 of block 0, the projection
        only = _quantized(float32, recipe, pixels, keep_float=scopes[:index] + scopes[index + 1:])
        (error,) = int8_fallback.op_errors(float32, only, "serving_default", samples)
        assert error.scope == scopes[index]
        quantized_op = [op for op in tflite_model.parse_model(only, "int8").ops
                        if op.name in int8_fallback.CANDIDATE_OPS][index]
        assert quantized_op.outputs[0].dtype == "int8"
        squared = np.zeros(2)
        for sample in samples:
            got = _tensors(only, sample)[quantized_op.outputs[0].index]
            expected = _tensors(float32, sample)[float_ops[index].outputs[0].index]
            squared += np.sum((got - expected) ** 2), np.sum(expected ** 2)
        direct = np.sqrt(squared[0] / squared[1])
        assert 0.001 < direct and abs(error.error - direct) <= 1e-3 * direct, (scopes[index], error.error, direct)


def test_float_fallback_keeps_the_ops_it_names_in_float(stressed):
    """On the unequalised combined x100 checkpoint int8 everywhere misses the target: the search must keep ops in
    float, name exactly those in the file's float ops, stay within its MAC budget and end above int8 everywhere
    on the calibration data."""
    pixels, _, _ = _calibration(stressed)
    float32 = tflite_variants.convert_variants(serving.tflite_image_encoder(stressed), ["float32"])["float32"].tflite
    recipe = tflite_variants.INT8_RECIPES["aeq_a8w8_weight_ops"]
    plain, none = tflite_variants.quantize_with_ai_edge_quantizer(
        float32, recipe, tflite_variants.representative([x[None] for x in pixels]))
    assert none == ()
    samples = {"serving_default": [{"pixels": x[None]} for x in pixels]}
    errors = int8_fallback.op_errors(float32, plain, "serving_default", samples["serving_default"][:4])

    searched, float_ops = tflite_variants.quantize_with_ai_edge_quantizer(
        float32, dataclasses.replace(recipe, float_fallback=True),
        tflite_variants.representative([x[None] for x in pixels]))
    assert float_ops, "int8 everywhere met the target on the unequalised checkpoint; nothing was searched"
    named = {op["op"].split(" ", 1)[1] for op in float_ops}
    dtypes = _weight_op_outputs(searched)
    assert {scope for scope, dtype in dtypes.items() if dtype == "float32"} == named, (named, dtypes)
    macs = {e.scope: e.macs for e in errors}
    assert sum(macs[scope] for scope in named) <= int8_fallback.MAX_FLOAT_MAC_SHARE * sum(macs.values())
    reference_outputs = int8_fallback.signature_outputs(float32, samples, 1)
    assert (int8_fallback.min_cosine(reference_outputs, searched, samples, 1)
            > int8_fallback.min_cosine(reference_outputs, plain, samples, 1))


def test_the_check_stops_after_a_quarter_of_the_views_only_when_clear_of_the_target(stressed, monkeypatch):
    """The fallback's check measures every view of every calibration photo first, each on one of its crops, and
    the other views only when int8 is not clear of the target there: clear (at most QUICK_DEFICIT_SHARE of the
    target's distance from 1), it returns int8 everywhere after 2N of the 5N inputs; not clear, it measures all
    5N and judges on their min. With one image per photo (a user's folder) the first set is every view. The views
    are built here from their definition, and the cosines computed here on them."""
    pixels, _, _ = _calibration(stressed)
    float32 = tflite_variants.convert_variants(serving.tflite_image_encoder(stressed), ["float32"])["float32"].tflite
    plain, _ = tflite_variants.quantize_with_ai_edge_quantizer(
        float32, tflite_variants.INT8_RECIPES["aeq_a8w8_weight_ops"],
        tflite_variants.representative([x[None] for x in pixels]))
    views = [np.clip(pixels.astype(np.float32) * np.float32(scale) + offset, 0, 255).astype(np.uint8)
             for scale, offset in int8_fallback.PHOTOMETRIC_VIEWS]
    n, count, crops = len(pixels), len(views), datasets.CROPS_PER_PHOTO
    assert count == crops and n % crops == 0  # below: photo p's crop c in view c
    first = np.concatenate([pixels, np.stack([views[i % crops][i] for i in range(n)])])
    every = np.concatenate([pixels] + views)
    samples = {"serving_default": [{"pixels": x[None]} for x in pixels]}
    for per_photo, expected in ((crops, first[n:]), (1, every[n:])):
        got, _ = int8_fallback.photometric_views(samples, per_photo)
        assert sorted(s["pixels"].tobytes() for s in got["serving_default"]) == sorted(
            x[None].tobytes() for x in expected), per_photo

    def min_cosine(images):
        inputs = {"serving_default": [{"pixels": x[None]} for x in images]}
        return int8_fallback.min_cosine(int8_fallback.signature_outputs(float32, inputs, 1), plain, inputs, 1)

    quick, full = min_cosine(first), min_cosine(every)
    share = int8_fallback.QUICK_DEFICIT_SHARE
    # A target the first quarter is clear of, and one it is not clear of while every view meets it.
    clear = 1 - (1 - quick) / share
    unclear = (full + clear) / 2
    assert unclear <= full and 1 - share * (1 - unclear) > quick, (quick, full)

    measured = []
    signature_outputs = int8_fallback.signature_outputs

    def counted(tflite, calibration, threads):
        measured.extend(sample["pixels"] for samples in calibration.values() for sample in samples)
        return signature_outputs(tflite, calibration, threads)

    def quantize(keep_float):
        assert not keep_float, "the search went on after a check that int8 everywhere passed"
        return plain

    monkeypatch.setattr(int8_fallback, "signature_outputs", counted)
    result = int8_fallback.search(float32, quantize, samples, clear - 1e-9, threads=1, crops_per_photo=crops)
    assert (result.tflite, result.float_ops, result.rounds) == (plain, (), 0)
    assert len(measured) == 2 * 2 * n  # the float32 reference and int8, on the first quarter of the views
    assert sorted(x.tobytes() for x in measured) == sorted(x[None].tobytes() for x in np.concatenate([first, first]))
    assert result.first_min_cosine == pytest.approx(quick, abs=1e-9)

    measured.clear()
    result = int8_fallback.search(float32, quantize, samples, unclear, threads=1, crops_per_photo=crops)
    assert (result.tflite, result.float_ops, result.rounds) == (plain, (), 0)
    assert len(measured) == 2 * (1 + count) * n
    assert sorted(x.tobytes() for x in measured) == sorted(x[None].tobytes() for x in np.concatenate([every, every]))
    assert result.first_min_cosine == pytest.approx(full, abs=1e-9)


def test_the_check_reads_the_float_outputs_the_calibration_made(stressed, monkeypatch):
    """The fallback's check takes the float32 model's outputs of the calibration samples from the calibration's own
    runs (ai-edge-quantizer's calibrator keeping them) instead of running them again: they must be the float32
    model's outputs, in the samples' order, for every signature (LiteRT run here on each sample): the image
    encoder, and a text encoder with two signatures calibrated one after the other."""
    pixels, _, _ = _calibration(stressed)
    ids = reference.reference_token_ids(reference.SENTENCES, 77)
    given = {}
    search = int8_fallback.search

    def recorded(float32, quantize, calibration, target, threads, reference=None, crops_per_photo=1):
        given.update(reference)
        return search(float32, quantize, calibration, target, threads, reference, crops_per_photo)

    monkeypatch.setattr(int8_fallback, "search", recorded)
    recipe = tflite_variants.INT8_RECIPES["eq_aeq_a8w8_weight_ops_fallback"]
    image = tflite_variants.convert_variants(serving.tflite_image_encoder(stressed), ["float32"])["float32"].tflite
    text = tflite_variants.convert_variants(serving.tflite_text_encoders(stressed, [16]), ["float32"])[
        "float32"].tflite
    inputs = {"serving_default": [x[None] for x in ids], "tokens_16": [x[None, :16] for x in ids]}
    for float32, data in ((image, {"serving_default": [x[None] for x in pixels]}), (text, inputs)):
        given.clear()
        tflite_variants.quantize_with_ai_edge_quantizer(
            float32, recipe, {key: tflite_variants.representative(items) for key, items in data.items()})
        assert sorted(given) == sorted(data)
        for key, items in data.items():
            expected = tflite_variants.run_tflite(float32, items, num_threads=1, signature=key)
            assert given[key].shape == expected.shape, key
            np.testing.assert_allclose(given[key], expected, rtol=0, atol=1e-5 * np.abs(expected).max(), err_msg=key)


def test_ops_kept_float_stay_float_in_every_signature_of_a_text_encoder(stressed, monkeypatch):
    """A text encoder with a shorter signature runs each layer in two subgraphs: an op the fallback keeps in
    float must be float in both (the target is set out of reach, so the search keeps ops in float)."""
    monkeypatch.setattr(tflite_variants, "FALLBACK_MARGIN", 1.0)
    functions = serving.tflite_text_encoders(stressed, [16])
    float32 = tflite_variants.convert_variants(functions, ["float32"])["float32"].tflite
    ids = reference.reference_token_ids(reference.SENTENCES, 77)
    data = {"serving_default": tflite_variants.representative([x[None] for x in ids]),
            "tokens_16": tflite_variants.representative([x[None, :16] for x in ids])}
    recipe = tflite_variants.INT8_RECIPES[tflite_variants.RECOMMENDED_INT8_RECIPES["text_encoder"]]
    searched, float_ops = tflite_variants.quantize_with_ai_edge_quantizer(float32, recipe, data)
    assert float_ops
    same_weights = int8_fallback.shared_weight_scopes(float32)
    # Both subgraphs read the same weights in each block's six linear layers, the token embedding and the
    # projection (not in a [L, L] constant of the end-of-text search, whose size depends on the length).
    shared = [scopes for scopes in same_weights.values() if len(scopes) == 2]
    assert len(shared) == 6 * CONFIG.text_config.num_hidden_layers + 2, same_weights
    kept = {scope for op in float_ops for scope in same_weights[op["op"].split(" ", 1)[1]]}
    weighted = {scope for scopes in same_weights.values() for scope in scopes}
    for subgraph in range(2):
        ops = tflite_model.parse_model(searched, "text int8", subgraph).ops
        in_float = {int8_fallback.op_scope(op) for op in ops if op.name in int8_fallback.CANDIDATE_OPS
                    and op.outputs[0].dtype == "float32"} & weighted
        expected = kept & {int8_fallback.op_scope(op) for op in tflite_model.parse_model(float32, "", subgraph).ops}
        assert expected and in_float == expected, (subgraph, in_float, expected)
