"""Which registry tarhold mirrors when no config names one: the one npm already uses.

`tarhold serve` (and so `make run`) without a config file mirrors, first
match wins:

1. `--upstream URL`;
2. `$TARHOLD_UPSTREAM_URL`;
3. npm's configured registry, as `npm config get registry` prints it.

Why ask npm rather than read its files: npm's answer comes from layers
(its built-in default, the global npmrc under its prefix, the user's
`~/.npmrc` or `$npm_config_userconfig`, a project `.npmrc`, `npm_config_*`
variables, `${VAR}` expansion inside the files), and only npm knows them
all; asking it gives exactly the registry `npm install` uses from the same
directory. It costs one short subprocess, run only when nothing else names
an uplink. Where npm is not installed (a container image), the two sources
a person sets by hand are read instead: `$npm_config_registry`, then the
`registry=` line of the user's npmrc. With neither there is nothing to
mirror: private packages only, and the start-up banner says so.

A registry that is this server itself (npm was pointed here, as the banner
says to) is refused: mirroring it would ask itself in a loop.

A config file names its own uplinks. A value `TARHOLD_UPSTREAM_URL` in it
(config.yaml.example has `url: TARHOLD_UPSTREAM_URL`) resolves the same
way (flag, variable, npm), and only when the config names it, so the example
config mirrors what `make run` mirrors.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from storage.base import ConfigError

UPSTREAM_ENV = "TARHOLD_UPSTREAM_URL"
UPLINK_NAME = "upstream"  # the uplink tarhold adds when no config names one
NPM_TIMEOUT = 15.0  # `npm config get` reads files only; a hung npm must not hang the start
FROM_FLAG = "--upstream"
FROM_ENV = f"${UPSTREAM_ENV}"
FROM_NPM = "npm config get registry"

HTTP_URL = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost", "ip6-loopback"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True)
class Upstream:
    """The registry to mirror and where that came from; or, with no `url`, why there is none."""

    url: str | None  # None: private packages only
    source: str = ""  # "--upstream", "$TARHOLD_UPSTREAM_URL", "npm config get registry", an npmrc...
    refused: str = ""  # a registry was found and is not mirrored: why

    @property
    def from_npm(self) -> bool:
        return self.source not in {"", FROM_FLAG, FROM_ENV}


def find_upstream(flag: str | None, environ: Mapping[str, str], *, cwd: str | None = None) -> Upstream:
    """The upstream the flag, the variable or npm names (not yet checked against this server);
    ConfigError when the flag or the variable is not an http(s) URL."""
    for given, source in ((flag, FROM_FLAG), (environ.get(UPSTREAM_ENV), FROM_ENV)):
        if given:
            if not HTTP_URL.match(given):
                raise ConfigError(source, f"{given!r} is not an http(s) URL")
            return Upstream(given, source)
    found = npm_registry(environ, cwd=cwd)
    if found is None:
        if shutil.which("npm", path=environ.get("PATH")) is None:
            return Upstream(None, refused="npm is not installed here, and neither $npm_config_registry"
                            " nor ~/.npmrc names a registry")
        return Upstream(None, refused="npm names no registry (`npm config get registry` failed)")
    url, source = found
    if not HTTP_URL.match(url):
        return Upstream(None, source, refused=f"npm's registry {url!r} ({source}) is not an http(s) URL")
    return Upstream(url, source)


def npm_registry(environ: Mapping[str, str], *, cwd: str | None = None) -> tuple[str, str] | None:
    """npm's configured registry and where it came from; None when there is none."""
    npm = shutil.which("npm", path=environ.get("PATH"))
    if npm is not None:
        answer = ask_npm(npm, environ, cwd)
        if answer is not None:
            return answer, FROM_NPM
    # No npm (or it failed): what a person sets by hand, in npm's order.
    for key, value in environ.items():
        if key.lower() == "npm_config_registry" and value:
            return value, f"${key}"
    userconfig = next((v for k, v in environ.items() if k.lower() == "npm_config_userconfig" and v), None)
    path = Path(userconfig) if userconfig else Path(environ.get("HOME") or Path.home()) / ".npmrc"
    found = npmrc_registry(path.expanduser(), environ)
    return (found, str(path)) if found else None


def ask_npm(npm: str, environ: Mapping[str, str], cwd: str | None = None) -> str | None:
    """What `npm config get registry` prints; None when npm fails or prints no URL."""
    env = {**environ, "npm_config_update_notifier": "false"}
    try:
        done = subprocess.run(
            [npm, "config", "get", "registry"], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines or not HTTP_URL.match(lines[-1]):
        return None
    return lines[-1]


def npmrc_registry(path: Path, environ: Mapping[str, str]) -> str | None:
    """The `registry=` value of an npmrc file (ini: `;`/`#` comments, quotes,
    `${VAR}` expansion; the last one wins); None when it has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() != "registry":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found = re.sub(r"\$\{([^}]+)\}", lambda m: environ.get(m.group(1), m.group(0)), value) or None
    return found


def host_port(url: str) -> tuple[str, int] | None:
    """(lowercase host, port) of an http(s) URL, the port defaulted by scheme; None when not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme.lower() == "https" else 80)


def is_loopback(host: str) -> bool:
    return host.lower() in LOOPBACK or host.startswith("127.")


def points_here(url: str, host: str, port: int, public_url: str | None) -> bool:
    """Whether `url` reaches this server: its public URL, or its listen address under any
    name that means it (a loopback name for loopback, also this host's name for 0.0.0.0)."""
    target = host_port(url)
    if target is None:
        return False
    if public_url is not None and target == host_port(public_url):
        # Behind a proxy, one host may serve tarhold under a path and the upstream under another.
        mounted = urlsplit(public_url).path.rstrip("/")
        if (urlsplit(url).path.rstrip("/") + "/").startswith(mounted + "/"):
            return True
    name, target_port = target
    if target_port != port:
        return False
    listen = host.lower().strip("[]")
    if name == listen:
        return True
    if listen in WILDCARD:
        return is_loopback(name) or name == socket.gethostname().lower()
    return is_loopback(listen) and is_loopback(name)


class UpstreamEnviron(Mapping[str, str]):
    """The environment a config file's values are resolved in: `base`, except that
    TARHOLD_UPSTREAM_URL is what `find` answers (the flag, the variable, npm's registry),
    asked only when the config names it, and at most once."""

    def __init__(self, base: Mapping[str, str], find: Callable[[], Upstream]) -> None:
        self.base = base
        self._find = find
        self.upstream: Upstream | None = None  # set once the config asked

    def __getitem__(self, key: str) -> str:
        if key != UPSTREAM_ENV:
            return self.base[key]
        if self.upstream is None:
            self.upstream = self._find()
        if self.upstream.url is None:
            raise KeyError(key)
        return self.upstream.url

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)
