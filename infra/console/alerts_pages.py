"""The Alerts page (`/console/alerts`): rules and their state, Add Alert, firing history,
deliveries; and its changes (add and delete a rule, send a test notification, replay a
delivery), which admins make and the server refuses to anyone else (`Console.writer`).

Changes are Kafka publications, as on the JSON API (`infra/http/routes/rules.py`,
`deliveries.py`): the rules agent and the notifier apply them a moment later, so after
one the affected section polls (`alerts_view.Watch`) until the change shows. htmx posts
get the changed fragments (the flash, the sections, the form) to swap in; plain form
posts are redirected to the page (a new rule with a webhook channel answers the page
itself: its signing secret is shown once, in that response only).

Sections can be fetched alone for polling: `GET /alerts/rules`, `GET /alerts/deliveries`.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from alerting.render import counted
from infra import alert_admin
from infra.console.alert_form import (
    FIELD_KINDS,
    KIND_CHOICES,
    RuleForm,
    defaults_words,
    key_choices,
    kinds_attr,
)
from infra.console.alert_reads import (
    own_delivery,
    own_rule,
    read_alerts,
    read_rules,
    recent_deliveries,
)
from infra.console.alert_words import KIND_LABELS, THRESHOLD_UNITS
from infra.console.alerts_view import (
    REPLAYABLE,
    Watch,
    deliveries_view,
    history_rows,
    rules_view,
)
from infra.console.pages import BASE, Console, ConsoleUser
from infra.kafka.admin import KafkaUnreachable
from schemas.alerts import AlertRule
from schemas.key_ledger import KeyRecord

_FORM_HINTS = [(kind.value, THRESHOLD_UNITS[kind], defaults_words(kind)) for kind in KIND_LABELS]
_FIELD_KINDS = {name: kinds_attr(name) for name in FIELD_KINDS}


class AlertPages:
    """Builds the page's contexts from the reads (one ClickHouse call per response)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.ctx = console.ctx

    def keys(self, account_id: str) -> dict[str, KeyRecord]:
        ledger = self.ctx.registry.account_if_ready(account_id)
        return dict(ledger.keys) if ledger is not None else {}

    @staticmethod
    def names(keys: Mapping[str, KeyRecord]) -> dict[str, str]:
        return {key_id: record.name for key_id, record in keys.items()}

    def _rules(self, reads: Any, names: Mapping[str, str], watch: Watch) -> dict[str, Any]:
        view = rules_view(reads, names, self.console.now())
        waiting = watch.rules_waiting({r.rule_id for r in view.rows})
        poll = f"{BASE}/alerts/rules?{watch.next().query()}" if waiting else ""
        return {"rules": view, "rules_poll": poll}

    def _deliveries(self, records: Any, names: Mapping[str, str], watch: Watch) -> dict[str, Any]:
        view = deliveries_view(records, names, self.console.now())
        waiting = watch.deliveries_waiting(records)
        poll = f"{BASE}/alerts/deliveries?{watch.next().query()}" if waiting else ""
        return {"deliveries": view, "deliveries_poll": poll}

    def rules_context(self, account_id: str, watch: Watch) -> dict[str, Any]:
        reads = self.ctx.pool.with_client(lambda c: read_rules(c, account_id))
        return self._rules(reads, self.names(self.keys(account_id)), watch)

    def deliveries_context(self, account_id: str, watch: Watch) -> dict[str, Any]:
        records = self.ctx.pool.with_client(lambda c: recent_deliveries(c, account_id))
        return self._deliveries(records, self.names(self.keys(account_id)), watch)

    def form_context(
        self,
        account_id: str,
        form: RuleForm | None = None,
        error: str = "",
        keys: Mapping[str, KeyRecord] | None = None,
    ) -> dict[str, Any]:
        records = self.keys(account_id) if keys is None else keys
        return {
            "form": form or RuleForm(),
            "form_error": error,
            "form_open": bool(error),
            "kind_choices": KIND_CHOICES,
            "kind_hints": _FORM_HINTS,
            "field_kinds": _FIELD_KINDS,
            "key_choices": key_choices(records.values(), self.console.now()),
        }

    def page_context(self, account_id: str, watch: Watch) -> dict[str, Any]:
        reads = self.ctx.pool.with_client(lambda c: read_alerts(c, account_id))
        keys = self.keys(account_id)
        names = self.names(keys)
        rule_names = {s.rule.rule_id: (s.rule.name, s.rule.kind) for s in reads.rules.rules}
        now = self.console.now()
        return {
            "title": "Alerts",
            "section": "alerts",
            **self._rules(reads.rules, names, watch),
            **self._deliveries(reads.deliveries, names, watch),
            "history": history_rows(reads.history, rule_names, names, now),
            **self.form_context(account_id, keys=keys),
        }

    # ----------------------------------------------------------------- changes

    def create(self, user: ConsoleUser, form: RuleForm) -> tuple[AlertRule | None, str, str]:
        """Build, check and publish the form's rule: (rule, webhook secret, error)."""
        account_id = user.account_id
        secret = alert_admin.new_webhook_secret() if form.webhook_url else ""
        keys = self.keys(account_id)
        try:
            key = form.scope_key
            if key is not None and keys and key not in keys:
                raise alert_admin.AlertAdminError(
                    f"invalid rule: scope: {key} is not a key of this account"
                )
            data = form.rule_data(account_id, alert_admin.new_rule_id(), secret or None)
            rule = alert_admin.build_rule(data)
            alert_admin.check_rule_urls(rule, self.ctx.settings)
            self.ctx.publisher.rule(rule)
        except alert_admin.AlertAdminError as exc:
            return None, "", str(exc)
        except KafkaUnreachable as exc:
            return None, "", f"Not added: {exc}; try again in a moment."
        return rule, secret, ""

    def delete(self, user: ConsoleUser, rule_id: str) -> tuple[str, Watch]:
        account_id = user.account_id
        stored = self.ctx.pool.with_client(lambda c: own_rule(c, account_id, rule_id))
        if stored is None:
            return f"No rule {rule_id} in this account (deleted already?).", Watch()
        try:
            self.ctx.publisher.rule_deletion(rule_id, account_id)
        except KafkaUnreachable as exc:
            return f"Not deleted: {exc}; try again in a moment.", Watch()
        message = f"Rule “{stored.rule.name}” deleted; it leaves the list within seconds."
        return message, Watch(gone=rule_id).starting()

    def send_test(self, user: ConsoleUser, rule_id: str) -> tuple[str, Watch]:
        account_id = user.account_id
        stored = self.ctx.pool.with_client(lambda c: own_rule(c, account_id, rule_id))
        if stored is None:
            return f"No rule {rule_id} in this account.", Watch()
        rule = stored.rule
        key_name = self.names(self.keys(account_id)).get(rule.key_id or "")
        try:
            sent = alert_admin.send_test_notification(
                self.ctx.publisher, rule, key_name, user.caller.key_id, self.console.now()
            )
        except alert_admin.AlertAdminError as exc:
            return f"Not sent: {exc}.", Watch()
        except KafkaUnreachable as exc:
            return f"Not sent: {exc}; try again in a moment.", Watch()
        message = (
            f"Test notification of “{rule.name}” sent to "
            f"{counted(len(rule.channels), 'channel')}; its deliveries show below."
        )
        return message, Watch(notice=sent.idempotency_key).starting()

    def replay(self, user: ConsoleUser, delivery_id: str) -> tuple[str, Watch]:
        account_id = user.account_id
        record = self.ctx.pool.with_client(lambda c: own_delivery(c, account_id, delivery_id))
        if record is None:
            return f"No delivery {delivery_id} in this account.", Watch()
        if record.status not in REPLAYABLE:
            return (
                f"Delivery {delivery_id} is {record.status}: only dead or disabled deliveries "
                "are replayed.",
                Watch(),
            )
        try:
            self.ctx.publisher.replay(record.notification, delivery_id)
        except KafkaUnreachable as exc:
            return f"Not replayed: {exc}; try again in a moment.", Watch()
        message = f"Delivery {delivery_id} replayed; its new attempt shows below."
        return message, Watch(replay=delivery_id, after=record.attempt).starting()


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class AlertResponses:
    """The answers to the page's changes, for htmx and for plain form posts."""

    def __init__(self, console: Console, pages: AlertPages) -> None:
        self.console = console
        self.pages = pages

    def changed(
        self, request: Request, user: ConsoleUser, message: str, watch: Watch, section: str
    ) -> Response:
        """After a change: htmx gets the flash and the section that waits for it; a plain
        post is sent back to the page (which waits for it too)."""
        console, pages = self.console, self.pages
        if not _htmx(request):
            console.flash(user, message)
            return console.redirect(f"/alerts?{watch.query()}" if watch.left else "/alerts")
        context: dict[str, Any] = {"message": message, "warn": not watch.left, "oob": True}
        if watch.left and section == "rules":
            context |= pages.rules_context(user.account_id, watch)
        elif watch.left:
            context |= pages.deliveries_context(user.account_id, watch)
        return console.render(request, "alerts_update.html", user, context)

    def refused(self, request: Request, user: ConsoleUser, form: RuleForm, error: str) -> Response:
        """The form again, with what was entered and why the rule was not added."""
        context = self.pages.form_context(user.account_id, form, error)
        if _htmx(request):
            return self.console.render(request, "alerts_form.html", user, context)
        page = self.pages.page_context(user.account_id, Watch())
        return self.console.render(request, "alerts.html", user, page | context, status_code=422)

    def added(self, request: Request, user: ConsoleUser, rule: AlertRule, secret: str) -> Response:
        """The rule is accepted: say so, wait for it in the list, show a webhook secret once."""
        console, pages = self.console, self.pages
        message = (
            f"Rule “{rule.name}” added ({rule.rule_id}); it appears in the list within seconds."
        )
        watch = Watch(rule=rule.rule_id).starting()
        if not _htmx(request):
            console.flash(user, message)
            if not secret:
                return console.redirect(f"/alerts?{watch.query()}")
            page = pages.page_context(user.account_id, watch)
            return console.render(
                request, "alerts.html", user, {**page, "added": rule, "secret": secret}
            )
        context = {
            **pages.rules_context(user.account_id, watch),
            **pages.form_context(user.account_id),
            "added": rule,
            "secret": secret,
            "message": message,
            "oob": True,
            "with_form": True,
        }
        return console.render(request, "alerts_update.html", user, context)


