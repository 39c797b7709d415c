"""Faults injected into converters.export from outside it (the exporter has no test hooks), for the kill-and-rerun
tests in test_export.py.

`inject` calls back at every point where a kill leaves a different state on disk: entering and leaving each
stage (Progress.stage), and before and after each rename of _replace_directory. `folder_state` describes what is
on disk then. A SIGKILL changes no file, so the state at a point is exactly what a kill there leaves; recording
it at every point of one export, instead of killing one export per point, costs one export instead of one per
point (a tiny one takes about a minute, most of it the SavedModel and the parity stage).

Run as a program it is the killed exporter:

    python -m tests.export_faults CHECKPOINT OUTPUT_DIR NAME STATES COPY_DIR

exports CHECKPOINT to OUTPUT_DIR/NAME (EXPORT_ARGUMENTS: float32 only, the cheapest export with the stages every
export has), appends {"point", "pid", "state"} per point to the JSON lines file STATES, copies OUTPUT_DIR to
COPY_DIR between the two renames (so that a re-run can start from that state too), and SIGKILLs itself after
the second rename, before the replaced export is removed: no finally block runs, as in a real kill.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys

from converters import export

EXPORT_ARGUMENTS = {"variants": ("float32",), "text_buckets": (), "preprocess": False, "threads": 1}
# The stages of an export with EXPORT_ARGUMENTS, in order (no calibration data, zero-shot or preprocessing).
STAGES = ["load model", "SavedModel", "TFLite sources", "TFLite image encoder", "TFLite text encoder", "parity",
          "delegate checks", "manifest"]
KILLED_AT = "after rename 2"
COPIED_AT = "after rename 1"


def inject(on_point, setattr=setattr):
    """Calls on_point(point) at 'enter STAGE', 'leave STAGE' and, inside _replace_directory, 'before rename N' /
    'after rename N'. `setattr` may be pytest's monkeypatch.setattr, which undoes the patches."""
    stage = export.Progress.stage
    replace = export._replace_directory

    @contextlib.contextmanager
    def stage_with_faults(progress, name, detail=""):
        on_point(f"enter {name}")
        with stage(progress, name, detail) as inner:
            yield inner
        on_point(f"leave {name}")

    def replace_with_faults(source, target):
        rename, renames = os.rename, []

        def rename_with_faults(old, new):
            on_point(f"before rename {len(renames) + 1}")
            rename(old, new)
            renames.append(new)
            on_point(f"after rename {len(renames)}")

        os.rename = rename_with_faults  # only while _replace_directory runs: the exporter renames elsewhere too
        try:
            replace(source, target)
        finally:
            os.rename = rename

    setattr(export.Progress, "stage", stage_with_faults)
    setattr(export, "_replace_directory", replace_with_faults)


def sha256(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def folder_state(output_dir):
    """{entry of output_dir: {"files": its files, relative}, plus for each folder (the entry or one below it)
    holding a manifest.json: "exports": {folder: {"manifest": its sha256, "mismatched": listed files missing or
    differing from their listed sha256, "unlisted": files present but not listed}}}."""
    state = {}
    for entry in sorted(os.listdir(output_dir)):
        root = os.path.join(output_dir, entry)
        files = sorted(os.path.relpath(os.path.join(folder, f), root) for folder, _, names in os.walk(root)
                       for f in names)
        exports = {}
        for manifest in [f for f in files if os.path.basename(f) == "manifest.json"]:
            folder = os.path.dirname(manifest)
            with open(os.path.join(root, manifest)) as file:
                listed = {a["path"]: a["sha256"] for a in json.load(file)["artifacts"]}
            inside = {os.path.relpath(f, folder) for f in files if folder == "" or f.startswith(folder + os.sep)}
            exports[folder] = {
                "manifest": sha256(os.path.join(root, manifest)),
                "mismatched": sorted(p for p, sha in listed.items()
                                     if p not in inside or sha256(os.path.join(root, folder, p)) != sha),
                "unlisted": sorted(inside - set(listed) - {"manifest.json", "parity_report.md"})}
        state[entry] = {"files": files, "exports": exports}
    return state


def main(checkpoint, output_dir, name, states, copy_dir):
    def on_point(point):
        with open(states, "a") as file:
            file.write(json.dumps({"point": point, "pid": os.getpid(), "state": folder_state(output_dir)}) + "\n")
        if point == COPIED_AT:
            shutil.copytree(output_dir, copy_dir, symlinks=True)
        if point == KILLED_AT:
            os.kill(os.getpid(), signal.SIGKILL)

    inject(on_point)
    export.run_export(None, checkpoint, output_dir, name=name, **EXPORT_ARGUMENTS)


if __name__ == "__main__":
    main(*sys.argv[1:])
