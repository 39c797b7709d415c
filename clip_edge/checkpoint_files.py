"""Checkpoint files: a checkpoint's tensors and JSON read from disk, under the names the files give them.

A folder's weight files are found (model.safetensors.index.json, model.safetensors or pytorch_model.bin, and the
config.json beside them); a safetensors file, a sharded index's shards or a PyTorch .bin/.pt (through
clip_edge.torch_files, which runs no code from the file) is read into numpy arrays, and a JSON file into a dict,
refused with a CheckpointError naming the file when it is not a regular file or does not parse. Also the sha256 of
checkpoint files, for manifests and the hub's check. What the names mean is clip_edge.checkpoints' concern.
"""

import json
import os
import stat

from clip_edge.torch_files import read_torch_state_dict

_HF_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the tensor."""


# -- reading files -----------------------------------------------------------------------------------------------


def _regular_file(path, what="checkpoint file"):
    """`path` if it is a regular file (or a link to one). A FIFO or device would block or never end a read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read {what} ({error.strerror})") from error
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: {what} is not a regular file")
    return path


def read_json(path, what):
    """The JSON object in `path`, or a CheckpointError naming the file."""
    _regular_file(path, what)
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable {what} ({type(error).__name__}: {error})") from error
    except RecursionError as error:
        raise CheckpointError(f"{path}: unreadable {what} (nested too deeply)") from error
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: {what} holds a JSON {type(value).__name__}, not an object")
    return value


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    _regular_file(path)
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from error


def shard_names(index_path):
    """(weight_map, sorted shard file names) of a sharded checkpoint's index, checked.

    Shards are plain file names in the index's folder, as Hugging Face writes them: an index naming an absolute
    path, a subfolder or ".." is refused, so that a checkpoint cannot make us read files outside its folder."""
    weight_map = read_json(index_path, "checkpoint index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no weight_map (an object of tensor name: shard file)")
    for tensor, shard in weight_map.items():
        if (not isinstance(shard, str) or shard in ("", ".", "..") or "/" in shard or "\\" in shard
                or "\0" in shard):
            raise CheckpointError(f"{index_path}: tensor {tensor} names shard {shard!r:.120}; shards must be file "
                                  "names in the index's folder")
    return weight_map, sorted(set(weight_map.values()))


def _read_sharded(index_path):
    weight_map, shards = shard_names(index_path)
    tensors = {}
    folder = os.path.dirname(index_path)
    for shard in shards:
        shard_path = os.path.join(folder, shard)
        if not os.path.lexists(shard_path):
            raise CheckpointError(f"{index_path}: shard {shard} is missing")
        tensors.update(_read_safetensors(shard_path))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise CheckpointError(f"{index_path}: tensor {absent[0]} is listed in the index but in no shard")
    return tensors


def read_tensor_file(path):
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(".json"):
        return _read_sharded(path)
    _regular_file(path)
    try:
        return read_torch_state_dict(path)
    except ValueError as error:
        raise CheckpointError(str(error)) from error


def locate(path):
    """(tensor file, config.json or None) for a checkpoint directory or file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    if os.path.isdir(path):
        for name in _HF_FILES:
            if os.path.lexists(os.path.join(path, name)):
                config = os.path.join(path, "config.json")
                return os.path.join(path, name), config if os.path.lexists(config) else None
        raise CheckpointError(f"{path}: directory has none of {', '.join(_HF_FILES)}")
    sibling_config = os.path.join(os.path.dirname(path), "config.json")
    return path, sibling_config if os.path.lexists(sibling_config) else None


# -- sha256 of checkpoint files ----------------------------------------------------------------------------------


def weight_files_sha256(path):
    """{file name: sha256} of a checkpoint's tensor files (model.safetensors, or the shards its index names),
    as the hub lists them per file."""
    tensor_path, _ = locate(path)
    folder = os.path.dirname(tensor_path)
    names = shard_names(tensor_path)[1] if tensor_path.endswith(".json") else [os.path.basename(tensor_path)]
    return {name: files_sha256([_regular_file(os.path.join(folder, name))]) for name in names}


def checkpoint_sha256(path):
    """sha256 of a checkpoint's tensor file (of its index and shards, in order, when sharded), for manifests."""
    tensor_path, _ = locate(path)
    files = [tensor_path]
    if tensor_path.endswith(".json"):
        files += [os.path.join(os.path.dirname(tensor_path), shard) for shard in shard_names(tensor_path)[1]]
    return files_sha256([_regular_file(name) for name in files])


def files_sha256(paths):
    """One sha256 over the files' bytes in order, read in blocks (checkpoints and exports are gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name in paths:
        with open(name, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
