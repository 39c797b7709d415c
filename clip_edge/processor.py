"""CLIPProcessor: the tokenizer and the image preprocessing of one CLIP model, together (KerasCV's API)."""

import tensorflow as tf

from clip_edge import presets
from clip_edge.model import text_bucket_length
from clip_edge.preprocessing import ImagePreprocessor
from clip_edge.tokenizer import CLIPTokenizer


class CLIPProcessor(tf.Module):
    """Texts -> {"token_ids", "padding_mask"} and images -> float32 [N, R, R, 3], both in TensorFlow graphs.

    vocabulary: dict token -> id or a Hugging Face vocab.json path; merges: list of "a b" or a merges.txt path.
    """

    def __init__(self, vocabulary, merges, input_resolution=224, context_length=77, tokenizer=None):
        super().__init__(name="clip_processor")
        self.tokenizer = tokenizer or CLIPTokenizer(vocabulary, merges, context_length=context_length)
        self.image_preprocessor = ImagePreprocessor(input_resolution)
        self.input_resolution = input_resolution
        self.context_length = context_length

    @classmethod
    def from_preset(cls, preset):
        """The processor of a preset, with OpenAI's vocabulary as shipped in the package."""
        config = presets.get_preset(preset)["config"]
        tokenizer = CLIPTokenizer.from_openai_vocabulary(config["context_length"])
        return cls(None, None, config["image_resolution"], config["context_length"], tokenizer=tokenizer)

    def process_images(self, images):
        """List of paths, encoded bytes or uint8 arrays -> float32 [N, R, R, 3] NHWC, normalised as OpenAI."""
        return self.image_preprocessor.load(images)

    def __call__(self, texts, buckets=None):
        """List of str or tf.string [N] -> {"token_ids": int32 [N, L], "padding_mask": int32 [N, L]}.

        L is context_length, or with `buckets` (e.g. a model's `text_buckets`, or the lengths of a TFLite text
        encoder's signatures) the shortest of them that holds every text's end token: what a length-L
        encoder needs for the same embedding."""
        tokens = self.tokenizer(texts)
        if buckets:
            keep = text_bucket_length(tokens["token_ids"], sorted(set(buckets) | {self.context_length}))
            tokens = {key: value[:, :keep] for key, value in tokens.items()}
        return tokens

    def detokenize(self, token_ids):
        """token ids -> the texts they spell (lowercased, cleaned, with OpenAI's spacing), for debugging."""
        return self.tokenizer.detokenize(token_ids)