def alerts_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)
    User = Annotated[ConsoleUser, Depends(console.user)]  # noqa: N806
    Writer = Annotated[ConsoleUser, Depends(console.writer)]  # noqa: N806
    pages = AlertPages(console)
    answers = AlertResponses(console, pages)

    @router.get("/alerts")
    def alerts_page(request: Request, user: User) -> Response:
        watch = Watch.of(request.query_params)
        return console.render(
            request, "alerts.html", user, pages.page_context(user.account_id, watch)
        )

    @router.get("/alerts/rules")
    def rules_section(request: Request, user: User) -> Response:
        context = pages.rules_context(user.account_id, Watch.of(request.query_params))
        return console.render(request, "alerts_rules.html", user, context)

    @router.get("/alerts/deliveries")
    def deliveries_section(request: Request, user: User) -> Response:
        context = pages.deliveries_context(user.account_id, Watch.of(request.query_params))
        return console.render(request, "alerts_deliveries.html", user, context)

    @router.post("/alerts/rules")
    async def add_rule(request: Request, user: Writer) -> Response:
        form = RuleForm.parse(await request.form())

        def answer() -> Response:
            rule, secret, error = pages.create(user, form)
            if rule is None:
                return answers.refused(request, user, form, error)
            return answers.added(request, user, rule, secret)

        return await run_in_threadpool(answer)

    @router.post("/alerts/rules/{rule_id}/delete")
    def delete_rule(rule_id: str, request: Request, user: Writer) -> Response:
        message, watch = pages.delete(user, rule_id)
        return answers.changed(request, user, message, watch, "rules")

    @router.post("/alerts/rules/{rule_id}/test")
    def test_rule(rule_id: str, request: Request, user: Writer) -> Response:
        message, watch = pages.send_test(user, rule_id)
        return answers.changed(request, user, message, watch, "deliveries")

    @router.post("/alerts/deliveries/{delivery_id}/replay")
    def replay_delivery(delivery_id: str, request: Request, user: Writer) -> Response:
        message, watch = pages.replay(user, delivery_id)
        return answers.changed(request, user, message, watch, "deliveries")

    return router
