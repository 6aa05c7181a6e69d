# SafeLadder in JAX. The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements/core.txt requirements/test.txt requirements/tf.txt requirements/tf-nodeps.txt \
  requirements/tpu.txt
WORKDIR ?= /tmp/safeladder_demo
# These targets run on the CPU. With libtpu installed (requirements/tpu.txt) jax would
# first try to start a TPU runtime, logging errors on a host without one and taking
# libtpu's lock file; `make demo JAX_PLATFORMS=` restores jax's own choice on a TPU VM.
export JAX_PLATFORMS ?= cpu

.PHONY: setup demo test test-all bench lint clean compile-check

setup: $(STAMP)

# The TensorFlow group goes last: tensorflow-text and seqio ask for the `tensorflow`
# distribution, which tensorflow-cpu serves, so they are installed with --no-deps.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements/core.txt -r requirements/test.txt
	$(PY) -m pip install -r requirements/tf.txt
	$(PY) -m pip install --no-deps -r requirements/tf-nodeps.txt
	$(PY) -m pip install -r requirements/tpu.txt
	touch $(STAMP)

demo: setup
	$(PY) -m launch.main --config=configs/safeladder.py:runlocal --workdir=$(WORKDIR)

test: setup
	$(PY) -m pytest -n 2 tests

# Includes the checks marked `slow` (each covered in the default run by a faster one).
test-all: setup
	$(PY) -m pytest -n 2 -m "slow or not slow" tests

bench: setup
	@for b in benchmarks/*.py; do \
	  case $$b in */__init__.py) continue;; esac; \
	  echo "== $$b"; $(PY) -m benchmarks.$$(basename $$b .py) || exit 1; \
	done

# Ahead-of-time compile of the tiny preset's RL programs for a TPU topology, on this host
# (docs/scale_plan.md has the 7B and 72B plans); tests/launch runs it in `make test`.
compile-check: setup
	$(PY) -m launch.compile_check --preset tiny --topology v5p:2x2x1

lint: setup
	$(PY) -m pytest -q tests/test_layers.py

clean:
	rm -rf $(VENV)

# Every test under Bazel, offline, with the virtual environment's Python (set-up: docs/bazel.md).
# The stand-ins for rules_cc and remote_coverage_tools need absolute paths, hence the flags here.
BAZEL ?= bazel
BAZEL_STANDINS := $(CURDIR)/third_party/bazel

.PHONY: bazel-test
bazel-test: setup
	$(BAZEL) test --override_repository=rules_cc=$(BAZEL_STANDINS)/rules_cc \
	  --override_repository=remote_coverage_tools=$(BAZEL_STANDINS)/remote_coverage_tools \
	  //tests/...
