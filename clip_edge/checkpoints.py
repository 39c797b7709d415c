"""Checkpoints: read Hugging Face and OpenAI CLIP checkpoint files and their configs, under Hugging Face's names.

A folder, safetensors file, sharded index or PyTorch .bin/.pt is read and checked, and the clip_edge.CLIP
constructor arguments are inferred from its tensor shapes and config.json. Tensors are handled under Hugging
Face's names; OpenAI's layout is renamed on read (its fused attention in_proj is split into q, k, v, and its
[in, out] projections transposed to Hugging Face's [out, in]). Also the sha256 of checkpoint files, for manifests.
clip_edge.model_weights assigns the tensors to a model; clip_edge.hub downloads a preset's checkpoint.
"""

import json
import math
import os
import re
import stat

import numpy as np

from clip_edge.torch_files import read_torch_state_dict

# Buffers and scalars some checkpoints carry that are not weights (attn_mask: the causal mask OpenAI's
# TorchScript archives keep on each text block; we build our own).
_IGNORED = re.compile(r"(.*\.position_ids|.*\.attn_mask|input_resolution|context_length|vocab_size)$")

_HF_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the tensor."""


# -- reading files -----------------------------------------------------------------------------------------------


def _regular_file(path, what="checkpoint file"):
    """`path` if it is a regular file (or a link to one). A FIFO or device would block or never end a read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read {what} ({error.strerror})") from error
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: {what} is not a regular file")
    return path


def _read_json(path, what):
    """The JSON object in `path`, or a CheckpointError naming the file."""
    _regular_file(path, what)
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable {what} ({type(error).__name__}: {error})") from error
    except RecursionError as error:
        raise CheckpointError(f"{path}: unreadable {what} (nested too deeply)") from error
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: {what} holds a JSON {type(value).__name__}, not an object")
    return value


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    _regular_file(path)
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from error


def shard_names(index_path):
    """(weight_map, sorted shard file names) of a sharded checkpoint's index, checked.

    Shards are plain file names in the index's folder, as Hugging Face writes them: an index naming an absolute
    path, a subfolder or ".." is refused, so that a checkpoint cannot make us read files outside its folder."""
    weight_map = _read_json(index_path, "checkpoint index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no weight_map (an object of tensor name: shard file)")
    for tensor, shard in weight_map.items():
        if (not isinstance(shard, str) or shard in ("", ".", "..") or "/" in shard or "\\" in shard
                or "\0" in shard):
            raise CheckpointError(f"{index_path}: tensor {tensor} names shard {shard!r:.120}; shards must be file "
                                  "names in the index's folder")
    return weight_map, sorted(set(weight_map.values()))


def _read_sharded(index_path):
    weight_map, shards = shard_names(index_path)
    tensors = {}
    folder = os.path.dirname(index_path)
    for shard in shards:
        shard_path = os.path.join(folder, shard)
        if not os.path.lexists(shard_path):
            raise CheckpointError(f"{index_path}: shard {shard} is missing")
        tensors.update(_read_safetensors(shard_path))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise CheckpointError(f"{index_path}: tensor {absent[0]} is listed in the index but in no shard")
    return tensors


def _read_tensor_file(path):
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(".json"):
        return _read_sharded(path)
    _regular_file(path)
    try:
        return read_torch_state_dict(path)
    except ValueError as error:
        raise CheckpointError(str(error)) from error


def _locate(path):
    """(tensor file, config.json or None) for a checkpoint directory or file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    if os.path.isdir(path):
        for name in _HF_FILES:
            if os.path.lexists(os.path.join(path, name)):
                config = os.path.join(path, "config.json")
                return os.path.join(path, name), config if os.path.lexists(config) else None
        raise CheckpointError(f"{path}: directory has none of {', '.join(_HF_FILES)}")
    sibling_config = os.path.join(os.path.dirname(path), "config.json")
    return path, sibling_config if os.path.lexists(sibling_config) else None


# -- OpenAI names to Hugging Face names --------------------------------------------------------------------------

_OPENAI_BLOCK_PARTS = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1",
                       "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
_OPENAI_NAMES = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}


def openai_to_hf(tensors, source):
    """Rename an OpenAI-layout state dict (clip/model.py names) to Hugging Face's CLIPModel names."""
    if any(name.startswith("visual.layer1.") for name in tensors):
        raise CheckpointError(f"{source}: OpenAI ResNet CLIP checkpoints are not supported (ViT models only)")
    renamed = {}
    for name, value in tensors.items():
        # Block tensors end in ".weight"/".bias", except the fused attention's "attn.in_proj_weight"/"_bias".
        block = re.match(r"(visual\.)?transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)$", name)
        if block:
            tower = "vision_model" if block.group(1) else "text_model"
            prefix = f"{tower}.encoder.layers.{block.group(2)}"
            part, kind = block.group(3), block.group(4)
            if part == "attn.in_proj":
                if value.ndim == 0 or value.shape[0] % 3:
                    raise CheckpointError(f"{source}: {name} has shape {value.shape}; its first axis must be 3 x width")
                for projection, piece in zip("qkv", np.split(value, 3, axis=0)):
                    renamed[f"{prefix}.self_attn.{projection}_proj.{kind}"] = piece
            elif part in _OPENAI_BLOCK_PARTS:
                renamed[f"{prefix}.{_OPENAI_BLOCK_PARTS[part]}.{kind}"] = value
            else:
                renamed[name] = value  # reported as unexpected by assign()
        elif name == "visual.proj":
            renamed["visual_projection.weight"] = value.T
        elif name == "text_projection":
            renamed["text_projection.weight"] = value.T
        else:
            renamed[_OPENAI_NAMES.get(name, name)] = value
    return renamed


