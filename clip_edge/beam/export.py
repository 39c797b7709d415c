"""An export folder read through Beam's filesystems (local, gs://, s3://): its manifest, the sha256 check of
every SavedModel file, and the load.

The manifest (converters/manifest.py) lists every file of the export with its sha256 and size. Before a
SavedModel is used, each file under saved_model/ is hashed and compared with it, and any file the manifest
does not list is refused too, so that an index is never built by, nor searched with, a model other than the
export it names.
"""

import hashlib
import json
import os
import shutil
import tempfile

from apache_beam.io.filesystems import FileSystems

MANIFEST = "manifest.json"
SAVED_MODEL = "saved_model"
_BLOCK = 1 << 20


class ExportError(Exception):
    """The export folder is missing, incomplete or does not match its manifest."""


def _read_all(path):
    with FileSystems.open(path) as file:
        return file.read()


class Export:
    """The manifest of export folder `export_dir` (DIR/NAME as written by converters.export)."""

    def __init__(self, export_dir):
        self.dir = export_dir.rstrip("/")
        manifest_path = FileSystems.join(self.dir, MANIFEST)
        if not FileSystems.exists(manifest_path):
            raise ExportError(f"{manifest_path}: no such file; --export takes an export folder (DIR/NAME written "
                              f"by converters.export)")
        raw = _read_all(manifest_path)
        try:
            manifest = json.loads(raw)
            self.name = manifest["name"]
            self.preset = manifest.get("preset")
            self.config = manifest["config"]
            self.dimensions = int(self.config["embed_dim"])
            self.weights = manifest["weights"].get("description")
            self.files = sorted(({"path": a["path"], "sha256": a["sha256"], "bytes": int(a["bytes"])}
                                 for a in manifest["artifacts"] if a["path"].startswith(SAVED_MODEL + "/")),
                                key=lambda entry: entry["path"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ExportError(f"{manifest_path}: not an export manifest ({type(error).__name__}: {error})") from None
        if not any(entry["path"] == f"{SAVED_MODEL}/saved_model.pb" for entry in self.files):
            raise ExportError(f"{manifest_path}: lists no {SAVED_MODEL}/saved_model.pb")
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        # One digest for the SavedModel: over the manifest's per-file digests (verify() checks them against the
        # bytes), so that an index can name the exact model without hashing gigabytes again.
        self.saved_model_sha256 = hashlib.sha256("".join(
            f"{entry['sha256']}  {entry['path']}\n" for entry in self.files).encode()).hexdigest()

    def describe(self):
        """The export's identity, for the index summary."""
        return {"dir": self.dir, "name": self.name, "preset": self.preset, "weights": self.weights,
                "manifest_sha256": self.manifest_sha256, "saved_model_sha256": self.saved_model_sha256}

    def verify(self, copy_to=None):
        """Hash every file under saved_model/ against the manifest; raise ExportError naming the first file
        that is missing, unlisted, of another size or another sha256. With `copy_to` (a local folder), the
        files are also copied there while they are read, so that each byte is read once."""
        root = FileSystems.join(self.dir, SAVED_MODEL)
        found = {}
        for result in FileSystems.match([FileSystems.join(root, "**")]):
            for metadata in result.metadata_list:
                found[SAVED_MODEL + "/" + metadata.path[len(root):].lstrip("/")] = metadata.size_in_bytes
        unlisted = sorted(set(found) - {entry["path"] for entry in self.files})
        if unlisted:
            raise ExportError(f"{FileSystems.join(self.dir, unlisted[0])}: not listed in {MANIFEST} "
                              f"({len(unlisted)} unlisted file(s) under {SAVED_MODEL}/)")
        for entry in self.files:
            path = FileSystems.join(self.dir, entry["path"])
            if entry["path"] not in found:
                raise ExportError(f"{path}: missing (listed in {MANIFEST})")
            if found[entry["path"]] != entry["bytes"]:
                raise ExportError(f"{path}: {found[entry['path']]} bytes, {MANIFEST} says {entry['bytes']}")
            digest = hashlib.sha256()
            target = None
            if copy_to is not None:
                os.makedirs(os.path.dirname(os.path.join(copy_to, entry["path"])), exist_ok=True)
                target = open(os.path.join(copy_to, entry["path"]), "wb")
            with FileSystems.open(path) as source:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    digest.update(block)
                    if target is not None:
                        target.write(block)
            if target is not None:
                target.close()
            if digest.hexdigest() != entry["sha256"]:
                raise ExportError(f"{path}: sha256 {digest.hexdigest()} differs from {MANIFEST}'s {entry['sha256']}")

    def load(self):
        """Verify, then load the SavedModel (a remote export is copied to a local temporary folder first)."""
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokenizer's ops, which the SavedModel's graph uses

        if FileSystems.get_filesystem(self.dir).scheme() is None:  # the local filesystem has no scheme
            self.verify()
            return tf.saved_model.load(FileSystems.join(self.dir, SAVED_MODEL))
        local = tempfile.mkdtemp(prefix="clip_edge_export_")
        try:
            self.verify(copy_to=local)
            # Variables are read into memory by the load, so the copy is not needed afterwards.
            return tf.saved_model.load(os.path.join(local, SAVED_MODEL))
        finally:
            shutil.rmtree(local, ignore_errors=True)
