"""A body FastAPI cannot read at all (bytes that are not UTF-8) is the documented 422
`invalid_request` problem, saying what to send, not FastAPI's undocumented 400."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from infra.http.problems import install_problem_handlers


class Named(BaseModel):
    name: str


def _client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/named")
    def named(body: Named) -> Named:
        return body

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_body_that_is_not_utf8_is_an_invalid_request() -> None:
    async with _client() as client:
        response = await client.post(
            "/named", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["errors"] == [{"field": "body", "message": body["detail"].removeprefix("body: ")}]
    assert "Content-Type: application/json" in body["detail"]


async def test_other_errors_keep_their_status() -> None:
    async with _client() as client:
        assert (await client.get("/nowhere")).status_code == 404
        json_type = {"Content-Type": "application/json"}
        malformed = await client.post("/named", content=b"{", headers=json_type)
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["message"] == "JSON decode error"
