# svar: set up, run the benchmark, run the tests. Everything installs into .venv.
#   make benchmark   set up, then run the default benchmark (generated dataset, CPU)
#   make benchmark-full  the same grid with every method (workflow/config/full.yaml)
#   make test        set up, then run the test suite (what CI runs)
#   make test-fast   set up, then run the tests not marked slow (no workflow, DVC, Slurm or browser runs),
#                    CORES at a time (pytest-xdist)
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
BIN := $(abspath $(VENV))/bin
# the rules call `python -m svar`: the venv's python must come first on PATH
RUN := env PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1

.PHONY: setup system-deps benchmark benchmark-full test test-fast lint clean

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

benchmark-full: setup
	$(RUN) snakemake --cores $(CORES) --configfile workflow/config/full.yaml

# the fast tier CORES tests at a time, then the slow tier: the tests that share the tiny run one
# at a time on one worker, the rehearsals (one-core runs, each in its own folder) on the others
# beside them (tests/conftest.py's SlowTierScheduling)
test: setup system-deps
	$(RUN) python -m pytest -m "not slow" -n $(CORES)
	$(RUN) python -m pytest -m slow -n $(CORES) --dist loadgroup

test-fast: setup
	$(RUN) python -m pytest -m "not slow" -n $(CORES)

lint: setup
	$(RUN) snakemake --lint
	$(RUN) snakefmt --check Snakefile workflow/rules

clean:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .snakemake
