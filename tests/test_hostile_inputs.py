"""Inputs an attacker would craft: each test builds its malformed file itself and expects a clear error that
names the file, tensor or item (never a crash, a hang, a heap read or a huge allocation)."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import clip_edge
from clip_edge import checkpoints
from clip_edge.checkpoints import CheckpointError
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
        checkpoints.checkpoint_sha256(folder)


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
        checkpoints.checkpoint_sha256(path) if which != "config" else checkpoints.read_checkpoint(path)


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
    return {"text_config": dict({"num_attention_heads": 2, "hidden_size": 64, "intermediate_size": 256}, **(text or {})),
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
    (dict(threads=-5), "--threads must be a positive integer, got -5"),
    (dict(threads=0), "--threads must be a positive integer"),
])
def test_export_arguments_are_checked_before_anything_is_written(tmp_path, kwargs, problem):
    from converters import export

    output = tmp_path / "out"
    with pytest.raises(export.ExportError, match=problem):
        export.run_export("clip-vit-base-patch32", "random", str(output), **kwargs)
    assert sorted(os.listdir(tmp_path)) == []  # not even output_dir was created


def test_export_output_dir_that_is_a_file_is_refused(tmp_path):
    from converters import export

    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(export.ExportError, match="--output_dir .*a_file exists and is not a directory"):
        export.run_export("clip-vit-base-patch32", "random", str(target))
    with pytest.raises(export.ExportError, match="cannot create --output_dir .*a_file/sub: Not a directory"):
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


@pytest.mark.parametrize("flag_args, message", [
    (["--threads=-5"], "flag --threads=-5: -5 is not a positive integer"),
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
        from clip_edge import checkpoints
        checkpoints.download_preset("clip-vit-base-patch32")
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
