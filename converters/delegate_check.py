"""Delegate-readiness checks for .tflite files: the TFLite GPU delegate and the Coral Edge TPU.

Reads the flatbuffer directly (with the schema module that ships in ai_edge_litert, so no TensorFlow is
needed), lists every operator with its tensors, and checks each operator against the target's documented
constraints. `tf.lite.experimental.Analyzer(gpu_compatibility=True)` is not used: it reports every model
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

TARGETS = ("gpu", "edgetpu")

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OPTION_CLASSES = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
_NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64,
                "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "bool": np.bool_}
_FLEX_PREFIX = "Flex"


class TFLiteModelError(ValueError):
    """The file is missing, is not a TFLite flatbuffer, or is truncated/corrupt."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    is_constant: bool
    quantized: bool
    zero_points: tuple[int, ...] = ()
    data: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature) or any(d < 0 for d in self.shape)

    def values(self) -> np.ndarray | None:
        """Constant contents as a typed array (None for runtime tensors or exotic types)."""
        if self.data is None or self.dtype not in _NUMPY_TYPES:
            return None
        return np.frombuffer(self.data.tobytes(), dtype=_NUMPY_TYPES[self.dtype]).reshape(self.shape)

    def describe(self) -> str:
        kind = "const" if self.is_constant else "runtime"
        sig = "" if self.shape_signature == self.shape else f" signature={list(self.shape_signature)}"
        return f"#{self.index} {self.name!r} {self.dtype}{list(self.shape)}{sig} {kind}"


