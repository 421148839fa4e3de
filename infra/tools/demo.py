"""`keypulse demo`: the whole product on one machine, end to end, then a clean stop.

Starts Kafka (unless one runs), an SMTP sink and a webhook receiver, and the worker
(agents, evaluator, notifier, HTTP API and web console) in this process; creates an
account, its admin key and live and test keys through the key service; backfills 30 days
of traffic with a daily shape and streams live traffic in which one key misbehaves (5xx
rate and latency climb); installs alert rules that notify the local receivers; then
prints the keys table (read from the HTTP API with the admin key), the alert that fired,
the deliveries that arrived, and the console's URL with the admin key to sign in with
(its secret printed there, once). In a terminal it then keeps serving the console and
the API until Ctrl-C; headless (tests, CI, a pipe) it stops at once. Everything printed
reads in 80 columns.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from infra.alert_admin import build_rule, new_rule_id, new_webhook_secret, publish_rule
from infra.cli.errors import CommandFailed
from infra.cli.key_views import keys_table
from infra.kafka.admin import ensure_registry_topics
from infra.kafka.broker import broker_running
from infra.settings import Settings
from infra.tools.receivers import Receivers, free_port
from infra.wiring import running_worker
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from schemas.utc import to_epoch_ms, utc_now
from streams.client import RecorderConfig, UsageRecorder
from streams.keyservice.commands import CreateAccount, CreateKey
from streams.keyservice.service import KeyService, start_key_service

ACCOUNT = "acc_demo"
ACTOR = "demo"


@dataclass(frozen=True)
class DemoKey:
    name: str
    key_type: KeyType
    weight: float
    misbehaves: bool = False
    key_id: str = ""
    """Given by the key service when the demo creates the key."""


KEYS = (
    DemoKey("Production web", KeyType.LIVE, 5.0),
    DemoKey("Mobile app", KeyType.LIVE, 3.0),
    DemoKey("Batch exporter", KeyType.LIVE, 2.0, misbehaves=True),
    DemoKey("CI tests", KeyType.TEST, 0.6),
    DemoKey("Staging", KeyType.TEST, 0.4),
)


@dataclass(frozen=True)
class DemoAccount:
    admin_key_id: str
    admin_secret: str
    keys: tuple[DemoKey, ...]

    @property
    def bad_key(self) -> DemoKey:
        return next(k for k in self.keys if k.misbehaves)


ROUTES = ("/v1/render", "/v1/render", "/v1/templates", "/v1/assets", "/v1/usage")


class DemoFailed(CommandFailed):
    """The demo did not see its alert delivered in time."""


def _demo_settings(settings: Settings, run: str, receivers: Receivers, api_port: int) -> Settings:
    return settings.model_copy(
        update={
            "data_dir": settings.data_dir / "demo" / run,
            "kafka": settings.kafka.model_copy(
                update={"topic_prefix": f"demo{run}.", "consumer_group": f"demo{run}"}
            ),
            "api": settings.api.model_copy(update={"port": api_port, "management_keys": []}),
            "alerting": settings.alerting.model_copy(
                update={
                    "allow_loopback_webhooks": True,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": receivers.smtp_port,
                    "smtp_security": "none",
                    "eval_interval_s": 2.0,
                }
            ),
        }
    )


def _create(service: KeyService, command: CreateKey) -> tuple[str, str]:
    """The new key's id and secret."""
    decision = service.execute(command, actor=ACTOR).decision
    assert decision.key_id is not None and decision.secret is not None
    return decision.key_id, decision.secret


def _create_account(settings: Settings, topics: TopicNames) -> DemoAccount:
    """The demo account, its admin key and its keys, through the key service."""
    service = start_key_service(
        settings.kafka.bootstrap_servers, topics.key_events, client_id="keypulse-demo"
    )
    try:
        service.execute(CreateAccount(ACCOUNT, Plan.PRO), actor=ACTOR)
        admin = CreateKey(ACCOUNT, "Demo admin", KeyType.LIVE, KeyAccess.ADMIN)
        admin_key_id, admin_secret = _create(service, admin)
        keys = tuple(
            replace(k, key_id=_create(service, CreateKey(ACCOUNT, k.name, k.key_type))[0])
            for k in KEYS
        )
    finally:
        service.close()
    return DemoAccount(admin_key_id, admin_secret, keys)


