"""The device embedding index (`.clipidx`), format version 1 (docs/device_index.md): its constants, the writer
and a NumPy reader. Pure NumPy: servers write the file from a Beam index (clip_edge.beam.device_index), tests
and benchmarks read it; android_demo's Java core (dev.clipedge.clip.index) reads and writes the same bytes.

    rows, scales, mean = quantize(float32_embeddings, "int8")  # or "float16" (scales and mean None)
    write(path, ids, content_hashes, rows, scales, mean, image_encoder_sha256=..., variant=..., export_name=...)
    index = read(path)                                        # every check the document asks of a reader
    index.top_k(query, 10)                                    # [(score, id)], best first, ties by id

Every number in the file is little-endian; the sections start at multiples of 64 bytes. A section that ends on
a multiple of 64 is followed directly by the next one (docs/device_index.md: "the next multiple of 64 after the
previous one ends" read as rounding up, no gap when there is nothing to fill), and the file ends where the id
bytes end, with no padding after them.
"""

import dataclasses
import glob
import os
import struct
import zlib

import numpy as np

from clip_edge.messages import quoted

MAGIC = b"CLIPIDX\0"
VERSION = 1
HEADER_BYTES = 256
ALIGNMENT = 64
FLOAT16, INT8 = 1, 2
ELEMENT_TYPES = {"float16": FLOAT16, "int8": INT8}
_ELEMENT_NAMES = {code: name for name, code in ELEMENT_TYPES.items()}
_ELEMENT_DTYPES = {FLOAT16: np.dtype("<f2"), INT8: np.dtype("i1")}
MAX_DIMENSION = 4096
# One Java mapping (a MappedByteBuffer) is at most 2^31 - 1 bytes: the row count and the embeddings section.
MAX_ROWS = 2**31 - 1
MAX_EMBEDDING_BYTES = 2**31 - 1
MAX_ID_BYTES = 4096
CONTENT_HASH_BYTES = 16
INT8_LIMIT = 127
# int8 rows take embeddings with elements in [-2, 2] (unit vectors' are in [-1, 1]), so that each term
# rint(e * 2^29) of the mean's exact integer sum is at most 2^30 and 2^31 rows of them fit an int64.
EMBEDDING_LIMIT = 2
MEAN_FIXED_POINT = 2**29
SHA256_BYTES, VARIANT_BYTES, NAME_BYTES, RESERVED_BYTES = 32, 32, 64, 24
# magic, version, header size, D, element type; N, file size, five section offsets, id-bytes length; the
# fingerprint (sha256, variant), the export's name, the mean's offset, reserved; CRC-32 of the sections, CRC-32
# of bytes 0..252.
_HEADER = struct.Struct(f"<8sIIII8Q{SHA256_BYTES}s{VARIANT_BYTES}s{NAME_BYTES}sQ{RESERVED_BYTES}sII")
assert _HEADER.size == HEADER_BYTES
_HEADER_CRC_AT = HEADER_BYTES - 4
# Rows written per block in id order (a gather from the caller's order): bounds the writer's extra memory.
_WRITE_BLOCK_ROWS = 16384
# Rows converted to float32 at a time when scoring: 65,536 x 512 float32 = 128 MiB whatever the index size.
_SCORE_BLOCK_ROWS = 65536
# Rows summed at a time for the mean: 8,192 x 512 int64 = 32 MiB, not the 8 bytes per element of a whole chunk.
_MEAN_BLOCK_ROWS = 8192


class IndexFormatError(ValueError):
    """A file that breaks format version 1, or rows that cannot be written in it."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each section starts (0: absent), in bytes from the start of the file. The mean's offset comes last:
    its header field follows the fingerprint, not the other offsets."""
    embeddings: int
    scales: int
    content_hashes: int
    id_offsets: int
    id_bytes: int
    id_bytes_length: int
    file_size: int
    mean: int


