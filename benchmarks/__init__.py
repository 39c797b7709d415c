"""Side-by-side measurements, each run from the repository root as `python -m benchmarks.NAME` (docs/benchmarks.md).

They use the test suites' helpers (photos.py, reference.py, jvm.py, tokenizer_corpus.py in tests/) and import
them as the tests do, by module name: pytest puts tests/ first on sys.path for the tests (the folder has no
__init__.py), and this package does the same for the benchmarks.
"""

import os
import sys

_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