def _list_keys(settings: Settings, admin_secret: str) -> list[dict[str, Any]]:
    """The keys page from the HTTP API, as the account's admin key sees it."""
    response = httpx.get(
        f"http://{settings.api.host}:{settings.api.port}/api-keys",
        headers={"Authorization": f"Bearer {admin_secret}"},
        timeout=30,
    )
    if response.status_code != 200:
        raise DemoFailed(f"demo failed: GET /api-keys answered {response.status_code}")
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def _install_rules(settings: Settings, receivers: Receivers, bad_key: str) -> list[str]:
    channels = [
        {"type": "webhook", "url": receivers.webhook_url, "secret": new_webhook_secret()},
        {"type": "email", "to": ["oncall@demo.example"]},
    ]
    rules = [
        {
            "name": "Exporter error rate",
            "kind": "error_rate",
            "threshold": 25,
            "min_requests": 20,
        },
        {
            "name": "Exporter p95 latency",
            "kind": "latency",
            "percentile": "p95",
            "threshold": 800,
        },
    ]
    names = []
    for spec in rules:
        rule = build_rule(
            {
                "rule_id": new_rule_id(),
                "account_id": ACCOUNT,
                "scope": {"type": "key", "key_id": bad_key},
                "window_s": "1m",
                "comparator": "gt",
                "channels": channels,
                **spec,
            }
        )
        publish_rule(settings, rule)
        names.append(rule.name)
    return names


def _daily_shape(t: datetime) -> float:
    hour = t.hour + t.minute / 60
    return 0.35 + 0.65 * (0.5 + 0.5 * math.sin((hour - 9) / 24 * 2 * math.pi))


def _record(
    recorder: UsageRecorder, rng: random.Random, key: DemoKey, at_ms: int | None, badness: float
) -> None:
    failing = key.misbehaves and rng.random() < badness
    status = rng.choice((500, 502, 503)) if failing else rng.choice((200,) * 18 + (404, 429))
    latency = rng.lognormvariate(3.6, 0.5)
    if key.misbehaves:
        latency += badness * rng.uniform(900, 2200)
    recorder.record(
        key_id=key.key_id,
        account_id=ACCOUNT,
        method="POST" if rng.random() < 0.3 else "GET",
        route=rng.choice(ROUTES),
        status=status,
        latency_ms=round(latency, 2),
        client_ip=f"203.0.113.{rng.randint(1, 40)}",
        bytes_out=rng.randint(200, 90_000),
        is_render=rng.random() < 0.4,
        watermarked=key.key_type is KeyType.TEST,
        occurred_at=at_ms,
    )


def _backfill(
    recorder: UsageRecorder, rng: random.Random, now: datetime, keys: tuple[DemoKey, ...]
) -> int:
    """30 days of hourly traffic with a daily shape (ends an hour before now)."""
    count = 0
    for hours_ago in range(30 * 24, 1, -1):
        at = now - timedelta(hours=hours_ago)
        for key in keys:
            for _ in range(int(key.weight * 12 * _daily_shape(at))):
                jitter = rng.uniform(0, 3600)
                _record(recorder, rng, key, to_epoch_ms(at) + int(jitter * 1000), 0.02)
                count += 1
    return count


