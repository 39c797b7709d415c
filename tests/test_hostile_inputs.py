"""Inputs an attacker would craft: each test builds its malformed file itself and expects a clear error that
names the file, tensor or item (never a crash, a hang, a heap read or a huge allocation)."""

import contextlib
import io
import json
import os
import pickle
import re
import signal
import zipfile

import numpy as np
import pytest

import clip_edge
from clip_edge import checkpoint_files, checkpoints
from clip_edge.checkpoint_files import CheckpointError
from clip_edge.torch_files import read_torch_state_dict

from tests import photos


def run_limited(script, memory_bytes, args=()):
    """Run `script` in a fresh Python whose heap (RLIMIT_DATA) is capped: code that ignores a size check fails
    there instead of taking the machine's memory."""
    import subprocess
    import sys
    import textwrap

    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prologue = f"import resource; resource.setrlimit(resource.RLIMIT_DATA, ({memory_bytes}, {memory_bytes}))\n"
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(script), *args], cwd=repository,
                          env=dict(os.environ, PYTHONPATH=repository), capture_output=True, text=True, timeout=900)


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


def pt_with_pickle(path, data):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    return str(path)


@pytest.mark.parametrize("data, problem", [
    # BYTEARRAY8 declaring 4 GB: CPython's unpickler would allocate it before finding the pickle ends.
    (b"\x80\x05\x96" + (4 << 30).to_bytes(8, "little") + b"ab.", "bytearray8"),
    (b"\x80\x04\x8e" + (4 << 30).to_bytes(8, "little") + b"ab.", "bytes8"),
    # LONG_BINPUT at memo index 2**31: the unpickler would zero-fill a 16 GB memo table.
    (b"\x80\x02N" + b"r" + (2**31).to_bytes(4, "little") + b".", "memo index 2147483648"),
])
def test_pickle_that_declares_gigabytes_is_refused_before_allocating(tmp_path, data, problem):
    path = pt_with_pickle(tmp_path / "bomb.pt", data)
    with pytest.raises(ValueError, match=problem) as error:
        read_torch_state_dict(path)
    assert str(error.value).startswith(path)


def test_randomly_edited_pickles_end_in_a_named_error_within_a_small_heap(tmp_path):
    # 1,500 real torch.save pickles with 1 to 12 bytes overwritten (the zip rebuilt so that its checksums hold),
    # in a process whose heap is capped at 3 GB: each gives tensors or a ValueError naming the file.
    result = run_limited("""
        import collections, io, random, sys, zipfile
        import torch
        from clip_edge.torch_files import read_torch_state_dict
        buffer = io.BytesIO()
        torch.save(collections.OrderedDict(a=torch.arange(6.0).reshape(2, 3), b=torch.arange(4, dtype=torch.float16),
                                           c=torch.zeros(3, 2).t()), buffer)
        source = zipfile.ZipFile(buffer)
        pickle_name = next(n for n in source.namelist() if n.endswith("data.pkl"))
        original = source.read(pickle_name)
        rng = random.Random(7)
        outcomes = collections.Counter()
        path = sys.argv[1]
        for trial in range(1500):
            data = bytearray(original)
            for _ in range(rng.randint(1, 12)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            with zipfile.ZipFile(path, "w") as archive:
                for name in source.namelist():
                    archive.writestr(name, bytes(data) if name == pickle_name else source.read(name))
            try:
                read_torch_state_dict(path)
                outcomes["tensors"] += 1
            except ValueError as error:
                assert str(error).startswith(path), error
                outcomes["named error"] += 1
        print(dict(outcomes))
    """, memory_bytes=3_000_000_000, args=[str(tmp_path / "edited.pt")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "named error" in result.stdout


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


# -- checkpoints: folders, indexes, configs, tensors ---------------------------------------------------------------

TINY = dict(embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=16,
            context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1,
            vision_heads=1)  # heads as inferred without a config.json (width // 64)


@pytest.fixture(scope="module")
def tiny_tensors():
    """Valid Hugging Face-named tensors for TINY (random values of the checkpoint layout's shapes)."""
    model = clip_edge.CLIP(**TINY)
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=checkpoints._reference_shape(variable, transform)).astype(np.float32)
            for name, variable, transform in checkpoints.variable_targets(model)}


def save_folder(folder, tensors, config=None):
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    if config is not None:
        with open(os.path.join(folder, "config.json"), "w") as file:
            file.write(config if isinstance(config, str) else json.dumps(config))
    return str(folder)


def test_tiny_checkpoint_loads(tiny_tensors, tmp_path):
    model = clip_edge.CLIP.from_checkpoint(save_folder(tmp_path / "ok", tiny_tensors))
    assert model.get_config() == TINY


