"""The access matrix: every caller against EVERY route of the OpenAPI document, each
cell's status from the table below (written here, not derived from the code under test).

Callers (`CALLERS`): the registry's admin, read-only and full-access keys of alpha,
alpha's revoked admin key, a well-formed but unknown key, a malformed one, no key at all,
beta's admin key (another account: alpha's ids are 404 to it, never a leak), and the
operator bootstrap keys of the settings (full, read_only, revoked). The routes come from
`app.openapi()`, so a route added without a row here fails the test. Destructive cells
(revoke, delete) get a fresh target each; the alert rule and the delivery are written
to ClickHouse first (no worker runs, so a rule change or deletion stays accepted-only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from alerting.ports import DeliveryRecord, RuleChange
from projections.alert_store import ClickHouseDeliveryLog, ClickHouseRuleStore
from projections.queries import UsageQueries
from schemas.alerts import EmailChannel
from schemas.key_format import generate_secret
from tests.integration.http.api_support import ALPHA, BETA, OPS_PATHS, SECRETS, bearer
from tests.integration.http.conftest import Live
from tests.samples.alerting import make_notification, make_rule

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

CALLERS = (
    "admin",
    "ro",
    "full",
    "rev",
    "unk",
    "bad",
    "none",
    "other",
    "op",
    "op_ro",
    "op_rv",
)
"""admin, ro (read-only), full (full-access): alpha's registry keys; rev: alpha's revoked
admin key; unk: a well-formed unknown key; bad: a malformed one (wrong checksum); none:
no Authorization; other: beta's admin key; op, op_ro, op_rv: the operator bootstrap keys
(scope full, read_only, and revoked)."""
MATRIX = """
route                                 admin ro  full rev unk bad none other op  op_ro op_rv
GET /api-keys                         200   200 403  401 401 401 401  200   200 200   401
POST /api-keys                        201   403 403  401 401 401 401  201   201 403   401
GET /api-keys/{key_id}                200   200 403  401 401 401 401  404   200 200   401
PATCH /api-keys/{key_id}              200   403 403  401 401 401 401  404   200 403   401
DELETE /api-keys/{key_id}             204   403 403  401 401 401 401  404   204 403   401
POST /api-keys/{key_id}/revoke        200   403 403  401 401 401 401  404   200 403   401
POST /api-keys/{key_id}/roll          201   403 403  401 401 401 401  404   201 403   401
GET /api-keys/{key_id}/usage          200   200 403  401 401 401 401  404   200 200   401
GET /api-keys/{key_id}/timeseries     200   200 403  401 401 401 401  404   200 200   401
GET /account                          200   200 403  401 401 401 401  200   200 200   401
PUT /account/plan                     200   403 403  401 401 401 401  200   200 403   401
GET /audit-log                        200   200 403  401 401 401 401  200   200 200   401
GET /usage                            200   200 403  401 401 401 401  200   200 200   401
GET /alert-rules                      200   200 403  401 401 401 401  200   200 200   401
POST /alert-rules                     202   403 403  401 401 401 401  202   202 403   401
GET /alert-rules/{rule_id}            200   200 403  401 401 401 401  404   200 200   401
PATCH /alert-rules/{rule_id}          202   403 403  401 401 401 401  404   202 403   401
DELETE /alert-rules/{rule_id}         202   403 403  401 401 401 401  404   202 403   401
GET /alerts                           200   200 403  401 401 401 401  200   200 200   401
GET /deliveries                       200   200 403  401 401 401 401  200   200 200   401
POST /deliveries/{delivery_id}/replay 202   403 403  401 401 401 401  404   202 403   401
"""
CODES = {401: ("invalid_api_key", "revoked_api_key"), 403: ("insufficient_scope",)}
AUDIT_LOG_READY = hasattr(UsageQueries, "audit_log")

RULE_ID, DELIVERY_ID = "rule_alphamatrix", "dlv_alphamatrix"
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _table() -> dict[tuple[str, str], dict[str, int]]:
    lines = [line.split() for line in MATRIX.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[1:]) == CALLERS
    table = {}
    for method, path, *cells in rows:
        assert len(cells) == len(CALLERS), path
        table[(method, path)] = dict(zip(CALLERS, map(int, cells), strict=True))
    return table


def _operations(live: Live) -> list[tuple[str, str]]:
    spec = live.api.app.openapi()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path not in OPS_PATHS
        for method in item
    ]


def _wrong_checksum(secret: str) -> str:
    """`secret` with one character of its random part changed (CRC32 catches it)."""
    changed = "A" if secret[10] != "A" else "B"
    return secret[:10] + changed + secret[11:]


def _headers(live: Live, caller: str) -> dict[str, str]:
    secrets = {
        "admin": live.secret("alpha:admin"),
        "ro": live.secret("alpha:read_only"),
        "full": live.secret("alpha:full"),
        "rev": live.secret("alpha:revoked"),
        "unk": generate_secret("live"),
        "bad": _wrong_checksum(live.secret("alpha:admin")),
        "other": live.secret("beta:admin"),
        "op": SECRETS["alpha_full"],
        "op_ro": SECRETS["alpha_ro"],
        "op_rv": SECRETS["alpha_revoked"],
    }
    return {} if caller == "none" else bearer(secrets[caller])


def _seed(live: Live) -> None:
    """Alpha's alert rule and a dead delivery, straight into ClickHouse."""
    rule = make_rule(rule_id=RULE_ID, account_id=ALPHA, name="Matrix rule")
    # email: the replay cell republishes the delivery's notification to the topic, where
    # a plaintext webhook secret would be a leak (the session's secret scan)
    channel = EmailChannel(to=["matrix@example.com"])
    notification = make_notification().model_copy(
        update={"account_id": ALPHA, "channels": [channel]}
    )
    record = DeliveryRecord(
        delivery_id=DELIVERY_ID,
        notification=notification,
        channel_index=0,
        channel_id="ch_matrix",
        attempt=1,
        at=AT,
        status="dead",
        outcome="http_500",
        detail="endpoint answered 500",
    )
    live.api.runtime.pool.with_client(
        lambda c: ClickHouseRuleStore(c).apply([RuleChange(RULE_ID, ALPHA, rule, 1, AT)])
    )
    live.api.runtime.pool.with_client(lambda c: ClickHouseDeliveryLog(c).append([record]))


