"""Keeps in float the few quantised ops that cost the int8 variant its bar, chosen by measurement.

Equalisation (clip_edge.equalization) undoes the outlier patterns it was designed for, but no fixed recipe holds
on every pattern a trained model may have (issue 19: one checkpoint's int8 image encoder fell to 0.970 against
a bar of 0.98). So the int8 variant of a recipe with `float_fallback` is checked after quantisation on the
calibration data and photometric views of its photos (dark, low-contrast, warm and cool casts: PHOTOMETRIC_VIEWS),
and fixed when its min cosine to the float32 model falls below the target:

0. The check measures the calibration data (whose float32 outputs the calibration's own runs give) and a quarter
   of the views first (photometric_views), and stops there when int8 is clear of the target (QUICK_DEFICIT_SHARE);
   otherwise it measures every view. Each view measured is a float32 and an int8 invoke, seconds each on a large
   tower (docs/benchmarks.md, "Export").
1. Sensitivity (below the target): runs of the quantised model on the inputs it handles worst, with every
   tensor kept (LiteRT without XNNPACK) give, for each quantised op, the float input it was handed (before its
   QUANTIZE) and what it returned; the same op in float (the float32 model's weights, numpy) on that input gives
   what it should have returned. The op's own error is the relative difference, input, weight and output
   quantisation together, and free of the errors of the ops before it.
2. Search: the ops are moved to float in order of that error, 1, 2, 4, ... of them, each time quantised anew
   from the same calibration statistics and measured end to end on the calibration data, until the min cosine
   reaches the target; then the smallest count that reaches it is found by bisection. Rounds are bounded, and
   so is the share of the weight ops' multiply-accumulates that may stay float (CPU latency: with XNNPACK the
   int8 variant runs at about a sixth of float32's latency, and every matmul left in float gives some back).

When the bounds are reached first, the best model measured is returned and the export's parity gate decides (it
sets the variant aside, exit 3, with its shortfall).

    result = search(float32_tflite, quantize, calibration, target=0.985, threads=2)
    result.tflite, result.float_ops  # [{"op": ..., "why": ...}], most harmful first
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np

from . import parity, tflite_model

# Ops the search may keep in float: those with weights (what the weight-op recipes quantise).
CANDIDATE_OPS = ("FULLY_CONNECTED", "GATHER")
# Samples of the first signature for the sensitivity run, the worst ones (no XNNPACK, every tensor kept: slower).
SENSITIVITY_SAMPLES = 8
# Quantise-and-measure rounds after the first measurement: doubling, then bisection.
MAX_ROUNDS = 10
# At most this share of the weight ops' multiply-accumulates in float. With XNNPACK at one thread the
# equalised int8 image encoder of clip-vit-base-patch32 ran at 0.17x float32's latency, its float matmuls at
# about 1x: 0.17 + 0.15 * (1 - 0.17) = 0.30x, the latency goal.
MAX_FLOAT_MAC_SHARE = 0.15


@dataclasses.dataclass(frozen=True)
class OpError:
    """One quantised op: its scope (output tensor names, as ai-edge-quantizer scopes ops), type, multiply-
    accumulates per invoke and relative error of its output on the calibration inputs."""

    scope: str
    op: str
    macs: int
    error: float


@dataclasses.dataclass(frozen=True)
class SearchResult:
    tflite: bytes
    float_ops: tuple[dict, ...]  # {"op": type and scope, "why": ...}, most harmful first
    first_min_cosine: float  # every candidate quantised: on the first quarter of the views if it stopped there
    min_cosine: float  # on the calibration data and every view, as returned (the first quarter if it stopped)
    target: float
    rounds: int


def op_scope(op: tflite_model.OpInfo) -> str:
    """ai-edge-quantizer's scope of an op: its output tensor names, each followed by ';'."""
    return "".join(f"{t.name};" for t in op.outputs)


def min_cosine(reference: Mapping[str, np.ndarray], tflite: bytes, calibration: Mapping[str, Sequence[dict]],
               threads: int) -> float:
    """Min over every signature's calibration samples of the cosine between `tflite`'s output and `reference`."""
    return min(float(c.min()) for c in cosines(reference, tflite, calibration, threads).values())


def cosines(reference: Mapping[str, np.ndarray], tflite: bytes, calibration: Mapping[str, Sequence[dict]],
            threads: int) -> dict:
    """{signature key: the cosine of each sample's output to `reference`'s}."""
    outputs = signature_outputs(tflite, calibration, threads)
    return {key: parity.cosine_rows(outputs[key], expected) for key, expected in reference.items()}


