"""The organizations part of tarhold's OpenAPI document: `npm org`, `npm team` and `npm access`
(routes_orgs.py, routes_org_access.py), the admin API's org view (routes_admin_orgs.py) and the
org web page (web.py, web_orgs.py)."""

from __future__ import annotations

from typing import Any

from registry.http.openapi_ops import PACKAGE_FORMS, json_body, json_response, op
from registry.http.openapi_schemas import BOOL, STR, Schema, obj, path_param

ORG = path_param("org", "an organization's name, which is its scope without the @ (`acme` owns `@acme/*`)")
TEAM = path_param("team", "a team's name inside its org (`web` in `@acme:web`)")
ROLE: Schema = {"enum": ["owner", "admin", "developer"]}
LEVEL: Schema = {"enum": ["read", "write"]}
MEMBERS: Schema = {"type": "object", "additionalProperties": ROLE, "description": "user: role"}
PACKAGE_LEVELS: Schema = {"type": "object", "additionalProperties": LEVEL, "description": "package: read or write"}
USER_BODY = json_body(obj({"user": STR}, required=("user",)), "the user (`@` or `~` before the name is dropped)")
MEMBERSHIP = obj({"org": obj({"name": STR, "size": {"type": "integer"}}), "user": STR, "role": ROLE})
GRANT_BODY = obj({"package": STR, "permissions": {"enum": ["read-only", "read-write"]}}, required=("package",))
ADMIN_TEAM = obj({"name": STR, "description": STR, "members": {"type": "array", "items": STR},
                  "grants": PACKAGE_LEVELS})
ADMIN_PACKAGE = obj({"name": STR, "public": BOOL, "teams": {
    "type": "object", "additionalProperties": LEVEL, "description": "team: read or write"}})
ADMIN_ORG = obj({
    "name": STR, "created": {"type": ["string", "null"], "format": "date-time"},
    "created_by": {"type": ["string", "null"]}, "members": MEMBERS,
    "teams": {"type": "array", "items": ADMIN_TEAM}, "packages": {"type": "array", "items": ADMIN_PACKAGE},
}, required=("name", "members", "teams", "packages"))
READ = ("Unauthorized", "Forbidden", "NotFound")
CHANGE = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict")
MEMBERS_NOTE = "Members of the org only (403 for anyone else; 404 for an org that does not exist)."
MANAGERS_NOTE = (
    "Owners and admins of the org, with their one-time password (`npm-otp`) when their 2FA covers writes;"
    " only owners add, change or remove owners. Every instance enforces the change within seconds."
)
ADMIN_NOTE = (
    "Admin users only: 401 anonymous, 403 for other users; a token with grants needs `user:read=*`."
    " Read from the database, so a change made on any instance shows at once."
)


def member_paths() -> dict[str, Schema]:
    """`npm org` and `npm team` (routes_orgs.py)."""
    org, team = [ORG], [ORG, TEAM]
    return {
        "/-/org/{org}/user": {
            "get": op("listOrgMembers", "orgs", "An org's members and their roles (npm org ls)", {
                "200": json_response("user: role", MEMBERS)}, extra_params=org, errors=READ, description=MEMBERS_NOTE),
            "put": op("setOrgMember", "orgs", "Add a member or change their role (npm org set)", {
                "200": json_response("the membership now", MEMBERSHIP)}, extra_params=org,
                body=json_body(obj({"user": STR, "role": ROLE}, required=("user",))), errors=CHANGE,
                description="A new member joins the `developers` team; the role defaults to developer. " + MANAGERS_NOTE),
            "delete": op("removeOrgMember", "orgs", "Remove a member from the org and its teams (npm org rm)", {
                "204": {"description": "removed"}}, extra_params=org, body=USER_BODY, errors=CHANGE,
                description="The last owner cannot be removed (409). " + MANAGERS_NOTE),
        },
        "/-/org/{org}/team": {
            "get": op("listOrgTeams", "orgs", "An org's teams (npm team ls @org)", {
                "200": json_response("`org:team` names", {"type": "array", "items": STR})},
                extra_params=org, errors=READ, description=MEMBERS_NOTE),
            "put": op("createTeam", "orgs", "Create a team (npm team create @org:team)", {
                "201": json_response("the team", obj({"name": STR, "description": STR}))}, extra_params=org,
                body=json_body(obj({"name": STR, "description": STR}, required=("name",))), errors=CHANGE,
                description=MANAGERS_NOTE),
        },
        "/-/team/{org}/{team}": {"delete": op("destroyTeam", "orgs", "Destroy a team (npm team destroy @org:team)", {
            "204": {"description": "destroyed, with its members and grants"}}, extra_params=team, errors=CHANGE,
            description="The `developers` team cannot be destroyed (400). " + MANAGERS_NOTE)},
        "/-/team/{org}/{team}/user": {
            "get": op("listTeamMembers", "orgs", "A team's members (npm team ls @org:team)", {
                "200": json_response("user names", {"type": "array", "items": STR})},
                extra_params=team, errors=READ, description=MEMBERS_NOTE),
            "put": op("addTeamMember", "orgs", "Add a member of the org to a team (npm team add)", {
                "201": json_response("added", {"type": "object"})}, extra_params=team, body=USER_BODY,
                errors=CHANGE, description=MANAGERS_NOTE),
            "delete": op("removeTeamMember", "orgs", "Remove a user from a team (npm team rm)", {
                "204": {"description": "removed"}}, extra_params=team, body=USER_BODY, errors=CHANGE,
                description=MANAGERS_NOTE),
        },
    }


