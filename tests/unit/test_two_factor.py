"""Two-factor auth without HTTP: sealed secrets, code steps, and when a code is needed."""

from __future__ import annotations

import pyotp
import pytest

from registry.domain.errors import Forbidden
from registry.domain.two_factor import (
    TwoFactor,
    _matching_step,
    otp_needed,
    profile_tfa,
    recovery_hash,
    seal,
    unseal,
)

SECRET = pyotp.random_base32()
NOW = 1_800_000_000.0
STEP = int(NOW // 30)
OFF = TwoFactor(None)
PENDING = TwoFactor("auth-and-writes", pending=True)
AUTH_ONLY = TwoFactor("auth-only")
WRITES = TwoFactor("auth-and-writes")


def test_the_secret_is_sealed_with_the_registry_secret() -> None:
    sealed = seal(SECRET, "registry secret one")
    assert SECRET not in sealed and sealed != seal(SECRET, "registry secret one")  # fresh nonce
    assert unseal(sealed, "registry secret one") == SECRET
    with pytest.raises(ValueError, match="does not open"):
        unseal(sealed, "another registry")


def test_a_code_is_good_in_its_step_and_the_ones_either_side_and_only_after_the_last_used() -> None:
    totp = pyotp.TOTP(SECRET)
    for offset in (-1, 0, 1):
        assert _matching_step(SECRET, totp.at((STEP + offset) * 30), None, NOW) == STEP + offset
    assert _matching_step(SECRET, totp.at((STEP + 2) * 30), None, NOW) is None
    assert _matching_step(SECRET, totp.at((STEP - 2) * 30), None, NOW) is None
    assert _matching_step(SECRET, totp.at(STEP * 30), STEP, NOW) is None  # used already
    assert _matching_step(SECRET, totp.at(STEP * 30), STEP - 1, NOW) == STEP
    for junk in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert _matching_step(SECRET, junk, None, NOW) is None


def test_recovery_codes_are_kept_as_hashes_that_ignore_case_and_spaces() -> None:
    assert recovery_hash(" ABCdef ") == recovery_hash("abcdef") != recovery_hash("abcdeg")
    assert "abcdef" not in recovery_hash("abcdef")


@pytest.mark.parametrize(
    ("state", "purpose", "bypass", "mfa", "needed"),
    [
        (OFF, "publish", False, "none", False),
        (PENDING, "publish", False, "none", False),
        (AUTH_ONLY, "publish", False, "none", False),
        (AUTH_ONLY, "login", False, "none", True),
        (AUTH_ONLY, "profile", False, "none", True),
        (AUTH_ONLY, "token", False, "none", False),
        (WRITES, "publish", False, "none", True),
        (WRITES, "publish", True, "none", False),  # npm's automation / --bypass-2fa token
        (WRITES, "token", False, "none", True),
        (WRITES, "review", True, "none", True),  # reviewing is the human step
        (AUTH_ONLY, "review", False, "none", True),
        (OFF, "review", False, "none", False),
        (AUTH_ONLY, "publish", False, "publish", True),
        (WRITES, "publish", True, "publish", True),
        (WRITES, "publish", True, "automation", False),
        (WRITES, "publish", False, "automation", True),
        (OFF, "publish", True, "automation", False),
    ],
)
def test_when_a_code_is_needed(state: TwoFactor, purpose: str, bypass: bool, mfa: str, needed: bool) -> None:
    assert otp_needed(state, purpose, bypass=bypass, package_mfa=mfa) is needed  # type: ignore[arg-type]


def test_without_2fa_a_package_or_the_config_that_requires_it_refuses() -> None:
    with pytest.raises(Forbidden, match="this package requires two-factor auth"):
        otp_needed(OFF, "publish", package_mfa="publish")
    with pytest.raises(Forbidden, match="requires two-factor auth for writes"):
        otp_needed(OFF, "token", required_by_config=True)
    assert otp_needed(OFF, "profile", required_by_config=True) is False  # so one can turn it on
    assert otp_needed(WRITES, "publish", required_by_config=True) is True


def test_the_profile_shows_the_mode_and_whether_it_is_pending() -> None:
    assert profile_tfa({}) is False
    assert profile_tfa({"tfa": {"mode": "auth-only", "pending": True}}) == {"pending": True, "mode": "auth-only"}
    assert profile_tfa({"tfa": {"mode": "sms"}}) is False
