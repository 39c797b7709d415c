"""Reference parity: transformers' PyTorch CLIP, saved with save_pretrained, loaded by clip_edge."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import clip_edge
from clip_edge.checkpoint_files import CheckpointError

from tests import photos
from tests import reference

# (vision width, layers, heads, patch, image size, text width, layers, heads, projection, context length)
SCALED_CONFIGS = {
    "tiny": (64, 2, 4, 8, 32, 64, 2, 4, 32, 77),
    "odd_heads_patch14": (96, 2, 3, 14, 56, 128, 3, 2, 48, 77),
    "one_text_head_short_context": (128, 1, 8, 16, 64, 32, 2, 1, 24, 40),
    # Heads = width // 64 in both towers, OpenAI's rule: the one config whose architecture an OpenAI-layout
    # state dict (no config) fully determines.
    "openai_head_rule": (128, 2, 2, 16, 48, 128, 2, 2, 32, 77),
}

MAX_RELATIVE_ERROR = 1e-4


def assert_same_variables(loaded, expected, cast=None):
    """The same variables in the same order with equal values (`cast` applied to the expected ones)."""
    loaded, expected = list(loaded.trainable_variables), list(expected.trainable_variables)
    assert [(v.name, tuple(v.shape)) for v in loaded] == [(v.name, tuple(v.shape)) for v in expected]
    for a, b in zip(loaded, expected):
        np.testing.assert_array_equal(a.numpy(), b.numpy() if cast is None else cast(b.numpy()))


def relative_error(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def real_inputs(resolution, context_length):
    names = ["astronaut", "coffee", "chelsea", "rocket", "tall", "small"]
    pixels = reference.hf_pixel_values([photos.photo(n) for n in names], resolution)
    ids = reference.reference_token_ids(reference.SENTENCES, context_length=context_length)
    return pixels, ids


def assert_parity(ours, hf_model, pixels, ids):
    hf_image, hf_text, hf_logits = reference.hf_features(hf_model, pixels, ids)
    image_logits, text_logits = ours({"images": pixels, "token_ids": ids, "padding_mask": (ids != 0).astype("int32")})
    errors = {
        "image": relative_error(ours.encode_images(pixels).numpy(), hf_image),
        "text": relative_error(ours.encode_text(ids).numpy(), hf_text),
        "logits": relative_error(image_logits.numpy(), hf_logits),
        "text_logits": relative_error(text_logits.numpy(), hf_logits.T),
    }
    assert max(errors.values()) <= MAX_RELATIVE_ERROR, errors
    return errors


@pytest.fixture(scope="module", params=sorted(SCALED_CONFIGS))
def saved_hf_model(request, tmp_path_factory):
    config = reference.hf_clip_config(*SCALED_CONFIGS[request.param])
    model = reference.random_hf_clip(config, seed=len(request.param))
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return model, folder


def test_hugging_face_checkpoint_matches_transformers(saved_hf_model):
    hf_model, folder = saved_hf_model
    ours = clip_edge.CLIP.from_checkpoint(folder)
    vision = hf_model.config.vision_config
    assert ours.get_config()["vision_heads"] == vision.num_attention_heads
    pixels, ids = real_inputs(vision.image_size, hf_model.config.text_config.max_position_embeddings)
    assert_parity(ours, hf_model, pixels, ids)


def test_openai_layout_loads_to_identical_outputs(saved_hf_model, tmp_path):
    hf_model, folder = saved_hf_model
    hf_state = {name: tensor.numpy() for name, tensor in hf_model.state_dict().items()
                if not name.endswith("position_ids")}
    safetensors_path = str(tmp_path / "openai.safetensors")
    save_file(reference.openai_state_dict(hf_state), safetensors_path)
    pt_path = str(tmp_path / "openai.pt")
    torch.save({k: torch.from_numpy(v) for k, v in reference.openai_state_dict(hf_state).items()}, pt_path)

    from_hf = clip_edge.CLIP.from_checkpoint(folder)
    vision, text = hf_model.config.vision_config, hf_model.config.text_config
    pixels, ids = real_inputs(vision.image_size, text.max_position_embeddings)
    # OpenAI's rule, heads = width // 64, with at least one head for the scaled-down widths below 64.
    rule_heads = (max(vision.hidden_size // 64, 1), max(text.hidden_size // 64, 1))
    follows_rule = (vision.num_attention_heads, text.num_attention_heads) == rule_heads
    for path in (safetensors_path, pt_path):
        ours = clip_edge.CLIP.from_checkpoint(path)
        # OpenAI's layout carries no config: heads are inferred by the rule. The weights must load identically
        # for every config; the outputs equal transformers' where the config follows the rule.
        config = ours.get_config()
        assert (config["vision_heads"], config["transformer_heads"]) == rule_heads
        assert_same_variables(ours, from_hf)
        if follows_rule:
            assert config == from_hf.get_config()
            assert_parity(ours, hf_model, pixels, ids)


def test_a_scaled_config_follows_openai_head_rule():
    """test_openai_layout_loads_to_identical_outputs compares outputs only for such a config: there must be one."""
    assert any(c[0] // 64 == c[2] and c[5] // 64 == c[7] for c in SCALED_CONFIGS.values())


class _Node(torch.nn.Module):
    def forward(self, x):
        return x


def _torchscript_archive(state, path, half=False):
    """A scripted module tree with `state`'s dotted names as attributes, the shape of OpenAI's JIT releases
    (including the causal attn_mask tensor they keep on each text block), saved with torch.jit.save."""
    root = _Node()
    for name, value in state.items():
        *parents, leaf = name.split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, _Node())
            node = getattr(node, part)
        tensor = torch.tensor(value)
        node.register_parameter(leaf, torch.nn.Parameter(tensor.half() if half else tensor))
        if leaf == "in_proj_weight" and not name.startswith("visual."):
            node.register_buffer("attn_mask", torch.full((77, 77), float("-inf")).triu(1))
    torch.jit.save(torch.jit.script(root), path)


def test_openai_torchscript_archive(saved_hf_model, tmp_path):
    hf_model, folder = saved_hf_model
    hf_state = {name: tensor.numpy() for name, tensor in hf_model.state_dict().items()
                if not name.endswith("position_ids")}
    path = str(tmp_path / "ViT-tiny.pt")
    _torchscript_archive(reference.openai_state_dict(hf_state), path, half=True)
    from_hf = clip_edge.CLIP.from_checkpoint(folder)
    ours = clip_edge.CLIP.from_checkpoint(path)
    # OpenAI ships float16 weights: equal to the float32 ones up to float16 rounding.
    assert_same_variables(ours, from_hf, cast=lambda w: w.astype(np.float16).astype(np.float32))


def test_pytorch_bin_and_sharded_safetensors(saved_hf_model, tmp_path):
    hf_model, folder = saved_hf_model
    bin_dir = tmp_path / "bin"
    if _save_supports_bin():
        hf_model.save_pretrained(bin_dir, safe_serialization=False)
    else:
        _save_bin(hf_model, bin_dir)
    shard_dir = tmp_path / "sharded"
    hf_model.save_pretrained(shard_dir, max_shard_size="1MB")
    assert (shard_dir / "model.safetensors.index.json").exists()
    expected = clip_edge.CLIP.from_checkpoint(folder)
    for path in (bin_dir, shard_dir):
        assert_same_variables(clip_edge.CLIP.from_checkpoint(path), expected)


def _save_supports_bin():
    import inspect

    from transformers import PreTrainedModel

    return "safe_serialization" in inspect.signature(PreTrainedModel.save_pretrained).parameters


def _save_bin(hf_model, folder):
    """transformers 5 writes only safetensors; a pytorch_model.bin is what torch.save of the state dict gives."""
    os.makedirs(folder)
    hf_model.config.save_pretrained(folder)
    torch.save(hf_model.state_dict(), os.path.join(folder, "pytorch_model.bin"))


@pytest.mark.slow
def test_full_size_base_patch32_matches_transformers(tmp_path):
    config = reference.hf_clip_config(768, 12, 12, 32, 224, 512, 12, 8, 512)
    hf_model = reference.random_hf_clip(config, seed=7)
    hf_model.save_pretrained(tmp_path)
    ours = clip_edge.CLIP.from_preset("clip-vit-base-patch32", weights=str(tmp_path))
    assert ours.count_params() == 151_277_313
    pixels, ids = real_inputs(224, 77)
    errors = assert_parity(ours, hf_model, pixels, ids)
    print("full-size clip-vit-base-patch32 relative errors:", errors)


# -- bad checkpoints ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_state(tmp_path_factory):
    config = reference.hf_clip_config(*SCALED_CONFIGS["tiny"])
    model = reference.random_hf_clip(config)
    folder = tmp_path_factory.mktemp("tiny_state")
    model.save_pretrained(folder)
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors")), folder


def _write(tmp_path, tensors, config_from=None):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    if config_from:
        (folder / "config.json").write_text((config_from / "config.json").read_text())
    return folder


def test_missing_tensor_is_named(tiny_state, tmp_path):
    state, source = tiny_state
    broken = {k: v for k, v in state.items() if k != "text_model.encoder.layers.1.mlp.fc2.bias"}
    with pytest.raises(CheckpointError, match=r"text_model\.encoder\.layers\.1\.mlp\.fc2\.bias is missing"):
        clip_edge.CLIP.from_checkpoint(_write(tmp_path, broken, source))


def test_extra_tensor_is_named(tiny_state, tmp_path):
    state, source = tiny_state
    extra = dict(state, **{"vision_model.extra_head.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected tensor vision_model\.extra_head\.weight"):
        clip_edge.CLIP.from_checkpoint(_write(tmp_path, extra, source))


def test_misshapen_tensor_names_expected_and_found_shape(tiny_state, tmp_path):
    state, source = tiny_state
    name = "vision_model.encoder.layers.0.self_attn.k_proj.weight"
    bad = dict(state, **{name: np.zeros((64, 60), np.float32)})
    with pytest.raises(CheckpointError, match=rf"{name} has shape \(64, 60\), expected \(64, 64\)"):
        clip_edge.CLIP.from_checkpoint(_write(tmp_path, bad, source))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_tensor_is_refused_by_name(tiny_state, tmp_path, value):
    state, source = tiny_state
    name = "text_model.encoder.layers.0.mlp.fc1.weight"
    poisoned = state[name].copy()
    poisoned[3, 5] = value
    with pytest.raises(CheckpointError, match=rf"{name} contains NaN or infinite values"):
        clip_edge.CLIP.from_checkpoint(_write(tmp_path, dict(state, **{name: poisoned}), source))


def test_config_that_disagrees_with_the_tensors_is_refused(tiny_state, tmp_path):
    """config.json claims a wider text tower, or larger images, than the tensors have: refused naming the field,
    the config's value and the tensors'."""
    state, source = tiny_state
    folder = _write(tmp_path, state)
    config = json.loads((source / "config.json").read_text())
    config["text_config"]["hidden_size"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"intermediate_size 256 is not 4 x hidden_size 96"):
        clip_edge.CLIP.from_checkpoint(folder)
    config["text_config"]["intermediate_size"] = 384
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json says text_config.hidden_size 96, but the tensors have 64"):
        clip_edge.CLIP.from_checkpoint(folder)
    config["text_config"].update(hidden_size=64, intermediate_size=256)
    config["vision_config"]["image_size"] = 40
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"vision_config.image_size 40, but the tensors have 32"):
        clip_edge.CLIP.from_checkpoint(folder)


def test_truncated_files_are_reported(tiny_state, tmp_path):
    _, source = tiny_state
    data = (source / "model.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        clip_edge.CLIP.from_checkpoint(truncated)
    pt = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(3)}, pt)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(pt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.pt"):
        clip_edge.CLIP.from_checkpoint(cut)


def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"visual.conv1.weight": Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*system"):
        clip_edge.CLIP.from_checkpoint(path)
    assert not marker.exists()


def test_preset_mismatch_is_refused_and_model_untouched(tiny_state):
    _, source = tiny_state
    with pytest.raises(CheckpointError, match=r"does not match preset 'clip-vit-base-patch32'.*vision_width 64"):
        clip_edge.CLIP.from_preset("clip-vit-base-patch32", weights=str(source))


def test_bad_tensor_leaves_existing_model_unchanged(tiny_state, tmp_path):
    state, source = tiny_state
    from clip_edge import checkpoints

    model = clip_edge.CLIP.from_checkpoint(source)
    before = [v.numpy().copy() for v in model.trainable_variables]
    bad = {k: (v + 1.0 if "layers.0" in k else v) for k, v in state.items()}
    # The last tensor checked is misshapen: everything before it was read and staged already.
    bad["text_model.encoder.layers.1.mlp.fc2.bias"] = np.zeros((63,), np.float32)
    with pytest.raises(CheckpointError, match=r"layers\.1\.mlp\.fc2\.bias has shape \(63,\)"):
        checkpoints.load_into(model, _write(tmp_path, bad, source), expected="the tiny model")
    assert len(before) == len(model.trainable_variables)
    for old, variable in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())


def test_missing_path_and_unsupported_config(tiny_state, tmp_path):
    _, source = tiny_state
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        clip_edge.CLIP.from_checkpoint(tmp_path / "nope")
    config = json.loads((source / "config.json").read_text())
    config["vision_config"]["hidden_act"] = "gelu"
    folder = tmp_path / "gelu"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="hidden_act is 'gelu'"):
        clip_edge.CLIP.from_checkpoint(folder)
