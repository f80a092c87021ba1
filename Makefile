# The two commands of the README. Both create ./.venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test faults setup lint browser vo-setup

$(BIN)/hcdc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/hcdc

setup: $(BIN)/hcdc

# Main job on the embedded default (SQLite + local storage under ./hcdc-demo), then served at
# http://127.0.0.1:8000/ until Ctrl-C ('hcdc demo DIR' without --serve only builds it).
demo: setup
	$(BIN)/hcdc demo ./hcdc-demo --serve

# Whole test suite, on SQLite and PostgreSQL. One BLAS thread per test process: two
# processes share the cores, and threaded BLAS on top of that only slows the SVDs.
test: setup vo-setup
	$(BIN)/lint-imports
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not faults"

# The slow part of the fault suite (tests/faults: large hostile batches, generated headers,
# watch, kill -9 at named points then fsck, concurrent ingest + worker + watch; see
# docs/reliability.md), on SQLite and PostgreSQL. Its fast part runs in 'make test'.
faults: setup
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest tests/faults -m faults -p no:xdist

# Debian's chromium for the browser tests (root; a no-op when installed). CI runs it from .ci/run.
browser:
	.ci/setup-browser

# STILTS (taplint, votlint) and pgSphere for the VO tests (root; a no-op when installed). CI runs
# it from .ci/run; without root it says what to install and 'make test' goes on: the tests that
# need them skip with that reason (and fail under CI=true).
vo-setup:
	-.ci/setup-vo

lint: setup
	$(BIN)/ruff check src tests benchmarks
