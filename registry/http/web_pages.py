"""The web UI's HTML: pure functions from data to markup, no I/O.

Every value that came from a package, a user or a request passes through
`esc` (or, for readmes, web_readme's sanitizer) before it reaches the page.
Links are built on the config's url_prefix, so the pages work under one.
The pages need no script: search is a GET form, signing in and out are
POST forms. An admin's package page also lists the versions the mirror
policy hides, each marked with the refusal a client gets (`Mark`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from registry.domain.packument import parse_version
from registry.domain.packument_views import manifest_for
from registry.domain.policy import Verdict, refusal
from registry.http.web_readme import render_readme

DEPENDENCY_KINDS = (
    ("dependencies", "Dependencies"),
    ("peerDependencies", "Peer dependencies"),
    ("optionalDependencies", "Optional dependencies"),
)
LINK_SCHEMES = ("http://", "https://")


def esc(value: Any) -> str:
    """Text for HTML content and quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def detail_path(prefix: str, name: str, version: str | None = None) -> str:
    """The package page's path: `/-/web/detail/@scope/name`, each part URL-encoded."""
    path = f"{prefix}/-/web/detail/" + "/".join(quote(part, safe="@") for part in name.split("/", 1))
    return path + ("?" + urlencode({"version": version}) if version else "")


def day(stamp: Any) -> str:
    """`2024-05-01` from an ISO timestamp, inside a <time> with the full value."""
    if not isinstance(stamp, str) or not stamp:
        return ""
    return f'<time datetime="{esc(stamp)}" title="{esc(stamp)}">{esc(stamp[:10])}</time>'


def external_link(url: Any, text: str) -> str:
    """A link to an http(s) URL from a manifest; anything else is left out."""
    if not isinstance(url, str) or not url.startswith(LINK_SCHEMES):
        return ""
    return f'<a href="{esc(url)}" rel="nofollow noopener noreferrer">{esc(text)}</a>'


# -- the frame ----------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """What every page shows around its content."""

    site_title: str
    prefix: str
    user: str | None
    here: str  # this page's path and query, where signing in returns to
    query: str = ""


def layout(frame: Frame, title: str, body: str) -> str:
    prefix = frame.prefix
    if frame.user is None:
        login = f"{prefix}/-/web/login?" + urlencode({"next": frame.here})
        account = f'<a class="signin" href="{esc(login)}">Sign in</a>'
    else:
        account = (
            f'<form method="post" action="{esc(prefix)}/-/web/logout" class="account">'
            f'<span>Signed in as <strong>{esc(frame.user)}</strong></span> '
            '<button type="submit">Sign out</button></form>'
        )
    page_title = f"{title} · {frame.site_title}" if title else frame.site_title
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(page_title)}</title>"
        f'<link rel="stylesheet" href="{esc(prefix)}/-/static/web.css"></head><body>'
        f'<header class="top"><a class="brand" href="{esc(prefix)}/">{esc(frame.site_title)}</a>'
        f'<form class="search" method="get" action="{esc(prefix)}/-/web/search" role="search">'
        f'<input type="search" name="q" value="{esc(frame.query)}" placeholder="Search packages"'
        ' aria-label="Search packages" maxlength="200"> <button type="submit">Search</button></form>'
        f"{account}</header>\n<main>{body}</main></body></html>\n"
    )


# -- lists of packages -------------------------------------------------------------