def access_paths() -> dict[str, Schema]:
    """`npm access` (routes_org_access.py): lists, grants, collaborators, visibility."""
    team = [ORG, TEAM]
    only_readable = " Only packages the caller may read are listed."
    paths: dict[str, Schema] = {
        "/-/org/{org}/package": {"get": op("listOrgPackages", "orgs", "An org's packages (npm access list packages @org)", {
            "200": json_response("package: the caller's read or write", PACKAGE_LEVELS)}, extra_params=[ORG],
            errors=READ, description=MEMBERS_NOTE + only_readable)},
        "/-/team/{org}/{team}/package": {
            "get": op("listTeamPackages", "orgs", "A team's grants (npm access list packages @org:team)", {
                "200": json_response("package: read or write", PACKAGE_LEVELS)}, extra_params=team, errors=READ,
                description=MEMBERS_NOTE + only_readable),
            "put": op("grantTeamAccess", "orgs", "Grant a team read-only or read-write (npm access grant)", {
                "201": json_response("granted", {"type": "object"})}, extra_params=team, body=json_body(GRANT_BODY),
                errors=CHANGE, description="On a package of the org's scope published here. " + MANAGERS_NOTE),
            "delete": op("revokeTeamAccess", "orgs", "Take a team's grant away (npm access revoke)", {
                "200": json_response("revoked", {"type": "object"})}, extra_params=team, body=json_body(GRANT_BODY),
                errors=CHANGE, description=MANAGERS_NOTE),
        },
        "/-/user/{user}/package": {"get": op("listUserPackages", "orgs", "A user's packages (npm access list packages USER)", {
            "200": json_response("package: read or write", PACKAGE_LEVELS)}, params=["user"],
            errors=("Unauthorized", "NotFound"), description=(
                "What the user maintains here and what their orgs' teams give them. Signed-in callers only."
                + only_readable))},
    }
    for base, names, suffix in PACKAGE_FORMS:
        paths[f"/-/package{base}/collaborators"] = {"get": op(
            f"listCollaborators{suffix}", "orgs", "Who may read or write a package (npm access list collaborators)", {
                "200": json_response("user: read or write", {"type": "object", "additionalProperties": LEVEL})},
            params=names, errors=READ, description=(
                "For a package of an org's scope, the members its org gives read or write; otherwise its maintainers."))}
        paths[f"/-/package{base}/visibility"] = {"get": op(
            f"getPackageVisibility{suffix}", "orgs", "Whether anyone may read the package (npm access get status)", {
                "200": json_response("public or not", obj({"public": BOOL}, required=("public",)))},
            params=names, errors=READ, description=(
                "Public when the `packages:` rule lets anonymous visitors read it and, in an org's scope, the org"
                " has not made it private. Set it with `POST /-/package/{name}/access` `{\"access\": \"public\"|"
                "\"restricted\"}` (npm access set status=...)."))}
    return paths


def admin_paths() -> dict[str, Schema]:
    """The admin API's org view (routes_admin_orgs.py)."""
    admin: dict[str, Any] = {"security": [{"bearer": []}, {"basic": []}], "description": ADMIN_NOTE}
    return {
        "/-/tarhold/orgs": {"get": op("adminListOrgs", "admin", "Every organization: members, teams, grants, packages", {
            "200": json_response("every org", obj({"orgs": {"type": "array", "items": ADMIN_ORG},
                                                  "total": {"type": "integer"}}, required=("orgs", "total")))},
            errors=("Unauthorized", "Forbidden"), **admin)},
        "/-/tarhold/orgs/{org}": {"get": op("adminGetOrg", "admin", "One organization", {
            "200": json_response("the org", ADMIN_ORG)}, extra_params=[ORG],
            errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound"), **admin)},
    }


def web_paths() -> dict[str, Schema]:
    """The org page of the web UI (web.py, web_orgs.py)."""
    html = {"text/html": {"schema": STR}}
    return {"/-/web/org/{org}": {"get": op("webOrg", "web", "An org's page: members, teams, packages", {
        "200": {"description": "an HTML page", "content": html},
        "404": {"description": "no such org, or the visitor is not a member (nor an admin): the same page",
                "content": html}}, extra_params=[ORG])}}


def org_paths() -> dict[str, Schema]:
    return {**member_paths(), **access_paths(), **admin_paths(), **web_paths()}
