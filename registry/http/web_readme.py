"""A package's readme as safe HTML: markdown-it-py renders, nh3 sanitizes.

Readmes are written by whoever publishes, so they are untrusted input. Raw
HTML inside the markdown is allowed through the renderer (npm readmes use
it for badges, `<details>` and centred logos) and then everything, rendered
markdown and raw HTML alike, goes through nh3 (the ammonia sanitizer): no
script, style, event handler, `javascript:` URL or form survives, and links
get `rel="noopener noreferrer"`. The page's Content-Security-Policy forbids
scripts as a second line of defence.
"""

from __future__ import annotations

import html

import nh3
from markdown_it import MarkdownIt

MAX_README = 512 * 1024  # characters rendered; the rest is cut (a readme, not a book)
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render_readme(text: str, filename: str | None = None) -> str:
    """Sanitized HTML for a readme; markdown unless `filename` says it is plain text."""
    text = text[:MAX_README]
    if filename and not filename.lower().endswith((".md", ".markdown")) and "." in filename:
        return f"<pre>{html.escape(text)}</pre>"
    return sanitize(_MARKDOWN.render(text))


def sanitize(fragment: str) -> str:
    """An HTML fragment with everything that could run or restyle the page removed."""
    return nh3.clean(fragment, url_schemes=set(URL_SCHEMES), strip_comments=True)
