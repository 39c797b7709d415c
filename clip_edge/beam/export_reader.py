"""An export folder read through Beam's filesystems (local, gs://, s3://): its manifest, the sha256 check of
every SavedModel file and of the TFLite files used, and the load.

The manifest (converters/manifest.py) lists every file of the export with its sha256 and size. Before a
SavedModel is used, each file under saved_model/ is hashed and compared with it, and any file the manifest
does not list is refused too; a TFLite encoder is read whole into memory and its bytes hashed before an
interpreter gets them. So an index is never built by, nor searched with, a model other than the export it names.
A manifest of a newer format than this clip_edge reads (its format_version, clip_edge.export_format) is refused.

The model an index is built with (--model): `saved_model` (its encode_image signature) or `tflite:VARIANT`
(tflite/image_encoder_VARIANT.tflite, with the SavedModel's own decoding, resize and crop before it).
"""

import hashlib
import json
import os
import shutil
import tempfile

from apache_beam.io.filesystems import FileSystems

from clip_edge.export_format import MANIFEST, SAVED_MODEL, ManifestFormatError, check_format_version
from clip_edge.messages import quoted

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")  # converters.variants.VARIANTS
_BLOCK = 1 << 20


class ExportReadError(Exception):
    """The export folder is missing, incomplete or does not match its manifest."""


def parse_model(text):
    """--model: "saved_model" -> ("saved_model", None); "tflite:VARIANT" -> ("tflite", VARIANT); else ValueError."""
    if text == "saved_model":
        return "saved_model", None
    kind, _, variant = text.partition(":")
    if kind == "tflite" and variant in TFLITE_VARIANTS:
        return "tflite", variant
    raise ValueError(f"--model {quoted(text)}: expected saved_model or tflite:VARIANT with VARIANT one of "
                     f"{', '.join(TFLITE_VARIANTS)}")


def tflite_path(tower, variant):
    """The export's file for a TFLite encoder (converters.variants.tflite_path): tower "image" or "text"."""
    return f"tflite/{tower}_encoder_{variant}.tflite"


def _read_all(path):
    with FileSystems.open(path) as file:
        return file.read()