def sharded(folder, tensors, weight_map_of):
    """Two shards and an index whose entries weight_map_of(default entry) may rewrite."""
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    names = sorted(tensors)
    halves = {"model-1.safetensors": names[: len(names) // 2], "model-2.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, shard_names in halves.items():
        save_file({n: tensors[n] for n in shard_names}, os.path.join(folder, shard))
        weight_map.update({n: weight_map_of(shard) for n in shard_names})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as file:
        json.dump({"weight_map": weight_map}, file)
    return str(folder)


def test_sharded_checkpoint_loads(tiny_tensors, tmp_path):
    model = clip_edge.CLIP.from_checkpoint(sharded(tmp_path / "ok", tiny_tensors, lambda shard: shard))
    assert model.get_config() == TINY


@pytest.mark.parametrize("where", ["absolute", "parent", "subfolder"])
def test_shards_outside_the_checkpoint_folder_are_refused(tiny_tensors, tmp_path, where):
    # The shard really exists at the named place, so only the confinement can refuse it.
    outside = sharded(tmp_path / "outside", tiny_tensors, lambda shard: shard)
    names = {"absolute": lambda shard: os.path.join(outside, shard),
             "parent": lambda shard: f"../outside/{shard}",
             "subfolder": lambda shard: f"sub/{shard}"}
    os.makedirs(tmp_path / "ckpt" / "sub")
    for shard in ("model-1.safetensors", "model-2.safetensors"):
        os.link(os.path.join(outside, shard), tmp_path / "ckpt" / "sub" / shard)
    folder = sharded(tmp_path / "ckpt", tiny_tensors, names[where])
    with pytest.raises(CheckpointError, match="shards must be file names in the index's folder") as error:
        clip_edge.CLIP.from_checkpoint(folder)
    assert "model.safetensors.index.json" in str(error.value)
    with pytest.raises(CheckpointError, match="shards must be file names"):
        checkpoint_files.checkpoint_sha256(folder)


@pytest.mark.parametrize("which", ["checkpoint", "shard", "config", "index"])
def test_fifo_in_place_of_a_file_is_refused_without_blocking(tiny_tensors, tmp_path, which):
    # Opening a FIFO for reading blocks until a writer appears: only a check before opening avoids the hang.
    if which == "checkpoint":
        path = str(tmp_path / "model.safetensors")
        os.mkfifo(path)
    elif which == "shard":
        path = sharded(tmp_path / "ckpt", tiny_tensors, lambda shard: shard)
        os.remove(os.path.join(path, "model-2.safetensors"))
        os.mkfifo(os.path.join(path, "model-2.safetensors"))
    elif which == "config":
        path = save_folder(tmp_path / "ckpt", tiny_tensors)
        os.mkfifo(os.path.join(path, "config.json"))
    else:
        path = str(tmp_path / "ckpt")
        os.makedirs(path)
        os.mkfifo(os.path.join(path, "model.safetensors.index.json"))
    with pytest.raises(CheckpointError, match="is not a regular file"):
        clip_edge.CLIP.from_checkpoint(path)
    with pytest.raises(CheckpointError, match="is not a regular file"):
        checkpoint_files.checkpoint_sha256(path) if which != "config" else checkpoints.read_checkpoint(path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_non_float_tensor_is_refused(tiny_tensors, tmp_path, dtype):
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    bad = dict(tiny_tensors, **{name: tiny_tensors[name].astype(dtype)})
    with pytest.raises(CheckpointError, match=rf"{name} has dtype {np.dtype(dtype).name}; weights must be floating"):
        clip_edge.CLIP.from_checkpoint(save_folder(tmp_path / "ckpt", bad))


def test_float16_and_float64_tensors_still_load(tiny_tensors, tmp_path):
    tensors = {name: value.astype(np.float16 if index % 2 else np.float64)
               for index, (name, value) in enumerate(sorted(tiny_tensors.items()))}
    clip_edge.CLIP.from_checkpoint(save_folder(tmp_path / "ckpt", tensors))


def hf_config(text=None, vision=None):
    return {"text_config": dict({"num_attention_heads": 2, "hidden_size": 64, "intermediate_size": 256},
                                **(text or {})),
            "vision_config": dict({"num_attention_heads": 4, "hidden_size": 64, "intermediate_size": 256},
                                  **(vision or {}))}


@pytest.mark.parametrize("config, problem", [
    (hf_config(text={"num_attention_heads": 0}), "0 text attention heads do not divide the text width 64"),
    (hf_config(text={"num_attention_heads": -2}), "-2 text attention heads"),
    (hf_config(vision={"num_attention_heads": 3}), "3 vision attention heads do not divide the vision width 64"),
    (hf_config(vision={"num_attention_heads": "4"}), "vision_config.num_attention_heads is '4', not an integer"),
    (hf_config(text={"num_attention_heads": True}), "not an integer"),
    (hf_config(text={"num_attention_heads": 2.0}), "not an integer"),
    (hf_config(text={"hidden_size": "64"}), "not an integer"),
    (hf_config(text={"layer_norm_eps": "1e-5"}), "layer_norm_eps is '1e-5'"),
    (hf_config(text={"layer_norm_eps": None}), "layer_norm_eps is None"),
    (hf_config(text={"layer_norm_eps": float("nan")}), "layer_norm_eps is nan"),  # json writes NaN, reads it back
    (hf_config(vision={"layer_norm_eps": float("inf")}), "layer_norm_eps is inf"),
    (hf_config(vision={"hidden_act": ["gelu"]}), "hidden_act"),
    ({"text_config": "big"}, "config text_config is a str, not an object"),
    ({"vision_config": [1]}, "config vision_config is a list"),
    ([1, 2], "config holds a JSON list, not an object"),
    ("3", "config holds a JSON int"),
    ("{not json", "unreadable config"),
    ("[" * 100_000 + "]" * 100_000, "unreadable config"),  # RecursionError inside json
    ("\udcff", "unreadable config"),  # invalid UTF-8 (written with surrogateescape below)
])
def test_malformed_config_is_named(tiny_tensors, tmp_path, config, problem):
    folder = save_folder(tmp_path / "ckpt", tiny_tensors)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(CheckpointError, match=problem) as error:
        clip_edge.CLIP.from_checkpoint(folder)
    assert os.path.join(folder, "") in str(error.value)


@pytest.mark.parametrize("index, problem", [
    ("{", "unreadable checkpoint index"),
    ("[]", "checkpoint index holds a JSON list"),
    ('{"weight_map": []}', "no weight_map"),
    ('{"weight_map": {}}', "no weight_map"),
    ('{"weight_map": {"a": 3}}', "names shard 3"),
    ('{"weight_map": {"a": null}}', "names shard None"),
    ('{"weight_map": {"a": ""}}', "names shard ''"),
    ('{"weight_map": {"a": ".."}}', "names shard '..'"),
    ('{"weight_map": {"a": "x.safetensors"}}', "shard x.safetensors is missing"),
    ('{"weight_map": {"a": "model.safetensors.index.json"}}', "unreadable safetensors file"),
])
def test_malformed_index_is_named(tmp_path, index, problem):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(index)
    with pytest.raises(CheckpointError, match=problem) as error:
        clip_edge.CLIP.from_checkpoint(str(folder))
    assert "model.safetensors.index.json" in str(error.value)


@pytest.mark.parametrize("name, value, problem", [
    ("text_model.embeddings.token_embedding.weight", np.array(1.0, np.float32), r"has shape \(\); expected 2"),
    ("vision_model.embeddings.patch_embedding.weight", np.zeros((64, 3, 16), np.float32), "expected 4"),
    ("vision_model.embeddings.position_embedding.weight", np.zeros((0, 64), np.float32), "non-empty"),
    ("vision_model.embeddings.position_embedding.weight", np.zeros((1, 64), np.float32), "square grid"),
    ("text_projection.weight", np.zeros((16, 0), np.float32), "non-empty"),
])
def test_misshapen_architecture_tensor_is_named(tiny_tensors, tmp_path, name, value, problem):
    bad = dict(tiny_tensors, **{name: value})
    with pytest.raises(CheckpointError, match=problem) as error:
        clip_edge.CLIP.from_checkpoint(save_folder(tmp_path / "ckpt", bad))
    assert name in str(error.value)


def test_checkpoint_without_layers_is_refused(tiny_tensors, tmp_path):
    kept = {k: v for k, v in tiny_tensors.items() if ".encoder.layers." not in k or k.startswith("vision")}
    with pytest.raises(CheckpointError, match="no text encoder layers"):
        clip_edge.CLIP.from_checkpoint(save_folder(tmp_path / "ckpt", kept))


def test_openai_layout_scalar_in_proj_is_named(tmp_path):
    path = tmp_path / "openai.safetensors"
    from safetensors.numpy import save_file

    save_file({"visual.conv1.weight": np.zeros((8, 3, 4, 4), np.float32),
               "transformer.resblocks.0.attn.in_proj_weight": np.zeros((), np.float32)}, str(path))
    with pytest.raises(CheckpointError, match="in_proj_weight has shape"):
        clip_edge.CLIP.from_checkpoint(str(path))


def test_attention_heads_must_be_positive():
    with pytest.raises(ValueError, match="not divisible by num_heads 0"):
        clip_edge.CLIP(**dict(TINY, transformer_heads=0))


# -- exporter flags --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, problem", [
    (dict(name="../x"), "export name '../x'.*must be a plain folder name"),
    (dict(name="."), "export name '.'"),
    (dict(name=".."), "export name '..'"),
    (dict(name="a/b"), "export name 'a/b'"),
    (dict(name=".hidden"), "export name '.hidden'"),
    (dict(variants=[]), r"--variants is empty; name at least one of \['float32'"),
    (dict(variants=["float32", "float32"]), "--variants lists float32 more than once"),
    (dict(threads=-5), "--threads must be an integer from 1 to 256, got -5"),
    (dict(threads=0), "--threads must be an integer from 1 to 256"),
    (dict(threads=100_000), "--threads must be an integer from 1 to 256, got 100000"),
    (dict(name="n" * 201), "export name 'n{200}'... \\(201 characters\\).* is 201 bytes; at most 200"),
])
def test_export_arguments_are_checked_before_anything_is_written(tmp_path, kwargs, problem):
    from converters import export

    output = tmp_path / "out"
    with pytest.raises(export.ExportError, match=problem):
        export.run_export("clip-vit-base-patch32", "random", str(output), **kwargs)
    assert sorted(os.listdir(tmp_path)) == []  # not even output_dir was created


FIVE_MB = "x" * 5_000_000


@pytest.mark.parametrize("call", [
    lambda export, tmp: export.run_export(FIVE_MB, "random", str(tmp / "out")),
    lambda export, tmp: export.run_export(None, FIVE_MB, str(tmp / "out")),
    lambda export, tmp: export.run_export(None, str(tmp), str(tmp / "out"), name=FIVE_MB),
    lambda export, tmp: export.run_export(None, str(tmp), str(tmp / FIVE_MB[:300]), name="n"),
    lambda export, tmp: export.run_export(None, str(tmp), str(tmp / "out"), name="n", variants=[FIVE_MB]),
    lambda export, tmp: export.run_export(None, str(tmp), str(tmp / "out"), name="n", int8_recipes={"text": FIVE_MB}),
    lambda export, tmp: __import__("converters.delegate_check").delegate_check.check(str(tmp), FIVE_MB, None),
])
def test_errors_quote_an_excerpt_of_a_huge_value_not_all_of_it(tmp_path, call):
    """A 5 MB preset name, checkpoint path, --name, --variants entry, recipe or delegate target is refused with
    a message that quotes its first characters and says how long it is (they came back whole before)."""
    from converters import export

    with pytest.raises((export.ExportError, ValueError)) as raised:
        call(export, tmp_path)
    message = str(raised.value)
    # The excerpt, not the value: at most 200 of its characters (the rest of the message lists the valid choices).
    assert FIVE_MB[:201] not in message and len(message) < 2000, message[:600]
    assert "5,000,000 characters" in message or "File name too long" in message, message[:600]


def test_export_output_dir_that_is_a_file_is_refused(tmp_path):
    from converters import export

    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(export.ExportError, match="--output_dir .*a_file' exists and is not a directory"):
        export.run_export("clip-vit-base-patch32", "random", str(target))
    with pytest.raises(export.ExportError, match="cannot create --output_dir .*a_file/sub': Not a directory"):
        export.run_export("clip-vit-base-patch32", "random", str(target / "sub"))
    assert target.read_text() == "keep me"


def test_export_weights_path_of_the_current_folder_is_named_after_it(tmp_path, monkeypatch):
    # --weights=. without --name: the export is named after the folder, not "." (a stray folder).
    from converters import export

    folder = tmp_path / "my_checkpoint"
    folder.mkdir()
    monkeypatch.chdir(folder)
    with pytest.raises(export.ExportError, match="stage 'load model' failed"):
        export.run_export(None, ".", str(tmp_path / "out"), variants=["float32"])
    assert os.listdir(tmp_path / "out") == []  # the work folder .my_checkpoint.tmp-PID was removed again


# -- the exporter replaces only what it wrote ---------------------------------------------------------------------


def _files(folder):
    """{path relative to folder: bytes} of every file below it (symlinks as their target's text)."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, folder)
            found[relative] = os.readlink(path).encode() if os.path.islink(path) else open(path, "rb").read()
    return found


def _user_checkpoint(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"user": "data"}')
    (folder / "model.safetensors").write_bytes(b"the user's only copy")
    return folder


@pytest.mark.parametrize("case", ["weights_are_the_target", "weights_inside_the_named_target",
                                  "calibration_inside_the_target", "labels_inside_the_rejected_target"])
def test_export_refuses_inputs_inside_what_it_replaces(tmp_path, case):
    from converters import export

    out = tmp_path / "out"
    weights, kwargs, problem = str(_user_checkpoint(out / "tiny")), {}, "--weights .*tiny is inside .*out/tiny,"
    if case == "weights_inside_the_named_target":
        weights = str(_user_checkpoint(out / "models" / "checkpoint"))
        kwargs, problem = {"name": "models"}, "--weights .*checkpoint is inside .*out/models,"
    elif case == "calibration_inside_the_target":
        weights, kwargs = "random", {"calibration_images": str(out / "tiny")}
        problem = "--calibration_images .*tiny is inside .*out/tiny,"
    elif case == "labels_inside_the_rejected_target":
        weights, kwargs = "random", {"zero_shot_labels": str(out / "tiny.rejected" / "labels.txt")}
        (out / "tiny.rejected").mkdir()
        (out / "tiny.rejected" / "labels.txt").write_text("cat\ndog\n")
        problem = "--zero_shot_labels .*labels.txt is inside .*out/tiny.rejected,"
    before = _files(out)
    with pytest.raises(export.ExportError, match=problem + " which the export replaces"):
        export.run_export("clip-vit-base-patch32" if weights == "random" else None, weights, str(out),
                          name=kwargs.pop("name", "tiny"), **kwargs)
    assert _files(out) == before and sorted(os.listdir(out)) == sorted({p.split(os.sep)[0] for p in before})


def test_export_command_line_refuses_to_replace_its_own_checkpoint(tmp_path):
    """The reported case: --weights=OUT/tiny --output_dir=OUT names the export tiny, as the checkpoint's folder."""
    import subprocess
    import sys

    out = tmp_path / "out"
    _user_checkpoint(out / "tiny")
    before = _files(out)
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.run([sys.executable, "-m", "converters.export", f"--weights={out / 'tiny'}",
                              f"--output_dir={out}"], cwd=repository, capture_output=True, text=True, timeout=600)
    assert process.returncode == 1, process.stderr[-3000:]
    assert f"--weights {out / 'tiny'} is inside {out / 'tiny'}, which the export replaces" in process.stderr
    assert _files(out) == before


@pytest.mark.parametrize("what", ["user_folder", "regular_file", "symlink", "user_rejected_folder"])
def test_export_refuses_to_replace_what_is_not_an_export(tmp_path, what):
    from converters import export

    out = tmp_path / "out"
    out.mkdir()
    name = "tiny.rejected" if what == "user_rejected_folder" else "tiny"
    if what in ("user_folder", "user_rejected_folder"):
        (out / name).mkdir()
        (out / name / "notes.txt").write_text("mine")
        (out / name / "manifest.json").write_text('{"not": "an export manifest"}')
    elif what == "regular_file":
        (out / name).write_text("mine")
    else:
        (out / name).symlink_to(_user_checkpoint(tmp_path / "elsewhere"))
    kind = {"regular_file": "a file", "symlink": "an entry"}.get(what, "a folder")
    before = _files(out)
    with pytest.raises(export.ExportError, match=f"out/{re.escape(name)} is {kind} that is not an export of clip_edge"):
        export.run_export("clip-vit-base-patch32", "random", str(out), name="tiny")
    assert _files(out) == before and sorted(os.listdir(out)) == [name]


def test_stale_folder_cleanup_touches_only_what_the_exporter_left(tmp_path):
    """A user's folders named like the exporter's temporary ones are kept; the exporter's own are removed, and a
    replaced export left aside by a kill is put back."""
    from converters import export

    out = tmp_path / "out"
    users = [out / ".tiny.old-mybackup", out / ".tiny.tmp-999999999", out / ".tiny.old-xyz"]
    for folder in users:
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("mine")
    (out / ".tiny.old-xyz" / "previous").mkdir()  # a "previous" that is not an export
    killed_work = out / ".tiny.tmp-999999998"
    (killed_work / "saved_model").mkdir(parents=True)
    (killed_work / "saved_model" / "saved_model.pb").write_bytes(b"half written")
    replaced = out / ".tiny.old-abc123" / "previous"
    replaced.mkdir(parents=True)
    (replaced / "manifest.json").write_text(json.dumps({"name": "tiny", "saved_model": {}, "artifacts": []}))
    before = _files(out)
    with pytest.raises(export.ExportError, match="stage 'load model' failed"):
        export.run_export(None, str(tmp_path / "missing"), str(out), name="tiny", variants=["float32"])
    assert sorted(os.listdir(out)) == sorted([".tiny.old-mybackup", ".tiny.old-xyz", ".tiny.tmp-999999999", "tiny"])
    kept = {p: data for p, data in before.items() if p.split(os.sep)[0] in os.listdir(out)}
    assert _files(out) == {**kept, "tiny/manifest.json": before[".tiny.old-abc123/previous/manifest.json"]}


@pytest.mark.parametrize("flag_args, message", [
    (["--threads=-5"], "flag --threads=-5: -5 is not an integer in the range [1, 256]"),
    (["--threads=100000"], "flag --threads=100000: 100000 is not an integer in the range [1, 256]"),
    (["--variants="], "export failed: --variants is empty"),
    (["--name=../x"], "export failed: export name '../x'"),
])
def test_export_command_line_rejects_bad_flags_in_one_line(tmp_path, flag_args, message):
    import subprocess
    import sys

    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "converters.export", "--preset=clip-vit-base-patch32", "--weights=random",
         f"--output_dir={tmp_path / 'out'}", *flag_args],
        cwd=repository, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=repository))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "out")


