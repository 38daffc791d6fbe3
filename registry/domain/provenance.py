"""Provenance attestations (`npm publish --provenance`): the Sigstore bundle a publish carries,
checked against the tarball, kept, and served at `/-/npm/v1/attestations/{name}@{version}`.

npm puts the bundle beside the tarball in the publish body:
`_attachments["{name}-{version}.sigstore"] = {content_type, data, length}`, where `data` is
the bundle as a JSON string, not base64 (libnpmpublish). `take_bundle` takes it out of the
body before the tarball path sees it (publish_target wants exactly one attachment), and
`verify_bundle` checks it once the tarball is decoded:

- at most MAX_BUNDLE_BYTES of JSON, an object, `mediaType` a Sigstore bundle's;
- a `dsseEnvelope` carrying an in-toto payload, with at least one signature, whose base64
  `payload` is an in-toto statement (v1 or v0.1) with a `predicateType` and one `subject`;
- that subject is this version, named as npm names it (`pkg:npm/%40scope/name@1.0.0`:
  npa.toPurl encodes the scope's `@` only), and its `digest.sha512` is the tarball's sha512.
  That is what npm checks before it sends a bundle (libnpmpublish verifyProvenance) and what
  pacote checks before it trusts one.

The signature itself is not verified. That needs Sigstore's trust root (Fulcio's
certificates and Rekor's keys, from Sigstore's TUF repository on the internet) and its
transparency log, and a registry must work without the internet. Clients verify it with the
trust root they fetch (npm audit signatures); tarhold makes sure that what it serves is about
the bytes it serves, for the version it serves it with.

The bundle is kept as one database item, `ATTEST#{name}` / `{version}`:
`{predicateType, bundle}` (bounded by MAX_BUNDLE_BYTES, under DynamoDB's 400 KB per item).
publish.commit_version writes it inside the version's lease, before the packument write that
makes the version visible, and deletes it again when that write fails. It is served only for
a version whose packument lists `dist.attestations`, so an item a failed clean-up left behind
is never seen. Unpublishing a version or the package deletes its items (`forget_attestations`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from registry.domain.errors import BadRequest, PayloadTooLarge, Unprocessable
from registry.domain.packument_views import attestations_path
from storage.base import NotFound, RegistryDatabase

ATTEST_PK = "ATTEST#"
MAX_BUNDLE_BYTES = 256 * 1024
MAX_PREDICATE_TYPE = 256
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset({"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"})


@dataclass(frozen=True)
class SentBundle:
    """A `.sigstore` attachment as the publish body had it: its name and its (unchecked) value."""

    key: str
    attachment: Any


@dataclass(frozen=True)
class Provenance:
    """A checked bundle: what `dist.attestations` names and the endpoint serves."""

    predicate_type: str
    bundle: dict[str, Any]

    def dist_entry(self, name: str, version: str, tarball_url: str) -> dict[str, Any]:
        """`dist.attestations`, on the base the tarball URL is stored on; both are rewritten to
        the asking registry's URL when served (packument_views.rewrite_tarball_urls)."""
        base = tarball_url.split(f"/{name}/-/", 1)[0] if f"/{name}/-/" in tarball_url else ""
        return {"url": base + attestations_path(name, version), "provenance": {"predicateType": self.predicate_type}}


def purl(name: str, version: str) -> str:
    """The package URL npm signs for a version (npa.toPurl): `pkg:npm/%40scope/name@1.0.0`."""
    return "pkg:npm/" + ("%40" + name[1:] if name.startswith("@") else name) + "@" + version


def take_bundle(body: dict[str, Any]) -> SentBundle | None:
    """Take the `.sigstore` attachment out of a publish body; None when it has none."""
    attachments = body.get("_attachments")
    if not isinstance(attachments, dict):
        return None
    keys = [key for key in attachments if isinstance(key, str) and key.endswith(".sigstore")]
    if len(keys) > 1:
        raise BadRequest("a publish carries at most one provenance bundle (.sigstore attachment)")
    return SentBundle(keys[0], attachments.pop(keys[0])) if keys else None


