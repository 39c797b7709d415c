"""A reader for .tflite flatbuffers: one subgraph's operators with their tensors (shapes, types, constants,
quantisation, builtin options) and the file's signature -> subgraph map.

It reads the flatbuffer with the schema module that ships in ai_edge_litert, so no TensorFlow is needed, and
refuses missing, foreign, truncated or corrupt files with a TFLiteModelError naming the file. The delegate checks
(converters/delegate_check.py) and the int8 quantiser's op scoping (converters/tflite_variants.py) read models
through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OPTION_CLASSES = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
_NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64,
                "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "bool": np.bool_}


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
    buffer: int = 0  # the model's buffer holding its data; subgraphs that share a weight share its buffer
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
    _check_identifier(buf, label)
    try:
        return _parse(path, buf, subgraph)
    except TFLiteModelError:
        raise
    except Exception as e:  # flatbuffers raises struct.error/IndexError/etc. on truncated or corrupt data
        raise TFLiteModelError(f"{path}: corrupt or truncated TFLite model ({type(e).__name__}: {e})") from e


def _check_identifier(buf: bytes, label: str) -> None:
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise TFLiteModelError(f"{label}: not a TFLite model (no 'TFL3' flatbuffer identifier, {len(buf)} bytes)")


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
            buffer=int(t.Buffer()), data=data))

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


def signature_subgraphs(buf: bytes, label: str = "<bytes>") -> dict[str, int]:
    """Signature key -> subgraph index of a TFLite flatbuffer ({} for a model without signatures)."""
    _check_identifier(buf, label)
    model = schema.Model.GetRootAs(buf, 0)
    signatures = {}
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        signatures[signature.SignatureKey().decode("utf-8", "replace")] = signature.SubgraphIndex()
    return signatures
