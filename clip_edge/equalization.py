"""Outlier equalisation before int8 quantisation: an equal float function with flatter activations.

Trained CLIP towers have a few LayerNorm output channels and a few q/k dimensions tens of times larger than the
rest; per-tensor int8 activations give those few channels the whole range and the others a handful of levels.
Two rescalings move that range into the weights (which int8 quantises per output channel) without changing what
the model computes:

- LayerNorm -> linear (SmoothQuant, Xiao et al. 2023): LayerNorm output channel c is divided by s_c (its weight
  and bias) and the rows of the following kernels that read channel c are multiplied by s_c: layer_norm1 ->
  q/k/v_proj, layer_norm2 -> fc1, and the final LayerNorm -> projection of each tower.
  s_c = max|x_c|^alpha / max|W_c|^(1-alpha) with max|x_c| measured on calibration inputs and max|W_c| over the
  row c of every kernel reading it; alpha moves difficulty between activations (alpha=1: all into the weights)
  and weights.
- q vs k, per head dimension: scores are sum_j q_j k_j, so q's output dimension j times t_j and k's divided by
  t_j leave them unchanged; t_j = sqrt(max|k_j| / max|q_j|) gives both the same range.

Both are exact in real arithmetic; in float32 they change results by rounding only. Nothing else is touched:
the residual stream, QuickGELU between fc1 and fc2 (not scale-equivariant per channel) and attention's
softmax keep their values.

    equalized = equalize(model, images=normalised_float_images, token_ids=ids, alpha=0.5)
"""

import numpy as np
import tensorflow as tf

# Bounds for a channel's scale: a dead channel (max 0) must not become inf or 0.
_MIN_SCALE, _MAX_SCALE = 1e-4, 1e4


class _AbsMax:
    """Wraps a module and records the per-channel max |output| (over every axis but the last). A plain object,
    not a tf.Module: tf.Module would wrap `record` in a trackable copy."""

    def __init__(self, inner, key, record):
        self._inner, self._key, self._record = inner, key, record

    def __call__(self, *args, **kwargs):
        y = self._inner(*args, **kwargs)
        value = np.max(np.abs(np.reshape(y.numpy(), [-1, y.shape[-1]])), axis=0)
        previous = self._record.get(self._key)
        self._record[self._key] = value if previous is None else np.maximum(previous, value)
        return y


def _towers(model, towers):
    named = {"image": model.image_encoder, "text": model.text_encoder}
    unknown = [t for t in towers if t not in named]
    if unknown:
        raise ValueError(f"unknown towers {unknown}; expected some of {sorted(named)}")
    return {t: named[t] for t in towers}


def _final_norm(tower):
    """(attribute of the tower's last LayerNorm, attribute of the projection kernel that reads it). In the text
    tower the end-of-text pooling sits between them; it is a per-channel linear map, so the rescaling commutes."""
    return (("post_layernorm", "visual_projection") if hasattr(tower, "post_layernorm")
            else ("final_layer_norm", "text_projection"))


def activation_statistics(model, images=None, token_ids=None, batch_size=8):
    """Per-channel max |activation| on calibration inputs, keyed "{tower}/{layer}/{layer_norm1|layer_norm2|q|k}" and
    "{tower}/final": LayerNorm outputs and q/k projections (q before the 1/sqrt(head_dim) factor).

    `images`: float32 [N, R, R, 3], normalised as the image tower takes them; `token_ids`: int32 [N, L]. A tower
    without inputs gets no statistics."""
    record = {}
    towers = {t: m for t, m in _towers(model, ("image", "text")).items()
              if (images if t == "image" else token_ids) is not None}
    wrapped = []  # (owner, attribute, original) to restore
    for name, tower in towers.items():
        targets = [(tower, _final_norm(tower)[0], f"{name}/final")]
        for i, layer in enumerate(tower.encoder.layers):
            targets += [(layer, "layer_norm1", f"{name}/{i}/layer_norm1"),
                        (layer, "layer_norm2", f"{name}/{i}/layer_norm2"),
                        (layer.self_attn, "q_proj", f"{name}/{i}/q"), (layer.self_attn, "k_proj", f"{name}/{i}/k")]
        for owner, attribute, key in targets:
            original = getattr(owner, attribute)
            wrapped.append((owner, attribute, original))
            setattr(owner, attribute, _AbsMax(original, key, record))
    try:
        for name, inputs in (("image", images), ("text", token_ids)):
            if name not in towers:
                continue
            inputs = np.asarray(inputs)
            if len(inputs) == 0:
                raise ValueError(f"no calibration inputs for the {name} tower")
            for start in range(0, len(inputs), batch_size):
                batch = inputs[start:start + batch_size]
                # The towers directly, eagerly (the recorder reads numpy values): encode_text would trim to a
                # bucket, which changes nothing the statistics see but the padding positions.
                towers[name](tf.constant(batch, tf.float32 if name == "image" else tf.int32))
    finally:
        for owner, attribute, original in reversed(wrapped):
            setattr(owner, attribute, original)
    return record


