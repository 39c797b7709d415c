"""from_preset(weights="hub") against a local HTTP server on loopback that serves a Hugging Face file layout."""

import collections
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import clip_edge
from tests import reference

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "openai/clip-vit-base-patch32"
WEIGHTS = "model.safetensors"


def _commit(revision):
    """The commit the server reports for a revision: the revision itself when it is a commit hash, COMMIT for
    "main", and one of its own for each scenario below (so each fills its own snapshot folder)."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    return COMMIT if revision == "main" else hashlib.sha1(revision.encode()).hexdigest()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Answers /{repo}/resolve/{revision}/{file} the way the hub does: the file with its commit (X-Repo-Commit)
    and ETag, and for weight files, which the hub keeps in Git LFS, the LFS object id (the sha256) and size as
    X-Linked-Etag and X-Linked-Size. The revision picks a failure instead:
    missing (no weight file), server-error (500 for the weight file), no-lfs (a weight file with only a git
    ETag), truncated (the weight file's connection cut halfway), corrupt (other bytes than the hub lists),
    sharded (an index and shards instead of model.safetensors)."""

    files = {}  # file name -> bytes, the repository
    sharded = {}  # file name -> bytes, the same checkpoint in shards
    requests = []  # (repo, revision, file name)

    def _respond(self, with_body):
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
        if not match:
            return self._status(404, "RepoNotFound")
        repo, revision, name = match.groups()
        self.requests.append((repo, revision, name))
        files = self.sharded if revision == "sharded" else self.files
        body = files.get(name)
        if body is None or (revision == "missing" and name == WEIGHTS):
            return self._status(404, "EntryNotFound")
        if revision == "server-error" and name == WEIGHTS:
            return self._status(500, None)
        lfs = name.endswith(".safetensors") and revision != "no-lfs"
        self.send_response(200)
        self.send_header("X-Repo-Commit", _commit(revision))
        git_blob_sha1 = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest() if lfs else git_blob_sha1}"')
        if lfs:
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(body)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not with_body:
            return
        if revision == "truncated" and name == WEIGHTS:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if revision == "corrupt" and name == WEIGHTS:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]  # same size, one byte off
        self.wfile.write(body)

    def _status(self, code, error_code):
        self.send_response(code)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self._respond(with_body=False)

    def do_GET(self):  # noqa: N802
        self._respond(with_body=True)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub_repo")
    config = reference.hf_clip_config(64, 2, 4, 8, 32, 64, 2, 4, 32)
    model = reference.random_hf_clip(config)
    model.save_pretrained(folder)
    sharded = tmp_path_factory.mktemp("hub_repo_sharded")
    model.save_pretrained(sharded, max_shard_size="200KB")
    _HubHandler.files = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    _HubHandler.sharded = {name: (sharded / name).read_bytes() for name in os.listdir(sharded)}
    assert WEIGHTS not in _HubHandler.sharded and len(_HubHandler.sharded) > 3
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()


