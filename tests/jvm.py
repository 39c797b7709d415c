"""Runs android_demo/clip-jvm (the Java core on the desktop JVM) for the cross-check suites.

Java is part of the product, so a machine without it fails these suites with a message naming what is missing
(CLIP_EDGE_SKIP_JVM=1 turns that into a skip, for machines that only work on the Python side).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CLIP_JVM = REPO / "android_demo" / "clip-jvm"
# The first call builds the jar and the JNI library (about a minute on a busy 2-core machine).
TIMEOUT_S = 900


def require_java():
    missing = [tool for tool in ("java", "mvn", "gcc") if shutil.which(tool) is None]
    if not missing:
        return
    message = (f"android_demo's cross-checks need {', '.join(missing)}: apt-get install openjdk-17-jdk-headless "
               "maven junit5 and the Maven plugin packages listed in android_demo/README.md")
    if os.environ.get("CLIP_EDGE_SKIP_JVM") == "1":
        pytest.skip(message)
    pytest.fail(message + " (or set CLIP_EDGE_SKIP_JVM=1 to skip them)")


def run(*args, lines=None, check=True):
    """clip-jvm ARGS with `lines` (str each, sent as JSON strings one per line) on stdin -> CompletedProcess."""
    require_java()
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines) if lines is not None else ""
    result = subprocess.run([str(CLIP_JVM), *map(str, args)], input=stdin.encode("utf-8"), capture_output=True,
                            timeout=TIMEOUT_S)
    if check and result.returncode != 0:
        raise AssertionError(f"clip-jvm {' '.join(map(str, args))} exited {result.returncode}: "
                             f"{result.stderr.decode('utf-8', 'replace')[-3000:]}")
    return result


def json_lines(result):
    """The JSON values clip-jvm printed, one per line."""
    return [json.loads(line) for line in result.stdout.decode("utf-8").splitlines() if line.strip()]


def error_line(result):
    """The one line clip-jvm printed about its failure, "clip-jvm COMMAND: what went wrong", after checking that it
    failed, printed that line once and no stack trace. The rest of stderr is not ours to count: the JVM's and
    LiteRT's own notices (LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU", for one) may come and go
    with their versions."""
    assert result.returncode != 0
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Exception in thread" not in stderr and not re.search(r"^\s+at [\w$.]+\(", stderr, re.M), stderr
    ours = [line for line in stderr.splitlines() if line.startswith("clip-jvm ")]
    assert len(ours) == 1, stderr
    return ours[0]
