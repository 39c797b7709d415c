"""Kills and re-runs of the exporter, at every point where a kill leaves a different state on disk
(tests/export_faults.py): the previous export stays whole or the new one is complete, and the next run puts
things right."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest

from converters import export

from tests import export_faults


# -- kills and re-runs, at every point where a kill leaves a different state (tests/export_faults.py) ----------

STRAY = "stray.txt"  # a file of no export, in the previous one


@pytest.fixture(scope="module")
def killed_export(small_checkpoint, small_export_record, tmp_path_factory):
    """An export killed after the second rename of _replace_directory, over a previous one (small_export_record's,
    every variant, and STRAY) and the export that one replaced in .NAME.old-*/previous: what a kill after the
    second rename leaves, so that this run is also the re-run after such a kill (an export less than a run of its
    own). output (its folder), start (folder_state of output before the run), copy (the folder as it was between
    the two renames), previous (the previous manifest's sha256), process (the killed one) and points ([{"point",
    "pid", "state"}] up to the kill)."""
    output, records = tmp_path_factory.mktemp("killed"), tmp_path_factory.mktemp("killed_records")
    shutil.copytree(small_export_record[0], output / "small")
    (output / "small" / STRAY).write_text("not part of any export")  # a re-run must not merge into it
    shutil.copytree(small_export_record[0], output / ".small.old-killed" / "previous")
    start = export_faults.folder_state(output)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.run([sys.executable, "-m", "tests.export_faults", str(small_checkpoint), str(output), "small",
                              str(records / "states.jsonl"), str(records / "copy")], cwd=repo, capture_output=True,
                             text=True, timeout=900)
    return types.SimpleNamespace(output=output, start=start, copy=records / "copy", process=process,
                                 previous=export_faults.sha256(os.path.join(small_export_record[0], "manifest.json")),
                                 points=[json.loads(line) for line in (records / "states.jsonl").open()])


STAGE_POINTS = [f"{edge} {stage}" for stage in export_faults.STAGES for edge in ("enter", "leave")][:-1]


def _new_export(state, previous):
    """The one export in `state` (an entry of folder_state): complete, every file listed, not the previous one
    (which had every variant)."""
    (found,) = state["exports"].values()
    assert found["mismatched"] == [] and found["unlisted"] == [], found
    assert found["manifest"] != previous and not [f for f in state["files"] if "int8" in f]


def _previous(killed):
    """folder_state's description of the previous export: whole, with the stray file killed_export put in it."""
    return {"manifest": killed.previous, "mismatched": [], "unlisted": [STRAY]}


def test_a_kill_at_any_point_leaves_the_previous_export_whole_or_the_new_one(killed_export):
    killed = killed_export
    assert killed.process.returncode == -signal.SIGKILL, killed.process.stderr[-3000:]
    assert [p["point"] for p in killed.points] == STAGE_POINTS + [
        "before rename 1", "after rename 1", "before rename 2", "after rename 2"]
    work = f".small.tmp-{killed.points[0]['pid']}"
    previous = _previous(killed)
    for point in killed.points:
        state, name = point["state"], point["point"]
        # Besides DIR/NAME, only the hidden work folder and the replaced export's hidden folder.
        assert all(e in ("small", work) or re.fullmatch(r"\.small\.old-\w+", e) for e in state), (name, list(state))
        old = [e for e in state if e.startswith(".small.old-")]
        if name not in ("after rename 1", "before rename 2", "after rename 2"):
            assert state["small"]["exports"] == {"": previous}, name  # the previous export, untouched
            assert len(old) == (name == "before rename 1") and not any(state[e]["files"] for e in old), name
        if name in STAGE_POINTS:  # the manifest is written last, after everything it lists
            assert "manifest.json" not in state[work]["files"], name
    between = {p["point"]: p["state"] for p in killed.points[-3:]}
    assert between["after rename 1"] == between["before rename 2"]
    for name, state in between.items():
        # The window: no DIR/NAME until the second rename; the previous export whole in .NAME.old-*/previous.
        (old,) = [e for e in state if e.startswith(".small.old-")]
        assert state[old]["exports"] == {"previous": previous}, name
        assert ("small" in state) == (name == "after rename 2") and (work in state) != ("small" in state), name
        _new_export(state["small" if "small" in state else work], killed.previous)
    # SIGKILL: no finally block ran, so the replaced export is still there, as at the last point.
    assert export_faults.folder_state(killed.output) == between["after rename 2"]


def test_a_rerun_after_a_kill_between_the_renames_puts_the_previous_export_back_first(killed_export, small_checkpoint,
                                                                                    monkeypatch):
    """The kill left no DIR/NAME and the previous export only in .NAME.old-*/previous: the next run puts it back
    before any work (a kill must not cost the previous export, even if this run fails too), then replaces it."""
    folder = killed_export.copy
    assert sorted(e.split("-")[0] for e in os.listdir(folder)) == [".small.old", ".small.tmp"]
    assert not (folder / "small").exists()
    previous = _previous(killed_export)
    points = []
    export_faults.inject(lambda point: points.append((point, export_faults.folder_state(folder))),
                         monkeypatch.setattr)
    target, _ = export.run_export(None, str(small_checkpoint), str(folder), name="small",
                                  **export_faults.EXPORT_ARGUMENTS)
    assert [name for name, _ in points] == STAGE_POINTS + ["before rename 1", "after rename 1", "before rename 2",
                                                          "after rename 2", "leave manifest"]
    for name, state in points[:len(STAGE_POINTS)]:  # the killed run's folders gone, the previous export back
        assert sorted(state) == [f".small.tmp-{os.getpid()}", "small"], name
        assert state["small"]["exports"] == {"": previous}, name
    (name, final), = points[-1:]
    assert list(final) == ["small"], name
    _new_export(final["small"], killed_export.previous)
    assert os.listdir(folder) == ["small"] and target == str(folder / "small")


