"""Side-by-side measurements, each run from the repository root as `python -m benchmarks.NAME` (docs/benchmarks.md).

They use the test suites' helpers (photos.py, reference.py, jvm.py, tokenizer_corpus.py, ...) from the `tests`
package, as the tests do.
"""
