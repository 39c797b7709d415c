"""The parity gate: which variants of an export ship, given their parity results, and the exit status that says so.

A variant is one unit (its encoders, text signatures and zero-shot classifier pass or are rejected together); the
export is refused when a required variant (--require; default DEFAULT_REQUIRED) is rejected, when every variant
is, or when preprocess.tflite misses its bar. The exporter and `python -m converters.parity` exit with the
statuses below.
"""

import dataclasses

# Exit statuses of the exporter and of the parity harness (python -m converters.parity): every artifact met
# its bar; a gate unit below its bar made the whole export refused (or the run failed); some variants missed
# their bars and the others were shipped.
EXIT_OK, EXIT_REFUSED, EXIT_REJECTED_VARIANTS = 0, 1, 3
# Variants whose failure refuses the whole export unless --require says otherwise: float32 is the reference the
# quantised variants are measured against on device, and it can only miss its bar through a defect.
DEFAULT_REQUIRED = ("float32",)


def required_variants(require, variants):
    """The variants whose failure refuses the export: `require` is "all", a list of variant names (each must be
    among `variants`), or None for DEFAULT_REQUIRED (those of them that are in `variants`)."""
    if require is None:
        return [v for v in DEFAULT_REQUIRED if v in variants]
    if require == "all" or list(require) == ["all"]:
        return list(variants)
    unknown = [v for v in require if v not in variants]
    if unknown or not require:
        raise ValueError(f"--require names {unknown or 'nothing'}; expected 'all' or some of the exported variants "
                         f"{list(variants)}")
    return list(require)


@dataclasses.dataclass
class Gate:
    """The verdict on an export's parity results. A variant is one unit: when any of its artifacts (image and text
    encoder, every text signature, zero-shot classifier) misses its bar, the whole variant is rejected, so a device
    never pairs encoders of which one is off. The export is refused when a required variant is rejected, when every
    variant is, or when preprocess.tflite misses its bar (one model serves every variant: a miss is a defect)."""

    rejected: dict  # variant -> ["path: shortfall", ...]
    refused: list  # why the whole export is refused; empty if it ships

    @classmethod
    def of(cls, results, variants, required):
        rejected, shared = {}, []
        for r in results:
            if not r.passed:
                line = f"{r.label}: {r.shortfall()}"
                (shared if r.variant is None else rejected.setdefault(r.variant, [])).append(line)
        refused = list(shared)
        refused += [f"required variant {v} rejected ({'; '.join(rejected[v])})" for v in required if v in rejected]
        if rejected and set(rejected) == set(variants) and not refused:
            refused.append("every variant missed its bar: " + "; ".join(x for v in rejected.values() for x in v))
        return cls(rejected, refused)

    @property
    def exit_code(self):
        return EXIT_REFUSED if self.refused else EXIT_REJECTED_VARIANTS if self.rejected else EXIT_OK
