# cam-rt: the two commands of a fresh machine are `make demo` and `make test`.
# Each creates .venv (if needed) and installs what it needs; nothing is downloaded at run time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit venv bench-export clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[cpu,export,dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: build a small model, export it to ONNX (checked against Keras), run cam-rt on it.
demo: $(STAMP)
	$(PY) benchmarks/demo.py --out $(DEMO_DIR)

## The whole test suite: lint, types, tests (the ResNet38-d export is opt-in: -m slow).
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check export runtime tests benchmarks
	$(BIN)/ruff format --check export runtime tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy runtime

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## Export the built-in ResNet38-d (random weights) and record wall time and peak RSS.
bench-export: $(STAMP)
	$(PY) benchmarks/export_resnet38d.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
