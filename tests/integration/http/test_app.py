"""`infra.http.app`: an OpenAPI document that validates and describes every answer, and
problem bodies for invalid requests (every route's authentication and access levels:
`test_access_matrix`)."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.integration.http.api_support import OPS_PATHS, assert_problem
from tests.integration.http.conftest import ALPHA_KEYS, UsageApi

NO_CONTENT = {("delete", "/api-keys/{key_id}")}
"""Operations whose success is 204 No Content."""

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.asyncio(loop_scope="module"),  # the module-scoped `api`
]


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
    assert len(operations) == 26  # 23 + the roll, /verify and the secret-scanning report
    undocumented = [(m, p) for m, p, op in operations if not _success_schemas(op)]
    assert undocumented == sorted(NO_CONTENT)
    for method, path in NO_CONTENT:
        assert "204" in spec["paths"][path][method]["responses"]
    schemas = spec["components"]["schemas"]
    for _method, path, op in operations:
        for schema in _success_schemas(op):
            ref = schema.get("$ref", "")
            body = schemas[ref.rsplit("/", 1)[-1]] if ref else schema
            if body.get("type") == "array":  # GitHub's feedback format: a list of objects
                item = body["items"].get("$ref", "")
                body = schemas[item.rsplit("/", 1)[-1]] if item else body["items"]
            assert body.get("properties") or body.get("type") == "string", (path, body)
        if path not in OPS_PATHS:
            problem = op["responses"]["401"]["content"]["application/problem+json"]["schema"]
            assert {"status", "error", "detail"} <= set(problem["properties"])
    assert (await api.client.get("/docs")).status_code == 200


async def test_invalid_requests_are_problems_naming_the_field(api: UsageApi) -> None:
    bad = await api.client.get(
        f"/api-keys/{ALPHA_KEYS[1]}/usage",
        params={"window": "2w"},
        headers=api.auth("alpha:read_only"),
    )
    assert_problem(bad, 422, "invalid_request")
    assert "window" in bad.json()["detail"]
    assert bad.json()["errors"][0]["field"] == "query.window"
    too_many = await api.client.get(
        "/deliveries", params={"limit": 1001}, headers=api.auth("alpha:read_only")
    )
    assert_problem(too_many, 422, "invalid_request")
    assert "limit" in too_many.json()["detail"]
