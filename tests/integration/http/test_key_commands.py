"""`infra.http.routes.key_commands` and `account` against the real app, broker and chDB:
create (secret once, hint, warnings), read right after, rename, revoke, delete (409
before revocation), 404 for unknown and other accounts' keys, 422 for bad names and a
reused Idempotency-Key, idempotent replays, plan limits, and the events' actor and
source IP on the topic."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from infra.http.idempotency import REPLAY_NOTE
from schemas.codec import decode_key_event
from schemas.key_format import ParsedSecret, check_secret, hash_secret
from schemas.keys import KeyCreated, KeyRevoked
from tests.integration.http.api_support import ALPHA, assert_problem, bearer
from tests.integration.http.conftest import Live
from tests.integration.ingest_helpers import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def _client(live: Live, who: str = "alpha:admin") -> httpx.Client:
    client = live.api.client()
    client.headers.update(bearer(live.secret(who)))
    return client


def _create(
    client: httpx.Client, name: str, key_type: str = "live", **extra: object
) -> httpx.Response:
    return client.post("/api-keys", json={"name": name, "type": key_type, **extra})


def test_create_shows_the_secret_once_and_reads_back_at_once(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(live) as admin:
        with caplog.at_level(logging.DEBUG):  # every logger of this process, every thread
            created = _create(admin, "Production web app")
        assert created.status_code == 201, created.text
        assert caplog.records  # the capture saw this process's logging (kafka, uvicorn, ...)
        assert created.json()["secret"] not in caplog.text  # but never the secret
        body = created.json()
        secret = body["secret"]
        parsed = check_secret(secret)
        assert isinstance(parsed, ParsedSecret) and parsed.key_type == "live"
        assert body["id"] == body["key_id"] and body["key_id"].startswith("key_")
        assert body["hint"] == secret[:12] + "…"
        assert (body["type"], body["access"], body["status"]) == ("live", "full", "active")
        assert body["created"] == body["created_at"]
        assert body["warnings"] == [] and body["replayed"] is False
        assert body["created_by"] == live.alpha.keys["admin"][0]

        one = admin.get(f"/api-keys/{body['id']}")  # before any projection caught up
        assert one.status_code == 200, one.text
        shown = one.json()
        assert secret not in one.text
        assert (shown["name"], shown["hint"], shown["status"]) == (
            "Production web app",
            body["hint"],
            "active",
        )
        assert shown["requests_24h"] == 0
        listing = admin.get("/api-keys").json()["data"]
        assert body["id"] in {k["id"] for k in listing}
        assert secret not in admin.get("/api-keys").text

        test_key = _create(admin, "CI pipeline", "test", access="read_only").json()
        assert check_secret(test_key["secret"]).key_type == "test"  # type: ignore[union-attr]
        assert (test_key["type"], test_key["access"]) == ("test", "read_only")


def test_names_invalid_are_refused_generic_ones_warned(live: Live) -> None:
    with _client(live) as admin:
        for bad in ("", "   ", " padded", "x" * 101, "tab\there"):
            assert_problem(_create(admin, bad), 422, "invalid_name")
        generic = _create(admin, "Key 1")
        assert generic.status_code == 201
        [warning] = generic.json()["warnings"]
        assert "descriptive" in warning
        assert_problem(admin.post("/api-keys", json={"name": "x", "type": "prod"}), 422)
        assert_problem(admin.post("/api-keys", json={"name": "x"}), 422, "invalid_request")
        extra = {"name": "x y", "type": "live", "acess": "admin"}
        assert_problem(admin.post("/api-keys", json=extra), 422, "invalid_request")


def test_rename_revoke_delete_and_what_is_refused_on_the_way(live: Live) -> None:
    with _client(live) as admin:
        key_id = _create(admin, "Staging analytics").json()["id"]
        renamed = admin.patch(f"/api-keys/{key_id}", json={"name": "Staging exporter"})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "Staging exporter"
        assert admin.get(f"/api-keys/{key_id}").json()["name"] == "Staging exporter"
        assert_problem(admin.patch(f"/api-keys/{key_id}", json={"name": ""}), 422, "invalid_name")

        early = admin.delete(f"/api-keys/{key_id}")
        assert_problem(early, 409, "key_not_revoked")
        assert "revoke it first" in early.json()["detail"]

        revoked = admin.post(f"/api-keys/{key_id}/revoke", json={"reason": "compromised"})
        assert revoked.status_code == 200, revoked.text
        assert (revoked.json()["status"], revoked.json()["revoke_reason"]) == (
            "revoked",
            "compromised",
        )
        assert revoked.json()["revoked_at"] is not None
        again = admin.post(f"/api-keys/{key_id}/revoke")  # permanent; a repeat changes nothing
        assert again.status_code == 200 and again.json()["revoke_reason"] == "compromised"
        bad_reason = admin.post(f"/api-keys/{key_id}/revoke", json={"reason": "bored"})
        assert_problem(bad_reason, 422, "invalid_request")

        deleted = admin.delete(f"/api-keys/{key_id}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert_problem(admin.get(f"/api-keys/{key_id}"), 404, "key_not_found")
        assert_problem(admin.delete(f"/api-keys/{key_id}"), 404, "key_not_found")
        assert key_id not in admin.get("/api-keys").text


def test_unknown_and_other_accounts_keys_are_not_found(live: Live) -> None:
    with _client(live) as admin, _client(live, "beta:admin") as beta:
        mine = _create(admin, "Alpha billing").json()["id"]
        for key_id, who in (("key_doesnotexist", admin), (mine, beta)):
            for response in (
                who.get(f"/api-keys/{key_id}"),
                who.patch(f"/api-keys/{key_id}", json={"name": "Taken over"}),
                who.post(f"/api-keys/{key_id}/revoke"),
                who.delete(f"/api-keys/{key_id}"),
                who.get(f"/api-keys/{key_id}/usage"),
                who.get(f"/api-keys/{key_id}/timeseries"),
            ):
                assert_problem(response, 404, "key_not_found")
                assert "Alpha billing" not in response.text
        still = admin.get(f"/api-keys/{mine}").json()
        assert (still["name"], still["status"]) == ("Alpha billing", "active")
        assert mine not in beta.get("/api-keys").text


def test_idempotency_key_replays_without_the_secret_and_refuses_a_new_body(live: Live) -> None:
    with _client(live) as admin:
        before = len(admin.get("/api-keys").json()["data"])
        headers = {"Idempotency-Key": "create-web-2024-06-01"}
        first = admin.post("/api-keys", json={"name": "Web", "type": "live"}, headers=headers)
        assert first.status_code == 201 and first.json()["secret"]
        same = {"access": "full", "type": "live", "name": "Web"}  # same request, other spelling
        replay = admin.post("/api-keys", json=same, headers=headers)
        assert replay.status_code == 200, replay.text
        body = replay.json()
        assert (body["id"], body["secret"], body["replayed"]) == (first.json()["id"], None, True)
        assert body["note"] == REPLAY_NOTE
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert first.json()["secret"] not in replay.text
        assert len(admin.get("/api-keys").json()["data"]) == before + 1

        other = admin.post("/api-keys", json={"name": "Web 2", "type": "live"}, headers=headers)
        assert_problem(other, 422, "idempotency_key_reused")
        bad = admin.post("/api-keys", json=same, headers={"Idempotency-Key": "has space"})
        assert_problem(bad, 422, "invalid_request")
        assert len(admin.get("/api-keys").json()["data"]) == before + 1


def test_account_counts_and_plan_limits(live: Live) -> None:
    with _client(live) as admin, _client(live, "alpha:read_only") as reader:
        account = reader.get("/account").json()
        # alpha: the read-only and full-access keys are live keys; 2 admin keys, 1 revoked
        assert account["plan"] == "enterprise"
        assert account["active"] == {"live": 2, "test": 0, "admin": 1}
        assert account["limits"] == {"live": None, "test": None, "admin": 5}

        down = admin.put("/account/plan", json={"plan": "free"})
        assert down.status_code == 200, down.text
        assert down.json()["limits"] == {"live": 2, "test": 5, "admin": 5}
        refused = _create(admin, "Third live key")
        assert_problem(refused, 409, "plan_limit_reached")
        problem = refused.json()
        assert (problem["plan"], problem["key_type"], problem["limit"], problem["active"]) == (
            "free",
            "live",
            2,
            2,
        )
        assert "free" in problem["detail"] and "2" in problem["detail"]
        assert _create(admin, "Test runner", "test").status_code == 201
        assert reader.get("/account").json()["active"] == {"live": 2, "test": 1, "admin": 1}

        assert_problem(admin.put("/account/plan", json={"plan": "gold"}), 422)
        assert admin.put("/account/plan", json={"plan": "pro"}).json()["plan"] == "pro"
        assert _create(admin, "Third live key").status_code == 201
        assert reader.get("/account").json()["active"]["live"] == 3


def test_commands_record_the_acting_key_and_the_client_address(live: Live) -> None:
    with _client(live) as admin:
        created_answer = _create(admin, "Audited key").json()
        key_id, secret = created_answer["id"], created_answer["secret"]
        admin.post(f"/api-keys/{key_id}/revoke")
    topic = live.api.runtime.topics.key_events
    records = read_all(live.api.settings.kafka.bootstrap_servers, topic)
    assert not [v for v, _ in records if secret.encode() in v]  # only its hash is stored
    events = [decode_key_event(v) for v, _ in records]
    mine = [e for e in events if isinstance(e, KeyCreated | KeyRevoked) and e.key_id == key_id]
    assert [type(e) for e in mine] == [KeyCreated, KeyRevoked]
    for event in mine:
        assert event.account_id == ALPHA
        assert event.actor == live.alpha.keys["admin"][0]
        assert str(event.source_ip) == "127.0.0.1"
    assert isinstance(mine[0], KeyCreated) and mine[0].secret_hash == hash_secret(secret)


def test_a_revoked_admin_key_is_refused_on_the_very_next_request(live: Live) -> None:
    with _client(live) as admin, live.api.client() as ops:
        second = _create(admin, "Ops automation", access="admin").json()
        ops.headers.update(bearer(second["secret"]))
        assert ops.get("/account").status_code == 200
        assert ops.post("/api-keys", json={"name": "Made by ops", "type": "test"}).is_success
        assert admin.post(f"/api-keys/{second['id']}/revoke").status_code == 200
        refused = ops.get("/account")  # no projection runs here: the registry answers
        assert_problem(refused, 401, "revoked_api_key")
        assert second["id"] in refused.json()["detail"]
        assert second["secret"] not in refused.text

        me = live.alpha.keys["admin"][0]  # an admin key revoking itself
        assert admin.post(f"/api-keys/{me}/revoke").status_code == 200
        assert_problem(admin.get("/api-keys"), 401, "revoked_api_key")


MALFORMED: list[tuple[Callable[[str], str], str]] = [
    (lambda s: s[:-3], "cut off"),
    (lambda s: s + "x", "longer"),
    (lambda s: "sk_live_" + s[8:], "start with pk_live_"),
    (lambda s: s[:20] + "é" + s[21:], "encoding"),
    (lambda s: f'"{s}"', "quotes"),
    (lambda s: s[:12] + ("a" if s[12] != "a" else "b") + s[13:], "checksum"),
]


def test_a_malformed_key_is_refused_with_the_reason(live: Live) -> None:
    """Every way of mangling the secret, against one app (they only read)."""
    with live.api.client() as client:
        for mangle, advice in MALFORMED:
            presented = mangle(live.secret("alpha:admin"))
            header = f"Bearer {presented}".encode()  # UTF-8 bytes: httpx sends str as ASCII
            refused = client.get("/account", headers={b"Authorization": header})
            assert_problem(refused, 401, "invalid_api_key")
            assert advice in refused.json()["detail"], advice
            assert live.secret("alpha:admin")[8:30] not in refused.text, advice
