#!/bin/sh
# Install the other npm clients the end-to-end tests drive (pnpm, yarn
# classic and yarn 4 "berry") under DIR. Idempotent: does nothing when every
# binary is there.
#
#   sh tests/tools/install-clients.sh .cache/clients
#
# The tests look for DIR/node_modules/.bin/pnpm and .../yarn (classic), and
# for yarn 4 at DIR/yarn4/node_modules/@yarnpkg/cli-dist/bin/yarn.js, run with
# node: its bin is also called `yarn`, so it lives under a prefix of its own.
set -eu

# pnpm 10 runs on node >= 18.12; yarn 1 is "classic", the one CI fleets still run;
# yarn 4 ("berry") is the single-file CLI its maintainers publish, node >= 18.12.
PNPM="pnpm@10.34.9"
YARN="yarn@1.22.22"
YARN4="@yarnpkg/cli-dist@4.18.1"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
BIN="$DIR/node_modules/.bin"
YARN4_JS="$DIR/yarn4/node_modules/@yarnpkg/cli-dist/bin/yarn.js"

if [ -x "$BIN/pnpm" ] && [ -x "$BIN/yarn" ] && [ -f "$YARN4_JS" ]; then
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "$0: npm is needed to install $PNPM, $YARN and $YARN4" >&2
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
# yarn 4 would read the repository's settings and look for a project from the
# current directory: ask it for its version from an empty one.
YARN4_VERSION=$(cd "$DIR/yarn4" && YARN_IGNORE_PATH=1 node "$(pwd)/node_modules/@yarnpkg/cli-dist/bin/yarn.js" --version)
echo "pnpm $("$BIN/pnpm" --version), yarn $("$BIN/yarn" --version) and yarn $YARN4_VERSION installed in $DIR"