# -- architecture ------------------------------------------------------------------------------------------------


def _count_layers(tensors, tower):
    pattern = re.compile(rf"{tower}\.encoder\.layers\.(\d+)\.")
    indices = {int(m.group(1)) for m in map(pattern.match, tensors) if m}
    return max(indices) + 1 if indices else 0


def _require(tensors, name, source, ndim):
    if name not in tensors:
        raise CheckpointError(f"{source}: tensor {name} is missing")
    value = tensors[name]
    if value.ndim != ndim or 0 in value.shape:
        raise CheckpointError(f"{source}: tensor {name} has shape {tuple(value.shape)}; expected {ndim} "
                              "non-empty axes")
    return value


def infer_config(tensors, source, hf_config=None):
    """clip_edge.CLIP constructor arguments from tensor shapes (heads = width // 64 as OpenAI infers them,
    unless a Hugging Face config.json says otherwise)."""
    patch = _require(tensors, "vision_model.embeddings.patch_embedding.weight", source, 4)
    vision_positions = _require(tensors, "vision_model.embeddings.position_embedding.weight", source, 2)
    tokens = _require(tensors, "text_model.embeddings.token_embedding.weight", source, 2)
    text_positions = _require(tensors, "text_model.embeddings.position_embedding.weight", source, 2)
    projection = _require(tensors, "text_projection.weight", source, 2)
    grid = int(round((vision_positions.shape[0] - 1) ** 0.5))
    if vision_positions.shape[0] < 2 or grid * grid + 1 != vision_positions.shape[0]:
        raise CheckpointError(f"{source}: vision_model.embeddings.position_embedding.weight has "
                              f"{vision_positions.shape[0]} rows, "
                              "not a square grid plus a class token")
    vision_width, text_width = patch.shape[0], tokens.shape[1]
    config = dict(embed_dim=projection.shape[0], image_resolution=grid * patch.shape[-1],
                  vision_layers=_count_layers(tensors, "vision_model"), vision_width=vision_width,
                  vision_patch_size=patch.shape[-1], context_length=text_positions.shape[0],
                  vocab_size=tokens.shape[0], transformer_width=text_width,
                  transformer_heads=max(text_width // 64, 1), transformer_layers=_count_layers(tensors, "text_model"),
                  vision_heads=max(vision_width // 64, 1))
    if hf_config:
        _check_hf_config(hf_config, source)
        _check_config_matches_tensors(hf_config, config, source)
        config["transformer_heads"] = _tower_config(hf_config, "text_config", source).get(
            "num_attention_heads", config["transformer_heads"])
        config["vision_heads"] = _tower_config(hf_config, "vision_config", source).get(
            "num_attention_heads", config["vision_heads"])
    for tower, heads, width in (("text", "transformer_heads", "transformer_width"),
                                ("vision", "vision_heads", "vision_width")):
        if config[heads] <= 0 or config[width] % config[heads]:
            raise CheckpointError(f"{source}: {config[heads]} {tower} attention heads do not divide the "
                                  f"{tower} width {config[width]}")
    for tower, layers in (("text", "transformer_layers"), ("vision", "vision_layers")):
        if config[layers] == 0:
            raise CheckpointError(f"{source}: no {tower} encoder layers found")
    return {key: int(value) for key, value in config.items()}


# config.json fields that the tensor shapes also determine: (sub-config, field, our config key).
_SHAPE_FIELDS = (("text_config", "hidden_size", "transformer_width"), ("text_config", "num_hidden_layers",
                 "transformer_layers"), ("text_config", "vocab_size", "vocab_size"),
                 ("text_config", "max_position_embeddings", "context_length"),
                 ("vision_config", "hidden_size", "vision_width"), ("vision_config", "num_hidden_layers",
                 "vision_layers"), ("vision_config", "patch_size", "vision_patch_size"),
                 ("vision_config", "image_size", "image_resolution"), (None, "projection_dim", "embed_dim"))


def _check_config_matches_tensors(hf_config, config, source):
    """A config.json that describes another architecture than its tensors is refused (transformers would
    refuse to load such a pair too), rather than silently read by the tensor shapes."""
    for tower, field, key in _SHAPE_FIELDS:
        value = (_tower_config(hf_config, tower, source) if tower else hf_config).get(field)
        if value is not None and value != config[key]:
            name = f"{tower}.{field}" if tower else field
            raise CheckpointError(f"{source}: config.json says {name} {value!r:.40}, but the tensors have "
                                  f"{config[key]}")


def _tower_config(hf_config, tower, source):
    """One tower's fields. Older configs also carry `text_config_dict` / `vision_config_dict`, which transformers
    reads in preference to `text_config` / `vision_config` (whose values may then be defaults): so do we."""
    merged = {}
    for key in (tower, f"{tower}_dict"):
        sub = hf_config.get(key) or {}
        if not isinstance(sub, dict):
            raise CheckpointError(f"{source}: config {key} is a {type(sub).__name__}, not an object")
        merged.update(sub)
    return merged


def _check_hf_config(hf_config, source):
    """Refuse Hugging Face CLIP variants whose numerics this implementation does not reproduce, and configs
    whose fields have the wrong type."""

    def is_number(value):  # JSON's NaN and Infinity (which Python's json reads) are not numbers here
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    for tower in ("text_config", "vision_config"):
        sub = _tower_config(hf_config, tower, source)
        for field in ("num_attention_heads", "hidden_size", "intermediate_size"):
            if field in sub and (not isinstance(sub[field], int) or isinstance(sub[field], bool)):
                raise CheckpointError(f"{source}: config {tower}.{field} is {sub[field]!r:.60}, not an integer")
        act = sub.get("hidden_act", "quick_gelu")
        if act != "quick_gelu":
            raise CheckpointError(f"{source}: {tower}.hidden_act is {act!r:.60}; clip_edge implements quick_gelu only")
        eps = sub.get("layer_norm_eps", 1e-5)
        if not is_number(eps) or abs(eps - 1e-5) > 1e-12:
            raise CheckpointError(f"{source}: {tower}.layer_norm_eps is {eps!r:.60}; clip_edge uses OpenAI's 1e-5")
        width, inner = sub.get("hidden_size"), sub.get("intermediate_size")
        if width and inner and inner != 4 * width:
            raise CheckpointError(f"{source}: {tower}.intermediate_size {inner} is not 4 x hidden_size {width}")


def read_checkpoint(path):
    """(tensors under Hugging Face names as float32 numpy, CLIP constructor config) for a checkpoint path."""
    tensor_path, config_path = _locate(path)
    tensors = _read_tensor_file(tensor_path)
    tensors = {name: value for name, value in tensors.items() if not _IGNORED.match(name)}
    if "visual.conv1.weight" in tensors:
        tensors = openai_to_hf(tensors, tensor_path)
    tensors = {name.removeprefix("model."): value for name, value in tensors.items()}
    hf_config = _read_json(config_path, "config") if config_path else None
    return tensors, infer_config(tensors, tensor_path, hf_config)


# -- sha256 of checkpoint files ----------------------------------------------------------------------------------


def weight_files_sha256(path):
    """{file name: sha256} of a checkpoint's tensor files (model.safetensors, or the shards its index names),
    as the hub lists them per file."""
    tensor_path, _ = _locate(path)
    folder = os.path.dirname(tensor_path)
    names = shard_names(tensor_path)[1] if tensor_path.endswith(".json") else [os.path.basename(tensor_path)]
    return {name: files_sha256([_regular_file(os.path.join(folder, name))]) for name in names}


def checkpoint_sha256(path):
    """sha256 of a checkpoint's tensor file (of its index and shards, in order, when sharded), for manifests."""
    tensor_path, _ = _locate(path)
    files = [tensor_path]
    if tensor_path.endswith(".json"):
        files += [os.path.join(os.path.dirname(tensor_path), shard) for shard in shard_names(tensor_path)[1]]
    return files_sha256([_regular_file(name) for name in files])


def files_sha256(paths):
    """One sha256 over the files' bytes in order, read in blocks (checkpoints and exports are gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name in paths:
        with open(name, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
