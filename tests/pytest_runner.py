"""Bazel's entry point for one pytest file: `bazel test //tests:test_model` runs tests/test_model.py.

tests/BUILD makes a py_test per tests/test_*.py with this file as main and the test file's path as the only
argument. Tests marked slow are deselected: the plain pytest run in CI covers them (docs/bazel.md).
"""

import os
import sys

import pytest


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: pytest_runner.py TEST_FILE (got %d arguments)\n" % len(argv))
        return 2
    test_file = argv[0]
    # Bazel gives each test a private writable directory; keep Hypothesis' example database there instead
    # of in the read-only-by-convention runfiles tree.
    scratch_directory = os.environ.get("TEST_TMPDIR")
    if scratch_directory:
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(scratch_directory, "hypothesis"))
    pytest_args = [test_file, "-m", "not slow", "-p", "no:cacheprovider"]
    # Per-test-case results for Bazel's test.xml.
    xml_output_file = os.environ.get("XML_OUTPUT_FILE")
    if xml_output_file:
        pytest_args.append("--junitxml=" + xml_output_file)
    exit_code = pytest.main(pytest_args)
    if exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        sys.stderr.write("%s: no fast tests (all deselected as slow, or none defined)\n" % test_file)
        return 0
    return int(exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
