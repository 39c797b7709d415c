"""clip_edge export pipeline: SavedModel, TFLite variants, parity harness, delegate checks, manifest."""