# Photometric views of each calibration photo the search also measures on: activation ranges calibrated on
# ordinary photos are not those of a dark one (the held-out hubble_deep_field, a night sky, fell to 0.960 on a tiny
# family member whose every calibration photo stayed above 0.994, through the patch embedding's output scale), nor
# of one dominated by a hue (the held-out retina fundus, red on black, fell to 0.973 on another whose calibration
# photos and their dark and low-contrast views stayed above 0.989). (scale, offset) of the uint8 pixels, the scale
# per channel (R, G, B) where it is a triple: dark, low-contrast, warm cast, cool cast.
PHOTOMETRIC_VIEWS = ((0.15, 0.0), (0.4, 40.0), ((1.0, 0.45, 0.2), 0.0), ((0.2, 0.45, 1.0), 0.0))


# The check stops after the first quarter of the views when int8 everywhere is at most this share of the
# target's distance from 1 away from float32 on them (0.995 for a target of 0.99). Over 56 members of the generated
# family (benchmarks/bench_fallback_views.py, docs/quantization.md) every view put int8 at most 1.51 times as far
# from 1 as the first quarter did, so a member stopped there is at least 1 - 1.51 * 0.005 = 0.9925 on every view.
QUICK_DEFICIT_SHARE = 0.5


def photometric_views(calibration: Mapping[str, Sequence[dict]], crops_per_photo: int = 1) -> tuple[dict, dict]:
    """({signature key: samples}, {signature key: samples}): every one of the PHOTOMETRIC_VIEWS of every photo,
    each on one of its crops, then the other views of every sample. The samples are `crops_per_photo` crops of
    each photo in a row (the exporter's own calibration data: converters.datasets.CROPS_PER_PHOTO; a user's
    photos: 1, and then the first set holds every view of every sample); sample i takes the views v with
    v = i (mod crops_per_photo) in the first set. A view scales the uint8 RGB image inputs [1, H, W, 3];
    samples without one (token ids) have no views."""
    first, rest = {}, {}
    for key, samples in calibration.items():
        first[key], rest[key] = [], []
        for index, sample in enumerate(samples):
            if not any(_is_image(v) for v in sample.values()):
                continue
            for view, (scale, offset) in enumerate(PHOTOMETRIC_VIEWS):
                (first if view % crops_per_photo == index % crops_per_photo else rest)[key].append(
                    {name: np.clip(np.asarray(v, np.float32) * np.float32(scale) + offset, 0, 255).astype(np.uint8)
                     if _is_image(v) else v for name, v in sample.items()})
    return first, rest


def _is_image(value):
    value = np.asarray(value)
    return value.dtype == np.uint8 and value.ndim == 4 and value.shape[-1] == 3


