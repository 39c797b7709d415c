"""CLIP's building blocks as tf.Modules: attention, residual blocks, the two towers.

Numerics follow OpenAI's `clip/model.py` (pre-LN blocks, LayerNorm epsilon 1e-5, QuickGELU, causal text
attention, features taken at the end-of-text token). Where we differ it is for export: every tensor stays at
rank 4 or below, the causal mask uses a finite negative so it survives float16, and the end-of-text pooling is a
masked reduction rather than a gather, so that the graphs convert to TFLite builtins the GPU delegate runs.

Sub-modules and weights take the names transformers' CLIPModel gives the tensors they hold (encoder.layers,
self_attn.q_proj, layer_norm1, fc1, position_embedding, ...): clip_edge.checkpoints reads every checkpoint under
those names (OpenAI's are renamed on read), and our separate q/k/v projections are transformers' layout, which
OpenAI's fused in_proj has no names for. Classes and constructor arguments keep the seed's names (KerasCV's and
OpenAI's), as does an attribute that stores a constructor argument. A `kernel` is laid out for `x @ kernel`
([in, out]; TF's conv layout for the patch embedding), not as transformers' `weight`: clip_edge.checkpoints
transposes one onto the other.
"""

import tensorflow as tf

LAYER_NORM_EPSILON = 1e-5

# OpenAI masks future positions with -inf. -inf is not representable after float16 arithmetic without turning
# rows into NaN on some delegates, so we add a finite value instead: exp(-1e4 - max) underflows to exactly 0 in
# float32 and float16 for any score a trained CLIP produces, and -1e4 stays finite in float16 (max 65504).
CAUSAL_MASK_VALUE = -1e4


def _normal(shape, stddev, name):
    return tf.Variable(tf.random.normal(shape, stddev=stddev), name=name)


def _zeros(shape, name):
    return tf.Variable(tf.zeros(shape), name=name)


def _ones(shape, name):
    return tf.Variable(tf.ones(shape), name=name)


