"""clip_edge: OpenAI's CLIP in TensorFlow, from checkpoint to TF Serving and TFLite."""

from clip_edge.layers import (CLIPAttention, CLIPEncoder, CLIPImageEncoder, CLIPTextEncoder, QuickGELU,
                              ResidualAttention)
from clip_edge.model import CLIP
from clip_edge.presets import PRESETS

__all__ = ["CLIP", "CLIPAttention", "CLIPEncoder", "CLIPImageEncoder", "CLIPTextEncoder", "QuickGELU",
           "ResidualAttention", "PRESETS"]
