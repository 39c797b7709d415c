# Two entry points (see README): `make export` and `make test`. Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# clip_edge.beam's own virtualenv: apache-beam 2.77 needs protobuf < 7 and pillow < 13, older than .venv's.
BEAM_VENV ?= .venv-beam
PRESET ?= clip-vit-base-patch32
WEIGHTS ?= random
OUTPUT_DIR ?= out

# The Java side's Maven build: the core (android_demo/clip) and the desktop module (android_demo/clip-desktop).
JAVA_BUILD := android_demo
MVN := mvn -B -o -s $(JAVA_BUILD)/maven-settings.xml -f $(JAVA_BUILD)/pom.xml

.PHONY: install system-packages beam-venv export lint test test-fast java-test bazel

# The same recipe creates the venv when Bazel finds none (tools/bazel/python_venv.bzl).
$(VENV)/.installed: pyproject.toml
	bash scripts/install_venv.sh $(PYTHON) $(VENV)

# JDK, Maven with Debian's offline plugin packages, JUnit and gcc for android_demo (installed when missing).
system-packages:
	bash scripts/install_system_packages.sh

install: $(VENV)/.installed system-packages

# tests/test_beam.py runs the pipeline in this virtualenv (CLIP_EDGE_BEAM_PYTHON) against references in .venv.
$(BEAM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet --no-compile -e '.[beam]'  # as scripts/install_venv.sh
	touch $@

beam-venv: $(BEAM_VENV)/.installed

export: $(VENV)/.installed
	$(PY) -m converters.export --preset=$(PRESET) --weights=$(WEIGHTS) --output_dir=$(OUTPUT_DIR)

# pytest-xdist workers (default 2, the cores of the machines this project runs on). Each test file runs whole in
# one worker (--dist loadfile), so that a module's fixtures are built once; tests/conftest.py builds the shared
# exports once per run for all workers and puts the longest files first, an order that --no-loadscope-reorder
# keeps (xdist would otherwise hand out files by their number of tests, the one-test full-size export last).
PYTEST_WORKERS ?= 2
PYTEST := CLIP_EDGE_BEAM_PYTHON=$(abspath $(BEAM_VENV))/bin/python $(PY) -m pytest -q -n $(PYTEST_WORKERS) \
	--dist loadfile --no-loadscope-reorder
# Runs a command and prints how long it took, so that each part of `make test` shows its time.
TIMED = bash scripts/timed.sh

# Style and static checks over the whole tree: ruff for Python (pyproject.toml), checkstyle for Java
# (tools/checkstyle/checkstyle.xml). A second each; `make test` runs it first.
lint: install
	$(VENV)/bin/ruff check .
	checkstyle -c tools/checkstyle/checkstyle.xml $$(git ls-files '*.java' 2>/dev/null || find android_demo -name '*.java')

# The Java modules' JUnit tests, then every pytest suite (which includes the JVM-vs-SavedModel cross-checks and
# the Beam pipeline in its own virtualenv), listing the slowest tests so that the suite's time stays visible.
test: lint java-test beam-venv
	$(TIMED) pytest $(PYTEST) --durations=25 tests

test-fast: lint java-test beam-venv
	$(TIMED) pytest $(PYTEST) -m "not slow" tests

java-test: install
	$(TIMED) JUnit $(MVN) test

bazel: install
	bash scripts/bazel_check.sh
