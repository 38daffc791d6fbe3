"""schemathesis over tarhold's own OpenAPI document: no documented route answers 5xx (issue 14).

Every operation in /-/openapi.json gets generated requests (parameters and
bodies from its schema, and some that break it) against a real server,
anonymous and with a user's token. The server must answer each with less
than 500, and keep answering.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from registry.http.openapi import build_document
from tests.support.threaded_server import Server

schema = schemathesis.openapi.from_dict(build_document())


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_documented_route_answers_a_server_error(case: schemathesis.Case, server: Server, token: str) -> None:
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
        assert "Traceback" not in response.text
    assert server.request("GET", "/-/ping")[0] == 200
