"""The device index format (clip_edge.device_index) against docs/device_index.md: the writer's bytes equal a file
built here field by field from the document's table, the quantisation rules on values whose rounding is known,
the reader's refusals, and a writer killed before its rename. The conversion from a Beam index is tested in
test_beam.py, on its pipeline's indexes.
"""

import os
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from clip_edge import device_index

SHA256 = bytes(range(32))
# Sorted as unsigned bytes: "B" 0x42 < "a" 0x61 < "b" 0x62 < "é" 0xc3 (a signed-byte comparison, Java's
# Byte.compare, would put "é.jpg" first).
IDS = ["b/é.jpg", "é.jpg", "a.jpg", "B.jpg"]
SORTED_IDS = ["B.jpg", "a.jpg", "b/é.jpg", "é.jpg"]


def _pad64(buffer):
    buffer += bytes(-len(buffer) % 64)


def document_file(ids, hashes, rows, scales, mean=None, variant=b"dynamic_int8", name="small".encode()):
    """The bytes of docs/device_index.md's layout for rows already in file order (ids: bytes each), built from
    its table without clip_edge.device_index; any ids (unsorted, empty, ...) so that refusals can be tested
    with valid CRCs."""
    count, dimension = rows.shape
    int8 = rows.dtype == np.int8
    data = bytearray(256)
    embeddings = len(data)
    data += rows.astype("i1" if int8 else "<f2").tobytes()
    scales_at = mean_at = 0
    if int8:
        _pad64(data)
        scales_at = len(data)
        data += np.asarray(scales, "<f4").tobytes()
        _pad64(data)
        mean_at = len(data)
        data += np.asarray(mean, "<f4").tobytes()
    _pad64(data)
    hashes_at = len(data)
    data += np.asarray(hashes, np.uint8).tobytes()
    _pad64(data)
    offsets_at = len(data)
    data += np.cumsum([0] + [len(i) for i in ids]).astype("<u8").tobytes()
    _pad64(data)
    id_bytes_at = len(data)
    data += b"".join(ids)
    data[0:8] = b"CLIPIDX\0"
    for offset, value in ((8, 1), (12, 256), (16, dimension), (20, 2 if int8 else 1)):
        struct.pack_into("<I", data, offset, value)
    for offset, value in ((24, count), (32, len(data)), (40, embeddings), (48, scales_at), (56, hashes_at),
                          (64, offsets_at), (72, id_bytes_at), (80, len(data) - id_bytes_at)):
        struct.pack_into("<Q", data, offset, value)
    data[88:120] = SHA256
    data[120:152] = variant.ljust(32, b"\0")
    data[152:216] = name.ljust(64, b"\0")
    struct.pack_into("<Q", data, 216, mean_at)
    return recrc(data)


def recrc(data):
    """Both CRCs recomputed (bytes 248 and 252), as a writer that put those bytes there would have."""
    data = bytearray(data)
    struct.pack_into("<I", data, 248, zlib.crc32(data[256:]))
    struct.pack_into("<I", data, 252, zlib.crc32(data[:252]))
    return bytes(data)


def _unit_rows(count, dimension, seed=0):
    embeddings = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def mean_by_the_document(embeddings):
    """float32(S / N * 2^-29), S the exact sum of rint(e * 2^29): in Python integers, round() halves to even."""
    count, dimension = embeddings.shape
    if count == 0:
        return np.zeros(dimension, np.float32)
    sums = [sum(round(float(e) * 2**29) for e in embeddings[:, j]) for j in range(dimension)]
    return np.array([float(total) / count * 2**-29 for total in sums]).astype(np.float32)


def int8_by_the_document(embeddings):
    """d = e - mu, q = clamp(rint(d / s), -127, 127), s = max(|d|) / 127 per row (1 for a zero d), all in
    float32; returns (q, s, mu)."""
    mean = mean_by_the_document(embeddings)
    differences = embeddings - mean
    scales = np.array([np.float32(np.abs(row).max()) / np.float32(127) or np.float32(1) for row in differences],
                      np.float32)
    return np.clip(np.rint(differences / scales[:, None]), -127, 127).astype(np.int8), scales, mean


