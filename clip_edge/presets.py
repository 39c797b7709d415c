"""The four OpenAI CLIP presets as data: architecture, Hugging Face repository and revision, expected parameter
count."""

# OpenAI's two ViT families; the presets differ from them only in patch size and resolution.
_BASE = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, context_length=77,
             vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
_LARGE = dict(_BASE, embed_dim=768, vision_layers=24, vision_width=1024, vision_patch_size=14,
              transformer_width=768, transformer_heads=12)

# hf_revision: the commit checkpoints.download_preset fetches ("main": the repository's latest).
PRESETS = {
    "clip-vit-base-patch16": {"hf_repo": "openai/clip-vit-base-patch16", "hf_revision": "main",
                              "param_count": 149_620_737, "config": dict(_BASE, vision_patch_size=16)},
    "clip-vit-base-patch32": {"hf_repo": "openai/clip-vit-base-patch32", "hf_revision": "main",
                              "param_count": 151_277_313, "config": dict(_BASE, vision_patch_size=32)},
    "clip-vit-large-patch14": {"hf_repo": "openai/clip-vit-large-patch14", "hf_revision": "main",
                               "param_count": 427_616_513, "config": dict(_LARGE)},
    "clip-vit-large-patch14-336": {"hf_repo": "openai/clip-vit-large-patch14-336", "hf_revision": "main",
                                   "param_count": 427_944_193, "config": dict(_LARGE, image_resolution=336)},
}


def get_preset(name):
    """The preset's entry, or a ValueError that lists the valid names."""
    if name not in PRESETS:
        raise ValueError(f"unknown CLIP preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
