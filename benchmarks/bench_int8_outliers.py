"""int8 recipes on stress checkpoints (tests/stress_checkpoints.py): min/mean cosine to the float model on the
export's held-out data, and CPU latency against float32.

    python -m benchmarks.bench_int8_outliers --size=base32 --kinds=plain,ln_channels --strength=50 \\
        --recipes=aeq_a16w8,eq_aeq_a16w8,dynamic_int8 --towers=image --out=results.jsonl

Each checkpoint is written by transformers (`save_pretrained`) and read with clip_edge.CLIP.from_checkpoint,
as the exporter reads it. Calibration and held-out data are the exporter's (converters.datasets: 24 crops of
six calibration photos and 64 documentation sentences; 32 crops of eight other photos and 22 prompts and
captions), and the cosine is the parity harness's (per embedding, min and mean over the held-out set) against
the float TF model of the same checkpoint. Recipes: names of tflite_variants.INT8_RECIPES, or dynamic_int8 /
float16 (the converter's variants; `eq_dynamic_int8` is dynamic_int8 of the equalised model). Latency:
ai_edge_litert, XNNPACK, batch 1, --threads (run under `taskset -c N` on a shared machine). One JSON line per
(checkpoint, tower, recipe) is appended to --out as it is measured, so a long run can be read while it goes;
`python -m benchmarks.bench_int8_outliers --report FILE...` prints them as a markdown table.

With --family=SEED the checkpoints are --count members of tests/stress_checkpoints.py's generated family (sizes
from --sizes), drawn from SEED, instead of --size and --kinds; the table then ends with the family's min of the
min cosines and mean of the mean ones per recipe, and a row's "float ops" says how many ops a float_fallback
recipe kept in float:

    python -m benchmarks.bench_int8_outliers --family=7 --count=8 --threads=1 \
        --recipes=eq_aeq_a8w8_weight_ops,eq_aeq_a8w8_weight_ops_fallback --out=family.jsonl
"""

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import clip_edge
from clip_edge import equalization
from clip_edge.preprocessing import ImagePreprocessor
from clip_edge.tokenizer import CLIPTokenizer
from converters import datasets, export, parity, serving, tflite_variants

from tests import reference
from tests import stress_checkpoints

SIZES = {
    "base32": stress_checkpoints.base_patch32_config,
    # tests/test_int8_outliers.py's model
    "tiny": lambda: reference.hf_clip_config(64, 2, 4, 8, 32, 64, 2, 4, 32),
}


def build_member(member):
    with tempfile.TemporaryDirectory(prefix="stress-family-") as folder:
        return clip_edge.CLIP.from_checkpoint(member.write(folder))


def build(size, kind, strength, seed):
    config = SIZES[size]()
    # The checkpoint (578 MB at base size) is only needed until it is loaded.
    with tempfile.TemporaryDirectory(prefix=f"stress-{kind}-") as folder:
        if kind == "plain":
            reference.random_hf_clip(config, seed=seed).save_pretrained(folder)
        else:
            stress_checkpoints.write_stressed_checkpoint(folder, config, kind, strength, seed=seed)
        return clip_edge.CLIP.from_checkpoint(folder)