def _json_object(data: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _statement(bundle: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement a bundle's DSSE envelope signs (400 when it has none)."""
    media = bundle.get("mediaType")
    if not isinstance(media, str) or not media.startswith(BUNDLE_MEDIA_TYPE):
        raise BadRequest(f"the provenance bundle's mediaType must be a Sigstore bundle's ({BUNDLE_MEDIA_TYPE}...)")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict) or envelope.get("payloadType") != INTOTO_PAYLOAD_TYPE:
        raise BadRequest(f"the provenance bundle needs a dsseEnvelope with payloadType {INTOTO_PAYLOAD_TYPE}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or not all(
        isinstance(s, dict) and isinstance(s.get("sig"), str) for s in signatures
    ):
        raise BadRequest("the provenance bundle's dsseEnvelope needs signatures: [{sig, keyid}]")
    payload = envelope.get("payload")
    try:
        raw = base64.b64decode(payload, validate=True) if isinstance(payload, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if not raw:
        raise BadRequest("the provenance bundle's dsseEnvelope.payload must be base64")
    statement = _json_object(raw, "the provenance statement (dsseEnvelope.payload)")
    if statement.get("_type") not in STATEMENT_TYPES:
        raise BadRequest(f"the provenance statement's _type must be one of {', '.join(sorted(STATEMENT_TYPES))}")
    return statement


def verify_bundle(sent: SentBundle, name: str, version: str, integrity: str) -> Provenance:
    """Check the bundle sent with `name@version`, whose tarball has `integrity` (`sha512-...`):
    400 for a malformed one, 413 past MAX_BUNDLE_BYTES, 422 when it is about other bytes or
    another version. See the module docstring for what is (and is not) checked."""
    expected = f"{name}-{version}.sigstore"
    if sent.key != expected:
        raise BadRequest(f"attachment {sent.key[:300]!r} is not the provenance bundle {expected} of {name}@{version}")
    data = sent.attachment.get("data") if isinstance(sent.attachment, dict) else None
    if not isinstance(data, str):
        raise BadRequest("the provenance bundle's data must be the bundle as a JSON string")
    if len(data) > MAX_BUNDLE_BYTES or len(data.encode()) > MAX_BUNDLE_BYTES:
        raise PayloadTooLarge(f"the provenance bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    bundle = _json_object(data, "the provenance bundle")
    statement = _statement(bundle)
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not 0 < len(predicate_type) <= MAX_PREDICATE_TYPE:
        raise BadRequest("the provenance statement needs a predicateType (a URI)")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise Unprocessable("the provenance statement must have exactly one subject: this package version")
    subject, wanted = subjects[0], purl(name, version)
    if subject.get("name") != wanted:
        raise Unprocessable(f"the provenance statement is about {str(subject.get('name'))[:300]!r}, not {wanted}")
    digest = subject.get("digest")
    sha512 = digest.get("sha512") if isinstance(digest, dict) else None
    if not isinstance(sha512, str) or sha512.lower() != base64.b64decode(integrity.partition("-")[2]).hex():
        raise Unprocessable(
            f"the provenance statement's subject digest.sha512 is not the sha512 of the tarball of {name}@{version}"
        )
    return Provenance(predicate_type, bundle)


# -- the stored items ----------------------------------------------------------------


async def store_attestation(db: RegistryDatabase, name: str, version: str, provenance: Provenance) -> None:
    await db.put(ATTEST_PK + name, version, {"predicateType": provenance.predicate_type, "bundle": provenance.bundle})


async def stored_attestations(db: RegistryDatabase, name: str, version: str) -> list[dict[str, Any]] | None:
    """`[{predicateType, bundle}]`, as the endpoint answers, kept for `name@version`; None when none is."""
    try:
        item = await db.get(ATTEST_PK + name, version)
    except NotFound:
        return None
    predicate_type, bundle = item.get("predicateType"), item.get("bundle")
    if not isinstance(predicate_type, str) or not isinstance(bundle, dict):
        return None
    return [{"predicateType": predicate_type, "bundle": bundle}]


async def forget_attestations(db: RegistryDatabase, name: str, versions: Iterable[str] | None = None) -> None:
    """Delete the items of `versions` of `name` (every one of the package's when None); one
    query finds them, so unpublishing versions that have none costs no deletes."""
    wanted = None if versions is None else set(versions)
    found = [sk async for sk, _ in db.query(ATTEST_PK + name) if wanted is None or sk in wanted]
    for version in found:
        try:
            await db.delete(ATTEST_PK + name, version)
        except NotFound:
            pass