class Export:
    """The manifest of export folder `export_dir` (DIR/NAME as written by converters.export)."""

    def __init__(self, export_dir):
        self.dir = export_dir.rstrip("/")
        manifest_path = FileSystems.join(self.dir, MANIFEST)
        if not FileSystems.exists(manifest_path):
            raise ExportReadError(f"{manifest_path}: no such file; --export takes an export folder (DIR/NAME written "
                              f"by converters.export)")
        raw = _read_all(manifest_path)
        try:
            manifest = json.loads(raw)
            check_format_version(manifest, manifest_path)
            self.name = manifest["name"]
            self.preset = manifest.get("preset")
            self.config = manifest["config"]
            self.dimensions = int(self.config["embed_dim"])
            self.weights = manifest["weights"].get("description")
            self.resolution = int(self.config["image_resolution"])
            self.artifacts = {a["path"]: {"path": a["path"], "sha256": a["sha256"], "bytes": int(a["bytes"])}
                              for a in manifest["artifacts"]}
            self.files = sorted((entry for path, entry in self.artifacts.items()
                                 if path.startswith(SAVED_MODEL + "/")), key=lambda entry: entry["path"])
            self.rejected = sorted((manifest.get("rejected") or {}).get("variants") or {})
        except ManifestFormatError as error:
            raise ExportReadError(str(error)) from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ExportReadError(f"{manifest_path}: not an export manifest ({type(error).__name__}: "
                                  f"{error})") from None
        if not any(entry["path"] == f"{SAVED_MODEL}/saved_model.pb" for entry in self.files):
            raise ExportReadError(f"{manifest_path}: lists no {SAVED_MODEL}/saved_model.pb")
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        # One digest for the SavedModel: over the manifest's per-file digests (verify() checks them against the
        # bytes), so that an index can name the exact model without hashing gigabytes again.
        self.saved_model_sha256 = hashlib.sha256("".join(
            f"{entry['sha256']}  {entry['path']}\n" for entry in self.files).encode()).hexdigest()

    def tflite_entry(self, tower, variant):
        """The manifest's entry {"path", "sha256", "bytes"} of the tower's TFLite encoder, or ExportReadError."""
        path = tflite_path(tower, variant)
        if path not in self.artifacts:
            shipped = sorted(v for v in TFLITE_VARIANTS if tflite_path(tower, v) in self.artifacts)
            rejected = f"; {MANIFEST} lists {variant} as rejected (it missed its parity bar)" \
                if variant in self.rejected else ""
            raise ExportReadError(f"{FileSystems.join(self.dir, path)}: not in {MANIFEST} (the export ships "
                              f"{', '.join(shipped) or 'no'} TFLite variant(s){rejected})")
        return self.artifacts[path]

    def read_verified(self, entry):
        """The bytes of the manifest entry's file, checked against its size and sha256 (ExportReadError otherwise)."""
        path = FileSystems.join(self.dir, entry["path"])
        if not FileSystems.exists(path):
            raise ExportReadError(f"{path}: missing (listed in {MANIFEST})")
        data = _read_all(path)
        if len(data) != entry["bytes"]:
            raise ExportReadError(f"{path}: {len(data)} bytes, {MANIFEST} says {entry['bytes']}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise ExportReadError(f"{path}: sha256 {digest} differs from {MANIFEST}'s {entry['sha256']}")
        return data

    def describe_model(self, model):
        """The index summary's "model" field for --model `model` (ExportReadError if the export lacks its file)."""
        kind, variant = parse_model(model)
        if kind == "saved_model":
            return {"model": "saved_model"}
        return {"model": "tflite", "variant": variant, "sha256": self.tflite_entry("image", variant)["sha256"]}

    def verify_model(self, model):
        """Check the files --model `model` runs: every SavedModel file, or the TFLite image encoder."""
        kind, variant = parse_model(model)
        if kind == "saved_model":
            self.verify()
        else:
            self.read_verified(self.tflite_entry("image", variant))

    def describe(self):
        """The export's identity, for the index summary."""
        return {"dir": self.dir, "name": self.name, "preset": self.preset, "weights": self.weights,
                "manifest_sha256": self.manifest_sha256, "saved_model_sha256": self.saved_model_sha256}

    def verify(self, copy_to=None):
        """Hash every file under saved_model/ against the manifest; raise ExportReadError naming the first file
        that is missing, unlisted, of another size or another sha256. With `copy_to` (a local folder), the
        files are also copied there while they are read, so that each byte is read once."""
        root = FileSystems.join(self.dir, SAVED_MODEL)
        found = {}
        for result in FileSystems.match([FileSystems.join(root, "**")]):
            for metadata in result.metadata_list:
                found[SAVED_MODEL + "/" + metadata.path[len(root):].lstrip("/")] = metadata.size_in_bytes
        unlisted = sorted(set(found) - {entry["path"] for entry in self.files})
        if unlisted:
            raise ExportReadError(f"{FileSystems.join(self.dir, unlisted[0])}: not listed in {MANIFEST} "
                              f"({len(unlisted)} unlisted file(s) under {SAVED_MODEL}/)")
        for entry in self.files:
            path = FileSystems.join(self.dir, entry["path"])
            if entry["path"] not in found:
                raise ExportReadError(f"{path}: missing (listed in {MANIFEST})")
            if found[entry["path"]] != entry["bytes"]:
                raise ExportReadError(f"{path}: {found[entry['path']]} bytes, {MANIFEST} says {entry['bytes']}")
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
                raise ExportReadError(f"{path}: sha256 {digest.hexdigest()} differs from {MANIFEST}'s "
                                      f"{entry['sha256']}")

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
