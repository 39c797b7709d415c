"""The independent references our tests compare against: transformers' PyTorch CLIP, OpenAI's tokenizer and
Pillow's resize and crop.

Nothing here uses clip_edge, so a bug in clip_edge cannot hide in its own expected values.
"""

import functools

import numpy as np
from PIL import Image

from tests import tokenizer_corpus

# Captions of the kind CLIP is queried with, plus longer real prose; the photos are scikit-image's samples.
SENTENCES = [
    "a photo of an astronaut.",
    "a photo of a cup of coffee",
    "a close-up photo of a cat lying on a table",
    "a rocket on the launch pad, ready for lift-off!",
    "the deep field: thousands of galaxies in a tiny patch of sky",
    "A DIAGRAM OF A NEURAL NETWORK",
    "an old black-and-white photograph of a street in Paris, 1920s",
    "two dogs playing in the snow",
    "It's a sunny day; the children aren't at school.",
    "the number 42 written on a whiteboard",
    "Le café est délicieux",
    "a photo of a <|endoftext|> dog",  # a second end token inside the text: pooling takes the first
    "The quick brown fox jumps over the lazy dog. " * 12,  # longer than the context: truncated
]

# The zero-shot classifier of conftest's small export (test_text_buckets_and_zero_shot checks it): classes in
# output order, and prompt templates of our own rather than the exporter's defaults.
ZERO_SHOT_LABELS = ["a rocket", "galaxies", "an eye", "stained cells", "a motorcycle", "the moon", "gravel",
                    "printed text"]
ZERO_SHOT_TEMPLATES = ["a photo of {}.", "a blurry photo of {}.", "{}, seen up close"]


@functools.lru_cache(maxsize=1)
def openai_tokenizer():
    """open_clip's SimpleTokenizer (OpenAI's tokenizer with ftfy), loaded as tokenizer_corpus loads it (from its
    file, without open_clip's package __init__, which needs torchvision); one instance for all suites."""
    return tokenizer_corpus.load_reference_tokenizer()


def reference_token_ids(texts, context_length=77):
    """int32 [N, context_length] ids from OpenAI's tokenizer (truncated with the end token kept last)."""
    return openai_tokenizer()(list(texts), context_length=context_length).numpy().astype(np.int32)


def hf_clip_config(vision_width, vision_layers, vision_heads, patch_size, image_size, text_width, text_layers,
                   text_heads, projection_dim, context_length=77, vocab_size=49408):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(hidden_size=text_width, intermediate_size=4 * text_width, num_hidden_layers=text_layers,
                         num_attention_heads=text_heads, vocab_size=vocab_size,
                         max_position_embeddings=context_length, bos_token_id=vocab_size - 2,
                         eos_token_id=vocab_size - 1, pad_token_id=0),
        vision_config=dict(hidden_size=vision_width, intermediate_size=4 * vision_width,
                           num_hidden_layers=vision_layers, num_attention_heads=vision_heads, image_size=image_size,
                           patch_size=patch_size),
        projection_dim=projection_dim)


def random_hf_clip(config, seed=0):
    """transformers' CLIPModel with random weights, biases and LayerNorm parameters perturbed away from 0 and 1
    (freshly initialised they are exactly 0 and 1, which would hide a bias or gamma mapped to the wrong place),
    and logit_scale moved off its default."""
    import torch
    from transformers import CLIPModel

    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "layrnorm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
        model.logit_scale.fill_(3.1)
    return model


def hf_features(model, pixel_values_nhwc, token_ids):
    """(image features, text features, logits_per_image) from transformers, as numpy."""
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(pixel_values_nhwc.transpose(0, 3, 1, 2)))
    ids = torch.from_numpy(token_ids.astype(np.int64))
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels)
        text = model.get_text_features(input_ids=ids)
        logits = model(pixel_values=pixels, input_ids=ids).logits_per_image
    # transformers 5 returns an output object from get_*_features; 4.x returned the tensor.
    image = getattr(image, "pooler_output", image)
    text = getattr(text, "pooler_output", text)
    return image.numpy(), text.numpy(), logits.numpy()


def hf_pixel_values(photos, resolution):
    """NHWC float32 pixels made by transformers' CLIPImageProcessor (PIL backend) from uint8 photos."""
    from transformers import CLIPImageProcessorPil  # the PIL backend; the default one needs torchvision

    processor = CLIPImageProcessorPil(size={"shortest_edge": resolution},
                                   crop_size={"height": resolution, "width": resolution})
    # channels_last explicitly: transformers would read a 1xWx3 or 3xWx3 photo as channels-first.
    batch = processor(images=list(photos), return_tensors="np", input_data_format="channels_last")["pixel_values"]
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1)).astype(np.float32)


def resized_size(width, height, resolution):
    """(new width, new height) as transformers' CLIP resize computes it (get_resize_output_image_size): the
    shortest side becomes `resolution`, the other int(resolution * long / short)."""
    short, long = min(width, height), max(width, height)
    new_long = int(resolution * long / short)
    return (resolution, new_long) if width <= height else (new_long, resolution)


def pillow_resize_and_crop(pixels, resolution):
    """uint8 [R, R, 3] by Pillow alone, as transformers' CLIPImageProcessor (PIL backend) calls it: Image.resize
    (BICUBIC) to resized_size, then the centre crop at offset (size - R) // 2."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    size = resized_size(image.width, image.height, resolution)
    resized = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(resized.crop((left, top, left + resolution, top + resolution)))


def openai_state_dict(hf_state):
    """The same weights under OpenAI's clip/model.py names, written independently of clip_edge's mapping:
    q, k, v concatenated into in_proj, projections stored [in, out]."""
    renamed = {}
    layer_parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}
    for tower, prefix in (("vision_model", "visual.transformer"), ("text_model", "transformer")):
        layers = {int(k.split(".")[3]) for k in hf_state if k.startswith(f"{tower}.encoder.layers.")}
        for i in layers:
            hf = f"{tower}.encoder.layers.{i}"
            for kind in ("weight", "bias"):
                renamed[f"{prefix}.resblocks.{i}.attn.in_proj_{kind}"] = np.concatenate(
                    [hf_state[f"{hf}.self_attn.{p}_proj.{kind}"] for p in "qkv"], axis=0)
                for hf_part, openai_part in layer_parts.items():
                    renamed[f"{prefix}.resblocks.{i}.{openai_part}.{kind}"] = hf_state[f"{hf}.{hf_part}.{kind}"]
    simple = {
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
        "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
        "vision_model.post_layernorm.weight": "visual.ln_post.weight",
        "vision_model.post_layernorm.bias": "visual.ln_post.bias",
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
        "logit_scale": "logit_scale",
    }
    for hf_name, openai_name in simple.items():
        renamed[openai_name] = hf_state[hf_name]
    renamed["visual.proj"] = np.ascontiguousarray(hf_state["visual_projection.weight"].T)
    renamed["text_projection"] = np.ascontiguousarray(hf_state["text_projection.weight"].T)
    return renamed
