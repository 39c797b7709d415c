"""Inputs an attacker would craft: each test builds its malformed file itself and expects a clear error that
names the file, tensor or item (never a crash, a hang, a heap read or a huge allocation)."""

import io
import pickle
import zipfile

import numpy as np
import pytest

from clip_edge.torch_files import read_torch_state_dict

# -- .pt files written by hand -----------------------------------------------------------------------------------
#
# The pickle is made with stand-ins named like torch's globals (defined in this module), whose module name is then
# rewritten to torch's in the pickle's GLOBAL opcodes: so any offset, size and stride can be written, which
# torch.save itself never would.


class FloatStorage:  # noqa: N801 (torch's name)
    pass


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


class _Storage:
    def __init__(self, storage_class, key, numel):
        self.storage_class, self.key, self.numel = storage_class, key, numel


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.storage_class, obj.key, "cpu", obj.numel)
        return None


def write_pt(path, state, storages, compression=zipfile.ZIP_STORED):
    """A torch.save-layout zip: archive/data.pkl pickling `state`, archive/data/<key> holding each storage's bytes."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(state)
    here = __name__.encode()
    data = buffer.getvalue()
    data = data.replace(b"c" + here + b"\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor_v2\n")
    data = data.replace(b"c" + here + b"\nFloatStorage\n", b"ctorch\nFloatStorage\n")
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", data)
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return str(path)


def one_tensor_pt(path, offset, size, stride, numel=4):
    storage = _Storage(FloatStorage, "0", numel)
    return write_pt(path, {"w": _Tensor(storage, offset, size, stride)},
                    {"0": np.arange(numel, dtype=np.float32).tobytes()})


def test_crafted_pt_with_a_valid_view_reads_as_written(tmp_path):
    # The baseline the refusals below differ from: a transposed view of a 2 x 3 storage.
    path = one_tensor_pt(tmp_path / "ok.pt", offset=0, size=(3, 2), stride=(1, 3), numel=6)
    np.testing.assert_array_equal(read_torch_state_dict(path)["w"], np.arange(6, dtype=np.float32).reshape(2, 3).T)


@pytest.mark.parametrize("offset, size, stride, problem", [
    (0, (4,), (-1,), "negative"),  # as_strided would walk backwards out of the buffer (a segfault)
    (2, (2, 2), (-1, 1), "negative"),
    (-1, (2,), (1,), "negative"),
    (0, (2, -3), (1, 1), "negative"),
    (0, (64,), (1,), "past the storage"),  # would copy heap memory after the 4 elements into the weights
    (10_000, (1,), (1,), "past the storage"),
    (3, (2,), (1,), "past the storage"),
    (0, (2, 3), (3, 1), "past the storage"),
    (0, (60_000, 60_000), (0, 0), "overlaps itself"),  # 14 GB from one float
    (0, (4, 4), (1, 0), "overlaps itself"),
    ("0", (4,), (1,), "malformed"),
    (0, (4,), (1, 1), "malformed"),
    (0, 4, (1,), "malformed"),
    (0, (4.0,), (1,), "malformed"),
])
def test_pt_view_outside_its_storage_is_refused(tmp_path, offset, size, stride, problem):
    path = one_tensor_pt(tmp_path / "view.pt", offset, size, stride)
    with pytest.raises(ValueError, match=problem) as error:
        read_torch_state_dict(path)
    assert str(error.value).startswith(path) and "storage 0" in str(error.value)


def test_pt_zip_bomb_storage_is_refused_before_it_is_inflated(tmp_path):
    # 64 MB of zeros deflate to ~64 KB; the declared size is checked before anything is decompressed.
    numel = 16 << 20
    storage = _Storage(FloatStorage, "0", numel)
    path = write_pt(tmp_path / "bomb.pt", {"w": _Tensor(storage, 0, (numel,), (1,))},
                    {"0": bytes(4 * numel)}, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"compressed .* more than 64 times"):
        read_torch_state_dict(path)


@pytest.mark.parametrize("state", [
    {"w": _Tensor(_Storage(FloatStorage, 5, 4), 0, (4,), (1,))},  # key not a string
    {"w": _Tensor(_Storage(FloatStorage, "0", -1), 0, (1,), (1,))},  # negative element count
    {"w": _Tensor(_Storage(FloatStorage, "9", 4), 0, (4,), (1,))},  # no such storage in the archive
    {"w": _Tensor(_Storage(FloatStorage, "0", 400), 0, (4,), (1,))},  # storage shorter than declared
    {7: _Tensor(_Storage(FloatStorage, "0", 4), 0, (4,), (1,))},  # tensor named by a number
    [1, 2, 3],  # not a state dict
])
def test_malformed_pt_structure_names_the_file(tmp_path, state):
    path = write_pt(tmp_path / "odd.pt", state, {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(ValueError) as error:
        read_torch_state_dict(path)
    assert str(error.value).startswith(path)


class ScriptModule:
    pass


def test_pt_of_a_self_containing_torchscript_module_is_refused(tmp_path):
    # A module tree that contains itself, as a crafted pickle can make with its memo.
    root = ScriptModule()
    root.child = root
    buffer = io.BytesIO()
    pickle.Pickler(buffer, protocol=2).dump(root)
    data = buffer.getvalue().replace(b"c" + __name__.encode() + b"\nScriptModule\n", b"c__torch__.M\nScriptModule\n")
    path = tmp_path / "loop.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    with pytest.raises(ValueError, match="nested more than") as error:
        read_torch_state_dict(str(path))
    assert str(error.value).startswith(str(path))
