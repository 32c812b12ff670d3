# Every target installs what it needs: a fresh clone needs only Python 3.11 and network access to PyPI.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_WEIGHTS ?= ../shared/weights/keras/models
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: venv test demo bench lint weights clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Pre-fills Keras's cache with offline ImageNet weights when ../shared/weights is present.
weights:
	@mkdir -p $(KERAS_HOME)/models
	@if [ -d "$(SHARED_WEIGHTS)" ]; then cp -u $(SHARED_WEIGHTS)/*.h5 $(KERAS_HOME)/models/ && \
		echo "ImageNet weights from $(SHARED_WEIGHTS) placed in $(KERAS_HOME)/models"; \
	else echo "no offline weights at $(SHARED_WEIGHTS); Keras will download ImageNet weights when online"; fi

test: venv weights
	$(BIN)/python -m pytest -q tests

demo: venv weights
	$(BIN)/python -m scripts.demo $(if $(DATA),--data $(DATA))

bench: venv weights
	$(BIN)/python -m benchmarks.run_all

lint: venv
	$(BIN)/ruff check corrosion pipelines training tests benchmarks scripts
	$(BIN)/ruff format --check corrosion pipelines training tests benchmarks scripts

clean:
	rm -rf $(VENV) .cache build dist *.egg-info
