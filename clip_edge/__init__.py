"""clip_edge: OpenAI's CLIP in TensorFlow, from checkpoint to TF Serving and TFLite.

The public names below, and the submodules, are imported on first use (PEP 562): `import clip_edge`, or a
submodule that needs no TensorFlow (checkpoints, checkpoint_files, hub, presets, messages, device_index,
beam.index), does not start TensorFlow, which costs about 4 s and 0.6 GB in every process that only downloads a
checkpoint, converts an index or reads a summary. `clip_edge.CLIP`, `from clip_edge import CLIP` and
`clip_edge.model.X` work as before.
"""

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "CLIP": "model",
    "CLIPAttention": "layers",
    "CLIPEncoder": "layers",
    "CLIPImageEncoder": "layers",
    "CLIPProcessor": "processor",
    "CLIPTextEncoder": "layers",
    "CLIPTokenizer": "tokenizer",
    "ImagePreprocessor": "preprocessing",
    "PRESETS": "presets",
    "QuickGELU": "layers",
    "ResidualAttention": "layers",
    "TextCleaner": "text_cleaning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    else:
        try:  # a submodule not imported yet, as `import clip_edge; clip_edge.model.text_buckets(...)` expects
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
