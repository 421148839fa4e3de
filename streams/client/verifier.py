"""`KeyVerifier`: the per-request key check an API embeds, answered from memory.

`verify(presented, *, client_ip=None, render=False, now=None)` is
`hash_secret` -> `KeyFollower.key_by_hash` -> the pure verdict
(`streams.client.verdicts.decide`; `check_secret` says why a string no key has is not a
key), and for a test-key render the quota
(`streams.client.quota`). Verdicts: valid, malformed (with the hint), unknown, revoked,
deleted, expired, ip_not_allowed, quota_exceeded; each with a message a developer can act
on. A test key's verdict carries `watermark=True`.

Environment (`production`, the default, or `development`): a live key verified in
development and a test key verified in production are flagged: still `valid`, with
`warning` set and the warning in `message`.

State: the key-events topic folded by a `KeyFollower`, either one the verifier starts
(`KeyVerifier.connect`, closed by `close()`) or one handed over (the HTTP app shares its
key service's; its owner closes it). A revocation is seen as soon as the follower has read
its event. Before the follower has caught up, `verify` raises the follower's `NotReady`
(a well-formed key is never called "unknown" from a partial state); a malformed string is
refused without the state. A render needs the other processes' counts too: with sharing
(a render-counts topic) `verify(render=True)` raises `NotReady` until those are read.

Allow-lists are compiled into `ipaddress` networks once per distinct allow-list.
`outcomes`, when given, is told every verdict (`OutcomeSink.record`, which must not
block), with, for a `malformed` or `unknown` verdict, the presented string's
`schemas.requests.presented_digest` (16 hex digits of its SHA-256), so distinct bad
strings from one client can be counted; never the string. Secrets are never logged or
kept: only their hash is looked up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from schemas.cidr import Network, compile_networks
from schemas.key_format import SECRET_LENGTH, Malformed, check_secret, hash_secret
from schemas.key_ledger import KeyRecord
from schemas.keys import KeyType
from schemas.requests import KEYLESS_OUTCOMES, presented_digest
from streams.client.key_follower import FollowerConfig, KeyFollower, NotReady
from streams.client.quota import RenderCountSharing, RenderQuota, SharingConfig
from streams.client.verdicts import (
    UNKNOWN,
    Environment,
    Verdict,
    Verification,
    decide,
    malformed,
    with_quota,
)

__all__ = ["KeyVerifier", "NotReady", "OutcomeSink"]

_NO_NETWORKS: tuple[Network, ...] = ()


class OutcomeSink(Protocol):
    """Where verification outcomes go (e.g. a recorder batching them onto Kafka).
    Called on the verifying thread for every verdict: it must return at once.
    `presented_digest` is given for `malformed` and `unknown` verdicts only."""

    def record(
        self,
        outcome: str,
        key_id: str | None,
        account_id: str | None,
        client_ip: str | None,
        at: datetime,
        presented_digest: str | None = None,
    ) -> None: ...


class KeyVerifier:
    def __init__(
        self,
        follower: KeyFollower,
        *,
        environment: Environment | str = Environment.PRODUCTION,
        quota: RenderQuota | None = None,
        sharing: RenderCountSharing | None = None,
        outcomes: OutcomeSink | None = None,
        owns_follower: bool = False,
    ) -> None:
        """A verifier over a started `follower`. `sharing` (started by the caller, closed
        by `close()`) shares `quota`'s counts with other processes; without it the quota
        counts this process's renders only."""
        self.follower = follower
        self.environment = Environment(environment)
        self.quota = sharing.quota if sharing is not None else quota or RenderQuota()
        self.sharing = sharing
        self.outcomes = outcomes
        self._owns_follower = owns_follower
        self._networks: dict[tuple[str, ...], tuple[Network, ...]] = {}
        self._valid: dict[str, tuple[KeyRecord, Verification]] = {}

    @classmethod
    def connect(
        cls,
        bootstrap_servers: str,
        key_events_topic: str,
        render_counts_topic: str | None = None,
        *,
        environment: Environment | str = Environment.PRODUCTION,
        outcomes: OutcomeSink | None = None,
        client_id: str = "keypulse-verifier",
        key_state_topic: str | None = None,
    ) -> KeyVerifier:
        """A verifier with its own follower (and render-count sharing when
        `render_counts_topic` is given), started; `wait_ready` before the first verify.
        With `key_state_topic` it starts from the key-state snapshot (fast at 100,000
        keys) and reads the key events after it."""
        follower = KeyFollower(
            FollowerConfig(
                bootstrap_servers,
                key_events_topic,
                client_id=client_id,
                state_topic=key_state_topic,
            )
        ).start()
        sharing = None
        if render_counts_topic is not None:
            config = SharingConfig(bootstrap_servers, render_counts_topic, client_id=client_id)
            sharing = RenderCountSharing(RenderQuota(), config).start()
        return cls(
            follower,
            environment=environment,
            sharing=sharing,
            outcomes=outcomes,
            owns_follower=True,
        )

    # -- readiness -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The key state is read (and, with sharing, today's render counts)."""
        return self.follower.ready and (self.sharing is None or self.sharing.caught_up)

    def wait_ready(self, timeout: float) -> None:
        """Block until `ready`; `NotReady` (saying what is missing) after `timeout` s."""
        self.follower.wait_ready(timeout)
        if self.sharing is not None and not self.sharing.wait_caught_up(timeout):
            raise NotReady(self._sharing_not_ready())

    def _sharing_not_ready(self) -> str:
        assert self.sharing is not None
        failure = self.sharing.failure
        if failure is not None:
            return f"render counts cannot be shared ({failure!r}); renders are refused"
        return f"still reading today's render counts from {self.sharing.config.topic}"

    # -- the check -------------------------------------------------------------------

    def verify(
        self,
        presented: str,
        *,
        client_ip: str | None = None,
        render: bool = False,
        now: datetime | None = None,
    ) -> Verification:
        """The verdict on `presented` (see the module). `render=True` counts a render of a
        valid test key against its quota (100 per UTC day) and may answer
        `quota_exceeded`. Raises `NotReady` before the state is read."""
        at = now or datetime.now(UTC)
        result = self._verdict(presented, at, client_ip)
        if render and result.verdict is Verdict.VALID and result.key_type is KeyType.TEST:
            if self.sharing is not None and not self.sharing.caught_up:
                raise NotReady(self._sharing_not_ready())
            assert result.key_id is not None
            result = with_quota(result, self.quota.admit(result.key_id, at))
        verdict = result.verdict.value
        if self.outcomes is not None:
            digest = presented_digest(presented) if verdict in KEYLESS_OUTCOMES else None
            self.outcomes.record(verdict, result.key_id, result.account_id, client_ip, at, digest)
        return result

    def _verdict(self, presented: str, at: datetime, client_ip: str | None) -> Verification:
        """Look the hash up first: a key found by the hash of `presented` is `presented`
        exactly, hence well-formed; only a string no key has is parsed for the hint (so a
        valid key costs one hash and two dict lookups, not a parse)."""
        if len(presented) == SECRET_LENGTH:
            try:
                record = self.follower.key_by_hash(hash_secret(presented))
            except NotReady:
                parsed = check_secret(presented)
                if isinstance(parsed, Malformed):
                    return malformed(parsed)
                raise
            if record is not None:
                return self._decided(record, at, client_ip)
        parsed = check_secret(presented)
        if isinstance(parsed, Malformed):
            return malformed(parsed)
        return UNKNOWN  # well-formed, and no key has this secret

    def _decided(self, record: KeyRecord, at: datetime, client_ip: str | None) -> Verification:
        """`decide`, with the valid answer of a key without expiry or allow-list kept
        until its record changes (the follower replaces a record on every change)."""
        plain = record.expires_at is None and not record.allowed_cidrs
        if plain:
            cached = self._valid.get(record.secret_hash)
            if cached is not None and cached[0] is record:
                return cached[1]
        networks = self._compiled(record.allowed_cidrs) if record.allowed_cidrs else _NO_NETWORKS
        result = decide(record, at, client_ip, networks, self.environment)
        if plain and result.verdict is Verdict.VALID:
            self._valid[record.secret_hash] = (record, result)
        return result

    def _compiled(self, cidrs: tuple[str, ...]) -> tuple[Network, ...]:
        networks = self._networks.get(cidrs)
        if networks is None:
            try:
                networks = compile_networks(cidrs)
            except ValueError:  # the fold normalises; a bad entry allows nothing
                networks = compile_networks(c for c in cidrs if _is_network(c))
            self._networks[cidrs] = networks
        return networks

    def close(self) -> None:
        if self.sharing is not None:
            self.sharing.close()
        if self._owns_follower:
            self.follower.close()

    def __enter__(self) -> KeyVerifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _is_network(cidr: str) -> bool:
    try:
        compile_networks([cidr])
    except ValueError:
        return False
    return True