# -- files that are not regular files: FIFOs, devices, folders -------------------------------------------------

@contextlib.contextmanager
def fails_instead_of_hanging(seconds=60):
    """A regression that blocks (opening a FIFO waits for a writer) raises TimeoutError here instead of hanging
    the suite: the alarm's exception interrupts the blocked open()."""
    def hang(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_special(kind, path):
    """A FIFO, a link to /dev/zero (endless) or a folder at `path`."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    else:
        os.mkdir(path)


@pytest.mark.parametrize("which", ["labels", "templates"])
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder"])
def test_zero_shot_files_that_are_not_regular_files_are_refused(tmp_path, which, kind):
    from converters import export, zero_shot

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    files = {"labels": inputs / "labels.txt", "templates": inputs / "templates.txt"}
    files["labels"].write_text("cat\ndog\n")
    files["templates"].write_text("a photo of a {}.\n")
    files[which].unlink()
    make_special(kind, files[which])
    with fails_instead_of_hanging(), pytest.raises(
            zero_shot.ZeroShotInputError,
            match=f"^{re.escape(str(files[which]))}: the {which} file is not a regular file"):
        export.run_export(None, str(tmp_path / "no-checkpoint"), str(tmp_path / "out"),
                          zero_shot_labels=str(files["labels"]), zero_shot_templates=str(files["templates"]))
    assert sorted(os.listdir(tmp_path)) == ["inputs"]  # nothing written


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder", "too_large"])
def test_calibration_photo_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, kind):
    # It used to hang (FIFO) or fill memory (/dev/zero) in the calibration stage, after the SavedModel.
    from converters import export


    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photos.encoded("coffee", "JPEG"))
    bad = folder / "b.jpg"
    if kind == "too_large":
        with open(bad, "wb") as file:
            file.truncate(100_000_001)  # sparse: no disk used
        problem = "100,000,001 bytes; a photo has at most 100,000,000"
    else:
        make_special(kind, bad)
        problem = r"not a regular file \(a FIFO, device or folder\)"
    with fails_instead_of_hanging(), pytest.raises(
            export.ExportError, match=f"^--calibration_images {re.escape(str(bad))}: {problem}$"):
        export.run_export(None, str(tmp_path / "no checkpoint needed"), str(tmp_path / "out"),
                          variants=("float32",), calibration_images=str(folder))
    assert sorted(os.listdir(tmp_path)) == ["photos"]  # refused before any work


# -- hub without network -----------------------------------------------------------------------------------------

def test_unreachable_hub_is_asked_once_not_retried(tmp_path):
    # A loopback port that accepts and hangs up at once: a network error on every request, and countable.
    # huggingface_hub alone retries such errors for ~23 s per file; the count measures that without a clock.
    import socket
    import subprocess
    import sys
    import textwrap
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    connections = []

    def hang_up():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(connection.getpeername())
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{listener.getsockname()[1]}", HF_HOME=str(tmp_path),
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="*")
    env.pop("HF_HUB_OFFLINE", None)
    script = """
        from clip_edge import hub
        hub.download_preset("clip-vit-base-patch32")
    """
    try:
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True,
                                text=True, timeout=600)
    finally:
        listener.close()
    assert result.returncode != 0
    assert ("could not download openai/clip-vit-base-patch32 for preset 'clip-vit-base-patch32' (the hub did not "
            "answer and huggingface_hub's cache does not hold the files)") in result.stderr
    assert "weights=<path" in result.stderr
    assert len(connections) == 1, f"{len(connections)} connections: the download retried"


# -- images: declared sizes of every frame, BMP headers, which image in a batch failed ---------------------------


def graph_error_text(error):
    """A TensorFlow assertion's message without the brackets around each of its data."""
    return re.sub(r"[\[\]]", "", error.message)


@pytest.fixture(scope="module")
def preprocessor():
    # One instance for the module: its tf.functions are traced once, and it outlives each call (a tf.function
    # method holds its instance only weakly, so a temporary one can be collected while it runs).
    from clip_edge.preprocessing import ImagePreprocessor

    return ImagePreprocessor(224)


@pytest.mark.parametrize("frames, problem", [
    ([(0, 0, 24_000, 24_000)], "is larger than 100 megapixels: height 24000 width 24000"),  # 10x10 screen
    ([(0, 0, 10, 10), (0, 0, 24_000, 24_000)], "is larger than 100 megapixels"),  # a later frame
    ([(0, 0, 10, 10), (65_000, 0, 1_000, 10)], "has a side longer than 65535 pixels"),  # placed far outside
    ([(0, 0, 9_000, 9_000)] * 4, "is a GIF whose frames hold 324000000 pixels in all"),  # each one allowed
])
def test_every_gif_frame_size_is_checked_before_decoding(frames, problem, preprocessor):
    encoded = photos.gif_with_frames((10, 10), frames)
    with pytest.raises(ValueError, match=f"image 1 {problem}"):
        preprocessor.load([photos.gif_with_frames((10, 10), [(0, 0, 10, 10)]), encoded])
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        preprocessor.from_encoded(tf.constant([photos.gif_with_frames((10, 10), [(0, 0, 10, 10)]), encoded]))
    assert re.search(f"image 1 {problem}", graph_error_text(error.value)), error.value.message


def test_huge_claims_are_refused_within_a_small_heap(tmp_path):
    """Headers that claim gigabytes of pixels are refused before anything is decoded: in 1.5 GB of heap, enough for
    TensorFlow and far from the 11 GB (GIF), 10.8 GB (JPEG) and 4.8 GB (PNG) that decoding them would take."""

    claims = [photos.gif_with_frames((10, 10), [(0, 0, 24_000, 24_000)]), photos.jpeg_claiming_size(60_000, 60_000),
              photos.png_claiming_size(40_000, 40_000)]
    paths = []
    for number, data in enumerate(claims):
        paths.append(tmp_path / f"claim{number}")
        paths[-1].write_bytes(data)
    result = run_limited("""
        import sys
        from clip_edge.preprocessing import ImagePreprocessor
        preprocessor = ImagePreprocessor(224)
        for path in sys.argv[1:]:
            try:
                preprocessor.load([open(path, "rb").read()])
            except ValueError as error:
                print("refused:", error)
    """, memory_bytes=1_500_000_000, args=[str(p) for p in paths])
    assert result.stdout.count("refused: image 0 is larger than 100 megapixels") == 3, result.stderr[-2000:]


def test_small_gif_built_here_decodes(preprocessor):
    # The builder above writes a decodable file: the refusals are for the sizes, not for a broken file.
    pixels = preprocessor.load([photos.gif_with_frames((10, 10), [(0, 0, 10, 10)])])
    assert pixels.shape == (1, 224, 224, 3)


def bmp_with(field_offset, value, mode="P"):
    import struct


    data = bytearray(photos.encoded("tiny", "BMP", mode))
    data[field_offset:field_offset + 4] = struct.pack("<I", value)
    return bytes(data)


@pytest.mark.parametrize("encoded, problem", [
    (bmp_with(14, 200), "is a BMP with an info header of 200 bytes"),  # Pillow: Unsupported BMP header type
    (bmp_with(14, 41), "is a BMP with an info header of 41 bytes"),
    (bmp_with(14, 12), "is a BMP with an info header of 12 bytes"),  # OS/2 1.x: TensorFlow misreads it
    (bmp_with(14, 1_000_000), "is a BMP with an info header of 1000000 bytes"),
    (bmp_with(30, 1), r"is a compressed BMP \(compression type 1 \)"),
    (bmp_with(30, 3, "RGBA"), r"is a compressed BMP \(compression type 3 \)"),
    (bmp_with(10, 20), r"is a BMP whose pixel data \(at byte 20 \) overlaps its header"),
])
def test_bmp_that_pillow_reads_otherwise_is_refused(encoded, problem, preprocessor):
    from PIL import Image

    with pytest.raises(ValueError, match=f"image 0 {problem}"):
        preprocessor.load([encoded])
    # Pillow does not give these pixels either: it refuses the file or reads it differently from TensorFlow.
    try:
        Image.open(io.BytesIO(encoded)).convert("RGB")
    except (OSError, ValueError, SyntaxError):
        pass
    else:
        assert problem.startswith("is a compressed") or "overlaps" in problem


def test_bmp_header_sizes_pillow_reads_still_decode_as_pillow_does(preprocessor):
    from PIL import Image

    for size in (40, 52, 56, 64):
        encoded = bmp_with(14, size)
        ours = preprocessor.load([encoded])
        pillow = preprocessor.load([np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))])
        np.testing.assert_array_equal(ours, pillow)


