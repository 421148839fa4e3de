"""Email delivery against a real aiosmtpd server with STARTTLS (or implicit TLS) and AUTH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alerting.channels.email import EmailConfig, EmailNotifier, message_id
from alerting.fingerprint import firing_key
from infra.tools.receivers import MailSink, SmtpReceiver, start_smtp
from schemas.alerts import DeliveryOutcome, EmailChannel, Notification, NotificationKind
from tests.integration.alerting.tls import TlsFiles

USER, PASSWORD = "keypulse", "s3cret"
TO = EmailChannel(to=["ops@example.com", "oncall@example.com"])


@dataclass
class ScriptedHandler(MailSink):
    """A mail sink that answers RCPT/DATA from `script`, can drop the connection in DATA,
    and checks AUTH against USER/PASSWORD."""

    script: dict[str, str] = field(default_factory=dict)
    drop_in_data: bool = False
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if "RCPT" in self.script:
            return self.script["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.drop_in_data:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "250 never seen"
        if "DATA" in self.script:
            return self.script["DATA"]
        return await super().handle_DATA(server, session, envelope)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    handler: ScriptedHandler
    receiver: SmtpReceiver

    @property
    def port(self) -> int:
        return self.receiver.port


async def _serve(tls_files: TlsFiles, *, implicit_tls: bool) -> SmtpServer:
    handler = ScriptedHandler()
    context = tls_files.server_context()
    receiver = await start_smtp(
        handler,
        ssl_context=context if implicit_tls else None,
        tls_context=None if implicit_tls else context,
        require_starttls=not implicit_tls,
        # aiosmtpd only recognises STARTTLS as TLS (and warns when AUTH is required
        # without it), so the implicit-TLS server offers AUTH without requiring it.
        auth_required=not implicit_tls,
        auth_require_tls=not implicit_tls,
        authenticator=handler.authenticate,
    )
    return SmtpServer(handler, receiver)


@pytest.fixture
async def smtp(tls_files: TlsFiles) -> AsyncIterator[SmtpServer]:
    server = await _serve(tls_files, implicit_tls=False)
    try:
        yield server
    finally:
        await server.receiver.stop()


def config(server: SmtpServer, tls_files: TlsFiles, **overrides: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "username": USER,
        "password": PASSWORD,
        "sender": "keypulse <alerts@keypulse.test>",
        "ca_file": str(tls_files.cert),
        "timeout_s": 5,
        "message_id_domain": "keypulse.test",
    }
    values.update(overrides)
    return EmailConfig(**values)


async def test_firing_mail_over_starttls_with_auth(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    n = notification()
    result = await EmailNotifier(config(smtp, tls_files)).send(n, TO)
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    assert smtp.handler.logins == [USER]
    [msg] = smtp.handler.messages
    assert msg["Subject"] == "[FIRING] Error spike on Production server (key_abc123)"
    assert msg["Message-ID"] == f"<{n.idempotency_key}@keypulse.test>"
    assert msg["In-Reply-To"] is None
    assert msg["To"] == "ops@example.com, oncall@example.com"
    assert smtp.handler.envelopes[0].rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "error rate 12.50% > 5% over 5m" in text.get_content()
    assert "<h2" in html.get_content()
    assert n.fingerprint in html.get_content()


async def test_resolved_mail_threads_onto_the_firing_one(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    notifier = EmailNotifier(config(smtp, tls_files))
    firing, resolved = notification(), notification(NotificationKind.RESOLVED)
    assert (await notifier.send(firing, TO)).outcome is DeliveryOutcome.DELIVERED
    assert (await notifier.send(resolved, TO)).outcome is DeliveryOutcome.DELIVERED
    first, second = smtp.handler.messages
    assert second["Subject"].startswith("[RESOLVED] Error spike on Production server")
    parent = message_id(firing_key(firing.fingerprint, firing.episode), "keypulse.test")
    assert first["Message-ID"] == parent
    assert second["In-Reply-To"] == parent
    assert second["References"] == parent
    assert second["Message-ID"] != parent


async def test_implicit_tls(tls_files: TlsFiles, notification: Callable[..., Notification]) -> None:
    info = await _serve(tls_files, implicit_tls=True)
    try:
        cfg = config(info, tls_files, security="tls")
        result = await EmailNotifier(cfg).send(notification(), TO)
    finally:
        await info.receiver.stop()
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    assert len(info.handler.messages) == 1
    assert info.handler.logins == [USER]


@pytest.mark.parametrize(
    ("phase", "reply", "outcome"),
    [
        ("RCPT", "421 4.3.2 Service shutting down", DeliveryOutcome.RETRYABLE),
        ("RCPT", "450 4.2.1 Mailbox busy", DeliveryOutcome.RETRYABLE),
        ("RCPT", "550 5.1.1 No such user", DeliveryOutcome.PERMANENT),
        ("DATA", "421 4.3.0 Try again later", DeliveryOutcome.RETRYABLE),
        ("DATA", "451 4.3.0 Local error", DeliveryOutcome.RETRYABLE),
        ("DATA", "550 5.7.1 Rejected", DeliveryOutcome.PERMANENT),
        ("DATA", "554 5.6.0 Message refused", DeliveryOutcome.PERMANENT),
    ],
)
async def test_scripted_smtp_replies(
    smtp: SmtpServer,
    tls_files: TlsFiles,
    notification: Callable[..., Notification],
    phase: str,
    reply: str,
    outcome: DeliveryOutcome,
) -> None:
    smtp.handler.script[phase] = reply
    result = await EmailNotifier(config(smtp, tls_files)).send(notification(), TO)
    assert result.outcome is outcome, result
    if not reply.startswith("421"):  # aiosmtpd closes the connection after a 421
        assert reply.split(maxsplit=1)[0] in result.detail


async def test_disconnect_mid_data_is_retryable(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    smtp.handler.drop_in_data = True
    result = await EmailNotifier(config(smtp, tls_files)).send(notification(), TO)
    assert result.outcome is DeliveryOutcome.RETRYABLE, result
    assert smtp.handler.messages == []


async def test_wrong_password_is_permanent(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    result = await EmailNotifier(config(smtp, tls_files, password="nope")).send(notification(), TO)
    assert result.outcome is DeliveryOutcome.PERMANENT, result
    assert "535" in result.detail


async def test_untrusted_certificate_is_permanent(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    result = await EmailNotifier(config(smtp, tls_files, ca_file=None)).send(notification(), TO)
    assert result.outcome is DeliveryOutcome.PERMANENT, result
    assert smtp.handler.messages == []


async def test_no_server_is_retryable(
    tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    cfg = EmailConfig(host="127.0.0.1", port=9, timeout_s=2, ca_file=str(tls_files.cert))
    result = await EmailNotifier(cfg).send(notification(), TO)
    assert result.outcome is DeliveryOutcome.RETRYABLE, result


async def test_header_injection_in_key_name_is_flattened(
    smtp: SmtpServer, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    n = notification(key_name="prod\r\nBcc: attacker@evil.test")
    result = await EmailNotifier(config(smtp, tls_files)).send(n, TO)
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    [msg] = smtp.handler.messages
    assert msg["Bcc"] is None
    assert smtp.handler.envelopes[0].rcpt_tos == ["ops@example.com", "oncall@example.com"]
