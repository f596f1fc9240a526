# Set-up and the two commands the README promises. Everything lands in ./.venv.
VENV ?= .venv
PY := $(VENV)/bin/python
ADAPTERS := $(patsubst %/pyproject.toml,%,$(wildcard adapters/*/pyproject.toml))
STAMP := $(VENV)/.noisyclean-installed
# torch is pinned; PyPI's x86_64 build bundles CUDA. On a machine that can reach the PyTorch
# index, `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the CPU build
# (docs/install.md has the sizes).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint docs benchmark

$(STAMP): pyproject.toml $(wildcard adapters/*/pyproject.toml)
	@echo "==> [1/4] virtual environment in $(VENV)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --upgrade pip
	@echo "==> [2/4] torch: $(TORCH_SPEC) $(if $(TORCH_INDEX),from $(TORCH_INDEX),from PyPI (a CUDA build, about 5 GB; see docs/install.md))"
	$(PY) -m pip install --progress-bar off $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	@echo "==> [3/4] noisyclean, its extras, the adapters and the example plugin"
	$(PY) -m pip install --progress-bar off -e ".[images,backbones,report,ray,docs,dev]" $(foreach a,$(ADAPTERS),-e $(a)) -e examples/plugin
	@echo "==> [4/4] done: $$(du -sh $(VENV) | cut -f1) in $(VENV)"
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
