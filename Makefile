PY ?= python3

.PHONY: run test deps bench

deps:
	bash scripts/install-deps.sh

# Runs the gateway; with no config it starts the embedded demo.
run:
	$(PY) scripts/ensure_installed.py
	$(PY) -m propylon run $(ARGS)

# Installs everything the suite needs (apt + pip), then runs it.
test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: deps
	$(PY) -m bench $(ARGS)
