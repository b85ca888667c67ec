# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves, with the
# exact versions the suite passed with (requirements.lock); `make test-latest` tries the newest versions
# pyproject.toml allows, and `make lock` records them once they pass (README: "The lock").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LATEST_VENV ?= .venv-latest
LOCK := requirements.lock
# pip itself is pinned too: its resolver and build isolation are part of what was tested.
PIP_SPEC ?= pip==26.3
# CPU build by default. GPU users: install your own torch build into .venv first (see README),
# or override, e.g. `make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-latest lock lint bench-encode clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(PIP_SPEC)"
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	$(PY) scripts/lock.py check
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/lextune demo

# The browser tests (the HTML report, PDFs printed for the document readers) need Debian's chromium and
# fonts-nanum, the encrypted-PDF test qpdf: `apt-get install chromium fonts-nanum qpdf` (.ci/run does it);
# without them those tests are skipped.
test: $(VENV)/.installed
	$(PY) -m pytest

# The drift check: a new virtualenv with the newest versions the ranges in pyproject.toml allow (no
# lock), then the whole suite. Green: `make lock` records exactly that set.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	# torch stays the TORCH_SPEC build: an eager upgrade would swap the CPU build for a CUDA one.
	$(LATEST_VENV)/bin/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(LATEST_VENV)/torch.txt
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -c $(LATEST_VENV)/torch.txt -e ".[dev]"
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest
	touch $(LATEST_VENV)/.passed

# Refresh the lock from the set `make test-latest` just passed with; then `make test` reinstalls from it.
lock:
	@test -f $(LATEST_VENV)/.passed || { echo "run 'make test-latest' first: the lock records a set that passed"; exit 1; }
	$(LATEST_VENV)/bin/python scripts/lock.py write > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	@echo "wrote $(LOCK); pip in it: $$($(LATEST_VENV)/bin/python -m pip --version | cut -d' ' -f2) (PIP_SPEC)"

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests bench scripts

bench-encode: $(VENV)/.installed
	$(PY) bench/encode.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) lextune-demo
