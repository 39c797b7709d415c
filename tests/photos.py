"""Real photographs for tests, from scikit-image's bundled sample data (no downloads).

Suites use these instead of random noise because resampling, decoding and model outputs behave differently on
natural images (smooth regions, edges, saturated highlights) than on noise.

    sample_photos()            -> {name: uint8 [H, W, 3]}   every photo, including odd sizes
    photo(name)                -> uint8 [H, W, 3]
    encoded(name, fmt, mode)   -> bytes written by PIL (fmt: JPEG, PNG, GIF, BMP; mode: RGB, L, P, RGBA, ...)
    animated_gif(names)        -> bytes of a GIF with one frame per photo (all resized to the first's size)
    cmyk_jpeg(name, variant)   -> bytes of a four-component JPEG: CMYK with or without Adobe's segment, or YCCK
    gif_on_screen(name, ...)   -> bytes of a GIF whose first frame (the photo) lies inside a larger logical screen
    interlaced_gif(name, w, h) -> bytes of a GIF of the photo's top-left w x h pixels, interlaced at any height
    gif_first_descriptor(gif)  -> where a GIF's first image descriptor starts
    png_claiming_size(w, h), jpeg_claiming_size(w, h) -> a small valid file whose header claims w x h pixels
"""

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image
import skimage.data

# Full-size photos straight from scikit-image.
_SKIMAGE_PHOTOS = {
    "astronaut": skimage.data.astronaut,  # 512 x 512, square
    "coffee": skimage.data.coffee,  # 400 x 600, landscape
    "chelsea": skimage.data.chelsea,  # 300 x 451, odd width
    "rocket": skimage.data.rocket,  # 427 x 640, odd height
    "hubble": skimage.data.hubble_deep_field,  # 872 x 1000, larger than most
}

FORMATS = ("JPEG", "PNG", "GIF", "BMP")


def _derived_photos(full):
    """Odd shapes cut or shrunk from the full photos: the cases where resizing and cropping go wrong."""
    astronaut, rocket, chelsea, coffee = full["astronaut"], full["rocket"], full["chelsea"], full["coffee"]

    def shrink(pixels, width, height):
        return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))

    return {
        "tall": astronaut[:, 150:311],  # 512 x 161: portrait, long side odd
        "wide_strip": coffee[180:243, :],  # 63 x 600: shortest side below the crop, extreme aspect
        "small": chelsea[100:201, 150:287],  # 101 x 137: smaller than the crop on both sides, upsampled
        "tiny": shrink(rocket, 13, 9),  # 9 x 13
        "one_pixel_high": coffee[200:201, 100:357],  # 1 x 257
        "exact": shrink(astronaut, 224, 224),  # already the crop size: resampling must be the identity
    }


@functools.lru_cache(maxsize=1)
def _all_photos():
    full = {name: load() for name, load in _SKIMAGE_PHOTOS.items()}
    photos = {**full, **_derived_photos(full)}
    for pixels in photos.values():
        pixels.setflags(write=False)  # shared between tests through the cache
    return photos


def sample_photos():
    """{name: read-only uint8 [H, W, 3]} for every photo, full-size and odd-shaped."""
    return dict(_all_photos())


def photo(name):
    return _all_photos()[name]


def pil_image(name, mode="RGB"):
    """The photo as a PIL image in any PIL `mode`; RGBA/LA get a varying alpha (a radial fade to transparent)."""
    pixels = photo(name)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if mode not in ("RGBA", "LA"):
        return image.convert(mode)  # e.g. L, P (adaptive palette), CMYK, 1
    height, width = pixels.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    distance = np.hypot((rows - height / 2) / max(height, 1), (cols - width / 2) / max(width, 1))
    alpha = np.clip(255 * (1.2 - 2 * distance), 0, 255).astype(np.uint8)
    with_alpha = image.convert(mode[:-1])
    with_alpha.putalpha(Image.fromarray(alpha))
    return with_alpha


def encoded(name, fmt, mode="RGB"):
    """The photo encoded by PIL as `fmt` (JPEG, PNG, GIF, BMP) in colour `mode` (RGB, L, P, RGBA, LA, CMYK...)."""
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}: use one of {FORMATS}")
    buffer = io.BytesIO()
    pil_image(name, mode).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def animated_gif(names):
    """A GIF with one frame per photo; every frame is resized to the first photo's size."""
    frames = [pil_image(name) for name in names]
    size = frames[0].size
    frames = [frame.resize(size) for frame in frames]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def png_claiming_size(width, height):
    """A valid small PNG whose header (with a correct CRC) claims width x height: a decompression bomb."""
    png = encoded("tiny", "PNG")
    chunk = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def jpeg_claiming_size(width, height):
    jpeg = encoded("tiny", "JPEG")
    frame = jpeg.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    return jpeg[: frame + 5] + struct.pack(">HH", height, width) + jpeg[frame + 9 :]


