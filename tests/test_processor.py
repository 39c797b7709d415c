"""CLIPProcessor against the references: OpenAI's tokenizer and transformers' CLIPImageProcessor."""

import numpy as np
import pytest

import clip_edge

from tests import photos
from tests import reference


@pytest.fixture(scope="module")
def processor():
    return clip_edge.CLIPProcessor.from_preset("clip-vit-base-patch32")


def test_texts_match_openai_tokenizer(processor):
    out = processor(reference.SENTENCES)
    expected = reference.reference_token_ids(reference.SENTENCES)
    np.testing.assert_array_equal(out["token_ids"].numpy(), expected)
    # padding_mask: 1 on start, text and end; the first end token closes the text.
    lengths = np.argmax(expected == 49407, axis=1) + 1
    np.testing.assert_array_equal(out["padding_mask"].numpy(), np.arange(77)[None] < lengths[:, None])


def test_images_match_transformers(processor, tmp_path):
    path = tmp_path / "rocket.png"
    path.write_bytes(photos.encoded("rocket", "PNG"))
    items = [str(path), photos.encoded("coffee", "JPEG"), photos.photo("chelsea")]
    found = processor.process_images(items)
    decoded_jpeg = np.asarray(__import__("PIL.Image").Image.open(__import__("io").BytesIO(items[1])).convert("RGB"))
    expected = reference.hf_pixel_values([photos.photo("rocket"), decoded_jpeg, photos.photo("chelsea")], 224)
    assert found.shape == (3, 224, 224, 3) and found.dtype == np.float32
    assert np.max(np.abs(found - expected)) <= 0.03 and np.mean(np.abs(found - expected)) <= 0.003


def test_detokenize_matches_openai_decode(processor):
    texts = ["a photo of a cat", "Two DOGS playing in the snow!!"]
    tokens = processor(texts)
    decoded = [t.decode() for t in processor.detokenize(tokens["token_ids"]).numpy().tolist()]
    lengths = tokens["padding_mask"].numpy().sum(axis=1)
    expected = [reference.openai_tokenizer().decode(row[:n].tolist())
                for row, n in zip(reference.reference_token_ids(texts), lengths)]
    assert decoded == expected


def test_large_336_preset_resolution():
    processor = clip_edge.CLIPProcessor.from_preset("clip-vit-large-patch14-336")
    assert processor.process_images([photos.photo("tall")]).shape == (1, 336, 336, 3)
    with pytest.raises(ValueError, match="unknown CLIP preset"):
        clip_edge.CLIPProcessor.from_preset("nope")