@pytest.mark.parametrize("position", [0, 2])
def test_batch_decoder_error_names_the_image(position, tmp_path, preprocessor):
    import tensorflow as tf


    good = photos.encoded("tiny", "PNG")
    batch = [good, good, good]
    batch[position] = photos.encoded("chelsea", "PNG")[:200]  # a valid header, truncated data
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        preprocessor.from_encoded(tf.constant(batch))
    assert f"image {position} cannot be decoded: corrupt or truncated PNG data" in graph_error_text(error.value)
    # The same through a saved and reloaded module, as the SavedModel's encode_image runs it.
    tf.saved_model.save(preprocessor, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.from_encoded(tf.constant(batch))
    assert f"image {position} cannot be decoded" in graph_error_text(error.value)
    good_only = loaded.from_encoded(tf.constant([good, good])).numpy()
    np.testing.assert_array_equal(good_only, preprocessor.from_encoded(tf.constant([good, good])).numpy())
    assert loaded.from_encoded(tf.constant([], tf.string)).shape == (0, 224, 224, 3)


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("kept", [300, 0.5])  # cut within the header (libjpeg cannot read the size); in the data
def test_batch_names_a_truncated_jpeg_wherever_it_is(position, kept, preprocessor):
    import tensorflow as tf


    good = photos.encoded("tiny", "JPEG")
    whole = photos.encoded("chelsea", "JPEG")
    batch = [good, good, good]
    batch[position] = whole[: kept if isinstance(kept, int) else int(len(whole) * kept)]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        preprocessor.from_encoded(tf.constant(batch))
    assert f"image {position} cannot be decoded: corrupt or truncated JPEG data" in graph_error_text(error.value)


# -- the cost of a text ------------------------------------------------------------------------------------------


def _long_texts():
    """Texts whose words reach past the tokenizer's byte budget ((77 - 2) x 32 = 2,400 bytes of words), built
    from a fixed seed: words longer than the cut at 4,800 bytes, words straddling the budget, many short words."""
    import random

    rng = random.Random(10)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word(length, alphabet=letters):
        return "".join(rng.choice(alphabet) for _ in range(length))

    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]
    return [
        word(3_000),  # one word past the budget, not cut
        word(5_200),  # one word cut at 4,800 bytes
        " ".join(word(rng.randint(1, 12)) for _ in range(60)) + " " + word(5_000),  # straddles the budget
        "😍" * 1_300,  # the longest tokens (32 bytes): 75 of them fill the budget exactly
        "😍😍😍😍😍😍😍😍 " * 74 + word(4_000),  # a long word starting 32 bytes before the budget
        "".join(rng.choice(cjk) for _ in range(1_700)),  # 3-byte characters, 5,100 bytes in one word
        "a " * 5_000,  # many one-letter words
        "1234567890" * 300,  # digits: one word each
        "\n".join(word(rng.randint(200, 900)) for _ in range(8)),  # long words on several lines
        "Ã©" * 1_500 + " " + word(4_000),  # mojibake repaired before the words are cut
        " ".join(word(rng.randint(1, 30)) for _ in range(3_000)),  # 50 KB of words
    ]