def _jpeg_segments(jpeg):
    """[(offset, marker, length)] of a JPEG's segments up to its first scan (length: of the data, with its 2 bytes)."""
    segments, at = [], 2
    while True:
        marker, length = jpeg[at + 1], struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        segments.append((at, marker, length))
        if marker == 0xDA:
            return segments
        at += 2 + length


def _adobe_segment(jpeg):
    (at, length), = [(at, length) for at, marker, length in _jpeg_segments(jpeg) if marker == 0xEE]
    assert jpeg[at + 4 : at + 9] == b"Adobe"
    return at, length


def cmyk(name):
    """The photo as CMYK ink amounts (0 = none) with its grey in K, uint8 [H, W, 4]: PIL's convert("CMYK") would
    leave K at 0 everywhere, and K's product with the other inks is what decoders compute differently."""
    rgb = photo(name).astype(np.float64)
    k = 255 - rgb.max(axis=-1)
    cmy = (255 - rgb - k[..., None]) / np.maximum(255 - k, 1)[..., None] * 255
    return np.round(np.dstack([cmy, k])).astype(np.uint8)


def cmyk_jpeg(name, variant="adobe", **save_options):
    """The photo (cmyk(name)) as a four-component JPEG written by Pillow, quality 90. Variants:

    adobe              as Pillow writes it: Adobe's APP14 segment, colour transform 0 (CMYK), values inverted
    no_adobe           the same file without that segment, as some encoders write CMYK
    ycck               the same inks stored as YCCK (transform 2): Y, Cb, Cr of the inverted C, M, Y, then K
    unknown_transform  the YCCK file with transform 1, which libjpeg takes for YCCK with a warning
    save_options go to Pillow's save (exif=, subsampling=, progressive=).
    """
    inks = cmyk(name)
    if variant in ("ycck", "unknown_transform"):
        # What libjpeg stores for YCCK: the YCbCr (JFIF's equations) of R, G, B = C, M, Y ink, and K inverted.
        # Pillow inverts every value it writes (Adobe's convention), so it is given the inverse of those.
        red, green, blue = (inks[..., channel].astype(np.float64) for channel in range(3))
        ycc = [0.299 * red + 0.587 * green + 0.114 * blue,
               -0.168736 * red - 0.331264 * green + 0.5 * blue + 128,
               0.5 * red - 0.418688 * green - 0.081312 * blue + 128]
        stored = np.dstack([np.clip(np.round(ycc), 0, 255).transpose(1, 2, 0), 255 - inks[..., 3:]]).astype(np.uint8)
        inks = 255 - stored
    buffer = io.BytesIO()
    Image.fromarray(inks, "CMYK").save(buffer, format="JPEG", quality=90, **save_options)
    jpeg = buffer.getvalue()
    at, length = _adobe_segment(jpeg)
    transform = {"adobe": None, "no_adobe": None, "ycck": 2, "unknown_transform": 1}[variant]
    if variant == "no_adobe":
        return jpeg[:at] + jpeg[at + 2 + length :]
    if transform is not None:  # the transform is the last of the segment's 12 bytes
        return jpeg[: at + 15] + bytes([transform]) + jpeg[at + 16 :]
    return jpeg


def gif_first_descriptor(gif):
    """Where the first image descriptor of `gif` starts: after the screen, its palette and any extensions."""
    flags = gif[10]
    at = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    while gif[at] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        at += 2
        while gif[at]:
            at += gif[at] + 1
        at += 1
    assert gif[at] == 0x2C
    return at