def _write(path, embeddings, dtype, ids=IDS, name="small"):
    quantized = device_index.quantize(embeddings, dtype)
    hashes = np.arange(len(ids) * 16, dtype=np.uint8).reshape(-1, 16)
    device_index.write(str(path), ids, hashes, *quantized, image_encoder_sha256=SHA256.hex(),
                       variant="dynamic_int8", export_name=name)
    return hashes


# D = 5: sections end between multiples of 64 (gaps to fill); D = 32: rows of 64 (float16) or 32 bytes (int8)
# and four 16-byte hashes, so sections end exactly on a multiple of 64 and the next one follows with no gap.
@pytest.mark.parametrize("dimension", [5, 32])
@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_writer_writes_the_documents_bytes(tmp_path, dtype, dimension):
    embeddings = _unit_rows(len(IDS), dimension)
    hashes = _write(tmp_path / "x.clipidx", embeddings, dtype)
    order = [IDS.index(i) for i in SORTED_IDS]
    if dtype == "float16":
        rows, scales, mean = embeddings[order].astype(np.float16), None, None
    else:
        rows, scales, mean = int8_by_the_document(embeddings[order])
    expected = document_file([i.encode() for i in SORTED_IDS], hashes[order], rows, scales, mean)
    assert (tmp_path / "x.clipidx").read_bytes() == expected
    assert os.listdir(tmp_path) == ["x.clipidx"]


def test_int8_rounds_half_to_even_and_scales_each_row():
    # s = 1/256 exactly, so e / s lands on halves: rint gives 2 and -4 (round-half-up would give 3 and -3).
    # Against a zero mean, given: the rows' codes are the embeddings' own.
    halves = np.array([[127, 2.5, -3.5, 0.5], [0, 0, 0, 0]], np.float32) / np.float32(256)
    rows, scales, mean = device_index.quantize(halves, "int8", np.zeros(4, np.float32))
    assert rows.tolist() == [[127, 2, -4, 0], [0, 0, 0, 0]]
    assert scales.tolist() == [1 / 256, 1.0] and mean.tolist() == [0, 0, 0, 0]
    embeddings = _unit_rows(200, 64, seed=1)
    rows, scales, mean = device_index.quantize(embeddings, "int8")
    assert (np.abs(rows).max(axis=1) == 127).all()
    error = np.abs(mean + rows * scales[:, None] - embeddings)
    assert (error <= scales[:, None] * 0.5001).all()


def test_the_mean_and_codes_of_a_hand_worked_case():
    """The bits android_demo's IndexFileTest.meanAndCodesOfAHandWorkedCase expects of the Java writer, for the
    same three dyadic rows: S = 2^29 (1.5, 0, 0.5, 0.25), so mu = (0.5, 0, float32(1/6), float32(1/12)); row 0's
    difference (0.25, -0.5, 0.25 - mu_2, -mu_3) has s = float32(0.5 / 127) = 0x3B810204, slightly below 1/254,
    so 0.25 / s is 63.5 exactly in float32, a half that rint takes to the even 64 (-63.5 to -64 in row 1)."""
    embeddings = np.array([[0.75, -0.5, 0.25, 0], [0.25, 0.5, -0.25, 0.5], [0.5, 0, 0.5, -0.25]], np.float32)
    rows, scales, mean = device_index.quantize(embeddings, "int8")
    assert mean.view(np.uint32).tolist() == [0x3F000000, 0, 0x3E2AAAAB, 0x3DAAAAAB]
    assert scales.view(np.uint32).tolist() == [0x3B810204, 0x3B810204, 0x3B2C02B0]
    assert rows.tolist() == [[64, -127, 21, -21], [-64, 127, -106, 106], [0, 0, 127, -127]]
    # Integer sums: any order of the rows, or chunks of them, gives the same mean.
    assert np.array_equal(device_index.mean(embeddings[::-1]), mean)
    sums = device_index.mean_sums(embeddings[:1]) + device_index.mean_sums(embeddings[1:])
    assert np.array_equal(device_index.mean_of_sums(sums, 3), mean)
    assert device_index.mean(np.zeros([0, 4], np.float32)).tolist() == [0, 0, 0, 0]