@pytest.fixture(scope="module")
def tokenizer():
    from clip_edge.tokenizer import CLIPTokenizer

    return CLIPTokenizer.from_openai_vocabulary()


def test_long_texts_tokenize_as_openai_does(tokenizer):
    from tests import reference

    texts = _long_texts()
    ours = tokenizer(texts)["token_ids"].numpy()
    theirs = reference.reference_token_ids(texts)
    for index, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_array_equal(mine, expected, err_msg=f"text {index}: {texts[index][:40]!r}...")


def test_long_texts_tokenize_as_openai_does_with_a_short_context():
    from clip_edge.tokenizer import CLIPTokenizer

    from tests import reference

    texts = _long_texts()
    ours = CLIPTokenizer.from_openai_vocabulary(context_length=20)(texts)["token_ids"].numpy()
    np.testing.assert_array_equal(ours, reference.reference_token_ids(texts, context_length=20))


def test_work_per_text_is_bounded_before_bpe(tokenizer):
    # Structural, not timed: whatever the text, at most context_length - 2 words of at most 2 x budget bytes in
    # all reach BPE (whose cost grows with the square of a word's length).
    import tensorflow as tf

    budget = 75 * 32
    texts = tf.constant(["x" * 1_000_000, "a " * 500_000, "ab " * 10 + "q" * 100_000, ""])
    words = tokenizer._words_that_can_be_kept(tokenizer._words(tokenizer.cleaner.clean(texts)))
    assert words.row_lengths().numpy().tolist() == [1, 75, 11, 0]
    assert tf.reduce_sum(tf.strings.length(words.flat_values)).numpy() <= 3 * 2 * budget
    assert tf.strings.length(words[0][0]).numpy() == 2 * budget
    assert tf.strings.length(words[2][10]).numpy() == 2 * budget - 20  # cut where the row's words reach 4,800


