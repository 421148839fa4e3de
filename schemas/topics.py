"""The topic registry: every topic keypulse uses, with its key, value model and sizing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY_MS = 24 * 3600 * 1000


class MessageKey(StrEnum):
    ACCOUNT_ID = "account_id"
    KEY_ID_OR_NONE = "key_id or none"
    ORIGINAL_KEY = "original key"
    RULE_ID = "rule_id"
    FINGERPRINT = "fingerprint"
    KEY_ID = "key_id"
    STATE_RECORD = "account/<id>[/<chunk>] or checkpoint/<partition>/<writer>"


@dataclass(frozen=True)
class TopicSpec:
    base_name: str
    key: MessageKey
    value: str  # the value model's name, e.g. "RequestBatch | RequestCompleted"
    partitions: int
    retention_ms: int  # -1: forever
    description: str
    compacted: bool = False
    """Kafka keeps the newest record per message key (cleanup.policy=compact, plus delete
    when there is a retention)."""

    def name(self, prefix: str = "") -> str:
        return f"{prefix}{self.base_name}"


KEY_EVENTS = TopicSpec(
    "keypulse.key-events",
    MessageKey.ACCOUNT_ID,
    "KeyEvent",
    4,
    -1,
    "one lifecycle event per message, ordered per account",
)
REQUESTS = TopicSpec(
    "keypulse.requests",
    MessageKey.KEY_ID_OR_NONE,
    "RequestBatch | RequestCompleted",
    4,
    7 * DAY_MS,
    "request events, usually many per record in a batch envelope",
)
DEAD_LETTERS = TopicSpec(
    "keypulse.dead-letters",
    MessageKey.ORIGINAL_KEY,
    "original bytes",
    1,
    30 * DAY_MS,
    "undecodable records of every consumed topic, with headers: reason, error, source"
    " topic/partition/offset",
)
ALERT_RULES = TopicSpec(
    "keypulse.alert-rules",
    MessageKey.RULE_ID,
    "AlertRuleEvent",
    1,
    -1,
    "alert rule created/updated/deleted",
)
NOTIFICATIONS = TopicSpec(
    "keypulse.notifications",
    MessageKey.FINGERPRINT,
    "Notification",
    4,
    7 * DAY_MS,
    "alert transitions to deliver, each with a stable idempotency key",
)

RENDER_COUNTS = TopicSpec(
    "keypulse.render-counts",
    MessageKey.KEY_ID,
    "RenderCount",
    1,
    2 * DAY_MS,
    "each verifier process's renders per test key and UTC day (its latest count wins),"
    " so that processes share the 100-renders-a-day quota",
)
KEY_STATE = TopicSpec(
    "keypulse.key-state",
    MessageKey.STATE_RECORD,
    "key-state snapshot records (schemas.key_state)",
    1,
    -1,
    "snapshots of account ledgers, so a follower starts from them instead of replaying"
    " all of keypulse.key-events",
    compacted=True,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    KEY_EVENTS,
    REQUESTS,
    DEAD_LETTERS,
    ALERT_RULES,
    NOTIFICATIONS,
    RENDER_COUNTS,
    KEY_STATE,
)


@dataclass(frozen=True)
class TopicNames:
    """The concrete topic names of one deployment (registry names with its prefix)."""

    key_events: str
    requests: str
    dead_letters: str
    alert_rules: str
    notifications: str
    render_counts: str
    key_state: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> TopicNames:
        return cls(
            key_events=KEY_EVENTS.name(prefix),
            requests=REQUESTS.name(prefix),
            dead_letters=DEAD_LETTERS.name(prefix),
            alert_rules=ALERT_RULES.name(prefix),
            notifications=NOTIFICATIONS.name(prefix),
            render_counts=RENDER_COUNTS.name(prefix),
            key_state=KEY_STATE.name(prefix),
        )
