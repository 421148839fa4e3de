"""`infra.http.routes.keys`: each account sees its own keys with their request counts
(through the worker: the registry's metadata, the projection's numbers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.windows import Window
from tests.integration.http.api_support import ALPHA, BETA, assert_problem, in_window
from tests.integration.http.conftest import ALPHA_KEYS, BETA_KEY, UsageApi

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.asyncio(loop_scope="module"),  # the module-scoped `api`
]


async def test_each_account_lists_its_own_keys_with_counts(api: UsageApi) -> None:
    listing = await api.client.get("/api-keys", headers=api.auth("alpha:read_only"))
    assert listing.status_code == 200, listing.text
    rows = {row["key_id"]: row for row in listing.json()["data"]}
    assert set(ALPHA_KEYS) <= set(rows)
    assert {k: row["access"] for k, row in rows.items() if k not in ALPHA_KEYS} == {
        "key_alphaadmin": "admin",
        "key_alphareadonly": "read_only",
        "key_alphafull": "full",
        "key_alpharevoked": "admin",
    }
    assert rows["key_alpharevoked"]["status"] == "revoked"
    now = datetime.now(UTC)
    for key in ALPHA_KEYS:
        mine = [e for e in api.events if e.key_id == key and e.account_id == ALPHA]
        for window, column in [
            (Window.H24, "requests_24h"),
            (Window.D7, "requests_7d"),
            (Window.D30, "requests_30d"),
        ]:
            expected = sum(1 for e in mine if in_window(e, window, now))
            assert rows[key][column] == expected, (key, column)
        assert rows[key]["name"] == f"name of {key}"
        assert rows[key]["last_used_at"] is not None
        assert rows[key]["hint"].startswith("pk_live_") and rows[key]["hint"].endswith("…")
        assert (rows[key]["type"], rows[key]["access"], rows[key]["status"]) == (
            "live",
            "full",
            "active",
        )

    beta = await api.client.get("/api-keys", headers=api.auth("beta:admin"))
    assert {row["key_id"] for row in beta.json()["data"]} == {"key_betaadmin", BETA_KEY}
    assert {e.account_id for e in api.events if e.key_id == BETA_KEY} == {BETA}


async def test_one_key_and_another_accounts_key(api: UsageApi) -> None:
    one = await api.client.get(f"/api-keys/{ALPHA_KEYS[1]}", headers=api.auth("alpha:read_only"))
    assert one.status_code == 200 and one.json()["key_id"] == ALPHA_KEYS[1]
    other = await api.client.get(f"/api-keys/{BETA_KEY}", headers=api.auth("alpha:read_only"))
    assert_problem(other, 404, "key_not_found")
