"""Password hashes: scrypt with OWASP's cost, checked in worker threads, upgraded at login.

A stored hash is `scrypt$n$r$p$salt_b64$hash_b64`; one imported from
Verdaccio's htpasswd keeps its own scheme until the user's next login
(registry.domain.htpasswd). `is_outdated` says when a login should rehash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from registry.domain.htpasswd import check_foreign, is_foreign

# OWASP's password storage guidance: scrypt N=2^17, r=8, p=1, or at the same
# work N=2^14, r=8, p=5. The second needs 16 MiB a hash instead of 128, so a
# burst of logins on a small instance cannot run it out of memory.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 5
SCRYPT_MAXMEM = 64 * 1024 * 1024
SALT_BYTES = 16
HASH_BYTES = 32

# Verified against when a user does not exist, so a miss costs the same
# scrypt time as a wrong password and response times do not reveal names.
_DUMMY_HASH: str | None = None


def hash_password_sync(password: str) -> str:
    """`scrypt$n$r$p$salt_b64$hash_b64` for `password`; CPU-bound, run off the loop."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM, dklen=HASH_BYTES,
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password_sync(password: str, stored: str) -> bool:
    """Whether `password` matches a stored `scrypt$...` hash; False for a malformed one."""
    if is_foreign(stored):  # imported from Verdaccio's htpasswd; rehashed at login
        return check_foreign(password, stored)
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
            maxmem=SCRYPT_MAXMEM, dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def is_outdated(stored: str) -> bool:
    """Whether a stored hash is weaker than what hash_password makes now: rehashed at the next login."""
    if is_foreign(stored):
        return True
    try:
        scheme, n, r, p, _, _ = stored.split("$")
        return scheme == "scrypt" and int(n) * int(r) * int(p) < SCRYPT_N * SCRYPT_R * SCRYPT_P
    except ValueError:
        return False


async def hash_password(password: str) -> str:
    """hash_password_sync on a worker thread."""
    return await asyncio.to_thread(hash_password_sync, password)


async def check_password(password: str, stored: str) -> bool:
    """check_password_sync on a worker thread."""
    return await asyncio.to_thread(check_password_sync, password, stored)


async def dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = await hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


# -- users -----------------------------------------------------------------
