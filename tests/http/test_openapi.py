"""The OpenAPI document is valid and lists every route; /-/docs renders it offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from yarl import URL

from registry.config import parse_config
from registry.http.app import create_app

METHODS = {"get", "put", "post", "patch", "delete", "head"}
# The catch-all routes serve npm's URL forms, which the document lists one by one.
CATCH_ALL_FORMS = {
    "/{}": {
        "/{package}", "/@{scope}/{name}",
        "/{package}/{spec}", "/@{scope}/{name}/{spec}",
        "/{package}/-/{filename}", "/@{scope}/{name}/-/{filename}",
        "/{package}/-rev/{rev}", "/@{scope}/{name}/-rev/{rev}",
        "/{package}/-/{filename}/-rev/{rev}", "/@{scope}/{name}/-/{filename}/-rev/{rev}",
    },
    "/-/package/{}": {
        "/-/package/{package}/dist-tags", "/-/package/@{scope}/{name}/dist-tags",
        "/-/package/{package}/dist-tags/{tag}", "/-/package/@{scope}/{name}/dist-tags/{tag}",
    },
    "/-/package/{}/access": {"/-/package/{package}/access", "/-/package/@{scope}/{name}/access"},
    "/-/package/{}/collaborators": {"/-/package/{package}/collaborators", "/-/package/@{scope}/{name}/collaborators"},
    "/-/package/{}/visibility": {"/-/package/{package}/visibility", "/-/package/@{scope}/{name}/visibility"},
    "/-/package/{}/trust": {"/-/package/{package}/trust", "/-/package/@{scope}/{name}/trust"},
    "/-/package/{}/trust/{}": {"/-/package/{package}/trust/{id}", "/-/package/@{scope}/{name}/trust/{id}"},
    "/-/npm/v1/oidc/token/exchange/package/{}": {
        "/-/npm/v1/oidc/token/exchange/package/{package}", "/-/npm/v1/oidc/token/exchange/package/@{scope}/{name}",
    },
}
SAMPLES = {
    "package": "left-pad", "scope": "acme", "name": "ui", "spec": "1.0.0",
    "filename": "left-pad-1.0.0.tgz", "rev": "1-abc", "tag": "beta", "id": "6f1c2b9e-0000-4000-8000-000000000000",
}


def normalized(path: str) -> str:
    """`/-/tarhold/users/{name}` and `.../{user}` alike: parameter names do not matter."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture
def app(tmp_path: Any) -> web.Application:
    return create_app(parse_config({"storage": str(tmp_path / "storage")}))


@pytest.fixture
async def docs_client(aiohttp_client: Any, app: web.Application) -> TestClient:
    client: TestClient = await aiohttp_client(app)
    return client


async def fetch_document(client: TestClient) -> dict[str, Any]:
    response = await client.get("/-/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    return dict(await response.json())


async def test_the_document_is_valid_openapi_3_1(docs_client: TestClient) -> None:
    document = await fetch_document(docs_client)
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": f"http://{docs_client.host}:{docs_client.port}"}]
    schemas = document["components"]["schemas"]
    for name in ("PublishBody", "Packument", "AbbreviatedPackument", "Token", "AdminUser", "Error"):
        assert name in schemas
    assert schemas["Error"]["required"] == ["error"]


async def test_every_registered_route_is_documented_and_every_documented_path_is_served(
    docs_client: TestClient, app: web.Application
) -> None:
    document = await fetch_document(docs_client)
    documented = {normalized(path): path for path in document["paths"]}
    covered: set[str] = set()
    for resource in app.router.resources():
        route_path = normalized(resource.canonical)
        methods = {route.method.lower() for route in resource} - {"head"}
        if route_path in CATCH_ALL_FORMS:
            forms = CATCH_ALL_FORMS[route_path]
            missing = {form for form in forms if normalized(form) not in documented}
            assert not missing, f"{resource.canonical}: forms not documented: {missing}"
            covered |= {normalized(form) for form in forms}
            continue
        assert route_path in documented, f"route {resource.canonical} is not in the OpenAPI document"
        operations = set(document["paths"][documented[route_path]]) & METHODS
        assert methods <= operations, f"{resource.canonical}: {methods - operations} not documented"
        covered.add(route_path)
    assert set(documented) == covered, f"documented but not served: {set(documented) - covered}"


async def test_documented_package_forms_reach_a_handler(docs_client: TestClient) -> None:
    """Each documented operation on a catch-all form is one the dispatcher knows (never 405 or an unrouted 404)."""
    document = await fetch_document(docs_client)
    forms = set().union(*CATCH_ALL_FORMS.values())
    for path in forms:
        url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
        for method in set(document["paths"][path]) & METHODS:
            response = await docs_client.request(method.upper(), url, json={} if method in {"put", "post"} else None)
            body = await response.json()
            assert response.status != 405, f"{method.upper()} {url}: {body}"
            assert body.get("error") != "not found", f"{method.upper()} {url} is not routed"


async def test_every_operation_has_an_id_and_documents_its_errors_as_json(docs_client: TestClient) -> None:
    document = await fetch_document(docs_client)
    ids = []
    for path, item in document["paths"].items():
        for method in set(item) & METHODS:
            operation = item[method]
            ids.append(operation["operationId"])
            assert operation["responses"], f"{method} {path}"
    assert len(ids) == len(set(ids))
    for response in document["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


class Assets(HTMLParser):
    """Every URL the page would load (not the links a reader may follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "link" and values.get("href"):
            self.loads.append(str(values["href"]))
        for attr in ("src", "srcset", "data", "poster"):
            if values.get(attr):
                self.loads.append(str(values[attr]))


async def test_the_docs_page_lists_every_path_and_loads_only_same_origin_assets(docs_client: TestClient) -> None:
    document = await fetch_document(docs_client)
    response = await docs_client.get("/-/docs")
    assert response.status == 200 and response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    for path, item in document["paths"].items():
        assert f'<span class="path">{path}</span>' in page, path
        for method in set(item) & METHODS:
            assert f'id="{item[method]["operationId"]}"' in page
    for schema in document["components"]["schemas"]:
        assert f'id="schema-{schema}"' in page
    assets = Assets()
    assets.feed(page)
    assert assets.scripts == 0 and assets.loads
    for url in assets.loads:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", url, re.I), f"{url} is not same-origin"
        asset = await docs_client.get(response.url.join(URL(url)).path)
        assert asset.status == 200, url
        assert asset.content_type == "text/css"


async def test_static_files_outside_the_list_are_404(docs_client: TestClient) -> None:
    for name in ("../app.py", "..%2fapp.py", "missing.css", "__init__.py"):
        response = await docs_client.get(f"/-/static/{name}")
        assert response.status == 404, name
