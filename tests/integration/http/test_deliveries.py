"""`infra.http.routes.deliveries`: the deliveries of a fired alert to a real local webhook
receiver, per account and limited, and a replay."""

from __future__ import annotations

import pytest

from tests.eventually import eventually
from tests.integration.http.api_support import assert_problem
from tests.integration.http.conftest import FIRED_KEY, HOOKS, FiredApi

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


async def _delivered(fired: FiredApi) -> list[dict[str, object]]:
    """The delivered rows once there is one per hook (an empty list until then)."""
    r = await fired.client.get(
        "/deliveries", params={"status": "delivered"}, headers=fired.auth("alpha:read_only")
    )
    assert r.status_code == 200, r.text
    rows: list[dict[str, object]] = r.json()["data"]
    return rows if len(rows) == len(HOOKS) else []


async def test_deliveries_show_the_webhook_deliveries_to_their_account_only(
    fired: FiredApi,
) -> None:
    rows = await eventually(lambda: _delivered(fired), 30, "a delivered row per hook")
    assert {r["delivery_id"] for r in rows} == set(fired.delivery_ids.values())
    for row in rows:
        assert (row["key_id"], row["state"], row["rule"]) == (FIRED_KEY, "firing", "Alpha traffic")
        assert (row["status"], row["outcome"], row["attempt"]) == ("delivered", "delivered", 1)
    assert len(fired.receiver.received) == len(HOOKS)

    dead = await fired.client.get(
        "/deliveries", params={"status": "dead"}, headers=fired.auth("alpha:read_only")
    )
    assert dead.json() == {"has_more": False, "data": []}
    cut = await fired.client.get(
        "/deliveries", params={"limit": 1}, headers=fired.auth("alpha:read_only")
    )
    assert cut.json()["has_more"] is True
    assert [r["delivery_id"] for r in cut.json()["data"]] == [rows[0]["delivery_id"]]
    beta = await fired.client.get("/deliveries", headers=fired.auth("beta:admin"))
    assert beta.json() == {"has_more": False, "data": []}


async def test_replay_delivers_once_more_and_only_for_its_account(fired: FiredApi) -> None:
    await eventually(lambda: _delivered(fired), 30, "a delivered row per hook")
    replayed = fired.delivery_ids[HOOKS[0]]
    other = await fired.client.post(
        f"/deliveries/{replayed}/replay", headers=fired.auth("beta:admin")
    )
    assert_problem(other, 404, "not_found")
    replay = await fired.client.post(
        f"/deliveries/{replayed}/replay", headers=fired.auth("alpha:admin")
    )
    assert replay.status_code == 202, replay.text
    assert replay.json() == {"status": "accepted", "delivery_id": replayed}
    await eventually(lambda: len(fired.receiver.received) == 3, 30, "the replayed webhook")
    assert fired.receiver.received[2].path == HOOKS[0]
    assert fired.worker.api is not None and fired.worker.api.publisher is not None
    assert fired.worker.api.publisher.producers_built == 1  # the rule and the replay