def _run(script, endpoint, cache, extra_env=None):
    """Run in a fresh process: huggingface_hub reads HF_ENDPOINT when it is imported. Proxies are dropped, as
    they would be asked for the loopback address. From the repository's root, where `converters` is importable
    (the package installs it only as clip_edge.converters)."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(cache), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5",
               HF_HUB_DOWNLOAD_TIMEOUT="5", NO_PROXY="*")
    env.pop("HF_HUB_OFFLINE", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _vision_width(local):
    """The image tower's width of the checkpoint downloaded to `local`, loaded in this process: loading needs no
    hub, and the scripts that only download then import no TensorFlow (about 4 s in each of their processes)."""
    return clip_edge.CLIP.from_checkpoint(local).get_config()["vision_width"]


def _cached_files(cache):
    return sorted(os.path.relpath(os.path.join(folder, name), cache)
                  for folder, _, names in os.walk(cache) for name in names)


def test_download_preset_fetches_repository_into_cache(hub, tmp_path):
    endpoint, folder = hub
    _HubHandler.requests.clear()
    result = _run("""
        import json, os
        import clip_edge
        from clip_edge import checkpoint_files, hub
        local = hub.download_preset("clip-vit-base-patch32")
        pinned = hub.download_preset("clip-vit-large-patch14")
        # A cached file that changed on disk is caught the next time, removed, and then downloaded again.
        blob = os.path.realpath(os.path.join(local, "model.safetensors"))
        with open(blob, "r+b") as file:
            file.write(b"{{")
        try:
            hub.download_preset("clip-vit-base-patch32")
            changed = "no error"
        except checkpoint_files.CheckpointError as error:
            changed = str(error)
        removed = not os.path.exists(blob)
        again = hub.download_preset("clip-vit-base-patch32")
        print(json.dumps({"local": local, "pinned": pinned,
                          "sha256": checkpoint_files.weight_files_sha256(local),
                          "changed": changed, "removed": removed, "again": again,
                          "revisions": {name: entry["hf_revision"] for name, entry in clip_edge.PRESETS.items()}}))
    """, endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["local"].startswith(str(tmp_path)) and out["local"].endswith(COMMIT)
    assert _vision_width(out["local"]) == 64
    for name in ("config.json", WEIGHTS):
        assert open(os.path.join(out["local"], name), "rb").read() == (folder / name).read_bytes()
    assert out["sha256"] == {WEIGHTS: hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()}
    # Each preset's files are asked for at its revision; a pinned commit is its own snapshot folder.
    asked = {(repo, revision) for repo, revision, _ in _HubHandler.requests}
    assert asked == {(REPO, out["revisions"]["clip-vit-base-patch32"]),
                     ("openai/clip-vit-large-patch14", out["revisions"]["clip-vit-large-patch14"])}
    assert os.path.basename(out["pinned"]) == out["revisions"]["clip-vit-large-patch14"]
    assert "model.safetensors has sha256" in out["changed"] and out["removed"] and out["again"] == out["local"]

    # Offline, the same cache serves, checked against the sha256 huggingface_hub filed the blob under; a blob
    # that no longer matches it is refused and removed.
    result = _run("""
        import os
        from clip_edge import hub
        local = hub.download_preset("clip-vit-base-patch32")
        print(local)
        with open(os.path.realpath(os.path.join(local, "model.safetensors")), "r+b") as file:
            file.write(b"{{")
        hub.download_preset("clip-vit-base-patch32")
    """, "http://127.0.0.1:9", tmp_path, {"HF_HUB_OFFLINE": "1"})
    assert result.stdout.strip().splitlines()[-1] == out["local"], result.stderr[-3000:]
    assert result.returncode != 0 and "model.safetensors has sha256" in result.stderr
    assert not os.path.lexists(os.path.join(out["local"], WEIGHTS))


def test_export_records_hub_commit_and_weight_hashes(hub, tmp_path):
    """The weights source that goes into manifest.json (the model build is stubbed: the served checkpoint is
    a small model, not the preset's architecture)."""
    endpoint, folder = hub
    result = _run("""
        import json
        import types
        import clip_edge
        from converters import export
        clip_edge.CLIP = types.SimpleNamespace(from_preset=lambda preset, weights: weights)  # no TensorFlow import
        local, source = export._resolve_model("clip-vit-base-patch32", "hub")
        print(json.dumps(source))
    """, endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    source = json.loads(result.stdout.strip().splitlines()[-1])
    assert source == {"kind": "hub", "repository": REPO, "revision": COMMIT,
                      "sha256": {WEIGHTS: hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()}}


def test_hub_checkpoint_of_other_architecture_is_refused(hub, tmp_path):
    endpoint, _ = hub
    result = _run("""
        import clip_edge
        clip_edge.CLIP.from_preset("clip-vit-base-patch32")
    """, endpoint, tmp_path)
    assert result.returncode != 0
    assert "does not match preset 'clip-vit-base-patch32'" in result.stderr


def test_failed_downloads_are_refused_and_leave_nothing_behind(hub, tmp_path):
    """Each failure ends in a CheckpointError naming the repository (and the file where one is at fault) after a
    bounded number of requests (no retry loop), without a partial or wrong file in huggingface_hub's cache;
    nothing is loaded."""
    endpoint, folder = hub
    _HubHandler.requests.clear()
    result = _run("""
        import json
        import time
        import clip_edge
        from clip_edge import checkpoint_files, checkpoints, hub
        # huggingface_hub waits 1, 2, 4, 8 and 8 s between its retries of a file; what is checked is their number.
        time.sleep = lambda seconds: None
        outcomes = {}
        for revision in ("missing", "server-error", "no-lfs", "truncated", "corrupt"):
            try:
                hub.download_preset("clip-vit-base-patch32", revision=revision)
                outcomes[revision] = ["no error"]
            except checkpoint_files.CheckpointError as error:
                outcomes[revision] = [str(error)]
        # Through from_preset: the corrupted file is refused before anything is loaded.
        loaded = []
        checkpoints.load_into = lambda *args, **kwargs: loaded.append(args)
        clip_edge.PRESETS["clip-vit-base-patch32"]["hf_revision"] = "corrupt"
        try:
            clip_edge.CLIP.from_preset("clip-vit-base-patch32")
        except checkpoint_files.CheckpointError as error:
            outcomes["from_preset"] = [str(error), len(loaded)]
        print(json.dumps(outcomes))
    """, endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for revision, (message, *_) in outcomes.items():
        if revision != "from_preset":
            # Work bounded by a count, not a clock: per file at most huggingface_hub's metadata and content
            # requests (3) plus its own retries of a 5xx answer or a cut connection (5, http_backoff's
            # max_retries), so no retry loop of ours on top (measured: 7 for server-error and truncated, 3 for
            # the others; test_hostile_inputs counts the connections of an unreachable hub too).
            asked = collections.Counter(name for _, at, name in _HubHandler.requests if at == revision)
            assert max(asked.values()) <= 3 + 5, (revision, asked)
            assert message.startswith(f"could not download {REPO}") or message.startswith(f"{REPO} at {revision}"), \
                message
    assert "EntryNotFound" in outcomes["missing"][0] and "model.safetensors.index.json" in outcomes["missing"][0]
    assert "500" in outcomes["server-error"][0], json.dumps(outcomes, indent=1)
    assert "gives no sha256 for model.safetensors" in outcomes["no-lfs"][0]
    assert "could not download" in outcomes["truncated"][0]
    expected = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    corrupt = outcomes["corrupt"][0]
    assert f"{REPO} at corrupt: model.safetensors has sha256 " in corrupt and f"the hub lists {expected}" in corrupt
    assert outcomes["from_preset"] == [corrupt, 0]
    # Only the small files stay: no weight file, no partial download (*.incomplete), no dangling link.
    left = _cached_files(tmp_path)
    assert not [name for name in left if WEIGHTS in name or "incomplete" in name], left
    assert all(os.path.exists(os.path.join(tmp_path, name)) for name in left)
    assert {os.path.basename(name) for name in left if "/snapshots/" in name} == {"config.json"}


def test_sharded_repository_is_downloaded_and_verified(hub, tmp_path):
    endpoint, folder = hub
    result = _run("""
        import json
        from clip_edge import checkpoint_files, hub
        local = hub.download_preset("clip-vit-base-patch32", revision="sharded")
        print(json.dumps({"local": local, "sha256": checkpoint_files.weight_files_sha256(local)}))
    """, endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    shards = {name: hashlib.sha256(body).hexdigest() for name, body in _HubHandler.sharded.items()
              if name.endswith(".safetensors")}
    assert out["sha256"] == shards and _vision_width(out["local"]) == 64


def test_offline_fails_at_once_naming_alternatives(tmp_path):
    for extra_env, endpoint in (({"HF_HUB_OFFLINE": "1"}, "http://127.0.0.1:9"),  # offline mode, empty cache
                                ({}, "http://127.0.0.1:9")):  # nothing listens on port 9
        # That nothing is retried is counted in test_hostile_inputs.test_unreachable_hub_is_asked_once_not_retried.
        result = _run("""
            import clip_edge
            clip_edge.CLIP.from_preset("clip-vit-base-patch32")
        """, endpoint, tmp_path, extra_env)
        assert result.returncode != 0
        assert "could not download openai/clip-vit-base-patch32" in result.stderr
        assert "weights=<path" in result.stderr and "load_weights=False" in result.stderr
