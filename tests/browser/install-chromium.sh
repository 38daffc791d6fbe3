#!/bin/sh
# Debian's Chromium for the browser tests (`make test-browser`), when missing.
# Playwright drives it as is: no browser download from the internet at test time.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no $CHROMIUM and no apt-get: install Chromium at $CHROMIUM yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
test -x "$CHROMIUM"
