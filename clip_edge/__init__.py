"""clip_edge: OpenAI's CLIP in TensorFlow, from checkpoint to TF Serving and TFLite."""

from clip_edge.layers import (CLIPAttention, CLIPEncoder, CLIPImageEncoder, CLIPTextEncoder, QuickGELU,
                              ResidualAttention)
from clip_edge.model import CLIP
from clip_edge.preprocessing import ImagePreprocessor
from clip_edge.presets import PRESETS
from clip_edge.processor import CLIPProcessor
from clip_edge.text_cleaning import TextCleaner
from clip_edge.tokenizer import CLIPTokenizer

__all__ = ["CLIP", "CLIPAttention", "CLIPEncoder", "CLIPImageEncoder", "CLIPProcessor", "CLIPTextEncoder",
           "CLIPTokenizer", "ImagePreprocessor", "PRESETS", "QuickGELU", "ResidualAttention", "TextCleaner"]