def latencies_ms(models, example, threads, repeats):
    """{name: median ms of one invoke} for {name: tflite}, the models taking turns invoke by invoke, so that a
    change of load on a shared machine hits all of them alike."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name, tflite in models.items():
        interpreter = Interpreter(model_content=tflite, num_threads=threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], example)
        interpreter.invoke()  # warm-up
        interpreters[name] = interpreter
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def data(model):
    config = model.get_config()
    tokenizer = CLIPTokenizer.from_openai_vocabulary(config["context_length"])
    resolution = config["image_resolution"]
    return {
        "image": (datasets.builtin_images(datasets.CALIBRATION_PHOTOS, resolution),
                  datasets.builtin_images(datasets.HELD_OUT_PHOTOS, resolution)),
        "text": (tokenizer(datasets.calibration_sentences(export.CALIBRATION_SENTENCE_COUNT))["token_ids"].numpy(),
                 tokenizer(datasets.held_out_sentences())["token_ids"].numpy()),
    }


def function_of(model, tower):
    return serving.tflite_image_encoder(model) if tower == "image" else serving.tflite_text_encoder(model)


def equalized_model(model, tower, calibration, alpha):
    if tower == "image":
        images = ImagePreprocessor(model.get_config()["image_resolution"]).normalize(calibration).numpy()
        return equalization.equalize(model, images=images, alpha=alpha, towers=("image",))
    return equalization.equalize(model, token_ids=calibration, alpha=alpha, towers=("text",))


def crops_per_photo(tower):
    """data()'s image calibration is the exporter's own: crops of each photo in a row."""
    return datasets.CROPS_PER_PHOTO if tower == "image" else 1


def convert(model, tower, recipe, calibration, alpha_override, float32_cache=None):
    """The recipe's model as the exporter makes it; with a `float32_cache` (a dict kept for one model and tower)
    the ai-edge-quantizer recipes quantise a float32 conversion of their source made once per equalisation
    alpha, and the ops a float_fallback recipe kept in float are counted in float32_cache["float_ops"]."""
    equalize = recipe.startswith("eq_") and recipe not in tflite_variants.INT8_RECIPES
    name = recipe[3:] if equalize else recipe
    if name in ("dynamic_int8", "float16", "float32"):
        source = equalized_model(model, tower, calibration, alpha_override or 0.5) if equalize else model
        return tflite_variants.convert_variants(function_of(source, tower), [name])[name].tflite
    spec = tflite_variants.INT8_RECIPES[name]
    source = model
    alpha = alpha_override if alpha_override is not None else spec.equalization_alpha
    if spec.equalization_alpha is None:
        alpha = None
    representative = tflite_variants.representative([x[None] for x in calibration])
    if float32_cache is None or spec.engine != "ai_edge_quantizer":
        if alpha is not None:
            source = equalized_model(model, tower, calibration, alpha)
        return tflite_variants.convert_variants(function_of(source, tower), ["int8"], representative,
                                                int8_recipe=name, crops_per_photo=crops_per_photo(tower))["int8"].tflite
    if alpha not in float32_cache:
        if alpha is not None:
            source = equalized_model(model, tower, calibration, alpha)
        float32_cache[alpha] = tflite_variants.convert_variants(function_of(source, tower), ["float32"])[
            "float32"].tflite
    tflite, float_ops = tflite_variants.quantize_with_ai_edge_quantizer(float32_cache[alpha], spec, representative,
                                                                        crops_per_photo=crops_per_photo(tower))
    float32_cache["float_ops"] = len(float_ops)
    return tflite


def report(paths):
    """Markdown tables, one per tower: a row per checkpoint, a column per recipe, cells "min / mean" cosine
    (the last line wins for a repeated measurement), then the latencies measured."""
    rows = {}
    for path in paths:
        with open(path) as file:
            for line in file:
                row = json.loads(line)
                recipe = row["recipe"] + (f" (alpha {row['alpha']})" if row["alpha"] is not None else "")
                checkpoint = f"{row['size']} {row['kind']}" + (f" x{row['strength']:g}" if row["strength"] else "")
                rows[(row["tower"], checkpoint, recipe)] = row
    family_rows = any("family_seed" in row for row in rows.values())
    out = []
    for tower in sorted({key[0] for key in rows}):
        recipes = list(dict.fromkeys(key[2] for key in rows if key[0] == tower))
        checkpoints = list(dict.fromkeys(key[1] for key in rows if key[0] == tower))
        out += [f"{tower} tower, min / mean cosine to float32:", "",
                "| checkpoint | " + " | ".join(recipes) + " |", "|---" * (len(recipes) + 1) + "|"]
        for checkpoint in checkpoints:
            cells = []
            for recipe in recipes:
                row = rows.get((tower, checkpoint, recipe))
                cells.append("" if row is None else "failed" if "error" in row
                             else f"{row['min']:.4f} / {row['mean']:.4f}")
            out.append(f"| {checkpoint} | " + " | ".join(cells) + " |")
        if family_rows:
            cells = []
            for recipe in recipes:
                measured = [row for key, row in rows.items() if key[0] == tower and key[2] == recipe
                            and "min" in row]
                cells.append(f"{min(r['min'] for r in measured):.4f} / "
                             f"{np.mean([r['mean'] for r in measured]):.4f}" if measured else "")
            out.append("| **family: min of min / mean of mean** | " + " | ".join(cells) + " |")
            floats = [(checkpoint, recipe, row["float_ops"]) for (t, checkpoint, recipe), row in rows.items()
                      if t == tower and row.get("float_ops")]
            if floats:
                out += ["", "Ops kept in float: " + "; ".join(f"{c} ({r}): {n}" for c, r, n in floats)]
        out.append("")
        timed = [(key, row) for key, row in rows.items() if key[0] == tower and any(k.startswith("ms_") for k in row)]
        if timed:
            out += ["| checkpoint | recipe | MB | threads | ms | float32 ms | latency / float32 |",
                    "|---|---|---|---|---|---|---|"]
            for (_, checkpoint, recipe), row in timed:
                for key in sorted(k for k in row if k.startswith("ms_")):
                    threads = key[3:-1]
                    out.append(f"| {checkpoint} | {recipe} | {row['mb']:.1f} | {threads} | {row[key]:.1f} | "
                               f"{row['float32_' + key]:.1f} | {row[key] / row['float32_' + key]:.2f} |")
            out.append("")
    return "\n".join(out)


def main():
    if sys.argv[1:2] == ["--report"]:
        print(report(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="base32", choices=sorted(SIZES))
    parser.add_argument("--kinds", default="plain," + ",".join(stress_checkpoints.KINDS))
    parser.add_argument("--strength", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default="dynamic_int8,aeq_a16w8,eq_aeq_a16w8")
    parser.add_argument("--towers", default="image,text")
    parser.add_argument("--alpha", type=float, default=None, help="equalisation alpha (default: the recipe's)")
    parser.add_argument("--threads", default="2,1", help="latency thread counts ('' for none: rows are then "
                        "written as each recipe is measured, otherwise after the tower's latencies)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--family", type=int, default=None, help="seed of a generated family of checkpoints "
                        "(tests/stress_checkpoints.family) measured instead of --size and --kinds")
    parser.add_argument("--count", type=int, default=8, help="members of the --family")
    parser.add_argument("--sizes", default=",".join(stress_checkpoints.FAMILY_SIZES), help="sizes of the --family")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.family is not None:
        members = stress_checkpoints.family(args.family, args.count, args.sizes.split(","))
        print(f"family seed {args.family}: " + " | ".join(m.name for m in members), flush=True)
        checkpoints = [(m.size, m.pattern, None, lambda m=m: build_member(m)) for m in members]
    else:
        checkpoints = [(args.size, kind, args.strength if kind != "plain" else None,
                        lambda kind=kind: build(args.size, kind, args.strength, args.seed))
                       for kind in args.kinds.split(",")]
    for size, kind, strength, load in checkpoints:
        model = load()
        inputs = data(model)
        for tower in args.towers.split(","):
            calibration, held_out = inputs[tower]
            held_out = [x[None] for x in held_out]
            function = function_of(model, tower)
            float_embeddings = np.concatenate([function(tf.constant(x))["embedding"].numpy() for x in held_out])
            models = {"float32": tflite_variants.convert_variants(function, ["float32"])["float32"].tflite}
            rows, cache = {}, {}
            for recipe in args.recipes.split(","):
                started = time.monotonic()
                cache.pop("float_ops", None)
                try:
                    tflite = convert(model, tower, recipe, calibration, args.alpha, cache)
                except Exception as error:  # one failed recipe is a row, not the end of the run
                    row = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
                else:
                    cosines = parity.cosine_rows(tflite_variants.run_tflite(tflite, held_out),
                                                          float_embeddings)
                    row = {"min": float(cosines.min()), "mean": float(cosines.mean()), "mb": len(tflite) / 1e6}
                    if "float_ops" in cache:
                        row["float_ops"] = cache["float_ops"]
                    models[recipe] = tflite
                rows[recipe] = dict(row, size=size, kind=kind, strength=strength, tower=tower, recipe=recipe,
                                    alpha=args.alpha, seconds=round(time.monotonic() - started))
                if args.family is not None:
                    rows[recipe]["family_seed"] = args.family
                if not args.threads:
                    _write(rows[recipe], args.out)
            for threads in filter(None, args.threads.split(",")):
                measured = latencies_ms(models, held_out[0], int(threads), args.repeats)
                for recipe, row in rows.items():
                    if recipe in measured:
                        row[f"ms_{threads}t"], row[f"float32_ms_{threads}t"] = measured[recipe], measured["float32"]
            if args.threads:
                for row in rows.values():
                    _write(row, args.out)


def _write(row, path):
    print(json.dumps(row), flush=True)
    with open(path, "a") as file:
        file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
