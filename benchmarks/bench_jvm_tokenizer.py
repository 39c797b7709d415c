"""android_demo's Java tokenizer (one thread) vs transformers' CLIPTokenizerFast: texts/s on the same corpus, same run.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_jvm_tokenizer [--seconds=10] [--repeats=3] [--export=DIR]

The corpus is tests/test_tokenizer.py's parity corpus (tests/data/tokenizer_corpus.jsonl: Python's documentation
topics plus packages' descriptions). The Java side is `android_demo/clip-jvm tokenize --export DIR --benchmark
SECONDS`: it reads the
texts, tokenizes them twice to warm up the JIT, then tokenizes them over and over on one thread for SECONDS and
reports texts/s measured inside the JVM (start-up and loading are not counted). CLIPTokenizerFast (Rust) is loaded
from the same vocab.json + merges.txt and timed tokenizing batches of 256 padded to 77 (its default threading,
which may use every core) and one text per call. Without --export, the three asset files and a manifest are written
to a temporary folder from clip_edge's tokenizer (what an export writes). Java and transformers passes are
interleaved so that load from other processes hits both alike; the medians are reported, with their ratio
(above 1 = Java is faster) and the CPU model.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from transformers import CLIPTokenizerFast

from benchmarks.machine import cpu_model
from tests.tokenizer_corpus import documentation_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTEXT_LENGTH = 77
BATCH = 256


def write_assets(directory):
    from clip_edge.tokenizer import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_openai_vocabulary(CONTEXT_LENGTH)
    vocab_json, merges_txt = tokenizer.vocabulary_files()
    os.makedirs(os.path.join(directory, "assets"))
    files = {"vocab.json": vocab_json, "merges.txt": merges_txt,
             "text_cleaning.json": json.dumps(tokenizer.text_cleaning_tables(), ensure_ascii=False)}
    for name, text in files.items():
        with open(os.path.join(directory, "assets", name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump({"config": {"context_length": CONTEXT_LENGTH}}, f)


def java_pass(export, stdin, seconds):
    result = subprocess.run([os.path.join(REPO, "android_demo", "clip-jvm"), "tokenize", "--export", export,
                             "--benchmark", str(seconds)], input=stdin, capture_output=True, timeout=600 + seconds)
    if result.returncode != 0:
        raise SystemExit(f"clip-jvm failed: {result.stderr.decode('utf-8', 'replace')[-2000:]}")
    return json.loads(result.stdout.decode("utf-8").strip().splitlines()[-1])["texts_per_second"]


def fast_pass(tokenizer, texts, seconds, batch):
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(0, len(texts), batch):
            tokenizer(texts[i:i + batch], padding="max_length", truncation=True, max_length=CONTEXT_LENGTH)
        count += len(texts)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--export", help="an export folder (default: assets written to a temporary folder)")
    args = parser.parse_args()

    texts = documentation_corpus()
    stdin = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts).encode("utf-8")
    with tempfile.TemporaryDirectory() as directory:
        export = args.export or directory
        if not args.export:
            write_assets(directory)
        assets = os.path.join(export, "assets")
        fast = CLIPTokenizerFast(os.path.join(assets, "vocab.json"), os.path.join(assets, "merges.txt"))
        fast(texts[:BATCH])
        java, batched, single = [], [], []
        for _ in range(args.repeats):
            java.append(java_pass(export, stdin, args.seconds))
            batched.append(fast_pass(fast, texts, args.seconds, BATCH))
            single.append(fast_pass(fast, texts, args.seconds, 1))

    java_rate, batched_rate, single_rate = map(statistics.median, (java, batched, single))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); {len(texts)} texts; "
          f"{args.repeats} interleaved passes of {args.seconds:g} s")
    print(f"Java ClipTokenizer, 1 thread:                {java_rate:10.0f} texts/s  {sorted(round(r) for r in java)}")
    print(f"CLIPTokenizerFast, batches of {BATCH}:           {batched_rate:10.0f} texts/s  "
          f"{sorted(round(r) for r in batched)}")
    print(f"CLIPTokenizerFast, one text per call:        {single_rate:10.0f} texts/s  "
          f"{sorted(round(r) for r in single)}")
    print(f"ratio Java / Fast batched: {java_rate / batched_rate:.2f}; Java / Fast one per call: "
          f"{java_rate / single_rate:.2f}")


if __name__ == "__main__":
    main()
