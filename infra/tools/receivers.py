"""The demo's local alert receivers: an SMTP sink (aiosmtpd) and a webhook endpoint."""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MailSink:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        if isinstance(parsed, EmailMessage):
            self.messages.append(parsed)
        return "250 Message accepted"


@dataclass
class WebhookDelivery:
    headers: dict[str, str]
    body: dict[str, Any]


class Receivers:
    """Both receivers on free loopback ports; `start()` then `stop()`."""

    def __init__(self) -> None:
        self.mail = MailSink()
        self.smtp_port = free_port()
        self.webhook_port = free_port()
        self.webhooks: list[WebhookDelivery] = []
        self._smtp = Controller(self.mail, hostname="127.0.0.1", port=self.smtp_port)
        self._runner: web.AppRunner | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/hooks/keypulse"

    async def _receive(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.webhooks.append(WebhookDelivery(dict(request.headers), body))
        return web.Response(status=204)

    async def start(self) -> None:
        self._smtp.start()
        app = web.Application()
        app.router.add_post("/hooks/keypulse", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.webhook_port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._smtp.stop()
