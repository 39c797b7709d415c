"""The Java preprocessing (android_demo/clip, through `clip-jvm preprocess`) against the Python ImagePreprocessor
and against Pillow itself, on every photo of tests/photos.py written as PNG.

References: clip_edge's ImagePreprocessor.resize_and_crop (the SavedModel's preprocessing; float32 sums, within
one level of Pillow) and Pillow's Image.resize(BICUBIC) + centre crop, the steps of transformers'
CLIPImageProcessor. The Java code does Pillow's integer arithmetic with the horizontal pass first, so it should
equal Pillow exactly where Pillow also resamples horizontally first (all Pillow before 13, and Pillow 13 except
when it reorders the passes, see _pillow_resamples_vertically_first), and be within one level of the Python path.
Run with -s to see the table of differences.
"""

import io
import re
import zlib

import numpy as np
import PIL
import pytest
import tensorflow as tf
from PIL import Image

from tests import jvm
from tests import photos
from tests import reference

from clip_edge.preprocessing import OPENAI_MEAN, OPENAI_STD, ImagePreprocessor

RESOLUTIONS = (224, 64)


def _pillow_resamples_vertically_first(height, width, resolution):
    """Pillow 13 runs the vertical pass first when that is cheaper, which changes the intermediate rounding.

    The condition was found by measurement against the installed Pillow 13.0.0 (300 random sizes, no exception):
    vertical first when the height shrinks and by more than twice what the width shrinks. For CLIP's resize that
    means portrait images taller than twice their width that are shrunk.
    """
    if int(PIL.__version__.split(".")[0]) < 13:
        return False
    new_width, new_height = reference.resized_size(width, height, resolution)
    return new_height < height and height - new_height > 2 * (width - new_width)


def java_preprocess(path, resolution, tmp_path):
    output = tmp_path / f"{path.stem}_{resolution}.rgb"
    jvm.run("preprocess", "--resolution", resolution, "--output", output, path)
    data = output.read_bytes()
    assert len(data) == resolution * resolution * 3
    return np.frombuffer(data, np.uint8).reshape(resolution, resolution, 3)


def python_load_pixels(encoded, resolution):
    """uint8 pixels from the Python path's load() (decode + resize + crop), undoing its normalisation."""
    normalised = ImagePreprocessor(resolution).load([encoded])[0]
    pixels = (normalised * np.array(OPENAI_STD, np.float32) + np.array(OPENAI_MEAN, np.float32)) * 255.0
    return np.round(pixels).astype(np.uint8)


def _differences(ours, reference):
    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    return int(difference.max()), int(np.count_nonzero(difference))


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory):
    """{(photo, R): (shape, Java vs Python (max, count), Java vs Pillow (max, count))} for every photo."""
    directory = tmp_path_factory.mktemp("jvm_preprocessing")
    results = {}
    for name, pixels in photos.sample_photos().items():
        path = directory / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
        for resolution in RESOLUTIONS:
            ours = java_preprocess(path, resolution, directory)
            python = ImagePreprocessor(resolution).resize_and_crop(pixels).numpy()
            pillow = reference.pillow_resize_and_crop(pixels, resolution)
            results[name, resolution] = (pixels.shape, _differences(ours, python), _differences(ours, pillow))
    print("\nphoto, R: Java vs Python ImagePreprocessor (max level difference, values differing of R*R*3) | "
          "Java vs Pillow")
    for (name, resolution), (shape, python, pillow) in results.items():
        print(f"  {name} {shape[0]}x{shape[1]}, R={resolution}: {python[0]} ({python[1]}) | {pillow[0]} ({pillow[1]})")
    return results


def test_java_within_one_level_of_the_python_preprocessor(comparisons):
    assert set(name for name, _ in comparisons) == set(photos.sample_photos())
    for (name, resolution), (_, (max_difference, _), _) in comparisons.items():
        assert max_difference <= 1, f"{name} at R={resolution}: Java differs from Python by {max_difference}"


