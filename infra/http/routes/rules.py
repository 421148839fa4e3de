"""`/alert-rules`: the caller's alert rules.

Rule kinds: `request_count`, `error_rate`, `latency`, `stale_key_presented` (a revoked
or expired key still presented; `threshold` 1, `window_s` 15m and `comparator` gte
unless given) and the misuse detectors `usage_spike`, `unknown_ip`, `error_pattern`,
`credential_stuffing` (defaults: `schemas.alerts.KIND_DEFAULTS`). An invalid field is a
422 naming the field and what to give instead.

Writes are Kafka publications (rules are events on `keypulse.alert-rules`) through the
app's one long-lived `Publisher`; they are accepted (202) once the broker confirmed the
event, and the rules agent makes them visible to reads shortly after. Channel secrets
(webhook signing secrets, Slack tokens and incoming-webhook URLs) are sealed before they
are published (`alerting.channel_secrets`) and masked in every answer (`whsec_…abcd`,
`xoxb-…abcd`, `https://hooks.slack.com/…`). Another account's rule is a 404.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException
from pydantic import BaseModel, Field

from infra import alert_admin
from infra.http.context import RouteContext
from infra.http.problems import PROBLEM_RESPONSES, UNAVAILABLE, published
from projections.alert_store import ClickHouseRuleStore, StoredRule
from schemas.alerts import (
    AlertRule,
    Comparator,
    ErrorClass,
    IpGranularity,
    Percentile,
    RuleKind,
    RuleScope,
    SpikeDirection,
)

_SERVER_FIELDS = ("rule_id", "account_id")
RULE_EXAMPLE = {
    "name": "Exporter error rate",
    "scope": {"type": "key", "key_id": "key_abc123"},
    "kind": "error_rate",
    "window_s": "5m",
    "comparator": "gt",
    "threshold": 5,
    "min_requests": 50,
    "for_s": "2m",
    "channels": [{"type": "email", "to": ["oncall@example.com"]}],
}
STALE_KEY_EXAMPLE = {
    "name": "Revoked or expired keys still in use",
    "scope": {"type": "account"},
    "kind": "stale_key_presented",
    "channels": [{"type": "email", "to": ["security@example.com"]}],
}
"""`stale_key_presented` defaults to threshold 1 (presentations), window 15m and gte."""


class EmailChannelOut(BaseModel):
    type: Literal["email"]
    to: list[str]


class SlackChannelOut(BaseModel):
    type: Literal["slack"]
    webhook_url: str | None = Field(default=None, description="Masked: scheme and host only")
    bot_token: str | None = Field(default=None, description="Masked")
    channel: str | None = None


class WebhookChannelOut(BaseModel):
    type: Literal["webhook"]
    url: str
    secret: str = Field(description="Masked")


ChannelOut = Annotated[
    EmailChannelOut | SlackChannelOut | WebhookChannelOut, Field(discriminator="type")
]


class RuleOut(BaseModel):
    """An `AlertRule` as the API shows it (secrets masked)."""

    rule_id: str
    account_id: str
    name: str
    scope: RuleScope
    kind: RuleKind
    percentile: Percentile | None
    window_s: int
    comparator: Comparator
    threshold: float
    min_requests: int | None
    direction: SpikeDirection | None = None
    granularity: IpGranularity | None = None
    lookback_s: int | None = None
    status_class: ErrorClass | None = None
    margin: float | None = None
    for_s: int
    keep_firing_for_s: int
    repeat_interval_s: int
    send_resolved: bool
    enabled: bool
    channels: list[ChannelOut]

    @classmethod
    def of(cls, rule: AlertRule) -> "RuleOut":
        return cls.model_validate(alert_admin.masked_rule(rule))


class StoredRuleOut(RuleOut):
    version: int
    updated_at: datetime

    @classmethod
    def stored(cls, stored: StoredRule) -> "StoredRuleOut":
        data = alert_admin.masked_rule(stored.rule)
        return cls.model_validate(
            {**data, "version": stored.version, "updated_at": stored.updated_at}
        )


class RuleListOut(BaseModel):
    data: list[StoredRuleOut]


class RuleAcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    rule: RuleOut


class RuleDeletionAcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    rule_id: str


def _own_rule(ctx: RouteContext, account_id: str, rule_id: str) -> StoredRule:
    stored = ctx.pool.with_client(lambda c: ClickHouseRuleStore(c).get_rule(rule_id))
    if stored is None or stored.rule.account_id != account_id:
        raise HTTPException(404, detail=f"no alert rule {rule_id} in this account")
    return stored


def _validated(ctx: RouteContext, data: dict[str, Any]) -> AlertRule:
    try:
        rule = alert_admin.build_rule(data)
        alert_admin.check_rule_urls(rule, ctx.settings)
    except alert_admin.AlertAdminError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return rule


def _publish(send: Callable[[], object]) -> None:
    """Publish a rule (its secrets sealed on the way): no master key is a 503 that says
    what to set, a sealed value that does not open for this rule a 422."""
    try:
        published(send)
    except alert_admin.SecretsUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
    except alert_admin.AlertAdminError as exc:
        raise HTTPException(422, detail=str(exc)) from None


def _client_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _SERVER_FIELDS}


def rules_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["alert rules"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806
    publisher = ctx.publisher

    @router.get("/alert-rules", response_model=RuleListOut, summary="List alert rules")
    def list_rules(account_id: Account) -> RuleListOut:
        found = ctx.pool.with_client(lambda c: ClickHouseRuleStore(c).list_rules(account_id))
        return RuleListOut(data=[StoredRuleOut.stored(r) for r in found])

    @router.post(
        "/alert-rules",
        status_code=202,
        response_model=RuleAcceptedOut,
        responses=UNAVAILABLE,
        summary="Create an alert rule",
    )
    def create_rule(
        account_id: Account,
        body: Annotated[dict[str, Any], Body(examples=[RULE_EXAMPLE, STALE_KEY_EXAMPLE])],
    ) -> RuleAcceptedOut:
        ids = {"rule_id": alert_admin.new_rule_id(), "account_id": account_id}
        rule = _validated(ctx, {**_client_fields(body), **ids})
        _publish(lambda: publisher.rule(rule))
        return RuleAcceptedOut(rule=RuleOut.of(rule))

    @router.get("/alert-rules/{rule_id}", response_model=StoredRuleOut, summary="One alert rule")
    def get_rule(rule_id: str, account_id: Account) -> StoredRuleOut:
        return StoredRuleOut.stored(_own_rule(ctx, account_id, rule_id))

    @router.patch(
        "/alert-rules/{rule_id}",
        status_code=202,
        response_model=RuleAcceptedOut,
        responses=UNAVAILABLE,
        summary="Change an alert rule",
    )
    def patch_rule(
        rule_id: str, account_id: Account, body: Annotated[dict[str, Any], Body()]
    ) -> RuleAcceptedOut:
        current = _own_rule(ctx, account_id, rule_id).rule.model_dump(mode="json")
        rule = _validated(ctx, {**current, **_client_fields(body)})
        _publish(lambda: publisher.rule(rule, replace=True))
        return RuleAcceptedOut(rule=RuleOut.of(rule))

    @router.delete(
        "/alert-rules/{rule_id}",
        status_code=202,
        response_model=RuleDeletionAcceptedOut,
        responses=UNAVAILABLE,
        summary="Delete an alert rule",
    )
    def delete_rule(rule_id: str, account_id: Account) -> RuleDeletionAcceptedOut:
        _own_rule(ctx, account_id, rule_id)
        published(lambda: publisher.rule_deletion(rule_id, account_id))
        return RuleDeletionAcceptedOut(rule_id=rule_id)

    return router
