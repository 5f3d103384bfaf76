# svar: set up, run the benchmark, run the tests. Everything installs into .venv.
#   make benchmark   set up, then run the default benchmark (generated dataset, CPU)
#   make test        set up, then run the test suite
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
BIN := $(abspath $(VENV))/bin
# the rules call `python -m svar`: the venv's python must come first on PATH
RUN := env PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1

.PHONY: setup system-deps benchmark test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Debian packages some tests need (a RAR backend, Chromium, Slurm and munge); the tests that
# need them skip without them
system-deps:
	bash .ci/system-deps.sh
	bash .ci/slurm-deps.sh

benchmark: setup
	$(RUN) snakemake --cores $(CORES)

test: setup system-deps
	$(RUN) python -m pytest

lint: setup
	$(RUN) snakemake --lint

clean:
	rm -rf results/synthetic results/logs results/plots results/report results/*.csv results/*.json .snakemake
