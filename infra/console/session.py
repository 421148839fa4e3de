"""Console sign-in sessions (pure: every decision takes `now`).

A session is created when someone signs in with an admin or read-only key. The browser
holds only a random session token (an HttpOnly, SameSite=Strict cookie); the server keeps,
per token, the sha256 of the key signed in with (never the key itself), the session's
CSRF token and when it ends. Each request re-checks that key against the registry
(`Authenticator.resume`), so revoking it ends its sessions at once. Sessions live in the
serving process's memory: a restart signs everyone out (see docs/decisions.md).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = ["IDLE", "LIFETIME", "Session", "SessionStore", "csrf_matches"]

LIFETIME = timedelta(hours=12)
"""A session ends this long after sign-in, however busy."""
IDLE = timedelta(hours=1)
"""... or after this long without a request."""
MAX_SESSIONS = 10_000
"""The store drops the sessions closest to their end beyond this many."""


@dataclass(frozen=True)
class Session:
    token: str
    key_digest: str
    csrf_token: str
    started_at: datetime
    last_seen: datetime

    def ends_at(self) -> datetime:
        return min(self.started_at + LIFETIME, self.last_seen + IDLE)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form's or header's CSRF token is the session's (constant time)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class SessionStore:
    """Sessions by token, in memory."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._flashes: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, key_digest: str, now: datetime) -> Session:
        session = Session(new_token(), key_digest, new_token(), now, now)
        self._sessions[session.token] = session
        self._trim(now)
        return session

    def get(self, token: str | None, now: datetime) -> Session | None:
        """The live session of `token` (its idle clock restarted), or None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if now >= session.ends_at():
            self.end(token)
            return None
        touched = replace(session, last_seen=now)
        self._sessions[token] = touched
        return touched

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
            self._flashes.pop(token, None)

    def flash(self, token: str, message: str) -> None:
        """A one-line message for the session's next page ("Key key_abc123 revoked")."""
        if token in self._sessions:
            self._flashes.setdefault(token, []).append(message)

    def pop_flashes(self, token: str) -> list[str]:
        return self._flashes.pop(token, [])

    def _trim(self, now: datetime) -> None:
        for token, session in list(self._sessions.items()):
            if now >= session.ends_at():
                self.end(token)
        excess = len(self._sessions) - MAX_SESSIONS
        if excess > 0:
            oldest = sorted(self._sessions.values(), key=Session.ends_at)[:excess]
            for session in oldest:
                self.end(session.token)
