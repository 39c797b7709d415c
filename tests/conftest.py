"""Fixtures shared by several suites."""

import pytest

import reference


@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
    """An export of a small random CLIP (64-pixel images, patch 16, width 64, two layers per tower) with every
    TFLite variant: the artifacts the device-side suites run. Returns the export folder."""
    from converters import export

    checkpoint = tmp_path_factory.mktemp("small_clip")
    reference.random_hf_clip(reference.hf_clip_config(64, 2, 4, 16, 64, 64, 2, 4, 32), seed=5).save_pretrained(
        checkpoint)
    target, _ = export.run_export(None, str(checkpoint), str(tmp_path_factory.mktemp("exports")), name="small")
    return target
