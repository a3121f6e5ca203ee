# Two entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/novapos demo

# The whole suite, including the install test (marked `install`: it builds the wheel and runs the
# demo from a fresh venv; `$(BIN)/python -m pytest -m "not install"` skips it), on TEST_WORKERS pytest-xdist
# workers: most tests wait on NATS, PostgreSQL, a browser or a child process, so four share two cores well
# (15-18 min here; 40-43 one at a time).
# Tests marked xdist_group("name") run on one worker, one after another.
TEST_WORKERS ?= 4
test: lint tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# ruff, then mypy on everything, then mypy --strict on the parts others build on.
STRICT := edge_runtime novapos/wire novapos/money.py novapos/validators.py
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict $(STRICT)

# $(call debian,COMMANDS,PACKAGES,WHO): install Debian PACKAGES when one of COMMANDS is missing and we may (root).
debian = if ! { $(foreach c,$(1),command -v $(c) >/dev/null &&) true; }; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(2) for $(3)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(3) needs $(2): sudo apt-get install $(2)"; \
	  fi; \
	fi

# Debian tools that tests drive: Chromium for the web till UI test, systemd-analyze for the units' test,
# promtool (and prometheus) for the metrics, rules and dashboards tests.
tools:
	@$(call debian,chromium chromedriver,chromium chromium-driver,the web till UI test)
	@$(call debian,systemd-analyze,systemd,the systemd units test)
	@$(call debian,promtool prometheus,prometheus,the metrics and alert rules tests and the dashboards test)

bench: $(STAMP)
	$(BIN)/python -m bench.kernel
	$(BIN)/python -m bench.devices
	$(BIN)/python -m bench.receipts
	$(BIN)/python -m bench.sync
	$(BIN)/python -m bench.checkout
	$(BIN)/python -m bench.auth
	$(BIN)/python -m bench.login
	$(BIN)/python -m bench.contracts
	$(BIN)/python -m bench.catalog
	$(BIN)/python -m bench.stock
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.fleet_reports
	$(BIN)/python -m bench.fleet
	$(BIN)/python -m bench.fleet_lean
	$(BIN)/python -m bench.audit
	$(BIN)/python -m bench.console
	$(BIN)/python -m bench.shift
	$(BIN)/python -m bench.cart
	$(BIN)/python -m bench.returns
	$(BIN)/python -m bench.payments

clean:
	rm -rf $(VENV) .state build *.egg-info
