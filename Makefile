# Two entry points (see README): `make export` and `make test`. Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# clip_edge.beam's own virtualenv: apache-beam 2.77 needs protobuf < 7 and pillow < 13, older than .venv's.
BEAM_VENV ?= .venv-beam
PRESET ?= clip-vit-base-patch32
WEIGHTS ?= random
OUTPUT_DIR ?= out

.PHONY: install beam-venv export test test-fast benchmarks bazel

# open_clip_torch is installed without dependencies: its tokenizer.py is the reference tokenizer for tests,
# and its declared dependency torchvision cannot be installed beside the pinned CPU torch.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps open_clip_torch==3.3.0
	touch $@

install: $(VENV)/.installed

# tests/test_beam.py runs the pipeline in this virtualenv (CLIP_EDGE_BEAM_PYTHON) against references in .venv.
$(BEAM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet -e '.[beam]'
	touch $@

beam-venv: $(BEAM_VENV)/.installed

export: install
	$(PY) -m converters.export --preset=$(PRESET) --weights=$(WEIGHTS) --output_dir=$(OUTPUT_DIR)

test: install beam-venv
	CLIP_EDGE_BEAM_PYTHON=$(abspath $(BEAM_VENV))/bin/python $(PY) -m pytest -q tests

test-fast: install beam-venv
	CLIP_EDGE_BEAM_PYTHON=$(abspath $(BEAM_VENV))/bin/python $(PY) -m pytest -q -m "not slow" tests

benchmarks: install
	$(PY) -m benchmarks.run_all

bazel: install
	bash scripts/bazel_check.sh