def copy_model(model):
    """A new clip_edge.CLIP with the same config and variable values."""
    copy = type(model).from_config(model.get_config())
    source, target = model.variables, copy.variables
    if [v.shape for v in source] != [v.shape for v in target]:
        raise ValueError("the model's variables do not match its config's")
    for s, t in zip(source, target):
        t.assign(s)
    copy.text_buckets = model.text_buckets
    return copy


def _scale_ln_into(norm, kernels, activation_max, alpha):
    """Divides `norm`'s output channels by s and multiplies the kernel rows reading them by s (in place)."""
    weight_max = np.max(np.stack([np.max(np.abs(k.numpy()), axis=1) for k in kernels]), axis=0)
    scale = np.clip(np.maximum(activation_max, 1e-12) ** alpha / np.maximum(weight_max, 1e-12) ** (1 - alpha),
                    _MIN_SCALE, _MAX_SCALE).astype(np.float32)
    norm.weight.assign(norm.weight / scale)
    norm.bias.assign(norm.bias / scale)
    for kernel in kernels:
        kernel.assign(kernel * scale[:, np.newaxis])  # kernels are [in, out]: row c reads channel c
    return scale


def _balance_qk(attention, q_max, k_max):
    scale = np.clip(np.sqrt(np.maximum(k_max, 1e-12) / np.maximum(q_max, 1e-12)),
                    _MIN_SCALE, _MAX_SCALE).astype(np.float32)
    attention.q_proj.kernel.assign(attention.q_proj.kernel * scale)
    attention.q_proj.bias.assign(attention.q_proj.bias * scale)
    attention.k_proj.kernel.assign(attention.k_proj.kernel / scale)
    attention.k_proj.bias.assign(attention.k_proj.bias / scale)
    return scale


def equalize(model, images=None, token_ids=None, alpha=0.5, towers=("image", "text"), balance_qk=True,
             statistics=None):
    """An equalised copy of `model` (the model itself is untouched): every tower in `towers` with calibration
    inputs (`images` for image, `token_ids` for text; see activation_statistics) gets the LayerNorm -> linear
    rescaling with `alpha`, and with `balance_qk` the q/k balancing. `statistics` (from activation_statistics
    on the same model) saves recomputing them."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    selected = _towers(model, towers)
    missing = [t for t in selected if (images if t == "image" else token_ids) is None and statistics is None]
    if missing:
        raise ValueError(f"equalising the {' and '.join(missing)} tower needs calibration inputs")
    if statistics is None:
        statistics = activation_statistics(model, images if "image" in selected else None,
                                           token_ids if "text" in selected else None)
    equalized = copy_model(model)
    for name in selected:
        tower = getattr(equalized, "image_encoder" if name == "image" else "text_encoder")
        for i, layer in enumerate(tower.encoder.layers):
            attention = layer.self_attn
            # q/k first: balancing changes the q and k kernels' column maxima, which the LayerNorm scale reads.
            if balance_qk:
                _balance_qk(attention, statistics[f"{name}/{i}/q"], statistics[f"{name}/{i}/k"])
            _scale_ln_into(layer.layer_norm1,
                           [attention.q_proj.kernel, attention.k_proj.kernel, attention.v_proj.kernel],
                           statistics[f"{name}/{i}/layer_norm1"], alpha)
            _scale_ln_into(layer.layer_norm2, [layer.fc1.kernel], statistics[f"{name}/{i}/layer_norm2"], alpha)
        norm, projection = _final_norm(tower)
        _scale_ln_into(getattr(tower, norm), [getattr(tower, projection)], statistics[f"{name}/final"], alpha)
    return equalized
