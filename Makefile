# nfr-book: `make book` builds the HTML book, `make test` runs the unit tests and nbval.
# Both create .venv with the pinned dependencies on first use and are fast afterwards.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_static/mathjax
# everything the book and the tests read ships in the repository (nfr/resources); optional tests
# of the full CIFAR-10 JPEG copy run when NFR_CIFAR10_DIR names it
export PYTHONHASHSEED := 0
# make test runs nbval twice: with this CPU's own kernels, and under the kernels of an older CPU
# (generic ATen, SSE4.1 oneDNN) against the same outputs: they must not depend on what the CPU picks
# (each pass about 8 minutes on 2 idle cores). The settings reach torch only, so the second pass
# re-executes the chapters whose kernel loads torch (nfr.tools.torch_chapters); the NumPy chapters
# compute the same bits in both passes.
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
JB_FLAGS := -W -n --keep-going
CHAPTER ?=

.PHONY: setup venv browser book test unit nbval nbval-other-cpu rerun mathjax clean help

help:
	@echo "make book    build the HTML book into _build/html (creates .venv on first use)"
	@echo "make test    unit tests (the browser test included) + nbval on every chapter, twice:"
	@echo "             with this CPU's float32 kernels and with those of an older CPU"
	@echo "make setup   .venv + Debian's chromium and chromedriver for the browser test"
	@echo "make rerun CHAPTER=chapters/01_filtering_rules.ipynb   re-execute one chapter in place"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[torch,book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

venv: $(STAMP)

# the browser test (tests/test_browser.py) drives Debian's chromium through the system chromedriver;
# Selenium never downloads a browser or a driver. Installed once, as root or with sudo.
BROWSER_PKGS := chromium chromium-driver
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "make setup: no apt-get here: install Chromium and its chromedriver as /usr/bin/chromium and"; \
	  echo "/usr/bin/chromedriver yourself, or run the tests with NFR_SKIP_BROWSER=1 to skip the browser test"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; \
	else \
	  echo "make setup: /usr/bin/chromium or /usr/bin/chromedriver is missing and this user cannot install"; \
	  echo "them: run 'apt-get install -y $(BROWSER_PKGS)' as root, or NFR_SKIP_BROWSER=1 make test"; \
	fi

setup: venv browser

# MathJax is served from the build itself (no CDN): a local copy fetched once with npm
$(MATHJAX)/tex-chtml.js:
	@rm -rf $(MATHJAX) .mathjax-tmp && mkdir -p .mathjax-tmp $(MATHJAX)
	cd .mathjax-tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	cp -r .mathjax-tmp/package/es5/{tex-chtml.js,input,output,ui,a11y,adaptors} $(MATHJAX)/
	cp .mathjax-tmp/package/LICENSE $(MATHJAX)/
	@rm -rf .mathjax-tmp

mathjax: $(MATHJAX)/tex-chtml.js

book: venv mathjax
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	$(PY) -m nfr.tools.check_html _build/html
	@echo "Book built: $(abspath _build/html/index.html)"

unit: setup mathjax
	$(PY) -m pytest tests -q --durations=15

NBVAL := -m pytest -q --nbval chapters --sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1800

nbval: venv
	$(PY) $(NBVAL)

NBVAL_ONE := -m pytest -q --nbval --sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1800

nbval-other-cpu: venv
	chs=$$($(PY) -m nfr.tools.torch_chapters chapters) && test -n "$$chs" && $(OTHER_CPU) $(PY) $(NBVAL_ONE) $$chs

test: unit nbval nbval-other-cpu

rerun: venv
	@test -n "$(CHAPTER)" || { echo "usage: make rerun CHAPTER=chapters/NN_name.ipynb"; exit 2; }
	$(PY) -m nfr.tools.rerun $(CHAPTER)

clean:
	rm -rf _build
