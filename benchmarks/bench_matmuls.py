"""Where float32 time goes: a tower's matrix products alone, in LiteRT (XNNPACK) and ONNX Runtime, beside the
whole towers, side by side in one run.

    PYTHONPATH=.:/tmp/bench_pkgs .venv/bin/python -m benchmarks.bench_matmuls --preset=clip-vit-base-patch32 \
        --peers_dir=/tmp/peers [--tower=image] [--rounds=20] [--threads=2]

The "matmuls" model has, per transformer layer, the tower's six products with their shapes (q, k, v and output
projections D x D, MLP D x 4D and 4D x D, on [1, T, D]: T = patches + 1 for the image tower, 77 for text) and
residual adds between them, nothing else: no LayerNorm, attention, softmax or GELU. The same random weights go
into a TFLite file (TFLiteConverter, so FULLY_CONNECTED as in our encoders) and an ONNX graph (MatMul + Add, as
torch.onnx emits for transformers' Linear). If the matmuls alone show the same ratio as the whole towers, the
gap is in the matrix-product kernels, not in the ops around them that our graph emits.

With --peers_dir (a bench_peers work folder) the whole float32 towers from that folder run in the same rounds:
WORK_DIR/export/PRESET/tflite/{tower}_encoder_float32.tflite and WORK_DIR/onnx/{tower}_float32.onnx.

One worker process per model (as in bench_peers), rounds alternate, a pause before each call; medians after one
warm-up round. onnx and onnxruntime are the `bench` extra.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.machine import cpu_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tower_shape(preset, tower):
    """(tokens, width, layers) of a preset's tower."""
    from clip_edge import presets

    config = presets.get_preset(preset)["config"]
    if tower == "image":
        tokens = (config["image_resolution"] // config["vision_patch_size"]) ** 2 + 1
        return tokens, config["vision_width"], config["vision_layers"]
    return config["context_length"], config["transformer_width"], config["transformer_layers"]


def weights(width, layers, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(width, width)] * 4 + [(width, 4 * width), (4 * width, width)]
    return [[((rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32), np.zeros(s[1], np.float32))
             for s in shapes] for _ in range(layers)]


def matmuls_tflite(tokens, width, layers, path):
    import tensorflow as tf

    class Matmuls(tf.Module):
        def __init__(self):
            self.layers = [[(tf.Variable(w), tf.Variable(b)) for w, b in layer] for layer in weights(width, layers)]

        @tf.function(input_signature=[tf.TensorSpec([1, tokens, width], tf.float32)])
        def run(self, x):
            for (q, k, v, o, fc1, fc2) in self.layers:
                linear = lambda h, wb: tf.matmul(h, wb[0]) + wb[1]  # noqa: E731
                x = x + linear(linear(x, q) + linear(x, k) + linear(x, v), o)
                x = x + linear(linear(x, fc1), fc2)
            return x

    module = Matmuls()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.run.get_concrete_function()], module)
    with open(path, "wb") as file:
        file.write(converter.convert())


def matmuls_onnx(tokens, width, layers, path):
    from onnx import TensorProto, helper, numpy_helper, save

    nodes, initialisers = [], []

    def linear(h, name, wb):
        initialisers.extend([numpy_helper.from_array(wb[0], f"{name}.w"), numpy_helper.from_array(wb[1], f"{name}.b")])
        nodes.extend([helper.make_node("MatMul", [h, f"{name}.w"], [f"{name}.m"]),
                      helper.make_node("Add", [f"{name}.m", f"{name}.b"], [name])])
        return name

    def add(a, b, name):
        nodes.append(helper.make_node("Add", [a, b], [name]))
        return name

    x = "x"
    for i, (q, k, v, o, fc1, fc2) in enumerate(weights(width, layers)):
        qkv = add(add(linear(x, f"l{i}.q", q), linear(x, f"l{i}.k", k), f"l{i}.qk"), linear(x, f"l{i}.v", v),
                  f"l{i}.qkv")
        x = add(x, linear(qkv, f"l{i}.o", o), f"l{i}.r1")
        x = add(x, linear(linear(x, f"l{i}.fc1", fc1), f"l{i}.fc2", fc2), f"l{i}.r2")
    graph = helper.make_graph(nodes, "matmuls",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, tokens, width])], initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, path)


def worker(path, threads):
    """Run one model: read a line on stdin per call, answer with its seconds."""
    rng = np.random.default_rng(0)
    if path.endswith(".onnx"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        (spec,) = session.get_inputs()
        shape = [d if isinstance(d, int) else 77 for d in spec.shape]  # the text tower's dynamic length: 77, as ours
        feed = {spec.name: (rng.integers(0, 1000, shape).astype(np.int64) if "int" in spec.type else
                            rng.standard_normal(shape).astype(np.float32))}
        call = lambda: session.run(None, feed)  # noqa: E731
    else:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], rng.integers(0, 256, detail["shape"]).astype(detail["dtype"]))
        call = interpreter.invoke
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        call()
        print(time.perf_counter() - start, flush=True)


def measure(folder, args, tokens, width, layers):
    """{model name: seconds per round}, the matmuls models written to `folder`."""
    models = {"matmuls, LiteRT": os.path.join(folder, "matmuls.tflite"),
              "matmuls, ONNX Runtime": os.path.join(folder, "matmuls.onnx")}
    matmuls_tflite(tokens, width, layers, models["matmuls, LiteRT"])
    matmuls_onnx(tokens, width, layers, models["matmuls, ONNX Runtime"])
    if args.peers_dir:
        models[f"{args.tower} tower, LiteRT float32"] = os.path.join(
            args.peers_dir, "export", args.preset, "tflite", f"{args.tower}_encoder_float32.tflite")
        models[f"{args.tower} tower, ONNX Runtime float32"] = os.path.join(
            args.peers_dir, "onnx", f"{args.tower}_float32.onnx")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    workers = {}
    for name, path in models.items():
        workers[name] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_matmuls", f"--worker={path}", f"--threads={args.threads}"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if workers[name].stdout.readline().strip() != "ready":
            raise SystemExit(f"worker for {path} failed to start")
    times = {name: [] for name in models}
    for _ in range(args.rounds + 1):  # the first round warms up
        for name, process in workers.items():
            time.sleep(0.05)  # the previous worker's threads go to sleep
            process.stdin.write("\n")
            process.stdin.flush()
            times[name].append(float(process.stdout.readline()))
    for process in workers.values():
        process.stdin.close()
        process.wait()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--tower", choices=("image", "text"), default="image")
    parser.add_argument("--peers_dir", help="a bench_peers --work_dir: its whole float32 towers run too")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.threads)

    tokens, width, layers = tower_shape(args.preset, args.tower)
    with tempfile.TemporaryDirectory(prefix="bench_matmuls-") as folder:
        times = measure(folder, args, tokens, width, layers)

    flops = 2 * tokens * layers * 12 * width * width  # 4 D x D products and two D x 4D ones per layer
    print(f"{args.preset} {args.tower} tower: T={tokens}, D={width}, {layers} layers, {flops / 1e9:.2f} GFLOP in "
          f"matmuls; {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads, median of {args.rounds} "
          f"alternating rounds, load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| model | ms | GFLOP/s in matmuls |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values[1:])
        rate = f"{flops / median / 1e9:.0f}" if name.startswith("matmuls") else ""
        print(f"| {name} | {1000 * median:.1f} | {rate} |")


if __name__ == "__main__":
    main()
