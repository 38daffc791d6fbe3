#!/bin/sh
# Install the other npm clients the end-to-end tests drive (pnpm 10 and 11,
# yarn classic and yarn 4 "berry") under DIR. Idempotent: does nothing when
# every one is there.
#
#   sh tests/tools/install-clients.sh .cache/clients
#
# The tests look for DIR/node_modules/.bin/pnpm and .../yarn (classic), for
# yarn 4 at DIR/yarn4/node_modules/@yarnpkg/cli-dist/bin/yarn.js, run with
# node, and for pnpm 11 at DIR/pnpm11/node_modules/pnpm/bin/pnpm.mjs: their
# bins are also called `yarn` and `pnpm`, so each lives under a prefix of its own.
set -eu

# pnpm 10 runs on node >= 18.12; yarn 1 is "classic", the one CI fleets still run;
# yarn 4 ("berry") is the single-file CLI its maintainers publish, node >= 18.12.
# pnpm 11 (`pnpm stage ...`) wants node >= 22.13: the tests run it with the
# Node 24 tests/tools/install-verdaccio.sh installs, so it is not run here.
PNPM="pnpm@10.34.9"
YARN="yarn@1.22.22"
YARN4="@yarnpkg/cli-dist@4.18.1"
PNPM11="pnpm@11.29.0"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
BIN="$DIR/node_modules/.bin"
YARN4_JS="$DIR/yarn4/node_modules/@yarnpkg/cli-dist/bin/yarn.js"
PNPM11_JS="$DIR/pnpm11/node_modules/pnpm/bin/pnpm.mjs"
PNPM11_JSON="$DIR/pnpm11/node_modules/pnpm/package.json"

if [ -x "$BIN/pnpm" ] && [ -x "$BIN/yarn" ] && [ -f "$YARN4_JS" ] && [ -f "$PNPM11_JS" ]; then
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "$0: npm is needed to install $PNPM, $YARN, $YARN4 and $PNPM11" >&2
    exit 1
fi

# --no-save and --no-package-lock: nothing (no package.json, no lock file with
# registry URLs) is written outside node_modules.
install() {
    mkdir -p "$1"
    shift
    npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$@"
}

if [ ! -x "$BIN/pnpm" ] || [ ! -x "$BIN/yarn" ]; then
    install "$DIR" "$DIR" "$PNPM" "$YARN"
fi
if [ ! -f "$YARN4_JS" ]; then
    install "$DIR/yarn4" "$DIR/yarn4" "$YARN4"
fi
if [ ! -f "$PNPM11_JS" ]; then
    # --engine-strict=false: npm's node may be older than the one pnpm 11 runs on.
    install "$DIR/pnpm11" "$DIR/pnpm11" --engine-strict=false "$PNPM11"
fi

for tool in pnpm yarn; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "$0: $PNPM and $YARN installed but $BIN/$tool is missing" >&2
        exit 1
    fi
done
if [ ! -f "$YARN4_JS" ]; then
    echo "$0: $YARN4 installed but $YARN4_JS is missing" >&2
    exit 1
fi
if [ ! -f "$PNPM11_JS" ]; then
    echo "$0: $PNPM11 installed but $PNPM11_JS is missing" >&2
    exit 1
fi
# yarn 4 would read the repository's settings and look for a project from the
# current directory: ask it for its version from an empty one.
YARN4_VERSION=$(cd "$DIR/yarn4" && YARN_IGNORE_PATH=1 node "$(pwd)/node_modules/@yarnpkg/cli-dist/bin/yarn.js" --version)
# pnpm 11 does not start on this node: its version from its package.json.
PNPM11_VERSION=$(node -p "require(process.argv[1]).version" "$(cd "$(dirname "$PNPM11_JSON")" && pwd)/package.json")
echo "pnpm $("$BIN/pnpm" --version) and $PNPM11_VERSION, yarn $("$BIN/yarn" --version) and yarn $YARN4_VERSION installed in $DIR"
