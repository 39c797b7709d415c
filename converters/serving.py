"""The graphs we export: the SavedModel's serving signatures and the two TFLite encoder entry points.

The SavedModel holds the whole pipeline (tokenizer, decoding, resizing) because TF Serving runs any TF op.
TFLite cannot run string ops or image decoding without Flex ops, which neither TFLite interpreter here provides,
so its encoders start at token ids and at pixels already resized and cropped (devices tokenize and decode
natively, as android_demo does). The resize and crop itself, for any image size, is a separate TFLite model
(tflite_preprocess) built from builtin ops (converters/preprocess_tflite.py).
"""

import tensorflow as tf

from clip_edge.layers import l2_normalize_rows
from clip_edge.preprocessing import ImagePreprocessor
from clip_edge.tokenizer import CLIPTokenizer

from .preprocess_tflite import resize_and_crop_any_size
from .variants import DEFAULT_SIGNATURE

# The SavedModel's signatures with their inputs and outputs in words, as manifest.json lists them (the names
# are the functions' below; test_export checks them against the saved signatures).
SIGNATURES = {
    "tokenize": {"inputs": {"texts": "string [N]"},
                 "outputs": {"token_ids": "int32 [N, L]", "padding_mask": "int32 [N, L]"}},
    "encode_text": {"inputs": {"texts": "string [N]"}, "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
    "encode_image": {"inputs": {"images": "string [N] (JPEG/PNG/GIF/BMP bytes)"},
                     "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
    "encode_pixels": {"inputs": {"pixels": "uint8 [N, H, W, 3]"},
                      "outputs": {"embeddings": "float32 [N, D], L2-normalised"}},
    DEFAULT_SIGNATURE: {"inputs": {"images": "string [N]", "texts": "string [M]"},
                        "outputs": {"image_logits": "float32 [N, M]", "text_logits": "float32 [M, N]",
                                    "probs": "float32 [N, M]"}},
}


# The signatures embed a request's texts and images CHUNK at a time, one chunk after another, so that its memory is
# one chunk's activations whatever its size (10,000 texts in one encode_text call took over 6 GB, as did
# serving_default with 10,000 labels). Every row is computed on its own, so the chunking changes no result.
CHUNK = 64


class ServingModule(tf.Module):
    """CLIP with its tokenizer and image preprocessing, for tf.saved_model.save.

    Its graphs, and every tf.function of clip_edge, are traced with autograph=False: none branches or loops in
    Python on a tensor (tf.cond, tf.map_fn and tf.while_loop are written out, and tracing fails loudly on a Python
    `if tensor`), so autograph would only rewrite the source of every function they call, about 4 s of CPU per
    export of a tiny model (10% of it)."""

    def __init__(self, model, tokenizer=None):
        super().__init__(name="clip_serving")
        config = model.get_config()
        self.model = model
        self.tokenizer = tokenizer or CLIPTokenizer.from_openai_vocabulary(config["context_length"])
        self.preprocessor = ImagePreprocessor(config["image_resolution"])

    def _text_embeddings(self, texts):
        def embed(chunk):
            tokens = self.tokenizer(chunk)
            return l2_normalize_rows(self.model.encode_text(tokens["token_ids"], tokens["padding_mask"]))
        return self._in_chunks(embed, texts)

    def _image_embeddings(self, images):
        # Decoded first, all of them (uint8, so that a decoding error names the image's index in the request);
        # the float pixels and the tower's activations, many times larger, one chunk at a time.
        pixels = self.preprocessor.pixels_from_encoded(images)
        return self._in_chunks(
            lambda chunk: l2_normalize_rows(self.model.encode_images(self.preprocessor.normalize(chunk))), pixels)

    def _in_chunks(self, embed, items):
        """embed(items[i:i + CHUNK]) -> float32 [n, D], chunk after chunk, concatenated: [N, D]."""
        dimensions = self.model.get_config()["embed_dim"]
        chunks = (tf.shape(items)[0] + CHUNK - 1) // CHUNK

        def body(index, parts):
            return index + 1, parts.write(index, embed(items[index * CHUNK:(index + 1) * CHUNK]))

        empty = tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=[None, dimensions])
        _, parts = tf.while_loop(lambda index, _: index < chunks, body, (tf.constant(0), empty),
                                 parallel_iterations=1)  # one chunk at a time: that is the point
        return tf.ensure_shape(parts.concat(), [None, dimensions])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")], autograph=False)
    def tokenize(self, texts):
        return self.tokenizer(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")], autograph=False)
    def encode_text(self, texts):
        return {"embeddings": self._text_embeddings(texts)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def encode_image(self, images):
        return {"embeddings": self._image_embeddings(images)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")], autograph=False)
    def encode_pixels(self, pixels):
        return {"embeddings": self._in_chunks(
            lambda chunk: l2_normalize_rows(self.model.encode_images(self.preprocessor.from_pixels(chunk))), pixels)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images"),
                                  tf.TensorSpec([None], tf.string, name="texts")], autograph=False)
    def serving_default(self, images, texts):
        image_logits, text_logits = self.model.logits(self._image_embeddings(images), self._text_embeddings(texts))
        return {"image_logits": image_logits, "text_logits": text_logits,
                "probs": tf.nn.softmax(image_logits, axis=-1)}

    def signatures(self):
        """{key: function}: each key is its function's name (DEFAULT_SIGNATURE is serving_default's)."""
        return {name: getattr(self, name) for name in SIGNATURES}


def save_serving_model(model, path, tokenizer=None):
    """Write the SavedModel with the contract's signatures to `path` (which must not exist)."""
    module = ServingModule(model, tokenizer)
    tf.saved_model.save(module, path, signatures=module.signatures())
    return module


def tflite_image_encoder(model):
    """Concrete function uint8 [1, R, R, 3] (resized and centre-cropped RGB) -> L2-normalised float32 [1, D]."""
    resolution = model.get_config()["image_resolution"]
    preprocessor = ImagePreprocessor(resolution)

    @tf.function(input_signature=[tf.TensorSpec([1, resolution, resolution, 3], tf.uint8, name="pixels")],
                 autograph=False)
    def image_encoder(pixels):
        return {"embedding": l2_normalize_rows(model.encode_images(preprocessor.normalize(pixels)))}

    return image_encoder.get_concrete_function()


def text_signature_key(length, context_length):
    """TFLite signature key of the text encoder at `length`: the full context length keeps serving_default (the
    key of a one-signature file, subgraph 0, what plain Interpreter calls run); shorter buckets are tokens_L."""
    return DEFAULT_SIGNATURE if length == context_length else f"tokens_{length}"


def tflite_text_encoder(model, length=None):
    """Concrete function int32 [1, L] token ids -> L2-normalised float32 [1, D]; L defaults to the context
    length. Causal attention makes a shorter L give the same embedding for every text whose end token is at
    a position < L."""
    context_length = model.get_config()["context_length"]
    length = length or context_length

    def text_encoder(token_ids):
        # The tower itself, not CLIP.encode_text, which would trim to a bucket with a dynamic shape.
        return {"embedding": l2_normalize_rows(model.text_encoder(token_ids))}

    # The converter names each signature of a multi-signature file after its Python function.
    text_encoder.__name__ = text_signature_key(length, context_length)
    function = tf.function(text_encoder, input_signature=[tf.TensorSpec([1, length], tf.int32, name="token_ids")],
                           autograph=False)
    return function.get_concrete_function()


def tflite_text_encoders(model, lengths):
    """{signature key: concrete function} for each length, the full context length first (subgraph 0)."""
    context_length = model.get_config()["context_length"]
    ordered = [context_length] + sorted(set(lengths) - {context_length})
    return {text_signature_key(n, context_length): tflite_text_encoder(model, n) for n in ordered}


def tflite_preprocess(resolution):
    """Concrete function uint8 [1, H, W, 3] (any H, W) -> uint8 [1, R, R, 3], resized and centre-cropped as
    ImagePreprocessor.resize_and_crop does it (PIL's bicubic), from TFLite builtin ops only."""

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="pixels")], autograph=False)
    def preprocess(pixels):
        # An interpreter resized without strict checking takes any shape: resize_and_crop_any_size fails the call
        # on a non-empty one other than [1, H, W, 3] itself (a reshape of the whole input here would copy it).
        return {"pixels": resize_and_crop_any_size(pixels, resolution)}

    return preprocess.get_concrete_function()
