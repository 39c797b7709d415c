"""The test suites and their helpers (photos, reference, jvm, tokenizer_corpus, stress_checkpoints,
process_memory, export_faults), one package that the suites, benchmarks/ and scripts import from the repository
root: `from tests import photos`."""
