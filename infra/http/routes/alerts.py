"""HTTP routes for alert rules, alert instances and deliveries.

These live in `infra` rather than `alerting` because writes are Kafka publications
(rules are events on `keypulse.alert-rules`) and reads use the ClickHouse adapters of
`projections`; both are composition concerns. Rule writes are accepted (202) once the
broker confirmed the event; the rules agent makes them visible to reads shortly after.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import JSONResponse

from infra import alert_admin
from infra.http.app import RouterFactory
from infra.http.client_pool import ClientPool
from infra.kafka.admin import KafkaUnreachable
from infra.settings import Settings
from projections.alert_store import (
    ClickHouseAlertStateStore,
    ClickHouseDeliveryLog,
    ClickHouseRuleStore,
    StoredRule,
)
from schemas.alerts import AlertRule

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


def _rule_out(stored: StoredRule) -> dict[str, Any]:
    return {
        **alert_admin.masked_rule(stored.rule),
        "version": stored.version,
        "updated_at": stored.updated_at.isoformat(),
    }


def alert_router_factory(settings: Settings, pool: ClientPool) -> RouterFactory:
    def factory(account: Callable[..., Any]) -> APIRouter:
        router = APIRouter(tags=["alerts"])
        Account = Annotated[str, Depends(account)]  # noqa: N806

        def rules() -> Callable[[Callable[[ClickHouseRuleStore], Any]], Any]:
            return lambda fn: pool.with_client(lambda c: fn(ClickHouseRuleStore(c)))

        def own_rule(account_id: str, rule_id: str) -> StoredRule:
            stored: StoredRule | None = rules()(lambda s: s.get_rule(rule_id))
            if stored is None or stored.rule.account_id != account_id:
                raise HTTPException(404, detail=f"no alert rule {rule_id} in this account")
            return stored

        def validated(data: dict[str, Any]) -> AlertRule:
            try:
                rule = alert_admin.build_rule(data)
                alert_admin.check_rule_urls(rule, settings)
            except alert_admin.AlertAdminError as exc:
                raise HTTPException(422, detail=str(exc)) from None
            return rule

        def published(fn: Callable[[], alert_admin.Published]) -> alert_admin.Published:
            try:
                return fn()
            except KafkaUnreachable as exc:
                raise HTTPException(503, detail=str(exc)) from None

        @router.get("/alert-rules", summary="List alert rules")
        def list_rules(account_id: Account) -> dict[str, Any]:
            found = rules()(lambda s: s.list_rules(account_id))
            return {"data": [_rule_out(r) for r in found]}

        @router.post("/alert-rules", status_code=202, summary="Create an alert rule")
        def create_rule(
            account_id: Account,
            body: Annotated[dict[str, Any], Body(examples=[RULE_EXAMPLE])],
        ) -> JSONResponse:
            data = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
            rule = validated(
                {**data, "rule_id": alert_admin.new_rule_id(), "account_id": account_id}
            )
            published(lambda: alert_admin.publish_rule(settings, rule))
            return JSONResponse(
                {"status": "accepted", "rule": alert_admin.masked_rule(rule)}, status_code=202
            )

        @router.get("/alert-rules/{rule_id}", summary="One alert rule")
        def get_rule(rule_id: str, account_id: Account) -> dict[str, Any]:
            return _rule_out(own_rule(account_id, rule_id))

        @router.patch("/alert-rules/{rule_id}", status_code=202, summary="Change an alert rule")
        def patch_rule(
            rule_id: str, account_id: Account, body: Annotated[dict[str, Any], Body()]
        ) -> JSONResponse:
            current = own_rule(account_id, rule_id).rule.model_dump(mode="json")
            changes = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
            rule = validated({**current, **changes})
            published(lambda: alert_admin.publish_rule(settings, rule, replace=True))
            return JSONResponse(
                {"status": "accepted", "rule": alert_admin.masked_rule(rule)}, status_code=202
            )

        @router.delete("/alert-rules/{rule_id}", status_code=202, summary="Delete an alert rule")
        def delete_rule(rule_id: str, account_id: Account) -> dict[str, str]:
            own_rule(account_id, rule_id)
            published(lambda: alert_admin.publish_rule_deletion(settings, rule_id, account_id))
            return {"status": "accepted", "rule_id": rule_id}

        @router.get("/alerts", summary="Alert instances and their states")
        def alerts(account_id: Account) -> dict[str, Any]:
            instances = pool.with_client(lambda c: ClickHouseAlertStateStore(c).load_instances())
            mine = [i.model_dump(mode="json") for i in instances if i.account_id == account_id]
            return {"data": mine}

        @router.get("/deliveries", summary="Notification deliveries by latest status")
        def deliveries(
            account_id: Account,
            status: Annotated[
                str | None, Query(pattern="^(pending|retrying|delivered|dead|disabled)$")
            ] = None,
        ) -> dict[str, Any]:
            records = pool.with_client(
                lambda c: ClickHouseDeliveryLog(c).list_latest(
                    statuses=[status] if status else None, limit=None
                )
            )
            mine = [r for r in records if r.notification.account_id == account_id][:500]
            return {
                "data": [
                    {
                        "delivery_id": r.delivery_id,
                        "status": r.status,
                        "channel_id": r.channel_id,
                        "attempt": r.attempt,
                        "at": r.at.isoformat(),
                        "outcome": r.outcome,
                        "detail": r.detail,
                        "rule": r.notification.rule.name,
                        "key_id": r.notification.key_id,
                        "state": r.notification.state.value,
                    }
                    for r in mine
                ]
            }

        @router.post(
            "/deliveries/{delivery_id}/replay", status_code=202, summary="Replay a delivery"
        )
        def replay(delivery_id: str, account_id: Account) -> dict[str, str]:
            record = pool.with_client(lambda c: ClickHouseDeliveryLog(c).get(delivery_id))
            if record is None or record.notification.account_id != account_id:
                raise HTTPException(404, detail=f"no delivery {delivery_id} in this account")
            published(
                lambda: alert_admin.publish_replay(settings, record.notification, delivery_id)
            )
            return {"status": "accepted", "delivery_id": delivery_id}

        return router

    return factory
