"""Bazel's entry point for one pytest file: `bazel test //tests:test_model` runs tests/test_model.py.

tests/BUILD makes a py_test per tests/test_*.py with this file as main and the test file's path as the only
argument. Tests marked slow are deselected: the plain pytest run in CI covers them (docs/bazel.md).
"""

import os
import sys

import pytest


def main(argv):
    if len(argv) != 1:
        sys.stderr.write(f"usage: pytest_runner.py TEST_FILE (got {len(argv)} arguments)\n")
        return 2
    test_file = argv[0]
    # pytest's working directory is the test's runfiles tree; Bazel gives each test a private scratch
    # directory for state like Hypothesis' example database, and pytest's cache is not needed at all.
    scratch_directory = os.environ.get("TEST_TMPDIR")
    if scratch_directory:
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(scratch_directory, "hypothesis"))
    pytest_args = [test_file, "-m", "not slow", "-p", "no:cacheprovider"]
    # Per-test-case results in Bazel's test.xml instead of one result for the whole file.
    xml_output_file = os.environ.get("XML_OUTPUT_FILE")
    if xml_output_file:
        pytest_args.append(f"--junitxml={xml_output_file}")
    collected = _CollectedCount()
    exit_code = pytest.main(pytest_args, plugins=[collected])
    if exit_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        if collected.count:  # every test is marked slow: the plain pytest run in CI has them
            sys.stderr.write(f"{test_file}: no fast tests ({collected.count} deselected as slow)\n")
            return 0
        sys.stderr.write(f"{test_file}: defines no tests at all (a file that silently tests nothing fails)\n")
    return int(exit_code)


class _CollectedCount:
    """How many tests the file defines, counted before -m deselects the slow ones."""

    count = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items):
        self.count = len(items)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
