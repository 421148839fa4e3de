"""Helpers for the alerting integration tests: TLS material and a recording HTTP server.
Fixtures wrapping them live in conftest.py."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_tls_files(directory: Path) -> TlsFiles:
    """A self-signed certificate for localhost, 127.0.0.1 and hooks.example.test (openssl)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:hooks.example.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert, key)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class HttpServer:
    """A local aiohttp server that records requests and answers from a script."""

    received: list[Received] = field(default_factory=list)
    responders: list[Responder] = field(default_factory=list)
    default: Responder | None = None
    port: int = 0
    scheme: str = "http"

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
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


async def start_http_server(
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[HttpServer, web.AppRunner]:
    server = HttpServer(scheme="https" if ssl_context else "http")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]
    site = web.SockSite(runner, sock, ssl_context=ssl_context)
    await site.start()
    return server, runner
