"""`infra.http.app`: every route's authentication and scope, problem bodies, and an
OpenAPI document that validates and describes every answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.integration.http.api_support import OPS_PATHS, assert_problem
from tests.integration.http.conftest import ALPHA_KEYS, UsageApi

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def _routes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path not in OPS_PATHS
        for method in item
    ]


def _concrete(path: str) -> str:
    path = path.replace("{key_id}", ALPHA_KEYS[0])
    return re.sub(r"\{[^}]+\}", "alpha_thing_id", path)


async def test_auth_matrix_for_every_endpoint(api: UsageApi) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    routes = _routes(spec)
    assert ("GET", "/api-keys/{key_id}/usage") in routes
    assert len(routes) == 13
    for method, path in routes:
        url = _concrete(path)
        no_key = await api.client.request(method, url)
        assert_problem(no_key, 401, "invalid_api_key")
        assert no_key.headers["www-authenticate"] == "Bearer"
        unknown = await api.client.request(method, url, headers={"Authorization": "Bearer nope"})
        assert_problem(unknown, 401, "invalid_api_key")
        revoked = await api.client.request(method, url, headers=api.auth("alpha_revoked"))
        assert_problem(revoked, 401, "revoked_api_key")
        assert "revoked" in revoked.json()["detail"]
        if method != "GET":
            ro = await api.client.request(method, url, headers=api.auth("alpha_ro"), json={})
            assert_problem(ro, 403, "insufficient_scope")
        if "{" in path:
            other = await api.client.request(method, url, headers=api.auth("beta_full"), json={})
            assert_problem(other, 404, "not_found")


def _success_schemas(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        media["schema"]
        for status, response in operation["responses"].items()
        if status.startswith("2")
        for media in response.get("content", {}).values()
        if media.get("schema")
    ]


async def test_openapi_validates_and_documents_every_answer(api: UsageApi) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    validate(spec)
    operations = [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()]
    assert len(operations) == 16
    undocumented = [(m, p) for m, p, op in operations if not _success_schemas(op)]
    assert undocumented == []
    schemas = spec["components"]["schemas"]
    for _method, path, op in operations:
        for schema in _success_schemas(op):
            ref = schema.get("$ref", "")
            body = schemas[ref.rsplit("/", 1)[-1]] if ref else schema
            assert body.get("properties") or body.get("type") == "string", (path, body)
        if path not in OPS_PATHS:
            problem = op["responses"]["401"]["content"]["application/problem+json"]["schema"]
            assert {"status", "error", "detail"} <= set(problem["properties"])
    assert (await api.client.get("/docs")).status_code == 200


async def test_invalid_requests_are_problems_naming_the_field(api: UsageApi) -> None:
    bad = await api.client.get(
        f"/api-keys/{ALPHA_KEYS[1]}/usage", params={"window": "2w"}, headers=api.auth("alpha_ro")
    )
    assert_problem(bad, 422, "invalid_request")
    assert "window" in bad.json()["detail"]
    assert bad.json()["errors"][0]["field"] == "query.window"
    too_many = await api.client.get(
        "/deliveries", params={"limit": 1001}, headers=api.auth("alpha_ro")
    )
    assert_problem(too_many, 422, "invalid_request")
    assert "limit" in too_many.json()["detail"]
