"""Delegate-readiness checker on tiny real models converted by the TFLite converter.

Each negative model carries one defect the GPU delegate or the Edge TPU documents as unsupported; the
checker must flag the operator that carries it. The positive models use only documented-supported ops.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from converters import delegate_check, tflite_model

RNG = np.random.default_rng(0)


def _convert(fn, spec, *, float16=False, select_tf_ops=False, int8_data=None):
    concrete = tf.function(fn).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    if int8_data is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in int8_data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _calibration(shape):
    return [RNG.standard_normal(shape).astype(np.float32) for _ in range(8)]


CONV_KERNEL = tf.constant(RNG.standard_normal((3, 3, 3, 8)).astype(np.float32))
MATRIX = tf.constant(RNG.standard_normal((8, 8)).astype(np.float32))
EMBEDDING = tf.constant(RNG.standard_normal((100, 8)).astype(np.float32))


def conv_add_softmax(x):
    return tf.nn.softmax(tf.nn.conv2d(x, CONV_KERNEL, 1, "SAME") + 1.0)


def conv_add_flat_softmax(x):
    # The Edge TPU's SOFTMAX takes a 1-D input only, so flatten before it.
    return tf.nn.softmax(tf.reshape(tf.nn.conv2d(x, CONV_KERNEL, 1, "SAME") + 1.0, [1, -1]))


def add_argmax_mul(x):
    # ARG_MAX has no GPU parser; the ops around it are supported.
    y = x + 1.0
    return tf.cast(tf.argmax(y, axis=-1, output_type=tf.int32), tf.float32) * 2.0


def matmul_then_add(x):
    # [1, 4, 8] x [1, 8, 4]: BATCH_MATMUL with two runtime inputs, then a supported ADD.
    return tf.matmul(x, x, transpose_b=True) + 1.0


def rank5_add(x):
    return tf.reshape(x, [1, 2, 2, 2, 2]) * 3.0 + 1.0


def cumprod(x):
    return tf.math.cumprod(x, axis=1)


def embed_tokens(ids):
    return tf.gather(EMBEDDING, ids) * 2.0


def uint8_conv_add_softmax(pixels):
    # The CAST from uint8 has no GPU kernel; everything after it does.
    return conv_add_softmax(tf.cast(pixels, tf.float32) / 255.0)


def strided_slice_shrink(x):
    return x[:, 0] + 1.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite")
    specs = {
        "gpu_ok": (conv_add_softmax, tf.TensorSpec([1, 8, 8, 3], tf.float32), {"float16": True}),
        "argmax": (add_argmax_mul, tf.TensorSpec([1, 4, 8], tf.float32), {}),
        "dynamic": (conv_add_softmax, tf.TensorSpec([None, 8, 8, 3], tf.float32), {}),
        "rank5": (rank5_add, tf.TensorSpec([1, 16], tf.float32), {}),
        "flex": (cumprod, tf.TensorSpec([1, 4], tf.float32), {"select_tf_ops": True}),
        "gather2d": (embed_tokens, tf.TensorSpec([1, 6], tf.int32), {}),
        "shrink": (strided_slice_shrink, tf.TensorSpec([1, 4, 8], tf.float32), {}),
        "uint8_in": (uint8_conv_add_softmax, tf.TensorSpec([1, 8, 8, 3], tf.uint8), {"float16": True}),
        "edgetpu_ok": (conv_add_flat_softmax, tf.TensorSpec([1, 8, 8, 3], tf.float32),
                       {"int8_data": _calibration((1, 8, 8, 3))}),
        "int8_matmul": (matmul_then_add, tf.TensorSpec([1, 4, 8], tf.float32),
                        {"int8_data": _calibration((1, 4, 8))}),
        "int8_batch2": (conv_add_softmax, tf.TensorSpec([2, 8, 8, 3], tf.float32),
                        {"int8_data": _calibration((2, 8, 8, 3))}),
    }
    paths = {}
    for name, (fn, spec, kwargs) in specs.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(_convert(fn, spec, **kwargs))
    return paths


def _flagged(report, op_name):
    return [f for f in report.unsupported if f.op_name == op_name]


def test_gpu_accepts_float16_conv_add_softmax(models):
    report = delegate_check.check(models["gpu_ok"], "gpu")
    assert report.ready, report.format_text()
    names = [op.name for op in report.ops]
    assert {"CONV_2D", "SOFTMAX"} <= set(names)
    # float16 weights arrive as constant float16 tensors behind DEQUANTIZE; the delegate folds them.
    assert any(op.name == "DEQUANTIZE" and op.inputs[0].dtype == "float16" for op in report.ops)
    assert report.delegated_op_count == len(report.ops)


def test_gpu_flags_unsupported_builtin_and_keeps_largest_partition(models):
    report = delegate_check.check(models["argmax"], "gpu")
    assert not report.ready
    (finding,) = _flagged(report, "ARG_MAX")
    assert "not supported by the GPU delegate" in finding.problems[0]
    assert not finding.on_delegate
    # The int32 ARG_MAX output also makes the CAST after it receive an int32 runtime input, which CAST allows.
    assert _flagged(report, "CAST") == []
    assert 0 < report.delegated_op_count < len(report.ops)


def test_gpu_partition_keeps_float16_weights_with_their_consumers(models):
    report = delegate_check.check(models["uint8_in"], "gpu")
    (cast,) = _flagged(report, "CAST")
    assert "uint8 -> float32" in cast.problems[0] and not cast.on_delegate
    # The converter lists the weight DEQUANTIZEs first, before the CAST; they still go with the CONV_2D.
    dequantizes = [f for f in report.findings if f.op_name == "DEQUANTIZE"]
    assert dequantizes and dequantizes[0].op_index < cast.op_index
    assert all(f.on_delegate for f in report.findings if f.op_name != "CAST")
    assert report.delegated_op_count == len(report.ops) - 1


def test_gpu_flags_dynamic_shapes(models):
    report = delegate_check.check(models["dynamic"], "gpu")
    assert not report.ready
    assert any("dynamic" in p for p in report.model_problems)
    conv = next(op for op in report.ops if op.name == "CONV_2D")
    assert conv.inputs[0].shape_signature[0] == -1
    assert any("dynamic shape" in p for p in _flagged(report, "CONV_2D")[0].problems)


def test_gpu_flags_rank5_tensors(models):
    report = delegate_check.check(models["rank5"], "gpu")
    assert not report.ready
    flagged = {f.op_name for f in report.unsupported if any("rank 5 > 4" in p for p in f.problems)}
    assert {"MUL", "ADD"} <= flagged


def test_gpu_flags_flex_op(models):
    report = delegate_check.check(models["flex"], "gpu")
    assert not report.ready
    (finding,) = _flagged(report, "FlexCumprod")
    assert "Flex (Select TF) op FlexCumprod" in finding.problems[0]


def test_gpu_flags_embedding_gather_with_2d_int_indices(models):
    report = delegate_check.check(models["gather2d"], "gpu")
    (finding,) = _flagged(report, "GATHER")
    assert any("indices must be 1-D" in p for p in finding.problems)
    assert any("runtime input tensor of type int32" in p for p in finding.problems)


def test_gpu_flags_strided_slice_shrink_axis(models):
    report = delegate_check.check(models["shrink"], "gpu")
    (finding,) = _flagged(report, "STRIDED_SLICE")
    assert any("shrinkAxisMask" in p for p in finding.problems)


def test_edgetpu_accepts_full_integer_conv_add_softmax(models):
    report = delegate_check.check(models["edgetpu_ok"], "edgetpu")
    assert report.ready, report.format_text()
    assert all(t.dtype == "int8" for op in report.ops for t in op.outputs)


def test_edgetpu_flags_float_model(models):
    report = delegate_check.check(models["gpu_ok"], "edgetpu")
    assert not report.ready
    assert any("not 8-bit" in p for p in report.model_problems)
    conv = _flagged(report, "CONV_2D")[0]
    assert any("float32, not 8-bit quantized" in p for p in conv.problems)
    assert report.delegated_op_count == 0


def test_edgetpu_maps_up_to_first_unsupported_op(models):
    report = delegate_check.check(models["int8_matmul"], "edgetpu")
    (matmul,) = _flagged(report, "BATCH_MATMUL")
    assert "not in the Edge TPU's supported operations" in matmul.problems[0]
    after = [f for f in report.findings if f.op_index > matmul.op_index]
    assert any(f.op_name == "ADD" and not f.problems for f in after)
    assert not any(f.on_delegate for f in after)  # supported, but after the first unsupported op: CPU


def test_edgetpu_flags_batch_above_innermost_three_dims(models):
    report = delegate_check.check(models["int8_batch2"], "edgetpu")
    conv = _flagged(report, "CONV_2D")[0]
    assert any("more than 3 dimensions" in p for p in conv.problems)


def test_report_lists_every_tensor(models):
    report = delegate_check.check(models["gpu_ok"], "gpu")
    data = report.to_dict()
    json.dumps(data)
    conv = next(op for op in data["ops"] if op["name"] == "CONV_2D")
    assert conv["inputs"][0]["shape"] == [1, 8, 8, 3] and conv["inputs"][0]["dtype"] == "float32"
    assert conv["outputs"][0]["shape"] == [1, 8, 8, 8]
    assert all(op["version"] >= 1 for op in data["ops"])


def test_not_a_tflite_file(tmp_path):
    bogus = tmp_path / "notes.tflite"
    bogus.write_text("this is not a flatbuffer at all")
    with pytest.raises(tflite_model.TFLiteModelError, match="notes.tflite.*not a TFLite model"):
        tflite_model.read_model(bogus)


def test_truncated_file(models, tmp_path):
    data = models["gpu_ok"].read_bytes()
    for cut in (len(data) // 2, len(data) - 16):
        truncated = tmp_path / f"cut{cut}.tflite"
        truncated.write_bytes(data[:cut])
        with pytest.raises(tflite_model.TFLiteModelError, match=f"cut{cut}.tflite"):
            tflite_model.read_model(truncated)


def test_missing_file(tmp_path):
    with pytest.raises(tflite_model.TFLiteModelError, match="absent.tflite"):
        tflite_model.read_model(tmp_path / "absent.tflite")


def test_cli_exit_codes_and_output(models, tmp_path, capsys):
    assert delegate_check.main([str(models["gpu_ok"]), "--target=gpu"]) == 0
    assert "READY" in capsys.readouterr().out
    assert delegate_check.main([str(models["flex"]), "--target=gpu", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["unsupported_ops"] == ["FlexCumprod"]
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"\0" * 64)
    assert delegate_check.main([str(bogus), "--target=edgetpu"]) == 2
    assert "bogus.tflite" in capsys.readouterr().err



@pytest.mark.parametrize("tower", ["image", "text"])
def test_float16_encoders_run_on_the_gpu_but_their_integer_input_ops(small_export, tower):
    """The README's claim: in the exported float16 encoders (every signature), the GPU delegate cannot run only
    the ops that read the integer inputs (uint8 pixels cast to float, int32 ids gathered and compared)."""
    path = os.path.join(small_export, "tflite", f"{tower}_encoder_float16.tflite")
    with open(path, "rb") as file:
        subgraphs = tflite_model.signature_subgraphs(file.read(), path)
    assert subgraphs
    for key, subgraph in subgraphs.items():
        report = delegate_check.check(path, "gpu", subgraph)
        inputs = {t.index for t in tflite_model.read_model(path, subgraph).inputs}
        for op, finding in zip(report.ops, report.findings):
            if finding.problems:
                assert any(t.index in inputs for t in op.present_inputs), (key, op.name, finding.problems)
        assert report.unsupported, f"{key}: the integer input ops are flagged"
