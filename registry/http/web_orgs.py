"""The web UI's organizations: the org page, the visitor's orgs, the org line of a package's page.

`/-/web/org/{org}` (web.org_page) shows an org's members and their roles,
its teams with their members and grants, and its packages with their
visibility, read only (changes are npm's: `npm org`, `npm team`, `npm
access`). Only signed-in members of the org and registry admins see it;
to anyone else it is the same 404 page as an org that does not exist, so
the page never says which orgs exist.

Private packages stay private here as everywhere: the packages listed, and
the grants shown under each team, are only those the visitor may read
(`may_see`, the one access decision, org layer included). A member without
a grant on a private package learns nothing of its name from this page.
The pages read the instance's org snapshot (org_directory.orgs_of), the
same one the access decision reads. Every value passes through `esc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import web

from registry.domain.orgs import DEVELOPERS, ROLES, Org, OrgDirectory, scope_of
from registry.http.access import may_see
from registry.http.appkeys import DATABASE
from registry.http.web_pages import detail_path, esc


def org_path(prefix: str, org: str) -> str:
    """The org page's path: `/-/web/org/acme`."""
    return f"{prefix}/-/web/org/{quote(org, safe='')}"


async def readable_packages(request: web.Request, org: Org) -> list[str]:
    """The packages of the org's scope published here that the visitor may read, by name (those
    from before the org existed too; none the org still records after they were unpublished)."""
    names = [
        name async for name, entry in request.app[DATABASE].query("PACKAGE", f"@{org.name}/")
        if entry.get("local") and scope_of(name) == org.name
    ]
    return [name for name in sorted(names) if may_see(request, name) is not None]


def visible_orgs(directory: OrgDirectory, user: str, *, admin: bool) -> list[tuple[Org, str | None]]:
    """The orgs whose page `user` may see, with their role (None: an admin who is not a member)."""
    found = [
        (org, org.role(user)) for org in directory.orgs.values()
        if admin or org.role(user) is not None
    ]
    return sorted(found, key=lambda pair: pair[0].name)


# -- the org page -----------------------------------------------------------------


def members_table(org: Org) -> str:
    order = {role: n for n, role in enumerate(ROLES)}
    rows = "".join(
        f'<tr><td>{esc(user)}</td><td><span class="badge">{esc(role)}</span></td></tr>'
        for user, role in sorted(org.members.items(), key=lambda item: (order.get(item[1], len(ROLES)), item[0]))
    )
    return (
        f'<section class="members"><h2>Members ({len(org.members)})</h2>'
        f'<table class="org"><thead><tr><th>User</th><th>Role</th></tr></thead><tbody>{rows}</tbody></table></section>'
    )


def teams_list(org: Org, readable: set[str], prefix: str) -> str:
    items = []
    for team in sorted(org.teams.values(), key=lambda t: (t.name != DEVELOPERS, t.name)):
        members = ", ".join(esc(user) for user in sorted(team.members)) or '<span class="empty">no members</span>'
        grants = [
            f'<li><a href="{esc(detail_path(prefix, name))}">{esc(name)}</a>'
            f' <span class="badge">{"read-write" if level == "write" else "read-only"}</span></li>'
            for name, level in sorted(team.grants.items()) if name in readable
        ]
        description = f'<p class="description">{esc(team.description)}</p>' if team.description else ""
        items.append(
            f'<li class="team"><h3>@{esc(org.name)}:{esc(team.name)}</h3>{description}'
            f"<p>Members: {members}</p>"
            + (f'<ul class="grants">{"".join(grants)}</ul>' if grants else '<p class="empty">No grants you may see.</p>')
            + "</li>"
        )
    return f'<section class="teams"><h2>Teams ({len(org.teams)})</h2><ul class="teams">{"".join(items)}</ul></section>'


def packages_table(org: Org, user: str, readable: Sequence[str], prefix: str) -> str:
    if not readable:
        return '<section class="org-packages"><h2>Packages</h2><p class="empty">No packages you may read.</p></section>'
    rows = []
    for name in readable:
        visibility = "public" if org.is_public(name) else "private"
        level = org.permission(user, name)
        access = {"write": "read-write", "read": "read-only"}.get(level or "", "")
        rows.append(
            f'<tr><td><a href="{esc(detail_path(prefix, name))}">{esc(name)}</a></td>'
            f'<td><span class="badge{" warn" if visibility == "private" else ""}">{visibility}</span></td>'
            f"<td>{esc(access)}</td></tr>"
        )
    return (
        f'<section class="org-packages"><h2>Packages ({len(readable)})</h2>'
        '<table class="org"><thead><tr><th>Package</th><th>Visibility</th><th>Your access</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></section>'
    )


def org_body(org: Org, user: str, readable: Sequence[str], prefix: str) -> str:
    """The org page for `user` (a member, or an admin); `readable`: the org's packages they may read."""
    role = org.role(user)
    you = f"You are {'an' if role in ('owner', 'admin') else 'a'} {esc(role)} of this organization." if role else (
        "You see this page as a registry admin; you are not a member."
    )
    return (
        f'<article class="org-page"><h1>@{esc(org.name)}</h1>'
        f'<p class="summary">Organization owning <code>@{esc(org.name)}/*</code>. {you}</p>'
        f"{packages_table(org, user, readable, prefix)}{members_table(org)}{teams_list(org, set(readable), prefix)}"
        f"<p class=\"empty\">Changed with npm: <code>npm org set {esc(org.name)} USER developer</code>,"
        f" <code>npm team create @{esc(org.name)}:TEAM</code>,"
        f" <code>npm access grant read-write @{esc(org.name)}:TEAM @{esc(org.name)}/PACKAGE</code>.</p></article>"
    )


def org_missing_body(name: str, signed_in: bool, login_href: str) -> str:
    """An org that does not exist, or that the visitor may not see: the same page."""
    hint = "" if signed_in else f'<p>If you are a member, <a href="{esc(login_href)}">sign in</a> to see it.</p>'
    return f"<h1>Not found</h1><p>There is no organization <code>{esc(name)}</code> here.</p>{hint}"


# -- elsewhere: the front page and a package's page ----------------------------------


def my_orgs_section(orgs: Sequence[tuple[Org, str | None]], prefix: str) -> str:
    """The front page's list of the visitor's orgs; "" when there are none."""
    if not orgs:
        return ""
    items = "".join(
        f'<li><a href="{esc(org_path(prefix, org.name))}">@{esc(org.name)}</a>'
        + (f' <span class="badge">{esc(role)}</span>' if role else "")
        + "</li>"
        for org, role in orgs
    )
    title = "Your organizations" if all(role for _, role in orgs) else "Organizations"  # an admin sees all
    return f'<section class="my-orgs"><h2>{title}</h2><ul class="orgs">{items}</ul></section>'


def package_org_panel(org: Org, name: str, may_view: bool, prefix: str) -> str:
    """The side panel's line naming the org of a package in its scope (a link for who may see the org)."""
    label = f"@{esc(org.name)}"
    link = f'<a href="{esc(org_path(prefix, org.name))}">{label}</a>' if may_view else label
    private = (
        ' <span class="badge warn" title="only members of the organization with a grant read it">private</span>'
        if not org.is_public(name) else ""
    )
    return f'<dl class="facts org"><dt>Organization</dt><dd>{link}{private}</dd></dl>'

