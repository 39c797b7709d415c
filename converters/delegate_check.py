"""Delegate-readiness checks for .tflite files: the TFLite GPU delegate and the Coral Edge TPU.

Reads the model with converters/tflite_model.py (no TensorFlow needed), lists every operator with its tensors,
and checks each operator against the target's table of supported operators: per builtin, the highest version
the target parses and the checks of its documented limitations (the same form for both targets).
`tf.lite.experimental.Analyzer(gpu_compatibility=True)` is not used: it reports every model
compatible, Flex ops included.

Sources of the rules (read for facts; the checks below are our own):
- GPU: tensorflow/lite/tools/versioning/gpu_compatibility.cc (per-op checks; "offline" mode, which assumes
  enhanced broadcasting), tensorflow/lite/delegates/gpu/common/model_builder.cc (which builtins have a
  parser, their maximum op versions, and the tensor filter: rank <= 4, runtime tensors float32/float16).
- Edge TPU: coral.ai "TensorFlow models on the Edge TPU" (model requirements and the supported-operations
  table with its known limitations). The Edge TPU compiler maps operators until the first unsupported one;
  that operator and everything after it runs on the CPU.

Usage: python -m converters.delegate_check MODEL.tflite --target=gpu|edgetpu [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .tflite_model import ModelInfo, OpInfo, TensorInfo, TFLiteModelError, read_model

TARGETS = ("gpu", "edgetpu")


# ---------------------------------------------------------------------------------------------------------
# Report


@dataclasses.dataclass
class OpFinding:
    op_index: int
    op_name: str
    problems: list[str]
    on_delegate: bool  # after partitioning: does this op actually run on the accelerator?


@dataclasses.dataclass
class DelegateReport:
    model_path: str
    target: str
    ops: tuple[OpInfo, ...]
    findings: list[OpFinding]
    model_problems: list[str]

    @property
    def unsupported(self) -> list[OpFinding]:
        return [f for f in self.findings if f.problems]

    @property
    def delegated_op_count(self) -> int:
        return sum(f.on_delegate for f in self.findings)

    @property
    def ready(self) -> bool:
        """Every operator runs on the accelerator and the model-level requirements hold."""
        return not self.model_problems and not self.unsupported and self.delegated_op_count == len(self.ops)

    def to_dict(self) -> dict:
        return {
            "model": self.model_path, "target": self.target, "ready": self.ready,
            "op_count": len(self.ops), "delegated_op_count": self.delegated_op_count,
            "model_problems": list(self.model_problems),
            "unsupported_ops": sorted({f.op_name for f in self.unsupported}),
            "ops": [{"index": op.index, "name": op.name, "version": op.version,
                     "inputs": [_tensor_dict(t) for t in op.present_inputs],
                     "outputs": [_tensor_dict(t) for t in op.outputs],
                     "on_delegate": f.on_delegate, "problems": list(f.problems)}
                    for op, f in zip(self.ops, self.findings)],
        }

    def format_text(self) -> str:
        lines = [f"{self.model_path}: {self.target} delegate readiness: {'READY' if self.ready else 'NOT READY'}",
                 f"  {self.delegated_op_count}/{len(self.ops)} operators would run on the {self.target}"]
        lines += [f"  model: {p}" for p in self.model_problems]
        for op, f in zip(self.ops, self.findings):
            where = self.target if f.on_delegate else "cpu"
            lines.append(f"  [{op.index:4d}] {op.name} v{op.version} -> {where}")
            for t in op.present_inputs:
                lines.append(f"         in  {t.describe()}")
            for t in op.outputs:
                lines.append(f"         out {t.describe()}")
            lines += [f"         !! {p}" for p in f.problems]
        names = sorted({f.op_name for f in self.unsupported})
        lines.append(f"  summary: {len(self.unsupported)} unsupported operator(s)"
                     + (f": {', '.join(names)}" if names else ""))
        return "\n".join(lines)


def _tensor_dict(t: TensorInfo) -> dict:
    return {"index": t.index, "name": t.name, "dtype": t.dtype, "shape": list(t.shape),
            "shape_signature": list(t.shape_signature), "constant": t.is_constant, "quantized": t.quantized}


# ---------------------------------------------------------------------------------------------------------
# Shared checks

_FLOAT_TYPES = ("float32", "float16")
_FLEX_PREFIX = "Flex"


def _custom_op_problem(op: OpInfo) -> str | None:
    if not op.is_custom:
        return None
    if op.name.startswith(_FLEX_PREFIX):
        return f"Flex (Select TF) op {op.name} needs the TensorFlow runtime, not a builtin kernel"
    return f"custom op {op.name}"


def _dynamic_shape_problems(op: OpInfo) -> list[str]:
    return [f"dynamic shape on tensor {t.describe()}" for t in (*op.present_inputs, *op.outputs) if t.is_dynamic]


def _axes(op: OpInfo, input_index: int) -> list[int] | None:
    """Constant int axes normalised to non-negative; None if the axes tensor is not a constant."""
    if input_index >= len(op.inputs) or op.inputs[input_index] is None:
        return None
    values = op.inputs[input_index].values()
    if values is None:
        return None
    rank = len(op.inputs[0].shape)
    return sorted({int(a) % rank if rank else int(a) for a in np.ravel(values)})


Rule = Callable[[OpInfo], list[str]]


@dataclasses.dataclass(frozen=True)
class OpSupport:
    """A target's support for one builtin: the highest op version it parses (None: not limited) and the checks
    of its documented limitations, each returning problems (in this order)."""
    max_version: int | None = None
    rules: tuple[Rule, ...] = ()

    def problems(self, op: OpInfo, target: str) -> list[str]:
        problems = []
        if self.max_version is not None and op.version > self.max_version:
            problems.append(f"{op.name} version {op.version} > {self.max_version}, the highest the {target} parses")
        for rule in self.rules:
            problems += rule(op)
        return problems


def _supports(max_version: int | None = None, *rules: Rule) -> OpSupport:
    return OpSupport(max_version, rules)


# ---------------------------------------------------------------------------------------------------------
# GPU delegate (float models; the default delegate, i.e. no experimental quantized-op support)

# Custom ops the GPU delegate implements (model_builder.cc NewOperationParser).
_GPU_CUSTOM_OPS = ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler")
_GPU_LOGICAL = {"EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL"}
_GPU_MAX_RANK = 4


def _gpu_broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) <= 1 or len(b) <= 1 or len(a) == len(b):
        return True
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and y != 1:
            return False
    return True


def _gpu_activation_problem(op: OpInfo) -> str | None:
    if op.option("FusedActivationFunction") == schema.ActivationFunctionType.SIGN_BIT:
        return "fused SIGN_BIT activation is not supported"
    return None


# Per-operator restrictions from gpu_compatibility.cc / model_builder.cc, one function per limitation.

def _gpu_one_arg(op: OpInfo) -> list[str]:
    if len(op.runtime_inputs) == 1 and not op.constant_inputs:
        return []
    return [f"{op.name} needs exactly one runtime input and no constant input"]


def _gpu_two_arg(op: OpInfo) -> list[str]:
    if (len(op.runtime_inputs), len(op.constant_inputs)) in ((2, 0), (1, 1)):
        return []
    return [f"{op.name} needs two runtime inputs, or one runtime and one constant input"]


def _gpu_single_runtime_input(op: OpInfo) -> list[str]:
    return [] if len(op.runtime_inputs) == 1 else [f"{op.name} needs exactly one runtime input"]


def _gpu_add_mul(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) != 2:
        return [f"{op.name} needs two input tensors"]
    if op.name == "MUL" and len(ins[0].shape) == len(ins[1].shape):
        a, b = ins[0].shape, ins[1].shape
        if any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
            return [f"MUL {list(a)} x {list(b)}: one input must be at least as large in every dim"]
    elif not _gpu_broadcastable(ins[0].shape, ins[1].shape):
        return [f"{op.name} cannot broadcast {list(ins[0].shape)} with {list(ins[1].shape)}"]
    return []


def _gpu_add_n(op: OpInfo) -> list[str]:
    return [] if len(op.present_inputs) == 2 else ["ADD_N supports only 2 inputs"]


def _gpu_batch_matmul(op: OpInfo) -> list[str]:
    ins, runtime = op.present_inputs, op.runtime_inputs
    if len(ins) != 2 or len(op.outputs) != 1:
        return ["BATCH_MATMUL needs 2 inputs and 1 output"]
    if len(runtime) == 1 and not (ins[1].is_constant and len(ins[1].shape) == 2):
        return ["BATCH_MATMUL with one runtime input needs the second input to be a 2-D constant"]
    if not runtime:
        return ["BATCH_MATMUL with only constant inputs"]
    return []


def _gpu_cast(op: OpInfo) -> list[str]:
    src, dst = op.present_inputs[0].dtype, op.outputs[0].dtype
    ok = ((src == "bool" and dst in _FLOAT_TYPES) or (src in _FLOAT_TYPES and dst == "bool")
          or (src in ("float32", "int32") and dst in ("float32", "int32")))
    return [] if ok else [f"CAST {src} -> {dst} is not supported"]


def _gpu_conv_inputs(op: OpInfo) -> list[str]:
    return [f"{op.name} allows at most 2 runtime inputs"] if len(op.runtime_inputs) > 2 else []


def _gpu_depthwise(op: OpInfo) -> list[str]:
    ins, outs = op.present_inputs, op.outputs
    if not ins or not outs:
        return []
    if len(ins[0].shape) != 4 or len(outs[0].shape) != 4:
        return ["DEPTHWISE_CONV_2D needs 4-D input and output"]
    if op.option("DepthMultiplier", 1) != 1 and ins[0].shape[3] != 1:
        return ["DEPTHWISE_CONV_2D with depth_multiplier != 1 needs 1 input channel"]
    return []


def _gpu_dequantize(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if not ins or (ins[0].is_constant and ins[0].dtype == "float16"):
        # Constant float16 weights feeding DEQUANTIZE are folded by the delegate; anything else needs the
        # experimental quantized-model mode.
        return []
    return [f"DEQUANTIZE of a {'constant' if ins[0].is_constant else 'runtime'} {ins[0].dtype} "
            "tensor needs the delegate's quantized-model support"]


def _gpu_quantize(op: OpInfo) -> list[str]:
    return ["QUANTIZE needs the delegate's quantized-model support"]


def _gpu_fully_connected(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if not ins:
        return []
    problems = []
    if op.option("WeightsFormat", 0) != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        problems.append("FULLY_CONNECTED with a non-default weights format")
    if len(op.runtime_inputs) > 2:
        problems.append("FULLY_CONNECTED allows at most 2 runtime inputs")
    if ins[0].is_constant:
        problems.append("FULLY_CONNECTED with a constant input")
    if op.option("KeepNumDims", False) and len(ins[0].shape) != len(op.outputs[0].shape):
        problems.append("FULLY_CONNECTED keep_num_dims with input/output of different rank")
    return problems


def _gpu_gather(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) < 2:
        return []
    problems = []
    if (len(op.runtime_inputs), len(op.constant_inputs)) not in ((2, 0), (1, 1)):
        problems.append("GATHER needs 1 or 2 operands")
    if ins[0].dtype == "int32":
        problems.append("GATHER of int32 params")
    if len(ins[1].shape) != 1:
        problems.append(f"GATHER indices must be 1-D, got {list(ins[1].shape)}")
    if ins[1].dtype != "int32":
        problems.append(f"GATHER indices must be int32, got {ins[1].dtype}")
    return problems


def _gpu_reduce(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) < 2:
        return []
    problems = []
    if not ins[1].is_constant or ins[1].dtype != "int32":
        problems.append(f"{op.name} needs constant int32 axes")
    if len(op.runtime_inputs) != 1:
        problems.append(f"{op.name} needs exactly one runtime input")
    return problems


def _gpu_one_hot(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) != 4:
        return []
    problems = []
    axis, rank = op.option("Axis", -1), len(ins[0].shape)
    if ins[0].dtype != "int32" or axis not in (-1, rank):
        problems.append("ONE_HOT needs int32 indices and axis -1 (last)")
    for t in ins[2:]:
        if t.dtype != "float32" or not t.is_constant or int(np.prod(t.shape)) > 1:
            problems.append("ONE_HOT on/off values must be constant float32 scalars")
            break
    for i, d in enumerate(ins[0].shape[:-1]):
        if d != 1 and not (rank > 3 and i == 0):
            problems.append(f"ONE_HOT indices may only be non-singleton in batch/channels (dim {i} = {d})")
            break
    return problems


def _gpu_pad(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) < 2:
        return []
    problems = []
    if op.name == "MIRROR_PAD" and op.option("Mode") != schema.MirrorPadMode.REFLECT:
        problems.append("MIRROR_PAD supports only REFLECT mode")
    if ins[1].shape not in ((3, 2), (4, 2)):
        problems.append(f"{op.name} paddings must be 3x2 or 4x2, got {list(ins[1].shape)}")
    return problems


def _gpu_slice_rank(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if ins and len(ins[0].shape) not in (3, 4):
        return [f"{op.name} supports only 3-D or 4-D input, got rank {len(ins[0].shape)}"]
    return []


def _gpu_strided_slice_masks(op: OpInfo) -> list[str]:
    return [f"STRIDED_SLICE with {mask[0].lower() + mask[1:]} is not supported"
            for mask in ("EllipsisMask", "NewAxisMask", "ShrinkAxisMask") if op.option(mask, 0)]


def _gpu_softmax(op: OpInfo) -> list[str]:
    return [f"SOFTMAX beta {op.option('Beta')} != 1"] if op.option("Beta", 1.0) != 1.0 else []


def _gpu_block_size(op: OpInfo) -> list[str]:
    return [f"{op.name} block_size must be > 1"] if op.option("BlockSize", 2) <= 1 else []


def _gpu_select(op: OpInfo) -> list[str]:
    ins = op.present_inputs
    if len(ins) == 3 and (ins[0].dtype not in ("bool", *_FLOAT_TYPES)
                          or any(t.dtype not in _FLOAT_TYPES for t in ins[1:])):
        return [f"{op.name} needs a bool/float condition and float values"]
    return []


# The builtins that model_builder.cc has a parser for, with the highest op version each parser accepts (None:
# the parser checks none) and the limitations gpu_compatibility.cc checks.
_GPU_OPS: dict[str, OpSupport] = {
    "ABS": _supports(2, _gpu_one_arg), "ADD": _supports(2, _gpu_add_mul), "ADD_N": _supports(None, _gpu_add_n),
    "ATAN2": _supports(2, _gpu_two_arg), "AVERAGE_POOL_2D": _supports(2),
    "BATCH_MATMUL": _supports(None, _gpu_batch_matmul),
    "CAST": _supports(None, _gpu_cast, _gpu_single_runtime_input), "CEIL": _supports(2, _gpu_one_arg),
    "CONCATENATION": _supports(2), "CONV_2D": _supports(6, _gpu_conv_inputs), "COS": _supports(2, _gpu_one_arg),
    "CUMSUM": _supports(1), "DENSIFY": _supports(1),
    "DEPTH_TO_SPACE": _supports(None, _gpu_single_runtime_input, _gpu_block_size),
    "DEPTHWISE_CONV_2D": _supports(6, _gpu_conv_inputs, _gpu_depthwise),
    "DEQUANTIZE": _supports(3, _gpu_dequantize), "DIV": _supports(2, _gpu_two_arg),
    "DYNAMIC_UPDATE_SLICE": _supports(), "ELU": _supports(2, _gpu_one_arg), "EMBEDDING_LOOKUP": _supports(),
    "EQUAL": _supports(2, _gpu_two_arg), "EXP": _supports(2, _gpu_one_arg), "FLOOR": _supports(2, _gpu_one_arg),
    "FLOOR_DIV": _supports(2, _gpu_two_arg), "FLOOR_MOD": _supports(2, _gpu_two_arg),
    "FULLY_CONNECTED": _supports(9, _gpu_fully_connected), "GATHER": _supports(None, _gpu_gather),
    "GELU": _supports(2, _gpu_one_arg), "GREATER": _supports(2, _gpu_two_arg),
    "GREATER_EQUAL": _supports(2, _gpu_two_arg), "HARD_SWISH": _supports(None, _gpu_single_runtime_input),
    "LEAKY_RELU": _supports(2), "LESS": _supports(2, _gpu_two_arg), "LESS_EQUAL": _supports(2, _gpu_two_arg),
    "LOG": _supports(2, _gpu_one_arg), "LOGICAL_AND": _supports(2, _gpu_two_arg),
    "LOGISTIC": _supports(2, _gpu_one_arg), "LSTM": _supports(4), "MAXIMUM": _supports(2, _gpu_two_arg),
    "MAX_POOL_2D": _supports(2), "MEAN": _supports(None, _gpu_reduce), "MINIMUM": _supports(2, _gpu_two_arg),
    "MIRROR_PAD": _supports(2, _gpu_pad), "MUL": _supports(3, _gpu_add_mul), "NEG": _supports(2, _gpu_one_arg),
    "NOT_EQUAL": _supports(2, _gpu_two_arg), "ONE_HOT": _supports(1, _gpu_one_hot), "PACK": _supports(),
    "PAD": _supports(2, _gpu_pad), "PADV2": _supports(2, _gpu_pad), "POW": _supports(2, _gpu_two_arg),
    "PRELU": _supports(1), "QUANTIZE": _supports(2, _gpu_quantize, _gpu_single_runtime_input),
    "REDUCE_MAX": _supports(None, _gpu_reduce), "REDUCE_MIN": _supports(None, _gpu_reduce),
    "REDUCE_PROD": _supports(None, _gpu_reduce), "RELU": _supports(2), "RELU6": _supports(2),
    "RELU_N1_TO_1": _supports(), "RESHAPE": _supports(1, _gpu_single_runtime_input),
    "RESIZE_BILINEAR": _supports(3, _gpu_single_runtime_input),
    "RESIZE_NEAREST_NEIGHBOR": _supports(3, _gpu_single_runtime_input), "RSQRT": _supports(2, _gpu_one_arg),
    "SELECT": _supports(1, _gpu_select), "SELECT_V2": _supports(1, _gpu_select), "SIGN": _supports(2, _gpu_one_arg),
    "SIN": _supports(2, _gpu_one_arg), "SLICE": _supports(2, _gpu_slice_rank), "SOFTMAX": _supports(2, _gpu_softmax),
    "SPACE_TO_DEPTH": _supports(2, _gpu_single_runtime_input, _gpu_block_size), "SPLIT": _supports(),
    "SPLIT_V": _supports(), "SQRT": _supports(2, _gpu_one_arg), "SQUARE": _supports(2, _gpu_one_arg),
    "SQUARED_DIFFERENCE": _supports(2, _gpu_two_arg), "STABLEHLO_CLAMP": _supports(),
    "STRIDED_SLICE": _supports(2, _gpu_slice_rank, _gpu_strided_slice_masks), "SUB": _supports(2, _gpu_two_arg),
    "SUM": _supports(None, _gpu_reduce), "TANH": _supports(2, _gpu_one_arg),
    "TILE": _supports(None, _gpu_single_runtime_input), "TRANSPOSE": _supports(2, _gpu_single_runtime_input),
    "TRANSPOSE_CONV": _supports(3, _gpu_conv_inputs),
}


def _gpu_tensor_problems(op: OpInfo) -> list[str]:
    """The delegate's node filter: every tensor rank <= 4; runtime tensors float (with a few exceptions)."""
    allowed_in, allowed_out = set(_FLOAT_TYPES), set(_FLOAT_TYPES)
    if op.name in _GPU_LOGICAL:
        allowed_out.add("bool")
    if op.name == "CAST":
        allowed_in |= {"bool", "int32"}
        allowed_out.add("int32")
    if op.name == "ONE_HOT":
        allowed_in.add("int32")
    problems = []
    for direction, tensors, allowed in (("input", op.present_inputs, allowed_in), ("output", op.outputs, allowed_out)):
        for t in tensors:
            if len(t.shape) > _GPU_MAX_RANK:
                problems.append(f"{direction} tensor has rank {len(t.shape)} > {_GPU_MAX_RANK}: {t.describe()}")
            if not t.is_constant and t.dtype not in allowed:
                problems.append(f"runtime {direction} tensor of type {t.dtype} (GPU takes float32/float16): "
                                f"{t.describe()}")
    return problems


