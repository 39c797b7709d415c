"""clip_edge.CLIP: OpenAI's CLIP as a tf.Module with KerasCV's `keras_cv.models.CLIP` API."""

import math

import numpy as np
import tensorflow as tf

from clip_edge import presets
from clip_edge.layers import (CLIPImageEncoder, CLIPTextEncoder, check_text_inputs, end_of_text_one_hot,
                              l2_normalize_rows)

# exp(logit_scale) is capped at 100 as in OpenAI's training (their released checkpoints sit exactly at the cap).
MAX_LOGIT_SCALE = 100.0

# Text lengths shorter than the context the text tower runs at when a batch's texts fit. PyTorch and ONNX
# Runtime run a prompt at its own length; we use a few fixed lengths instead, so that TFLite files (static
# shapes) have one signature per length and every length can be checked for exact equality once. Causal
# attention makes the end-of-text features independent of the positions after the end token, so a shorter run
# gives the same embedding.
DEFAULT_TEXT_BUCKETS = (16, 32)


def text_buckets(context_length, shorter=None):
    """Sorted lengths the text tower runs at: `shorter` (each 2 <= L < context_length, room for start and end
    tokens; default: the DEFAULT_TEXT_BUCKETS below context_length) and always context_length itself."""
    if shorter is None:
        shorter = [n for n in DEFAULT_TEXT_BUCKETS if n < context_length]
    lengths = sorted(set(int(n) for n in shorter))
    bad = [n for n in lengths if not 2 <= n < context_length]
    if bad:
        raise ValueError(f"text buckets {bad} are outside 2..{context_length - 1} (context_length "
                         f"{context_length} is always included)")
    return tuple(lengths) + (context_length,)


def text_bucket_length(token_ids, buckets):
    """The shortest of `buckets` that holds every row's first end-of-text token (the largest id, where the
    features are pooled), as a scalar int32 tensor."""
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    end_positions = tf.argmax(end_of_text_one_hot(token_ids), axis=-1, output_type=tf.int32)
    needed = tf.reduce_max(tf.concat([end_positions + 1, [0]], axis=0))  # 0 for an empty batch
    buckets = tf.constant(sorted(buckets), tf.int32)
    return tf.reduce_min(tf.boolean_mask(buckets, buckets >= needed))


class CLIP(tf.Module):
    def __init__(self, embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                 vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12, vision_heads=None, name=None):
        """`vision_heads` defaults to vision_width // 64, as OpenAI derives it; set it for other checkpoints."""
        super().__init__(name=name)
        vision_heads = vision_heads or vision_width // 64
        self._config = dict(embed_dim=embed_dim, image_resolution=image_resolution, vision_layers=vision_layers,
                            vision_width=vision_width, vision_patch_size=vision_patch_size,
                            context_length=context_length, vocab_size=vocab_size,
                            transformer_width=transformer_width, transformer_heads=transformer_heads,
                            transformer_layers=transformer_layers, vision_heads=vision_heads)
        self.image_encoder = CLIPImageEncoder(image_resolution, vision_patch_size, vision_width, vision_layers,
                                              vision_heads, embed_dim, name="image_encoder")
        self.text_encoder = CLIPTextEncoder(transformer_width, transformer_layers, transformer_heads, vocab_size,
                                            embed_dim, context_length, name="text_encoder")
        self.logit_scale = tf.Variable(math.log(1 / 0.07), name="logit_scale")
        # Lengths encode_text trims token ids to (not part of the config: it changes speed, not results).
        self.text_buckets = text_buckets(context_length)

    # -- inference -------------------------------------------------------------------------------------------

    def encode_images(self, images):
        """float32 [N, R, R, 3] normalised RGB -> projected image features [N, embed_dim], not normalised."""
        return self.image_encoder(tf.convert_to_tensor(images, tf.float32))

    def encode_text(self, token_ids, padding_mask=None):
        """int32 [N, L] token ids (L <= context_length) -> projected text features [N, embed_dim].

        Runs the tower at the shortest of `self.text_buckets` (and L) that holds the batch's longest text: the
        same features, bit for bit in float32 (tests/test_text_buckets_and_zero_shot.py), at a fraction of the cost
        for short prompts. Set `text_buckets = ()` to always run at L."""
        token_ids = tf.convert_to_tensor(token_ids)
        length = token_ids.shape[1]
        # A dynamic length (None) is at most context_length, the last bucket; slicing past it keeps it whole.
        buckets = [n for n in self.text_buckets if length is None or n < length]
        if buckets:
            # Checked before trimming, which would otherwise hide them (the tower checks what it is given too).
            padding_mask = None if padding_mask is None else tf.convert_to_tensor(padding_mask)
            check_text_inputs(token_ids, padding_mask, self.text_encoder.context_length)
            keep = text_bucket_length(token_ids, buckets + ([length] if length is not None else []))
            token_ids = token_ids[:, :keep]
            padding_mask = None if padding_mask is None else padding_mask[:, :keep]
        return self.text_encoder(token_ids, padding_mask)

    def logit_multiplier(self):
        """What cosine similarities are multiplied by to give logits: exp(logit_scale), capped."""
        return tf.minimum(tf.exp(self.logit_scale), MAX_LOGIT_SCALE)

    def logits(self, image_features, text_features):
        """(image_logits [N, M], text_logits [M, N]) from unnormalised features, as OpenAI's forward."""
        cosines = tf.matmul(l2_normalize_rows(image_features), l2_normalize_rows(text_features), transpose_b=True)
        image_logits = self.logit_multiplier() * cosines
        return image_logits, tf.transpose(image_logits)

    def __call__(self, inputs):
        missing = {"images", "token_ids"} - set(inputs)
        if missing:
            raise ValueError(f"CLIP inputs lack {sorted(missing)}; expected keys images, token_ids, padding_mask")
        image_features = self.encode_images(inputs["images"])
        text_features = self.encode_text(inputs["token_ids"], inputs.get("padding_mask"))
        return self.logits(image_features, text_features)

    # -- configuration ---------------------------------------------------------------------------------------

    def get_config(self):
        return dict(self._config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    @classmethod
    def from_preset(cls, preset, load_weights=None, input_shape=None, weights=None):
        """Build a preset. load_weights=False: random init. Otherwise weights="hub" (the default) downloads the
        preset's Hugging Face repository; a path loads a local checkpoint, which must match the preset.
        input_shape (R, R, 3) only restates the preset's resolution; other resolutions would need interpolated
        position embeddings, which OpenAI's checkpoints do not have."""
        entry = presets.get_preset(preset)
        config = dict(entry["config"])
        if input_shape is not None:
            expected = (config["image_resolution"], config["image_resolution"], 3)
            if tuple(input_shape) != expected:
                raise ValueError(f"preset {preset!r} takes input_shape {expected}, got {tuple(input_shape)}")
        if load_weights is False:
            if weights is not None:
                raise ValueError("load_weights=False builds a random model; do not also pass weights")
            return cls(**config)
        from clip_edge import checkpoints, hub

        path = hub.download_preset(preset) if weights in (None, "hub") else weights
        model = cls(**config)
        checkpoints.load_into(model, path, expected=f"preset {preset!r}")
        return model

    @classmethod
    def from_checkpoint(cls, path):
        """A Hugging Face directory or file, or an OpenAI-layout state dict; the architecture comes from the
        checkpoint's config.json when there is one, otherwise from the tensor shapes."""
        from clip_edge import checkpoints

        tensors, config = checkpoints.read_checkpoint(path)
        model = cls(**config)
        checkpoints.assign(model, tensors, source=str(path))
        return model
