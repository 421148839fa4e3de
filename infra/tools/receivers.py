"""Local alert receivers for the demo and the tests: an SMTP sink and a recording HTTP server.

Both serve on a free loopback port in the running event loop (start, then stop):

- `start_smtp(handler, **smtp)` serves aiosmtpd's `SMTP` with `handler` (`MailSink` keeps
  every accepted message; options such as `tls_context` or `authenticator` pass through).
- `start_http()` (or `async with serving_http()`) serves an `HttpReceiver`: every request
  is recorded (`received`) and answered by the next scripted responder (`reply`), then by
  `default`, else 200 "ok".
- `Receivers` is the demo's pair: a mail sink and a webhook endpoint (`webhook_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    return sock


# --------------------------------------------------------------------------- SMTP


@dataclass
class MailSink:
    """aiosmtpd handler: accepts every message and keeps it, parsed, with its envelope."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        if isinstance(parsed, EmailMessage):
            self.messages.append(parsed)
            self.envelopes.append(envelope)
        return "250 Message accepted"


@dataclass
class SmtpReceiver:
    """A running SMTP server (see `start_smtp`)."""

    port: int
    server: asyncio.AbstractServer

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_smtp(
    handler: object, *, ssl_context: ssl.SSLContext | None = None, **smtp: Any
) -> SmtpReceiver:
    """Serve aiosmtpd's `SMTP(handler, **smtp)`; `ssl_context` makes it implicit TLS."""
    sock = _bound_socket()
    port = int(sock.getsockname()[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", **smtp), sock=sock, ssl=ssl_context
    )
    return SmtpReceiver(port, server)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class HttpReceiver:
    """A local aiohttp server that records requests and answers from a script."""

    received: list[Received] = field(default_factory=list)
    responders: list[Responder] = field(default_factory=list)
    default: Responder | None = None
    port: int = 0
    scheme: str = "http"
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)

    def url(self, path: str = "/hook", host: str = LOOPBACK) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def reply(
        self, status: int = 200, body: Any = "ok", headers: dict[str, str] | None = None
    ) -> None:
        """Queue one scripted answer (consumed in order; the default answers afterwards)."""

        async def respond(_: web.Request, __: bytes) -> web.StreamResponse:
            if isinstance(body, str):
                return web.Response(status=status, text=body, headers=headers)
            return web.json_response(body, status=status, headers=headers)

        self.responders.append(respond)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path_qs, dict(request.headers), body))
        if self.responders:
            return await self.responders.pop(0)(request, body)
        if self.default is not None:
            return await self.default(request, body)
        return web.Response(text="ok")

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = _bound_socket()
        self.port = int(sock.getsockname()[1])
        self.scheme = "https" if ssl_context else "http"
        await web.SockSite(self._runner, sock, ssl_context=ssl_context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_http(ssl_context: ssl.SSLContext | None = None) -> HttpReceiver:
    """An `HttpReceiver`, serving (https when `ssl_context` is given)."""
    receiver = HttpReceiver()
    await receiver.start(ssl_context)
    return receiver


@contextlib.asynccontextmanager
async def serving_http(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[HttpReceiver]:
    """`start_http`, stopped on leaving the block."""
    receiver = await start_http(ssl_context)
    try:
        yield receiver
    finally:
        await receiver.stop()


# --------------------------------------------------------------------------- the demo's


@dataclass
class WebhookDelivery:
    headers: dict[str, str]
    body: dict[str, Any]


WEBHOOK_PATH = "/hooks/keypulse"


async def _no_content(_: web.Request, __: bytes) -> web.StreamResponse:
    return web.Response(status=204)


class Receivers:
    """The demo's receivers: a mail sink and a webhook endpoint; `start()` then `stop()`."""

    def __init__(self) -> None:
        self.mail = MailSink()
        self.http = HttpReceiver(default=_no_content)
        self._smtp: SmtpReceiver | None = None

    @property
    def smtp_port(self) -> int:
        if self._smtp is None:
            raise RuntimeError("start() the receivers first")
        return self._smtp.port

    @property
    def webhook_url(self) -> str:
        return self.http.url(WEBHOOK_PATH)

    @property
    def webhooks(self) -> list[WebhookDelivery]:
        """The JSON bodies POSTed to `webhook_url`, in arrival order."""
        return [
            WebhookDelivery(r.headers, orjson.loads(r.body))
            for r in self.http.received
            if r.method == "POST" and r.path == WEBHOOK_PATH
        ]

    async def start(self) -> None:
        self._smtp = await start_smtp(self.mail)
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()
        if self._smtp is not None:
            await self._smtp.stop()
