"""Read tensors from PyTorch `.pt`/`.bin` zip checkpoints without torch and without running code from the file.

torch.save writes a zip whose `data.pkl` pickles the state dict; tensors refer to raw storages in `data/<key>`.
A bare pickle.load would import and call whatever the file names, so we unpickle with an allow-list: the
handful of torch functions and storage classes a state dict needs, mapped onto numpy. Anything else (a
custom class, os.system) is refused with the name it asked for.

TorchScript archives (OpenAI's original ViT-B-32.pt and siblings are such files) pickle their module tree the
same way, each module an object of a `__torch__.*` class whose attributes are its tensors and submodules. We
read those objects as plain attribute dicts, never run their code, and flatten them to state-dict names.
"""

import io
import math
import pickle
import pickletools
import zipfile

import numpy as np


class UnsafeCheckpointError(ValueError):
    pass


# Compressed zip members (torch itself stores them uncompressed) may expand at most this much, so that a small
# crafted archive cannot claim gigabytes of storage.
_MAX_COMPRESSION_RATIO = 64


# Storage class names in torch's pickles and the numpy dtype of their raw little-endian bytes. BFloat16 has no
# numpy dtype; it is read as uint16 and widened below.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *unused_grad_and_hooks):
    array, name, key = storage
    offset, size, stride = _checked_view(array.size, offset, size, stride, key)
    itemsize = array.itemsize
    view = np.lib.stride_tricks.as_strided(array[offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    tensor = np.array(view)
    if name == "BFloat16Storage":
        tensor = (tensor.astype(np.uint32) << 16).view(np.float32)
    return tensor


def _checked_view(storage_size, offset, size, stride, key):
    """(offset, size, stride) once the view is known to lie inside its storage of `storage_size` elements, else
    a ValueError naming the storage. numpy's as_strided does not check: a view past the end copies whatever
    memory follows, a negative stride can crash the process. A view may also not have more elements than its
    storage: only overlapping views (stride 0, as torch's expand makes) do, which no weight needs and which
    would turn a few bytes of file into gigabytes. So a tensor is never larger than the bytes read for it."""

    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if not (is_int(offset) and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
            and all(map(is_int, size)) and all(map(is_int, stride)) and len(size) == len(stride)):
        raise ValueError(f"storage {key}: malformed tensor view (offset {offset!r}, size {size!r}, "
                         f"stride {stride!r})")
    if offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise ValueError(f"storage {key}: negative offset, size or stride in tensor view "
                         f"(offset {offset}, size {tuple(size)}, stride {tuple(stride)})")
    count = math.prod(size)
    if count:
        last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
        if last >= storage_size:
            raise ValueError(f"storage {key}: tensor view (offset {offset}, size {tuple(size)}, stride "
                             f"{tuple(stride)}) reaches element {last}, past the storage's {storage_size}")
        if count > storage_size:
            raise ValueError(f"storage {key}: tensor view of size {tuple(size)} ({count} elements) overlaps "
                             f"itself; its storage holds only {storage_size} elements")
    return offset, tuple(size), tuple(stride)


def _rebuild_parameter(tensor, *unused_grad_and_hooks):
    return tensor


# CLIP's deepest TorchScript path is visual.transformer.resblocks.N.attn.out_proj (6 levels).
_MAX_MODULE_DEPTH = 32


class _ScriptModule:
    """The pickled attributes of one TorchScript module (tensors, submodules, flags); no code is attached."""

    def __setstate__(self, attributes):
        self.attributes = attributes


def _flatten_script_module(module, prefix="", depth=0):
    attributes = getattr(module, "attributes", None)
    if not isinstance(attributes, dict):
        raise ValueError(f"TorchScript module {prefix or '(root)'} has no attribute dict")
    if depth > _MAX_MODULE_DEPTH:  # also ends a module that contains itself
        raise ValueError(f"TorchScript modules nested more than {_MAX_MODULE_DEPTH} deep at {prefix}")
    for name, value in attributes.items():
        if isinstance(value, np.ndarray):
            yield f"{prefix}{name}", value
        elif isinstance(value, _ScriptModule):
            yield from _flatten_script_module(value, f"{prefix}{name}.", depth + 1)


class _StateDict(dict):
    """Stands in for the OrderedDict of a state dict; torch attaches per-module `_metadata` (format versions)
    to it, which plain tensors do not need."""

    def __setstate__(self, unused_metadata):
        pass


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix, path):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._path = path
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptModule
        raise UnsafeCheckpointError(
            f"{self._path}: refusing to load {module}.{name}; only tensors, state dicts and TorchScript module "
            "trees are read (re-save a pickled Python model as a state dict or safetensors)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5):
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent object {pid!r:.80}")
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent object {kind!r:.80}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise ValueError(f"{self._path}: malformed storage reference (key {key!r:.80}, size {numel!r:.80})")
        if key not in self._storages:
            member = _checked_member(self._archive, f"{self._prefix}data/{key}", self._path)
            array = np.frombuffer(self._archive.read(member), dtype=_STORAGE_DTYPES[storage_type.name])
            if array.size < numel:
                raise ValueError(f"{self._path}: storage {key} holds {array.size} elements, expected {numel}")
            self._storages[key] = (array, storage_type.name, key)
        return self._storages[key]


def _checked_member(archive, name, path):
    member = archive.getinfo(name)
    if member.compress_type != zipfile.ZIP_STORED and member.file_size > _MAX_COMPRESSION_RATIO * max(
            member.compress_size, 1):
        raise ValueError(f"{path}: {name} is compressed {member.compress_size} bytes to {member.file_size}, "
                         f"more than {_MAX_COMPRESSION_RATIO} times")
    return member


def _checked_pickle(data):
    """`data` once every opcode of the pickle has been read without running it (pickletools.genops).

    CPython's unpickler allocates what an opcode declares before reading it: a byte string's length, and a memo
    table as long as the largest memo index, zero-filled; a few edited bytes can make either gigabytes. genops
    reads counted data from the buffer only as far as it goes, so a declared length past the end is an error
    here, and memo indices are bounded by the pickle's size (a pickle stores at most one object per byte)."""
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= argument <= len(data):
            raise ValueError(f"damaged torch checkpoint (memo index {argument} in a pickle of {len(data)} bytes)")
    return data


def _state_dict(state):
    if isinstance(state, _ScriptModule):
        state = dict(_flatten_script_module(state))
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"the pickle holds a {type(state).__name__}, not a state dict")
    tensors = {name: value for name, value in state.items() if isinstance(value, np.ndarray)}
    misnamed = [name for name in tensors if not isinstance(name, str)]
    if misnamed:
        raise ValueError(f"a tensor is named {misnamed[0]!r:.80}, not by a string")
    return tensors


def read_torch_state_dict(path):
    """{name: np.ndarray} from a torch.save'd state dict, or a ValueError naming the file and the problem."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (truncated, or the legacy pre-1.6 format); "
                         "re-save it with a current torch.save or as safetensors")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise ValueError(f"expected one data.pkl in the torch archive, found {len(pickles)}")
            prefix = pickles[0][: -len("data.pkl")]
            data = _checked_pickle(archive.read(_checked_member(archive, pickles[0], path)))
            return _state_dict(_StateDictUnpickler(io.BytesIO(data), archive, prefix, path).load())
    except UnsafeCheckpointError:
        raise
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from error
    except RecursionError as error:
        raise ValueError(f"{path}: damaged torch checkpoint (objects nested too deeply)") from error
    # A crafted pickle can call the allowed functions with any arguments and build any structure.
    except (zipfile.BadZipFile, EOFError, KeyError, IndexError, TypeError, AttributeError, OSError, OverflowError,
            MemoryError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: damaged torch checkpoint ({type(error).__name__}: {error})") from error