def gif_on_screen(name, screen, position, transparent=False, local_palette=False, larger_frame=False):
    """The photo as the first frame of a GIF with a logical screen of `screen` (width, height) and the frame at
    `position` (left, top), which may lie partly outside the screen.

    The frame is the photo as Pillow writes it in mode P (its palette global, or, with local_palette, the frame's
    own with an inverted copy as the global one). transparent: the frame's most frequent palette index other than
    0 is made transparent (0 is the one decoders may show around the frame). larger_frame adds a second frame,
    larger than the screen, of palette index 0.
    """
    def pillow_gif(image, **options):
        buffer = io.BytesIO()
        image.save(buffer, format="GIF", **options)
        data = buffer.getvalue()
        flags = data[10]
        palette = data[13 : 13 + 3 * (2 << (flags & 7))] if flags & 0x80 else b""
        at = gif_first_descriptor(data)
        assert not data[at + 9] & 0x80
        # (screen flags, palette, extensions, descriptor flags, image data with its LZW code size)
        return flags, palette, data[13 + len(palette) : at], data[at + 9], data[at + 10 : -1]

    frame = pil_image(name, "P")
    options = {}
    if transparent:
        counts = np.bincount(np.asarray(frame).ravel(), minlength=256)
        options["transparency"] = int(np.argmax(counts[1:])) + 1
    flags, palette, extensions, frame_flags, image_data = pillow_gif(frame, **options)
    assert flags & 0x80, "Pillow wrote no global palette"
    left, top = position
    height, width = photo(name).shape[:2]
    descriptor_flags = frame_flags
    local = b""
    if local_palette:
        local, palette = palette, bytes(255 - value for value in palette)
        descriptor_flags |= 0x80 | (flags & 7)
    data = (b"GIF89a" + struct.pack("<HHBBB", *screen, flags, 0, 0) + palette + extensions
            + b"\x2c" + struct.pack("<HHHHB", left, top, width, height, descriptor_flags) + local + image_data)
    if larger_frame:
        zeros = Image.new("P", (screen[0] + 7, screen[1] + 5))
        second = pillow_gif(zeros)[4]
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, *zeros.size, 0) + second
    return data + b"\x3b"


def interlaced_gif(name, width, height, screen=None):
    """The photo's top-left `width` x `height` pixels (in mode P) as an interlaced GIF, on a logical screen of
    `screen` (width, height) if given, the frame at (0, 0).

    Pillow writes no frame under 16 rows interlaced, so the rows are stored here in interlaced order (GIF's four
    passes: every 8th row from 0, every 8th from 4, every 4th from 2, every 2nd from 1) and the descriptor's
    interlace flag set: decoders give the crop back.
    """
    frame = pil_image(name, "P").crop((0, 0, width, height))
    order = [y for start, step in ((0, 8), (4, 8), (2, 4), (1, 2)) for y in range(start, height, step)]
    stored = Image.fromarray(np.asarray(frame)[order], "P")
    stored.putpalette(frame.getpalette())
    buffer = io.BytesIO()
    stored.save(buffer, format="GIF", interlace=False)
    data = bytearray(buffer.getvalue())
    data[gif_first_descriptor(data) + 9] |= 0x40
    if screen is not None:
        data[6:10] = struct.pack("<HH", *screen)
    return bytes(data)


def gif_with_frames(screen, frames):
    """A GIF built byte by byte: a screen of `screen` (width, height) with Pillow's palette, then one image
    descriptor per (left, top, width, height) in `frames`, each followed by the LZW data of a 10 x 10 frame
    written by Pillow (a decoder would have to fill the frame's declared size from it)."""
    buffer = io.BytesIO()
    Image.new("P", (10, 10)).save(buffer, format="GIF")
    pillow = buffer.getvalue()
    flags = pillow[10]
    descriptor = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    while pillow[descriptor] == 0x21:  # skip extensions: label, then sub-blocks up to a zero length
        descriptor += 2
        while pillow[descriptor]:
            descriptor += pillow[descriptor] + 1
        descriptor += 1
    assert pillow[descriptor] == 0x2C and not pillow[descriptor + 9] & 0x80  # no local palette
    lzw = pillow[descriptor + 10:-1]  # code size and sub-blocks, without the trailer

    # Pillow's palette and extensions, under our screen size.
    data = b"GIF89a" + struct.pack("<HHBBB", *screen, flags, 0, 0) + pillow[13:descriptor]
    for left, top, width, height in frames:
        data += b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0) + lzw
    return data + b"\x3b"


def pillow_rgb(encoded):
    """The reference decoding: Pillow's Image.open, then CLIPImageProcessor's convert_to_rgb (convert("RGB"),
    transparency composited onto white)."""
    from transformers.image_transforms import convert_to_rgb

    return convert_to_rgb(Image.open(io.BytesIO(encoded)), return_numpy=True)
