"""Fixtures shared by several suites.

`make test` runs pytest-xdist workers, each a process with session fixtures of its own. The checkpoints and
exports below are built once per test run instead: by the first worker that asks, in a folder every worker sees,
behind a file lock; the others wait for it and reuse what it built (`built_once`).
"""

import os
import pickle
import shutil

import filelock
import pytest

from tests import reference


# The files that take longest (CI's --durations), first: xdist hands whole files to the workers in collection order
# (--dist loadfile), and a long file handed out last would leave one worker running alone at the end.
LONGEST_FIRST = ("test_full_size_export.py", "test_export.py", "test_export_kills.py", "test_beam.py",
                 "test_text_buckets_and_zero_shot.py", "test_int8_outliers.py")


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the other files keep their order


def built_once(tmp_path_factory, name, build):
    """build(folder) -> a picklable value, run once per test run over all workers; every caller gets the value.

    A build that fails leaves nothing behind, so that the next worker to ask tries again (and fails alike)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is pytest-N/popen-gwK; pytest-N is the run's, shared by the workers.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, value = root / f"shared-{name}", root / f"shared-{name}.pickle"
    with filelock.FileLock(str(root / f"shared-{name}.lock")):
        if not value.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            value.write_bytes(pickle.dumps(build(folder)))
    return pickle.loads(value.read_bytes())


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory):
    """A small random CLIP written by transformers (32-pixel images, patch 8, width 64, two layers per tower).

    The seed is fixed so that the suites share one export (seed 3 was chosen when the int8 recipes of the time
    missed the bar on other seeds). What the int8 assertions on it depend on now: that the recommended int8
    recipes, with their float fallback, meet the int8 bar on held-out data for this configuration, which does
    not hang on the seed (seeds 0 to 11 measured on 2026-12-07: image min cosine 0.986 at seed 3, the lowest, to
    0.997; text 0.989 to 0.999), and which test_int8_outliers checks every run on seeds it draws anew (its
    "tiny" family size is this configuration, with outliers added); the zero-shot classifier's int8 agreement
    (test_text_buckets_and_zero_shot) and test_export's degraded export (its int16-activation image recipe
    passing, its converter_a8w8 text recipe failing) are measured on this seed only."""
    def build(folder):
        reference.random_hf_clip(reference.hf_clip_config(64, 2, 4, 8, 32, 64, 2, 4, 32), seed=3).save_pretrained(
            folder)
        return folder

    return built_once(tmp_path_factory, "small_clip", build)


@pytest.fixture(scope="session")
def small_export_record(small_checkpoint, tmp_path_factory):
    """(folder, converters.manifest.ExportRecord) of the default export of small_checkpoint, every TFLite variant,
    with a zero-shot classifier of reference.ZERO_SHOT_LABELS and our own templates (a trailing blank line in the
    labels file, which is allowed): the artifacts the export, device-side and reference suites check."""
    def build(folder):
        from converters import export

        (folder / "labels.txt").write_text("\n".join(reference.ZERO_SHOT_LABELS) + "\n\n")
        (folder / "templates.txt").write_text("\n".join(reference.ZERO_SHOT_TEMPLATES) + "\n")
        return export.run_export(None, str(small_checkpoint), str(folder / "exports"), name="small",
                                 zero_shot_labels=str(folder / "labels.txt"),
                                 zero_shot_templates=str(folder / "templates.txt"))

    return built_once(tmp_path_factory, "small_export", build)


@pytest.fixture(scope="session")
def small_export(small_export_record):
    """The folder of small_export_record."""
    return small_export_record[0]


@pytest.fixture(scope="session")
def float32_export(tmp_path_factory):
    """An export of a 64-pixel random CLIP (patch 16), float32 and dynamic_int8 encoders only: the SavedModel and
    two TFLite variants for the Beam pipeline, and preprocess.tflite at a resolution that crops, without the
    calibrated int8 variant's minutes (dynamic_int8 needs no calibration)."""
    def build(folder):
        from converters import export

        checkpoint = folder / "checkpoint"
        reference.random_hf_clip(reference.hf_clip_config(64, 2, 4, 16, 64, 64, 2, 4, 32), seed=5).save_pretrained(
            checkpoint)
        target, _ = export.run_export(None, str(checkpoint), str(folder / "exports"), name="small",
                                      variants=("float32", "dynamic_int8"))
        return target

    return built_once(tmp_path_factory, "float32_export", build)
