# cam-rt: the two commands of a fresh machine are `make demo` and `make test`.
# Each creates .venv (if needed) and installs what it needs; nothing is downloaded at run time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=
# The OpenVINO tests' own environment: onnxruntime-openvino replaces onnxruntime (same module).
OV_VENV ?= .venv-openvino
OV_STAMP := $(OV_VENV)/.installed
OV_FIXTURE := build/openvino

.PHONY: demo train-demo test browser lint typecheck unit unit-openvino test-openvino venv bench-export clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[cpu,export,bench,dev,ray,serve]'
	touch $(STAMP)

venv: $(STAMP)

$(OV_STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(OV_VENV)
	$(OV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OV_VENV)/bin/python -m pip install --quiet -c .ci/constraints.txt -e '.[openvino,quantize,dev]'
	touch $(OV_STAMP)

# The model and images the OpenVINO tests use, made by the main environment (TensorFlow export).
$(OV_FIXTURE)/.done: $(STAMP) export/data/demo_cnn.weights.h5 export/*.py
	rm -rf $(OV_FIXTURE)
	$(PY) -m cam_rt.export.demo --out $(OV_FIXTURE) --count 24 --show 2 > /dev/null
	touch $@

## The main job: export the trained demo model (checked against Keras), run cam-rt with TTA on
## held-out images (overlays, seeds, grid), print the seed mIoU of the held-out set.
demo: $(STAMP)
	$(PY) -m cam_rt.export.demo --out $(DEMO_DIR)

## Retrain the demo model (about 10 CPU minutes); writes export/data/demo_cnn.*
train-demo: $(STAMP)
	$(PY) -m cam_rt.export.train_demo

## The whole test suite: lint, types, tests, then the OpenVINO tests in their own environment
## (the ResNet38-d export is opt-in: -m slow).
test: lint typecheck unit unit-openvino

lint: $(STAMP)
	$(BIN)/ruff check export runtime tests benchmarks
	$(BIN)/ruff format --check export runtime tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy runtime

## Debian's chromium for the report's browser test (a no-op where it is installed; if apt
## fails, that test skips and says why).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update && apt-get install -y chromium chromium-driver) || \
	  echo "make browser: chromium not installed; the report's browser test will skip"

unit: $(STAMP) browser
	$(BIN)/pytest $(PYTEST_ARGS)

## The OpenVINO execution provider tests (onnxruntime-openvino, no TensorFlow).
unit-openvino: $(OV_STAMP) $(OV_FIXTURE)/.done
	CAM_RT_OPENVINO_FIXTURE=$(OV_FIXTURE) $(OV_VENV)/bin/pytest tests/openvino -m openvino $(PYTEST_ARGS)

test-openvino: unit-openvino

## Export the built-in ResNet38-d (random weights) and record wall time and peak RSS.
bench-export: $(STAMP)
	$(PY) benchmarks/export_resnet38d.py

clean:
	rm -rf $(VENV) $(OV_VENV) build $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