def test_float16_rounds_to_nearest_even():
    # 1 + 2^-11 lies halfway between 1 and the next half, 1 + 2^-10: to even, 1. 1 + 3 * 2^-11: up, to 1 + 2^-9.
    # 2^-25 is half the smallest subnormal (2^-24): to 0; 3 * 2^-25: to 2 * 2^-24.
    values = np.array([[1 + 2**-11, 1 + 3 * 2**-11, 2**-25, 3 * 2**-25, -0.5]], np.float32)
    rows, scales, mean = device_index.quantize(values, "float16")
    assert scales is None and mean is None
    assert rows.view(np.uint16).tolist() == [[0x3C00, 0x3C02, 0x0000, 0x0002, 0xB800]]


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_reader_returns_what_was_written_and_ranks_ties_by_id(tmp_path, dtype):
    embeddings = _unit_rows(len(IDS), 16)
    embeddings[0] = embeddings[3] = embeddings[2]  # three equal rows: equal scores, ordered by id
    hashes = _write(tmp_path / "x.clipidx", embeddings, dtype)
    index = device_index.read(str(tmp_path / "x.clipidx"))
    order = [IDS.index(i) for i in SORTED_IDS]
    assert index.ids == SORTED_IDS and index.dtype == dtype and index.dimension == 16
    assert (index.content_hashes == hashes[order]).all()
    assert (index.image_encoder_sha256, index.variant, index.export_name) == (SHA256.hex(), "dynamic_int8", "small")
    query = embeddings[2]
    scores = index.scores(query)
    # The document's score: the dot product in float64, for int8 times the scale plus the mean's dot product,
    # rounded to float32 once.
    exact = index.rows.astype(np.float64) @ query.astype(np.float64)
    if index.scales is not None:
        exact = index.mean.astype(np.float64) @ query.astype(np.float64) + index.scales.astype(np.float64) * exact
    else:
        assert index.mean is None
    np.testing.assert_array_equal(scores, exact.astype(np.float32))
    np.testing.assert_allclose(scores, embeddings[order] @ query, atol=2**-11 if dtype == "float16" else 0.02)
    assert [i for _, i in index.top_k(query, 3)] == ["B.jpg", "a.jpg", "b/é.jpg"]  # "é.jpg" is another row
    assert len(index.top_k(query, 100)) == len(IDS)


def test_an_empty_index_round_trips(tmp_path):
    rows, scales, mean = device_index.quantize(np.zeros([0, 8], np.float32), "int8")
    device_index.write(str(tmp_path / "x.clipidx"), [], np.zeros([0, 16], np.uint8), rows, scales, mean,
                       image_encoder_sha256=SHA256.hex(), variant="int8", export_name="")
    assert (tmp_path / "x.clipidx").read_bytes() == document_file([], np.zeros([0, 16], np.uint8), rows, scales,
                                                                   np.zeros(8), variant=b"int8", name=b"")
    assert device_index.read(str(tmp_path / "x.clipidx")).top_k(np.ones(8, np.float32) / 8**0.5, 5) == []


def _set(offset, fmt, value, fix_crc=True):
    def change(data):
        data = bytearray(data)
        struct.pack_into(fmt, data, offset, value)
        return recrc(data) if fix_crc else bytes(data)
    return change


def _flip(offset):
    def change(data):
        data = bytearray(data)
        data[offset if offset >= 0 else len(data) + offset] ^= 1
        return bytes(data)
    return change


