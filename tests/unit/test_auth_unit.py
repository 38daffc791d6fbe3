"""The pure parts of auth: password hashes, principals, CIDR checks, log masking."""

from __future__ import annotations

import base64

import pytest

from registry.domain.cidrs import ip_allowed, parse_cidrs
from registry.domain.errors import Unauthorized
from registry.domain.passwords import (
    check_password_sync,
    hash_password_sync,
    is_outdated,
)
from registry.domain.users import token_hash, valid_user_name
from registry.http.auth import Identity, is_allowed, log_path, parse_basic

ALICE = Identity(user="alice")


@pytest.mark.production_password_cost
def test_password_hash_has_the_documented_format_and_verifies() -> None:
    stored = hash_password_sync("s3cret password")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "5")
    assert len(base64.b64decode(salt)) == 16
    assert check_password_sync("s3cret password", stored)
    assert not check_password_sync("s3cret passworD", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password_sync("same") != hash_password_sync("same")


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$1$2$3$a$b", "scrypt$x$8$1$AA==$AA=="])
def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert not check_password_sync("anything", stored)


@pytest.mark.parametrize(
    ("principals", "identity", "allowed"),
    [
        (["$all"], None, True),
        (["$all"], ALICE, True),
        (["$anonymous"], None, True),
        (["$anonymous"], ALICE, False),
        (["$authenticated"], None, False),
        (["$authenticated"], ALICE, True),
        (["alice"], ALICE, True),
        (["bob"], ALICE, False),
        (["bob", "alice"], ALICE, True),
        (["alice"], None, False),
        ([], ALICE, False),
    ],
)
def test_is_allowed(principals: list[str], identity: Identity | None, allowed: bool) -> None:
    assert is_allowed(identity, principals) is allowed


@pytest.mark.parametrize(
    ("remote", "cidrs", "allowed"),
    [
        ("127.0.0.1", ["127.0.0.0/8"], True),
        ("127.0.0.1", ["10.0.0.0/8"], False),
        ("10.1.2.3", ["192.168.0.0/16", "10.0.0.0/8"], True),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),
        ("::1", ["::1/128"], True),
        ("::1", ["127.0.0.0/8"], False),
        (None, ["0.0.0.0/0"], False),
        ("not an ip", ["0.0.0.0/0"], False),
    ],
)
def test_ip_allowed(remote: str | None, cidrs: list[str], allowed: bool) -> None:
    assert ip_allowed(remote, cidrs) is allowed


def test_parse_cidrs_normalizes_and_accepts_npm_forms() -> None:
    assert parse_cidrs(None) == []
    assert parse_cidrs(["10.1.2.3/8", "192.168.0.1"]) == ["10.0.0.0/8", "192.168.0.1/32"]
    assert parse_cidrs("10.0.0.0/8, 172.16.0.0/12") == ["10.0.0.0/8", "172.16.0.0/12"]


@pytest.mark.parametrize("bad", [["10.0.0.300/8"], ["abc"], [1], {"a": 1}])
def test_parse_cidrs_rejects_bad_entries(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_cidrs(bad)


def test_parse_basic() -> None:
    value = base64.b64encode(b"alice:pa:ss").decode()
    assert parse_basic(value) == ("alice", "pa:ss")
    for bad in ["%%%", base64.b64encode(b"no-colon").decode(), base64.b64encode(b":pw").decode()]:
        with pytest.raises(Unauthorized):
            parse_basic(bad)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("alice", True), ("a", True), ("a.b-c_d9", True), ("x" * 64, True),
        ("", False), ("x" * 65, False), ("Alice", False), (".alice", False),
        ("al ice", False), ("al#ice", False), ("@scope", False),
    ],
)
def test_valid_user_name(name: str, valid: bool) -> None:
    assert valid_user_name(name) is valid


def test_log_path_masks_tokens_but_keeps_token_keys() -> None:
    assert log_path("/-/user/token/abcDEF123_-") == "/-/user/token/***"
    key = "0123456789abcdef0123456789abcdef"
    assert log_path(f"/-/npm/v1/tokens/token/{key}") == f"/-/npm/v1/tokens/token/{key}"
    assert log_path("/-/npm/v1/tokens/token/A-full-token") == "/-/npm/v1/tokens/token/***"
    assert log_path("/lodash") == "/lodash"


def test_token_hash_is_sha256_hex() -> None:
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.production_password_cost
def test_passwords_are_hashed_with_owasp_scrypt_work() -> None:
    # N=2^14, r=8, p=5: OWASP's equivalent of N=2^17, r=8, p=1 at 16 MiB.
    scheme, n, r, p, _, _ = hash_password_sync("s3cret password").split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**14, 8, 5)


@pytest.mark.production_password_cost
def test_a_hash_with_less_work_is_outdated_and_the_current_one_is_not() -> None:
    assert is_outdated("scrypt$16384$8$1$c2FsdA==$aGFzaA==")
    assert not is_outdated(hash_password_sync("s3cret password"))
    assert is_outdated("htpasswd$$2y$10$abcdefghijklmnopqrstuu5zbk1G7L6vV4nB7i3rXYVqP7Y8kX5e")  # imported