def test_a_rerun_after_a_kill_after_the_second_rename_replaces_the_export_whole(killed_export):
    """killed_export's run is that re-run: it started from DIR/NAME and the export it had replaced, as a kill after
    the second rename leaves them (the kill test checks that), with a file of no export in DIR/NAME. (That a run
    which completes leaves only DIR/NAME, the re-run between the renames checks.)"""
    killed = killed_export
    layout = [".small.old", "small"]  # DIR/NAME and the replaced export's .NAME.old-*
    assert sorted(e.split("-")[0] for e in killed.start) == layout
    assert sorted(e.split("-")[0] for e in killed.points[-1]["state"]) == layout  # what the kill left
    assert killed.start["small"]["exports"] == {"": _previous(killed)}
    assert killed.start[".small.old-killed"]["exports"] == {"previous": dict(_previous(killed), unlisted=[])}
    # Before any work the replaced export is gone (whole: the kill test sees no .small.old-* until rename 1).
    assert sorted(killed.points[0]["state"]) == [f".small.tmp-{killed.points[0]['pid']}", "small"]
    # The new export replaces DIR/NAME whole, without merging into it: the stray file went with the previous export.
    state = killed.points[-1]["state"]
    assert STRAY not in state["small"]["files"]
    _new_export(state["small"], killed.previous)


# A stand-in exporter: the exporter's own _conversion_process, on a job as export._convert makes it, with
# sys.argv[3] first on the path it hands the conversion process.
PARENT = """
import json, os, sys
sys.path.insert(0, sys.argv[3])
from converters import export
with open(sys.argv[2]) as file:
    job = json.load(file)
job["parent_pid"] = os.getpid()
export._conversion_process(sys.argv[1], "image-0", job)
"""
# Stands in for TensorFlow in that conversion process, which imports it first thing in convert(), after
# _die_with_parent: importing it blocks reading the FIFO beside it (and costs no TensorFlow import).
BLOCKING_TENSORFLOW = """
import os
open(os.path.join(os.path.dirname(__file__), "blocked")).read()
"""


def _open_once_read(fifo, parent, what):
    """A descriptor writing to `fifo` once the conversion process under `parent` opens it for reading (a
    non-blocking open for writing succeeds only then); held open without writing, it keeps that reader blocked."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if time.monotonic() > deadline or parent.poll() is not None:
                pytest.fail(f"the conversion process never reached its import of TensorFlow ({what})")
            time.sleep(0.1)


def _running(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_exporter_takes_its_conversion_process_with_it(tmp_path):
    """A large tower converts in a process of its own (converters.convert_tower); when the exporter is killed,
    by SIGKILL or SIGTERM, that process must die too, not go on converting into a folder the next run removes.
    Two stand-in exporters side by side, one per signal; each one's conversion process is blocked in its import
    of TensorFlow (BLOCKING_TENSORFLOW; it would wait forever) when its parent is killed."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {}
    for kill in (signal.SIGKILL, signal.SIGTERM):
        folder = tmp_path / kill.name
        (folder / "stub").mkdir(parents=True)
        (folder / "stub" / "tensorflow.py").write_text(BLOCKING_TENSORFLOW)
        os.mkfifo(folder / "stub" / "blocked")
        job = {"tower": "image", "variants": ["int8"], "path": str(folder / "none"), "inputs": {},
               "int8_recipe": None, "calibration": None, "threads": 1, "outputs": {},
               "result": str(folder / "result.json"), "parent_pid": None, "progress_fd": None,
               "crops_per_photo": 1}
        (folder / "job.json").write_text(json.dumps(job))
        runs[kill] = (folder, subprocess.Popen([sys.executable, "-c", PARENT, str(folder), str(folder / "job.json"),
                                                str(folder / "stub")], cwd=repo))
    writers, children = [], {}
    try:
        for kill, (folder, parent) in runs.items():
            writers.append(_open_once_read(folder / "stub" / "blocked", parent, kill.name))
            (children[kill],) = map(int, open(f"/proc/{parent.pid}/task/{parent.pid}/children").read().split())
        for kill, (_, parent) in runs.items():
            parent.send_signal(kill)
            assert parent.wait() == -kill
        for kill, child in children.items():
            deadline = time.monotonic() + 30
            while _running(child):
                if time.monotonic() > deadline:
                    pytest.fail(f"the conversion process outlived its exporter killed by {kill.name}")
                time.sleep(0.1)
    finally:
        for _, parent in runs.values():
            parent.kill()
            parent.wait()
        for child in children.values():
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for writer in writers:
            os.close(writer)
    assert not [kill for kill, (folder, _) in runs.items() if (folder / "result.json").exists()]
