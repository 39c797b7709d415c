"""clip_edge export pipeline: SavedModel, TFLite variants, parity harness, delegate checks, manifest.

From a checkout this is the top-level package `converters` (`python -m converters.export`, `//converters`);
the wheel installs it as `clip_edge.converters` (pyproject.toml), so its modules import each other relatively.
"""
