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

The fixed kinds above are what docs/quantization.md's first measurements used. The int8 recipes must hold on any
outlier pattern of these sorts, not on a list a recipe could be tuned to, so `family(seed, count)` draws
checkpoints (`Member`) at random: a size from tiny to clip-vit-base-patch32, 1 to 8 LayerNorm outlier channels
per layer at scales 10 to 100 entering q/k/v, fc1 and/or the projection (the same channels in every layer, or
each layer its own), q/k head dimensions scaled up or down by 10 to 100, and massive tokens (which change the
function). Every draw follows from the seed, so printing it is enough to replay a failure:

    for member in family(seed=1234, count=8, sizes=("tiny", "small")):
        model = member.hf_model()          # transformers CLIPModel with the member's outliers
"""

import dataclasses

import numpy as np

from tests import reference

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


# Sizes of the generated family, the arguments of reference.hf_clip_config: vision width, layers, heads, patch
# size, image size; text width, layers, heads; projection dim. tiny is the tests' model, base32 the architecture
# of clip-vit-base-patch32; small and medium lie between (medium is about the size of the checkpoint issue 19
# reports, whose int8 image encoder fell to 0.970).
FAMILY_SIZES = {
    "tiny": (64, 2, 4, 8, 32, 64, 2, 4, 32),
    "small": (128, 3, 4, 16, 64, 128, 3, 4, 64),
    "medium": (384, 6, 6, 32, 224, 256, 6, 4, 256),
    "base32": (768, 12, 12, 32, 224, 512, 12, 8, 512),
}
# Where outlier LayerNorm channels can enter: layer_norm1 -> q/k/v_proj, layer_norm2 -> fc1, the final LayerNorm ->
# the projection.
TARGETS = ("qkv", "fc1", "projection")
MIN_SCALE, MAX_SCALE = 10.0, 100.0
MAX_CHANNELS = 8
MAX_QK_DIMS = 4


@dataclasses.dataclass(frozen=True)
class Member:
    """One drawn stress checkpoint. The fields are the pattern; which channels and what scale each one gets are
    drawn from `seed` when the model is built (scales log-uniform in [MIN_SCALE, MAX_SCALE] per channel)."""

    size: str
    seed: int  # the random weights and every placement and scale
    channels: int  # LayerNorm outlier channels per layer (0: none)
    targets: tuple[str, ...]  # where they enter (TARGETS)
    per_layer: bool  # each layer its own channels (else the same channels through the stream)
    qk_dims: int  # q/k dimensions per head scaled up or down (0: none)
    massive: float  # massive-token strength (0: none); changes the float function

    @property
    def function_preserving(self):
        return self.massive == 0

    @property
    def name(self):
        return f"{self.size}, {self.pattern}"

    @property
    def pattern(self):
        """The outliers and seed, without the size."""
        parts = [f"seed {self.seed}"]
        if self.channels:
            # The projection reads the final LayerNorm only: "per layer" means something for q/k/v and fc1.
            per_layer = self.per_layer and ("qkv" in self.targets or "fc1" in self.targets)
            parts.append(f"{self.channels} ch{' per layer' if per_layer else ''} -> {'+'.join(self.targets)}")
        if self.qk_dims:
            parts.append(f"{self.qk_dims} q/k dims")
        if self.massive:
            parts.append(f"massive x{self.massive:g}")
        return ", ".join(parts)

    def config(self):
        return reference.hf_clip_config(*FAMILY_SIZES[self.size])

    def hf_model(self):
        """transformers' random CLIPModel (seed `seed`) with the member's outliers."""
        return _add_member_outliers(reference.random_hf_clip(self.config(), seed=self.seed), self)

    def write(self, path):
        """The model written with save_pretrained to `path` (a Hugging Face directory)."""
        self.hf_model().save_pretrained(path)
        return path


def draw_member(rng, sizes=tuple(FAMILY_SIZES)):
    """One Member drawn with `rng` (numpy Generator) among `sizes`. At least one outlier kind is present."""
    size = str(rng.choice(sizes))
    channels = int(rng.integers(1, MAX_CHANNELS + 1))
    count = int(rng.integers(1, len(TARGETS) + 1))
    targets = tuple(sorted((str(t) for t in rng.choice(TARGETS, size=count, replace=False)), key=TARGETS.index))
    qk_dims = int(rng.integers(0, MAX_QK_DIMS + 1))
    massive = float(np.round(_log_uniform(rng), 1)) if rng.random() < 0.5 else 0.0
    return Member(size=size, seed=int(rng.integers(2**31)), channels=channels, targets=targets,
                  per_layer=bool(rng.random() < 0.5), qk_dims=qk_dims, massive=massive)


def family(seed, count, sizes=tuple(FAMILY_SIZES)):
    """`count` members drawn from `seed`: the same seed gives the same members."""
    unknown = [s for s in sizes if s not in FAMILY_SIZES]
    if unknown:
        raise ValueError(f"unknown sizes {unknown}; expected some of {list(FAMILY_SIZES)}")
    rng = np.random.default_rng(seed)
    return [draw_member(rng, sizes) for _ in range(count)]


def _log_uniform(rng, size=None):
    return np.exp(rng.uniform(np.log(MIN_SCALE), np.log(MAX_SCALE), size))


def _scale_norm_into(norm, linears, index, scales):
    """LayerNorm channels `index` times `scales`, the linears' input columns reading them divided by them: the
    LayerNorm output gets outlier channels, the float function stays."""
    import torch

    index, scales = torch.as_tensor(index), torch.as_tensor(scales, dtype=norm.weight.dtype)
    norm.weight[index] *= scales
    norm.bias[index] *= scales
    for linear in linears:  # torch Linear weights are [out, in]: the LayerNorm channel is an input column
        linear.weight[:, index] /= scales


def _add_member_outliers(model, member):
    import torch

    rng = np.random.default_rng(member.seed)
    with torch.no_grad():
        for tower_name, tower, projection in (("vision", model.vision_model, model.visual_projection),
                                               ("text", model.text_model, model.text_projection)):
            width = projection.in_features
            shared = _outlier_channels(width, member.channels, rng)
            for layer in tower.encoder.layers:
                channels = _outlier_channels(width, member.channels, rng) if member.per_layer else shared
                attention = layer.self_attn
                # The same channels in both LayerNorms of a block: they are the stream's outlier channels.
                if member.channels and "qkv" in member.targets:
                    _scale_norm_into(layer.layer_norm1, [attention.q_proj, attention.k_proj, attention.v_proj],
                                     channels, _log_uniform(rng, len(channels)))
                if member.channels and "fc1" in member.targets:
                    _scale_norm_into(layer.layer_norm2, [layer.mlp.fc1], channels, _log_uniform(rng, len(channels)))
                if member.qk_dims:
                    _scale_qk_dims(attention, min(member.qk_dims, attention.head_dim), rng)
            if member.channels and "projection" in member.targets:
                final = getattr(tower, "post_layernorm", None) or getattr(tower, "final_layer_norm")
                _scale_norm_into(final, [projection], shared, _log_uniform(rng, len(shared)))
            if member.massive:
                _massive_tokens(model, tower_name, member.massive, shared if member.channels else
                                _outlier_channels(width, 2, rng))
    return model


def _scale_qk_dims(attention, count, rng):
    """`count` dimensions of each head: q's times f and k's divided by f, f log-uniform in [10, 100] or its
    inverse (q up or down), so q.k, the scores, keep their values."""
    import torch

    head_dim = attention.head_dim
    rows, factors = [], []
    for head in range(attention.num_heads):
        for dim in _outlier_channels(head_dim, count, rng):
            rows.append(head * head_dim + dim)
            factor = float(_log_uniform(rng))
            factors.append(factor if rng.random() < 0.5 else 1 / factor)
    rows, factors = torch.as_tensor(rows), torch.as_tensor(factors, dtype=attention.q_proj.weight.dtype)
    attention.q_proj.weight[rows] *= factors[:, None]
    attention.q_proj.bias[rows] *= factors
    attention.k_proj.weight[rows] /= factors[:, None]
    attention.k_proj.bias[rows] /= factors
