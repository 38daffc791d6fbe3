#!/bin/sh
# Install DynamoDB Local (the jar inside the npm package amplify-dynamodb-simulator)
# under DIR, for the contract tests. Idempotent: does nothing when the jar is there.
#
#   sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local
set -eu

PACKAGE="amplify-dynamodb-simulator@2.9.30"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
EMULATOR="$DIR/node_modules/amplify-dynamodb-simulator/emulator"
JAR="$EMULATOR/DynamoDBLocal.jar"

if [ -f "$JAR" ] && [ -d "$EMULATOR/DynamoDBLocal_lib" ]; then
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "$0: npm is needed to install DynamoDB Local ($PACKAGE)" >&2
    exit 1
fi

mkdir -p "$DIR"
# --no-save and --no-package-lock: nothing (no package.json, no lock file with
# registry URLs) is written outside node_modules.
npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$DIR" "$PACKAGE"

if [ ! -f "$JAR" ] || [ ! -d "$EMULATOR/DynamoDBLocal_lib" ]; then
    echo "$0: $PACKAGE installed but $JAR (with DynamoDBLocal_lib/ beside it) is missing" >&2
    exit 1
fi
echo "DynamoDB Local installed: $JAR"
