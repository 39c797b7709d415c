"""The TFLite variants of an export as data: one row per variant, read by every module that needs to know one.

    VARIANTS["float16"].bar, VARIANTS["int8"].delegate, tflite_path("text", "int8")

A row holds the converter settings (converters.tflite_variants applies them), the parity bars
(converters.parity), the delegate the variant is made for (converters.delegate_check, run by the exporter) and
a description for the manifest and report; tflite_path names the files. Adding a variant means adding a row.
No TensorFlow import here: the exporter reads the table before it sets up logging and imports TensorFlow.
"""

import dataclasses
import os

# TensorFlow's default signature key: the one signature of a single-signature .tflite file, the text encoders'
# full-length signature (the shorter ones are tokens_L) and the SavedModel's logits signature. Defined once here.
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One TFLite variant: how it is converted, what it must meet, where it runs."""

    name: str
    description: str  # what the converter does (int8: its Int8Recipe describes itself instead)
    # Converter settings: optimizations=[DEFAULT]; target_spec.supported_types; calibration (full integer).
    optimize: bool
    supported_types: tuple[str, ...]
    calibrated: bool
    bar: float  # min cosine to the float model on the held-out photos and sentences (converters.parity)
    zero_shot_bars: tuple[float, float]  # zero-shot classifier: (min top-1 agreement, max probability error)
    # The shorter text signatures against the same file's full length, where the arithmetic is the same.
    full_length_bar: float | None
    delegate: str | None  # converters.delegate_check target the variant is made for


# Zero-shot probabilities amplify embedding errors by the logit scale (100 for OpenAI's checkpoints), so the
# quantised variants get loose probability bars; top-1 is what users see. A float32 text bucket computes the same
# arithmetic as the full length on the positions it keeps (0.0 difference measured with XNNPACK); its bar allows
# for a kernel that sums in another order, nothing more.
VARIANTS = {v.name: v for v in (
    VariantSpec("float32", "TFLiteConverter float32", optimize=False, supported_types=(), calibrated=False,
                bar=0.99999, zero_shot_bars=(1.0, 1e-4), full_length_bar=1 - 1e-7, delegate=None),
    VariantSpec("float16", "TFLiteConverter float16 weights (target_spec.supported_types=[float16])",
                optimize=True, supported_types=("float16",), calibrated=False, bar=0.999,
                zero_shot_bars=(0.95, 0.05), full_length_bar=None, delegate="gpu"),
    VariantSpec("dynamic_int8", "TFLiteConverter dynamic range: int8 weights, float activations "
                "(optimizations=[DEFAULT], no data)", optimize=True, supported_types=(), calibrated=False,
                bar=0.99, zero_shot_bars=(0.9, 0.25), full_length_bar=None, delegate=None),
    VariantSpec("int8", "full integer, calibrated on real photos and sentences, as the tower's Int8Recipe says",
                optimize=True, supported_types=(), calibrated=True, bar=0.98, zero_shot_bars=(0.85, 0.35),
                full_length_bar=None, delegate="edgetpu"),
)}


def tflite_path(tower, variant):
    """Where an export keeps the `tower` ("image", "text" or "zero_shot") file of `variant`."""
    if tower not in ("image", "text", "zero_shot") or variant not in VARIANTS:
        raise ValueError(f"no TFLite file for tower {tower!r} and variant {variant!r}")
    if tower == "zero_shot":
        return os.path.join("tflite", f"zero_shot_{variant}.tflite")
    return os.path.join("tflite", f"{tower}_encoder_{variant}.tflite")
