"""deploy/grafana/tarhold.json: a well-formed dashboard whose every query names metrics tarhold exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from tests.http.packages import publish_body
from tests.http.users import add_user, bearer
from tests.support.fake_upstream import FakeUpstream

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tarhold.json"

# PromQL words that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
    "count_values", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
    "clamp_min", "clamp_max", "abs", "ceil", "floor", "round", "sort", "sort_desc", "time", "vector",
    "scalar", "label_replace", "label_join", "absent", "changes", "resets", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "last_over_time", "label_values",
})
IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")  # not the unit of 5m


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers left once strings, label
    matchers, grouping clauses, ranges and Grafana variables are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    # label_values(metric, label): the second argument is a label.
    expr = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", expr)
    return {word for word in IDENTIFIER.findall(expr) if word not in PROMQL_WORDS}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in doc["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return found


@pytest.fixture
async def exported(aiohttp_client: Any, tmp_path: Path) -> set[str]:
    """Every metric name and sample name a live app's /-/metrics shows after some traffic."""
    upstream = FakeUpstream()
    await upstream.start()
    upstream.add_package("lodash", ["4.17.21"])
    try:
        config = parse_config({
            "storage": str(tmp_path / "storage"),
            "uplinks": {"dash": {"url": upstream.url, "timeout": "5s"}},
            "packages": {
                "@private/*": {"access": "$all", "publish": "$authenticated"},
                "**": {"access": "$all", "publish": "$authenticated", "proxy": "dash"},
            },
        })
        server = TestServer(create_app(config))
        await server.start_server(**SERVER_KWARGS)
        client: TestClient = await aiohttp_client(server)
        token = await add_user(client, "alice")
        body = publish_body("@private/dash", "1.0.0")
        assert (await client.put("/@private%2fdash", json=body, headers=bearer(token))).status == 201
        assert (await client.get("/@private%2fdash")).status == 200
        assert (await client.get("/lodash")).status == 200
        text = await (await client.get("/-/metrics")).text()
    finally:
        await upstream.stop()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":  # a labelled counter with no sample yet (no retry so far)
            names.add(family.name + "_total")
        names.update(sample.name for sample in family.samples)
    return names


def test_the_dashboard_is_a_grafana_dashboard_over_a_prometheus_variable() -> None:
    doc = dashboard()
    assert doc["title"] == "tarhold" and doc["uid"] and 36 <= doc["schemaVersion"] <= 41
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels(doc) if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " | ".join(p["title"].lower() for p in graphs)
    for topic in ("request rate", "latency", "error", "cache hit ratio", "upstream errors", "circuit",
                  "bytes served", "storage latency", "in flight", "publishes"):
        assert topic in titles, topic


def test_every_panel_query_names_only_metrics_tarhold_exports(exported: set[str]) -> None:
    doc = dashboard()
    used: set[str] = set()
    for panel in panels(doc):
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            missing = names - exported
            assert not missing, f"{panel['title']}: {sorted(missing)} not in /-/metrics"
            used |= names
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            assert metric_names(variable["query"]["query"]) <= exported
    # The dashboard covers every family of tarhold's own metrics.
    families = {n for n in exported if n.startswith("tarhold_") and not n.endswith(("_bucket", "_sum", "_count"))}
    covered = {n.removesuffix("_total") for n in used} | {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    assert {n.removesuffix("_total") for n in families} <= covered


def test_the_name_extraction_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(tarhold_x_bucket{instance=~"$instance",'
        ' route="by"}[$__rate_interval]))) / ignoring(le) sum(tarhold_y_total offset 5m)'
    )
    assert metric_names(expr) == {"tarhold_x_bucket", "tarhold_y_total"}
    assert metric_names("label_values(tarhold_z_total, instance)") == {"tarhold_z_total"}
