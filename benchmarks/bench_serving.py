"""Serving requests end to end, side by side in one run: the export's SavedModel signatures against transformers'
eager pipeline, ONNX Runtime with the same Python preprocessing, and LiteRT with the dynamic_int8 encoders.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_serving --preset=clip-vit-base-patch32 \
        --work_dir=/tmp/serving [--rounds=20] [--threads=2]

(onnx and onnxruntime are the `bench` extra.) The checkpoint (random weights of the preset), the export and the
ONNX files are made as benchmarks/bench_peers.py makes them, in WORK_DIR, and reused.

A request is what a server gets and answers, from encoded bytes or strings to the result:
  (a) one 640 x 480 JPEG -> its embedding          (b) 16 JPEGs (real photos, 640 x 480) -> 16 embeddings
  (c) one prompt -> its embedding                   (d) 16 prompts -> 16 embeddings
  (e) one JPEG x 10 labels -> class probabilities
Frameworks, one worker process each (bench_peers.WorkerProcess), taking turns (bench_peers.alternating_rounds):
  savedmodel   the export's signatures: encode_image, encode_text, serving_default (probs)
  transformers Pillow + CLIPImageProcessor + CLIPModel, CLIPTokenizerFast (torch.inference_mode)
  onnx         ONNX Runtime fp32 towers with the same Python preprocessing as transformers
  litert       Pillow's decode, tflite/preprocess.tflite, the dynamic_int8 encoders (batch 1, so a batch is a
               loop), CLIPTokenizerFast's ids on the shortest text signature that holds them
Before timing, every worker's embeddings of (a) and (c) are compared with transformers' (cosine), so that the
times compare the same work. Prints the CPU, then per request and framework the median and p90 latency in ms
and the ratios of the medians to transformers and to ONNX Runtime.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np

from benchmarks.bench_peers import WorkerProcess, alternating_rounds, make_checkpoint, make_export, make_onnx
from benchmarks.machine import cpu_model
from converters import parity

REQUESTS = ("one_jpeg", "16_jpegs", "one_prompt", "16_prompts", "one_jpeg_10_labels")
FRAMEWORKS = ("savedmodel", "transformers", "onnx", "litert")
LITERT_VARIANT = "dynamic_int8"
CONTEXT_LENGTH = 77  # texts longer than this are cut, keeping the end token, as the SavedModel does


# --- inputs, the same in every process ---------------------------------------------------------------------------

def jpegs(count):
    """[bytes]: real photos (tests/photos.py) resized to 640 x 480 and saved as JPEG (quality 90) by Pillow."""
    from PIL import Image

    from tests import photos

    names = sorted(photos.sample_photos())
    encoded = []
    for index in range(count):
        image = Image.fromarray(np.ascontiguousarray(photos.photo(names[index % len(names)])))
        image = image.resize((640, 480), Image.Resampling.BICUBIC)
        if index >= len(names):
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # 16 different images
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def prompts(count):
    from converters import datasets

    from tests import reference

    texts = list(reference.SENTENCES) + list(datasets.HELD_OUT_CAPTIONS)
    return texts[:count]


def labels():
    from converters import datasets

    return [f"a photo of {label}" for label in datasets.ZERO_SHOT_LABELS[:10]]


def requests():
    images, texts = jpegs(16), prompts(16)
    return {"one_jpeg": (images[:1], None), "16_jpegs": (images, None), "one_prompt": (None, texts[:1]),
            "16_prompts": (None, texts), "one_jpeg_10_labels": (images[:1], labels())}


def _normalised(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- one framework per worker ---------------------------------------------------------------------------------

def _hf_processors(spec):
    """transformers' CLIPImageProcessor (its PIL backend: the default one needs torchvision) at the model's
    resolution, and CLIPTokenizerFast on the export's copy of OpenAI's vocabulary (no hub here)."""
    from transformers import CLIPImageProcessorPil, CLIPTokenizerFast

    resolution = spec["resolution"]
    assets = os.path.join(spec["export"], "assets")
    return (CLIPImageProcessorPil(size={"shortest_edge": resolution}, crop_size={"height": resolution,
                                                                               "width": resolution}),
            CLIPTokenizerFast(os.path.join(assets, "vocab.json"), os.path.join(assets, "merges.txt")))


class SavedModelServer:
    def __init__(self, spec, threads):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the tokenizer's ops)

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        self.signatures = tf.saved_model.load(os.path.join(spec["export"], "saved_model")).signatures

    def prepare(self, images, texts):
        tf, signatures = self.tf, self.signatures
        if images and texts:
            feed = {"images": tf.constant(images), "texts": tf.constant(texts)}
            return lambda: signatures["serving_default"](**feed)["probs"].numpy()
        if images:
            feed = tf.constant(images)
            return lambda: signatures["encode_image"](images=feed)["embeddings"].numpy()
        feed = tf.constant(texts)
        return lambda: signatures["encode_text"](texts=feed)["embeddings"].numpy()


class TransformersServer:
    """The eager Hugging Face pipeline a Python server would write: PIL opens the bytes, CLIPImageProcessor and
    CLIPTokenizerFast prepare them, CLIPModel embeds them."""

    def __init__(self, spec, threads):
        import torch
        from transformers import CLIPModel

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = CLIPModel.from_pretrained(spec["checkpoint"]).eval()
        self.images, self.tokenizer = _hf_processors(spec)

    def _features(self, out):
        return getattr(out, "pooler_output", out)  # transformers 5 returns an output object

    def prepare(self, images, texts):
        from PIL import Image

        torch, model = self.torch, self.model

        def embed_images():
            pixels = self.images([Image.open(io.BytesIO(data)).convert("RGB") for data in images],
                                 return_tensors="pt")["pixel_values"]
            return self._features(model.get_image_features(pixel_values=pixels))

        def embed_texts():
            ids = self.tokenizer(texts, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt")
            return self._features(model.get_text_features(**ids))

        def call():
            with torch.inference_mode():
                if images and texts:
                    image = torch.nn.functional.normalize(embed_images(), dim=-1)
                    text = torch.nn.functional.normalize(embed_texts(), dim=-1)
                    return (model.logit_scale.exp() * image @ text.T).softmax(dim=-1).numpy()
                return (embed_images() if images else embed_texts()).numpy()
        return call


class OnnxServer(TransformersServer):
    """ONNX Runtime fp32 towers fed by the same Python preprocessing as TransformersServer."""

    def __init__(self, spec, threads):
        import onnxruntime
        from safetensors.numpy import load_file

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.sessions = {tower: onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                         for tower, path in spec["onnx"].items()}
        self.images, self.tokenizer = _hf_processors(spec)
        weights = load_file(os.path.join(spec["checkpoint"], "model.safetensors"))
        self.logit_multiplier = float(np.exp(weights["logit_scale"]))

    def prepare(self, images, texts):
        from PIL import Image

        def embed_images():
            pixels = self.images([Image.open(io.BytesIO(data)).convert("RGB") for data in images],
                                 return_tensors="np")["pixel_values"]
            return self.sessions["image"].run(None, {"pixel_values": pixels.astype(np.float32)})[0]

        def embed_texts():
            # The ONNX text tower takes input_ids only, and needs no mask: CLIP pools at the first end token and its
            # attention is causal, so the end tokens padding a row after it change nothing.
            ids = self.tokenizer(texts, padding=True, truncation=True, max_length=CONTEXT_LENGTH,
                                 return_tensors="np")["input_ids"].astype(np.int64)
            return self.sessions["text"].run(None, {"input_ids": ids})[0]

        def call():
            if images and texts:
                return _softmax(self.logit_multiplier * _normalised(embed_images()) @ _normalised(embed_texts()).T)
            return embed_images() if images else embed_texts()
        return call


class LiteRtServer:
    """What a device does, in Python: decode (Pillow here, the platform's decoder on a phone), preprocess.tflite,
    the image encoder; CLIPTokenizerFast's ids on the shortest text signature that holds them."""

    def __init__(self, spec, threads):
        from ai_edge_litert.interpreter import Interpreter

        tflite = os.path.join(spec["export"], "tflite")
        self.preprocess = Interpreter(model_path=os.path.join(tflite, "preprocess.tflite"), num_threads=threads)
        self.image = Interpreter(model_path=os.path.join(tflite, f"image_encoder_{LITERT_VARIANT}.tflite"),
                                 num_threads=threads)
        self.image.allocate_tensors()
        text = Interpreter(model_path=os.path.join(tflite, f"text_encoder_{LITERT_VARIANT}.tflite"),
                           num_threads=threads)
        self.text_runners = {}
        for key in text.get_signature_list():
            runner = text.get_signature_runner(key)
            ((name, detail),) = runner.get_input_details().items()
            self.text_runners[int(detail["shape"][1])] = (runner, name)
        self.tokenizer = _hf_processors(spec)[1]
        with open(os.path.join(spec["export"], "manifest.json")) as file:
            self.logit_multiplier = json.load(file)["logit_multiplier"]

    def _embed_image(self, data):
        from PIL import Image

        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[None]
        pre = self.preprocess
        pre.resize_tensor_input(pre.get_input_details()[0]["index"], pixels.shape)
        pre.allocate_tensors()
        pre.set_tensor(pre.get_input_details()[0]["index"], pixels)
        pre.invoke()
        image = self.image
        image.set_tensor(image.get_input_details()[0]["index"], pre.get_tensor(pre.get_output_details()[0]["index"]))
        image.invoke()
        return image.get_tensor(image.get_output_details()[0]["index"])[0].copy()

    def _embed_text(self, text):
        ids = self.tokenizer(text, truncation=True, max_length=max(self.text_runners))["input_ids"]
        length = min(n for n in self.text_runners if n >= len(ids))
        runner, name = self.text_runners[length]
        padded = np.zeros((1, length), np.int32)
        padded[0, :len(ids)] = ids
        return next(iter(runner(**{name: padded}).values()))[0].copy()

    def prepare(self, images, texts):
        def call():
            image = np.stack([self._embed_image(data) for data in images]) if images else None
            text = np.stack([self._embed_text(t) for t in texts]) if texts else None
            if images and texts:
                return _softmax(self.logit_multiplier * image @ text.T)  # both are L2-normalised
            return image if images else text
        return call


SERVERS = {"savedmodel": SavedModelServer, "transformers": TransformersServer, "onnx": OnnxServer,
           "litert": LiteRtServer}


def worker(spec, threads):
    """Serve one framework: {"embed": request} -> its output, {"case": request} -> seconds, on JSON lines."""
    server = SERVERS[spec["kind"]](spec, threads)
    calls = {name: server.prepare(*inputs) for name, inputs in requests().items()}
    print(json.dumps({"ready": {"cases": list(calls)}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "embed" in request:
            print(json.dumps({"embedding": np.asarray(calls[request["embed"]]()).tolist()}), flush=True)
            continue
        call = calls[request["case"]]
        start = time.perf_counter()
        call()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--work_dir", default="/tmp/bench_serving", help="checkpoint, export and ONNX files (reused)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 1000 or not 1 <= args.threads <= 256:
        parser.error("--rounds must be in 1..1000 and --threads in 1..256")
    if args.worker:
        return worker(json.loads(args.worker), args.threads)

    from transformers import CLIPConfig

    checkpoint = os.path.join(args.work_dir, "checkpoint")
    make_checkpoint(args.preset, checkpoint)
    resolution = CLIPConfig.from_pretrained(checkpoint).vision_config.image_size
    export = make_export(args.preset, checkpoint, os.path.join(args.work_dir, "export"), ["float32", LITERT_VARIANT])
    onnx = make_onnx(checkpoint, os.path.join(args.work_dir, "onnx"), resolution)
    common = {"checkpoint": checkpoint, "export": export, "resolution": resolution,
              "onnx": {tower: onnx[(tower, "float32")] for tower in ("image", "text")}}
    workers = {}
    for name in FRAMEWORKS:
        workers[name] = WorkerProcess(name, dict(common, kind=name), args.threads, module="benchmarks.bench_serving")
        print(f"{name}: ready", flush=True)

    reference_outputs = {case: np.array(workers["transformers"].ask({"embed": case})["embedding"]) for case in REQUESTS}
    for name, process in workers.items():
        for case in REQUESTS:
            found = np.array(process.ask({"embed": case})["embedding"])
            if case == "one_jpeg_10_labels":
                agreement = f"max probability difference {np.abs(found - reference_outputs[case]).max():.2e}"
            else:
                agreement = f"min cosine {parity.cosine_rows(found, reference_outputs[case]).min():.6f}"
            print(f"{name} {case} vs transformers: {agreement}", flush=True)

    times = alternating_rounds(workers, args.rounds)

    print(f"\n{args.preset}, random weights; {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads per "
          f"framework, median and p90 of {args.rounds} alternating rounds, load average {os.getloadavg()[0]:.2f} "
          f"at the end; litert = preprocess.tflite + {LITERT_VARIANT} encoders\n")
    print("| request | " + " | ".join(f"{name} ms (p90)" for name in FRAMEWORKS)
          + " | savedmodel / transformers | savedmodel / onnx | litert / transformers |")
    print("|---|" + "---:|" * (len(FRAMEWORKS) + 3))
    for case in REQUESTS:
        median = {name: 1e3 * statistics.median(times[(name, case)]) for name in FRAMEWORKS}
        p90 = {name: 1e3 * float(np.percentile(times[(name, case)], 90)) for name in FRAMEWORKS}
        cells = " | ".join(f"{median[name]:.1f} ({p90[name]:.1f})" for name in FRAMEWORKS)
        print(f"| {case} | {cells} | {median['savedmodel'] / median['transformers']:.2f}x | "
              f"{median['savedmodel'] / median['onnx']:.2f}x | {median['litert'] / median['transformers']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