class Targets:
    """The concrete URL and body of each route for one cell (fresh keys where the admin
    cell would consume its target)."""

    def __init__(self, live: Live, admin: httpx.Client) -> None:
        self.live = live
        self.admin = admin
        self.counter = 0

    def _new_key(self, revoked: bool) -> str:
        self.counter += 1
        created = self.admin.post(
            "/api-keys", json={"name": f"Target {self.counter}", "type": "test"}
        )
        assert created.status_code == 201, created.text
        key_id: str = created.json()["id"]
        if revoked:
            assert self.admin.post(f"/api-keys/{key_id}/revoke").status_code == 200
        return key_id

    def request(self, method: str, path: str) -> tuple[str, dict[str, Any] | None]:
        bodies: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("POST", "/api-keys"): lambda: {"name": "Matrix create", "type": "test"},
            ("PATCH", "/api-keys/{key_id}"): lambda: {"name": "Matrix rename"},
            ("POST", "/api-keys/{key_id}/revoke"): lambda: {"reason": "rotated"},
            ("POST", "/api-keys/{key_id}/roll"): lambda: {"overlap": "15m"},
            ("PUT", "/account/plan"): lambda: {"plan": "business"},
            ("POST", "/alert-rules"): lambda: {
                "name": "Matrix new rule",
                "scope": {"type": "account"},
                "kind": "request_count",
                "window_s": "1h",
                "threshold": 10,
                "channels": [{"type": "email", "to": ["oncall@example.com"]}],
            },
            ("PATCH", "/alert-rules/{rule_id}"): lambda: {"threshold": 20},
        }
        key_id = self.live.alpha.keys["full"][0]
        if (method, path) == ("DELETE", "/api-keys/{key_id}"):
            key_id = self._new_key(revoked=True)
        elif (method, path) in (
            ("POST", "/api-keys/{key_id}/revoke"),
            ("POST", "/api-keys/{key_id}/roll"),
        ):
            key_id = self._new_key(revoked=False)
        ids = {"key_id": key_id, "rule_id": RULE_ID, "delivery_id": DELIVERY_ID}
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        body = bodies.get((method, path))
        return url, body() if body else None


def _leaks(live: Live, response: httpx.Response) -> list[str]:
    """Alpha's ids and names in an answer to another account (but the ids it sent)."""
    alpha = [ALPHA, RULE_ID, DELIVERY_ID, "Matrix rule", *(k for k, _ in live.alpha.keys.values())]
    sent = str(response.request.url)
    return [s for s in alpha if s in response.text and s not in sent]


def test_every_caller_against_every_route(live: Live) -> None:
    table = _table()
    operations = _operations(live)
    assert sorted(operations) == sorted(table), "a route without a row, or a row without a route"
    _seed(live)
    failures: list[str] = []
    with live.api.client() as client, live.api.client() as admin:
        admin.headers.update(_headers(live, "admin"))
        targets = Targets(live, admin)
        for method, path in operations:
            for caller in CALLERS:
                expected = table[(method, path)][caller]
                if path == "/audit-log" and expected == 200 and not AUDIT_LOG_READY:
                    continue  # UsageQueries.audit_log (the audit projection) has not landed
                url, body = targets.request(method, path)
                response = client.request(method, url, json=body, headers=_headers(live, caller))
                cell = f"{caller:9} {method} {path}: {response.status_code} (expected {expected})"
                if response.status_code != expected:
                    failures.append(f"{cell} {response.text[:200]}")
                    continue
                failures += [f"{cell}: {problem}" for problem in _check(live, caller, response)]
    assert failures == [], "\n".join(failures)


def _check(live: Live, caller: str, response: httpx.Response) -> list[str]:
    """What else must hold for this answer: problem bodies with the right codes, a
    `WWW-Authenticate` on 401, nothing of alpha's shown to beta."""
    problems = _problem_body(caller, response) if response.status_code >= 400 else []
    if caller == "other":
        problems += [f"leaks {leak}" for leak in _leaks(live, response)]
        about_an_account = response.status_code < 300 and "account_id" in response.text
        if about_an_account and BETA not in response.text:
            problems.append("another account's answer is not about its own account")
    return problems


def _problem_body(caller: str, response: httpx.Response) -> list[str]:
    if not response.headers["content-type"].startswith("application/problem+json"):
        return ["not a problem+json body"]
    problems: list[str] = []
    status, body = response.status_code, response.json()
    code = body["error"]
    if status in CODES and code not in CODES[status]:
        problems.append(f"code {code}")
    if status == 401 and response.headers.get("www-authenticate") != "Bearer":
        problems.append("no WWW-Authenticate: Bearer")
    if caller in ("rev", "op_rv") and code != "revoked_api_key":
        problems.append(f"code {code}, expected revoked_api_key")
    if caller == "bad" and "checksum" not in body["detail"]:
        problems.append("a malformed key's answer does not say what is wrong")
    if status == 404 and code not in ("key_not_found", "not_found"):
        problems.append(f"code {code}")
    return problems