def test_java_equals_pillow(comparisons):
    reordered = []
    for (name, resolution), (shape, _, (max_difference, count)) in comparisons.items():
        if _pillow_resamples_vertically_first(shape[0], shape[1], resolution):
            # Same weights, other order of the two rounded passes: a few levels at most, on some pixels.
            reordered.append(name)
            assert max_difference <= 3 and count < resolution * resolution * 3 // 4, (name, resolution)
        else:
            assert max_difference == 0, f"{name} at R={resolution}: {count} values differ, up to {max_difference}"
    assert reordered in ([], ["tall"]), reordered  # tall (512 x 161) at R = 64 is the one such case here


def _png_16_bit_grey():
    """A 16-bit grey PNG whose low bytes vary, so that taking the high byte and rounding differ."""
    pixels = photos.photo("chelsea")[..., 0].astype(np.uint16) * 257 + np.arange(451, dtype=np.uint16)[None, :]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_exif_rotated():
    """chelsea as a PNG whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    photos.pil_image("chelsea", "RGB").save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


def _bmp_8_bit_palette():
    buffer = io.BytesIO()
    photos.pil_image("chelsea", "P").save(buffer, format="BMP")
    return buffer.getvalue()


DECODED_FILES = {
    "png_rgba": lambda: photos.encoded("chelsea", "PNG", "RGBA"),  # alpha composited onto white
    "png_la": lambda: photos.encoded("chelsea", "PNG", "LA"),
    "png_grey": lambda: photos.encoded("chelsea", "PNG", "L"),
    "png_palette": lambda: photos.encoded("chelsea", "PNG", "P"),
    "png_16_bit_grey": _png_16_bit_grey,
    "gif": lambda: photos.encoded("chelsea", "GIF"),
    "gif_transparent": lambda: photos.encoded("chelsea", "GIF", "RGBA"),
    "bmp": lambda: photos.encoded("chelsea", "BMP"),
    "bmp_32_bit": lambda: photos.encoded("chelsea", "BMP", "RGBA"),  # the fourth channel is ignored
    "bmp_8_bit_palette": _bmp_8_bit_palette,
    "png_exif_rotated": _png_exif_rotated,  # EXIF orientation is ignored on every path (README, "Images")
}


@pytest.mark.parametrize("case", sorted(DECODED_FILES))
def test_decoded_files_match_the_python_path(tmp_path, case):
    """Whole path from the file: decoding (alpha, grey, palette, 16 bits) then resize and crop, vs load()."""
    encoded = DECODED_FILES[case]()
    path = tmp_path / f"{case}.img"
    path.write_bytes(encoded)
    ours = java_preprocess(path, 224, tmp_path)
    max_difference, count = _differences(ours, python_load_pixels(encoded, 224))
    print(f"\n{case}: Java vs Python load(): max {max_difference}, {count} values differ")
    assert max_difference <= 1
    if case == "png_exif_rotated":  # the stored pixels, not the displayed (rotated) ones, on both paths
        assert Image.open(io.BytesIO(encoded)).getexif()[0x0112] == 6
        np.testing.assert_array_equal(python_load_pixels(encoded, 224),
                                      python_load_pixels(photos.encoded("chelsea", "PNG"), 224))


def test_jpeg_decoding_differs_little(tmp_path):
    """The JDK's JPEG decoder is not libjpeg-turbo: a small difference is expected and reported, not zero."""
    encoded = photos.encoded("astronaut", "JPEG")
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(encoded)
    ours = java_preprocess(path, 224, tmp_path)
    max_difference, count = _differences(ours, python_load_pixels(encoded, 224))
    print(f"\nJPEG: Java vs Python load(): max {max_difference}, {count} values differ")
    assert max_difference <= 4


def _cmyk_exif_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    return photos.cmyk_jpeg("chelsea", exif=exif)


# Interlaced GIFs by (width, height): astronaut's top-left corner (interlaced_gif; its rows all differ), on a
# square screen, so that every row is compared. The JDK's reader misreads 2 to 4 rows, which the JVM then puts in
# order itself; 1, 5 and 17 rows are the JDK's own reading.
INTERLACED_GIFS = {f"gif_interlaced_{width}x{height}": (width, height)
                   for width, height in ((7, 1), (7, 2), (7, 3), (4, 4), (7, 5), (17, 17))}

