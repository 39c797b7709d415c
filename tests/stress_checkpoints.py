"""Stress checkpoints: random transformers CLIP models with the activation outliers of trained ones.

Trained CLIP ViTs are not like random ones: a few residual channels carry activations tens to hundreds of times
larger than the rest, LayerNorm weights have outlier channels that feed q/k/v and fc1, q and k have outlier
dimensions, and a few tokens carry "massive activations". No trained checkpoint can be downloaded here, so these
builders put such outliers into `tests/reference.py`'s random transformers CLIPModel and write it with
`save_pretrained` (a Hugging Face directory clip_edge and the exporter read like any other). The edits are made
on transformers' own parameters, so the checkpoint is third-party data, not something clip_edge produced.

Kinds (`KINDS`; `strength` is the outlier's factor over a typical value):

- ``ln_channels`` (function-preserving): in every block, `channels` channels of layer_norm1 and layer_norm2
  (gamma and beta) are multiplied by `strength`, and the input columns of the linears they feed (q/k/v_proj
  after layer_norm1, fc1 after layer_norm2) are divided by it; post_layernorm / final_layer_norm and the
  projection after them likewise. LayerNorm outputs then have `channels` outlier channels `strength` times the
  rest; the float function is unchanged (up to rounding).
- ``qk_dims`` (function-preserving): in every attention, `channels` dimensions of each head of q_proj (weight
  rows and bias) are multiplied by `strength` and the same dimensions of k_proj divided by it, so q.k, the
  scores, are unchanged while q has outlier dimensions `strength` times the rest and k tiny ones.
- ``residual_channels`` (changes the function): `channels` channels of the residual stream carry a large
  offset on every token, `strength` times the stream's typical magnitude. Vision: pre_layrnorm's gamma and
  beta of those channels scaled by `strength` (its output is the stream); text: the position embedding of
  those channels offset by `strength` times the embeddings' standard deviation.
- ``massive_tokens`` (changes the function): a few tokens carry huge values in `channels` channels (the
  "massive activations" / attention sinks of trained transformers). Text: the start token's position (0);
  vision: two patch positions (the class token is the one pooled, so it is left alone). The position
  embedding of those tokens is offset by `strength` times the embeddings' standard deviation in those
  channels; in vision pre_layrnorm then bounds the token's value to about sqrt(width / channels) gamma.
- ``combined``: ln_channels, qk_dims and massive_tokens together, each at `strength`.

    model = random_stressed_clip(config, "ln_channels", strength=50, seed=0)
    write_stressed_checkpoint(path, config, "combined", strength=30)
"""

import numpy as np

import reference

FUNCTION_PRESERVING = ("ln_channels", "qk_dims")
KINDS = FUNCTION_PRESERVING + ("residual_channels", "massive_tokens", "combined")


def _outlier_channels(width, count, rng):
    # The same channels in every layer, as trained models have them (a channel is an outlier through the stream).
    return np.sort(rng.choice(width, size=count, replace=False))


def _ln_channels(tower, projection, strength, channels):
    import torch

    index = torch.as_tensor(channels)
    pairs = []
    for layer in tower.encoder.layers:
        attention = layer.self_attn
        pairs += [(layer.layer_norm1, [attention.q_proj, attention.k_proj, attention.v_proj]),
                  (layer.layer_norm2, [layer.mlp.fc1])]
    final = getattr(tower, "post_layernorm", None) or getattr(tower, "final_layer_norm")
    pairs.append((final, [projection]))
    for norm, linears in pairs:
        norm.weight[index] *= strength
        norm.bias[index] *= strength
        for linear in linears:  # torch Linear weights are [out, in]: the LayerNorm channel is an input column
            linear.weight[:, index] /= strength


def _qk_dims(tower, strength, channels):
    import torch

    for layer in tower.encoder.layers:
        attention = layer.self_attn
        head_dim = attention.head_dim
        rows = torch.as_tensor([h * head_dim + d for h in range(attention.num_heads) for d in channels])
        attention.q_proj.weight[rows] *= strength
        attention.q_proj.bias[rows] *= strength
        attention.k_proj.weight[rows] /= strength
        attention.k_proj.bias[rows] /= strength


def _residual_channels(model, tower_name, strength, channels):
    import torch

    index = torch.as_tensor(channels)
    if tower_name == "vision":
        norm = model.vision_model.pre_layrnorm
        norm.weight[index] *= strength
        norm.bias[index] *= strength
    else:
        embeddings = model.text_model.embeddings
        scale = _embedding_std(embeddings)
        embeddings.position_embedding.weight[:, index] += strength * scale


def _embedding_std(embeddings):
    weight = (embeddings.token_embedding if hasattr(embeddings, "token_embedding")
              else embeddings.position_embedding).weight
    return float(weight.std())


def _massive_tokens(model, tower_name, strength, channels):
    import torch

    index = torch.as_tensor(channels)
    embeddings = (model.vision_model if tower_name == "vision" else model.text_model).embeddings
    positions = embeddings.position_embedding.weight
    tokens = [0] if tower_name == "text" else [positions.shape[0] // 3, 2 * positions.shape[0] // 3]
    scale = _embedding_std(embeddings) if tower_name == "text" else float(positions.std())
    for token in tokens:
        positions[token, index] += strength * scale


def add_outliers(model, kind, strength, channels=2, seed=0):
    """Puts outliers of `kind` (see the module doc) into a transformers CLIPModel in place; returns it."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown outlier kind {kind!r}; expected one of {KINDS}")
    if strength <= 0:
        raise ValueError(f"outlier strength must be positive, got {strength}")
    kinds = ("ln_channels", "qk_dims", "massive_tokens") if kind == "combined" else (kind,)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for tower_name, tower, projection in (("vision", model.vision_model, model.visual_projection),
                                               ("text", model.text_model, model.text_projection)):
            width = projection.in_features
            head_dim = tower.encoder.layers[0].self_attn.head_dim
            for one in kinds:
                if one == "ln_channels":
                    _ln_channels(tower, projection, strength, _outlier_channels(width, channels, rng))
                elif one == "qk_dims":
                    _qk_dims(tower, strength, _outlier_channels(head_dim, min(channels, head_dim), rng))
                elif one == "residual_channels":
                    _residual_channels(model, tower_name, strength, _outlier_channels(width, channels, rng))
                else:
                    _massive_tokens(model, tower_name, strength, _outlier_channels(width, channels, rng))
    return model


def random_stressed_clip(config, kind, strength, channels=2, seed=0):
    """tests/reference.py's random transformers CLIPModel (seed `seed`) with outliers of `kind`."""
    return add_outliers(reference.random_hf_clip(config, seed=seed), kind, strength, channels, seed)


def write_stressed_checkpoint(path, config, kind, strength, channels=2, seed=0):
    """Writes the stressed model with transformers' save_pretrained to `path` (a Hugging Face directory)."""
    random_stressed_clip(config, kind, strength, channels, seed).save_pretrained(path)
    return path


def base_patch32_config():
    """transformers' config of clip-vit-base-patch32 (the architecture of clip_edge's preset)."""
    return reference.hf_clip_config(768, 12, 12, 32, 224, 512, 12, 8, 512)
