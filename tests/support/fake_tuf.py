"""A stand-in for the Sigstore TUF repository, so `npm audit signatures` runs without the internet.

npm's `audit signatures` first refreshes the TUF client of `@sigstore/tuf`
(root `N+1.root.json` until a 404, `timestamp.json`, then snapshot and
targets, by version since the root has consistent snapshots) from
`https://tuf-repo-cdn.sigstore.dev`, a URL npm gives no way to change. Only
then does it look for the registry's keys as a TUF target, and, not finding
them, ask the registry's `GET /-/npm/v1/keys`.

`FakeTuf` makes that refresh succeed locally, all on 127.0.0.1:

- a TUF repository of its own (python-tuf metadata, one ed25519 key for
  every role, valid for years) holding no target, so every registry falls
  back to its keys endpoint;
- an HTTPS server for it with a certificate for the TUF host, issued by a
  throwaway CA that node trusts through `NODE_EXTRA_CA_CERTS`;
- an HTTP CONNECT proxy that tunnels to that server and refuses any other
  destination; npm (`@npmcli/agent`) takes it from `HTTPS_PROXY`, while
  `NO_PROXY` keeps the registry on 127.0.0.1 direct.

`npm_env(cache)` writes the repository's root where the TUF client looks
for its trusted root (`<npm cache>/_tuf/<host>/root.json`; the client seeds
the real Sigstore root only when that file is absent) and returns the
variables npm's environment needs::

    async with FakeTuf(tmp_path / "tuf") as tuf:
        npm.env.update(tuf.npm_env(npm.cache))
        ...
        assert "timestamp.json" in tuf.requests
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    TOP_LEVEL_ROLE_NAMES,
    Metadata,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TUF_HOST = "tuf-repo-cdn.sigstore.dev"
HOST = "127.0.0.1"
VALIDITY = datetime.timedelta(days=3650)
PROXY_HEAD_LIMIT = 8192
PROXY_HEAD_TIMEOUT = 10.0
PIPE_CHUNK = 64 * 1024


def tuf_metadata() -> dict[str, bytes]:
    """A whole TUF repository with no targets, by the file names a client asks for."""
    signer = CryptoSigner.generate_ed25519()
    expires = (datetime.datetime.now(datetime.UTC) + VALIDITY).replace(microsecond=0)
    root = Root(expires=expires, consistent_snapshot=True)
    for role in TOP_LEVEL_ROLE_NAMES:
        root.add_key(signer.public_key, role)
    documents = {
        "1.root.json": Metadata(root),
        "timestamp.json": Metadata(Timestamp(expires=expires)),
        "1.snapshot.json": Metadata(Snapshot(expires=expires)),
        "1.targets.json": Metadata(Targets(expires=expires)),
    }
    serializer = JSONSerializer(compact=True)
    for metadata in documents.values():
        metadata.sign(signer)
    return {name: metadata.to_bytes(serializer) for name, metadata in documents.items()}


def issue_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for the TUF host: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tarhold test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TUF_HOST)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TUF_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a tunnel until its end closes."""
    try:
        while chunk := await reader.read(PIPE_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class FakeTuf:
    """The fake TUF repository over HTTPS, and the CONNECT proxy that leads only to it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.metadata = tuf_metadata()
        self.ca_path, self._cert_path, self._key_path = issue_certificates(directory)
        self.requests: list[str] = []  # metadata file names asked of the HTTPS server
        self.tunnels: list[str] = []  # CONNECT targets asked of the proxy, refused ones too
        self.proxy_port = 0
        self._tuf_port = 0
        self._runner: web.AppRunner | None = None
        self._proxy: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Both servers on 127.0.0.1, on ports the OS picks."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert_path, self._key_path)
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=context)
        await site.start()
        self._tuf_port = int(self._runner.addresses[0][1])
        self._proxy = await asyncio.start_server(self._accept, HOST, 0, limit=PROXY_HEAD_LIMIT)
        self.proxy_port = int(self._proxy.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the proxy and its tunnels, then the HTTPS server."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await proxy.wait_closed()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def npm_env(self, npm_cache: Path) -> dict[str, str]:
        """Trust this repository's root in the TUF cache of `npm_cache`; the variables npm needs."""
        tuf_cache = npm_cache / "_tuf" / TUF_HOST  # encodeURIComponent(host) is the host itself
        (tuf_cache / "targets").mkdir(parents=True, exist_ok=True)
        (tuf_cache / "root.json").write_bytes(self.metadata["1.root.json"])
        proxy = f"http://{HOST}:{self.proxy_port}"
        no_proxy = f"{HOST},localhost"
        # @npmcli/agent folds the names' case and keeps the last one: set both spellings alike.
        return {
            "NODE_EXTRA_CA_CERTS": str(self.ca_path),
            "HTTPS_PROXY": proxy, "https_proxy": proxy,
            "NO_PROXY": no_proxy, "no_proxy": no_proxy,
        }

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append(name)
        body = self.metadata.get(name)
        if body is None:  # `2.root.json` among others: the root in hand is the newest
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/json")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._tunnel(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`CONNECT <TUF host>:443` leads to the HTTPS server; anything else is refused."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROXY_HEAD_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""]
        self.tunnels.append(target)
        if method != "CONNECT" or target != f"{TUF_HOST}:443":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self._tuf_port)
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()


__all__ = ["TUF_HOST", "FakeTuf", "issue_certificates", "tuf_metadata"]
