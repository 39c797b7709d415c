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
def small_export(small_checkpoint, tmp_path_factory):
    """The export of small_checkpoint with every TFLite variant: the artifacts the device-side suites run.
    Returns the export folder."""
    from converters import export

    target, _ = export.run_export(None, str(small_checkpoint), str(tmp_path_factory.mktemp("exports")),
                                  name="small")
    return target
