# whybox: two commands on a fresh machine
#   make demo   creates .venv, installs whybox[all], writes whybox-report/index.html
#   make test   checks (and, as root, installs) the system packages the tests need, creates
#               .venv, installs whybox[all,dev], runs ruff and the whole test suite
#   make system-deps   only the system packages: Chromium, libGL, GLib, a font (scripts/system-deps.sh)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test lint bench clean system-deps docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-all: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[all]'
	@touch $@

# zennit (the LRP oracle), tokenshap (TokenSHAP's reference, for the benchmark) and inseq (a text
# attribution oracle; with treescope, the one dependency its attribution code imports) go in
# without their dependencies: zennit's torchvision would pull a CUDA build that breaks
# transformers, and inseq pins typeguard<=2.13.3, which other oracles need newer. context-cite
# (ContextCite's reference solver) would pull nltk and spacy, which its solver never imports.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[all,dev,docs]'
	$(PIP_INSTALL) --no-deps zennit tokenshap inseq treescope context-cite
	@touch $@ $(VENV)/.installed-all $(VENV)/.installed-docs

# sae-lens (the SAE file-format oracle, test-only) pins transformer-lens < 4 while .venv has 4.x:
# it gets its own venv, built by scripts/oracle-saelens.sh (torch held at the CPU wheel).
SAELENS_VENV := .venv-saelens
$(SAELENS_VENV)/.installed: scripts/oracle-saelens.sh
	PYTHON=$(PYTHON) bash scripts/oracle-saelens.sh $(SAELENS_VENV)

$(VENV)/.installed-docs: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[all,docs]'
	@touch $@

# The documentation site, built offline into docs/_build/html; every warning is an error and
# the gallery's examples run (`make test` builds it after the tests, whose zoo models it reuses).
docs: $(VENV)/.installed-docs
	$(MAKE) -C docs html PYTHON=$(abspath $(BIN))/python

# `demo` needs no system package: the quickstart report is written with matplotlib's own fonts.
demo: $(VENV)/.installed-all
	$(BIN)/whybox quickstart --out whybox-report

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# First of all, so that a machine that lacks them stops before the long install and any test.
system-deps:
	@bash scripts/system-deps.sh

# Agg: no plot window opens, on a desktop as on a server; the ten slowest tests are listed at
# the end so that the suite's time stays visible as it grows. (Two pytest-xdist workers were
# tried on the 2-core machine: a fresh clone took 17 min 30 s with them, 15 min 18 s in one
# process, with 66% more CPU time, so the suite stays in one process.)
test: system-deps $(VENV)/.installed-dev $(SAELENS_VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	MPLBACKEND=Agg $(BIN)/python -m pytest --durations=10
	$(MAKE) -C docs html PYTHON=$(abspath $(BIN))/python

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(SAELENS_VENV) whybox-report .pytest_cache docs/_build docs/api docs/auto_examples
