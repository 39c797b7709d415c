"""The exported SavedModel's signatures end to end against transformers' PyTorch CLIP of the same checkpoint, on
real photos and sentences: strings and encoded images in, through the in-graph tokenizer, decoder and
preprocessing, to embeddings and logits. Nothing of ours is on the reference side (OpenAI's tokenizer gives
transformers its token ids; Pillow decodes and CLIPImageProcessor preprocesses its pixels).

The SavedModel runs in this process with clip_edge loaded, but it is a graph: loading it runs none of our
Python (test_export checks that a process without clip_edge can load and run it).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the SavedModel's tokenizer uses)
import transformers
from PIL import Image

from tests import photos
from tests import reference

# Photos with the shapes where resizing and cropping go wrong, besides ordinary ones; PNG so that the SavedModel's
# decoder and Pillow's read the same pixels (JPEG decoders may differ by a level).
PHOTOS = ("astronaut", "coffee", "chelsea", "tall", "wide_strip")
# Both sides compute in float32 from the same weights; what remains is summation order and, for images, the
# at most one-level differences of our resize from Pillow's on a few pixels.
TEXT_ATOL = 2e-5
IMAGE_COSINE = 0.99999


@pytest.fixture(scope="module")
def saved_model(small_export):
    return tf.saved_model.load(os.path.join(small_export, "saved_model"))


@pytest.fixture(scope="module")
def hf_model(small_checkpoint):
    return transformers.CLIPModel.from_pretrained(small_checkpoint).eval()


@pytest.fixture(scope="module")
def png_bytes():
    return [photos.encoded(name, "PNG") for name in PHOTOS]


@pytest.fixture(scope="module")
def hf_reference(hf_model, png_bytes):
    """transformers' image features, text features and logits_per_image for the photos (decoded by Pillow) and
    reference.SENTENCES (tokenised by OpenAI's tokenizer)."""
    import io

    decoded = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in png_bytes]
    resolution = hf_model.config.vision_config.image_size
    pixels = reference.hf_pixel_values(decoded, resolution)
    ids = reference.reference_token_ids(reference.SENTENCES, hf_model.config.text_config.max_position_embeddings)
    return decoded, reference.hf_features(hf_model, pixels, ids)


def _unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_encode_text_equals_transformers(saved_model, hf_reference):
    _, (_, text, _) = hf_reference
    found = saved_model.signatures["encode_text"](texts=tf.constant(reference.SENTENCES))["embeddings"].numpy()
    np.testing.assert_allclose(np.linalg.norm(found, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(found, _unit(text), atol=TEXT_ATOL)


def test_encode_image_equals_transformers(saved_model, hf_reference, png_bytes):
    _, (image, _, _) = hf_reference
    found = saved_model.signatures["encode_image"](images=tf.constant(png_bytes))["embeddings"].numpy()
    np.testing.assert_allclose(np.linalg.norm(found, axis=-1), 1.0, atol=1e-6)
    cosines = np.sum(_unit(found) * _unit(image), axis=-1)
    assert cosines.min() >= IMAGE_COSINE, dict(zip(PHOTOS, cosines))


def test_encode_pixels_equals_transformers(saved_model, hf_reference):
    decoded, (image, _, _) = hf_reference
    for name, pixels, expected in zip(PHOTOS, decoded, image):  # one call per photo: the sizes differ
        found = saved_model.signatures["encode_pixels"](pixels=tf.constant(pixels[None]))["embeddings"].numpy()[0]
        cosine = float(np.dot(_unit(found), _unit(expected)))
        assert cosine >= IMAGE_COSINE, (name, cosine)


def test_serving_default_logits_equal_transformers(saved_model, hf_reference, png_bytes):
    _, (_, _, logits_per_image) = hf_reference
    out = saved_model.signatures["serving_default"](images=tf.constant(png_bytes),
                                                    texts=tf.constant(reference.SENTENCES))
    image_logits = out["image_logits"].numpy()
    # A logit is exp(3.1) = 22.2 times a cosine. The image embeddings are within IMAGE_COSINE of transformers'
    # (the few pixels our resize puts one level from Pillow's), which moves a cosine with a sentence by up to
    # 1e-4 here: 1.7e-3 in a logit measured; the bar leaves room for other photos.
    np.testing.assert_allclose(image_logits, logits_per_image, atol=5e-3)
    np.testing.assert_allclose(out["text_logits"].numpy(), image_logits.T, atol=1e-6)
    expected_probs = np.exp(logits_per_image - logits_per_image.max(axis=1, keepdims=True))
    expected_probs /= expected_probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["probs"].numpy(), expected_probs, atol=1e-3)
    assert (out["probs"].numpy().argmax(axis=1) == logits_per_image.argmax(axis=1)).all()


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic_int8", "int8"])
def test_tflite_image_encoder_meets_its_bar_against_transformers(small_export, hf_model, variant):
    """Each variant's image encoder straight against transformers on the held-out real photos and their crops:
    Pillow resizes and crops the encoder's uint8 input, CLIPImageProcessor transformers'. The export's harness
    measures the same bar against our own float SavedModel; this holds it to the independent reference."""
    from ai_edge_litert.interpreter import Interpreter
    from converters import datasets
    from converters.variants import VARIANTS

    resolution = hf_model.config.vision_config.image_size
    held_out = datasets.held_out_photos()
    image, _, _ = reference.hf_features(hf_model, reference.hf_pixel_values(held_out, resolution),
                                        reference.reference_token_ids(["a photo"]))
    interpreter = Interpreter(model_path=os.path.join(small_export, "tflite", f"image_encoder_{variant}.tflite"))
    interpreter.allocate_tensors()
    (given,), (produced,) = interpreter.get_input_details(), interpreter.get_output_details()
    found = []
    for photo in held_out:
        interpreter.set_tensor(given["index"], reference.pillow_resize_and_crop(photo, resolution)[None])
        interpreter.invoke()
        found.append(interpreter.get_tensor(produced["index"])[0].copy())
    cosines = np.sum(_unit(found) * _unit(image), axis=-1)
    print(f"{variant}: min cosine to transformers {cosines.min():.6f} over {len(held_out)} photos and crops")
    assert cosines.min() >= VARIANTS[variant].bar
    # The README: every encoder's output is L2-normalised, int8 too (the recommended recipes keep the
    # normalisation in float).
    np.testing.assert_allclose(np.linalg.norm(found, axis=-1), 1.0, atol=1e-3)
