"""Apache htpasswd files (Verdaccio's `auth: htpasswd:`) and their password hashes.

Imported users keep the hash Verdaccio wrote, stored as `htpasswd${hash}` so
it can never be mistaken for tarhold's own `scrypt$...`. On the first
successful login `registry.domain.users` replaces it with an scrypt hash.

Schemes verified: bcrypt (`$2a$`, `$2b$`, `$2y$`), `{SHA}` (base64 SHA-1),
MD5-crypt (`$1$`) and Apache's variant of it (`$apr1$`, pure Python below),
and traditional DES crypt (13 characters, through the deprecated `crypt`
module while the interpreter still has it). A plain-text entry is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt

LOG = logging.getLogger(__name__)

FOREIGN_PREFIX = "htpasswd$"
ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DES_CHARS = frozenset(ITOA64)


@dataclass(frozen=True)
class HtpasswdEntry:
    """One line of an htpasswd file: `name:hash[:comment]`."""

    name: str
    hash: str
    line: int


def read_htpasswd(path: Path) -> Iterator[HtpasswdEntry]:
    """The entries of an htpasswd file; blank lines and `#` comments are skipped."""
    text = path.read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name or not rest:
            LOG.warning("%s:%d: not a name:hash line; skipped", path, number)
            continue
        # Verdaccio appends `:autocreated <date>`; no supported hash contains a colon.
        yield HtpasswdEntry(name, rest.split(":", 1)[0], number)


def scheme_of(hashed: str) -> str | None:
    """The scheme of an htpasswd hash: bcrypt, sha1, md5-crypt, apr1, des; None if unknown."""
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return "bcrypt"
    if hashed.startswith("{SHA}"):
        return "sha1"
    if hashed.startswith("$apr1$"):
        return "apr1"
    if hashed.startswith("$1$"):
        return "md5-crypt"
    if len(hashed) == 13 and set(hashed) <= DES_CHARS:
        return "des"
    return None


def verify(password: str, hashed: str) -> bool:
    """Whether `password` matches an htpasswd hash; False for an unknown scheme."""
    scheme = scheme_of(hashed)
    secret = password.encode()
    if scheme == "bcrypt":
        # The Python bcrypt package knows $2a$/$2b$; $2y$ is the same algorithm.
        normalized = "$2b$" + hashed[4:] if hashed.startswith("$2y$") else hashed
        try:
            return bcrypt.checkpw(secret, normalized.encode())
        except ValueError:
            return False
    if scheme == "sha1":
        digest = base64.b64encode(hashlib.sha1(secret).digest()).decode()
        return hmac.compare_digest(digest, hashed[5:])
    if scheme in ("apr1", "md5-crypt"):
        magic = "$apr1$" if scheme == "apr1" else "$1$"
        salt = hashed[len(magic):].split("$", 1)[0]
        return hmac.compare_digest(md5_crypt(password, salt, magic), hashed)
    if scheme == "des":
        computed = des_crypt(password, hashed[:2])
        return computed is not None and hmac.compare_digest(computed, hashed)
    return False


def des_crypt(password: str, salt: str) -> str | None:
    """Traditional DES crypt(3) through the `crypt` module; None where it is gone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # deprecated in 3.11, removed in 3.13
        except ImportError:
            LOG.warning("a DES crypt htpasswd hash needs the crypt module, which this Python lacks")
            return None
    return crypt.crypt(password, salt)


def md5_crypt(password: str, salt: str, magic: str = "$1$") -> str:
    """FreeBSD MD5-crypt (`$1$`) and Apache's `$apr1$`, which differ only in the magic."""
    pw = password.encode()
    salt_b = salt[:8].encode()
    magic_b = magic.encode()
    alternate = hashlib.md5(pw + salt_b + pw).digest()
    ctx = hashlib.md5(pw + magic_b + salt_b)
    for i in range(len(pw), 0, -16):
        ctx.update(alternate[:min(16, i)])
    i = len(pw)
    while i:
        ctx.update(b"\0" if i & 1 else pw[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = hashlib.md5()
        step.update(pw if i & 1 else final)
        if i % 3:
            step.update(salt_b)
        if i % 7:
            step.update(pw)
        step.update(final if i & 1 else pw)
        final = step.digest()

    def to64(value: int, count: int) -> str:
        out = []
        for _ in range(count):
            out.append(ITOA64[value & 0x3F])
            value >>= 6
        return "".join(out)

    encoded = "".join(
        to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    ) + to64(final[11], 2)
    return f"{magic}{salt[:8]}${encoded}"


def is_foreign(stored: str) -> bool:
    """A stored password hash imported from htpasswd (to be replaced at the next login)."""
    return stored.startswith(FOREIGN_PREFIX)


def check_foreign(password: str, stored: str) -> bool:
    """Verify against an imported `htpasswd$...` hash."""
    return verify(password, stored[len(FOREIGN_PREFIX):])
