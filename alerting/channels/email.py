"""Email delivery over SMTP with aiosmtplib.

Contract of `EmailNotifier.send`: one SMTP session per call (STARTTLS, implicit TLS or
plain, optional AUTH), a multipart text + HTML message with the subject
`[FIRING] <rule> on <key name> (key_...)` / `[RESOLVED] ...`, `Message-ID:
<{idempotency key}@{message_id_domain}>`, and for resolved and repeat mails
`In-Reply-To`/`References` pointing at the episode's firing Message-ID so they thread.
Outcomes: accepted delivered (recipients refused individually are named in the detail);
SMTP 4xx, timeouts and disconnects retryable; SMTP 5xx, missing STARTTLS or AUTH support
and certificate failures permanent.
"""

from __future__ import annotations

import html
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field

from alerting import render
from alerting.fingerprint import firing_key
from alerting.notifier import SendResult
from alerting.retry import classify_smtp_code
from schemas.alerts import Channel, EmailChannel, Notification, NotificationKind


class EmailConfig(BaseModel):
    """SMTP settings. `security`: "starttls" (port 587), "tls" (implicit, 465) or "none"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    sender: str = "keypulse <alerts@keypulse.invalid>"
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    ca_file: str | None = None
    message_id_domain: str = Field(default="keypulse.invalid", pattern=r"^[A-Za-z0-9.-]+$")


def message_id(key: str, domain: str) -> str:
    """The Message-ID for an idempotency key."""
    return f"<{key}@{domain}>"


def _html_body(n: Notification) -> str:
    rows = [
        ("Rule", f"{n.rule.name} ({n.rule.rule_id})"),
        ("Key", render.subject_label(n)),
        ("Condition", render.condition(n)),
        *([("Evidence", n.evidence)] if n.evidence else []),
        ("State", n.state.value),
        ("Started", n.started_at.isoformat()),
    ]
    if n.ended_at is not None:
        rows.append(("Ended", n.ended_at.isoformat()))
    rows.append(("Fingerprint", f"{n.fingerprint} (episode {n.episode})"))
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th>"
        f"<td>{html.escape(render.one_line(v, 500))}</td></tr>"
        for k, v in rows
    )
    colour = "#2e7d32" if n.state is NotificationKind.RESOLVED else "#c62828"
    return (
        "<!doctype html><html><body>"
        f"<h2 style='color:{colour}'>{html.escape(render.title(n))}</h2>"
        f"<table cellpadding='4'>{cells}</table></body></html>"
    )


def build_message(n: Notification, channel: EmailChannel, config: EmailConfig) -> EmailMessage:
    """The multipart/alternative message for one notification (pure)."""
    msg = EmailMessage()
    msg["Subject"] = render.title(n)
    msg["From"] = config.sender
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = format_datetime(n.occurred_at)
    msg["Message-ID"] = message_id(n.idempotency_key, config.message_id_domain)
    if n.state is not NotificationKind.FIRING:
        parent = message_id(firing_key(n.fingerprint, n.episode), config.message_id_domain)
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Keypulse-Fingerprint"] = n.fingerprint
    msg.set_content("\n".join(render.summary_lines(n)) + "\n")
    msg.add_alternative(_html_body(n), subtype="html")
    return msg


class EmailNotifier:
    """A `Notifier` for `EmailChannel`s."""

    def __init__(self, config: EmailConfig) -> None:
        self._config = config
        self._tls: ssl.SSLContext | None = None
        if config.security != "none":
            self._tls = ssl.create_default_context(cafile=config.ca_file)

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        if not isinstance(channel, EmailChannel):
            return SendResult.permanent(f"email notifier got a {channel.type} channel")
        cfg = self._config
        message = build_message(notification, channel, cfg)
        try:
            refused, reply = await aiosmtplib.send(
                message,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.security == "tls",
                start_tls=cfg.security == "starttls",
                tls_context=self._tls,
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if any(400 <= c < 500 for c in codes):
                return SendResult.retryable(f"recipients refused: {detail}")
            return SendResult.permanent(f"recipients refused: {detail}")
        except aiosmtplib.SMTPResponseException as exc:
            return classify_smtp_code(exc.code, render.one_line(exc.message))
        except (
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
        ) as exc:
            return SendResult.retryable(f"{type(exc).__name__}: {exc}")
        except aiosmtplib.SMTPException as exc:  # missing STARTTLS/AUTH support and the like
            return SendResult.permanent(f"{type(exc).__name__}: {exc}")
        except ssl.SSLCertVerificationError as exc:
            return SendResult.permanent(f"TLS certificate rejected: {exc.verify_message}")
        except (OSError, TimeoutError) as exc:
            return SendResult.retryable(f"{type(exc).__name__}: {exc}")
        detail = render.one_line(reply, 200)
        if refused:
            detail += "; refused: " + ", ".join(f"{a} ({r.code})" for a, r in refused.items())
        return SendResult.delivered(detail)
