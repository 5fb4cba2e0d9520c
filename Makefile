# nfr-book: `make book` builds the HTML book, `make test` runs the unit tests and nbval.
# Both create .venv with the pinned dependencies on first use and are fast afterwards.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_static/mathjax
# tests and CI use ../shared (CIFAR-10, CIFAR ResNets) when it exists; the product never needs it
SHARED := $(abspath ../shared)
export NFR_SHARED := $(if $(wildcard $(SHARED)/README.md),$(SHARED),)
export PYTHONHASHSEED := 0
JB_FLAGS := -W -n --keep-going
CHAPTER ?=

.PHONY: setup book test unit nbval rerun mathjax clean help

help:
	@echo "make book    build the HTML book into _build/html (creates .venv on first use)"
	@echo "make test    unit tests + nbval on every chapter"
	@echo "make rerun CHAPTER=chapters/01_filtering_rules.ipynb   re-execute one chapter in place"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[torch,book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(STAMP)

# MathJax is served from the build itself (no CDN): a local copy fetched once with npm
$(MATHJAX)/tex-chtml.js:
	@rm -rf $(MATHJAX) .mathjax-tmp && mkdir -p .mathjax-tmp $(MATHJAX)
	cd .mathjax-tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	cp -r .mathjax-tmp/package/es5/{tex-chtml.js,input,output,ui,a11y,adaptors} $(MATHJAX)/
	cp .mathjax-tmp/package/LICENSE $(MATHJAX)/
	@rm -rf .mathjax-tmp

mathjax: $(MATHJAX)/tex-chtml.js

book: setup mathjax
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) -m nfr.tools.check_html _build/html
	@echo "Book built: $(abspath _build/html/index.html)"

unit: setup mathjax
	$(PY) -m pytest tests -q

nbval: setup
	$(PY) -m pytest -q --nbval chapters --sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

test: unit nbval

rerun: setup
	@test -n "$(CHAPTER)" || { echo "usage: make rerun CHAPTER=chapters/NN_name.ipynb"; exit 2; }
	$(PY) -m nfr.tools.rerun $(CHAPTER)

clean:
	rm -rf _build
