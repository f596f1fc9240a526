# Set-up and the two commands the README promises. Everything lands in ./.venv.
VENV ?= .venv
PY := $(VENV)/bin/python
ADAPTERS := $(patsubst %/pyproject.toml,%,$(wildcard adapters/*/pyproject.toml))
STAMP := $(VENV)/.noisyclean-installed
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint docs benchmark

$(STAMP): pyproject.toml $(wildcard adapters/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: these builds lie on this machine's disk (see docs/install.md)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[images,report,ray,docs,dev]" $(foreach a,$(ADAPTERS),-e $(a)) -e examples/plugin
	touch $@

install: $(STAMP)

demo: $(STAMP)  ## the main job on the embedded default: purify a contaminated texture set
	$(VENV)/bin/noisyclean demo

test: $(STAMP)  ## every test of the core, the adapters and the example plugin
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

benchmark: $(STAMP)
	$(VENV)/bin/noisyclean benchmark --rows-json benchmarks/rows.json --notes benchmarks/notes.md
