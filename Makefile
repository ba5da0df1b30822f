# accords-tem: the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: install demo test test-nbs test-py export clean-nbs bench docs clean

# Create the virtual environment and install the project (torch + torchvision as a matching pair
# from the registry, everything else from settings.ini). Re-runs when the dependencies change.
$(STAMP): settings.ini setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job on the committed sample: every stage that exists, into runs/demo/.
demo: $(STAMP)
	$(BIN)/accords-tem run --config configs/demo.yaml --out runs/demo

# Notebook tests (nbdev_test), then the package and the notebooks must agree, then pytest.
test: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python .ci/check_export.py
	$(BIN)/python -m pytest tests/ -q

export: $(STAMP)
	$(BIN)/nbdev_export

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs/demo _docs _site
