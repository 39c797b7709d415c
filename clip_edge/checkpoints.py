"""Checkpoints: Hugging Face and OpenAI CLIP checkpoint names mapped onto clip_edge.CLIP's variables, shapes checked.

clip_edge.checkpoint_files reads the files; here their tensors are handled under Hugging Face's names. OpenAI's
layout is renamed on read (its fused attention in_proj is split into q, k, v, and its [in, out] projections
transposed to Hugging Face's [out, in]), the clip_edge.CLIP constructor arguments are inferred from the tensor
shapes and config.json, and each name is mapped onto the variable it fills. Every tensor is checked against its
variable (present, floating point, shape, finite) and none is left over before any variable changes, so a bad
checkpoint leaves the model as it was. clip_edge.hub downloads a preset's checkpoint.
"""

import math
import re

import numpy as np

from clip_edge.checkpoint_files import CheckpointError, locate, read_json, read_tensor_file

# Buffers and scalars some checkpoints carry that are not weights (attn_mask: the causal mask OpenAI's
# TorchScript archives keep on each text block; we build our own).
_IGNORED = re.compile(r"(.*\.position_ids|.*\.attn_mask|input_resolution|context_length|vocab_size)$")


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
    tensor_path, config_path = locate(path)
    tensors = read_tensor_file(tensor_path)
    tensors = {name: value for name, value in tensors.items() if not _IGNORED.match(name)}
    if "visual.conv1.weight" in tensors:
        tensors = openai_to_hf(tensors, tensor_path)
    tensors = {name.removeprefix("model."): value for name, value in tensors.items()}
    hf_config = read_json(config_path, "config") if config_path else None
    return tensors, infer_config(tensors, tensor_path, hf_config)


# -- assignment --------------------------------------------------------------------------------------------------

# How a Hugging Face tensor becomes our variable's value.
def _LINEAR(weight):
    return weight.T  # torch Linear [out, in] -> our kernel [in, out]


def _SAME(weight):
    return weight


def _CONV(weight):
    return weight.transpose(2, 3, 1, 0)  # torch [out, in, kh, kw] -> TF [kh, kw, in, out]


def _layer_targets(prefix, encoder):
    for index, layer in enumerate(encoder.layers):
        name = f"{prefix}.{index}"
        for hf_name, norm in (("layer_norm1", layer.layer_norm1), ("layer_norm2", layer.layer_norm2)):
            yield f"{name}.{hf_name}.weight", norm.weight, _SAME
            yield f"{name}.{hf_name}.bias", norm.bias, _SAME
        attention = layer.self_attn
        for hf_name, dense in (("self_attn.q_proj", attention.q_proj), ("self_attn.k_proj", attention.k_proj),
                               ("self_attn.v_proj", attention.v_proj), ("self_attn.out_proj", attention.out_proj),
                               ("mlp.fc1", layer.fc1), ("mlp.fc2", layer.fc2)):
            yield f"{name}.{hf_name}.weight", dense.kernel, _LINEAR
            yield f"{name}.{hf_name}.bias", dense.bias, _SAME


def variable_targets(model):
    """[(Hugging Face tensor name, our tf.Variable, transform)] covering every variable of a clip_edge.CLIP."""
    image, text = model.image_encoder, model.text_encoder
    targets = [
        ("vision_model.embeddings.patch_embedding.weight", image.patch_embedding, _CONV),
        ("vision_model.embeddings.class_embedding", image.class_embedding, _SAME),
        ("vision_model.embeddings.position_embedding.weight", image.position_embedding, _SAME),
        ("vision_model.pre_layrnorm.weight", image.pre_layernorm.weight, _SAME),  # sic: transformers' spelling
        ("vision_model.pre_layrnorm.bias", image.pre_layernorm.bias, _SAME),
        ("vision_model.post_layernorm.weight", image.post_layernorm.weight, _SAME),
        ("vision_model.post_layernorm.bias", image.post_layernorm.bias, _SAME),
        ("visual_projection.weight", image.visual_projection, _LINEAR),
        ("text_model.embeddings.token_embedding.weight", text.token_embedding, _SAME),
        ("text_model.embeddings.position_embedding.weight", text.position_embedding, _SAME),
        ("text_model.final_layer_norm.weight", text.final_layer_norm.weight, _SAME),
        ("text_model.final_layer_norm.bias", text.final_layer_norm.bias, _SAME),
        ("text_projection.weight", text.text_projection, _LINEAR),
        ("logit_scale", model.logit_scale, _SAME),
    ]
    targets += _layer_targets("vision_model.encoder.layers", image.encoder)
    targets += _layer_targets("text_model.encoder.layers", text.encoder)
    return targets


def assign(model, tensors, source):
    """Check every tensor against the model, then assign them all; on any problem raise before assigning."""
    staged = []
    expected_names = set()
    for name, variable, transform in variable_targets(model):
        expected_names.add(name)
        if name not in tensors:
            raise CheckpointError(f"{source}: tensor {name} is missing (expected shape "
                                  f"{_reference_shape(variable, transform)})")
        if not np.issubdtype(np.asarray(tensors[name]).dtype, np.floating):
            # Casting integer or boolean values to weights would load something, but not these weights.
            raise CheckpointError(f"{source}: tensor {name} has dtype {np.asarray(tensors[name]).dtype}; "
                                  "weights must be floating point")
        value = transform(np.asarray(tensors[name]))
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(tensors[name].shape)}, expected "
                                  f"{_reference_shape(variable, transform)}")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{source}: tensor {name} contains NaN or infinite values")
        staged.append((variable, value.astype(np.float32)))
    unexpected = sorted(set(tensors) - expected_names)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor {unexpected[0]} with shape "
                              f"{tuple(tensors[unexpected[0]].shape)} ({len(unexpected)} unexpected in all)")
    for variable, value in staged:
        variable.assign(value)


def _reference_shape(variable, transform):
    """The variable's shape as the checkpoint would store it, for error messages."""
    shape = tuple(variable.shape)
    if transform is _CONV:  # the inverse of _CONV: TF [kh, kw, in, out] -> torch [out, in, kh, kw]
        return (shape[3], shape[2], shape[0], shape[1])
    return tuple(transform(np.empty(shape, np.float32)).shape)  # _LINEAR and _SAME are their own inverses


def load_into(model, path, expected):
    """Load a checkpoint into an already-built model, refusing one of another architecture."""
    tensors, config = read_checkpoint(path)
    mismatched = [f"{key} {config[key]} (model has {value})" for key, value in model.get_config().items()
                  if config.get(key) != value]
    if mismatched:
        raise CheckpointError(f"{path}: checkpoint does not match {expected}: it has {'; '.join(mismatched)}")
    assign(model, tensors, source=str(path))
