"""from_preset(weights="hub") against a local HTTP server on loopback that serves a Hugging Face file layout."""

import hashlib
import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import reference

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "openai/clip-vit-base-patch32"


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Answers /{repo}/resolve/{revision}/{file} the way the hub does: the file with its commit and ETag."""

    files = {}  # url path -> bytes
    requests = []

    def _respond(self, with_body):
        self.requests.append(self.path)
        prefix = f"/{REPO}/resolve/"
        name = self.path[len(prefix):].split("/", 1)[-1] if self.path.startswith(prefix) else None
        body = self.files.get(name)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

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
    reference.random_hf_clip(config).save_pretrained(folder)
    _HubHandler.files = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()


def _run(script, endpoint, cache, extra_env=None):
    """Run in a fresh process: huggingface_hub reads HF_ENDPOINT when it is imported."""
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(cache), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    env.pop("HF_HUB_OFFLINE", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_download_preset_fetches_repository_into_cache(hub, tmp_path):
    endpoint, folder = hub
    result = _run("""
        import filecmp, os, sys
        from clip_edge import checkpoints
        local = checkpoints.download_preset("clip-vit-base-patch32")
        print(local)
        import clip_edge
        model = clip_edge.CLIP.from_checkpoint(local)
        print(model.get_config()["vision_width"])
    """, endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    local, width = result.stdout.split()[-2:]
    assert local.startswith(str(tmp_path)) and COMMIT in local
    assert width == "64"
    for name in ("config.json", "model.safetensors"):
        assert open(os.path.join(local, name), "rb").read() == (folder / name).read_bytes()


def test_hub_checkpoint_of_other_architecture_is_refused(hub, tmp_path):
    endpoint, _ = hub
    result = _run("""
        import clip_edge
        clip_edge.CLIP.from_preset("clip-vit-base-patch32")
    """, endpoint, tmp_path)
    assert result.returncode != 0
    assert "does not match preset 'clip-vit-base-patch32'" in result.stderr


def test_offline_fails_at_once_naming_alternatives(tmp_path):
    for extra_env, endpoint in (({"HF_HUB_OFFLINE": "1"}, "http://127.0.0.1:9"),  # offline mode, empty cache
                                ({}, "http://127.0.0.1:9")):  # nothing listens on port 9
        started = time.monotonic()
        result = _run("""
            import clip_edge
            clip_edge.CLIP.from_preset("clip-vit-base-patch32")
        """, endpoint, tmp_path, extra_env)
        elapsed = time.monotonic() - started
        assert result.returncode != 0
        assert "could not download openai/clip-vit-base-patch32" in result.stderr
        assert "weights=<path" in result.stderr and "load_weights=False" in result.stderr
        assert elapsed < 60, f"took {elapsed:.0f} s to give up"
