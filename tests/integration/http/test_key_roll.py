"""Rolls, allow-lists and expiry over HTTP against the real app, broker and chDB: a roll
with each overlap (the old key expires at the roll's time + the overlap; with 0 it reads
as expired at once), its refusals, its Idempotency-Key, and the allow-list set, replaced
and cleared."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from schemas.key_format import ParsedSecret, check_secret
from tests.integration.http.api_support import assert_problem, bearer
from tests.integration.http.conftest import Live

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

OVERLAPS = {
    "0": timedelta(0),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def _client(live: Live) -> httpx.Client:
    client = live.api.client()
    client.headers.update(bearer(live.secret("alpha:admin")))
    return client


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_roll_with_each_overlap(live: Live) -> None:
    with _client(live) as admin:
        for overlap, length in OVERLAPS.items():
            old = admin.post(
                "/api-keys",
                json={
                    "name": f"Renderer {overlap}",
                    "type": "test",
                    "allowed_cidrs": ["10.1.2.3/8"],
                },
            ).json()
            rolled = admin.post(f"/api-keys/{old['id']}/roll", json={"overlap": overlap})
            assert rolled.status_code == 201, rolled.text
            new = rolled.json()
            assert isinstance(check_secret(new["secret"]), ParsedSecret)
            assert new["hint"] == new["secret"][:12] + "…"
            assert (new["name"], new["type"], new["access"], new["allowed_cidrs"]) == (
                f"Renderer {overlap}",
                "test",
                "full",
                ["10.0.0.0/8"],
            )
            assert (new["replaces"], new["replaced_by"], new["expires_at"]) == (
                old["id"],
                None,
                None,
            )
            after = admin.get(f"/api-keys/{old['id']}").json()
            assert after["replaced_by"] == new["id"]
            assert _at(after["expires_at"]) == _at(new["created_at"]) + length
            assert after["status"] == ("expired" if overlap == "0" else "active")
            assert after["expiring_soon"] is (overlap != "0")
            assert new["secret"] not in admin.get("/api-keys").text
            again = admin.post(f"/api-keys/{old['id']}/roll", json={"overlap": "1h"})
            assert_problem(again, 409, "key_already_replaced")


def test_roll_refusals_and_idempotency(live: Live) -> None:
    with _client(live) as admin:
        key = admin.post("/api-keys", json={"name": "Batch jobs", "type": "test"}).json()
        odd = admin.post(f"/api-keys/{key['id']}/roll", json={"overlap": "2h"})
        assert_problem(odd, 422, "invalid_overlap")
        assert "0, 15m, 1h, 6h, 24h, 7d" in odd.json()["detail"]
        assert_problem(
            admin.post("/api-keys/key_nosuch01/roll", json={"overlap": "1h"}), 404, "key_not_found"
        )
        headers = {"Idempotency-Key": f"roll-{key['id']}"}
        first = admin.post(f"/api-keys/{key['id']}/roll", json={"overlap": "1h"}, headers=headers)
        assert first.status_code == 201, first.text
        replay = admin.post(f"/api-keys/{key['id']}/roll", json={"overlap": "1h"}, headers=headers)
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert (replay.json()["id"], replay.json()["secret"]) == (first.json()["id"], None)
        other = admin.post(f"/api-keys/{key['id']}/roll", json={"overlap": "7d"}, headers=headers)
        assert_problem(other, 422, "idempotency_key_reused")
        revoked = admin.post("/api-keys", json={"name": "Old", "type": "test"}).json()
        admin.post(f"/api-keys/{revoked['id']}/revoke")
        assert_problem(
            admin.post(f"/api-keys/{revoked['id']}/roll", json={"overlap": "0"}), 409, "key_revoked"
        )


def test_allow_list_and_expiry_set_replaced_and_cleared(live: Live) -> None:
    with _client(live) as admin:
        made = admin.post(
            "/api-keys",
            json={
                "name": "Office",
                "type": "test",
                "allowed_cidrs": ["203.0.113.7"],
                "expires_in": "3d",
            },
        )
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["allowed_cidrs"] == ["203.0.113.7/32"]
        assert _at(key["expires_at"]) == _at(key["created_at"]) + timedelta(days=3)
        assert key["expiring_soon"] is True
        bad = admin.post(
            "/api-keys", json={"name": "X", "type": "test", "allowed_cidrs": ["10.0.0.0/33"]}
        )
        assert_problem(bad, 422, "invalid_cidr")
        assert "allowed_cidrs[0]" in bad.json()["detail"]
        assert_problem(
            admin.post("/api-keys", json={"name": "X", "type": "test", "expires_in": "3w"}),
            422,
            "invalid_duration",
        )
        changed = admin.patch(
            f"/api-keys/{key['id']}", json={"allowed_cidrs": ["2001:DB8::/32", "192.0.2.0/24"]}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["allowed_cidrs"] == ["2001:db8::/32", "192.0.2.0/24"]
        both = admin.patch(
            f"/api-keys/{key['id']}", json={"name": "Office VPN", "allowed_cidrs": []}
        )
        assert (both.json()["name"], both.json()["allowed_cidrs"]) == ("Office VPN", [])
        listed = {k["id"]: k for k in admin.get("/api-keys").json()["data"]}
        assert (listed[key["id"]]["allowed_cidrs"], listed[key["id"]]["name"]) == ([], "Office VPN")
        assert_problem(admin.patch(f"/api-keys/{key['id']}", json={}), 422, "nothing_to_change")