# Files the JVM decodes with code of its own rather than javax.imageio's conversions (ImageFiles, CmykJpeg):
# four-component JPEGs (tests/photos.py, cmyk_jpeg), GIFs whose first frame does not fill the screen exactly
# (gif_on_screen; "small" is 137 x 101 pixels), interlaced GIFs, and a plain animated GIF as Pillow writes it.
OWN_DECODING = {
    "cmyk_adobe": lambda: photos.cmyk_jpeg("chelsea", "adobe"),
    "cmyk_no_adobe": lambda: photos.cmyk_jpeg("chelsea", "no_adobe"),
    "cmyk_progressive": lambda: photos.cmyk_jpeg("rocket", "adobe", progressive=True),
    "ycck": lambda: photos.cmyk_jpeg("chelsea", "ycck"),
    "ycck_420": lambda: photos.cmyk_jpeg("rocket", "ycck", subsampling="4:2:0"),
    "ycck_unknown_transform": lambda: photos.cmyk_jpeg("chelsea", "unknown_transform"),
    "cmyk_exif_rotated": _cmyk_exif_rotated,  # EXIF orientation is ignored on every path (README, "Images")
    "gif_frame_inside_screen": lambda: photos.gif_on_screen("small", (200, 150), (30, 20)),
    "gif_frame_partly_outside_screen": lambda: photos.gif_on_screen("small", (100, 80), (40, 30)),
    "gif_frame_larger_than_screen": lambda: photos.gif_on_screen("small", (60, 40), (0, 0)),
    "gif_transparent_frame_inside_screen": lambda: photos.gif_on_screen("small", (200, 150), (30, 20),
                                                                        transparent=True),
    "gif_local_palette": lambda: photos.gif_on_screen("small", (200, 150), (30, 20), local_palette=True),
    "gif_larger_frame_after_it": lambda: photos.gif_on_screen("small", (200, 150), (30, 20), larger_frame=True),
    "gif_animated": lambda: photos.animated_gif(["small", "tiny", "chelsea"]),
    **{case: lambda size=size: photos.interlaced_gif("astronaut", *size, screen=(max(size), max(size)))
       for case, size in INTERLACED_GIFS.items()},
}


@pytest.mark.parametrize("case", sorted(OWN_DECODING))
def test_java_decodes_as_the_saved_model(tmp_path, case):
    """The decoded pixels themselves, compared through preprocess at R = the shortest side, where the resize is
    the identity on every path: the centre square of each decoding.

    Promise: the SavedModel's pixels exactly (for CMYK, the JDK's inverse DCT of these files agrees with
    libjpeg-turbo's; YCCK is converted with libjpeg's arithmetic), and Pillow's within one level for CMYK (it
    rounds K * C / 255 to nearest, TensorFlow down), exactly for GIF. Before, the JVM refused every CMYK and YCCK
    JPEG, gave a GIF's first frame alone, without its screen, and misread interlaced frames of 2 to 4 rows."""
    encoded = OWN_DECODING[case]()
    path = tmp_path / f"{case}.img"
    path.write_bytes(encoded)
    saved_model = ImagePreprocessor(224).decode(tf.constant(encoded)).numpy()
    pillow = photos.pillow_rgb(encoded)
    assert saved_model.shape == pillow.shape
    resolution = min(saved_model.shape[:2])
    square = ImagePreprocessor(resolution)
    ours = java_preprocess(path, resolution, tmp_path)
    versus_saved_model = _differences(ours, square.resize_and_crop(saved_model).numpy())
    versus_pillow = _differences(ours, square.resize_and_crop(pillow).numpy())
    print(f"\n{case} {saved_model.shape}: Java vs SavedModel: max {versus_saved_model[0]} ({versus_saved_model[1]} "
          f"values), vs Pillow: max {versus_pillow[0]} ({versus_pillow[1]} values)")
    assert versus_saved_model == (0, 0)
    assert versus_pillow[0] <= (1 if case.startswith(("cmyk", "ycck")) else 0)
    if case == "cmyk_exif_rotated":  # as stored, not as displayed
        assert Image.open(io.BytesIO(encoded)).getexif()[0x0112] == 6 and saved_model.shape == (300, 451, 3)
    if case in INTERLACED_GIFS:  # the file holds the crop, interlaced
        width, height = INTERLACED_GIFS[case]
        crop = photos.pil_image("astronaut", "P").crop((0, 0, width, height)).convert("RGB")
        np.testing.assert_array_equal(pillow[:height, :width], np.asarray(crop))
        assert encoded[photos.gif_first_descriptor(encoded) + 9] & 0x40