def _align(offset):
    return -(-offset // ALIGNMENT) * ALIGNMENT


def layout(rows, dimension, element_type, id_bytes_length):
    """The only section offsets and file size version 1 allows for these counts."""
    end = HEADER_BYTES + rows * dimension * _ELEMENT_DTYPES[element_type].itemsize
    scales = mean = 0
    if element_type == INT8:
        scales = _align(end)
        mean = _align(scales + 4 * rows)
        end = mean + 4 * dimension
    content_hashes = _align(end)
    id_offsets = _align(content_hashes + CONTENT_HASH_BYTES * rows)
    id_bytes = _align(id_offsets + 8 * (rows + 1))
    return Layout(HEADER_BYTES, scales, content_hashes, id_offsets, id_bytes, id_bytes_length,
                  id_bytes + id_bytes_length, mean)


def _checked(embeddings, dtype):
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2:
        raise IndexFormatError(f"embeddings of shape {list(embeddings.shape)}: expected [rows, dimension]")
    if not np.isfinite(embeddings).all():
        raise IndexFormatError("embeddings hold NaN or infinite values")
    if dtype == "int8" and embeddings.size and max(embeddings.max(), -embeddings.min()) > EMBEDDING_LIMIT:
        raise IndexFormatError(f"embeddings hold values beyond [-{EMBEDDING_LIMIT}, {EMBEDDING_LIMIT}]: not unit "
                               f"vectors")
    return embeddings


def mean_sums(embeddings):
    """int64 [D]: the exact sums over the rows of rint(e * 2^29) (float32 products, exact), the document's
    fixed-point mean before its division. Integer sums do not depend on the order: sums of chunks add up to the
    sums of all rows, so a caller can stream them (clip_edge.beam.device_index does)."""
    embeddings = _checked(embeddings, "int8")
    sums = np.zeros(embeddings.shape[1], np.int64)
    for start in range(0, len(embeddings), _MEAN_BLOCK_ROWS):
        block = embeddings[start:start + _MEAN_BLOCK_ROWS] * np.float32(MEAN_FIXED_POINT)
        sums += np.rint(block).astype(np.int64).sum(axis=0)
    return sums


def mean_of_sums(sums, count):
    """float32 [D]: the document's mean of `count` rows whose mean_sums are `sums`, float32(S / N * 2^-29) with
    the division and product in float64; zeros for no rows."""
    if count == 0:
        return np.zeros(len(sums), np.float32)
    return (np.asarray(sums, np.int64).astype(np.float64) / count * 2.0**-29).astype(np.float32)


def mean(embeddings):
    """The mean int8 rows are quantised against (docs/device_index.md, section mean) of float32 [N, D]."""
    return mean_of_sums(mean_sums(embeddings), len(embeddings))


def quantize(embeddings, dtype, mean_vector=None):
    """float32 [N, D] -> (rows, scales, mean) by the document's rules: float16 rows (round to nearest even), None,
    None; or int8 rows q = clamp(rint(d / s), -127, 127) of d = e - mean, with s = max(|d|) / 127 per row (1 for
    an all-zero d), the float32 scales and the float32 mean. mean_vector: the mean to quantise against (a file's
    mean is that of all its rows: pass it when quantising a chunk of them); None: the mean of `embeddings`.
    Everything in float32, as the Java writer computes it: d / s in float64 could round a quotient such as
    12.49999 to another side of .5 than float32 does."""
    if dtype not in ELEMENT_TYPES:
        raise IndexFormatError(f"element type {dtype!r}: expected one of {', '.join(ELEMENT_TYPES)}")
    embeddings = _checked(embeddings, dtype)
    if dtype == "float16":
        rows = embeddings.astype(np.float16)
        if not np.isfinite(rows).all():
            raise IndexFormatError("embeddings hold values beyond float16's range (65504): not unit vectors")
        return rows, None, None
    if mean_vector is None:
        mean_vector = mean(embeddings)
    mean_vector = np.asarray(mean_vector, np.float32)
    if mean_vector.shape != (embeddings.shape[1],) or not np.isfinite(mean_vector).all():
        raise IndexFormatError(f"a mean of shape {list(mean_vector.shape)}: expected {embeddings.shape[1]} finite "
                               f"float32s")
    # One float32 temporary, d, divided in place (float32 division either way): the converter quantises chunks
    # of 65,536 x 512 float32 (128 MiB), so every N x D temporary costs as much. max(|d|) without a |d| array.
    quotients = embeddings - mean_vector
    largest = np.maximum(quotients.max(axis=1, initial=0), -quotients.min(axis=1, initial=0))
    scales = (largest / np.float32(INT8_LIMIT)).astype(np.float32)
    scales[scales == 0] = 1
    if (scales < np.finfo(np.float32).tiny).any():  # d / s would overflow; the Java writer refuses these too
        raise IndexFormatError("a row differs too little from the mean to quantise")
    quotients /= scales[:, None]
    np.rint(quotients, out=quotients)
    np.clip(quotients, -INT8_LIMIT, INT8_LIMIT, out=quotients)
    return quotients.astype(np.int8), scales, mean_vector


def _cut_utf8(text, size):
    """text's UTF-8 cut at a character boundary to at most `size` bytes: the name is informational."""
    data = text.encode("utf-8")[:size]
    return data.decode("utf-8", "ignore").encode("utf-8")


def _padded(text_bytes, size, what):
    if len(text_bytes) > size:
        raise IndexFormatError(f"{what} is {len(text_bytes)} bytes; the header holds {size}")
    if b"\0" in text_bytes:
        raise IndexFormatError(f"{what} holds a zero byte")
    return text_bytes.ljust(size, b"\0")


def _header(element_type, dimension, rows, where, fingerprint, variant, name, body_crc):
    header = bytearray(_HEADER.pack(
        MAGIC, VERSION, HEADER_BYTES, dimension, element_type, rows, where.file_size, where.embeddings,
        where.scales, where.content_hashes, where.id_offsets, where.id_bytes, where.id_bytes_length, fingerprint,
        variant, name, where.mean, bytes(RESERVED_BYTES), body_crc, 0))
    struct.pack_into("<I", header, _HEADER_CRC_AT, zlib.crc32(header[:_HEADER_CRC_AT]))
    return bytes(header)


def remove_stale_temporaries(path):
    """Delete PATH.tmp-PID files whose writer process (PID, on this machine) is gone: what a killed writer
    leaves. A live writer's file, and anything that is not a regular file, stays."""
    for stale in glob.glob(glob.escape(path) + ".tmp-*"):
        pid = stale.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or os.path.islink(stale) or not os.path.isfile(stale):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            os.unlink(stale)
        except (PermissionError, OverflowError):  # another user's live process; a pid no process can have
            continue


def write(path, ids, content_hashes, rows, scales, mean_vector, *, image_encoder_sha256, variant, export_name):
    """Write a version 1 file at `path`, replacing any file there only once the new one is complete and synced.

    ids: N str (sorted here: the caller's order does not matter); content_hashes: uint8 [N, 16]; rows, scales,
    mean_vector: quantize()'s result for those ids, in the same order (scales and mean None for float16);
    image_encoder_sha256: hex digest of the image encoder file; variant: its variant name; export_name:
    manifest.json's name. Returns the Layout written.
    IndexFormatError for anything the format cannot hold, naming it; OSError from the filesystem."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.dtype not in (np.float16, np.int8):
        raise IndexFormatError(f"rows of {rows.dtype} {list(rows.shape)}: expected float16 or int8 [N, D]")
    element_type = FLOAT16 if rows.dtype == np.float16 else INT8
    count, dimension = rows.shape
    if not 1 <= dimension <= MAX_DIMENSION:
        raise IndexFormatError(f"dimension {dimension}: format version 1 holds 1 to {MAX_DIMENSION}")
    if count > MAX_ROWS or rows.nbytes > MAX_EMBEDDING_BYTES:
        raise IndexFormatError(f"{count} rows of {dimension} {rows.dtype}: the embeddings section would be "
                               f"{rows.nbytes} bytes, above {MAX_EMBEDDING_BYTES} (one Java mapping)")
    if element_type == INT8:
        scales = np.asarray(scales, np.float32)
        if scales.shape != (count,) or not (np.isfinite(scales) & (scales > 0)).all():
            raise IndexFormatError(f"int8 rows need {count} positive finite scales")
        mean_vector = np.asarray(mean_vector, np.float32) if mean_vector is not None else None
        if mean_vector is None or mean_vector.shape != (dimension,) or not np.isfinite(mean_vector).all():
            raise IndexFormatError(f"int8 rows need a mean of {dimension} finite float32s")
    elif scales is not None or mean_vector is not None:
        raise IndexFormatError("float16 rows have no scales and no mean")
    if len(ids) != count:
        raise IndexFormatError(f"{len(ids)} ids for {count} rows")
    hashes = np.asarray(content_hashes)
    if hashes.dtype != np.uint8 or hashes.shape != (count, CONTENT_HASH_BYTES):
        raise IndexFormatError(f"content hashes of {hashes.dtype} {list(hashes.shape)}: expected uint8 "
                               f"[{count}, {CONTENT_HASH_BYTES}]")
    encoded = []
    for number, id_ in enumerate(ids):
        try:
            data = id_.encode("utf-8")
        except UnicodeEncodeError as error:
            raise IndexFormatError(f"id {number} ({id_!r}) is not valid Unicode: {error.reason}") from None
        if not 1 <= len(data) <= MAX_ID_BYTES or b"\0" in data:
            raise IndexFormatError(f"id {id_!r}: ids are 1 to {MAX_ID_BYTES} bytes of UTF-8 without zero bytes, "
                                   f"this one is {len(data)} bytes" + (" with a zero byte" if b"\0" in data else ""))
        encoded.append(data)
    order = sorted(range(count), key=encoded.__getitem__)  # bytes compare as unsigned bytes
    for previous, current in zip(order, order[1:]):
        if encoded[previous] == encoded[current]:
            raise IndexFormatError(f"id {ids[current]!r} appears twice")
    try:
        fingerprint = bytes.fromhex(image_encoder_sha256)
    except (TypeError, ValueError):
        fingerprint = b""
    if len(fingerprint) != SHA256_BYTES:
        raise IndexFormatError(f"image encoder sha256 {image_encoder_sha256!r} is not a hex SHA-256 digest")
    if not variant or not variant.isascii():
        raise IndexFormatError(f"variant {variant!r}: expected a non-empty ASCII name")
    variant_field = _padded(variant.encode("ascii"), VARIANT_BYTES, f"variant {variant!r}")
    name_field = _padded(_cut_utf8(export_name, NAME_BYTES), NAME_BYTES, f"export name {quoted(export_name)}")

    id_lengths = np.array([len(encoded[i]) for i in order], np.uint64)
    id_offsets = np.concatenate([np.zeros(1, np.uint64), np.cumsum(id_lengths, dtype=np.uint64)]).astype("<u8")
    where = layout(count, dimension, element_type, int(id_offsets[-1]))
    order = np.asarray(order, np.int64)

    remove_stale_temporaries(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    if os.path.lexists(temporary):  # left by an earlier process that had this pid
        os.unlink(temporary)
    try:
        with open(temporary, "xb") as file:  # "x": never through a link planted under that name
            crc = 0

            def put(data):
                nonlocal crc
                file.write(data)
                crc = zlib.crc32(data, crc)

            def section(offset):
                put(bytes(offset - file.tell()))  # the zero-filled gap up to the section's start

            file.write(bytes(HEADER_BYTES))  # the header, written last once the sections' CRC is known
            section(where.embeddings)
            for start in range(0, count, _WRITE_BLOCK_ROWS):
                put(rows[order[start:start + _WRITE_BLOCK_ROWS]].astype(_ELEMENT_DTYPES[element_type]).tobytes())
            if element_type == INT8:
                section(where.scales)
                put(scales[order].astype("<f4").tobytes())
                section(where.mean)
                put(mean_vector.astype("<f4").tobytes())
            section(where.content_hashes)
            put(hashes[order].tobytes())
            section(where.id_offsets)
            put(id_offsets.tobytes())
            section(where.id_bytes)
            for start in range(0, count, _WRITE_BLOCK_ROWS):
                put(b"".join(encoded[i] for i in order[start:start + _WRITE_BLOCK_ROWS]))
            assert file.tell() == where.file_size, (file.tell(), where)
            file.seek(0)
            file.write(_header(element_type, dimension, count, where, fingerprint, variant_field, name_field, crc))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    # The rename itself is durable only once the folder is synced.
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return where


@dataclasses.dataclass(frozen=True, eq=False)
class DeviceIndex:
    """A checked version 1 file in memory. rows: float16 or int8 [N, D], sorted by id; scales: float32 [N] and
    mean: float32 [D] for int8, else None; content_hashes: uint8 [N, 16]; ids: N str."""
    path: str
    dtype: str
    rows: np.ndarray
    scales: np.ndarray
    mean: np.ndarray
    content_hashes: np.ndarray
    ids: list
    image_encoder_sha256: str
    variant: str
    export_name: str

    @property
    def dimension(self):
        return self.rows.shape[1]

    def scores(self, query):
        """Cosine of every row with the unit float32 query [D] as the document defines it: accumulated in float64
        and rounded to float32, float32(dot(float64(row), float64(query))), for int8 float32(m + s * dot(...))
        with m = dot(float64(mean), float64(query)) (a float32 sum depends on its order; in float64 NumPy's BLAS
        and Java's loop agree). float32 [N], in row (id) order."""
        query = np.asarray(query, np.float32)
        if query.shape != (self.dimension,) or not np.isfinite(query).all():
            raise ValueError(f"query of shape {list(query.shape)}: expected {self.dimension} finite float32s")
        query = query.astype(np.float64)
        scores = np.empty(len(self.ids), np.float32)
        for start in range(0, len(scores), _SCORE_BLOCK_ROWS):
            block = slice(start, start + _SCORE_BLOCK_ROWS)
            exact = self.rows[block].astype(np.float64) @ query
            if self.scales is not None:
                exact *= self.scales[block].astype(np.float64)
                exact += self.mean.astype(np.float64) @ query
            scores[block] = exact  # rounded to float32 once, at the end
        return scores

    def top_k(self, query, k):
        """[(score, id)] of the k best rows, best first; equal scores by id (the rows are in id order, so a
        stable sort on the score alone orders ties by id)."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        scores = self.scores(query)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(float(scores[i]), self.ids[i]) for i in best]


def read(path):
    """Load and check a version 1 file (IndexFormatError naming the file and the problem; never a partial
    index): magic, version, header size, header CRC, element type, dimension, count, file size (a truncated
    file is named as such), offsets, zero padding and reserved bytes, the sections' CRC, id offsets, ids (1 to
    4096 bytes of UTF-8 without zero bytes) and their order; also values the writers cannot produce (int8 -128,
    scales that are not positive and finite, a non-finite mean or float16)."""
    def refuse(problem):
        raise IndexFormatError(f"{path}: {problem}")

    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(HEADER_BYTES)
        if head[:len(MAGIC)] != MAGIC:
            refuse(f"not a device index (.clipidx): it starts with {head[:len(MAGIC)]!r}, not {MAGIC!r}")
        if len(head) < HEADER_BYTES:
            refuse(f"truncated: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
        (_, version, header_size, dimension, element_type, count, file_size, *offsets, fingerprint, variant, name,
         mean_offset, reserved, body_crc, header_crc) = _HEADER.unpack(head)
        if version != VERSION:
            refuse(f"format version {version}; this reader reads version {VERSION}")
        if header_size != HEADER_BYTES:
            refuse(f"header size {header_size}; version 1's is {HEADER_BYTES}")
        if zlib.crc32(head[:_HEADER_CRC_AT]) != header_crc:
            refuse(f"header CRC-32 mismatch: stored {header_crc:#010x}, bytes 0-252 give "
                   f"{zlib.crc32(head[:_HEADER_CRC_AT]):#010x} (a corrupt header)")
        if element_type not in _ELEMENT_NAMES:
            refuse(f"element type {element_type}; expected 1 (float16) or 2 (int8)")
        if not 1 <= dimension <= MAX_DIMENSION:
            refuse(f"dimension {dimension}; expected 1 to {MAX_DIMENSION}")
        if count > MAX_ROWS:
            refuse(f"row count {count}; expected at most {MAX_ROWS}")
        itemsize = _ELEMENT_DTYPES[element_type].itemsize
        if count * dimension * itemsize > MAX_EMBEDDING_BYTES:
            refuse(f"{count} rows of {dimension} make an embeddings section of {count * dimension * itemsize} "
                   f"bytes, above {MAX_EMBEDDING_BYTES}")
        if size < file_size:
            refuse(f"truncated: {size} bytes, the header says {file_size}")
        if size > file_size:
            refuse(f"{size} bytes, longer than the {file_size} the header says")
        expected = layout(count, dimension, element_type, offsets[-1])
        names = ("embeddings offset", "scales offset", "content-hash offset", "id-offsets offset",
                 "id-bytes offset")
        for field, found, computed in zip(names, offsets, dataclasses.astuple(expected)):
            if found != computed:
                refuse(f"{field} {found}; {count} rows of {dimension} {_ELEMENT_NAMES[element_type]} put it at "
                       f"{computed}")
        if mean_offset != expected.mean:
            refuse(f"mean offset {mean_offset}; {count} rows of {dimension} {_ELEMENT_NAMES[element_type]} put it "
                   f"at {expected.mean}")
        if expected.file_size != file_size:
            refuse(f"file size {file_size} in the header; the sections end at {expected.file_size}")
        if reserved != bytes(RESERVED_BYTES):
            refuse("reserved header bytes 224-247 are not zero")
        variant_text = _unpad(variant, "variant", refuse)
        name_text = _unpad(name, "export name", refuse)
        if not variant_text or not variant_text.isascii():
            refuse(f"fingerprint variant {variant_text!r} is not a non-empty ASCII name")
        body = file.read()
    if zlib.crc32(body) != body_crc:
        refuse(f"CRC-32 mismatch over bytes {HEADER_BYTES}-{file_size}: stored {body_crc:#010x}, the file gives "
               f"{zlib.crc32(body):#010x} (a corrupt file)")

    def view(offset, dtype, length):
        return np.frombuffer(body, dtype, length, offset - HEADER_BYTES)

    sections = [(expected.embeddings, count * dimension * itemsize)]
    if element_type == INT8:
        sections += [(expected.scales, 4 * count), (expected.mean, 4 * dimension)]
    sections += [(expected.content_hashes, CONTENT_HASH_BYTES * count), (expected.id_offsets, 8 * (count + 1)),
                 (expected.id_bytes, expected.id_bytes_length)]
    for (offset, length), (following, _) in zip(sections, sections[1:]):
        if any(body[offset + length - HEADER_BYTES:following - HEADER_BYTES]):
            refuse(f"the padding between bytes {offset + length} and {following} is not zero")
    rows = view(expected.embeddings, _ELEMENT_DTYPES[element_type], count * dimension).reshape(count, dimension)
    scales = view(expected.scales, "<f4", count) if element_type == INT8 else None
    if scales is not None and not (np.isfinite(scales) & (scales > 0)).all():
        refuse("an int8 row's scale is not a positive finite number")
    mean_vector = view(expected.mean, "<f4", dimension) if element_type == INT8 else None
    if mean_vector is not None and not np.isfinite(mean_vector).all():
        refuse(f"mean element {int(np.argmin(np.isfinite(mean_vector)))} is not a finite number")
    if element_type == INT8 and (rows == -128).any():
        refuse("an int8 element is -128; rows are clamped to -127..127")
    if element_type == FLOAT16 and not np.isfinite(rows).all():
        refuse("a float16 element is NaN or infinite")
    id_offsets = view(expected.id_offsets, "<u8", count + 1)
    if id_offsets[0] != 0 or id_offsets[-1] != expected.id_bytes_length:
        refuse(f"id offsets run from {id_offsets[0]} to {id_offsets[-1]}; expected 0 to the id-bytes length "
               f"{expected.id_bytes_length}")
    lengths = np.diff(id_offsets.astype(np.int64))
    if count and not ((lengths >= 1) & (lengths <= MAX_ID_BYTES)).all():
        row = int(np.argmax((lengths < 1) | (lengths > MAX_ID_BYTES)))
        refuse(f"id offsets give row {row} an id of {lengths[row]} bytes; ids are 1 to {MAX_ID_BYTES}")
    id_bytes = body[expected.id_bytes - HEADER_BYTES:]
    if b"\0" in id_bytes:
        refuse("the id bytes hold a zero byte")
    ids, previous = [], None
    for row in range(count):
        data = id_bytes[id_offsets[row]:id_offsets[row + 1]]
        if previous is not None and data <= previous:
            refuse(f"row {row}'s id {data!r} does not sort after row {row - 1}'s {previous!r} (unsigned bytes): "
                   f"ids must be unique and sorted")
        try:
            ids.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            refuse(f"row {row}'s id {data!r} is not UTF-8")
        previous = data
    return DeviceIndex(path=path, dtype=_ELEMENT_NAMES[element_type], rows=rows, scales=scales, mean=mean_vector,
                       content_hashes=view(expected.content_hashes, np.uint8, CONTENT_HASH_BYTES * count).reshape(
                           count, CONTENT_HASH_BYTES), ids=ids, image_encoder_sha256=fingerprint.hex(),
                       variant=variant_text, export_name=name_text)


def _unpad(field, what, refuse):
    """A zero-padded header string -> str; refuse bytes after the padding starts, or text that is not UTF-8."""
    text, _, padding = field.partition(b"\0")
    if any(padding):
        refuse(f"the {what} field has bytes after its zero padding")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        refuse(f"the {what} field is not UTF-8")
