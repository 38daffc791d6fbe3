"""htpasswd hashes imported from Verdaccio: every scheme verified, then rehashed to scrypt.

Vectors: bcrypt made here with the bcrypt package; `{SHA}` with hashlib;
MD5-crypt and `$apr1$` from `openssl passwd -1 / -apr1 -salt saltsalt`
(and the Apache documentation's `myPassword` example); DES from crypt(3).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import bcrypt
import pytest

from registry.domain import passwords, users
from registry.domain.htpasswd import (
    FOREIGN_PREFIX,
    md5_crypt,
    read_htpasswd,
    scheme_of,
    verify,
)
from storage.sqlite import SqliteRegistryDatabase

PASSWORD = "correct horse"


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_hashes_verify_in_every_variant(prefix: str) -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    hashed = prefix + made[4:]
    assert scheme_of(hashed) == "bcrypt"
    assert verify(PASSWORD, hashed)
    assert not verify("correct horse!", hashed)


def test_sha1_hash_verifies() -> None:
    hashed = "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    assert scheme_of(hashed) == "sha1"
    assert verify(PASSWORD, hashed)
    assert not verify("Correct horse", hashed)


@pytest.mark.parametrize(
    ("password", "hashed"),
    [
        ("correct horse", "$apr1$saltsalt$EGVZDNN6gOqijy.tv9axG/"),  # openssl passwd -apr1
        ("myPassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"),  # Apache's documentation
        ("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),  # openssl passwd -1
    ],
)
def test_md5_crypt_and_apr1_match_known_vectors(password: str, hashed: str) -> None:
    magic = "$apr1$" if hashed.startswith("$apr1$") else "$1$"
    salt = hashed[len(magic):].split("$")[0]
    assert md5_crypt(password, salt, magic) == hashed
    assert verify(password, hashed)
    assert not verify(password + "x", hashed)


def test_des_crypt_hash_verifies() -> None:
    assert scheme_of("abJnggxhB/yWI") == "des"
    assert verify("password", "abJnggxhB/yWI")
    assert not verify("passw0rd", "abJnggxhB/yWI")


def test_plain_text_and_unknown_hashes_never_verify() -> None:
    assert scheme_of("hunter2") is None
    assert not verify("hunter2", "hunter2")
    assert not verify("x", "$6$salt$notsupported")


def test_htpasswd_file_lines_as_verdaccio_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(
        "# users\nalice:$2y$10$abcdefghijklmnopqrstuuQ8Nq1x8Uqgq9YQ9Ue2M1p0qQ3hV6fW.:autocreated 2024-05-01T12:00:00.000Z\n"
        "\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbroken line\n"
    )
    entries = list(read_htpasswd(path))
    assert [(e.name, e.hash[:4]) for e in entries] == [("alice", "$2y$"), ("bob", "{SHA")]
    assert entries[1].line == 4


async def test_imported_hash_logs_in_once_and_is_rehashed_to_scrypt(tmp_path: Path) -> None:
    db = SqliteRegistryDatabase(tmp_path / "registry.db")
    await db.open()
    try:
        imported = FOREIGN_PREFIX + "$apr1$saltsalt$EGVZDNN6gOqijy.tv9axG/"
        await db.put(users.user_pk("carol"), users.PROFILE_SK, {"name": "carol", "password": imported})
        assert await users.verify_password(db, "carol", "wrong password") is None
        assert (await db.get(users.user_pk("carol"), users.PROFILE_SK))["password"] == imported
        assert await users.verify_password(db, "carol", PASSWORD) is not None
        stored = (await db.get(users.user_pk("carol"), users.PROFILE_SK))["password"]
        assert stored.startswith("scrypt$")
        assert passwords.check_password_sync(PASSWORD, stored)
        assert await users.verify_password(db, "carol", PASSWORD) is not None
    finally:
        await db.close()