def test_megabyte_without_spaces_gives_the_tokens_of_its_start(tokenizer):
    # A 1 MB word (minutes of BPE before the bound) is cut like the 5,200-byte word the reference agrees on.
    text = _long_texts()[1]
    ids = tokenizer([text * 200, text])["token_ids"].numpy()
    np.testing.assert_array_equal(ids[0], ids[1])


# -- the size of a request ---------------------------------------------------------------------------------------

LARGE_REQUEST = """
import json, resource, sys
import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401

model = tf.saved_model.load(sys.argv[1])
texts = [f"caption {i}: " + "a photo of a long caption " * 14 for i in range(3_000)]  # all 77 tokens
png = tf.io.encode_png(tf.zeros([40, 30, 3], tf.uint8))[None]
if sys.argv[2] == "encode_text":
    def call(texts):
        return model.signatures["encode_text"](texts=tf.constant(texts))["embeddings"].numpy()
else:  # the texts as serving_default's labels: [1 image, N labels]
    def call(texts):
        return model.signatures["serving_default"](images=png, texts=tf.constant(texts))["image_logits"].numpy().T
small = call(texts[:100])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
found = call(texts)
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({"growth": growth, "rows": len(found), "difference": float(np.abs(found[:100] - small).max())}))
"""


def test_signatures_embed_a_large_request_in_bounded_memory(small_export):
    """3,000 texts in one encode_text call, or as serving_default's labels: the signatures embed them a chunk at a
    time (converters.serving.CHUNK), so memory does not grow with the request (before: 2.8 GB more for this small
    model's 10,000 texts, over 6 GB for clip-vit-base-patch32's; 3,000 keep the test short, and at the same
    bytes per text would take about 0.8 GB unchunked), and the rows are those of a small request."""
    import subprocess
    import sys

    for signature in ("encode_text", "serving_default"):  # a process each: ru_maxrss only rises
        result = subprocess.run([sys.executable, "-c", LARGE_REQUEST, os.path.join(small_export, "saved_model"),
                                 signature], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["rows"] == 3_000, (signature, report)
        assert report["growth"] < 200 * 2**20, (signature, report)
        assert report["difference"] < 1e-5, (signature, report)
