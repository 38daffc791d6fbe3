"""The organization model without storage: roles, team grants, visibility, the verdict."""

from __future__ import annotations

import pytest

from registry.domain.orgs import Org, OrgDirectory, OrgOutcome, Team, parse_orgs

ACME = Org(
    name="acme",
    members={"olga": "owner", "adam": "admin", "dev": "developer", "rita": "developer"},
    teams={
        "developers": Team("developers", members=frozenset({"dev", "rita"}), grants={"@acme/app": "write"}),
        "readers": Team("readers", members=frozenset({"rita"}), grants={"@acme/secret": "read"}),
    },
    visibility={"@acme/secret": False, "@acme/app": True},
)
ORGS = OrgDirectory({"acme": ACME})


@pytest.mark.parametrize("user, package, write, outcome", [
    (None, "@acme/secret", False, OrgOutcome.HIDDEN),
    ("eve", "@acme/secret", False, OrgOutcome.HIDDEN),
    ("eve", "@acme/secret", True, OrgOutcome.FORBIDDEN),  # "not a member", as for a missing name
    ("eve", "@acme/unknown", False, OrgOutcome.HIDDEN),  # not recorded by the org yet: private
    ("eve", "@acme/app", False, OrgOutcome.ALLOWED),
    ("eve", "@acme/app", True, OrgOutcome.FORBIDDEN),
    ("eve", "@acme/new", True, OrgOutcome.FORBIDDEN),  # only members create packages of the scope
    ("dev", "@acme/new", True, OrgOutcome.ALLOWED),
    ("dev", "@acme/secret", False, OrgOutcome.HIDDEN),
    ("rita", "@acme/secret", False, OrgOutcome.ALLOWED),
    ("rita", "@acme/secret", True, OrgOutcome.FORBIDDEN),
    ("dev", "@acme/app", True, OrgOutcome.ALLOWED),
    ("adam", "@acme/secret", False, OrgOutcome.ALLOWED),
    ("adam", "@acme/secret", True, OrgOutcome.FORBIDDEN),
    ("olga", "@acme/secret", True, OrgOutcome.ALLOWED),
    ("eve", "@other/x", True, OrgOutcome.ALLOWED),  # no org owns @other: the rules alone decide
    ("eve", "unscoped", True, OrgOutcome.ALLOWED),
])
def test_the_verdict(user: str | None, package: str, write: bool, outcome: OrgOutcome) -> None:
    assert ORGS.verdict(user, package, write=write)[0] is outcome


def test_what_users_see_of_the_org() -> None:
    assert ACME.collaborators("@acme/secret") == {"olga": "write", "adam": "read", "rita": "read"}
    assert ORGS.user_packages("rita") == {"@acme/app": "write", "@acme/secret": "read"}
    assert ORGS.writer("dev", "@acme/app") and not ORGS.writer("rita", "@acme/secret")
    only_admins = OrgDirectory({"acme": ACME}, creators=("owner", "admin"))
    assert only_admins.verdict("dev", "@acme/new", write=True)[0] is OrgOutcome.FORBIDDEN
    assert "not a member" in ORGS.verdict("eve", "@acme/app", write=True)[1]


def test_the_config_names_roles() -> None:
    assert parse_orgs({"create_packages": ["owner"]}).create_packages == ("owner",)
    for bad in ({"create_packages": ["boss"]}, {"create_packages": []}, {"other": 1}, "owner"):
        with pytest.raises(ValueError):
            parse_orgs(bad)
