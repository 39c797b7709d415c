"""tflite/preprocess.tflite (any-size resize and crop in TFLite builtins) against the SavedModel's preprocessing
(ImagePreprocessor.resize_and_crop, float64 resampling weights) and against Pillow itself, in ai_edge_litert."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import transformers
from PIL import Image

from clip_edge.preprocessing import ImagePreprocessor, _resampling_matrix
from converters import parity, serving, tflite_model, tflite_variants
from converters.gate import EXIT_OK, EXIT_REFUSED, Gate
from converters.preprocess_tflite import (PREPROCESS_PEAK_BYTES_PER_PIXEL, PREPROCESS_PEAK_EXTRA_BYTES, _band_matrices,
                                          resize_and_crop_any_size)

from tests import photos
from tests import reference

RESOLUTION = 224
# (height, width): 1 x 1 up to a 12 MP phone photo, tall and wide, odd, smaller than the crop on one or both sides,
# exactly the crop, and extreme strips.
SIZES = [(1, 1), (1, 2), (2, 1), (3, 5), (9, 13), (100, 37), (37, 100), (223, 223), (224, 224), (225, 224),
         (224, 5000), (5000, 224), (1, 4032), (4032, 1), (301, 451), (1001, 777), (480, 640), (640, 480),
         (1080, 1920), (1920, 1080), (3024, 4032), (4032, 3024)]


@pytest.fixture(scope="module")
def model():
    return tflite_variants.convert_preprocess(serving.tflite_preprocess(RESOLUTION))


@pytest.fixture(scope="module")
def preprocessor():
    return ImagePreprocessor(RESOLUTION)


def _photo_of_size(height, width):
    """Real photo content at any size: the Hubble deep field resized by Pillow (Lanczos)."""
    return np.asarray(Image.fromarray(photos.photo("hubble")).resize((width, height), Image.Resampling.LANCZOS))


def test_builtin_ops_only_and_dynamic_input(model):
    parsed = tflite_model.parse_model(model, "preprocess.tflite")
    assert not [op.name for op in parsed.ops if op.is_custom], "custom or Flex ops"
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    (given,), (produced,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(given["shape_signature"]) == [1, -1, -1, 3] and given["dtype"] == np.uint8
    assert list(produced["shape_signature"]) == [1, RESOLUTION, RESOLUTION, 3] and produced["dtype"] == np.uint8


@pytest.mark.parametrize("height,width", SIZES)
def test_equals_saved_model_preprocessing_and_pillow(model, preprocessor, height, width):
    pixels = _photo_of_size(height, width)
    found = tflite_variants.run_preprocess(model, pixels[None])[0].astype(np.int16)
    expected = preprocessor.resize_and_crop(pixels).numpy().astype(np.int16)
    pillow = reference.pillow_resize_and_crop(pixels, RESOLUTION).astype(np.int16)
    for name, other in (("SavedModel's resize_and_crop", expected), ("Pillow", pillow)):
        difference = np.abs(found - other)
        print(f"{height}x{width} vs {name}: max {difference.max()}, {np.count_nonzero(difference)} of "
              f"{difference.size} values differ")
        assert difference.max() <= 1, f"{height}x{width}: {difference.max()} levels from {name}"
        assert np.count_nonzero(difference) <= 100  # the README's promise


def test_tie_rich_scalings_stay_within_two_levels(model, preprocessor):
    """The README's promise where a scaling makes many exact ties, on the held-out photos and their crops (the
    256 -> 224 crops of the moon and rocket photos are the worst): within two levels of the SavedModel's resize and
    crop and of Pillow, at most 1,100 values off and at most 2 of them by two levels."""
    from converters import datasets

    for image in datasets.held_out_photos():
        found = tflite_variants.run_preprocess(model, image[None])[0].astype(np.int16)
        for name, other in (("SavedModel", preprocessor.resize_and_crop(image).numpy()),
                            ("Pillow", reference.pillow_resize_and_crop(image, RESOLUTION))):
            difference = np.abs(found - other.astype(np.int16))
            assert difference.max() <= 2, (image.shape, name, difference.max())
            assert np.count_nonzero(difference) <= 1_100 and np.count_nonzero(difference == 2) <= 2, (
                image.shape, name, np.count_nonzero(difference), np.count_nonzero(difference == 2))


def test_pillow_reference_is_clip_image_processors(preprocessor):
    """The Pillow helper above is what CLIPImageProcessor does (before rescaling and normalisation)."""
    processor = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": RESOLUTION}, crop_size={"height": RESOLUTION, "width": RESOLUTION},
        do_rescale=False, do_normalize=False)
    for height, width in ((9, 13), (640, 480), (301, 451)):
        pixels = _photo_of_size(height, width)
        theirs = processor(images=Image.fromarray(pixels), return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
        np.testing.assert_array_equal(reference.pillow_resize_and_crop(pixels, RESOLUTION), theirs.astype(np.uint8))


def test_empty_images_give_zeros(model):
    for shape in ((1, 0, 5, 3), (1, 5, 0, 3), (1, 0, 0, 3)):
        out = tflite_variants.run_preprocess(model, np.zeros(shape, np.uint8))
        assert out.shape == (1, RESOLUTION, RESOLUTION, 3) and not out.any()


@pytest.mark.parametrize("shape", [(1, 40, 30, 4), (2, 40, 30, 3), (1, 40, 30, 1), (3, 40, 30, 1)])
def test_a_shape_other_than_one_rgb_image_fails_the_call(model, shape):
    """Resized without strict checking (the C API's and Interpreter's default), the input takes any shape: an
    RGBA image, a batch of two, a grey image or three must fail the call, not come back as one cropped RGB
    image."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    (detail,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(detail["index"], shape, strict=False)
    with pytest.raises(RuntimeError):
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], np.full(shape, 7, np.uint8))
        interpreter.invoke()


