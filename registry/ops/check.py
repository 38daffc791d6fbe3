"""`tarhold check [-c config.yaml]`: what a newcomer gets wrong, found before `serve` meets it.

Each finding prints as `ok`, `warn` or `fail`, what was found, and for
anything not ok the fix:

- config: the file parses (or there is none: the built-in defaults `make run` uses);
- storage: the directory is writable (or can be created); or the S3 bucket
  and the DynamoDB table exist and allow each call tarhold makes: a probe
  object and a probe item are written, read, listed and deleted
  (`storage.probe`), and the first step that fails names its IAM action;
- uplinks: each answers `GET /-/ping` with the headers and credentials
  tarhold sends, and none is this server itself; with none, that nothing
  is mirrored;
- listen and public URL: the port is free, and the URL clients find in
  packuments reaches the server the way it listens.

Exit status: 0 when nothing failed (warnings included), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from registry.config import Config
from registry.ops.banner import mirror_lines, source_words
from registry.ops.serve import program_name
from registry.ops.settings import CONFIG_ENV, Loaded, load_from_args, public_base
from registry.ops.upstream import (
    FROM_ENV,
    FROM_FLAG,
    UPSTREAM_ENV,
    WILDCARD,
    is_loopback,
    points_here,
)
from storage.backends import build_backends
from storage.base import ConfigError, StorageError
from storage.dynamodb import DynamoRegistryDatabase
from storage.probe import Step, probe_database, probe_directory, probe_s3
from storage.s3 import S3PackageStore
from uplinks.base import UplinkError
from uplinks.config import UplinkConfig
from uplinks.factories import uplink_factories

OK, WARN, FAIL = "ok", "warn", "fail"

# AWS error codes to what fixes them; the step names the bucket, table or action.
CREATE = "create the bucket and table: {init}"
AWS_FIXES = {
    "NoSuchBucket": CREATE,
    "ResourceNotFoundException": CREATE,
    "AccessDenied": "grant the IAM policy `{init}` prints (this step needs the action it names)",
    "AccessDeniedException": "grant the IAM policy `{init}` prints (this step needs the action it names)",
    "InvalidAccessKeyId": "check the credentials (accessKeyId / secretAccessKey / sessionToken, or the AWS chain)",
    "SignatureDoesNotMatch": "check the credentials (accessKeyId / secretAccessKey / sessionToken, or the AWS chain)",
    "UnrecognizedClientException": "check the credentials (accessKeyId / secretAccessKey / sessionToken)",
    "NoCredentialsError": "give credentials: accessKeyId / secretAccessKey, or the AWS chain (AWS_PROFILE, a role)",
    "ExpiredToken": "the session token expired: renew the credentials",
    "ExpiredTokenException": "the session token expired: renew the credentials",
    "PermanentRedirect": "the bucket is in another region: set region",
    "AuthorizationHeaderMalformed": "the bucket is in another region: set region",
}
UNREACHABLE_FIX = "check endpoint / dynamoEndpoint and region, and that the server answers from here"


@dataclass(frozen=True)
class Finding:
    status: str  # ok | warn | fail
    what: str
    detail: str
    fix: str = ""


def cmd_check(args: argparse.Namespace) -> int:
    try:
        loaded = load_from_args(args)
    except ConfigError as exc:
        findings = [Finding(FAIL, "config", str(exc).removeprefix("config: "),
                            f"correct {exc.key}; config.yaml.example explains every option")]
    else:
        findings = asyncio.run(run_checks(loaded, init_hint(loaded)))
    for finding in findings:
        print(f"{finding.status:<4}  {finding.what:<16} {finding.detail}")
        if finding.fix:
            print(f"{'':<4}  {'':<16} fix: {finding.fix}")
    failed = sum(f.status == FAIL for f in findings)
    checks = f"{len(findings)} check{'s' if len(findings) > 1 else ''}"
    print(f"{checks}: {failed} failed" if failed else f"{checks}: nothing failed")
    return 1 if failed else 0


def init_hint(loaded: Loaded) -> str:
    return f"{program_name()} init" + (f" -c {loaded.path}" if loaded.path else "")


async def run_checks(loaded: Loaded, init: str) -> list[Finding]:
    config = loaded.config
    where = loaded.path or f"no config file (nor ${CONFIG_ENV}): the built-in defaults, as `make run` uses"
    findings = [Finding(OK, "config", f"{where} parses" if loaded.path else where)]
    findings += await storage_findings(config, init)
    findings += await uplink_findings(loaded)
    findings += listen_findings(config)
    findings += public_url_findings(config)
    return findings


# -- storage ---------------------------------------------------------------------


async def storage_findings(config: Config, init: str) -> list[Finding]:
    if config.store.backend == "fs":
        path = Path(str(config.store.path))
        step = probe_directory(path)
        if step.ok:
            return [Finding(OK, "storage", f"can {step.what}")]
        return [Finding(
            FAIL, "storage", f"cannot {step.what}: {step.error}",
            f"make {path} writable by {getpass.getuser()}, or point storage: / --storage at a directory it can write",
        )]
    store, database = build_backends(config.store.backend, section=config.store.section)
    assert isinstance(store, S3PackageStore) and isinstance(database, DynamoRegistryDatabase)
    store.abort_multipart_after = None  # a check changes nothing: no abandoned upload is aborted
    findings: list[Finding] = []
    try:
        await store.open()
        await database.open()
        findings += step_findings("s3 bucket", await probe_s3(store), init, optional_last=True)
        findings += step_findings("dynamodb table", await probe_database(database, database.table), init)
    except StorageError as exc:  # the clients could not even be made
        findings.append(Finding(FAIL, "storage", str(exc), UNREACHABLE_FIX))
    finally:
        await database.close()
        await store.close()
    return findings


def step_findings(what: str, steps: list[Step], init: str, *, optional_last: bool = False) -> list[Finding]:
    """One finding for the probe: ok with what worked, or the failed step with its fix."""
    failed = next((step for step in steps if not step.ok), None)
    if failed is None:
        return [Finding(OK, what, "; ".join(step.what.split(" on ")[0] for step in steps) + " work")]
    if optional_last and failed is steps[-1] and len(steps) > 1 and "Multipart" in failed.what:
        return [
            Finding(OK, what, "; ".join(step.what.split(" on ")[0] for step in steps[:-1]) + " work"),
            Finding(WARN, what, f"{failed.what}: {failed.error}",
                    "grant s3:ListBucketMultipartUploads (each start then aborts abandoned uploads),"
                    " or keep the bucket's AbortIncompleteMultipartUpload rule"),
        ]
    code = failed.error.split(":")[0]
    fix = AWS_FIXES.get(code, UNREACHABLE_FIX if "Connect" in code or "Timeout" in code else "")
    return [Finding(FAIL, what, f"{failed.what}: {failed.error}", fix.format(init=init) or UNREACHABLE_FIX)]


# -- uplinks ---------------------------------------------------------------------


async def uplink_findings(loaded: Loaded) -> list[Finding]:
    config = loaded.config
    if not config.uplinks:
        fix = (f"to mirror a registry: an uplink (`url: {UPSTREAM_ENV}` as in config.yaml.example) and proxy:"
               " in the packages rules" if loaded.path else f"to mirror a registry: --upstream URL, or {UPSTREAM_ENV}=URL")
        return [Finding(WARN, "uplinks", mirror_lines(loaded)[0].rstrip(";"), fix)]
    findings = []
    async with aiohttp.ClientSession() as session:
        for uplink in config.uplinks.values():
            findings.append(await uplink_finding(loaded, uplink, session))
    return findings


async def uplink_finding(loaded: Loaded, uplink: UplinkConfig, session: aiohttp.ClientSession) -> Finding:
    config, upstream = loaded.config, loaded.upstream
    what = f"uplink {uplink.name}"
    option, found = f"uplinks.{uplink.name}.url", ""
    if upstream is not None and upstream.url is not None and upstream.url.rstrip("/") == uplink.url:
        found = f" ({source_words(upstream.source)})"
        option = {FROM_FLAG: "--upstream", FROM_ENV: f"${UPSTREAM_ENV}"}.get(
            upstream.source, f"npm's registry (npm config set registry URL, or --upstream URL), {upstream.source}"
        )
    if points_here(uplink.url, config.host, config.port, config.public_url):
        return Finding(FAIL, what, f"{uplink.url}{found} is this server itself",
                       f"point {option} at the registry to mirror")
    factory: Any = uplink_factories().get(uplink.type)
    if factory is None:
        return Finding(FAIL, what, f"no uplink type {uplink.type!r} is installed",
                       "install the package that provides it, or remove type:")
    if not isinstance(factory, type):
        factory = factory.load()
    client = factory(uplink, session)
    try:
        status, _, _ = await client.forward("GET", "/-/ping", b"", {"Accept": "application/json"})
    except UplinkError as exc:
        return Finding(FAIL, what, f"{uplink.url}{found} does not answer: {exc.__cause__ or exc}",
                       f"check {option}, and any proxy or firewall on the way (strict_ssl / ca for a private CA)")
    finally:
        await client.close()
    if status in {401, 403}:
        return Finding(FAIL, what, f"{uplink.url}{found} refuses tarhold ({status})",
                       f"give it credentials: uplinks.{uplink.name}.auth (type and token_env)")
    if status >= 500:
        return Finding(FAIL, what, f"{uplink.url}{found} answers {status} to GET /-/ping",
                       "the upstream is failing: try later, or check the URL")
    note = "" if status == 200 else f" ({status}: it has no /-/ping, but it answers)"
    return Finding(OK, what, f"{uplink.url}{found} answers{note}")


# -- listen and public URL -------------------------------------------------------


def listen_findings(config: Config) -> list[Finding]:
    host = "" if config.host in WILDCARD else config.host
    what = f"{config.host}:{config.port}"
    try:
        infos = socket.getaddrinfo(host or None, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return [Finding(FAIL, "listen", f"{what}: {exc.strerror}", "listen on an address of this machine")]
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return [Finding(WARN, "listen", f"{what}: in use (a running tarhold, or another registry?)",
                                "stop it, or pick another port with --listen or listen:")]
            return [Finding(FAIL, "listen", f"{what}: {exc.strerror}", "listen on an address of this machine")]
    return [Finding(OK, "listen", f"{what} is free")]


def public_url_findings(config: Config) -> list[Finding]:
    base = public_base(config)
    local = config.host not in WILDCARD and is_loopback(config.host)
    if config.public_url is None:
        if local:
            return [Finding(OK, "public URL", f"{base} (this machine only; to open it, listen on"
                            f" 0.0.0.0:{config.port} and set public_url)")]
        return [Finding(OK, "public URL", "none set: tarball URLs follow each request's Host"
                        " (X-Forwarded-Host / -Proto behind a proxy)")]
    parts = urlsplit(config.public_url)
    host = parts.hostname or ""
    path = parts.path.rstrip("/")
    findings = []
    if is_loopback(host) and not local:
        findings.append(Finding(FAIL, "public URL", f"{config.public_url} names this machine, and tarhold listens on"
                                f" {config.host}: other machines get tarball URLs they cannot reach",
                                "set public_url to the name clients use"))
    if local and not is_loopback(host):
        findings.append(Finding(WARN, "public URL", f"tarhold listens on {config.host} only: clients reach"
                                f" {config.public_url} only through a proxy on this machine",
                                f"listen on 0.0.0.0:{config.port}, unless such a proxy is in front"))
    if config.url_prefix and path != config.url_prefix:
        findings.append(Finding(WARN, "public URL", f"public_url's path {path or '/'} differs from url_prefix"
                                f" {config.url_prefix}: right only when a proxy in front rewrites one to the other",
                                f"make them agree: public_url ending in {config.url_prefix}"))
    if parts.scheme == "http" and not is_loopback(host):
        findings.append(Finding(WARN, "public URL", f"{config.public_url}: npm sends passwords and tokens in clear",
                                "put TLS in front and use an https:// public_url"))
    return findings or [Finding(OK, "public URL", f"{config.public_url} (what packuments' tarball URLs use)")]


def add_check_parser(sub: Any) -> None:
    """Register `tarhold check` on the `tarhold` subcommand parser."""
    check = sub.add_parser("check", help="check a config: storage, uplinks, listen address and public URL")
    check.add_argument("-c", "--config", help=f"config.yaml (default: ${CONFIG_ENV}, else built-in defaults)")
    check.add_argument("--listen", help="host:port, overrides the config's listen")
    check.add_argument("--storage", help="storage directory, overrides the config's storage")
    check.add_argument("--upstream", metavar="URL", help=f"registry to mirror without a config (as ${UPSTREAM_ENV})")
    check.set_defaults(func=cmd_check)
