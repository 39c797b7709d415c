"""The TFLite path of clip_edge.beam: the SavedModel's own decoding, resize and crop in TensorFlow, then an
export's TFLite encoder in ai_edge_litert, one image (or one text) per invoke.

The pixels are those encode_image computes before its encoder (clip_edge.preprocessing.ImagePreprocessor's
pixels_from_encoded, the same graph as from_encoded without the normalisation, which the TFLite image encoders
do inside), and a file it refuses fails here with the same message. The text encoders take the SavedModel's
`tokenize` output (int32 [1, L], L the context length: signature serving_default, subgraph 0).

An Interpreter is not safe to call from two threads at once: each user holds its own (a DoFn instance creates
one in setup(), and Beam runs a DoFn instance in one thread at a time).
"""

import os

import numpy as np

# Threads per interpreter a user may ask for (--tflite_threads): the exporter's bound, far above any machine's
# cores; a million would take the machine's threads down with the process.
MAX_THREADS = 256


class PixelDecoder:
    """tf.string [N] of encoded images -> uint8 [N, R, R, 3], as the SavedModel's encode_image decodes them."""

    def __init__(self, resolution):
        import tensorflow as tf

        from clip_edge.preprocessing import ImagePreprocessor

        preprocessor = ImagePreprocessor(resolution)
        self._tf = tf
        self._decode = tf.function(preprocessor.pixels_from_encoded,
                                   input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)

    def __call__(self, images):
        """list of bytes -> uint8 numpy [N, R, R, 3]; tf.errors.OpError when an image cannot be decoded."""
        return self._decode(self._tf.constant(images)).numpy()


def default_threads():
    """Threads per interpreter when --tflite_threads is not given: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Encoder:
    """One TFLite encoder (image: uint8 [1, R, R, 3]; text: int32 [1, L]) -> float32 [D] per input."""

    def __init__(self, model_bytes, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads or default_threads())
        self._interpreter.allocate_tensors()
        (self._input,), (self._output,) = (self._interpreter.get_input_details(),
                                           self._interpreter.get_output_details())

    @property
    def input_shape(self):
        return tuple(self._input["shape"])

    def __call__(self, single):
        """One input without its batch axis -> its embedding, float32 [D] (a copy)."""
        self._interpreter.set_tensor(self._input["index"], np.asarray(single, self._input["dtype"])[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])[0].astype(np.float32, copy=True)
