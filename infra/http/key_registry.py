"""The HTTP app's key service and what it reads from it: the registry the management API
authenticates against, decides commands with and answers key metadata from.

`KeyRegistry` holds one `KeyService` (`streams.keyservice.service`): either the one the
composition root handed over (`ApiRuntime.keys`; its owner closes it) or one it starts
itself with `start_key_service` on a background thread when the app starts (`start()`),
trying again every few seconds until the key-events topic can be read, and closes at
shutdown. The app serves meanwhile: `/readyz` says not ready, and every read of the
registry raises `Unavailable` (HTTP 503 with `Retry-After`), never a wrong "unknown key".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from schemas.key_ledger import AccountLedger, KeyRecord
from streams.client.key_follower import NotReady
from streams.keyservice.service import KeyService, Unavailable, start_key_service

log = logging.getLogger(__name__)

RETRY_S = 2.0
"""Pause between two attempts to start the key service."""

Starter = Callable[[], KeyService]


class KeyRegistry:
    def __init__(self, service: KeyService | None = None, starter: Starter | None = None) -> None:
        if service is None and starter is None:
            raise ValueError("a KeyRegistry needs a key service or a way to start one")
        self._service = service
        self._starter = starter
        self._owned = service is None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def starting(
        cls, bootstrap_servers: str, topic: str, state_topic: str | None = None
    ) -> KeyRegistry:
        """A registry that starts its own key service on `topic` (see `start`), which
        starts from and keeps up the key-state snapshot on `state_topic`."""
        return cls(
            starter=lambda: start_key_service(
                bootstrap_servers,
                topic,
                client_id="keypulse-api-keys",
                state_topic=state_topic,
                write_state=state_topic is not None,
            )
        )

    def start(self) -> None:
        """Start the key service in the background (no-op for a handed-over service)."""
        if self._service is None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="key-registry", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._starter is not None
        failures = 0
        while not self._stop.is_set():
            try:
                service = self._starter()
            except Exception as exc:  # broker down, topic missing: keep trying
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "key service not started (attempt %d): %r", failures, exc)
                self._stop.wait(RETRY_S)
                continue
            with self._lock:
                closed = self._stop.is_set()
                if not closed:
                    self._service = service
            if closed:  # the app stopped while the service was starting
                service.close()
                return
            log.info("key service started after %d failed attempt(s)", failures)
            return

    def close(self) -> None:
        """Stop starting and close the service this registry started. An attempt still
        under way is not waited for beyond a moment: it closes what it gets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        with self._lock:
            service = self._service if self._owned else None
            if self._owned:
                self._service = None
        if service is not None:
            service.close()

    @property
    def ready(self) -> bool:
        """The key service runs and its follower has read the key-events topic."""
        service = self._service
        return service is not None and service.follower.ready

    def service(self) -> KeyService:
        service = self._service
        if service is None or not service.follower.ready:
            raise Unavailable("the key registry is still loading; retry in a moment")
        return service

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The registry's key with this secret hash (None: unknown)."""
        try:
            return self.service().follower.key_by_hash(secret_hash)
        except NotReady as exc:
            raise Unavailable(str(exc)) from None

    def account(self, account_id: str) -> AccountLedger | None:
        """A copy of the account's state, exact up to this process's last command."""
        try:
            return self.service().follower.snapshot(account_id)
        except NotReady as exc:
            raise Unavailable(str(exc)) from None

    def account_if_ready(self, account_id: str) -> AccountLedger | None:
        """`account`, or None while the registry is not ready (reads that can fall back
        to the projection)."""
        try:
            return self.account(account_id)
        except Unavailable:
            return None
