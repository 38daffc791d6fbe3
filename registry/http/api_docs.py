"""`/-/openapi.json`, and `/-/docs`: the same document as a page that works offline.

The page is rendered here, in Python, from the OpenAPI document: plain HTML
and one stylesheet served by tarhold from registry/http/static/. No script, no
CDN, nothing from another origin (the Content-Security-Policy says so too).
Links are relative, so the page also works under a url_prefix.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from registry.domain.errors import NotFoundError
from registry.http.openapi import build_document
from registry.http.urls import base_url

METHODS = ("get", "head", "post", "put", "patch", "delete")
STATIC_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
CODE = re.compile(r"`([^`]+)`")


def text(value: Any) -> str:
    """Escaped text with `code` spans (descriptions use backticks)."""
    return CODE.sub(r"<code>\1</code>", html.escape(str(value), quote=True))


def anchor(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")


def resolve(doc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A parameter or response, following one local `$ref`."""
    target = item.get("$ref")
    if not isinstance(target, str) or not target.startswith("#/"):
        return item
    node: Any = doc
    for part in target[2:].split("/"):
        node = node[part]
    return dict(node)


def type_of(schema: dict[str, Any]) -> str:
    """A schema as one line of HTML: `string | null`, `array of Manifest`, links to named schemas."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{anchor(name)}">{html.escape(name)}</a>'
    for key, joiner in (("oneOf", " | "), ("anyOf", " | "), ("allOf", " &amp; ")):
        if key in schema:
            return joiner.join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return " | ".join(f"<code>{html.escape(str(v))}</code>" for v in schema["enum"])
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    parts = []
    for kind in kinds:
        if kind == "array" and isinstance(schema.get("items"), dict):
            parts.append(f"array of {type_of(schema['items'])}")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
            parts.append(f"map of {type_of(schema['additionalProperties'])}")
        else:
            parts.append(html.escape(str(kind)))
    return " | ".join(parts)


def properties_table(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    if not props:
        return ""
    required = set(schema.get("required") or [])
    rows = "".join(
        f'<tr><td class="name">{html.escape(name)}'
        f'{" <span class=required>required</span>" if name in required else ""}</td>'
        f"<td>{type_of(prop)}</td><td>{text(prop.get('description', ''))}</td></tr>"
        for name, prop in props.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>description</th></tr>{rows}</table>"


def render_operation(doc: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> str:
    out = [f'<article class="op" id="{anchor(operation["operationId"])}">']
    security = operation.get("security", doc.get("security"))
    auth = "public" if security == [{}] else "credentials required" if security and {} not in security else "credentials optional"
    out.append(
        f'<h3><span class="method {method}">{method.upper()}</span> <span class="path">{html.escape(path)}</span>'
        f'<span class="auth">{auth}</span></h3>'
        f'<p class="summary-line">{text(operation.get("summary", ""))}</p>'
    )
    if operation.get("description"):
        out.append(f"<p>{text(operation['description'])}</p>")
    params = [resolve(doc, p) for p in operation.get("parameters", [])]
    if params:
        rows = "".join(
            f'<tr><td class="name">{html.escape(p["name"])}</td><td>{html.escape(p["in"])}</td>'
            f"<td>{type_of(p.get('schema', {}))}</td><td>{text(p.get('description', ''))}</td></tr>"
            for p in params
        )
        out.append(f"<h4>parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>{rows}</table>")
    body = operation.get("requestBody")
    if body:
        rows = "".join(
            f"<tr><td><code>{html.escape(media)}</code></td><td>{type_of(content.get('schema', {}))}</td></tr>"
            for media, content in body.get("content", {}).items()
        )
        out.append(f"<h4>request body</h4><table><tr><th>content type</th><th>schema</th></tr>{rows}</table>")
    rows = ""
    for status, response in operation.get("responses", {}).items():
        response = resolve(doc, response)
        schemas = ", ".join(
            f"{type_of(c.get('schema', {}))} <code>{html.escape(media)}</code>"
            for media, c in response.get("content", {}).items()
        )
        rows += f'<tr><td class="name">{html.escape(str(status))}</td><td>{text(response.get("description", ""))}</td><td>{schemas}</td></tr>'
    out.append(f"<h4>responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>{rows}</table>")
    out.append("</article>")
    return "".join(out)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in doc["paths"].items() for method in METHODS if method in item
    ]


def render_page(doc: dict[str, Any]) -> str:
    """The API reference as one HTML page."""
    info, ops = doc["info"], operations(doc)
    nav, sections = [], []
    for tag in doc.get("tags", []):
        mine = [(p, m, o) for p, m, o in ops if tag["name"] in o.get("tags", [])]
        if not mine:
            continue
        nav.append(f'<h2><a href="#tag-{anchor(tag["name"])}">{html.escape(tag["name"])}</a></h2><ul>' + "".join(
            f'<li><a href="#{anchor(o["operationId"])}">{m.upper()} {html.escape(p)}</a></li>' for p, m, o in mine
        ) + "</ul>")
        sections.append(
            f'<section class="tag" id="tag-{anchor(tag["name"])}"><h2>{html.escape(tag["name"])}</h2>'
            f"<p>{text(tag.get('description', ''))}</p>"
            + "".join(render_operation(doc, p, m, o) for p, m, o in mine) + "</section>"
        )
    schemas = doc.get("components", {}).get("schemas", {})
    nav.append('<h2><a href="#schemas">schemas</a></h2><ul>' + "".join(
        f'<li><a href="#schema-{anchor(name)}">{html.escape(name)}</a></li>' for name in schemas
    ) + "</ul>")
    schema_html = "".join(
        f'<article id="schema-{anchor(name)}"><h3>{html.escape(name)}</h3>'
        f"<p>{text(schema.get('description', ''))} <em>{type_of({k: v for k, v in schema.items() if k != 'properties'})}</em></p>"
        f"{properties_table(schema)}</article>"
        for name, schema in schemas.items()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(info['title'])} API reference</title>"
        '<link rel="stylesheet" href="static/docs.css"></head><body>'
        f"<nav>{''.join(nav)}</nav><main><header><h1>{html.escape(info['title'])} API reference</h1>"
        f'<p class="summary">{text(info.get("summary", ""))} · version {html.escape(info["version"])}'
        f" · OpenAPI {html.escape(doc['openapi'])}</p><p>{text(info.get('description', ''))}</p>"
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a></p></header>'
        f"{''.join(sections)}"
        f'<section class="schemas" id="schemas"><h2>schemas</h2>{schema_html}</section></main></body></html>\n'
    )


@dataclass
class ApiDocs:
    """The document and the page, built once per app; the static files, read once."""

    document: dict[str, Any] = field(default_factory=build_document)
    page: bytes = b""
    static: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.page = render_page(self.document).encode()
        folder = resources.files("registry.http") / "static"
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if entry.is_file() and suffix in STATIC_TYPES:
                self.static[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])


API_DOCS = web.AppKey("api_docs", ApiDocs)


async def openapi_json(request: web.Request) -> web.Response:
    document = {**request.app[API_DOCS].document, "servers": [{"url": base_url(request) or "/"}]}
    return web.Response(body=orjson.dumps(document), content_type="application/json",
                        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=request.app[API_DOCS].page, content_type="text/html", charset="utf-8",
                        headers=PAGE_HEADERS)


async def static_file(request: web.Request) -> web.Response:
    found = request.app[API_DOCS].static.get(request.match_info["file"])
    if found is None:
        raise NotFoundError("no such file")
    body, content_type = found
    return web.Response(body=body, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


def setup(app: web.Application) -> None:
    """Register /-/openapi.json, /-/docs and /-/static/{file}."""
    app[API_DOCS] = ApiDocs()
    app.router.add_get("/-/openapi.json", openapi_json)
    app.router.add_get("/-/docs", docs_page)
    app.router.add_get("/-/static/{file}", static_file)
