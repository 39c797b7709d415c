"""TFLite variants of one fixed-shape function: float32, float16, dynamic_int8, int8.

    convert_variants(concrete_fn, ["float32", "int8"], representative_dataset=calibration)
        -> {"float32": Variant(tflite=b"...", recipe="..."), "int8": Variant(...)}

The function must have a static signature with batch 1 (the export contract: uint8 pixels [1, R, R, 3] or
int32 token ids [1, L] in, float32 embeddings [1, D] out), as converters.serving's tflite_image_encoder and
tflite_text_encoder build them.

Several functions become the signatures of one file when given as {signature_key: concrete_fn} (the length
buckets of the text encoder): the converter stores each weight once and every signature's subgraph reads it.
The first key is subgraph 0, the one a plain Interpreter call runs; the representative dataset is then a
{signature_key: dataset} of the same keys, and int8 calibration covers every signature.

The functions may also come as a SavedModel written with them as its signatures (`SavedModelSource`), which is
how converters.export converts: the converter then reads the weights from disk in a process that holds no
model (7.7 GB peak for clip-vit-large-patch14-336's image tower, against 10.9 GB converting the traced function
beside the model; same file, same outputs).

Variants are data: converters.variants.VARIANTS holds, per variant, its converter settings, parity bars, delegate target
and description; the exporter, the parity harness, the manifest and the tests read it (file names from
tflite_path). Adding a variant means adding a row there. The full-integer int8 variant keeps the contract
dtypes at its interface (uint8 pixels are cast inside the model; int32 ids feed the embedding GATHER; the
output stays float32) and is quantised as an `Int8Recipe` says: the converter's own int8, or an
ai-edge-quantizer recipe applied to the float32 model (int8 weights with int8 or int16 activations, optionally
with the attention/normalisation ops left in float); each tower has its recommended recipe
(RECOMMENDED_INT8_RECIPES).

Every variant is checked to load and run in ai_edge_litert's Interpreter (no Flex ops) before it is returned.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from . import int8_fallback, tflite_model
from .variants import DEFAULT_SIGNATURE, VARIANTS, VariantSpec

# Attention ops: the attention batch-matmuls quantise worst (measured per op, docs/delegates.md).
ATTENTION_OPS = ("BATCH_MATMUL", "SOFTMAX")
# Everything between the weight matmuls: residual adds, LayerNorm statistics, QuickGELU, attention.
NON_MATMUL_OPS = ("BATCH_MATMUL", "SOFTMAX", "ADD", "SUB", "MUL", "MEAN", "RSQRT", "LOGISTIC", "SUM")
# The ops with weights: every linear layer (the patch embedding is one, clip_edge.layers.CLIPImageEncoder), and
# the token embedding lookup (GATHER; left in float it would keep the text tower's largest tensor at 32 bits).
WEIGHT_OPS = ("FULLY_CONNECTED", "GATHER")


@dataclasses.dataclass(frozen=True)
class Int8Recipe:
    """How the int8 variant is quantised.

    engine "converter": TFLiteConverter full-integer (int8 activations and weights everywhere).
    engine "ai_edge_quantizer": static quantisation of the float32 model, int8 weights (per-channel) and
    `activation_bits` activations for every op, then `overrides`: (ops, bits) pairs, bits None = keep float.
    The ADDs feeding SOFTMAX follow the override that names SOFTMAX: in the text tower that ADD applies the
    causal mask (-1e4 above the diagonal), whose range would otherwise set the scale of every attention score.
    `only`: quantise just these ops (int8 weights, `activation_bits` activations at their inputs and outputs)
    and leave every other op in float.
    `equalization_alpha`: the recipe is meant for a model equalised first (clip_edge.equalization). This
    module converts traced functions and cannot equalise them; converters.export converts the int8 variant
    from the equalised model's function when this is set.
    `float_fallback`: after quantisation, measure on the calibration data and keep in float the ops with
    weights whose int8 error costs the int8 bar (converters.int8_fallback), until the min cosine to float32
    there is at least the bar plus FALLBACK_MARGIN; the variant's float_ops say which and why.
    """

    name: str
    engine: str
    activation_bits: int = 8
    overrides: tuple[tuple[tuple[str, ...], int | None], ...] = ()
    # Only these ops quantised (activation_bits), every other op left in float; () = every op.
    only: tuple[str, ...] = ()
    # SmoothQuant-style equalisation (clip_edge.equalization) of the model before conversion, with this alpha;
    # None = none. The float function is unchanged; the caller (converters.export) applies it, since it needs
    # the model, not the traced function this module converts.
    equalization_alpha: float | None = None
    float_fallback: bool = False

    def describe(self) -> str:
        """What the recipe does, for the manifest and the report, ending with its name (what the exporter's
        --image_int8_recipe and --text_int8_recipe take)."""
        return f"{self._steps()} (recipe {self.name})"

    def _steps(self) -> str:
        if self.engine == "converter":
            return ("TFLiteConverter integer: int8 weights (per-channel) and int8 activations "
                    "(float kernels only where an op has no int8 one)")
        if self.only:
            text = (f"ai-edge-quantizer static: {', '.join(self.only)} only, int8 weights (per-channel, "
                    f"symmetric), int{self.activation_bits} activations; every other op float")
        else:
            text = (f"ai-edge-quantizer static: int8 weights (per-channel, symmetric), "
                    f"int{self.activation_bits} activations")
        if self.equalization_alpha is not None:
            text = (f"equalised model (LayerNorm->linear scales, alpha {self.equalization_alpha}, and q/k "
                    f"balancing; float function unchanged), then {text}")
        for ops, bits in self.overrides:
            text += f"; {'float' if bits is None else f'int{bits}'} for {', '.join(ops)}"
            if "SOFTMAX" in ops:
                text += " and the ADDs feeding SOFTMAX"
        if self.float_fallback:
            text += ("; then the ops with weights whose int8 error cost the bar kept in float, chosen by measurement "
                     f"on the calibration data (min cosine to float32 >= the int8 bar + {FALLBACK_MARGIN}; "
                     "float_ops lists them)")
        return text


INT8_RECIPES = {r.name: r for r in (
    Int8Recipe("converter_a8w8", "converter"),
    Int8Recipe("aeq_a8w8", "ai_edge_quantizer"),
    Int8Recipe("aeq_a16w8", "ai_edge_quantizer", activation_bits=16),
    Int8Recipe("aeq_a8w8_attention_a16", "ai_edge_quantizer", overrides=((ATTENTION_OPS, 16),)),
    Int8Recipe("aeq_a8w8_attention_float", "ai_edge_quantizer", overrides=((ATTENTION_OPS, None),)),
    Int8Recipe("aeq_a8w8_nonmatmul_a16", "ai_edge_quantizer", overrides=((NON_MATMUL_OPS, 16),)),
    Int8Recipe("aeq_a8w8_nonmatmul_a16_attention_float", "ai_edge_quantizer",
               overrides=((NON_MATMUL_OPS, 16), (ATTENTION_OPS, None))),
    # Outlier-robust recipes: equalised before quantisation (docs/quantization.md).
    Int8Recipe("eq_aeq_a16w8", "ai_edge_quantizer", activation_bits=16, equalization_alpha=0.5),
    Int8Recipe("eq_aeq_a8w8", "ai_edge_quantizer", equalization_alpha=0.5),
    Int8Recipe("eq_aeq_a8w8_attention_float", "ai_edge_quantizer", overrides=((ATTENTION_OPS, None),),
               equalization_alpha=0.5),
    Int8Recipe("eq_aeq_a8w8_nonmatmul_a16", "ai_edge_quantizer", overrides=((NON_MATMUL_OPS, 16),),
               equalization_alpha=0.5),
    # The ops with weights alone in int8, the rest float: integer arithmetic where the time goes.
    Int8Recipe("aeq_a8w8_weight_ops", "ai_edge_quantizer", only=WEIGHT_OPS),
    Int8Recipe("eq_aeq_a8w8_weight_ops", "ai_edge_quantizer", only=WEIGHT_OPS, equalization_alpha=0.5),
    Int8Recipe("eq_aeq_a16w8_weight_ops", "ai_edge_quantizer", activation_bits=16, only=WEIGHT_OPS,
               equalization_alpha=0.5),
    # The same, then the ops whose int8 error costs the bar back in float, chosen by measurement (issue 19).
    Int8Recipe("eq_aeq_a8w8_weight_ops_fallback", "ai_edge_quantizer", only=WEIGHT_OPS, equalization_alpha=0.5,
               float_fallback=True),
)}
# converters.export builds dynamic_int8 from the model equalised with this alpha (docs/quantization.md).
DYNAMIC_INT8_EQUALIZATION_ALPHA = 0.5
# Per tower, the recipe that met the int8 bar (min cosine >= 0.98) on checkpoints with trained-like outliers
# (tests/stress_checkpoints.py; docs/quantization.md): the equalised model with int8 only in the ops with weights
# (image 0.9969 on the base32 combined x100 stress checkpoint, where aeq_a16w8, recommended before, gave 0.9924 at
# 4-5x float32's CPU latency; text 0.9995, where aeq_a8w8_attention_float gave 0.9406), and the float fallback:
# on the generated family (seed 2019, tiny to base32) the recipe without it fell to 0.9599 (image, tiny member),
# with it the min is 0.9908 image, 0.9938 text (0.9863 image with its first version, docs/quantization.md).
RECOMMENDED_INT8_RECIPES = {"image_encoder": "eq_aeq_a8w8_weight_ops_fallback",
                            "text_encoder": "eq_aeq_a8w8_weight_ops_fallback"}
# A float_fallback recipe keeps ops in float until the min cosine on the calibration data reaches the int8 bar plus
# this: the held-out data the parity gate measures are other photos and sentences. With 0.005 a CI run's family
# member (tiny, seed 1618895654) passed the check at 0.9891 and fell to 0.9730 on the held-out retina crops; with
# 0.01 and the colour-cast views, 24 members of 12 other runs' seeds were all at 0.9868 or above (docs/quantization.md).
FALLBACK_MARGIN = 0.01


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    tflite: bytes
    recipe: str  # what was done, for the manifest and parity report
    # Ops a float_fallback recipe kept in float after measuring: {"op": type and scope, "why": ...}
    float_ops: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True)
class SavedModelSource:
    """A SavedModel whose signatures are the functions to convert: `inputs` maps each signature key, in subgraph
    order, to its input names in call order (as the functions' input_signature names them)."""

    path: str
    inputs: Mapping[str, Sequence[str]]

    @classmethod
    def save(cls, functions: Mapping, path: str) -> "SavedModelSource":
        """Writes {signature_key: concrete_fn} (static shapes, batch 1) as a SavedModel at `path`."""
        for function in functions.values():
            _check_static_signature(function)
        owner = _variable_owner(functions)
        tf.saved_model.save(owner, path, signatures=dict(functions))
        return cls(path, {key: [spec.name for spec in f.structured_input_signature[0]]
                          for key, f in functions.items()})


class VariantConversionError(RuntimeError):
    """A variant could not be produced, or the produced model does not run in ai_edge_litert."""


RepresentativeDataset = Callable[[], Iterable[Sequence[np.ndarray]]]

# The converter names the only signature of a one-function model DEFAULT_SIGNATURE; with several functions it
# names each after its Python function and orders subgraphs by key.


def convert_variants(concrete_fn, variant_names: Sequence[str] = tuple(VARIANTS),
                     representative_dataset: RepresentativeDataset | Mapping[str, RepresentativeDataset] | None = None,
                     int8_recipe: str | None = None, threads: int = 2, crops_per_photo: int = 1) -> dict[str, Variant]:
    """Converts `concrete_fn` (or {signature_key: concrete_fn}, or a SavedModelSource; see the module doc) into
    the named variants, int8 calibration running `threads` threads;
    int8 needs `representative_dataset` and `int8_recipe` (a key of INT8_RECIPES; RECOMMENDED_INT8_RECIPES
    names the one measured best per tower). `crops_per_photo`: the calibration images are that many crops of
    each photo in a row (the float fallback's check: converters.int8_fallback.photometric_views).

    `representative_dataset()` yields lists of numpy inputs in the function's input order, each with the
    signature's shape and dtype (the converter's convention).
    """
    unknown = [v for v in variant_names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown TFLite variants {unknown}; expected some of {list(VARIANTS)}")
    if isinstance(concrete_fn, SavedModelSource):
        functions = concrete_fn
        keys = list(concrete_fn.inputs)
    else:
        functions = dict(concrete_fn) if isinstance(concrete_fn, Mapping) else {DEFAULT_SIGNATURE: concrete_fn}
        for function in functions.values():
            _check_static_signature(function)
        keys = list(functions)
    if not keys:
        raise ValueError("no functions to convert")
    datasets = None
    if representative_dataset is not None:
        datasets = (dict(representative_dataset) if isinstance(representative_dataset, Mapping)
                    else {DEFAULT_SIGNATURE: representative_dataset})
        if set(datasets) != set(keys):
            raise ValueError(f"representative_dataset covers signatures {sorted(datasets)}; the functions are "
                             f"{sorted(keys)} (calibration must cover every signature)")
    if any(VARIANTS[v].calibrated for v in variant_names):
        if datasets is None:
            raise ValueError("the int8 variant needs a representative_dataset (calibration inputs)")
        if int8_recipe is None:
            raise ValueError(f"the int8 variant needs an int8_recipe (recommended per tower: "
                             f"{RECOMMENDED_INT8_RECIPES})")
        if int8_recipe not in INT8_RECIPES:
            raise ValueError(f"unknown int8 recipe {int8_recipe!r}; expected one of {sorted(INT8_RECIPES)}")

    # Smoke-test input per signature: a real calibration sample when there is one (an int8 model can run on
    # zeros and still fail on real data, e.g. a quantised divisor that rounds to zero), zeros otherwise.
    smoke_inputs = {key: next(iter(dataset()), None) for key, dataset in (datasets or {}).items()}
    results = {}
    float32 = None
    for name in variant_names:
        spec = VARIANTS[name]
        float_ops = ()
        if spec.calibrated:
            recipe = INT8_RECIPES[int8_recipe]
            if recipe.engine == "converter":
                tflite = _convert(functions, spec, int8_data=datasets)
            else:
                float32 = float32 or _convert(functions, VARIANTS["float32"])
                tflite, float_ops = quantize_with_ai_edge_quantizer(float32, recipe, datasets, threads,
                                                                    crops_per_photo)
            description = recipe.describe()
        else:
            tflite = _convert(functions, spec)
            description = spec.description
            if name == "float32":
                float32 = tflite
        _check_signatures(tflite, name, keys)
        _check_runs(tflite, name, smoke_inputs)
        results[name] = Variant(name, bytes(tflite), description, tuple(float_ops))
        del tflite
        release_memory()  # the converter's working memory, before the next variant's conversion needs as much
    return results


def release_memory() -> None:
    """Returns what Python and the converter freed to the system: glibc keeps freed memory for reuse unless
    trimmed, and a 1.2 GB tower's conversion leaves gigabytes of it. (TensorFlow's oneDNN allocator keeps what it
    frees for good; converters.export turns it off.)"""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: whatever the allocator returns by itself
        pass


def _check_signatures(tflite: bytes, name: str, keys: list[str]) -> None:
    """The file's signatures are `keys`, the first one in subgraph 0 (the default for plain Interpreter use)."""
    found = tflite_model.signature_subgraphs(tflite, f"{name} variant")
    if set(found) != set(keys) or found[keys[0]] != 0:
        raise VariantConversionError(f"the {name} variant has signatures {found} (key: subgraph); expected "
                                     f"{keys} with {keys[0]!r} in subgraph 0")


def _check_static_signature(concrete_fn) -> None:
    for spec in concrete_fn.structured_input_signature[0]:
        if spec.shape.rank is None or any(d is None for d in spec.shape) or (spec.shape.rank and spec.shape[0] != 1):
            raise ValueError(f"TFLite variants need a static signature with batch 1; input {spec.name!r} "
                             f"has shape {spec.shape}")


def _variable_owner(functions: Mapping) -> tf.Module:
    """A trackable object owning the functions' variables: the converter writes signatures (needed by
    ai-edge-quantizer's calibration) only when given one, and a SavedModel saves the variables it tracks."""
    owner = tf.Module()
    owner.captured_variables = list({id(v): v for f in functions.values() for v in f.variables}.values())
    return owner


def _convert(functions: Mapping | SavedModelSource, spec: VariantSpec,
             int8_data: Mapping[str, RepresentativeDataset] | None = None) -> bytes:
    if isinstance(functions, SavedModelSource):
        converter = tf.lite.TFLiteConverter.from_saved_model(functions.path, signature_keys=list(functions.inputs))
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions(list(functions.values()),
                                                                    _variable_owner(functions))
    if spec.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if spec.supported_types:
        converter.target_spec.supported_types = [tf.as_dtype(t) for t in spec.supported_types]
    if spec.calibrated:
        converter.representative_dataset = _converter_dataset(functions, int8_data)
        # Builtins only as a fallback for ops without an int8 kernel (the uint8->float CAST at the input); the
        # rest is int8, and the interface keeps the contract types (uint8/int32 in, float32 out).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError with the MLIR diagnostics
        raise VariantConversionError(f"TFLite conversion of the {spec.name} variant failed: {_first_lines(e)}") from e


def _converter_dataset(functions: Mapping | SavedModelSource,
                       datasets: Mapping[str, RepresentativeDataset]) -> RepresentativeDataset:
    """The converter's calibration convention: input lists for one function, (key, {input: value}) for several."""
    inputs = (functions.inputs if isinstance(functions, SavedModelSource) else
              {key: [spec.name for spec in f.structured_input_signature[0]] for key, f in functions.items()})
    if len(inputs) == 1:
        return next(iter(datasets.values()))

    def generate():
        for key, names in inputs.items():
            for sample in datasets[key]():
                yield key, dict(zip(names, sample))
    return generate


def convert_preprocess(concrete_fn) -> bytes:
    """The any-size preprocessing function (converters.serving.tflite_preprocess) as float32 TFLite, builtin
    ops only, checked to run in ai_edge_litert at two input sizes set with resize_tensor_input."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on any Flex op
    try:
        tflite = converter.convert()
    except Exception as e:
        raise VariantConversionError(f"TFLite conversion of the preprocessing model failed: {_first_lines(e)}") from e
    for shape in ((1, 1, 1, 3), (1, 5, 3, 3)):
        try:
            run_preprocess(tflite, np.zeros(shape, np.uint8))
        except Exception as e:
            raise VariantConversionError(f"the preprocessing model does not run in ai_edge_litert on {shape}: "
                                         f"{_first_lines(e)}") from e
    return tflite


def run_preprocess(tflite: bytes, pixels: np.ndarray, num_threads: int = 2) -> np.ndarray:
    """uint8 [1, H, W, 3] through preprocess.tflite (input resized to the image's size) -> uint8 [1, R, R, 3]."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
    (detail,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(detail["index"], pixels.shape, strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.ascontiguousarray(pixels, np.uint8))
    interpreter.invoke()
    (output,) = interpreter.get_output_details()
    return interpreter.get_tensor(output["index"]).copy()


def _override_entry(op: str, bits: int | None) -> dict:
    if bits is None:
        return {"regex": ".*", "operation": op, "algorithm_key": "no_quantize"}
    return _static_entry(op, bits)


def _static_entry(op: str, activation_bits: int) -> dict:
    return {
        "regex": ".*", "operation": op, "algorithm_key": "min_max_uniform_quantize",
        "op_config": {
            # int16 activations must be symmetric (TFLite's 16x8 kernels have zero point 0).
            "activation_tensor_config": {"num_bits": activation_bits, "symmetric": activation_bits == 16,
                                         "granularity": "TENSORWISE", "dtype": "INT"},
            "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE",
                                     "dtype": "INT"},
            "compute_precision": "INTEGER", "explicit_dequantize": False, "skip_checks": False,
            "min_weight_elements": 0,
        },
    }


def ai_edge_quantizer_recipe(recipe: Int8Recipe, float32_tflite: bytes, keep_float: Sequence[str] = ()) -> list[dict]:
    """The recipe as ai-edge-quantizer's JSON list; later entries override earlier ones for their op.
    `keep_float`: scopes (converters.int8_fallback.op_scope) of ops left in float whatever the recipe says."""
    # The graph output stays float32 (the contract); without this entry the quantizer returns it quantized.
    if recipe.only:
        entries = [_override_entry("*", None)] + [_static_entry(op, recipe.activation_bits) for op in recipe.only]
    else:
        entries = [_static_entry("*", recipe.activation_bits), _override_entry("OUTPUT", None)]
    for ops, bits in recipe.overrides:
        entries += [_override_entry(op, bits) for op in ops]
        names = softmax_input_add_names(float32_tflite) if "SOFTMAX" in ops else []
        if names:
            entry = _override_entry("ADD", bits)
            # ai-edge-quantizer's op scope is the op's output tensor names, each followed by ";".
            entry["regex"] = "^(" + "|".join(re.escape(n) for n in names) + ");$"
            entries.append(entry)
    if keep_float:
        entry = _override_entry("*", None)
        entry["regex"] = "^(" + "|".join(re.escape(scope) for scope in keep_float) + ")$"
        entries.append(entry)
    return entries


def softmax_input_add_names(tflite: bytes) -> list[str]:
    """Output tensor names of the ADD ops whose result feeds a SOFTMAX (ai-edge-quantizer scopes by them), in
    every subgraph: each signature of a multi-signature file has its own mask ADDs."""
    names = []
    for subgraph in range(tflite_model.parse_model(tflite, "float32 variant").subgraph_count):
        model = tflite_model.parse_model(tflite, "float32 variant", subgraph)
        softmax_inputs = {op.inputs[0].index for op in model.ops if op.name == "SOFTMAX" and op.inputs}
        names += [op.outputs[0].name for op in model.ops
                  if op.name == "ADD" and op.outputs[0].index in softmax_inputs and op.outputs[0].name not in names]
    return names


def quantize_with_ai_edge_quantizer(float32_tflite: bytes, recipe: Int8Recipe,
                                    representative_dataset: RepresentativeDataset | Mapping[str, RepresentativeDataset],
                                    threads: int = 2, crops_per_photo: int = 1) -> tuple[bytes, tuple[dict, ...]]:
    """Static quantisation calibrated on every signature (a {key: dataset} for several, a dataset for one);
    returns the model and the ops a float_fallback recipe kept in float ({"op", "why"}; () for other recipes).
    `crops_per_photo`: as convert_variants'.
    The fallback's search quantises anew from the same calibration statistics: moving ops to float needs none
    the first quantisation did not.

    Recipes that quantise only the ops with weights (`only`, the recommended ones) calibrate in ai-edge-quantizer's
    profiler-based mode: LiteRT tracks each tensor's min and max as it runs. Its default mode keeps every
    intermediate tensor of an invoke and copies them all to Python, which took clip-vit-large-patch14-336's image
    calibration to over 20 GB. Both modes update with the same moving average, and their statistics and the
    quantised encoders agree closely (the profiler runs XNNPACK's ops unfused; figures in docs/benchmarks.md,
    "Export"). The other
    recipes keep the default mode: ai-edge-quantizer 0.10 cannot use the profiler's statistics for every op they
    quantise (aeq_a16w8: "Ranks of scales (4) and zps (4) must be the same as the tensor rank (3)")."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer

    signatures = Interpreter(model_content=float32_tflite).get_signature_list()
    datasets = (dict(representative_dataset) if isinstance(representative_dataset, Mapping)
                else {key: representative_dataset for key in signatures})
    if len(datasets) != len(signatures) or set(datasets) != set(signatures):
        raise VariantConversionError(f"calibration data for signatures {sorted(datasets)}; the float32 model has "
                                     f"{sorted(signatures)}")
    calibration = {}
    for key, io in signatures.items():
        samples = []
        for sample in datasets[key]():
            if len(sample) != len(io["inputs"]):
                raise ValueError(f"representative_dataset items have {len(sample)} inputs; signature {key!r} "
                                 f"takes {io['inputs']}")
            samples.append(dict(zip(io["inputs"], sample)))
        if not samples:
            raise ValueError(f"representative_dataset yielded no samples for signature {key!r}")
        calibration[key] = samples
    class Quantizer(quantizer.Quantizer):
        def _ensure_model_qsv_sufficient(self, calibration_result):
            # ai-edge-quantizer's own check builds an interpreter that keeps every intermediate tensor just to
            # list the tensor names: about 4 GB more at the end of clip-vit-large-patch14-336's image int8. Every
            # subgraph here is a signature's, so every tensor without statistics is one the check would name.
            missing = sorted(name for name, qsv in calibration_result.items() if not qsv)
            if missing:
                raise ValueError(f"calibration gave no min/max for tensors {missing[:5]}")

        def calibrate_keeping_outputs(self, mode):
            """calibrate()'s statistics, and the float model's output of every sample as
            int8_fallback.signature_outputs gives them: the calibration runs each sample through the float model,
            and the fallback's check needs those outputs (a large image tower's invoke takes seconds). Quantizer
            .calibrate does what this does without keeping them."""
            run = calibrator.Calibrator(self._float_model_buffer, num_threads=threads, mode=mode)
            run.calibrate(calibration, self._recipe_manager, cache_output=True)
            outputs = run.get_cached_output()  # in the order the samples were run
            if len(outputs) != sum(len(samples) for samples in calibration.values()):
                raise ValueError(f"the calibration kept {len(outputs)} outputs for "
                                 f"{sum(len(s) for s in calibration.values())} samples")
            outputs, reference = iter(outputs), {}
            for key, samples in calibration.items():
                rows = [next(outputs) for _ in samples]
                if any(len(row) != 1 for row in rows):
                    raise ValueError(f"signature {key!r} has several outputs; the fallback's check reads one")
                reference[key] = np.stack([np.asarray(*row.values(), np.float64).reshape(-1) for row in rows])
            return run.get_model_qsvs(), reference

    def quantize(keep_float):
        qt = Quantizer(float32_tflite, ai_edge_quantizer_recipe(recipe, float32_tflite, keep_float))
        return bytes(qt.quantize(result, enable_progress_bar=False, enable_progress_report=False).quantized_model)

    try:
        mode = (calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED if recipe.only
                else calibrator.CalibrationMode.CALIBRATION_PRESERVE_ALL_TENSORS)
        calibrating = Quantizer(float32_tflite, ai_edge_quantizer_recipe(recipe, float32_tflite))
        if not recipe.float_fallback:
            result = calibrating.calibrate(calibration, num_threads=threads, mode=mode)
            return quantize(()), ()
        result, reference = calibrating.calibrate_keeping_outputs(mode)
        searched = int8_fallback.search(float32_tflite, quantize, calibration, VARIANTS["int8"].bar + FALLBACK_MARGIN,
                                        threads, reference, crops_per_photo)
        return searched.tflite, searched.float_ops
    except Exception as e:
        raise VariantConversionError(f"ai-edge-quantizer recipe {recipe.name} failed: {_first_lines(e)}") from e


def _check_runs(tflite: bytes, name: str, samples: Mapping[str, Sequence[np.ndarray] | None]) -> None:
    """Loads and invokes every signature once in ai_edge_litert on its sample (zeros if none); Flex ops
    would fail here. Checks the outputs are float32, as the contract says."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=tflite)
        signatures = interpreter.get_signature_list()
        for key, io in signatures.items():
            runner = interpreter.get_signature_runner(key)
            details = runner.get_input_details()
            sample = samples.get(key)
            feeds = {}
            for i, input_name in enumerate(io["inputs"]):
                detail = details[input_name]
                value = np.zeros(detail["shape"], detail["dtype"]) if sample is None else sample[i]
                feeds[input_name] = np.asarray(value, detail["dtype"])
            runner(**feeds)
            for output_name, detail in runner.get_output_details().items():
                if detail["dtype"] != np.float32:
                    raise VariantConversionError(f"the {name} variant's output {output_name!r} of signature "
                                                 f"{key!r} is {np.dtype(detail['dtype']).name}, not float32")
    except VariantConversionError:
        raise
    except Exception as e:
        raise VariantConversionError(f"the {name} variant does not run in ai_edge_litert: {_first_lines(e)}") from e


def run_tflite(tflite: bytes, inputs: Sequence[np.ndarray], num_threads: int = 2,
               signature: str | None = None) -> np.ndarray:
    """Runs a single-input/single-output model (or one signature of it) on each input (batch-1 arrays);
    stacks the outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
    if signature is not None:
        runner = interpreter.get_signature_runner(signature)
        (input_name,), (output_name,) = runner.get_input_details(), runner.get_output_details()
        return np.stack([runner(**{input_name: np.asarray(x)})[output_name][0].copy() for x in inputs])
    interpreter.allocate_tensors()
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for x in inputs:
        interpreter.set_tensor(input_detail["index"], np.asarray(x, input_detail["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0].copy())
    return np.stack(outputs)


def _first_lines(error: Exception, count: int = 3) -> str:
    return " | ".join(str(error).strip().splitlines()[:count])


def representative(inputs: Sequence[np.ndarray]) -> RepresentativeDataset:
    """A representative_dataset over batch-1 arrays (one model input each)."""
    return lambda: ([x] for x in inputs)
