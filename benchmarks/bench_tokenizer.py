"""clip_edge's in-graph CLIPTokenizer vs transformers' CLIPTokenizerFast: texts/s at one batch size, same run.

    .venv/bin/python -m benchmarks.bench_tokenizer [--batch=256] [--repeats=5]

Both tokenize the parity corpus of tests/test_tokenizer.py (tests/data/tokenizer_corpus.jsonl: Python's
documentation topics plus packages' descriptions) in batches, padded to 77. CLIPTokenizerFast is loaded with
from_pretrained from the
vocab.json + merges.txt our tokenizer exports (OpenAI's vocabulary, as in openai/clip-vit-base-patch32; no
download). In transformers 5 CLIPTokenizer and CLIPTokenizerFast are one class, backed by the Rust tokenizers
library. Passes of the two are interleaved so that load from other processes hits both alike. Reports the median
texts/s of each and the ratio ours / transformers (above 1 = we are faster), then the agreement of each with
OpenAI's reference, open_clip's SimpleTokenizer, on corpus + stress texts.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from transformers import CLIPTokenizerFast

from clip_edge.tokenizer import CLIPTokenizer
from tests import tokenizer_corpus

CONTEXT_LENGTH = 77


def batches(texts, batch):
    return [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]


def time_pass(tokenize, text_batches):
    start = time.perf_counter()
    for texts in text_batches:
        tokenize(texts)
    return sum(len(b) for b in text_batches) / (time.perf_counter() - start)


def real_tokens(ids, lengths):
    return [tuple(row[:length]) for row, length in zip(ids, lengths)]


def agreement(rows, reference_rows):
    return sum(a == b for a, b in zip(rows, reference_rows)) / len(reference_rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    corpus = tokenizer_corpus.documentation_corpus()
    ours = CLIPTokenizer.from_openai_vocabulary(context_length=CONTEXT_LENGTH)
    with tempfile.TemporaryDirectory() as directory:
        vocab_json, merges_txt = ours.vocabulary_files()
        vocab_path, merges_path = os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write(vocab_json)
        with open(merges_path, "w", encoding="utf-8") as f:
            f.write(merges_txt)
        fast = CLIPTokenizerFast.from_pretrained(directory)

    tensor_batches = [tf.constant(b) for b in batches(corpus, args.batch)]
    list_batches = batches(corpus, args.batch)

    def run_ours(texts):
        return ours(texts)["token_ids"].numpy()

    def run_fast(texts):
        return fast(texts, padding="max_length", truncation=True, max_length=CONTEXT_LENGTH,
                    return_tensors="np")["input_ids"]

    run_ours(tensor_batches[0])  # trace the graph once before timing
    run_fast(list_batches[0])
    ours_rates, fast_rates = [], []
    for _ in range(args.repeats):
        ours_rates.append(time_pass(run_ours, tensor_batches))
        fast_rates.append(time_pass(run_fast, list_batches))
    ours_rate, fast_rate = statistics.median(ours_rates), statistics.median(fast_rates)
    print(f"texts/s at batch {args.batch} over {len(tensor_batches) * args.batch} corpus lines, "
          f"median of {args.repeats} passes:")
    print(f"  clip_edge CLIPTokenizer (graph)      {ours_rate:9.0f}")
    print(f"  transformers CLIPTokenizerFast       {fast_rate:9.0f}")
    print(f"  ratio ours / fast                    {ours_rate / fast_rate:9.2f}")

    # Agreement with OpenAI's reference (token sequences up to and including the end token).
    reference = tokenizer_corpus.load_reference_tokenizer()
    texts = corpus + tokenizer_corpus.STRESS_TEXTS
    reference_out = reference(texts).numpy()
    is_end = reference_out == reference.eot_token_id
    reference_rows = real_tokens(reference_out, CONTEXT_LENGTH - np.argmax(is_end[:, ::-1], axis=1))
    ours_out = [ours(texts[i:i + args.batch]) for i in range(0, len(texts), args.batch)]
    ours_rows = real_tokens(np.concatenate([o["token_ids"].numpy() for o in ours_out]),
                            np.concatenate([o["padding_mask"].numpy().sum(axis=1) for o in ours_out]))
    print(f"agreement with open_clip's SimpleTokenizer on {len(texts)} texts "
          f"({len(corpus)} corpus lines + {len(tokenizer_corpus.STRESS_TEXTS)} stress texts):")
    print(f"  clip_edge CLIPTokenizer              {agreement(ours_rows, reference_rows):9.4%}")
    fast_rows = [tuple(row) for row in fast(texts, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]]
    print(f"  transformers CLIPTokenizerFast       {agreement(fast_rows, reference_rows):9.4%}")


if __name__ == "__main__":
    main()
