# accords-tem: the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# Threads spin-wait by default; passive waiting keeps a shared or busy CPU from thrashing.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install demo test export clean-nbs bench bench-deps docs readme sysdeps clean gpu-wheels gpu-check-cpu label-studio label-studio-sdk

# Create the virtual environment and install the project (torch + torchvision as a matching pair
# from the registry, everything else from settings.ini). Re-runs when the dependencies change.
$(STAMP): settings.ini setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use: Chromium + ChromeDriver (docs site test), poppler-utils (PDF report test).
# Installed when missing (needs root, as on the project's machines).
SYSDEPS_STAMP := $(VENV)/.sysdeps
$(SYSDEPS_STAMP):
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftoppm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver poppler-utils >/dev/null; \
	else echo "warning: install chromium, chromium-driver and poppler-utils for the docs and report tests"; fi
	@mkdir -p $(VENV) && touch $(SYSDEPS_STAMP)

sysdeps: $(SYSDEPS_STAMP)

# The main job on the committed sample: every stage that exists, into runs/demo/.
demo: $(STAMP) $(SYSDEPS_STAMP)
	$(BIN)/accords-tem run --config demo --out runs/demo

# Notebook tests (nbdev_test), then the package and the notebooks must agree, then pytest.
test: $(STAMP) $(SYSDEPS_STAMP)
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python .ci/check_export.py
	$(BIN)/python -m pytest tests/ -q

export: $(STAMP)
	$(BIN)/nbdev_export

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# Cellpose 3 (CPnet, trainable from scratch on a CPU; cellpose 4 is the large SAM-based model) for bench/bench_instances.py.
# Installed without its dependency pins: it declares numpy<2.1 and runs with the environment's numpy 2.x.
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --no-deps "cellpose>=3.1,<4" fastremap fill_voids natsort roifile
	$(BIN)/python -m pip install numba

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

# Corrections in the browser (nbs/10b_label_studio.ipynb): `make label-studio` starts a Label Studio server at
# http://localhost:$(LS_PORT) in its own virtual environment (.venv-labelstudio/, made from PyPI on first use, about 75 s;
# database, uploads and API key in .label-studio/) and prints the user and API key. The analysis side talks to it with
# label-studio-sdk, installed without its pins (it declares opencv-python-headless<4.13, hence numpy<2.3, for converters
# this project does not use), with the modules it imports.
LS_PORT ?= 8080
LS_SDK_STAMP := $(VENV)/.label-studio-sdk
LS_SDK_DEPS = appdirs faker ijson "jsf>=0.11.2,<0.12" lxml "nltk>=3.10,<=3.11" "pyjwt>=2.13,<2.14" rstr ujson xmljson==0.2.1
$(LS_SDK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --no-deps "label-studio-sdk>=2.1,<3"
	$(BIN)/python -m pip install $(LS_SDK_DEPS)
	touch $(LS_SDK_STAMP)

label-studio-sdk: $(LS_SDK_STAMP)

label-studio: $(LS_SDK_STAMP)
	$(BIN)/accords-tem label-studio serve --port $(LS_PORT)

# A lent GPU machine has no network: the wheels its image lacks (Python 3.12) go to .whl/, which the run carries and
# bench/gpu_check.sh installs there. Without a GPU the same check runs on the CPU: make gpu-check-cpu.
GPU_WHEELS = annotated-types==0.8.0 beartype==0.23.1 fastai==2.8.7 fastcore==1.14.5 fastdownload==0.0.8 fastprogress==1.1.6 \
	fasttransform==0.0.2 plum-dispatch==2.10.1 pydantic==2.14.4 pydantic_core==2.50.5 segmentation_models_pytorch==0.6.0 \
	jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 typing-inspection==0.4.5
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

gpu-check-cpu: $(STAMP)
	OUT=bench/out/gpu_check PY=$(BIN)/python bash bench/gpu_check.sh --cpu

# README.md from nbs/index.ipynb and the HTML site (_site/) from all notebooks; no Quarto needed.
readme: $(STAMP)
	$(BIN)/python tools/build_docs.py readme

docs: $(STAMP)
	$(BIN)/python tools/build_docs.py all --out _site
	@echo "open _site/index.html"

clean:
	rm -rf runs/demo _docs _site