def signature_outputs(tflite: bytes, calibration: Mapping[str, Sequence[dict]], threads: int) -> dict:
    """{signature key: [N, D] outputs} of the single-output signatures on their calibration samples."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=threads)
    outputs = {}
    for key, samples in calibration.items():
        runner = interpreter.get_signature_runner(key)
        (name,) = runner.get_output_details()
        outputs[key] = np.stack([np.asarray(runner(**sample)[name], np.float64).reshape(-1) for sample in samples])
    return outputs


def op_errors(float32: bytes, quantized: bytes, key: str, samples: Sequence[dict]) -> list[OpError]:
    """Each quantised candidate op of signature `key` (subgraph 0), with its own relative error on `samples`
    ({input name: array}). Scopes are the float32 model's (what ai-edge-quantizer's recipe regexes match)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without XNNPACK, which fuses ops and would not keep their outputs.
    interpreter = Interpreter(model_content=quantized, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner(key)
    if tflite_model.signature_subgraphs(quantized, "int8 variant")[key] != 0:
        raise ValueError(f"the sensitivity run reads subgraph 0; signature {key!r} is another")
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    model = tflite_model.parse_model(quantized, "int8 variant")
    float_model = tflite_model.parse_model(float32, "float32 variant")
    # The quantiser inserts QUANTIZE and DEQUANTIZE ops and keeps the others in order: the n-th op with weights
    # of the one model is the n-th of the other.
    ours = [op for op in model.ops if op.name in CANDIDATE_OPS]
    theirs = [op for op in float_model.ops if op.name in CANDIDATE_OPS]
    if [op.name for op in ours] != [op.name for op in theirs]:
        raise ValueError("the int8 and float32 models do not have the same ops with weights in the same order")
    candidates = [(op, reference) for op, reference in zip(ours, theirs)
                  if op.outputs[0].dtype == "int8" and _modelled(reference)]
    functions = [_float_function(reference) for _, reference in candidates]
    producers = {t.index: op for op in model.ops for t in op.outputs}
    squared = np.zeros([len(candidates), 2])
    for sample in samples:
        runner(**sample)
        for i, (op, _) in enumerate(candidates):
            expected = functions[i](_dequantized(interpreter, details[_runtime_input(op, producers).index]))
            got = _dequantized(interpreter, details[op.outputs[0].index])
            squared[i] += np.sum((got - expected) ** 2), np.sum(expected ** 2)
    return [OpError(op_scope(reference), op.name, _macs(reference), float(np.sqrt(error / max(norm, 1e-30))))
            for (op, reference), (error, norm) in zip(candidates, squared)]


def shared_weight_scopes(float32: bytes) -> dict[str, list[str]]:
    """{scope of an op with weights in subgraph 0: the scopes of every op, in every subgraph, reading the same
    weights}: the signatures of a multi-signature file run the same layers in subgraphs of their own."""
    by_buffer = {}
    for subgraph in range(tflite_model.parse_model(float32, "float32 variant").subgraph_count):
        for op in tflite_model.parse_model(float32, "float32 variant", subgraph).ops:
            weights = _weights(op) if op.name in CANDIDATE_OPS else None
            if weights is not None:
                by_buffer.setdefault(weights.buffer, []).append((subgraph, op_scope(op)))
    return {scope: [s for _, s in group] for group in by_buffer.values() for subgraph, scope in group
            if subgraph == 0}


def _modelled(op):
    """Whether _float_function computes `op`: constant weights, no fused activation."""
    if _weights(op) is None:
        return False
    return op.name == "GATHER" or op.option("FusedActivationFunction", 0) == 0


def _weights(op):
    """The op's constant weight tensor (the table of a GATHER), or None when it reads no constant weights."""
    weights = op.inputs[0] if op.name == "GATHER" else op.inputs[1] if len(op.inputs) > 1 else None
    return weights if weights is not None and weights.is_constant else None


def _runtime_input(op, producers):
    """The float tensor the op's activation input was quantised from (the input of the QUANTIZE feeding it), or
    the input itself when no QUANTIZE feeds it (the ids of a GATHER)."""
    activation = op.inputs[1] if op.name == "GATHER" else op.inputs[0]
    producer = producers.get(activation.index)
    return producer.inputs[0] if producer is not None and producer.name == "QUANTIZE" else activation


def _dequantized(interpreter, detail):
    value = interpreter.get_tensor(detail["index"])
    if value.dtype in (np.int8, np.int16) and len(detail["quantization_parameters"]["scales"]):
        parameters = detail["quantization_parameters"]
        axis = parameters["quantized_dimension"]
        shape = [-1 if i == axis else 1 for i in range(value.ndim)] if len(parameters["scales"]) > 1 else []
        scales = np.reshape(parameters["scales"], shape or [])
        zero_points = np.reshape(parameters["zero_points"], shape or [])
        return (value.astype(np.float64) - zero_points) * scales
    return value.astype(np.float64)


def _float_function(op: tflite_model.OpInfo) -> Callable[[np.ndarray], np.ndarray]:
    """What the float32 model's `op` (one that _modelled accepts) returns for an activation input, in numpy
    (float64)."""
    shape = op.outputs[0].shape
    if op.name == "GATHER":
        table = op.inputs[0].values()  # rows picked before widening: the text tower's table is 100 MB
        return lambda ids: np.take(table, ids.astype(np.int64), axis=op.option("Axis", 0)).astype(
            np.float64).reshape(shape)
    weights = op.inputs[1].values().astype(np.float64)
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    bias = 0.0 if bias is None else bias.values().astype(np.float64)
    # FULLY_CONNECTED: weights [out, in]; the input is read as rows of `in`.
    return lambda x: (x.reshape(-1, weights.shape[1]) @ weights.T + bias).reshape(shape)


def _macs(op: tflite_model.OpInfo) -> int:
    if op.name == "GATHER":
        return 0  # a lookup: no arithmetic
    weights = op.inputs[1]
    return int(np.prod(op.outputs[0].shape)) * weights.shape[1]  # FULLY_CONNECTED: weights [out, in]


def search(float32: bytes, quantize: Callable[[Sequence[str]], bytes], calibration: Mapping[str, Sequence[dict]],
           target: float, threads: int, reference: Mapping[str, np.ndarray] | None = None,
           crops_per_photo: int = 1) -> SearchResult:
    """The int8 model `quantize(scopes kept float)` returns, with as few candidate ops in float as the
    measurements allow (see the module doc). `calibration`: {signature key: [{input name: array}]} for every
    signature, `crops_per_photo` crops of each photo in a row (photometric_views); subgraph 0's samples feed the
    sensitivity run. `reference`: `float32`'s outputs of the calibration samples as signature_outputs gives them,
    when the caller has them (the calibration ran them)."""
    first_views, rest = photometric_views(calibration, crops_per_photo)
    calibration = {key: list(samples) for key, samples in calibration.items()}
    reference = dict(reference) if reference is not None else signature_outputs(float32, calibration, threads)
    first = quantize(())
    measured = {key: 0 for key in calibration}  # samples with cosines, per key: the first ones of calibration[key]
    first_cosines = {key: np.zeros(0) for key in calibration}
    for views in (first_views, rest):  # one interpreter per model and pass (a large tower's load takes seconds)
        views = {key: samples for key, samples in views.items() if samples}
        if views:
            views_reference = signature_outputs(float32, views, threads)
            for key in views:
                calibration[key] += views[key]
                reference[key] = np.concatenate([reference[key], views_reference[key]])
        pending = {key: samples[measured[key]:] for key, samples in calibration.items() if samples[measured[key]:]}
        if pending:
            found = cosines({key: reference[key][measured[key]:] for key in pending}, first, pending, threads)
            for key in pending:
                first_cosines[key] = np.concatenate([first_cosines[key], found[key]])
                measured[key] = len(calibration[key])
        first_cosine = min(float(c.min()) for c in first_cosines.values())
        if first_cosine >= 1 - QUICK_DEFICIT_SHARE * (1 - target):  # clear of the target: the other views not needed
            return SearchResult(first, (), first_cosine, first_cosine, target, 0)
    if first_cosine >= target:
        return SearchResult(first, (), first_cosine, first_cosine, target, 0)
    # The sensitivity run reads subgraph 0's tensors: the full-length signature's of a text encoder. It measures
    # on the samples int8 handles worst: the errors that matter are theirs.
    first_key = {index: key for key, index in tflite_model.signature_subgraphs(float32, "float32 variant").items()}[0]
    worst = np.argsort(first_cosines[first_key])[:SENSITIVITY_SAMPLES]
    errors = sorted(op_errors(float32, first, first_key, [calibration[first_key][i] for i in worst]),
                    key=lambda e: e.error, reverse=True)
    same_weights = shared_weight_scopes(float32)
    total_macs = sum(e.macs for e in errors) or 1
    # The order the ops go float in: most harmful first, skipping those the MAC budget cannot take.
    order, macs = [], 0
    for error in errors:
        if macs + error.macs <= MAX_FLOAT_MAC_SHARE * total_macs:
            order.append(error)
            macs += error.macs
    # Only the model to return is kept (a large tower's int8 model is hundreds of MB): the least float ops that
    # met the target, or while none has, the best min cosine.
    kept = {"count": 0, "tflite": first, "cosine": first_cosine, "passed": False}

    def measure(count):
        tflite = quantize([scope for e in order[:count] for scope in same_weights[e.scope]])
        cosine = min_cosine(reference, tflite, calibration, threads)
        passed = cosine >= target
        if passed or (not kept["passed"] and cosine > kept["cosine"]):
            kept.update(count=count, tflite=tflite, cosine=cosine, passed=passed)
        return passed

    rounds, failing, passing = 0, 0, None
    count = 1
    while count <= len(order) and rounds < MAX_ROUNDS:  # 1, 2, 4, ...: an upper bound that meets the target
        rounds += 1
        if measure(count):
            passing = count
            break
        failing = count
        count = len(order) if count < len(order) < 2 * count else 2 * count
    while passing is not None and passing - failing > 1 and rounds < MAX_ROUNDS:  # the least that still meets it
        rounds += 1
        middle = (failing + passing) // 2
        if measure(middle):
            passing = middle
        else:
            failing = middle
    # Target missed within the bounds: the best model measured, for the parity gate to judge.
    chosen, tflite, cosine = kept["count"], kept["tflite"], kept["cosine"]
    rank = {e.scope: i + 1 for i, e in enumerate(errors)}
    float_ops = tuple(
        {"op": f"{e.op} {e.scope}",
         "why": f"its int8 output was {e.error:.1%} off its float output on the inputs int8 handled worst (rank "
                f"{rank[e.scope]} of {len(errors)} quantised ops); int8 everywhere gave min cosine "
                f"{first_cosine:.4f} to float32 on the calibration inputs and their dark, low-contrast and "
                f"colour-cast views, "
                f"{chosen} op{'s' if chosen != 1 else ''} in float {cosine:.4f} (target {target:.4f})"}
        for e in order[:chosen])
    return SearchResult(tflite, float_ops, first_cosine, cosine, target, rounds)
