"""Read tensors from PyTorch `.pt`/`.bin` zip checkpoints without torch and without running code from the file.

torch.save writes a zip whose `data.pkl` pickles the state dict; tensors refer to raw storages in `data/<key>`.
A bare pickle.load would import and call whatever the file names, so we unpickle with an allow-list: the
handful of torch functions and storage classes a state dict needs, mapped onto numpy. Anything else (a
custom class, os.system) is refused with the name it asked for.

TorchScript archives (OpenAI's original ViT-B-32.pt and siblings are such files) pickle their module tree the
same way, each module an object of a `__torch__.*` class whose attributes are its tensors and submodules. We
read those objects as plain attribute dicts, never run their code, and flatten them to state-dict names.
"""

import pickle
import zipfile

import numpy as np


class UnsafeCheckpointError(ValueError):
    pass


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
    array, name = storage
    itemsize = array.itemsize
    view = np.lib.stride_tricks.as_strided(array[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    tensor = np.array(view)
    if name == "BFloat16Storage":
        tensor = (tensor.astype(np.uint32) << 16).view(np.float32)
    return tensor


def _rebuild_parameter(tensor, *unused_grad_and_hooks):
    return tensor


class _ScriptModule:
    """The pickled attributes of one TorchScript module (tensors, submodules, flags); no code is attached."""

    def __setstate__(self, attributes):
        self.attributes = attributes


def _flatten_script_module(module, prefix=""):
    for name, value in module.attributes.items():
        if isinstance(value, np.ndarray):
            yield prefix + name, value
        elif isinstance(value, _ScriptModule):
            yield from _flatten_script_module(value, f"{prefix}{name}.")


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
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent object {kind!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            array = np.frombuffer(raw, dtype=_STORAGE_DTYPES[storage_type.name])
            if array.size < numel:
                raise ValueError(f"{self._path}: storage {key} holds {array.size} elements, expected {numel}")
            self._storages[key] = (array, storage_type.name)
        return self._storages[key]


def read_torch_state_dict(path):
    """{name: np.ndarray} from a torch.save'd state dict, or a ValueError naming the file and the problem."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (truncated, or the legacy pre-1.6 format); "
                         "re-save it with a current torch.save or as safetensors")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise ValueError(f"{path}: expected one data.pkl in the torch archive, found {len(pickles)}")
            prefix = pickles[0][: -len("data.pkl")]
            with archive.open(pickles[0]) as file:
                state = _StateDictUnpickler(file, archive, prefix, path).load()
    except (zipfile.BadZipFile, EOFError, KeyError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: damaged torch checkpoint ({error})") from error
    if isinstance(state, _ScriptModule):
        state = dict(_flatten_script_module(state))
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict")
    return {name: value for name, value in state.items() if isinstance(value, np.ndarray)}