class QuickGELU(tf.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI trained CLIP with (not the erf GELU)."""

    def __call__(self, x):
        return x * tf.sigmoid(1.702 * x)


class LayerNorm(tf.Module):
    """LayerNorm over the last axis with OpenAI's epsilon, written out so it converts to plain TFLite ops."""

    def __init__(self, width, name=None):
        super().__init__(name=name)
        self.weight = _ones([width], "weight")
        self.bias = _zeros([width], "bias")

    def __call__(self, x):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
        return centred * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * self.weight + self.bias


class Dense(tf.Module):
    """x @ kernel + bias with the kernel stored [in, out]."""

    def __init__(self, in_width, out_width, stddev, use_bias=True, name=None):
        super().__init__(name=name)
        self.kernel = _normal([in_width, out_width], stddev, "kernel")
        self.bias = _zeros([out_width], "bias") if use_bias else None

    def __call__(self, x):
        y = tf.matmul(x, self.kernel)
        return y if self.bias is None else y + self.bias


class CLIPAttention(tf.Module):
    """Multi-head self-attention with separate q, k, v projections (Hugging Face's layout; OpenAI's fused
    in_proj is split on load). `num_hidden_layers` only scales the initialisation, as in OpenAI's code."""

    def __init__(self, proj_dim, num_heads, num_hidden_layers, dropout=0.0, name=None):
        super().__init__(name=name)
        if num_heads <= 0 or proj_dim % num_heads:
            raise ValueError(f"proj_dim {proj_dim} is not divisible by num_heads {num_heads}")
        if dropout:
            raise ValueError("clip_edge is an inference library: CLIPAttention supports dropout=0.0 only")
        self.proj_dim = proj_dim
        self.num_heads = num_heads
        self.head_dim = proj_dim // num_heads
        in_std = proj_dim**-0.5
        out_std = proj_dim**-0.5 * (2 * num_hidden_layers) ** -0.5
        self.q_proj = Dense(proj_dim, proj_dim, in_std, name="q_proj")
        self.k_proj = Dense(proj_dim, proj_dim, in_std, name="k_proj")
        self.v_proj = Dense(proj_dim, proj_dim, in_std, name="v_proj")
        self.out_proj = Dense(proj_dim, proj_dim, out_std, name="out_proj")

    def _split_heads(self, x, length):
        # [B, L, W] -> [B, H, L, W/H]: rank 4 at most, which the GPU delegate requires.
        return tf.transpose(tf.reshape(x, [-1, length, self.num_heads, self.head_dim]), [0, 2, 1, 3])

    def __call__(self, x, attention_mask=None):
        length = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
        # Scaling q before the product (as OpenAI's nn.MultiheadAttention does) keeps float16 scores in range.
        q = self._split_heads(self.q_proj(x) * (self.head_dim**-0.5), length)
        k = self._split_heads(self.k_proj(x), length)
        v = self._split_heads(self.v_proj(x), length)
        scores = tf.matmul(q, k, transpose_b=True)
        if attention_mask is not None:
            scores += attention_mask
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
        return self.out_proj(tf.reshape(context, [-1, length, self.proj_dim]))


class ResidualAttention(tf.Module):
    """Pre-LN transformer block: x + self_attn(layer_norm1(x)), then x + fc2(QuickGELU(fc1(layer_norm2(x)))), fc1
    4x wide."""

    def __init__(self, proj_dim, num_heads, num_hidden_layers, name=None):
        super().__init__(name=name)
        self.layer_norm1 = LayerNorm(proj_dim, name="layer_norm1")
        self.self_attn = CLIPAttention(proj_dim, num_heads, num_hidden_layers, name="self_attn")
        self.layer_norm2 = LayerNorm(proj_dim, name="layer_norm2")
        self.fc1 = Dense(proj_dim, 4 * proj_dim, (2 * proj_dim) ** -0.5, name="fc1")
        self.activation_fn = QuickGELU()
        self.fc2 = Dense(4 * proj_dim, proj_dim, proj_dim**-0.5 * (2 * num_hidden_layers) ** -0.5, name="fc2")

    def __call__(self, x, attention_mask=None):
        x = x + self.self_attn(self.layer_norm1(x), attention_mask)
        return x + self.fc2(self.activation_fn(self.fc1(self.layer_norm2(x))))


class CLIPEncoder(tf.Module):
    def __init__(self, width, num_layers, heads, name=None):
        super().__init__(name=name)
        self.width = width
        self.layers = [ResidualAttention(width, heads, num_layers, name=f"layer_{i}") for i in range(num_layers)]

    def __call__(self, x, attention_mask=None):
        for layer in self.layers:
            x = layer(x, attention_mask)
        return x


class CLIPImageEncoder(tf.Module):
    """ViT image tower: NHWC float images (already normalised) -> projected features [N, output_dim]."""

    def __init__(self, input_resolution, patch_size, width, num_layers, heads, output_dim, name=None):
        super().__init__(name=name)
        if input_resolution % patch_size:
            raise ValueError(f"input_resolution {input_resolution} is not a multiple of patch_size {patch_size}")
        self.input_resolution = input_resolution
        self.patch_size = patch_size
        self.width = width
        self.grid_size = input_resolution // patch_size
        scale = width**-0.5
        # Conv kernel in TF's [kh, kw, in, out] layout; no bias, as in OpenAI's and transformers' CLIP.
        self.patch_embedding = _normal([patch_size, patch_size, 3, width], scale, "patch_embedding")
        self.class_embedding = _normal([width], scale, "class_embedding")
        self.position_embedding = _normal([self.grid_size**2 + 1, width], scale, "position_embedding")
        self.pre_layernorm = LayerNorm(width, name="pre_layernorm")  # transformers spells it pre_layrnorm
        self.encoder = CLIPEncoder(width, num_layers, heads, name="encoder")
        self.post_layernorm = LayerNorm(width, name="post_layernorm")
        self.visual_projection = _normal([width, output_dim], scale, "visual_projection")

    def __call__(self, images):
        resolution = self.input_resolution
        tf.debugging.assert_equal(
            tf.shape(images)[1:], tf.constant([resolution, resolution, 3]),
            message=f"images must be [N, {resolution}, {resolution}, 3] (NHWC, RGB)")
        # The patch embedding, a convolution with stride = kernel = patch_size, as one matrix product over the
        # flattened patches: space_to_depth orders each patch's values (row, column, channel) as the kernel's
        # [kh, kw, in] axes flatten. TFLite then runs a FULLY_CONNECTED, where a CONV_2D with 3 input channels
        # was XNNPACK's slowest int8 kernel per operation (docs/quantization.md, "Latency of the patch embedding").
        size = self.patch_size * self.patch_size * 3
        patches = tf.reshape(tf.nn.space_to_depth(images, self.patch_size), [-1, size])
        tokens = tf.reshape(tf.matmul(patches, tf.reshape(self.patch_embedding, [size, self.width])),
                            [-1, self.grid_size**2, self.width])
        class_token = tf.zeros_like(tokens[:, :1, :]) + self.class_embedding
        x = tf.concat([class_token, tokens], axis=1) + self.position_embedding
        x = self.encoder(self.pre_layernorm(x))
        # The class token as x[:, :1] and a reshape, not x[:, 0]: the shrink-axis slice is not a GPU-delegate op.
        class_features = tf.reshape(x[:, :1, :], [-1, self.width])
        return tf.matmul(self.post_layernorm(class_features), self.visual_projection)


def causal_attention_mask(length):
    """[1, 1, L, L] additive mask: 0 on and below the diagonal, CAUSAL_MASK_VALUE above it."""
    future = 1.0 - tf.linalg.band_part(tf.ones([length, length]), -1, 0)
    return tf.reshape(future * CAUSAL_MASK_VALUE, [1, 1, length, length])


def end_of_text_one_hot(token_ids):
    """[N, L] float one-hot of the first occurrence of each row's largest token id.

    OpenAI pools at `token_ids.argmax(-1)`: the end-of-text token has the largest id, and torch's argmax returns
    the first maximum when a text contains several. argmax and gather run poorly on the GPU delegate, so the same
    position is found with comparisons and one matmul against an upper-triangular matrix of ones (a running
    count of maxima): the first maximum is where that count is 1.
    """
    length = token_ids.shape[1] if token_ids.shape[1] is not None else tf.shape(token_ids)[1]
    is_max = tf.cast(tf.equal(token_ids, tf.reduce_max(token_ids, axis=-1, keepdims=True)), tf.float32)
    running_count = tf.matmul(is_max, tf.linalg.band_part(tf.ones([length, length]), 0, -1))
    return is_max * tf.cast(tf.equal(running_count, 1.0), tf.float32)


def check_text_inputs(token_ids, padding_mask, context_length):
    """Asserts that [N, L] `token_ids` are at most `context_length` long and that `padding_mask`, when given, has
    their shape (tf.errors.InvalidArgumentError saying which). The text tower checks what it is given;
    clip_edge.CLIP.encode_text checks before trimming to a text bucket, which would hide either."""
    tf.debugging.assert_less_equal(tf.shape(token_ids)[1], context_length,
                                   message=f"token_ids are longer than context_length {context_length}")
    if padding_mask is not None:
        tf.debugging.assert_equal(tf.shape(padding_mask), tf.shape(token_ids),
                                  message="padding_mask must have the shape of token_ids")


class CLIPTextEncoder(tf.Module):
    """Causal text transformer: int32 token ids [N, L] -> projected features at end-of-text [N, embed_dim]."""

    def __init__(self, transformer_width, transformer_layers, transformer_heads, vocab_size, embed_dim,
                 context_length, name=None):
        super().__init__(name=name)
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.token_embedding = _normal([vocab_size, transformer_width], 0.02, "token_embedding")
        self.position_embedding = _normal([context_length, transformer_width], 0.01, "position_embedding")
        self.encoder = CLIPEncoder(transformer_width, transformer_layers, transformer_heads, name="encoder")
        self.final_layer_norm = LayerNorm(transformer_width, name="final_layer_norm")
        self.text_projection = _normal([transformer_width, embed_dim], transformer_width**-0.5, "text_projection")

    def __call__(self, token_ids, padding_mask=None):
        """`padding_mask` is accepted for KerasCV compatibility and checked, but not needed: attention is causal,
        so the end-of-text features never see the padding after it (the same reason OpenAI passes no mask)."""
        token_ids = tf.cast(token_ids, tf.int32)
        check_text_inputs(token_ids, padding_mask, self.context_length)
        length = token_ids.shape[1] if token_ids.shape[1] is not None else tf.shape(token_ids)[1]
        x = tf.gather(self.token_embedding, token_ids) + self.position_embedding[:length]
        x = self.final_layer_norm(self.encoder(x, causal_attention_mask(length)))
        pooled = tf.squeeze(tf.matmul(end_of_text_one_hot(token_ids)[:, tf.newaxis, :], x), axis=1)
        return tf.matmul(pooled, self.text_projection)


def l2_normalize_rows(x):
    """Per-row L2 normalisation, so that an embedding does not depend on the batch it is computed in (a norm
    over the whole batch would). Written with maximum() rather than `+ eps` so that the TFLite converter keeps
    plain SUM/RSQRT/MUL ops instead of fusing an L2_NORMALIZATION, which the GPU delegate cannot run."""
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(x * x, axis=-1, keepdims=True), 1e-12))
