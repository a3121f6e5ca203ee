# Two entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/novapos demo

test: lint browser
	$(BIN)/python -m pytest

# ruff, then mypy on everything, then mypy --strict on the parts others build on.
STRICT := edge_runtime novapos/wire novapos/money.py novapos/validators.py
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict $(STRICT)

# The web till's UI test drives Debian's Chromium; install it when missing and we may (root).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver for the web till UI test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "the web till UI test needs chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

bench: $(STAMP)
	$(BIN)/python -m bench.kernel
	$(BIN)/python -m bench.devices
	$(BIN)/python -m bench.sync
	$(BIN)/python -m bench.checkout

clean:
	rm -rf $(VENV) .state build *.egg-info
