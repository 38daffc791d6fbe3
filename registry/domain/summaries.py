"""Package list entries: a small typed summary of each packument, whatever the packument holds.

Search and the web UI's front page read every entry, so an entry must be
small and well-typed: one publish with `description: -1` used to make every
search answer 500, and one 9 MB entry made every front page read 29 MB.
`summary_of` builds an entry from a packument, keeping only strings (and
lists of them) of bounded length; `clean_entry` puts any stored entry (from an
older tarhold, or written by hand) through the same filter before it is read.
"""

from __future__ import annotations

from typing import Any

MAX_DESCRIPTION = 1024
MAX_KEYWORDS = 32
MAX_KEYWORD = 64
MAX_PEOPLE = 32
MAX_TEXT = 512  # names, e-mail addresses, URLs, versions, dates


def text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """`value` when it is a string (cut at `limit`), else None."""
    return value[:limit] if isinstance(value, str) else None


def person(value: Any) -> dict[str, str] | None:
    """{name, email?} of a maintainer or publisher object; None when it has no name."""
    if not isinstance(value, dict) or not (name := text(value.get("name"))):
        return None
    email = text(value.get("email"))
    return {"name": name, "email": email} if email else {"name": name}


def people(value: Any) -> list[dict[str, str]]:
    items = value if isinstance(value, list) else []
    return [p for p in (person(item) for item in items[:MAX_PEOPLE]) if p is not None]


def keywords(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    return [k[:MAX_KEYWORD] for k in items[:MAX_KEYWORDS] if isinstance(k, str) and k]


def _repository_url(value: Any) -> str | None:
    if isinstance(value, dict):
        return text(value.get("url"))
    return text(value)


def _bugs_url(value: Any) -> str | None:
    return text(value.get("url")) if isinstance(value, dict) else text(value)


def clean_entry(raw: Any, name: str) -> dict[str, Any]:
    """A stored package list entry, reduced to the typed and bounded fields readers use."""
    entry = raw if isinstance(raw, dict) else {}
    links = entry.get("links") if isinstance(entry.get("links"), dict) else {}
    return {
        "name": name,
        "local": entry.get("local") is True,
        "version": text(entry.get("version")),
        "description": text(entry.get("description"), MAX_DESCRIPTION) or "",
        "keywords": keywords(entry.get("keywords")),
        "maintainers": people(entry.get("maintainers")),
        "created": text(entry.get("created")),
        "modified": text(entry.get("modified")),
        "date": text(entry.get("date")),
        "links": {k: v for k in ("homepage", "repository", "bugs") if (v := text(links.get(k)))},
        "publisher": person(entry.get("publisher")),
    }


def summary_of(doc: dict[str, Any], *, local: bool = True) -> dict[str, Any]:
    """The package list entry of a packument: its latest version's facts, typed and bounded."""
    tags = doc.get("dist-tags") if isinstance(doc.get("dist-tags"), dict) else {}
    latest = text(tags.get("latest"))
    versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
    manifest = versions.get(latest) if latest else None
    manifest = manifest if isinstance(manifest, dict) else {}
    times = doc.get("time") if isinstance(doc.get("time"), dict) else {}

    def field(key: str) -> Any:
        return manifest.get(key, doc.get(key))

    return clean_entry({
        "local": local,
        "version": latest,
        "description": field("description"),
        "keywords": field("keywords"),
        "maintainers": doc.get("maintainers"),
        "created": times.get("created"),
        "modified": times.get("modified"),
        "date": times.get(latest) if latest else None,
        "links": {
            "homepage": manifest.get("homepage"),
            "repository": _repository_url(manifest.get("repository")),
            "bugs": _bugs_url(manifest.get("bugs")),
        },
        "publisher": manifest.get("_npmUser"),
    }, str(doc.get("name", "")))
