"""Macros for the project's Python targets (Bazel 4.2 native Python rules, no rules_python)."""

def py_module_binary(name, module, deps = [], **kwargs):
    """A py_binary that behaves like `python -m <module>` run from the caller's directory.

    `bazel run` starts a binary inside its runfiles tree, so a relative --output_dir would land there and the
    module would run as a script rather than as part of its package. The generated main moves to the
    directory `bazel run` was called from and runs the module with runpy, as `python -m` does.
    """
    main = name + "_main.py"
    native.genrule(
        name = name + "_main",
        srcs = ["//tools/bazel:module_main.py.in"],
        outs = [main],
        cmd = "sed 's/@MODULE@/%s/' $< > $@" % module,
    )
    native.py_binary(
        name = name,
        srcs = [main],
        main = main,
        python_version = "PY3",
        deps = deps,
        **kwargs
    )

def pytest_file_tests(name, srcs, runner, deps = [], data = [], timeout = "long", **kwargs):
    """One py_test per pytest file (named after the file), plus a test_suite `name` holding them all.

    `runner` is the main of every test; it receives the test file's workspace-relative path, which is also
    its path relative to the test's working directory (the runfiles root of this workspace).
    The timeout defaults to "long" (15 min): a file's fast tests took 10 s to 2 min here, and Bazel
    runs two files at once and TensorFlow and PyTorch each use every core.
    """
    tests = []
    for src in srcs:
        test_name = src[:-len(".py")]
        native.py_test(
            name = test_name,
            srcs = [runner, src],
            main = runner,
            args = ["%s/%s" % (native.package_name(), src)],
            python_version = "PY3",
            deps = deps,
            data = data,
            timeout = timeout,
            **kwargs
        )
        tests.append(test_name)
    native.test_suite(
        name = name,
        tests = tests,
    )