# (GIF, the SavedModel's message, the JVM's): GIFs whose screen, or whose frames, are beyond the limits. The
# SavedModel checks the screen grown to hold every frame, and the frames' total, since TensorFlow decodes every
# frame; the JVM decodes only the first, and checked only its screen before (it decoded all but the first case).
# photos.gif_with_frames: a 10 x 10 screen, every frame the LZW data of a 10 x 10 image.
GIFS_BEYOND_THE_LIMITS = {
    "screen": (lambda: photos.gif_on_screen("tiny", (20_000, 6_000), (0, 0)),
               "is larger than 100 megapixels: height 6000 width 20000",
               "image of 20000 x 6000 pixels (width x height) is larger than 100 megapixels"),
    "second frame": (lambda: photos.gif_with_frames((10, 10), [(0, 0, 10, 10), (0, 0, 20_000, 6_000)]),
                     "is larger than 100 megapixels: height 6000 width 20000",
                     "image of 20000 x 6000 pixels (width x height) is larger than 100 megapixels"),
    "second frame far out": (lambda: photos.gif_with_frames((10, 10), [(0, 0, 10, 10), (65_000, 0, 1_000, 10)]),
                             "has a side longer than 65535 pixels: height 10 width 66000",
                             "image of 66000 x 10 pixels (width x height) has a side longer than 65535 pixels"),
    "frames over 300 megapixels": (lambda: photos.gif_with_frames((10, 10),
                                                                  [(0, 0, 10, 10)] + [(0, 0, 9_000, 9_000)] * 4),
                                   "is a GIF whose frames hold 324000100 pixels in all; at most 300,000,000 are "
                                   "decoded",
                                   "is a GIF whose frames hold 324000100 pixels in all (5 frames); at most "
                                   "300,000,000 are decoded"),
}


@pytest.mark.parametrize("case", sorted(GIFS_BEYOND_THE_LIMITS))
def test_gifs_beyond_the_limits_are_refused_by_every_decoder(tmp_path, case):
    """The same files refused, for the same sizes, by the SavedModel and the JVM (before decoding: the frames
    after the first hold no more data than a 10 x 10 image). A normal animated GIF both decode alike (gif_animated
    in test_java_decodes_as_the_saved_model)."""
    build, saved_model_message, jvm_message = GIFS_BEYOND_THE_LIMITS[case]
    encoded = build()
    path = tmp_path / "refused.gif"
    path.write_bytes(encoded)
    with pytest.raises(ValueError, match=re.escape(f"image 0 {saved_model_message}")):
        ImagePreprocessor(224).load([encoded])
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", tmp_path / "out.rgb", path,
                                   check=False), path)
    assert jvm_message in line, line


def _broken_gifs():
    """A GIF whose screen holds no frame, and one cut inside its first frame's data, the frame moved off the
    corner (the SavedModel's decoder edits such a frame's descriptor before TensorFlow reads it)."""
    whole = photos.gif_with_frames((20, 20), [(5, 5, 10, 10)])
    descriptor = whole.index(b"\x2c", 13)
    return {"no image descriptor": (whole[:descriptor] + b"\x3b", "GIF without an image descriptor"),
            "cut in the first frame": (whole[:descriptor + 14], "cannot decode GIF")}


