"""Generated bodies, names and headers never make tarhold fail (issue 14, item 9 and its property test).

A real server (the app factory, embedded storage) runs on 127.0.0.1 in a
thread of its own; hypothesis throws JSON of every shape at the endpoints a
client writes to. For every answer: never a 5xx, never a traceback in the
body, and after a refusal nothing was stored. The server answers throughout.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.threaded_server import Server

from .packages import publish_body
from .users import PASSWORD

EXAMPLES = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


def deep(levels: int) -> bytes:
    """A body whose `versions` nests `levels` objects-in-arrays deep, as raw JSON."""
    nested = '{"a":[' * levels + '"bottom"' + "]}" * levels
    return ('{"password": "%s", "versions": %s}' % (PASSWORD, nested)).encode()


def check(answer: tuple[int, str]) -> int:
    status, text = answer
    assert status < 500, text
    assert "Traceback" not in text and "File \"" not in text
    return status


def nothing_stored(server: Server, name: str) -> None:
    status, _ = server.request("GET", "/" + quote(name, safe="@"))
    assert status == 404


MANIFEST_FIELDS = ["description", "keywords", "author", "maintainers", "license", "repository", "bin",
                   "dependencies", "homepage", "contributors", "readme", "deprecated"]
PACKUMENT_FIELDS = ["versions", "_attachments", "name", "dist-tags", "time", "access"]


@EXAMPLES
@given(field=st.sampled_from(PACKUMENT_FIELDS + MANIFEST_FIELDS), value=json_values, serial=st.integers(0, 10**9))
def test_a_publish_body_with_any_field_of_any_shape_is_refused_cleanly(
    server: Server, token: str, field: str, value: Any, serial: int
) -> None:
    version = f"1.0.{serial}"
    body = publish_body("fuzzed", version)
    body[field] = value
    if field in MANIFEST_FIELDS:
        body["versions"][version][field] = value
    before = server.request("GET", "/fuzzed")
    if check(server.request("PUT", "/fuzzed", body, {"Authorization": f"Bearer {token}"})) >= 400:
        assert server.request("GET", "/fuzzed") == before  # a refusal stores nothing
    # Whatever was stored, every reader of it still answers.
    check(server.request("GET", "/-/v1/search?text=fuzzed"))
    check(server.request("GET", "/fuzzed"))
    check(server.request("GET", "/-/web/search?q=fuzzed"))
    check(server.request("GET", "/-/web/detail/fuzzed"))
    check(server.request("GET", "/"))


@EXAMPLES
@given(body=json_values)
def test_any_json_at_the_write_endpoints_is_a_clean_answer(server: Server, token: str, body: Any) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for method, path in [
        ("PUT", "/fuzz-new"),
        ("PUT", "/fuzz-new/-rev/1-x"),
        ("PUT", "/-/package/fuzz-new/dist-tags/next"),
        ("POST", "/-/package/fuzz-new/dist-tags"),
        ("POST", "/-/npm/v1/tokens"),
        ("PUT", "/-/user/org.couchdb.user:fuzzer"),
        ("POST", "/-/v1/login"),
        ("POST", "/-/tarhold/tokens"),
    ]:
        check(server.request(method, path, body, auth))
    nothing_stored(server, "fuzz-new")


@EXAMPLES
@given(name=st.text(min_size=1, max_size=40), authorization=st.text(max_size=40))
def test_any_name_and_authorization_header_is_a_clean_answer(server: Server, name: str, authorization: str) -> None:
    path = "/" + quote(name, safe="@/")
    headers = {"Authorization": authorization.encode("latin-1", "replace").decode("latin-1").replace("\n", " ")
               .replace("\r", " ")}
    for method in ("GET", "PUT", "DELETE"):
        check(server.request(method, path, {"name": name}, headers))


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/nested"), ("PUT", "/nested/-rev/1-x"), ("POST", "/-/npm/v1/tokens"),
     ("PUT", "/-/user/org.couchdb.user:nested"), ("POST", "/-/package/nested/dist-tags")],
)
@pytest.mark.parametrize("levels", [65, 300, 2000])
def test_deeply_nested_bodies_are_400(server: Server, token: str, method: str, path: str, levels: int) -> None:
    status = check(server.request(method, path, headers={"Authorization": f"Bearer {token}"}, raw=deep(levels)))
    assert status == 400


@pytest.mark.parametrize("versions", [1, [], "x", True])
def test_a_change_with_versions_that_are_not_an_object_is_400(server: Server, token: str, versions: Any) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    name = f"shapely-{type(versions).__name__}"
    assert check(server.request("PUT", f"/{name}", publish_body(name, "1.0.0"), auth)) == 201
    body = {"_id": name, "name": name, "versions": versions}
    assert check(server.request("PUT", f"/{name}/-rev/1-x", body, auth)) == 400
    assert check(server.request("PUT", f"/{name}", body, auth)) == 400
    status, text = server.request("GET", f"/{name}")
    assert status == 200 and list(json.loads(text)["versions"]) == ["1.0.0"]


def test_the_server_still_answers(server: Server) -> None:
    assert server.request("GET", "/-/ping")[0] == 200