def _gpu_problems(op: OpInfo) -> list[str]:
    custom = _custom_op_problem(op)
    if custom and op.name not in _GPU_CUSTOM_OPS:
        return [custom + " is not implemented by the GPU delegate"]
    problems = []
    if not op.is_custom:
        if op.name not in _GPU_OPS:
            return [f"{op.name} is not supported by the GPU delegate"]
        problems += _GPU_OPS[op.name].problems(op, "GPU delegate")
        activation = _gpu_activation_problem(op)
        if activation:
            problems.append(activation)
    problems += _gpu_tensor_problems(op)
    problems += _dynamic_shape_problems(op)
    return problems


def _largest_run(supported: list[bool]) -> set[int]:
    """Indices of the longest run of consecutive supported ops (execution order).

    The GPU delegate replaces only the largest delegable partition by default (max_delegated_partitions=1);
    we approximate its partitions by runs in execution order, which is exact for chain-shaped graphs.
    """
    best, start = (0, 0), None
    for i, ok in enumerate([*supported, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return set(range(*best))


def _is_float16_weight_dequantize(op: OpInfo) -> bool:
    return (op.name == "DEQUANTIZE" and bool(op.inputs) and op.inputs[0] is not None and op.inputs[0].is_constant
            and op.inputs[0].dtype == "float16")


def _fold_float16_weights(model: ModelInfo) -> ModelInfo:
    """Marks outputs of DEQUANTIZE(constant float16) as constants, as the delegate does.

    A float16-weights model stores each weight as float16 followed by a DEQUANTIZE to float32; the GPU
    delegate folds these pairs into float constants (FP16GraphPartitionHelper), so the consuming op sees
    constant weights, not a runtime input.
    """
    folded = {op.outputs[0].index for op in model.ops if _is_float16_weight_dequantize(op)}
    if not folded:
        return model

    def fold(t: TensorInfo | None) -> TensorInfo | None:
        return dataclasses.replace(t, is_constant=True) if t is not None and t.index in folded else t

    ops = tuple(dataclasses.replace(op, inputs=tuple(fold(t) for t in op.inputs)) for op in model.ops)
    return dataclasses.replace(model, ops=ops)


def check_gpu(model: ModelInfo) -> DelegateReport:
    weight_dequantizes = [op for op in model.ops if _is_float16_weight_dequantize(op)]
    model = _fold_float16_weights(model)
    problems = {op.index: _gpu_problems(op) for op in model.ops}
    # Weight DEQUANTIZEs have no runtime input, so they do not split partitions; the converter lists them
    # first, which would put them in a run of their own. Partition the dataflow ops, then give each weight
    # DEQUANTIZE to the delegate when an op that reads its output is delegated.
    skipped = {op.index for op in weight_dequantizes}
    dataflow = [op for op in model.ops if op.index not in skipped]
    delegated = {dataflow[i].index for i in _largest_run([not problems[op.index] for op in dataflow])}
    delegated_inputs = {t.index for op in model.ops if op.index in delegated for t in op.present_inputs}
    delegated |= {op.index for op in weight_dequantizes if op.outputs[0].index in delegated_inputs}
    model_problems = [f"dynamic model input {t.describe()}" for t in model.inputs if t.is_dynamic]
    if model.control_flow_subgraph_count:
        model_problems.append(f"{model.control_flow_subgraph_count} control-flow subgraphs besides the "
                              f"signatures'; only the signature's own subgraph is checked")
    findings = [OpFinding(op.index, op.name, problems[op.index], op.index in delegated) for op in model.ops]
    return DelegateReport(model.path, "gpu", model.ops, findings, model_problems)


# ---------------------------------------------------------------------------------------------------------
# Edge TPU (full-integer models compiled by edgetpu_compiler)

_EDGETPU_INT_TYPES = ("int8", "uint8")
_EDGETPU_SOFTMAX_MAX_ELEMENTS = 16000


def _non_singleton(shape: tuple[int, ...]) -> int:
    return sum(d != 1 for d in shape)


def _edgetpu_no_activation(op: OpInfo) -> list[str]:
    act = op.option("FusedActivationFunction", schema.ActivationFunctionType.NONE)
    return [] if act == schema.ActivationFunctionType.NONE else [f"{op.name} with a fused activation"]


def _edgetpu_concat(op: OpInfo) -> list[str]:
    problems = _edgetpu_no_activation(op)
    const = op.constant_inputs
    if const:
        values = const[0].values()
        zero = const[0].zero_points[0] if const[0].zero_points else 0  # real 0.0 of a quantized constant
        if len(op.present_inputs) != 2 or values is None or np.any(values != zero):
            problems.append("CONCATENATION with a constant input needs exactly 2 inputs and an all-zero "
                            "constant (a zero pad)")
    return problems


def _edgetpu_fully_connected(op: OpInfo) -> list[str]:
    problems = []
    if op.option("WeightsFormat", 0) != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        problems.append("FULLY_CONNECTED with a non-default weights format")
    if op.outputs and _non_singleton(op.outputs[0].shape) > 1:
        problems.append(f"FULLY_CONNECTED output must be one-dimensional, got {list(op.outputs[0].shape)}")
    return problems


def _edgetpu_not_batch_axis(op: OpInfo, axes: list[int] | None) -> list[str]:
    if axes is None:
        return [f"{op.name} needs constant axes"]
    return [f"{op.name} over the batch dimension"] if 0 in axes else []


def _edgetpu_mean(op: OpInfo) -> list[str]:
    axes = _axes(op, 1)
    problems = _edgetpu_not_batch_axis(op, axes)
    if axes is not None and len(op.inputs[0].shape) == 4 and not set(axes) <= {1, 2}:
        problems.append(f"MEAN reduces only along x and/or y, got axes {axes}")
    return problems


def _edgetpu_pad(op: OpInfo) -> list[str]:
    paddings = op.inputs[1].values() if len(op.inputs) > 1 and op.inputs[1] is not None else None
    if paddings is None:
        return [f"{op.name} needs constant paddings"]
    padded = [i for i, row in enumerate(np.asarray(paddings).reshape(-1, 2)) if np.any(row)]
    allowed = {1, 2} if len(op.inputs[0].shape) == 4 else set(range(1, len(op.inputs[0].shape)))
    return [] if set(padded) <= allowed else [f"{op.name} pads only along x and/or y, got dims {padded}"]


def _edgetpu_softmax(op: OpInfo) -> list[str]:
    shape = op.inputs[0].shape
    if _non_singleton(shape) > 1 or int(np.prod(shape)) > _EDGETPU_SOFTMAX_MAX_ELEMENTS:
        return [f"SOFTMAX supports only a 1-D input of at most {_EDGETPU_SOFTMAX_MAX_ELEMENTS} elements, "
                f"got {list(shape)}"]
    return []


def _edgetpu_strided_slice(op: OpInfo) -> list[str]:
    strides = op.inputs[3].values() if len(op.inputs) > 3 and op.inputs[3] is not None else None
    problems = []
    if strides is None or np.any(strides != 1):
        problems.append("STRIDED_SLICE needs all strides equal to 1")
    if op.option("EllipsisMask", 0) or op.option("NewAxisMask", 0):
        problems.append("STRIDED_SLICE with ellipsis or new-axis mask")
    return problems


def _edgetpu_conv(op: OpInfo) -> list[str]:
    if op.option("DilationHFactor", 1) != op.option("DilationWFactor", 1):
        return ["CONV_2D needs the same dilation in x and y"]
    return []


def _edgetpu_depthwise(op: OpInfo) -> list[str]:
    if op.option("DilationHFactor", 1) != 1 or op.option("DilationWFactor", 1) != 1:
        return ["DEPTHWISE_CONV_2D with dilation is not supported"]
    return []


def _edgetpu_batch_axis_option(op: OpInfo) -> list[str]:
    if op.name == "SPLIT":
        return _edgetpu_not_batch_axis(op, _axes_from_split(op))
    axis = op.option("Axis", 0)
    return [f"{op.name} along the batch dimension"] if axis == 0 else []


def _axes_from_split(op: OpInfo) -> list[int] | None:
    axis = op.inputs[0].values() if op.inputs and op.inputs[0] is not None else None
    if axis is None:
        return None
    rank = len(op.inputs[1].shape)
    return [int(np.ravel(axis)[0]) % rank]


def _edgetpu_squeeze(op: OpInfo) -> list[str]:
    """Only leading 1s may be squeezed (no relayout): [1, 5, 10] -> [5, 10] maps, [5, 1, 10] -> [5, 10] not."""
    shape, squeezed = op.inputs[0].shape, op.outputs[0].shape
    leading_ones = next((i for i, d in enumerate(shape) if d != 1), len(shape))
    if any(shape[k:] == squeezed for k in range(leading_ones + 1)):
        return []
    return [f"SQUEEZE {list(shape)} -> {list(squeezed)} removes dims that are not leading 1s"]


def _edgetpu_reduce(op: OpInfo) -> list[str]:
    return _edgetpu_not_batch_axis(op, _axes(op, 1))


def _edgetpu_prelu(op: OpInfo) -> list[str]:
    return [] if len(op.inputs) > 1 and op.inputs[1].is_constant else ["PRELU alpha must be constant"]


def _edgetpu_weights_constant(op: OpInfo) -> list[str]:
    return [f"{op.name} parameters must be compile-time constants: {t.describe()}"
            for t in op.present_inputs[1:] if not t.is_constant]


# The coral.ai supported-operations table (no op versions there); the rules are the documented limitations we
# can check statically.
_EDGETPU_OPS: dict[str, OpSupport] = {
    "ADD": _supports(), "AVERAGE_POOL_2D": _supports(None, _edgetpu_no_activation),
    "CONCATENATION": _supports(None, _edgetpu_concat),
    "CONV_2D": _supports(None, _edgetpu_conv, _edgetpu_weights_constant),
    "DEPTHWISE_CONV_2D": _supports(None, _edgetpu_depthwise, _edgetpu_weights_constant),
    "EXPAND_DIMS": _supports(),
    "FULLY_CONNECTED": _supports(None, _edgetpu_fully_connected, _edgetpu_weights_constant),
    "L2_NORMALIZATION": _supports(), "LOGISTIC": _supports(), "LSTM": _supports(),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _supports(), "MAXIMUM": _supports(),
    "MAX_POOL_2D": _supports(None, _edgetpu_no_activation), "MEAN": _supports(None, _edgetpu_mean),
    "MINIMUM": _supports(), "MUL": _supports(), "PACK": _supports(None, _edgetpu_batch_axis_option),
    "PAD": _supports(None, _edgetpu_pad), "PRELU": _supports(None, _edgetpu_prelu), "QUANTIZE": _supports(),
    "REDUCE_MAX": _supports(None, _edgetpu_reduce), "REDUCE_MIN": _supports(None, _edgetpu_reduce),
    "RELU": _supports(), "RELU6": _supports(), "RELU_N1_TO_1": _supports(), "RESHAPE": _supports(),
    "RESIZE_BILINEAR": _supports(), "RESIZE_NEAREST_NEIGHBOR": _supports(), "RSQRT": _supports(),
    "SLICE": _supports(), "SOFTMAX": _supports(None, _edgetpu_softmax), "SPACE_TO_DEPTH": _supports(),
    "SPLIT": _supports(None, _edgetpu_batch_axis_option), "SQUEEZE": _supports(None, _edgetpu_squeeze),
    "STRIDED_SLICE": _supports(None, _edgetpu_strided_slice), "SUB": _supports(),
    "SUM": _supports(None, _edgetpu_reduce), "SQUARED_DIFFERENCE": _supports(), "TANH": _supports(),
    "TRANSPOSE": _supports(), "TRANSPOSE_CONV": _supports(),
}


def _edgetpu_tensor_problems(op: OpInfo) -> list[str]:
    problems = []
    for t in (*op.present_inputs, *op.outputs):
        if not t.is_constant and t.dtype not in _EDGETPU_INT_TYPES:
            problems.append(f"runtime tensor is {t.dtype}, not 8-bit quantized: {t.describe()}")
        if not t.is_constant and len(t.shape) > 3 and _non_singleton(t.shape[:-3]) > 0:
            problems.append(f"tensor has more than 3 dimensions with size > 1 outside the innermost 3: "
                            f"{t.describe()}")
    return problems


def _edgetpu_problems(op: OpInfo) -> list[str]:
    custom = _custom_op_problem(op)
    if custom:
        return [custom + " is not supported by the Edge TPU"]
    if op.name not in _EDGETPU_OPS:
        return [f"{op.name} is not in the Edge TPU's supported operations"]
    return (_EDGETPU_OPS[op.name].problems(op, "Edge TPU") + _edgetpu_tensor_problems(op)
            + _dynamic_shape_problems(op))


def check_edgetpu(model: ModelInfo) -> DelegateReport:
    problems = [_edgetpu_problems(op) for op in model.ops]
    first_unsupported = next((i for i, p in enumerate(problems) if p), len(problems))
    model_problems = [f"dynamic model input {t.describe()}" for t in model.inputs if t.is_dynamic]
    model_problems += [f"model input is {t.dtype}, not 8-bit: {t.describe()}"
                       for t in model.inputs if t.dtype not in _EDGETPU_INT_TYPES]
    if model.control_flow_subgraph_count:
        model_problems.append(f"{model.control_flow_subgraph_count} control-flow subgraphs besides the "
                              f"signatures'; only the signature's own subgraph is checked")
    findings = [OpFinding(op.index, op.name, p, op.index < first_unsupported)
                for op, p in zip(model.ops, problems)]
    return DelegateReport(model.path, "edgetpu", model.ops, findings, model_problems)


def check(path: str | Path, target: str, subgraph: int = 0) -> DelegateReport:
    """Readiness of one subgraph (a delegate is applied to the subgraph of the signature being run)."""
    if target not in TARGETS:
        from clip_edge.messages import quoted  # here: clip_edge imports TensorFlow, which this module need not

        raise ValueError(f"unknown target {quoted(target)}; expected one of {', '.join(TARGETS)}")
    model = read_model(path, subgraph)
    return check_gpu(model) if target == "gpu" else check_edgetpu(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters.delegate_check", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="path to a .tflite file")
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = check(args.model, args.target)
    except TFLiteModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.format_text())
    return 0 if report.ready else 1


if __name__ == "__main__":
    sys.exit(main())