@dataclasses.dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name, or the custom code for CUSTOM ops
    version: int
    is_custom: bool
    inputs: tuple[TensorInfo | None, ...]  # None for omitted optional inputs
    outputs: tuple[TensorInfo, ...]
    options: object | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def present_inputs(self) -> list[TensorInfo]:
        return [t for t in self.inputs if t is not None]

    @property
    def runtime_inputs(self) -> list[TensorInfo]:
        return [t for t in self.present_inputs if not t.is_constant]

    @property
    def constant_inputs(self) -> list[TensorInfo]:
        return [t for t in self.present_inputs if t.is_constant]

    def option(self, getter: str, default=None):
        method = getattr(self.options, getter, None)
        return method() if method is not None else default


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    path: str
    ops: tuple[OpInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    subgraph_count: int
    # Subgraphs that no signature starts (WHILE/IF bodies): control flow the checks do not follow. The other
    # signatures of a multi-signature file are separate entry points, each checked on its own.
    control_flow_subgraph_count: int = 0


def read_model(path: str | Path, subgraph: int = 0) -> ModelInfo:
    """Parses one subgraph of a .tflite file (the main one by default; a multi-signature file has one per
    signature); raises TFLiteModelError naming the file on bad input."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise TFLiteModelError(f"{path}: cannot read file ({e.strerror or e})") from e
    return parse_model(buf, str(path), subgraph)


def parse_model(buf: bytes, label: str = "<bytes>", subgraph: int = 0) -> ModelInfo:
    """Like read_model, for a flatbuffer already in memory; `label` names it in errors."""
    path = label
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise TFLiteModelError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier, {len(buf)} bytes)")
    try:
        return _parse(path, buf, subgraph)
    except TFLiteModelError:
        raise
    except Exception as e:  # flatbuffers raises struct.error/IndexError/etc. on truncated or corrupt data
        raise TFLiteModelError(f"{path}: corrupt or truncated TFLite model ({type(e).__name__}: {e})") from e


def _parse(path: str, buf: bytes, subgraph: int = 0) -> ModelInfo:
    model = schema.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise TFLiteModelError(f"{path}: TFLite model has no subgraphs")
    if not 0 <= subgraph < model.SubgraphsLength():
        raise TFLiteModelError(f"{path}: no subgraph {subgraph} (the model has {model.SubgraphsLength()})")
    buffers = [model.Buffers(i) for i in range(model.BuffersLength())]
    graph = model.Subgraphs(subgraph)

    def buffer_bytes(index: int) -> np.ndarray | None:
        if index <= 0 or index >= len(buffers):
            return None
        b = buffers[index]
        if b.Offset() > 1:  # large models keep data after the flatbuffer, addressed by offset/size
            end = b.Offset() + b.Size()
            if end > len(buf):
                raise TFLiteModelError(f"{path}: truncated (buffer {index} ends at byte {end}, file has {len(buf)})")
            return np.frombuffer(buf, dtype=np.uint8, count=b.Size(), offset=b.Offset()) if b.Size() else None
        if b.DataLength() == 0:
            return None
        data = b.DataAsNumpy()
        if len(data) != b.DataLength():  # numpy silently clips a slice that runs past the end of the file
            raise TFLiteModelError(f"{path}: truncated (buffer {index} is cut short)")
        return data

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        signature = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
        data = buffer_bytes(t.Buffer())
        q = t.Quantization()
        tensors.append(TensorInfo(
            index=i, name=t.Name().decode("utf-8", "replace") if t.Name() else "",
            dtype=_TYPE_NAMES.get(t.Type(), f"type{t.Type()}"), shape=shape, shape_signature=signature,
            is_constant=data is not None, quantized=bool(q is not None and q.ScaleLength() > 0),
            zero_points=tuple(int(z) for z in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else (),
            data=data))

    codes = []
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        builtin = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())  # old files only fill the deprecated field
        custom = c.CustomCode().decode("utf-8", "replace") if c.CustomCode() else None
        codes.append((builtin, custom, max(c.Version(), 1)))

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        builtin, custom, version = codes[op.OpcodeIndex()]
        is_custom = builtin == schema.BuiltinOperator.CUSTOM
        name = (custom or "CUSTOM") if is_custom else _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        ins = tuple(tensors[j] if j >= 0 else None for j in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(tensors[j] for j in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        ops.append(OpInfo(index=i, name=name, version=version, is_custom=is_custom, inputs=ins, outputs=outs,
                          options=_builtin_options(op)))

    graph_inputs = tuple(tensors[j] for j in graph.InputsAsNumpy()) if graph.InputsLength() else ()
    graph_outputs = tuple(tensors[j] for j in graph.OutputsAsNumpy()) if graph.OutputsLength() else ()
    entry_points = {model.SignatureDefs(i).SubgraphIndex() for i in range(model.SignatureDefsLength())} | {subgraph}
    return ModelInfo(path=str(path), ops=tuple(ops), inputs=graph_inputs, outputs=graph_outputs,
                     subgraph_count=model.SubgraphsLength(),
                     control_flow_subgraph_count=model.SubgraphsLength() - len(entry_points))


def _builtin_options(op) -> object | None:
    class_name = _OPTION_CLASSES.get(op.BuiltinOptionsType())
    table = op.BuiltinOptions()
    if not class_name or class_name == "NONE" or table is None:
        return None
    options = getattr(schema, class_name)()
    options.Init(table.Bytes, table.Pos)
    return options


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


# ---------------------------------------------------------------------------------------------------------
# GPU delegate (float models; the default delegate, i.e. no experimental quantized-op support)

# Maximum op version accepted by each builtin's parser in model_builder.cc (None: the parser checks none).
_GPU_MAX_VERSION: dict[str, int | None] = {
    "ABS": 2, "ADD": 2, "ADD_N": None, "AVERAGE_POOL_2D": 2, "BATCH_MATMUL": None, "CAST": None,
    "CONCATENATION": 2, "CONV_2D": 6, "COS": 2, "CUMSUM": 1, "DENSIFY": 1, "DEPTH_TO_SPACE": None,
    "DEPTHWISE_CONV_2D": 6, "DEQUANTIZE": 3, "DIV": 2, "DYNAMIC_UPDATE_SLICE": None, "ELU": 2,
    "EMBEDDING_LOOKUP": None, "EQUAL": 2, "EXP": 2, "FLOOR": 2, "FLOOR_DIV": 2, "FLOOR_MOD": 2,
    "FULLY_CONNECTED": 9, "GATHER": None, "GELU": 2, "GREATER": 2, "GREATER_EQUAL": 2, "HARD_SWISH": None,
    "LEAKY_RELU": 2, "LESS": 2, "LESS_EQUAL": 2, "LOG": 2, "LOGISTIC": 2, "LSTM": 4, "MAXIMUM": 2,
    "MAX_POOL_2D": 2, "MEAN": None, "MINIMUM": 2, "MIRROR_PAD": 2, "MUL": 3, "NEG": 2, "NOT_EQUAL": 2,
    "ONE_HOT": 1, "PACK": None, "PAD": 2, "PADV2": 2, "POW": 2, "PRELU": 1, "QUANTIZE": 2, "REDUCE_MAX": None,
    "REDUCE_MIN": None, "REDUCE_PROD": None, "RELU": 2, "RELU6": 2, "RELU_N1_TO_1": None, "RESHAPE": 1,
    "RESIZE_BILINEAR": 3, "RESIZE_NEAREST_NEIGHBOR": 3, "RSQRT": 2, "SELECT": 1, "SELECT_V2": 1, "SIGN": 2,
    "SIN": 2, "SLICE": 2, "SOFTMAX": 2, "SPACE_TO_DEPTH": 2, "SPLIT": None, "SPLIT_V": None, "SQRT": 2,
    "SQUARE": 2, "SQUARED_DIFFERENCE": 2, "STRIDED_SLICE": 2, "SUB": 2, "SUM": None, "TANH": 2, "TILE": None,
    "TRANSPOSE": 2, "TRANSPOSE_CONV": 3, "ATAN2": 2, "CEIL": 2, "LOGICAL_AND": 2, "STABLEHLO_CLAMP": None,
}
# Custom ops the GPU delegate implements (model_builder.cc NewOperationParser).
_GPU_CUSTOM_OPS = ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler")
_GPU_ONE_ARG = {"ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN",
                "SIN", "SQRT", "SQUARE", "TANH"}
_GPU_TWO_ARG = {"ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB"}
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


def _gpu_op_rule(op: OpInfo) -> list[str]:
    """Per-operator restrictions from gpu_compatibility.cc / model_builder.cc."""
    name, ins, outs = op.name, op.present_inputs, op.outputs
    runtime, const = op.runtime_inputs, op.constant_inputs
    problems = []
    if name in _GPU_ONE_ARG and not (len(runtime) == 1 and not const):
        problems.append(f"{name} needs exactly one runtime input and no constant input")
    if name in _GPU_TWO_ARG and not ((len(runtime), len(const)) in ((2, 0), (1, 1))):
        problems.append(f"{name} needs two runtime inputs, or one runtime and one constant input")
    if name in ("ADD", "MUL"):
        if len(ins) != 2:
            problems.append(f"{name} needs two input tensors")
        elif name == "MUL" and len(ins[0].shape) == len(ins[1].shape):
            a, b = ins[0].shape, ins[1].shape
            if any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                problems.append(f"MUL {list(a)} x {list(b)}: one input must be at least as large in every dim")
        elif not _gpu_broadcastable(ins[0].shape, ins[1].shape):
            problems.append(f"{name} cannot broadcast {list(ins[0].shape)} with {list(ins[1].shape)}")
    if name == "ADD_N" and len(ins) != 2:
        problems.append("ADD_N supports only 2 inputs")
    if name == "BATCH_MATMUL":
        if len(ins) != 2 or len(outs) != 1:
            problems.append("BATCH_MATMUL needs 2 inputs and 1 output")
        elif len(runtime) == 1 and not (ins[1].is_constant and len(ins[1].shape) == 2):
            problems.append("BATCH_MATMUL with one runtime input needs the second input to be a 2-D constant")
        elif not runtime:
            problems.append("BATCH_MATMUL with only constant inputs")
    if name == "CAST":
        src, dst = ins[0].dtype, outs[0].dtype
        ok = ((src == "bool" and dst in _FLOAT_TYPES) or (src in _FLOAT_TYPES and dst == "bool")
              or (src in ("float32", "int32") and dst in ("float32", "int32")))
        if not ok:
            problems.append(f"CAST {src} -> {dst} is not supported")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV") and len(runtime) > 2:
        problems.append(f"{name} allows at most 2 runtime inputs")
    if name == "DEPTHWISE_CONV_2D" and ins and outs:
        if len(ins[0].shape) != 4 or len(outs[0].shape) != 4:
            problems.append("DEPTHWISE_CONV_2D needs 4-D input and output")
        else:
            multiplier = op.option("DepthMultiplier", 1)
            if multiplier != 1 and ins[0].shape[3] != 1:
                problems.append("DEPTHWISE_CONV_2D with depth_multiplier != 1 needs 1 input channel")
    if name == "DEQUANTIZE" and ins and not (ins[0].is_constant and ins[0].dtype == "float16"):
        # Constant float16 weights feeding DEQUANTIZE are folded by the delegate; anything else needs the
        # experimental quantized-model mode.
        problems.append(f"DEQUANTIZE of a {'constant' if ins[0].is_constant else 'runtime'} {ins[0].dtype} "
                        "tensor needs the delegate's quantized-model support")
    if name == "QUANTIZE":
        problems.append("QUANTIZE needs the delegate's quantized-model support")
    if name == "FULLY_CONNECTED" and ins:
        if op.option("WeightsFormat", 0) != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
            problems.append("FULLY_CONNECTED with a non-default weights format")
        if len(runtime) > 2:
            problems.append("FULLY_CONNECTED allows at most 2 runtime inputs")
        if ins[0].is_constant:
            problems.append("FULLY_CONNECTED with a constant input")
        if op.option("KeepNumDims", False) and len(ins[0].shape) != len(outs[0].shape):
            problems.append("FULLY_CONNECTED keep_num_dims with input/output of different rank")
    if name == "GATHER" and len(ins) >= 2:
        if (len(runtime), len(const)) not in ((2, 0), (1, 1)):
            problems.append("GATHER needs 1 or 2 operands")
        if ins[0].dtype == "int32":
            problems.append("GATHER of int32 params")
        if len(ins[1].shape) != 1:
            problems.append(f"GATHER indices must be 1-D, got {list(ins[1].shape)}")
        if ins[1].dtype != "int32":
            problems.append(f"GATHER indices must be int32, got {ins[1].dtype}")
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD") and len(ins) >= 2:
        if not ins[1].is_constant or ins[1].dtype != "int32":
            problems.append(f"{name} needs constant int32 axes")
        if len(runtime) != 1:
            problems.append(f"{name} needs exactly one runtime input")
    if name == "ONE_HOT" and len(ins) == 4:
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
    if name in ("PAD", "PADV2", "MIRROR_PAD") and len(ins) >= 2:
        if name == "MIRROR_PAD" and op.option("Mode") != schema.MirrorPadMode.REFLECT:
            problems.append("MIRROR_PAD supports only REFLECT mode")
        if ins[1].shape not in ((3, 2), (4, 2)):
            problems.append(f"{name} paddings must be 3x2 or 4x2, got {list(ins[1].shape)}")
    if name in ("RESHAPE", "TRANSPOSE", "TILE", "CAST", "QUANTIZE", "HARD_SWISH", "DEPTH_TO_SPACE",
                "SPACE_TO_DEPTH", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR") and len(runtime) != 1:
        problems.append(f"{name} needs exactly one runtime input")
    if name in ("SLICE", "STRIDED_SLICE") and ins and len(ins[0].shape) not in (3, 4):
        problems.append(f"{name} supports only 3-D or 4-D input, got rank {len(ins[0].shape)}")
    if name == "STRIDED_SLICE":
        for mask in ("EllipsisMask", "NewAxisMask", "ShrinkAxisMask"):
            if op.option(mask, 0):
                problems.append(f"STRIDED_SLICE with {mask[0].lower() + mask[1:]} is not supported")
    if name == "SOFTMAX" and op.option("Beta", 1.0) != 1.0:
        problems.append(f"SOFTMAX beta {op.option('Beta')} != 1")
    if name in ("SPACE_TO_DEPTH", "DEPTH_TO_SPACE") and op.option("BlockSize", 2) <= 1:
        problems.append(f"{name} block_size must be > 1")
    if name in ("SELECT", "SELECT_V2") and len(ins) == 3:
        if ins[0].dtype not in ("bool", *_FLOAT_TYPES) or any(t.dtype not in _FLOAT_TYPES for t in ins[1:]):
            problems.append(f"{name} needs a bool/float condition and float values")
    activation = _gpu_activation_problem(op)
    if activation:
        problems.append(activation)
    return problems


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
        if op.name not in _GPU_MAX_VERSION:
            return [f"{op.name} is not supported by the GPU delegate"]
        max_version = _GPU_MAX_VERSION[op.name]
        if max_version is not None and op.version > max_version:
            problems.append(f"{op.name} version {op.version} > {max_version}, the highest the GPU delegate parses")
        problems += _gpu_op_rule(op)
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


def _edgetpu_prelu(op: OpInfo) -> list[str]:
    return [] if len(op.inputs) > 1 and op.inputs[1].is_constant else ["PRELU alpha must be constant"]


def _edgetpu_weights_constant(op: OpInfo) -> list[str]:
    return [f"{op.name} parameters must be compile-time constants: {t.describe()}"
            for t in op.present_inputs[1:] if not t.is_constant]


# The coral.ai supported-operations table; values are the documented limitations we can check statically.
_EDGETPU_OPS: dict[str, Callable[[OpInfo], list[str]]] = {
    "ADD": lambda op: [], "AVERAGE_POOL_2D": _edgetpu_no_activation, "CONCATENATION": _edgetpu_concat,
    "CONV_2D": lambda op: _edgetpu_conv(op) + _edgetpu_weights_constant(op),
    "DEPTHWISE_CONV_2D": lambda op: _edgetpu_depthwise(op) + _edgetpu_weights_constant(op),
    "EXPAND_DIMS": lambda op: [],
    "FULLY_CONNECTED": lambda op: _edgetpu_fully_connected(op) + _edgetpu_weights_constant(op),
    "L2_NORMALIZATION": lambda op: [], "LOGISTIC": lambda op: [], "LSTM": lambda op: [],
    "UNIDIRECTIONAL_SEQUENCE_LSTM": lambda op: [], "MAXIMUM": lambda op: [],
    "MAX_POOL_2D": _edgetpu_no_activation, "MEAN": _edgetpu_mean, "MINIMUM": lambda op: [],
    "MUL": lambda op: [], "PACK": _edgetpu_batch_axis_option, "PAD": _edgetpu_pad, "PRELU": _edgetpu_prelu,
    "QUANTIZE": lambda op: [], "REDUCE_MAX": lambda op: _edgetpu_not_batch_axis(op, _axes(op, 1)),
    "REDUCE_MIN": lambda op: _edgetpu_not_batch_axis(op, _axes(op, 1)), "RELU": lambda op: [],
    "RELU6": lambda op: [], "RELU_N1_TO_1": lambda op: [], "RESHAPE": lambda op: [],
    "RESIZE_BILINEAR": lambda op: [], "RESIZE_NEAREST_NEIGHBOR": lambda op: [], "RSQRT": lambda op: [],
    "SLICE": lambda op: [], "SOFTMAX": _edgetpu_softmax, "SPACE_TO_DEPTH": lambda op: [],
    "SPLIT": _edgetpu_batch_axis_option, "SQUEEZE": _edgetpu_squeeze, "STRIDED_SLICE": _edgetpu_strided_slice,
    "SUB": lambda op: [], "SUM": lambda op: _edgetpu_not_batch_axis(op, _axes(op, 1)),
    "SQUARED_DIFFERENCE": lambda op: [], "TANH": lambda op: [], "TRANSPOSE": lambda op: [],
    "TRANSPOSE_CONV": lambda op: [],
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
    return _EDGETPU_OPS[op.name](op) + _edgetpu_tensor_problems(op) + _dynamic_shape_problems(op)


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


def signature_subgraphs(buf: bytes, label: str = "<bytes>") -> dict[str, int]:
    """Signature key -> subgraph index of a TFLite flatbuffer ({} for a model without signatures)."""
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise TFLiteModelError(f"{label}: not a TFLite model (no 'TFL3' flatbuffer identifier, {len(buf)} bytes)")
    model = schema.Model.GetRootAs(buf, 0)
    signatures = {}
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        signatures[signature.SignatureKey().decode("utf-8", "replace")] = signature.SubgraphIndex()
    return signatures


def check(path: str | Path, target: str, subgraph: int = 0) -> DelegateReport:
    """Readiness of one subgraph (a delegate is applied to the subgraph of the signature being run)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
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