@pytest.mark.parametrize("change, message", [
    (_set(0, "8s", b"CLIPIDY\0", fix_crc=False), "not a device index (.clipidx): it starts with b'CLIPIDY\\x00'"),
    (_set(8, "<I", 2, fix_crc=False), "format version 2; this reader reads version 1"),
    (_set(12, "<I", 320), "header size 320"),
    (_set(16, "<I", 6, fix_crc=False), "header CRC-32 mismatch"),
    (_set(16, "<I", 0), "dimension 0; expected 1 to 4096"),
    (_set(16, "<I", 4097), "dimension 4097; expected 1 to 4096"),
    (_set(20, "<I", 3), "element type 3; expected 1 (float16) or 2 (int8)"),
    (_set(24, "<Q", 2**31), "row count 2147483648"),
    (_set(56, "<Q", 512), "content-hash offset 512; 4 rows of 5 int8 put it at 448"),
    (_set(48, "<Q", 64), "scales offset 64"),
    (_set(216, "<Q", 0), "mean offset 0; 4 rows of 5 int8 put it at 384"),
    (_set(224, "B", 1), "reserved header bytes 224-247 are not zero"),
    (_set(140, "B", 65), "the variant field has bytes after its zero padding"),
    (_flip(300), "CRC-32 mismatch over bytes 256-"),
    (_flip(-1), "CRC-32 mismatch over bytes 256-"),
    (lambda data: data[:-1], "truncated: {shorter} bytes, the header says {size}"),
    (lambda data: data[:100], "truncated: 100 bytes, shorter than the 256-byte header"),
    (lambda data: data + b"\0", "{longer} bytes, longer than the {size} the header says"),
    # The gap after the 4 x 5 int8 rows (bytes 276 to 320), made non-zero under valid CRCs.
    (lambda data: recrc(data[:290] + b"\1" + data[291:]), "the padding between bytes 276 and 320 is not zero"),
    # After the 5 float32 of the mean (bytes 384 to 404), before the hashes at 448.
    (lambda data: recrc(data[:420] + b"\1" + data[421:]), "the padding between bytes 404 and 448 is not zero"),
    (lambda data: recrc(data[:388] + struct.pack("<f", np.inf) + data[392:]), "mean element 1 is not a finite"),
])
def test_reader_refuses_a_corrupt_file(tmp_path, change, message):
    path = tmp_path / "x.clipidx"
    _write(path, _unit_rows(len(IDS), 5), "int8")
    data = path.read_bytes()
    path.write_bytes(change(data))
    with pytest.raises(device_index.IndexFormatError) as raised:
        device_index.read(str(path))
    expected = message.format(shorter=len(data) - 1, longer=len(data) + 1, size=len(data))
    assert str(raised.value).startswith(f"{path}: {expected}")


@pytest.mark.parametrize("ids, message", [
    ([b"b", b"a"], "row 1's id b'a' does not sort after row 0's b'b' (unsigned bytes)"),
    ([b"a", b"a"], "row 1's id b'a' does not sort after row 0's b'a'"),
    ([b"", b"a"], "id offsets give row 0 an id of 0 bytes; ids are 1 to 4096"),
    ([b"a", b"a" * 4097], "id offsets give row 1 an id of 4097 bytes"),
    ([b"a", b"b\0"], "the id bytes hold a zero byte"),
    ([b"a", b"\xc3"], "row 1's id b'\\xc3' is not UTF-8"),
])
def test_reader_refuses_ids_that_break_the_rules(tmp_path, ids, message):
    rows, scales, mean = device_index.quantize(_unit_rows(2, 4), "int8")
    path = tmp_path / "x.clipidx"
    path.write_bytes(document_file(ids, np.zeros([2, 16], np.uint8), rows, scales, mean))
    with pytest.raises(device_index.IndexFormatError) as raised:
        device_index.read(str(path))
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_reader_refuses_values_no_writer_makes(tmp_path):
    rows, scales, mean = device_index.quantize(_unit_rows(2, 4), "int8")
    rows[1, 2] = -128
    (tmp_path / "x.clipidx").write_bytes(document_file([b"a", b"b"], np.zeros([2, 16], np.uint8), rows, scales,
                                                       mean))
    with pytest.raises(device_index.IndexFormatError, match="an int8 element is -128"):
        device_index.read(str(tmp_path / "x.clipidx"))
    rows, _, mean = device_index.quantize(_unit_rows(2, 4), "int8")
    (tmp_path / "x.clipidx").write_bytes(document_file([b"a", b"b"], np.zeros([2, 16], np.uint8), rows,
                                                       np.array([0.01, 0], np.float32), mean))
    with pytest.raises(device_index.IndexFormatError, match="scale is not a positive finite number"):
        device_index.read(str(tmp_path / "x.clipidx"))


