"""PyTorch vs ONNX Runtime vs every TFLite variant, side by side in one run, same random weights, batch 1.

    PYTHONPATH=.:/tmp/bench_pkgs .venv/bin/python -m benchmarks.bench_peers --preset=clip-vit-base-patch32 \
        --work_dir=/tmp/peers [--rounds=20] [--threads=2]

(onnx and onnxruntime are the `bench` extra: `pip install -e '.[bench]'`, or into a folder on PYTHONPATH.)

1. Weights: a transformers checkpoint of the preset's architecture with random weights, saved to
   WORK_DIR/checkpoint (reused if there). Latency does not depend on the weights.
2. Artifacts from that one checkpoint: the clip_edge export (`python -m converters.export --weights=CHECKPOINT`,
   to WORK_DIR/export, reused if there; or --export_dir), and ONNX files of transformers' CLIPModel made with
   torch.onnx: the image tower (pixel_values [1, 3, R, R]) and the text tower (input_ids [1, L], L a dynamic
   axis), each in float32 and as onnxruntime.quantization.quantize_dynamic int8 (WORK_DIR/onnx).
3. One worker process per framework and variant (PyTorch's OpenMP threads spin after each call and would slow
   the next framework in the same process): `pytorch` (transformers CLIPModel, torch.inference_mode),
   `onnx_float32`, `onnx_dynamic_int8` (onnxruntime CPU), and `tflite_<variant>` for each
   tflite/{image,text}_encoder_<variant>.tflite (ai_edge_litert, XNNPACK). The parent runs rounds; in each round
   every worker runs every case once, workers in turn, with a pause before each call so that the previous
   worker's threads have gone to sleep. Medians over the rounds after one warm-up round.
4. Cases: the image tower on one photo, and the text tower on prompts of 5, 12, 25 and 70 tokens (start and end
   tokens included). PyTorch and ONNX Runtime run a prompt at its own length. TFLite runs the 77-token encoder
   (padded) and, when the file has length-bucketed signatures (e.g. `tokens_16`: found from the file's
   signature list), also the smallest bucket that holds the prompt.
5. Equal work: before timing, every worker embeds the same inputs and the parent prints each one's cosine to
   PyTorch's embedding (ONNX and TFLite must agree with PyTorch, or the times compare different things).

Prints the CPU model (/proc/cpuinfo), thread count and load average, then a markdown table: median ms per case and
framework, and the ratio to PyTorch (below 1: faster than PyTorch).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.machine import cpu_model
from converters import parity
from converters.variants import VARIANTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT_LENGTHS = (5, 12, 25, 70)
ONNX_VARIANTS = ("float32", "dynamic_int8")
START, END = 49406, 49407
# Pause before each timed call: long enough for OpenMP (GNU: about 300,000 spins) and pthreadpool workers of the
# worker that ran before to stop spinning.
SETTLE_SECONDS = 0.05


# --- inputs, the same in every process ---------------------------------------------------------------------------

def image_input(resolution):
    """uint8 [1, R, R, 3]: a real photo resized and centre-cropped (scikit-image's rocket)."""
    from clip_edge.preprocessing import ImagePreprocessor
    from tests import photos

    return ImagePreprocessor(resolution).resize_and_crop(photos.photo("rocket")).numpy()[None]


def normalised_nchw(pixels):
    """uint8 [1, R, R, 3] -> float32 [1, 3, R, R] as CLIPImageProcessor normalises (what PyTorch and ONNX take;
    the TFLite image encoder takes the uint8 pixels and normalises inside)."""
    from clip_edge.preprocessing import OPENAI_MEAN, OPENAI_STD

    values = (pixels.astype(np.float32) / 255.0 - np.float32(OPENAI_MEAN)) / np.float32(OPENAI_STD)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def prompt_ids(length, seed=0):
    """int32 [1, length]: start token, length - 2 ordinary tokens, end token (the highest id, where CLIP pools)."""
    rng = np.random.default_rng(seed + length)
    ids = rng.integers(1, START, size=(1, length)).astype(np.int32)
    ids[0, 0], ids[0, -1] = START, END
    return ids


def padded(ids, length):
    out = np.zeros((1, length), np.int32)
    out[:, :ids.shape[1]] = ids
    return out


# --- workers -------------------------------------------------------------------------------------------------------

class PyTorchRunner:
    def __init__(self, spec, threads):
        import torch
        from transformers import CLIPModel

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = CLIPModel.from_pretrained(spec["checkpoint"]).eval()

    def prepare(self, case, inputs):
        torch = self.torch
        if case == "image":
            pixels = torch.from_numpy(normalised_nchw(inputs))
            run = lambda: self.model.get_image_features(pixel_values=pixels)  # noqa: E731
        else:
            ids = torch.from_numpy(inputs.astype(np.int64))
            run = lambda: self.model.get_text_features(input_ids=ids)  # noqa: E731

        def call():
            with torch.inference_mode():
                out = run()
            # transformers 5 returns an output object whose pooler_output is the projected embedding.
            return getattr(out, "pooler_output", out).numpy()[0]
        return call


class OnnxRunner:
    def __init__(self, spec, threads):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.sessions = {tower: onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                         for tower, path in spec["files"].items()}

    def prepare(self, case, inputs):
        if case == "image":
            session, feed = self.sessions["image"], {"pixel_values": normalised_nchw(inputs)}
        else:
            session, feed = self.sessions["text"], {"input_ids": inputs.astype(np.int64)}
        return lambda: session.run(None, feed)[0][0]


class TFLiteRunner:
    """One variant: the image encoder, and the text encoder's 77-token signature plus any length buckets."""

    def __init__(self, spec, threads):
        from ai_edge_litert.interpreter import Interpreter

        self.image = Interpreter(model_path=spec["files"]["image"], num_threads=threads)
        self.image.allocate_tensors()
        self.text = Interpreter(model_path=spec["files"]["text"], num_threads=threads)
        self.runners = {}
        for key in self.text.get_signature_list():
            runner = self.text.get_signature_runner(key)
            (detail,) = runner.get_input_details().values()
            self.runners[int(detail["shape"][1])] = (key, runner)
        self.full_length = max(self.runners)

    def prepare(self, case, inputs):
        if case == "image":
            interpreter = self.image
            index = interpreter.get_input_details()[0]["index"]
            output = interpreter.get_output_details()[0]["index"]

            def call():
                interpreter.set_tensor(index, inputs)
                interpreter.invoke()
                return interpreter.get_tensor(output)[0].copy()
            return call
        length = self.full_length if case.endswith("@77") else int(case.split("@")[1])
        key, runner = self.runners[length]
        (name,) = runner.get_input_details()
        ids = padded(inputs, length)
        return lambda: next(iter(runner(**{name: ids}).values()))[0].copy()


RUNNERS = {"pytorch": PyTorchRunner, "onnx": OnnxRunner, "tflite": TFLiteRunner}


def worker(spec, threads):
    """Serve one framework: read {"case", "repeat"} lines on stdin, answer with JSON lines on stdout."""
    runner = RUNNERS[spec["kind"]](spec, threads)
    image = image_input(spec["resolution"])
    cases = {}
    for case in spec["cases"]:
        if case == "image":
            cases[case] = runner.prepare(case, image)
        else:
            length = int(case.split(":")[1].split("@")[0])
            tflite_case = f"text@{case.split('@')[1]}" if "@" in case else "text"
            cases[case] = runner.prepare(tflite_case if spec["kind"] == "tflite" else "text", prompt_ids(length))
    print(json.dumps({"ready": {"cases": list(cases)}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "embed" in request:
            print(json.dumps({"embedding": cases[request["embed"]]().astype(float).tolist()}), flush=True)
            continue
        call = cases[request["case"]]
        start = time.perf_counter()
        call()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


class WorkerProcess:
    """`python -m MODULE --worker=SPEC --threads=N`: a benchmark's worker (here bench_peers'), asked by JSON lines."""

    def __init__(self, name, spec, threads, module="benchmarks.bench_peers"):
        self.name = name
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, f"--worker={json.dumps(spec)}", f"--threads={threads}"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()["ready"]

    def _read(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} exited with {self.process.wait()}")
            if line.startswith("{"):  # libraries may print their own lines on stdout
                return json.loads(line)

    def ask(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        return self._read()

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def alternating_rounds(workers, rounds):
    """{(worker name, case): [seconds, one per round]} over `rounds` rounds after a warm-up round: in each round
    every worker runs each of its cases once, workers in turn, SETTLE_SECONDS after the previous call. Then
    the workers are closed."""
    times = {(name, case): [] for name, process in workers.items() for case in process.info["cases"]}
    for round_index in range(rounds + 1):  # round 0 warms up
        for name, process in workers.items():
            for case in process.info["cases"]:
                time.sleep(SETTLE_SECONDS)
                seconds = process.ask({"case": case})["seconds"]
                if round_index:
                    times[(name, case)].append(seconds)
        print(f"round {round_index}/{rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    for process in workers.values():
        process.close()
    return times


# --- artifacts -----------------------------------------------------------------------------------------------------

def make_checkpoint(preset, folder):
    if os.path.exists(os.path.join(folder, "config.json")):
        return
    from clip_edge import presets
    from tests import reference

    config = presets.get_preset(preset)["config"]
    model = reference.random_hf_clip(reference.hf_clip_config(
        config["vision_width"], config["vision_layers"], config["vision_width"] // 64, config["vision_patch_size"],
        config["image_resolution"], config["transformer_width"], config["transformer_layers"],
        config["transformer_heads"], config["embed_dim"]))
    model.save_pretrained(folder)


def make_export(preset, checkpoint, output_dir, variants):
    """The export of `checkpoint` (of the preset's architecture, or any with preset None) in output_dir/NAME."""
    name = preset or "checkpoint"
    target = os.path.join(output_dir, name)
    if not os.path.exists(os.path.join(target, "manifest.json")):
        command = [sys.executable, "-m", "converters.export", f"--weights={checkpoint}", f"--output_dir={output_dir}",
                   f"--name={name}", f"--variants={','.join(variants)}"] + ([f"--preset={preset}"] if preset else [])
        subprocess.run(command, cwd=ROOT, check=True)
    return target


def make_onnx(checkpoint, folder, resolution):
    """{(tower, variant): path}: transformers' towers exported with torch.onnx, then dynamic-int8 quantised."""
    paths = {(tower, variant): os.path.join(folder, f"{tower}_{variant}.onnx")
             for tower in ("image", "text") for variant in ONNX_VARIANTS}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import CLIPModel

    os.makedirs(folder, exist_ok=True)
    model = CLIPModel.from_pretrained(checkpoint).eval()

    class Tower(torch.nn.Module):
        """One tower of the CLIPModel (a submodule, so that its weights are the ONNX graph's initialisers)."""

        def __init__(self, clip, tower):
            super().__init__()
            self.clip, self.tower = clip, tower

        def forward(self, x):
            out = (self.clip.get_image_features(pixel_values=x) if self.tower == "image"
                   else self.clip.get_text_features(input_ids=x))
            return getattr(out, "pooler_output", out)

    towers = {
        # A dynamic batch too, for bench_serving's batches of images.
        "image": (Tower(model, "image"), torch.from_numpy(normalised_nchw(image_input(resolution))), "pixel_values",
                  {"pixel_values": {0: "batch"}}),
        "text": (Tower(model, "text"), torch.from_numpy(prompt_ids(12).astype(np.int64)), "input_ids",
                 {"input_ids": {0: "batch", 1: "length"}}),
    }
    for tower, (module, example, name, dynamic) in towers.items():
        # The TorchScript exporter (dynamo=False): one graph with a symbolic length for the text tower.
        with torch.no_grad():
            torch.onnx.export(module, (example,), paths[(tower, "float32")], input_names=[name],
                              output_names=["embedding"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
        quantize_dynamic(paths[(tower, "float32")], paths[(tower, "dynamic_int8")], weight_type=QuantType.QInt8)
    return paths


def text_buckets(path):
    """Token lengths of a text encoder's signatures shorter than its full length (e.g. a `tokens_16` signature
    taking [1, 16]); read from the file, so any export with length buckets is measured with them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    lengths = set()
    for key in interpreter.get_signature_list():
        (detail,) = interpreter.get_signature_runner(key).get_input_details().values()
        lengths.add(int(detail["shape"][1]))
    return sorted(lengths - {max(lengths)})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--work_dir", default="/tmp/bench_peers", help="checkpoint, export and ONNX files (reused)")
    parser.add_argument("--checkpoint", help="a transformers CLIP checkpoint folder to measure instead of random "
                        "weights of --preset (any architecture)")
    parser.add_argument("--export_dir", help="an existing export of WORK_DIR/checkpoint (default: make one)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="TFLite variants to export when making the export (all of an existing one are measured)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker), args.threads)

    from transformers import CLIPConfig

    if args.checkpoint:
        checkpoint, preset = args.checkpoint, None
    else:
        checkpoint, preset = os.path.join(args.work_dir, "checkpoint"), args.preset
        make_checkpoint(preset, checkpoint)
    resolution = CLIPConfig.from_pretrained(checkpoint).vision_config.image_size
    export_dir = args.export_dir or make_export(preset, checkpoint, os.path.join(args.work_dir, "export"),
                                               args.variants.split(","))
    onnx_files = make_onnx(checkpoint, os.path.join(args.work_dir, "onnx"), resolution)

    text_cases = [f"text:{n}" for n in PROMPT_LENGTHS]
    specs = {"pytorch": {"kind": "pytorch", "checkpoint": checkpoint}}
    for variant in ONNX_VARIANTS:
        specs[f"onnx_{variant}"] = {"kind": "onnx", "files": {t: onnx_files[(t, variant)] for t in ("image", "text")}}
    for variant in VARIANTS:
        files = {t: os.path.join(export_dir, "tflite", f"{t}_encoder_{variant}.tflite") for t in ("image", "text")}
        if all(os.path.exists(p) for p in files.values()):
            specs[f"tflite_{variant}"] = {"kind": "tflite", "files": files}

    workers = {}
    for name, spec in specs.items():
        spec = dict(spec, resolution=resolution)
        if spec["kind"] == "tflite":
            buckets = text_buckets(spec["files"]["text"])
            cases = ["image"]
            for n in PROMPT_LENGTHS:
                cases.append(f"text:{n}@77")
                fitting = [b for b in buckets if b >= n]
                if fitting:
                    cases.append(f"text:{n}@{min(fitting)}")
            spec["cases"] = cases
        else:
            spec["cases"] = ["image"] + text_cases
        workers[name] = WorkerProcess(name, spec, args.threads)
        print(f"{name}: ready ({', '.join(workers[name].info['cases'])})", flush=True)

    # Equal work: every case's embedding against PyTorch's for the same input.
    reference = {case: workers["pytorch"].ask({"embed": case})["embedding"] for case in ["image"] + text_cases}
    agreement = {}
    for name, process in workers.items():
        for case in process.info["cases"]:
            base = case.split("@")[0]
            found = process.ask({"embed": case})["embedding"]
            agreement[(name, case)] = float(parity.cosine_rows(found, reference[base]))

    times = alternating_rounds(workers, args.rounds)
    medians = {key: 1e3 * statistics.median(values) for key, values in times.items()}
    print(f"\n{preset or 'checkpoint'} {checkpoint}; {cpu_model()}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads per framework, batch 1, median of {args.rounds} alternating rounds, load average "
          f"{os.getloadavg()[0]:.2f} at the end\n")
    print("| case | framework | signature | ms | ratio to PyTorch | cosine to PyTorch |")
    print("|---|---|---|---:|---:|---:|")
    for case in ["image"] + text_cases:
        label = "image" if case == "image" else f"text, {case.split(':')[1]} tokens"
        torch_ms = medians[("pytorch", case)]
        for (name, full_case), ms in medians.items():
            if full_case.split("@")[0] != case:
                continue
            signature = ("own length" if name.startswith(("pytorch", "onnx")) or case == "image"
                         else f"{full_case.split('@')[1]} tokens")
            if case == "image":
                signature = "[1,R,R,3]" if name.startswith("tflite") else "[1,3,R,R]"
            print(f"| {label} | {name} | {signature} | {ms:.1f} | {ms / torch_ms:.2f}x | "
                  f"{agreement[(name, full_case)]:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
