#!/bin/sh
# Install the other npm clients the end-to-end tests drive (pnpm and yarn
# classic) under DIR. Idempotent: does nothing when both binaries are there.
#
#   sh tests/tools/install-clients.sh .cache/clients
#
# The tests look for DIR/node_modules/.bin/pnpm and .../yarn.
set -eu

# pnpm 10 runs on node >= 18.12; yarn 1 is "classic", the one CI fleets still run.
PNPM="pnpm@10.34.9"
YARN="yarn@1.22.22"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
BIN="$DIR/node_modules/.bin"

if [ -x "$BIN/pnpm" ] && [ -x "$BIN/yarn" ]; then
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "$0: npm is needed to install $PNPM and $YARN" >&2
    exit 1
fi

mkdir -p "$DIR"
# --no-save and --no-package-lock: nothing (no package.json, no lock file with
# registry URLs) is written outside node_modules.
npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$DIR" "$PNPM" "$YARN"

for tool in pnpm yarn; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "$0: $PNPM and $YARN installed but $BIN/$tool is missing" >&2
        exit 1
    fi
done
echo "pnpm $("$BIN/pnpm" --version) and yarn $("$BIN/yarn" --version) installed in $BIN"