@pytest.mark.parametrize("ids, name, dimension, message", [
    (["a", "b", "a"], "small", 4, "id 'a' appears twice"),
    (["a", "", "c"], "small", 4, "id '': ids are 1 to 4096 bytes of UTF-8 without zero bytes, this one is 0 bytes"),
    (["a", "b\0", "c"], "small", 4, "this one is 2 bytes with a zero byte"),
    (["a", "b" * 4097, "c"], "small", 4, "this one is 4097 bytes"),
    (["a", "\udc80", "c"], "small", 4, "id 1 ('\\udc80') is not valid Unicode"),
    (["a", "b", "c"], "sm\0all", 4, "export name 'sm\\x00all' holds a zero byte"),
    (["a", "b", "c"], "small", 4097, "dimension 4097: format version 1 holds 1 to 4096"),
])
def test_writer_refuses_what_the_format_cannot_hold(tmp_path, ids, name, dimension, message):
    quantized = device_index.quantize(_unit_rows(3, dimension), "int8")
    with pytest.raises(device_index.IndexFormatError) as raised:
        device_index.write(str(tmp_path / "x.clipidx"), ids, np.zeros([3, 16], np.uint8), *quantized,
                           image_encoder_sha256=SHA256.hex(), variant="int8", export_name=name)
    assert message in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_a_long_export_name_is_cut_at_a_character_boundary(tmp_path):
    """The header holds 64 bytes of the name (informational): 33 two-byte characters keep 32, not half of one."""
    quantized = device_index.quantize(_unit_rows(1, 4), "int8")
    device_index.write(str(tmp_path / "x.clipidx"), ["a"], np.zeros([1, 16], np.uint8), *quantized,
                       image_encoder_sha256=SHA256.hex(), variant="int8", export_name="é" * 33)
    assert device_index.read(str(tmp_path / "x.clipidx")).export_name == "é" * 32


def test_quantize_refuses_non_finite_embeddings():
    embeddings = _unit_rows(3, 4)
    embeddings[1, 1] = np.nan
    for dtype in ("float16", "int8"):
        with pytest.raises(device_index.IndexFormatError, match="NaN or infinite"):
            device_index.quantize(embeddings, dtype)
    with pytest.raises(device_index.IndexFormatError, match=r"beyond \[-2, 2\]: not unit vectors"):
        device_index.quantize(np.array([[0.5, -2.5]], np.float32), "int8")


def test_writer_refuses_int8_rows_without_their_mean(tmp_path):
    rows, scales, mean = device_index.quantize(_unit_rows(2, 4), "int8")
    for wrong in (None, mean[:3], np.array([0, np.nan, 0, 0], np.float32)):
        with pytest.raises(device_index.IndexFormatError, match="int8 rows need a mean of 4 finite float32s"):
            device_index.write(str(tmp_path / "x.clipidx"), ["a", "b"], np.zeros([2, 16], np.uint8), rows, scales,
                               wrong, image_encoder_sha256=SHA256.hex(), variant="int8", export_name="x")
    assert os.listdir(tmp_path) == []


# The writer as a separate process, loaded from its file alone (clip_edge's __init__ would import TensorFlow,
# seconds for nothing here), SIGKILLed where its rename would happen: the new file is complete and synced,
# the previous one still in place. A SIGKILL runs no clean-up, as in a real kill.
KILLED_WRITER = """
import importlib.util, os, signal, sys
import numpy as np
spec = importlib.util.spec_from_file_location("device_index", sys.argv[1])
device_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_index)
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
quantized = device_index.quantize(np.eye(3, 8, dtype=np.float32), "int8")
device_index.write(sys.argv[2], ["x", "y", "z"], np.zeros([3, 16], np.uint8), *quantized,
                   image_encoder_sha256="00" * 32, variant="int8", export_name="killed")
"""


def test_a_killed_writer_leaves_the_previous_file_whole_and_the_next_one_replaces_it(tmp_path):
    path = tmp_path / "x.clipidx"
    _write(path, _unit_rows(len(IDS), 5), "float16", name="previous")
    previous = path.read_bytes()
    killed = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, device_index.__file__, str(path)],
                              stderr=subprocess.PIPE, text=True)
    _, stderr = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, stderr
    orphan = tmp_path / f"x.clipidx.tmp-{killed.pid}"
    assert sorted(tmp_path.iterdir()) == [path, orphan] and path.read_bytes() == previous
    assert device_index.read(str(path)).export_name == "previous"
    assert device_index.read(str(orphan)).export_name == "killed"  # complete before the rename
    # A live process's temporary file (here: pytest's parent) is not an orphan.
    live = tmp_path / f"x.clipidx.tmp-{os.getppid()}"
    live.write_bytes(b"being written")
    _write(path, _unit_rows(len(IDS), 5), "int8", name="next")
    assert device_index.read(str(path)).export_name == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.clipidx", live.name])