@pytest.mark.parametrize("case", ["no image descriptor", "cut in the first frame"])
def test_broken_gifs_are_refused_by_every_decoder(tmp_path, case):
    """Pillow refuses these; so do the SavedModel and the JVM, each naming the image."""
    encoded, jvm_message = _broken_gifs()[case]
    with pytest.raises((OSError, Image.UnidentifiedImageError)):
        photos.pillow_rgb(encoded)
    with pytest.raises(ValueError, match="image 0: cannot decode: Invalid GIF data"):
        ImagePreprocessor(224).load([encoded])
    path = tmp_path / "broken.gif"
    path.write_bytes(encoded)
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", tmp_path / "out.rgb", path,
                                   check=False), path)
    assert jvm_message in line, line


def _damaged_jpegs():
    """JPEGs with errors in their scan data that libjpeg resyncs past, and one cut short (no end marker)."""
    jpeg = photos.encoded("rocket", "JPEG")
    scan = jpeg.index(b"\xff\xda")
    middle = scan + (len(jpeg) - scan) // 2
    return {"bytes inserted mid-scan": jpeg[:middle] + np.random.default_rng(1).bytes(200) + jpeg[middle:],
            "end marker before the last rows": jpeg[:len(jpeg) * 2 // 3] + b"\xff\xd9",
            "cut short": jpeg[:len(jpeg) * 2 // 3]}


@pytest.mark.parametrize("case", ["bytes inserted mid-scan", "end marker before the last rows"])
def test_jpeg_data_errors_are_decoded_as_pillow_decodes_them(tmp_path, case):
    """Every decoder of the product takes the files Pillow takes: bad scan data libjpeg recovers from is decoded
    (the JVM refused these while Pillow, the SavedModel and Beam decoded them), as the others decode it."""
    encoded = _damaged_jpegs()[case]
    path = tmp_path / "damaged.jpg"
    path.write_bytes(encoded)
    pillow = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    python = python_load_pixels(encoded, 224)
    np.testing.assert_array_equal(python, ImagePreprocessor(224).resize_and_crop(pillow).numpy())
    max_difference, count = _differences(java_preprocess(path, 224, tmp_path), python)
    print(f"\n{case}: Java vs Python load(): max {max_difference}, {count} values differ")
    assert max_difference <= 4  # as for an undamaged JPEG (test_jpeg_decoding_differs_little)


def test_a_jpeg_cut_short_is_refused_by_every_decoder(tmp_path):
    encoded = _damaged_jpegs()["cut short"]
    path = tmp_path / "cut.jpg"
    path.write_bytes(encoded)
    with pytest.raises(OSError, match="truncated"):
        Image.open(io.BytesIO(encoded)).convert("RGB")
    with pytest.raises(Exception, match="image 0: cannot decode: jpeg::Uncompress failed"):
        python_load_pixels(encoded, 224)
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", tmp_path / "out.rgb", path,
                                   check=False), path)
    assert "cannot decode JPEG: Truncated File - Missing EOI marker" in line


def _one_line_error(result, path):
    line = jvm.error_line(result)
    assert str(path) in line, line
    return line


def test_corrupt_and_missing_files_fail_with_one_line(tmp_path):
    output = tmp_path / "out.rgb"
    missing = tmp_path / "missing.png"
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", output, missing, check=False),
                           missing)
    assert "no such file" in line

    corrupt = tmp_path / "corrupt.png"
    whole = photos.encoded("coffee", "PNG")
    corrupt.write_bytes(whole[:len(whole) // 3])
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", output, corrupt, check=False),
                           corrupt)
    assert "cannot decode" in line

    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", output, text, check=False), text)
    assert "is not a JPEG, PNG, GIF or BMP file" in line

    huge = tmp_path / "huge.png"
    image = io.BytesIO()
    Image.new("RGB", (1, 1)).save(image, format="PNG")
    header = bytearray(image.getvalue())
    header[16:24] = (70_000).to_bytes(4, "big") * 2  # IHDR width and height, then the chunk's CRC to match
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    huge.write_bytes(bytes(header))
    line = _one_line_error(jvm.run("preprocess", "--resolution", 224, "--output", output, huge, check=False), huge)
    assert "has a side longer than 65535 pixels" in line
    assert not output.exists()
