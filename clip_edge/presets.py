"""The four OpenAI CLIP presets as data: architecture, Hugging Face repository and revision."""

from clip_edge.messages import quoted

# OpenAI's two ViT families; the presets differ from them only in patch size and resolution.
_BASE = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, context_length=77,
             vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
_LARGE = dict(_BASE, embed_dim=768, vision_layers=24, vision_width=1024, vision_patch_size=14,
              transformer_width=768, transformer_heads=12)

# hf_revision: the commit hub.download_preset fetches. Pinned where public code establishes a commit
# holding the safetensors weights; "main" (the repository's latest) where it does not. Sources: public
# repositories' code and docs, found by searching for the repository names next to 40-hex revisions (Dec 2026):
# - clip-vit-large-patch14 at 32bd64288804d66eefd0ccbe215aa642df71cc41: pinned by several unrelated projects
#   (Python `revision=` arguments, a Rust CLIP_L_REVISION constant, benchmark notes), and an example command in
#   a FLUX LoRA guide reads model.safetensors from that commit's snapshot folder.
# - clip-vit-base-patch32: projects pin three different commits (3d74acf9…, e6a30b60…, d15b5f29…) and nothing
#   shows which of them is main's or holds model.safetensors (d15b5f29… is used for it once): "main".
# - clip-vit-base-patch16 (57c21647…) and clip-vit-large-patch14-336 (ce19dc91…): the snapshots projects load,
#   but nothing shows they hold model.safetensors rather than only pytorch_model.bin: "main".
# Whatever the revision, every weight file is checked against the sha256 the hub lists for it.
PRESETS = {
    "clip-vit-base-patch16": {"hf_repo": "openai/clip-vit-base-patch16", "hf_revision": "main",
                              "config": dict(_BASE, vision_patch_size=16)},
    "clip-vit-base-patch32": {"hf_repo": "openai/clip-vit-base-patch32", "hf_revision": "main",
                              "config": dict(_BASE, vision_patch_size=32)},
    "clip-vit-large-patch14": {"hf_repo": "openai/clip-vit-large-patch14",
                               "hf_revision": "32bd64288804d66eefd0ccbe215aa642df71cc41", "config": dict(_LARGE)},
    "clip-vit-large-patch14-336": {"hf_repo": "openai/clip-vit-large-patch14-336", "hf_revision": "main",
                                   "config": dict(_LARGE, image_resolution=336)},
}


def get_preset(name):
    """The preset's entry, or a ValueError that lists the valid names."""
    if name not in PRESETS:
        raise ValueError(f"unknown CLIP preset {quoted(name)}; valid presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
