"""The exporter end to end: wall time and peak memory per preset, then batch-1 latency of every TFLite artifact
against transformers' PyTorch CLIP, and artifact sizes, all in one run.

    .venv/bin/python -m benchmarks.bench_export --preset=clip-vit-base-patch32 [--output_dir=/tmp/x] [--repeats=20]

1. Runs the real exporter, `python -m converters.export --preset=P --weights=random --output_dir=D`, as a
   subprocess under `/usr/bin/time -v`: wall time, CPU time and exit status. Memory is the peak RSS of the
   exporter's whole process tree (it converts each tower in a process of its own), bounded from the processes'
   high-water marks read every 0.2 s (tests/process_memory.py, which says what it can miss), and its largest
   single process beside it (not /usr/bin/time's "Maximum resident set size", which the sampler's resets of the
   marks lower). A heartbeat line shows the stage reached and the memory so far, and the exporter's stage lines
   (`[  12.3s] stage: done in X s`) are collected.
2. Loads every TFLite artifact in ai_edge_litert's Interpreter (2 threads) and transformers' CLIPModel of the
   same architecture with random weights (torch.inference_mode, 2 threads), and times batch 1 of each tower:
   uint8 [1,R,R,3] pixels vs get_image_features on float [1,3,R,R], int32 [1,77] ids vs get_text_features on
   [1,77] ids. The frameworks are interleaved (each round: PyTorch once, then every variant once) so that load
   from other processes hits both alike; medians of --repeats rounds after one warm-up round. PyTorch is also
   timed with 1 thread in the same rounds: on a busy 2-core machine its 2 OpenMP threads wait for each other at
   every op, and the 1-thread column shows how much of its time that is. A latency goal is "met" only against
   the faster of the two PyTorch timings.
3. Prints a markdown table per preset with sizes from the export's manifest.json and the goals below
   (EXPORT_GOALS, LATENCY_GOALS, SIZE_GOALS) beside the numbers. Latency does not depend on the weights, so random
   weights measure the real thing.

Without --output_dir the export goes to a temporary folder that is removed at the end.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from converters.variants import VARIANTS
from tests.process_memory import PeakTreeMemory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOWERS = ("image", "text")
# The exporter's exit statuses when it wrote DIR/NAME (converters/export.py): all shipped, or some variants set aside.
SHIPPED = (0, 3)

# The goals the exporter is measured against: wall time and peak memory of one export; latency as a ratio to
# PyTorch at batch 1; size as a ratio to float32 of the same tower.
# Every preset within half of the 24 GB machine the numbers come from, in 20 minutes; the base model in less.
EXPORT_GOALS = {"clip-vit-base-patch32": {"seconds": 600, "peak_gb": 8}}
DEFAULT_EXPORT_GOALS = {"seconds": 1200, "peak_gb": 12}
LATENCY_GOALS = {"float32": 1.0, "dynamic_int8": 0.5, "int8": 0.5}
SIZE_GOALS = {"int8": 0.27, "float16": 0.51}

# Pause before each timed call, so the other framework's worker threads (OpenMP, pthreadpool) have stopped
# spinning and do not steal a core from the call being timed.
SETTLE_SECONDS = 0.02

STAGE_DONE = re.compile(r"^\[\s*([\d.]+)s\] (.+?): done in ([\d.]+)s(?:; (.*))?$")
STAGE_BEGIN = re.compile(r"^\[\s*([\d.]+)s\] (.+) \.\.\.$")


def _parse_time_v(text):
    """The fields of /usr/bin/time -v that we report."""
    values = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        values[key] = value
    elapsed = values.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "")
    seconds = 0.0
    for part in elapsed.split(":"):
        seconds = seconds * 60 + float(part) if part else seconds
    killed = re.search(r"Command terminated by signal (\d+)", text)
    signal = killed.group(1) if killed else None
    exit_status = int(values.get("Exit status", -1))
    return {"wall_seconds": seconds,
            "user_seconds": float(values.get("User time (seconds)", 0)),
            "system_seconds": float(values.get("System time (seconds)", 0)),
            # A killed exporter has "Exit status: 0" beside the signal line.
            "exit_status": -int(signal) if signal else exit_status, "signal": f"signal {signal}" if signal else None}


def run_export(preset, output_dir, log_path, weights="random", name=None, variants=None, heartbeat=60.0):
    """Run the exporter under /usr/bin/time -v; returns a dict of measurements (also on failure)."""
    time_file = log_path + ".time"
    command = [sys.executable, "-m", "converters.export", f"--weights={weights}", f"--output_dir={output_dir}"]
    if preset:
        command.append(f"--preset={preset}")
    if name:
        command.append(f"--name={name}")
    if variants:
        command.append(f"--variants={','.join(variants)}")
    print("$ " + " ".join(command), flush=True)
    started = time.monotonic()
    process = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_file] + command, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    memory = PeakTreeMemory(process.pid)
    reached = {"stage": "starting"}
    done = threading.Event()

    def beat():
        while not done.wait(heartbeat):
            print(f"[bench {time.monotonic() - started:7.0f}s] in stage {reached['stage']!r}: RSS at most "
                  f"{memory.last / 2**30:.2f} GB, peak so far {memory.peak / 2**30:.2f} GB, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)

    heart = threading.Thread(target=beat, daemon=True)
    heart.start()
    stages = []
    tail = []
    with open(log_path, "w") as log:
        for line in process.stdout:
            log.write(line)
            log.flush()
            line = line.rstrip("\n")
            tail = (tail + [line])[-30:]
            match = STAGE_DONE.match(line)
            begin = STAGE_BEGIN.match(line)
            if match:
                stages.append({"stage": re.sub(r" \(.*\)$", "", match.group(2)), "at_seconds": float(match.group(1)),
                               "seconds": float(match.group(3)), "detail": match.group(4) or "",
                               "tree_rss_peak_bytes": memory.peak})
                reached["stage"] = "after " + stages[-1]["stage"]
            elif begin:
                reached["stage"] = begin.group(2)
            # Progress, bars, tables and failures; TensorFlow's warnings stay in the log only.
            if line.startswith(("[", "    ", "|", "export failed")) or "Error" in line:
                print(line, flush=True)
    process.wait()
    done.set()
    heart.join()
    memory.stop()
    with open(time_file) as file:
        measured = _parse_time_v(file.read())
    measured.update(command=" ".join(command), stages=stages, tree_rss_peak_bytes=memory.peak,
                    largest_process_bytes=memory.largest, last_stage=reached["stage"],
                    tail=tail if measured["exit_status"] != 0 else [], log=log_path,
                    bench_wall_seconds=time.monotonic() - started)
    return measured


def _torch_model(preset, weights):
    """transformers' CLIPModel of the preset's architecture with random weights (or the checkpoint's)."""
    import torch

    from tests import reference

    if weights not in ("random", "hub") and os.path.isdir(weights):
        from transformers import CLIPModel

        return CLIPModel.from_pretrained(weights).eval()
    from clip_edge import presets

    config = presets.get_preset(preset)["config"]
    torch.manual_seed(0)
    return reference.random_hf_clip(reference.hf_clip_config(
        config["vision_width"], config["vision_layers"], config["vision_width"] // 64, config["vision_patch_size"],
        config["image_resolution"], config["transformer_width"], config["transformer_layers"],
        config["transformer_heads"], config["embed_dim"]))


def measure_latency(export_dir, variants, preset, weights, repeats, threads=2):
    """{tower: {"pytorch": ms, variant: ms}}, interleaved rounds, median over `repeats` after one warm-up."""
    import torch
    from ai_edge_litert.interpreter import Interpreter

    torch.set_num_threads(threads)
    model = _torch_model(preset, weights)
    rng = np.random.default_rng(0)
    results = {}
    for tower in TOWERS:
        interpreters = {}
        for variant in variants:
            path = os.path.join(export_dir, "tflite", f"{tower}_encoder_{variant}.tflite")
            if os.path.exists(path):
                interpreter = Interpreter(model_path=path, num_threads=threads)
                interpreter.allocate_tensors()
                interpreters[variant] = interpreter
        if not interpreters:
            continue
        detail = next(iter(interpreters.values())).get_input_details()[0]
        shape = tuple(int(d) for d in detail["shape"])
        if tower == "image":
            example = rng.integers(0, 256, size=shape, dtype=np.uint8)
            torch_input = torch.from_numpy(example.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
            torch_run = lambda: model.get_image_features(pixel_values=torch_input)  # noqa: E731
        else:
            ids = rng.integers(1, 49406, size=shape).astype(np.int32)
            ids[0, 0], ids[0, 10], ids[0, 11:] = 49406, 49407, 0  # start, 9 tokens, end, padding
            example = ids
            torch_input = torch.from_numpy(ids.astype(np.int64))
            torch_run = lambda: model.get_text_features(input_ids=torch_input)  # noqa: E731
        for interpreter in interpreters.values():
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], example)
        times = {"pytorch": [], "pytorch_1_thread": []}
        times.update({variant: [] for variant in interpreters})
        with torch.inference_mode():
            for round_index in range(repeats + 1):  # round 0 is the warm-up
                for key, torch_threads in (("pytorch", threads), ("pytorch_1_thread", 1)):
                    torch.set_num_threads(torch_threads)
                    time.sleep(SETTLE_SECONDS)
                    start = time.perf_counter()
                    torch_run()
                    elapsed = time.perf_counter() - start
                    if round_index:
                        times[key].append(elapsed)
                torch.set_num_threads(threads)
                for variant, interpreter in interpreters.items():
                    time.sleep(SETTLE_SECONDS)
                    start = time.perf_counter()
                    interpreter.invoke()
                    elapsed = time.perf_counter() - start
                    if round_index:
                        times[variant].append(elapsed)
        results[tower] = {key: 1e3 * statistics.median(values) for key, values in times.items()}
        print(f"latency {tower}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in results[tower].items()), flush=True)
        del interpreters
    return results


def artifact_sizes(export_dir):
    """{(tower, variant): bytes}: from manifest.json, or from the files when there is none (rejected export)."""
    manifest_path = os.path.join(export_dir, "manifest.json")
    sizes = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as file:
            for artifact in json.load(file)["artifacts"]:
                if "variant" in artifact:
                    sizes[(artifact["tower"], artifact["variant"])] = artifact["bytes"]
        return sizes, "manifest.json"
    for tower in TOWERS:
        for variant in VARIANTS:
            path = os.path.join(export_dir, "tflite", f"{tower}_encoder_{variant}.tflite")
            if os.path.exists(path):
                sizes[(tower, variant)] = os.path.getsize(path)
    return sizes, "file sizes (no manifest.json)"


def _verdict(value, goal):
    return f"{'met' if value <= goal else 'NOT met'} (goal <= {goal:g}x)"


def format_report(preset, export, latency, sizes, size_source, repeats, loads):
    gb = 2**30
    lines = []
    goals = EXPORT_GOALS.get(preset, DEFAULT_EXPORT_GOALS)
    finished = export["exit_status"] in SHIPPED
    lines.append(f"Export of {preset} ({export['command'].split(' -m ', 1)[1]}):")
    lines.append("")
    lines.append("| measure | value | goal |")
    lines.append("|---|---:|---|")
    signal = f", {export['signal']}" if export["signal"] else ""
    status = {0: "0 (finished)", 3: "3 (finished; variants below their bars set aside)"}.get(
        export["exit_status"], f"{export['exit_status']} (FAILED{signal})")
    lines.append(f"| exit status | {status} | must finish |")
    if not finished:
        lines.append(f"| stage reached | {export['last_stage']} | |")
    if goals["seconds"]:
        time_goal = f"{'met' if finished and export['wall_seconds'] <= goals['seconds'] else 'NOT met'} " \
                    f"(goal < {goals['seconds'] / 60:g} min)"
    else:
        time_goal = "none (must finish)"
    wall = export["wall_seconds"]
    lines.append(f"| wall time | {wall:.0f} s ({wall / 60:.1f} min) | {time_goal} |")
    cpu = export["user_seconds"] + export["system_seconds"]
    lines.append(f"| CPU time (user + sys) | {cpu:.0f} s ({cpu / max(wall, 1e-9):.2f} cores busy) | |")
    peak = export["tree_rss_peak_bytes"] / gb
    lines.append(f"| peak RSS of the process tree (/proc high-water marks) | {peak:.2f} GB | "
                 f"{'met' if finished and peak < goals['peak_gb'] else 'NOT met'} (goal < {goals['peak_gb']} GB) |")
    lines.append(f"| largest single process (its high-water mark) | {export['largest_process_bytes'] / gb:.2f} GB | |")
    lines.append("")
    if export["stages"]:
        lines.append("| exporter stage | seconds | peak tree RSS so far |")
        lines.append("|---|---:|---:|")
        for stage in export["stages"]:
            lines.append(f"| {stage['stage']} | {stage['seconds']:.1f} | "
                         f"{stage['tree_rss_peak_bytes'] / gb:.2f} GB |")
        lines.append("")
    if latency:
        lines.append(f"TFLite (ai_edge_litert, 2 threads) vs transformers' PyTorch CLIP (2 and 1 threads), batch 1, "
                     f"median of {repeats} interleaved rounds; sizes from {size_source}:")
        lines.append("")
        lines.append("| tower | variant | ms | PyTorch ms, 2 threads | PyTorch ms, 1 thread "
                     "| ratio to PyTorch 2 threads | ratio to PyTorch's faster | latency goal | MB | size / float32 "
                     "| size goal |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
        for tower, row in latency.items():
            torch_ms = row["pytorch"]
            single_ms = row.get("pytorch_1_thread", float("nan"))
            best_ms = min(torch_ms, single_ms) if single_ms == single_ms else torch_ms
            for variant in VARIANTS:
                if variant not in row:
                    continue
                ratio, best_ratio = row[variant] / torch_ms, row[variant] / best_ms
                if variant not in LATENCY_GOALS:
                    latency_goal = "none"
                elif best_ratio <= LATENCY_GOALS[variant]:
                    latency_goal = f"met (goal <= {LATENCY_GOALS[variant]:g}x)"
                elif ratio <= LATENCY_GOALS[variant]:
                    latency_goal = f"met vs 2 threads only (goal <= {LATENCY_GOALS[variant]:g}x)"
                else:
                    latency_goal = f"NOT met (goal <= {LATENCY_GOALS[variant]:g}x)"
                size = sizes.get((tower, variant))
                base = sizes.get((tower, "float32"))
                size_ratio = size / base if size and base else None
                size_goal = (_verdict(size_ratio, SIZE_GOALS[variant])
                             if variant in SIZE_GOALS and size_ratio is not None else "none")
                lines.append(f"| {tower} | {variant} | {row[variant]:.1f} | {torch_ms:.1f} | {single_ms:.1f} | "
                             f"{ratio:.2f}x | {best_ratio:.2f}x | {latency_goal} | "
                             f"{size / 1e6 if size else float('nan'):.1f} | "
                             f"{f'{size_ratio:.3f}x' if size_ratio is not None else '-'} | {size_goal} |")
        lines.append("")
    lines.append("Load average (1 min): " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()) + ".")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="clip-vit-base-patch32")
    parser.add_argument("--output_dir", default=None, help="where the export is written and kept (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--weights", default="random", help="random (default), or a checkpoint for a quick run")
    parser.add_argument("--name", default=None, help="export folder name, with --weights=PATH and no preset")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--skip_latency", action="store_true", help="only the export's time and memory")
    parser.add_argument("--report_from", default=None, help="print the tables of a saved NAME.bench.json again")
    args = parser.parse_args()
    if args.report_from:
        with open(args.report_from) as file:
            saved = json.load(file)
        sizes = {tuple(key.split("/")): value for key, value in saved["sizes"].items()}
        print(format_report(saved["preset"], saved["export"], saved["latency_ms"], sizes, "manifest.json",
                            saved["repeats"], saved["load_average"]))
        return 0
    preset = args.preset or None
    variants = args.variants.split(",")
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="bench_export-")
    os.makedirs(output_dir, exist_ok=True)
    name = args.name or preset
    started_at = datetime.datetime.now(datetime.timezone.utc)
    loads = {"start": os.getloadavg()[0]}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{started_at:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average {load}, output {output_dir}",
          flush=True)
    try:
        export = run_export(preset, output_dir, os.path.join(output_dir, f"{name}.export.log"), args.weights,
                            args.name, variants if variants != list(VARIANTS) else None)
        loads["after export"] = os.getloadavg()[0]
        export_dir = os.path.join(output_dir, name)
        if export["exit_status"] not in SHIPPED or not os.path.isdir(export_dir):
            print("\n".join(export["tail"]), flush=True)
            rejected = os.path.join(output_dir, f"{name}.rejected")
            export_dir = rejected if os.path.isdir(rejected) else None
            if export_dir:
                print(f"export failed; timing the rejected artifacts in {rejected}", flush=True)
        latency, sizes, size_source = {}, {}, ""
        if export_dir and not args.skip_latency:
            latency = measure_latency(export_dir, variants, preset, args.weights, args.repeats)
            loads["end"] = os.getloadavg()[0]
            sizes, size_source = artifact_sizes(export_dir)
        report = format_report(name, export, latency, sizes, size_source, args.repeats, loads)
        with open(os.path.join(output_dir, f"{name}.bench.json"), "w") as file:
            json.dump({"preset": name, "started_utc": started_at.isoformat(), "cores": os.cpu_count(),
                       "export": export, "latency_ms": latency, "repeats": args.repeats,
                       "sizes": {f"{t}/{v}": b for (t, v), b in sizes.items()}, "load_average": loads},
                      file, indent=1)
        print()
        print(report)
        return 0 if export["exit_status"] in SHIPPED else 1
    finally:
        if not args.output_dir:
            shutil.rmtree(output_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
