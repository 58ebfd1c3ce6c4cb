PY ?= python3

.PHONY: run test test-pure deps bench

deps:
	bash scripts/install-deps.sh

# Runs the gateway; with no config it starts the embedded demo.
run:
	$(PY) scripts/ensure_installed.py
	$(PY) -m propylon run $(ARGS)

# Installs everything the suite needs (apt + pip), then runs it on the installed
# build (compiled when a C compiler is present).
test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite on the pure-Python build of the same sources.
test-pure: deps
	PYTHON=$(PY) bash scripts/test-pure.sh $(PYTEST_ARGS)

bench: deps
	$(PY) -m bench $(ARGS)
