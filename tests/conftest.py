"""Fixtures shared by several suites."""

import pytest

import reference


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory):
    """A small random CLIP written by transformers (32-pixel images, patch 8, width 64, two layers per tower).

    The configuration and seed are test_export's tiny model, whose int8 image encoder meets its bar; int8 recipes
    are still tuned on random weights, and other seeds of a 64-pixel model fell just below it (0.974)."""
    checkpoint = tmp_path_factory.mktemp("small_clip")
    reference.random_hf_clip(reference.hf_clip_config(64, 2, 4, 8, 32, 64, 2, 4, 32), seed=3).save_pretrained(
        checkpoint)
    return checkpoint


@pytest.fixture(scope="session")
def small_export_record(small_checkpoint, tmp_path_factory):
    """(folder, converters.manifest.ExportRecord) of the default export of small_checkpoint, every TFLite variant:
    the artifacts the export, device-side and reference suites check, built once per test session."""
    from converters import export

    return export.run_export(None, str(small_checkpoint), str(tmp_path_factory.mktemp("exports")), name="small")


@pytest.fixture(scope="session")
def small_export(small_export_record):
    """The folder of small_export_record."""
    return small_export_record[0]