async def _stream_live(
    recorder: UsageRecorder,
    rng: random.Random,
    duration_s: float,
    console: Console,
    keys: tuple[DemoKey, ...],
) -> int:
    """Live traffic (~150 events/s); the exporter degrades over the second half."""
    count = 0
    total_weight = sum(k.weight for k in keys)
    with Progress(
        TextColumn("live traffic"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("live", total=duration_s, info="")
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < duration_s:
            badness = max(0.0, min(0.7, (elapsed / duration_s - 0.3) * 1.6))
            for _ in range(15):
                r = rng.uniform(0, total_weight)
                for key in keys:
                    r -= key.weight
                    if r <= 0:
                        break
                _record(recorder, rng, key, None, badness)
                count += 1
            progress.update(
                task, completed=elapsed, info=f"{count:,} events, exporter 5xx ~{badness:.0%}"
            )
            await asyncio.sleep(0.1)
    return count


async def _wait_for_alert(receivers: Receivers, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fired = [w for w in receivers.webhooks if _data(w.body).get("state") == "firing"]
        mails = [m for m in receivers.mail.messages if "FIRING" in str(m["Subject"])]
        if fired and mails:
            return
        await asyncio.sleep(0.25)
    raise DemoFailed(
        f"demo failed: no alert delivered within {timeout_s:.0f} s "
        f"({len(receivers.webhooks)} webhooks, {len(receivers.mail.messages)} mails)"
    )


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _fields(title: str, *rows: tuple[str, str]) -> Panel:
    """A titled panel of label/value lines; a long value wraps under its own column."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, Text(value))
    return Panel(grid, title=title)


def report(
    rows: list[dict[str, Any]],
    now: datetime,
    width: int,
    hook: tuple[dict[str, Any], Mapping[str, str]],
    mail: EmailMessage,
    deliveries: tuple[str, int, int],
    rules: list[str],
) -> list[RenderableType]:
    """What the demo shows at the end (pure): the keys table, the alert that fired (the
    webhook's body and headers) and what was delivered (`deliveries`: the webhook URL,
    webhooks and emails received); readable in 80 columns, nothing cut short."""
    body, headers = hook
    data = _data(body)
    rule, key = data.get("rule", {}), data.get("key", {})
    signature = headers.get("webhook-signature", "")
    url, webhooks, mails = deliveries
    fired = _fields(
        "alert fired",
        ("rule", f"{rule.get('name')} ({rule.get('kind')})"),
        ("key", f"{key.get('name')} ({key.get('id')})"),
        ("state", str(data.get("state"))),
        (
            "value",
            f"{data.get('value'):.1f} {data.get('comparator')} threshold "
            f"{data.get('threshold')} over {data.get('window_s')} s",
        ),
        ("started", str(data.get("started_at"))),
    )
    delivered = _fields(
        "delivered",
        ("webhook", f"POST {url}"),
        ("", f"webhook-id {headers.get('webhook-id')}"),
        ("", f"webhook-signature {signature[:40]}..."),
        ("email", f"to {mail['To']}"),
        ("", f"subject {str(mail['Subject']).strip()}"),
        ("rules", ", ".join(rules)),
        ("received", f"{webhooks} webhook(s), {mails} email(s)"),
    )
    return [keys_table(rows, now, width), fired, delivered]


def _print_report(
    console: Console, rows: list[dict[str, Any]], receivers: Receivers, rules: list[str]
) -> None:
    hook = next(w for w in receivers.webhooks if _data(w.body).get("state") == "firing")
    mail = next(m for m in receivers.mail.messages if "FIRING" in str(m["Subject"]))
    counts = (receivers.webhook_url, len(receivers.webhooks), len(receivers.mail.messages))
    shown = report(rows, utc_now(), console.width, (hook.body, hook.headers), mail, counts, rules)
    for renderable in shown:
        console.print(renderable)


def print_sign_in(console: Console, base_url: str, account: DemoAccount) -> None:
    """The console's address and the key to sign in with: the demo account's admin key
    (it can do everything the console offers; a read-only key would hide every change),
    its secret printed here and nowhere else, alone on its line to copy."""
    lines = (
        f"console   {base_url}/console",
        f"HTTP API  {base_url}/docs  (Authorization: Bearer <key>)",
        f"key       {ACCOUNT}'s admin key {account.admin_key_id}, shown once:",
        f"  {account.admin_secret}",
    )
    for line in lines:
        console.print(line, markup=False, highlight=False)


def keeps_serving(stdout_is_terminal: bool) -> bool:
    """Whether the demo keeps the worker (console, API) up after its report until Ctrl-C:
    in a terminal yes; headless (tests, CI, a pipe) it ends at once, as it always did."""
    return stdout_is_terminal


async def _serve_until_stopped(console: Console) -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM, then return (the caller stops everything)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    console.print("serving the console and the API until Ctrl-C")
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    console.print("stopping")


async def _run(settings: Settings, console: Console, duration_s: float, serve: bool) -> None:
    run = utc_now().strftime("%Y%m%d%H%M%S")
    receivers = Receivers()
    await receivers.start()
    try:
        demo = _demo_settings(settings, run, receivers, free_port())
        base_url = f"http://{demo.api.host}:{demo.api.port}"
        await asyncio.to_thread(ensure_registry_topics, demo.kafka)
        topics = TopicNames.with_prefix(demo.kafka.topic_prefix)
        async with running_worker(demo, serve_http=True):
            account = await asyncio.to_thread(_create_account, demo, topics)
            console.print(f"worker up at {base_url}: console and HTTP API (sign-in key at the end)")
            rules = await asyncio.to_thread(_install_rules, demo, receivers, account.bad_key.key_id)
            console.print(f"account {ACCOUNT}: {len(account.keys)} keys, rules: {', '.join(rules)}")
            rng = random.Random(42)
            config = RecorderConfig(demo.kafka.bootstrap_servers, topics.requests)
            recorder = UsageRecorder(config)
            try:
                backfilled = await asyncio.to_thread(
                    _backfill, recorder, rng, utc_now(), account.keys
                )
                console.print(
                    f"backfilled {backfilled:,} events over 30 days "
                    f"({config.compression or 'no'} compression)"
                )
                await _stream_live(recorder, rng, duration_s, console, account.keys)
                await asyncio.to_thread(recorder.flush, 30)
            finally:
                await asyncio.to_thread(recorder.close, 30)
            await _wait_for_alert(receivers, timeout_s=max(60.0, duration_s))
            await asyncio.sleep(1.0)
            rows = await asyncio.to_thread(_list_keys, demo, account.admin_secret)
            _print_report(console, rows, receivers, rules)
            print_sign_in(console, base_url, account)
            if serve:
                await _serve_until_stopped(console)
            else:
                console.print("headless run: stopping now (in a terminal the demo keeps serving)")
        console.print(f"data kept in {demo.data_dir}; demo finished cleanly")
    finally:
        await receivers.stop()


def run_demo(settings: Settings, console: Console, duration_s: float) -> None:
    """The demo; in a terminal it keeps serving after its report until Ctrl-C."""
    serve = keeps_serving(sys.stdout.isatty())
    with broker_running(settings.kafka, settings.kafka_dir) as lease:
        console.print(lease.describe())
        asyncio.run(_run(settings, console, duration_s, serve))
    if lease.started:
        console.print("kafka stopped")
