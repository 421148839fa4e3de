"""`infra.http.routes.alerts`: the fired instance of the caller's rule, and only theirs."""

from __future__ import annotations

import pytest

from alerting.fingerprint import fingerprint
from tests.integration.http.conftest import FIRED_KEY, FiredApi

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


async def test_alerts_show_the_fired_instance_to_its_account_only(fired: FiredApi) -> None:
    r = await fired.client.get("/alerts", headers=fired.auth("alpha:read_only"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["has_more"] is False
    [instance] = body["data"]
    assert instance["fingerprint"] == fingerprint(fired.rule_id, FIRED_KEY)
    assert (instance["rule_id"], instance["key_id"]) == (fired.rule_id, FIRED_KEY)
    assert (instance["state"], instance["episode"]) == ("firing", 1)
    assert instance["fired_at"] is not None

    beta = await fired.client.get("/alerts", headers=fired.auth("beta:admin"))
    assert beta.json() == {"has_more": False, "data": []}
