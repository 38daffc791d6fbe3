#!/bin/sh
# Entrypoint of the tarhold image.
#
#   (no arguments), or options only   -> tarhold serve [options]
#   serve [options]                   -> tarhold serve [options]
#   init | warm | user | token ...    -> tarhold init | warm | user | token ...
#                                        (without a config: on $TARHOLD_STORAGE)
#   anything else (tarhold ..., sh)   -> run as given
#
# Which config `serve` uses, first match wins:
#   1. $TARHOLD_CONFIG (the file must exist: a wrong path is an error, never
#      a silent fallback to the defaults);
#   2. $TARHOLD_CONFIG_DEFAULT (default /etc/tarhold/config.yaml) if it exists;
#   3. built-in defaults: embedded storage in $TARHOLD_STORAGE
#      (default /var/lib/tarhold), listening on 0.0.0.0:4873, mirroring
#      $TARHOLD_UPSTREAM_URL when set (the image has no npm to ask).
# $TARHOLD_LISTEN (host:port), when set, overrides the listen address in
# every case. Options given on the command line come last, so they win.
# Whatever runs replaces this shell (exec): signals reach it directly.
set -eu

default_config="${TARHOLD_CONFIG_DEFAULT:-/etc/tarhold/config.yaml}"

# A config found at the default path is exported, so the other tarhold
# commands (`init`, `user add`, `token create`...) read the same file.
if [ -z "${TARHOLD_CONFIG:-}" ] && [ -f "$default_config" ]; then
    TARHOLD_CONFIG="$default_config"
    export TARHOLD_CONFIG
fi

if [ "$#" -eq 0 ]; then
    set -- serve
else
    case "$1" in
        -*) set -- serve "$@" ;;
    esac
fi

case "$1" in
    serve)
        shift
        if [ -n "${TARHOLD_CONFIG:-}" ]; then
            if [ -n "${TARHOLD_LISTEN:-}" ]; then
                set -- --listen "$TARHOLD_LISTEN" "$@"
            fi
            exec tarhold serve --config "$TARHOLD_CONFIG" "$@"
        fi
        exec tarhold serve \
            --listen "${TARHOLD_LISTEN:-0.0.0.0:4873}" \
            --storage "${TARHOLD_STORAGE:-/var/lib/tarhold}" \
            "$@"
        ;;
    init | warm | user | token)
        # Without a config, point them at the storage `serve` uses, unless
        # the command line names a config or a storage itself.
        if [ -z "${TARHOLD_CONFIG:-}" ]; then
            named=""
            for arg in "$@"; do
                case "$arg" in
                    -c | -c* | --config | --config=* | --storage | --storage=*) named=1 ;;
                esac
            done
            if [ -z "$named" ]; then
                set -- "$@" --storage "${TARHOLD_STORAGE:-/var/lib/tarhold}"
            fi
        fi
        exec tarhold "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
