"""What `tarhold serve` prints once it listens, in a few lines a newcomer reads:
where it serves, what it mirrors (or that it mirrors nothing, and why), where
the data lives, how to point each client at it, and how the first user gets in.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from registry.config import Config
from registry.ops.settings import Loaded
from registry.ops.upstream import FROM_ENV, FROM_FLAG, FROM_NPM, UPSTREAM_ENV
from storage.dynamodb import DEFAULT_TABLE

LABEL = 11  # width of the label column


def banner(loaded: Loaded, url: str, *, workers: int = 1, program: str = "tarhold") -> list[str]:
    """The lines, first the URL; `url` is the registry's public base URL (trailing slash),
    `program` how the `tarhold` command was run (`.venv/bin/tarhold` under `make run`)."""
    config = loaded.config
    head = f"tarhold is serving at {url}" + (f" ({workers} workers)" if workers > 1 else "")
    mirrors = mirror_lines(loaded)
    rows = [
        ("mirrors", mirrors[0]),
        *(("", line) for line in mirrors[1:]),
        ("data", data_line(config)),
        *client_rows(url),
        ("first user", first_user_line(loaded, url, program)),
    ]
    return [head, *(f"  {label:<{LABEL}} {text}" for label, text in rows)]


def source_words(source: str) -> str:
    if source == FROM_FLAG:
        return "from --upstream"
    if source == FROM_ENV:
        return f"from ${UPSTREAM_ENV}"
    if source == FROM_NPM:
        return "npm's registry: `npm config get registry`"
    return f"npm's registry, from {source}"


def mirror_lines(loaded: Loaded) -> list[str]:
    """One line per uplink with where its URL came from; or why nothing is mirrored."""
    config, upstream = loaded.config, loaded.upstream
    if config.uplinks:
        lines = []
        for name, uplink in config.uplinks.items():
            line = f"{uplink.url}/ (uplink {name}"
            if upstream is not None and upstream.url is not None and upstream.url.rstrip("/") == uplink.url:
                line += f", {source_words(upstream.source)}"
            lines.append(line + ")")
        return lines
    if upstream is not None and upstream.refused:
        why = upstream.refused
    elif loaded.path is not None:
        why = f"{loaded.path} names no uplink"
    else:
        why = "no uplink is configured"
    return [
        f"nothing: private packages only ({why});",
        f"to mirror a registry: --upstream URL, or {UPSTREAM_ENV}=URL",
    ]


def data_line(config: Config) -> str:
    store = config.store
    if store.backend == "fs":
        return f"{store.path} (package files, and the SQLite database in it)"
    section = store.section
    prefix = str(section.get("keyPrefix") or "").strip("/")
    bucket = f"s3://{section.get('bucket')}/{prefix + '/' if prefix else ''}"
    return f"{bucket} (package files) + DynamoDB table {section.get('dynamoTableName') or DEFAULT_TABLE}"


def client_rows(url: str) -> list[tuple[str, str]]:
    """How npm, pnpm, yarn classic, yarn 4 and bun find this registry."""
    rows = [
        ("npm", f"npm config set registry {url}   (one command: npm install --registry {url})"),
        ("pnpm", f"pnpm config set registry {url}"),
        ("yarn 1", f"yarn config set registry {url}"),
    ]
    yarn4 = f"yarn config set npmRegistryServer {url}"
    parts = urlsplit(url)
    if parts.scheme == "http":
        # yarn 4 refuses plain http unless the host is whitelisted.
        yarn4 += f" && yarn config set unsafeHttpWhitelist --json '[\"{parts.hostname}\"]'"
    rows.append(("yarn 4", yarn4))
    rows.append(("bun", f"bunfig.toml: [install] registry = \"{url}\""))
    return rows


def first_user_line(loaded: Loaded, url: str, program: str = "tarhold") -> str:
    """How a person gets an account, as `auth.max_users` allows (-1 or 0: registration closed)."""
    if loaded.path:
        where = f"-c {shlex.quote(loaded.path)}"
    else:  # the built-in defaults store on disk
        where = f"--storage {shlex.quote(str(loaded.config.store.path))}"
    admin = f"{program} user add NAME --admin {where}"
    max_users = loaded.config.auth.max_users
    if max_users is not None and max_users <= 0:
        return f"registration is closed (auth.max_users: {max_users}): {admin}"
    limit = "" if max_users is None else f", up to {max_users} users"
    return f"npm adduser --registry {url} (registration is open{limit}); an admin: {admin}"