# A process that only loads preprocess.tflite, sizes its input, writes a pattern into the input's own buffer (a
# NumPy array of its own would be a second copy of the image) and invokes it; it prints its peak RSS (KiB) before
# writing the input and at the end. The peak is VmHWM, the kernel's high-water mark of the process's memory:
# ru_maxrss would be the larger of it and the parent's peak, which Linux carries over a fork and an exec.
_PEAK_MEMORY_CHILD = """
import re, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def peak():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))

path, height, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
interpreter = Interpreter(model_path=path, num_threads=2)
(detail,) = interpreter.get_input_details()
interpreter.resize_tensor_input(detail["index"], [1, height, width, 3], strict=True)
interpreter.allocate_tensors()
before = peak()
interpreter.tensor(detail["index"])()[...] = (np.arange(width) % 251).astype(np.uint8)[None, None, :, None]
interpreter.invoke()
(output,) = interpreter.get_output_details()
assert interpreter.get_tensor(output["index"]).any()
print(before, peak())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
@pytest.mark.parametrize("height,width", [(10_000, 10_000), (1_525, 65_535)])
def test_peak_memory_stays_within_the_documented_bound(model, tmp_path, height, width):
    """The README's promise at the 100-megapixel limit, as a square (where the crop reads every input: the most
    per pixel of large images) and with the longest side allowed: a process that runs preprocess.tflite once
    grows by at most PREPROCESS_PEAK_BYTES_PER_PIXEL per pixel plus PREPROCESS_PEAK_EXTRA_BYTES beyond what
    loading it took. 10,000 x 10,000 took 4.5 GiB more before issue 20 (float32 copies of the whole image)."""
    path = tmp_path / "preprocess.tflite"
    path.write_bytes(model)
    result = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_CHILD, str(path), str(height), str(width)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    before, peak = (int(value) * 1024 for value in result.stdout.split())
    bound = PREPROCESS_PEAK_BYTES_PER_PIXEL * height * width + PREPROCESS_PEAK_EXTRA_BYTES
    print(f"{height} x {width}: {(peak - before) / 2**20:.0f} MiB more at the peak, "
          f"{(peak - before) / (height * width):.2f} bytes a pixel; bound {bound / 2**20:.0f} MiB")
    assert peak - before <= bound


@pytest.fixture(scope="module")
def weights_model():
    """The resampling matrix of one dimension as its own TFLite model: (in, out, first) -> weights [R, length]
    of the inputs start..start+length-1."""
    specs = [tf.TensorSpec([], tf.int32, name=name) for name in ("in_size", "out_size", "first")]
    function = tf.function(
        lambda i, o, f: dict(zip(("weights", "start", "length"), _band_matrices(i, o, f, RESOLUTION, 1))),
        input_signature=specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    return interpreter.get_signature_runner()


def test_weights_within_a_few_fixed_point_units_of_float64(weights_model):
    """The float32 weights land on the float64 ones' 22-bit fixed-point values or a few units (2**-22) away;
    shrinking and enlarging, both sides of the crop, up to the limits (MAX_SIDE)."""
    cases = [(size, RESOLUTION, 0) for size in (1, 2, 3, 5, 100, 223, 224, 225, 479, 480, 1080, 3024, 4032)]
    for long, short in ((640, 480), (4032, 3024), (1920, 1080), (5000, 7), (65535, 1), (65535, 1525)):
        out = RESOLUTION * long // short
        cases.append((long, out, (out - RESOLUTION) // 2))
    differing = total = 0
    for in_size, out_size, first in cases:
        result = weights_model(in_size=np.int32(in_size), out_size=np.int32(out_size), first=np.int32(first))
        found, start, length = result["weights"][0], int(result["start"][0]), int(result["length"][0])
        expected = _resampling_matrix(tf.constant(in_size), tf.constant(out_size), tf.constant(first),
                                      RESOLUTION).numpy()
        # The inputs left out are the ones without weight.
        assert not expected[:, :start].any() and not expected[:, start + length:].any()
        expected = expected[:, start:start + length]
        units = np.abs(np.round((found.astype(np.float64) - expected) * 2**22))
        assert units.max() <= 8, f"in {in_size}, out {out_size}: {units.max()} units"
        # Zeros stay zeros: the kernel's support is the same.
        np.testing.assert_array_equal(found != 0, expected != 0)
        differing, total = differing + np.count_nonzero(units), total + np.count_nonzero(expected)
    print(f"{differing} of {total} non-zero weights differ from float64's fixed-point value")


def test_export_writes_preprocess_model_with_manifest_entry(float32_export):
    export_dir = float32_export
    path = os.path.join(export_dir, "tflite", "preprocess.tflite")
    assert os.path.exists(path)
    manifest = json.load(open(os.path.join(export_dir, "manifest.json")))
    (entry,) = [a for a in manifest["artifacts"] if a["path"] == "tflite/preprocess.tflite"]
    assert entry["inputs"][0]["shape_signature"] == [1, -1, -1, 3]
    assert entry["outputs"][0]["shape"] == [1, 64, 64, 3] and entry["outputs"][0]["dtype"] == "uint8"
    assert entry["parity"]["passed"] and entry["parity"]["max_level_difference"] <= 2
    assert entry["limits"] == {"max_side": 65535, "max_pixels": 100_000_000}
    # The encoder entries keep their static shapes without a signature field.
    encoder = [a for a in manifest["artifacts"] if a["path"] == "tflite/image_encoder_float32.tflite"][0]
    assert "shape_signature" not in encoder["inputs"][0]


def test_preprocess_then_encoder_equals_saved_model_on_a_full_photo(float32_export):
    """A whole photo through preprocess.tflite then image_encoder_float32.tflite, against the SavedModel's
    encode_pixels on the same photo: the device pipeline without any resizing code of its own."""
    import tensorflow_text  # noqa: F401  (the SavedModel's tokenizer ops)

    export_dir = float32_export
    pixels = photos.photo("rocket")[None]  # 427 x 640
    with open(os.path.join(export_dir, "tflite", "preprocess.tflite"), "rb") as file:
        cropped = tflite_variants.run_preprocess(file.read(), pixels)
    with open(os.path.join(export_dir, "tflite", "image_encoder_float32.tflite"), "rb") as file:
        on_device = tflite_variants.run_tflite(file.read(), [cropped])[0]
    saved_model = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
    served = saved_model.signatures["encode_pixels"](pixels=tf.constant(pixels))["embeddings"].numpy()[0]
    assert parity.cosine_rows(on_device[None], served[None])[0] > 0.9999


def _shifted_preprocess(resolution):
    """preprocess.tflite with its crop one column to the right (the last column repeated): an off-by-one in the
    crop offset, the kind of defect the gate is there for."""

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="pixels")])
    def preprocess(pixels):
        cropped = resize_and_crop_any_size(pixels, resolution)
        return {"pixels": tf.concat([cropped[:, :, 1:], cropped[:, :, -1:]], axis=2)}

    return tflite_variants.convert_preprocess(preprocess.get_concrete_function())


def test_the_gate_refuses_a_shifted_crop_and_passes_the_real_one(float32_export, tmp_path):
    from converters import datasets, parity

    export_dir = tmp_path / "export"  # measure_preprocess reads only DIR/tflite/preprocess.tflite
    (export_dir / "tflite").mkdir(parents=True)
    shutil.copy(os.path.join(float32_export, parity.PREPROCESS_PATH), export_dir / parity.PREPROCESS_PATH)
    photos_held_out = datasets.held_out_photos()
    good = parity.measure_preprocess(str(export_dir), photos_held_out, 64)
    (export_dir / parity.PREPROCESS_PATH).write_bytes(_shifted_preprocess(64))
    shifted = parity.measure_preprocess(str(export_dir), photos_held_out, 64)
    assert good.passed and not shifted.passed, (good, shifted)
    assert shifted.max_level_difference > 10 * parity.PREPROCESS_BAR_LEVELS
    assert shifted.shortfall().startswith("max difference ")
    # The export's gate: a preprocess.tflite that misses refuses the export whatever the variants did.
    gate = Gate.of([shifted], ["float32"], [])
    assert gate.exit_code == EXIT_REFUSED and parity.PREPROCESS_PATH in gate.refused[0]
    assert Gate.of([good], ["float32"], []).exit_code == EXIT_OK
