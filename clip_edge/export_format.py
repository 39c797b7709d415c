"""What every reader of an export relies on besides the values it states: the manifest's format version and the
names of the files and folders an export holds.

converters.export writes the export under these names and converters/manifest.py records them, with the values a
reader needs to process inputs as the export does, in manifest.json's "contract" section (README, "Export").
android_demo's Java core reads that section. No TensorFlow here: Beam's reader and the exporter's argument checks
import this module.
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

