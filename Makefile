# cam-rt: the two commands of a fresh machine are `make demo` and `make test`.
# Each creates .venv (if needed) and installs what it needs; nothing is downloaded at run time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo train-demo test lint typecheck unit venv bench-export clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[cpu,export,bench,dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: export the trained demo model (checked against Keras), run cam-rt with TTA on
## held-out images (overlays, seeds, grid), print the seed mIoU of the held-out set.
demo: $(STAMP)
	$(PY) -m cam_rt.export.demo --out $(DEMO_DIR)

## Retrain the demo model (about 7 CPU minutes); writes export/data/demo_cnn.*
train-demo: $(STAMP)
	$(PY) -m cam_rt.export.train_demo

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
