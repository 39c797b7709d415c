"""Model weights: which checkpoint tensor fills which variable of a clip_edge.CLIP, and assigning them.

Tensors come under Hugging Face's names, as clip_edge.checkpoints reads them. Every tensor is checked against its
variable (present, floating point, shape, finite) and none is left over before any variable changes, so a bad
checkpoint leaves the model as it was.
"""

import numpy as np

from clip_edge.checkpoints import CheckpointError, read_checkpoint


# How a Hugging Face tensor becomes our variable's value.
def _LINEAR(weight):
    return weight.T  # torch Linear [out, in] -> our kernel [in, out]


def _SAME(weight):
    return weight


def _CONV(weight):
    return weight.transpose(2, 3, 1, 0)  # torch [out, in, kh, kw] -> TF [kh, kw, in, out]


def _block_targets(prefix, encoder):
    for index, block in enumerate(encoder.resblocks):
        name = f"{prefix}.{index}"
        yield f"{name}.layer_norm1.weight", block.ln_1.gamma, _SAME
        yield f"{name}.layer_norm1.bias", block.ln_1.beta, _SAME
        yield f"{name}.layer_norm2.weight", block.ln_2.gamma, _SAME
        yield f"{name}.layer_norm2.bias", block.ln_2.beta, _SAME
        for hf_name, dense in (("self_attn.q_proj", block.attn.q_proj), ("self_attn.k_proj", block.attn.k_proj),
                               ("self_attn.v_proj", block.attn.v_proj), ("self_attn.out_proj", block.attn.out_proj),
                               ("mlp.fc1", block.c_fc), ("mlp.fc2", block.c_proj)):
            yield f"{name}.{hf_name}.weight", dense.kernel, _LINEAR
            yield f"{name}.{hf_name}.bias", dense.bias, _SAME


def variable_targets(model):
    """[(Hugging Face tensor name, our tf.Variable, transform)] covering every variable of a clip_edge.CLIP."""
    image, text = model.image_encoder, model.text_encoder
    targets = [
        ("vision_model.embeddings.patch_embedding.weight", image.patch_kernel, _CONV),
        ("vision_model.embeddings.class_embedding", image.class_embedding, _SAME),
        ("vision_model.embeddings.position_embedding.weight", image.positional_embedding, _SAME),
        ("vision_model.pre_layrnorm.weight", image.ln_pre.gamma, _SAME),
        ("vision_model.pre_layrnorm.bias", image.ln_pre.beta, _SAME),
        ("vision_model.post_layernorm.weight", image.ln_post.gamma, _SAME),
        ("vision_model.post_layernorm.bias", image.ln_post.beta, _SAME),
        ("visual_projection.weight", image.proj, _LINEAR),
        ("text_model.embeddings.token_embedding.weight", text.token_embedding, _SAME),
        ("text_model.embeddings.position_embedding.weight", text.positional_embedding, _SAME),
        ("text_model.final_layer_norm.weight", text.ln_final.gamma, _SAME),
        ("text_model.final_layer_norm.bias", text.ln_final.beta, _SAME),
        ("text_projection.weight", text.text_projection, _LINEAR),
        ("logit_scale", model.logit_scale, _SAME),
    ]
    targets += _block_targets("vision_model.encoder.layers", image.transformer)
    targets += _block_targets("text_model.encoder.layers", text.transformer)
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
