"""The one package access decision: rules, who is asking and token grants, without HTTP."""

from __future__ import annotations

import pytest

from registry.domain.access import Action, Identity, Outcome, decide, may_read
from registry.domain.grants import parse_grants
from registry.domain.rules import PackageRule, parse_packages

RULES = parse_packages(
    {
        "@private/*": {"access": "$authenticated", "publish": "alice", "unpublish": "admin"},
        "@team/*": {"access": "alice bob", "publish": "alice"},
        "**": {"access": "$all", "publish": "$authenticated"},
    },
    {},
)
PRIVATE, TEAM, PUBLIC = RULES
ALICE = Identity(user="alice")
BOB = Identity(user="bob")


def token(*grants: str, readonly: bool = False, user: str = "alice") -> Identity:
    return Identity(user, "k" * 32, readonly, parse_grants(grants) if grants else None)


def outcome(rule: PackageRule | None, identity: Identity | None, name: str, action: Action) -> Outcome:
    return decide(rule, identity, name, action).outcome


@pytest.mark.parametrize("action", list(Action))
def test_a_name_no_rule_matches_is_not_found_to_a_known_user(action: Action) -> None:
    verdict = decide(None, ALICE, "x", action)
    assert verdict.outcome is Outcome.NO_RULE
    assert verdict.message == "no such package available: x"


def test_anonymous_reads_of_a_private_package_need_a_login_everywhere() -> None:
    verdict = decide(PRIVATE, None, "@private/x", Action.READ)
    assert verdict.outcome is Outcome.NEEDS_LOGIN
    assert verdict.message == "authentication required to access package @private/x"


def test_a_known_user_outside_the_access_list_is_forbidden() -> None:
    verdict = decide(TEAM, Identity(user="carol"), "@team/x", Action.READ)
    assert verdict.outcome is Outcome.FORBIDDEN
    assert verdict.message == "carol may not access package @team/x"


def test_everyone_reads_a_public_package() -> None:
    assert decide(PUBLIC, None, "left-pad", Action.READ).allowed
    assert decide(PUBLIC, BOB, "left-pad", Action.READ).allowed


@pytest.mark.parametrize("action", [Action.PUBLISH, Action.UNPUBLISH, Action.STAR])
def test_anonymous_writes_need_a_login_before_the_rules_are_asked(action: Action) -> None:
    verdict = decide(None, None, "x", action)
    assert verdict.outcome is Outcome.NEEDS_LOGIN
    assert verdict.message == "authentication required; log in with `npm login`"


@pytest.mark.parametrize("action", [Action.PUBLISH, Action.UNPUBLISH, Action.STAR])
def test_a_read_only_token_writes_nothing(action: Action) -> None:
    verdict = decide(PUBLIC, token(readonly=True), "left-pad", action)
    assert verdict.outcome is Outcome.FORBIDDEN
    assert verdict.message == "this token is read-only"


def test_publish_and_unpublish_follow_their_own_principals() -> None:
    assert outcome(PRIVATE, ALICE, "@private/x", Action.PUBLISH) is Outcome.ALLOWED
    refused = decide(PRIVATE, ALICE, "@private/x", Action.UNPUBLISH)
    assert refused.outcome is Outcome.FORBIDDEN
    assert refused.message == "alice may not unpublish package @private/x"
    assert decide(PRIVATE, BOB, "@private/x", Action.PUBLISH).message == "bob may not publish package @private/x"


def test_starring_needs_read_access_and_says_so() -> None:
    assert outcome(TEAM, BOB, "@team/x", Action.STAR) is Outcome.ALLOWED
    refused = decide(TEAM, Identity(user="carol"), "@team/x", Action.STAR)
    assert refused.outcome is Outcome.FORBIDDEN
    assert refused.message == "carol may not access package @team/x"


def test_a_write_grant_must_cover_the_package() -> None:
    narrow = token("pkg:read+write=@acme/*")
    assert outcome(PUBLIC, narrow, "@acme/ui", Action.PUBLISH) is Outcome.ALLOWED
    refused = decide(PUBLIC, narrow, "left-pad", Action.PUBLISH)
    assert refused.outcome is Outcome.FORBIDDEN
    assert refused.message == "this token may not write left-pad: it has no pkg:read+write grant that covers it"
    assert outcome(PUBLIC, token("pkg:read=*"), "left-pad", Action.STAR) is Outcome.FORBIDDEN


def test_a_read_grant_narrows_reads_but_never_below_what_anonymous_gets() -> None:
    narrow = token("pkg:read=@private/a")
    assert outcome(PRIVATE, narrow, "@private/a", Action.READ) is Outcome.ALLOWED
    refused = decide(PRIVATE, narrow, "@private/b", Action.READ)
    assert refused.outcome is Outcome.FORBIDDEN
    assert refused.message == "this token may not read @private/b: it has no pkg:read grant that covers it"
    assert outcome(PUBLIC, narrow, "left-pad", Action.READ) is Outcome.ALLOWED


def test_grants_never_exceed_the_user() -> None:
    assert outcome(TEAM, token("pkg:read+write=*", user="carol"), "@team/x", Action.READ) is Outcome.FORBIDDEN


def test_may_read_is_the_read_decision_as_a_boolean() -> None:
    assert may_read(PUBLIC, None, "left-pad")
    assert not may_read(PRIVATE, None, "@private/x")
    assert not may_read(None, ALICE, "x")
    assert may_read(PRIVATE, ALICE, "@private/x")
    assert not may_read(PRIVATE, token("pkg:read=@acme/*"), "@private/x")