def package_list(entries: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """Package list entries (the database's PACKAGE items) as a list of links."""
    items = []
    for entry in entries:
        name = str(entry["name"])
        version = entry.get("version")
        items.append(
            f'<li class="package"><a class="name" href="{esc(detail_path(prefix, name))}">{esc(name)}</a>'
            + (f' <span class="version">{esc(version)}</span>' if version else "")
            + f' <span class="date">{day(entry.get("date") or entry.get("modified"))}</span>'
            + f'<p class="description">{esc(entry.get("description") or "")}</p></li>'
        )
    return f'<ul class="packages">{"".join(items)}</ul>'


def home_body(entries: Sequence[Mapping[str, Any]], prefix: str) -> str:
    if not entries:
        return "<h1>Packages</h1><p class=\"empty\">No packages published here yet.</p>"
    return f"<h1>Recently published</h1>{package_list(entries, prefix)}"


def search_body(query: str, entries: Sequence[Mapping[str, Any]], total: int, prefix: str) -> str:
    if not query:
        return "<h1>Search</h1><p>Type a package name, a word from its description, or a keyword.</p>"
    heading = f"<h1>{total} result{'s' if total != 1 else ''} for <q>{esc(query)}</q></h1>"
    if not entries:
        return heading + '<p class="empty">No package matches.</p>'
    more = f"<p>Showing the first {len(entries)}.</p>" if total > len(entries) else ""
    return heading + package_list(entries, prefix) + more


# -- the package page -----------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """What the mirror policy does to a version, for an admin: `blocked`, and the refusal text."""

    label: str  # quarantined, blocked, hidden, replaced by 2.0.1
    message: str
    hidden: bool = True  # False: listed, with another version's manifest


POLICY_LABELS = {"block": "blocked", "quarantine": "quarantined"}


def policy_marks(name: str, verdict: Verdict) -> dict[str, Mark]:
    """The mark of each version the policy hides or replaces."""
    marks = {
        version: Mark(POLICY_LABELS.get(reason.kind, "hidden"), refusal(name, version, reason))
        for version, reason in verdict.hidden.items()
    }
    for version, replacement in verdict.replaced.items():
        message = refusal(name, version, replacement.reason) + f"; clients get {replacement.by} in its place"
        marks[version] = Mark(f"replaced by {replacement.by}", message, hidden=False)
    return marks


@dataclass(frozen=True)
class VersionRow:
    version: str
    date: str | None
    tags: tuple[str, ...]
    deprecated: bool
    mark: Mark | None = None


@dataclass(frozen=True)
class PackageView:
    """What the package page shows, taken from a packument."""

    name: str
    version: str | None  # the version shown (None: the package has none)
    manifest: dict[str, Any]
    dist_tags: dict[str, str]
    versions: tuple[VersionRow, ...]
    readme: str
    readme_filename: str | None
    modified: str | None
    dependencies: dict[str, dict[str, str]] = field(default_factory=dict)
    mark: Mark | None = None  # the shown version's, on an admin's page


def version_order(version: str) -> tuple[int, Any]:
    parsed = parse_version(version)
    return (1, parsed) if parsed is not None else (0, version)


def package_view(
    doc: Mapping[str, Any], wanted: str | None = None, marks: Mapping[str, Mark] | None = None
) -> PackageView:
    """The page's data for `doc`; `wanted` a version or dist-tag (default: latest); `marks`
    the policy's marks of versions in `doc` that clients do not get as themselves."""
    marks = marks or {}
    versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
    tags = {str(k): str(v) for k, v in (doc.get("dist-tags") or {}).items() if isinstance(v, str)}
    times = doc.get("time") if isinstance(doc.get("time"), dict) else {}
    manifest = manifest_for(dict(doc), wanted) if wanted else None
    if manifest is None:
        latest = tags.get("latest")
        if latest not in versions:
            ordered = sorted((v for v in versions if v not in marks or not marks[v].hidden), key=version_order)
            latest = ordered[-1] if ordered else None
        manifest = dict(versions[latest]) if latest is not None else {}
    shown = manifest.get("version") if manifest else None
    tags_of: dict[str, list[str]] = {}
    for tag, version in tags.items():
        tags_of.setdefault(version, []).append(tag)
    rows = tuple(
        VersionRow(
            version=str(v), date=times.get(v) if isinstance(times.get(v), str) else None,
            tags=tuple(sorted(tags_of.get(v, []))),
            deprecated=isinstance(m, dict) and bool(m.get("deprecated")), mark=marks.get(str(v)),
        )
        for v, m in sorted(versions.items(), key=lambda item: version_order(item[0]), reverse=True)
    )
    readme = doc.get("readme") if isinstance(doc.get("readme"), str) and doc.get("readme") else None
    if readme is None:
        readme = manifest.get("readme") if isinstance(manifest.get("readme"), str) else ""
    dependencies = {
        kind: {str(k): str(v) for k, v in manifest[kind].items()}
        for kind, _ in DEPENDENCY_KINDS
        if isinstance(manifest.get(kind), dict) and manifest[kind]
    }
    filename = doc.get("readmeFilename")
    return PackageView(
        name=str(doc.get("name") or ""), version=shown, manifest=manifest, dist_tags=tags,
        versions=rows, readme=readme, readme_filename=filename if isinstance(filename, str) else None,
        modified=times.get("modified") if isinstance(times.get("modified"), str) else None,
        dependencies=dependencies, mark=marks.get(str(shown)) if shown is not None else None,
    )


def install_command(name: str, version: str | None, latest: str | None, registry: str) -> str:
    spec = name if version is None or version == latest else f"{name}@{version}"
    return f"npm install {spec} --registry={registry}/"


def package_body(view: PackageView, prefix: str, registry: str, side: str = "") -> str:
    """The package page: summary, install command, readme, and the side panel (`side` leads it)."""
    manifest = view.manifest
    latest = view.dist_tags.get("latest")
    parts = [
        f'<article class="package-page"><h1 class="package-name">{esc(view.name)}</h1>',
        f'<p class="summary"><span class="version">{esc(view.version or "no versions")}</span>'
        + (' <span class="badge">latest</span>' if view.version and view.version == latest else "")
        + (f" · published {day(next((r.date for r in view.versions if r.version == view.version), None))}"
           if view.version else "")
        + "</p>",
    ]
    if view.mark is not None:
        parts.append(
            f'<div class="deprecated policy" role="alert"><strong>{esc(view.mark.label)}</strong>:'
            f" {esc(view.mark.message)}</div>"
        )
    if manifest.get("description"):
        parts.append(f'<p class="description">{esc(manifest["description"])}</p>')
    deprecated = manifest.get("deprecated")
    if deprecated:
        message = deprecated if isinstance(deprecated, str) else "This version is deprecated."
        parts.append(
            f'<div class="deprecated" role="alert"><strong>Deprecated</strong>: {esc(message)}</div>'
        )
    parts.append(
        '<section class="install"><h2>Install</h2>'
        f"<pre><code>{esc(install_command(view.name, view.version, latest, registry))}</code></pre></section>"
    )
    if view.readme:
        readme = render_readme(view.readme, view.readme_filename)
        parts.append(f'<section class="readme"><h2 class="section">Readme</h2><div class="markdown">{readme}</div></section>')
    else:
        parts.append('<section class="readme"><p class="empty">This package has no readme.</p></section>')
    parts.append("</article>")
    parts.append(f'<aside class="side">{side}{side_panel(view, prefix)}</aside>')
    return f'<div class="package-layout">{"".join(parts)}</div>'


def side_panel(view: PackageView, prefix: str) -> str:
    manifest = view.manifest
    parts = []
    facts = []
    if manifest.get("license"):
        license_ = manifest["license"]
        if isinstance(license_, dict):
            license_ = license_.get("type", "")
        facts.append(f"<dt>License</dt><dd>{esc(license_)}</dd>")
    homepage = external_link(manifest.get("homepage"), "homepage")
    if homepage:
        facts.append(f"<dt>Homepage</dt><dd>{homepage}</dd>")
    repository = manifest.get("repository")
    repository_url = repository.get("url") if isinstance(repository, dict) else repository
    if isinstance(repository_url, str) and repository_url.startswith("git+"):
        repository_url = repository_url[4:]
    link = external_link(repository_url, "repository")
    if link:
        facts.append(f"<dt>Repository</dt><dd>{link}</dd>")
    if view.modified:
        facts.append(f"<dt>Last change</dt><dd>{day(view.modified)}</dd>")
    if facts:
        parts.append(f'<dl class="facts">{"".join(facts)}</dl>')
    parts.append(dist_tags_table(view))
    for kind, label in DEPENDENCY_KINDS:
        deps = view.dependencies.get(kind)
        if deps:
            parts.append(dependency_list(label, deps, prefix))
    if not view.dependencies.get("dependencies"):
        parts.append('<section class="dependencies"><h2>Dependencies</h2><p class="empty">None.</p></section>')
    parts.append(versions_table(view, prefix))
    return "".join(parts)


def dist_tags_table(view: PackageView) -> str:
    rows = "".join(
        f"<tr><th scope=\"row\">{esc(tag)}</th><td>{esc(version)}</td></tr>"
        for tag, version in sorted(view.dist_tags.items())
    )
    return f'<section class="dist-tags"><h2>Dist-tags</h2><table>{rows}</table></section>'


def dependency_list(label: str, deps: Mapping[str, str], prefix: str) -> str:
    items = "".join(
        f'<li><a href="{esc(detail_path(prefix, name))}">{esc(name)}</a> <code>{esc(spec)}</code></li>'
        for name, spec in sorted(deps.items())
    )
    return (
        f'<section class="dependencies"><h2>{esc(label)} ({len(deps)})</h2>'
        f'<ul class="deps">{items}</ul></section>'
    )


def versions_table(view: PackageView, prefix: str) -> str:
    rows = []
    for row in view.versions:
        current = ' class="current"' if row.version == view.version else ""
        tags = "".join(f' <span class="badge">{esc(t)}</span>' for t in row.tags)
        flag = ' <span class="badge warn">deprecated</span>' if row.deprecated else ""
        if row.mark is not None:
            flag += (
                f' <span class="badge warn" title="{esc(row.mark.message)}">{esc(row.mark.label)}</span>'
                f'<br><small class="policy">{esc(row.mark.message)}</small>'
            )
        rows.append(
            f'<tr{current}><td><a href="{esc(detail_path(prefix, view.name, row.version))}">'
            f"{esc(row.version)}</a>{tags}{flag}</td><td>{day(row.date)}</td></tr>"
        )
    return (
        f'<section class="versions"><h2>Versions ({len(view.versions)})</h2>'
        f'<table><thead><tr><th>Version</th><th>Published</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        "</section>"
    )


# -- signing in, and what is not there --------------------------------------------------


def login_body(prefix: str, *, username: str = "", error: str = "", next_path: str = "/") -> str:
    message = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return (
        '<section class="login"><h1>Sign in</h1>'
        "<p>Sign in with your registry account to see the private packages you may read.</p>"
        f'{message}<form method="post" action="{esc(prefix)}/-/web/login">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        f'<label>Username <input name="username" value="{esc(username)}" required autofocus'
        ' autocapitalize="none" autocomplete="username" maxlength="64"></label>'
        '<label>Password <input name="password" type="password" required autocomplete="current-password"'
        ' maxlength="1024"></label><label>Authenticator code (if your account has two-factor auth)'
        ' <input name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="64"></label>'
        '<button type="submit">Sign in</button></form></section>'
    )


def signed_in_body(user: str, prefix: str) -> str:
    return (
        f'<section class="login"><h1>Signed in</h1><p>You are signed in as <strong>{esc(user)}</strong>.</p>'
        f'<p><a href="{esc(prefix)}/">Browse packages</a></p></section>'
    )


def missing_version_body(name: str, message: str, prefix: str) -> str:
    """A `?version=` the package does not show: missing, or hidden by the policy (`message` says which)."""
    return (
        f'<h1>Not found</h1><p>{esc(message)}</p>'
        f'<p><a href="{esc(detail_path(prefix, name))}">See the versions of {esc(name)}</a></p>'
    )


def not_found_body(name: str, signed_in: bool, login_href: str) -> str:
    hint = "" if signed_in else (
        f'<p>If it is a private package, <a href="{esc(login_href)}">sign in</a> to see it.</p>'
    )
    return f'<h1>Not found</h1><p>There is no package <code>{esc(name)}</code> here.</p>{hint}'
