"""What every reader of an export relies on besides the values it states: the manifest's format version, the check
each Python reader makes of it, and the names of the files and folders an export holds.

converters.export writes the export under these names and converters/manifest.py records them, with the values a
reader needs to process inputs as the export does, in manifest.json's "contract" section (README, "Export").
android_demo's Java core reads that section; clip_edge.beam and the parity harness check the version with
check_format_version. No TensorFlow here: Beam's reader and the exporter's argument checks import this module.
"""

# manifest.json's format_version. Raise it when a reader of the previous format would misread a manifest of the new
# one (a field that changes meaning or goes away); a new field keeps it. Manifests written before the contract
# section existed have no format_version: readers take them as format 0, whose contract values are the ones these
# definitions had then.
FORMAT_VERSION = 1

# The export's layout, relative to its folder, "/"-separated as manifest.json's artifact paths are.
MANIFEST = "manifest.json"
REPORT = "parity_report.md"
SAVED_MODEL = "saved_model"
VOCAB = "assets/vocab.json"
MERGES = "assets/merges.txt"
TEXT_CLEANING = "assets/text_cleaning.json"
ZERO_SHOT_LABELS = "assets/zero_shot_labels.txt"
ZERO_SHOT_TEMPLATES = "assets/zero_shot_templates.txt"
PREPROCESS_PATH = "tflite/preprocess.tflite"
# Files of rejected variants, at their usual relative path below this folder (rejected/tflite/...).
REJECTED_DIR = "rejected"


class ManifestFormatError(ValueError):
    """A manifest whose format this code cannot read; the message names the file, the field and the versions."""


def check_format_version(manifest, path):
    """The format version of `manifest` (manifest.json parsed; 0 without format_version), after checking that this
    code reads it. `path` names the file in the ManifestFormatError raised otherwise."""
    if not isinstance(manifest, dict):
        raise ManifestFormatError(f"{path}: not an export manifest (not a JSON object)")
    if "format_version" not in manifest:
        return 0
    version = manifest["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ManifestFormatError(f"{path}: format_version is {version!r}; an export writes an integer from 1")
    if version > FORMAT_VERSION:
        raise ManifestFormatError(f"{path}: format_version is {version}, newer than {FORMAT_VERSION}, the newest "
                                  "this clip_edge reads: the export was written by a newer clip_edge; update this "
                                  "one to read it")
    return version
