"""Alerting schemas: rules, rule events, instance state, history entries and notifications.

Contracts:

- Every model is frozen and rejects unknown fields, except the rule events, which extend
  `schemas.base.Event` (frozen, unknown fields ignored for forward compatibility,
  `schema_version`, UUIDv7 `event_id`, UTC `occurred_at`) and carry a `type` literal that
  discriminates them on their topic (`AlertRuleEvent`).
- Durations (`window_s`, `for_s`, `keep_firing_for_s`, `repeat_interval_s`) are whole
  seconds; they also accept strings such as ``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` and are
  stored normalised to seconds.
- A rule's `window_s` lies in 1 minute … 30 days, is a whole number of minutes, and a whole
  number of hours above 24 hours (so it can be answered from the minute or hour rollups).
- Thresholds: `request_count` counts requests, `error_rate` is a percentage 0..100 of
  requests that ended in 4xx/5xx, `latency` is milliseconds at `percentile`,
  `stale_key_presented` counts verifications of a revoked or expired key (a whole number
  ≥ 1, compared with `gte`; the kind defaults to `threshold` 1, `window_s` 15m and
  `comparator` gte when they are omitted).
- Every validation error is reported at the location of the offending field.
- Channel secrets (a webhook's `secret`, a Slack channel's `webhook_url` and `bot_token`)
  are validated as plaintext, then sealed before they are published; the fields accept
  the sealed form (`SEALED_RE`) as it is, and refuse a masked one (`MASKED_SECRET`).
- This module imports only pydantic, the standard library and `schemas.base`/`schemas.ids`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from schemas.base import Event
from schemas.ids import AccountId, KeyId

SCHEMA_VERSION = 1

MIN_WINDOW_S = 60
MAX_WINDOW_S = 30 * 86_400
MAX_DURATION_S = 30 * 86_400

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$"
)


def parse_duration(value: object) -> object:
    """Turn ``"90s"``/``"5m"``/``"1h"``/``"7d"`` into whole seconds; other inputs pass through.

    Strings of bare digits are seconds; other strings raise ValueError (reported against the
    field). Non-strings are left for the int validator.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _DURATION_RE.match(text.lower())
        if match is None:
            raise ValueError(f"expected seconds or a duration like 90s, 5m, 1h, 7d; got {value!r}")
        return int(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Duration = Annotated[int, BeforeValidator(parse_duration), Field(ge=0, le=MAX_DURATION_S)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _check_text(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError("must not contain control characters")
    return value


DisplayText = Annotated[
    str,
    Field(min_length=1, max_length=200),
    BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v),
]


class UrlError(ValueError):
    """Not an http(s) URL a notifier may call; `reason` is "scheme", "credentials" or
    "malformed" (the names `alerting.ssrf.BlockReason` gives them)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HttpUrl:
    """An http(s) URL split for connecting: `host` lower-case without brackets, `port`
    explicit or the scheme's default, `path` at least "/" followed by any "?query"."""

    url: str
    scheme: str
    host: str
    port: int
    path: str


def parse_http_url(url: str) -> HttpUrl:
    """The one parser of webhook URLs (webhook and Slack channels, the SSRF guard).

    Syntax only, no DNS: the scheme must be http or https, with a host, without
    credentials, with a valid port; a host with a backslash, "@" or white space is
    malformed. Raises `UrlError`.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlError("malformed", f"URL is malformed ({exc}); check the host and port") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlError("scheme", f"URL scheme must be http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlError("credentials", "URL must not contain credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise UrlError("malformed", "URL has no host; expected http(s)://host/path")
    if any(c in host for c in "\\@ \t"):
        raise UrlError("malformed", f"URL host {host!r} is not a valid host name")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default = 443 if scheme == "https" else 80
    return HttpUrl(url, scheme, host, default if port is None else port, path)


def _check_http_url(value: str) -> str:
    if len(value) > 2048:
        raise ValueError("URL longer than 2048 characters")
    if _CONTROL_RE.search(value) or " " in value:
        raise ValueError("URL must not contain spaces or control characters")
    parse_http_url(value)
    return value


UrlText = Annotated[str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]

SEALED_PREFIX = "kpsealed:v1:"
SEALED_RE = re.compile(
    r"^kpsealed:v1:(?P<kid>[A-Za-z0-9_-]{1,32}):(?P<hint>[A-Za-z0-9_-]{0,400}):"
    r"(?P<wrapped>[A-Za-z0-9_-]{16,200}):(?P<body>[A-Za-z0-9_-]{16,4000})$"
)
"""A channel secret sealed at rest (`alerting.sealing`): `kpsealed:v1:<kid>:<hint>:<wrapped
data key>:<ciphertext>` (base64url parts). Channel fields that hold a secret accept this
form as well as the plaintext; the plaintext is checked before it is sealed."""


def is_sealed(value: str | None) -> bool:
    """True when `value` has the sealed form (its syntax only; opening needs the key)."""
    return value is not None and SEALED_RE.match(value) is not None


MASKED_SECRET = (
    "this is the masked form a read shows; give the whole secret, or leave `channels` out "
    "of a change to keep the current ones"
)


def _not_masked(value: str) -> str:
    if "…" in value:
        raise ValueError(MASKED_SECRET)
    return value


SUBJECT_PATTERN = r"^(key_[A-Za-z0-9]{6,64}|ip:[0-9A-Fa-f:.]{2,45})$"
Subject = Annotated[str, Field(pattern=SUBJECT_PATTERN)]
"""What an alert instance watches: a key id, or `ip:<address>` for the detectors whose
subject is a client address (`credential_stuffing`)."""

IP_SUBJECT_PREFIX = "ip:"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- enums


class RuleKind(StrEnum):
    REQUEST_COUNT = "request_count"
    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    STALE_KEY_PRESENTED = "stale_key_presented"
    """A revoked or expired key still presented for verification (`verification_outcomes`)."""
    USAGE_SPIKE = "usage_spike"
    """A key's requests against the same hour of the week over the previous 3 to 6 weeks
    (robust z-score; `threshold` is the z-score, `min_requests` the volume floor)."""
    UNKNOWN_IP = "unknown_ip"
    """Requests from an address (or /24, /48) the key has not used within `lookback_s`
    (`threshold`: how many new ones)."""
    ERROR_PATTERN = "error_pattern"
    """A key's error share of `status_class` above its own baseline by `margin` points
    and above `threshold` percent."""
    CREDENTIAL_STUFFING = "credential_stuffing"
    """One client IP presenting `threshold` or more distinct invalid, revoked or expired
    keys within the window (account scope; one instance per IP)."""


MISUSE_KINDS: frozenset[RuleKind] = frozenset(
    {
        RuleKind.STALE_KEY_PRESENTED,
        RuleKind.USAGE_SPIKE,
        RuleKind.UNKNOWN_IP,
        RuleKind.ERROR_PATTERN,
        RuleKind.CREDENTIAL_STUFFING,
    }
)
"""The detectors a new account gets switched on (each one opt-out)."""


class SpikeDirection(StrEnum):
    RISE = "rise"
    DROP = "drop"
    BOTH = "both"


class IpGranularity(StrEnum):
    ADDRESS = "address"
    """Each IP address on its own."""
    PREFIX = "prefix"
    """IPv4 /24 and IPv6 /48 networks: a new address inside a known network is not new."""


class ErrorClass(StrEnum):
    ALL = "all"
    """4xx and 5xx."""
    CLIENT = "4xx"
    SERVER = "5xx"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    TOO_MANY = "429"


KIND_DEFAULTS: dict[RuleKind, dict[str, object]] = {
    RuleKind.STALE_KEY_PRESENTED: {"threshold": 1, "window_s": 900, "comparator": "gte"},
    RuleKind.USAGE_SPIKE: {
        "threshold": 3.5,
        "window_s": 3_600,
        "comparator": "gte",
        "min_requests": 50,
        "direction": "rise",
    },
    RuleKind.UNKNOWN_IP: {
        "threshold": 1,
        "window_s": 3_600,
        "comparator": "gte",
        "lookback_s": 14 * 86_400,
        "granularity": "address",
    },
    RuleKind.ERROR_PATTERN: {
        "threshold": 5,
        "window_s": 900,
        "comparator": "gte",
        "min_requests": 20,
        "margin": 10,
        "status_class": "all",
        "lookback_s": 7 * 86_400,
    },
    RuleKind.CREDENTIAL_STUFFING: {"threshold": 10, "window_s": 900, "comparator": "gte"},
}
"""What a rule of these kinds takes for each omitted field (e.g. `stale_key_presented`:
fire on the first presentation of a revoked or expired key within 15 minutes)."""

_KIND_FIELDS: dict[str, frozenset[RuleKind]] = {
    "direction": frozenset({RuleKind.USAGE_SPIKE}),
    "granularity": frozenset({RuleKind.UNKNOWN_IP}),
    "lookback_s": frozenset({RuleKind.UNKNOWN_IP, RuleKind.ERROR_PATTERN}),
    "status_class": frozenset({RuleKind.ERROR_PATTERN}),
    "margin": frozenset({RuleKind.ERROR_PATTERN}),
}
"""The kind-specific fields and the kinds that take them."""

MAX_SPIKE_WINDOW_S = 6 * 3_600
"""`usage_spike` windows: 1 minute … 6 hours (the same window a day or weeks earlier is
read from the hour rollup, which needs the window well under a day)."""


class Percentile(StrEnum):
    P50 = "p50"
    P95 = "p95"
    P99 = "p99"


class Comparator(StrEnum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"

    def holds(self, value: float, threshold: float) -> bool:
        """True when `value <op> threshold`."""
        if self is Comparator.GT:
            return value > threshold
        if self is Comparator.GTE:
            return value >= threshold
        if self is Comparator.LT:
            return value < threshold
        return value <= threshold

    @property
    def symbol(self) -> str:
        return {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}[self.value]


class AlertState(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    RESOLVED = "resolved"
    NODATA = "nodata"
    LEARNING = "learning"
    """A misuse detector without enough history for the key yet (behaves as nodata)."""
    ERROR = "error"


class NotificationKind(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    REPEAT = "repeat"


class TransitionReason(StrEnum):
    BREACHED = "breached"
    FOR_ELAPSED = "for_elapsed"
    CLEARED = "cleared"
    KEEP_FIRING_ELAPSED = "keep_firing_elapsed"
    BREACHED_AGAIN = "breached_again"
    REPEAT = "repeat"
    NO_DATA = "no_data"
    LEARNING = "learning"
    QUERY_ERROR = "query_error"
    DATA_RETURNED = "data_returned"
    RULE_DELETED = "rule_deleted"


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    DISABLE_ENDPOINT = "disable_endpoint"


# --------------------------------------------------------------------------- channels


class EmailChannel(_Frozen):
    """Mail to a fixed list of addresses."""

    type: Literal["email"] = "email"
    to: Annotated[list[str], Field(min_length=1, max_length=50)]

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for raw in value:
            address = raw.strip()
            if len(address) > 254 or not _EMAIL_RE.match(address):
                raise ValueError(f"not an email address: {address!r}")
            local, _, domain = address.rpartition("@")
            if "." not in domain:
                raise ValueError(f"email domain must contain a dot: {address!r}")
            out.append(f"{local}@{domain.lower()}")
        return out


class SlackChannel(_Frozen):
    """Slack through an incoming-webhook URL, or a bot token plus a channel.

    `webhook_url` and `bot_token` are secrets: sealed at rest (`SEALED_RE`)."""

    type: Literal["slack"] = "slack"
    webhook_url: UrlText | None = Field(default=None, repr=False)
    bot_token: str | None = Field(default=None, repr=False, validate_default=True)
    channel: str | None = Field(default=None, validate_default=True)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None or is_sealed(value):
            return value
        return _check_http_url(_not_masked(value))

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_webhook = info.data.get("webhook_url") is not None
        if value is None:
            if not has_webhook and "webhook_url" in info.data:
                raise ValueError("required unless webhook_url is given")
            return None
        if has_webhook:
            raise ValueError("give either webhook_url or bot_token + channel, not both")
        if is_sealed(value):
            return value
        if not re.fullmatch(r"xox[a-z]-[A-Za-z0-9-]{1,250}", _not_masked(value)):
            raise ValueError("expected a Slack token like xoxb-…")
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("bot_token") is not None:
                raise ValueError("required with bot_token")
            return None
        if info.data.get("webhook_url") is not None:
            raise ValueError("an incoming webhook posts to its own channel; omit channel")
        if not re.fullmatch(r"[#@]?[A-Za-z0-9._-]{1,80}", value):
            raise ValueError("expected a channel name or ID")
        return value


class WebhookChannel(_Frozen):
    """A signed HTTP POST (Standard Webhooks) to `url`; `secret` is `whsec_<base64>`
    (sealed at rest, `SEALED_RE`; `secret_bytes` needs the opened channel)."""

    type: Literal["webhook"] = "webhook"
    url: UrlText
    secret: str = Field(repr=False)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if is_sealed(value):
            return value
        if not _not_masked(value).startswith("whsec_"):
            raise ValueError("expected the Standard Webhooks form whsec_<base64>")
        try:
            raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the part after whsec_ is not valid base64") from None
        if not 24 <= len(raw) <= 64:
            raise ValueError("secret must decode to 24..64 bytes")
        return value

    @property
    def secret_bytes(self) -> bytes:
        return base64.b64decode(self.secret.removeprefix("whsec_"))


Channel = Annotated[EmailChannel | SlackChannel | WebhookChannel, Field(discriminator="type")]


# --------------------------------------------------------------------------- rules


class KeyScope(_Frozen):
    """The rule watches one key."""

    type: Literal["key"] = "key"
    key_id: KeyId


class AccountScope(_Frozen):
    """The rule watches every key of the rule's account."""

    type: Literal["account"] = "account"


RuleScope = Annotated[KeyScope | AccountScope, Field(discriminator="type")]


_NO_MIN_REQUESTS = frozenset(
    {
        RuleKind.REQUEST_COUNT,
        RuleKind.STALE_KEY_PRESENTED,
        RuleKind.UNKNOWN_IP,
        RuleKind.CREDENTIAL_STUFFING,
    }
)


class AlertRule(_Frozen):
    """A user's alert rule. Field order matters: cross-field checks read earlier fields."""

    rule_id: Identifier
    account_id: AccountId
    name: DisplayText
    scope: RuleScope
    kind: RuleKind
    percentile: Percentile | None = Field(default=None, validate_default=True)
    window_s: Annotated[int, BeforeValidator(parse_duration)]
    comparator: Comparator = Comparator.GT
    threshold: float
    min_requests: int | None = Field(default=None, validate_default=True)
    direction: SpikeDirection | None = None
    """`usage_spike`: which way counts (rise, drop or both)."""
    granularity: IpGranularity | None = None
    """`unknown_ip`: addresses, or /24 and /48 networks."""
    lookback_s: Duration | None = None
    """`unknown_ip`: how far back an address counts as known (1d … 30d); `error_pattern`:
    the baseline's span before the window (1h … 30d)."""
    status_class: ErrorClass | None = None
    """`error_pattern`: which responses count as errors."""
    margin: float | None = None
    """`error_pattern`: percentage points above the key's baseline share."""
    for_s: Duration = 0
    keep_firing_for_s: Duration = 0
    repeat_interval_s: Duration = 0
    send_resolved: bool = True
    enabled: bool = True
    channels: Annotated[list[Channel], Field(max_length=10)] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: object) -> object:
        """Fill the defaults of kinds that have them (`KIND_DEFAULTS`)."""
        if isinstance(data, dict):
            try:
                kind = RuleKind(str(data.get("kind")))
            except ValueError:
                return data
            if kind in KIND_DEFAULTS:
                given = {k: v for k, v in data.items() if v is not None}
                return KIND_DEFAULTS[kind] | given
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_text(value)

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: Percentile | None, info: ValidationInfo) -> Percentile | None:
        kind = info.data.get("kind")
        if kind is RuleKind.LATENCY and value is None:
            raise ValueError("required for latency rules (p50, p95 or p99)")
        if kind is not None and kind is not RuleKind.LATENCY and value is not None:
            raise ValueError("only latency rules take a percentile")
        return value

    @field_validator("window_s")
    @classmethod
    def _window(cls, value: int) -> int:
        if not MIN_WINDOW_S <= value <= MAX_WINDOW_S:
            raise ValueError("window must be between 1m and 30d")
        if value % 60:
            raise ValueError("window must be a whole number of minutes")
        if value > 86_400 and value % 3_600:
            raise ValueError("windows above 24h must be a whole number of hours")
        return value

    @field_validator("comparator")
    @classmethod
    def _comparator(cls, value: Comparator, info: ValidationInfo) -> Comparator:
        kind = info.data.get("kind")
        if kind in MISUSE_KINDS and value is not Comparator.GTE:
            drop = "; for falling traffic set direction to drop" if kind == "usage_spike" else ""
            raise ValueError(
                f"{kind} rules fire when their measure reaches `threshold`: use gte (the "
                f"default) or omit comparator{drop}"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a finite number ≥ 0")
        kind = info.data.get("kind")
        if kind is RuleKind.ERROR_RATE and value > 100:
            raise ValueError("error_rate thresholds are percentages 0..100")
        if kind is RuleKind.STALE_KEY_PRESENTED and (value < 1 or value != int(value)):
            raise ValueError(
                "stale_key_presented thresholds count presentations: a whole number ≥ 1 "
                "(1, the default, fires on the first one)"
            )
        if kind is RuleKind.UNKNOWN_IP and (value < 1 or value != int(value)):
            raise ValueError(
                "unknown_ip thresholds count new addresses: a whole number ≥ 1 (1, the "
                "default, fires on the first one)"
            )
        if kind is RuleKind.CREDENTIAL_STUFFING and (value < 2 or value != int(value)):
            raise ValueError(
                "credential_stuffing thresholds count distinct bad keys from one IP: a whole "
                "number ≥ 2 (default 10)"
            )
        if kind is RuleKind.USAGE_SPIKE and not 1 <= value <= 100:
            raise ValueError("usage_spike thresholds are robust z-scores 1..100 (default 3.5)")
        if kind is RuleKind.ERROR_PATTERN and value > 100:
            raise ValueError("error_pattern thresholds are percentages 0..100 (default 5)")
        return value

    @field_validator("min_requests")
    @classmethod
    def _min_requests(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        if info.data.get("kind") in _NO_MIN_REQUESTS:
            raise ValueError(
                "only error_rate, latency, error_pattern and usage_spike rules take min_requests"
            )
        if value < 1:
            raise ValueError("must be ≥ 1")
        return value

    @field_validator("repeat_interval_s")
    @classmethod
    def _repeat(cls, value: int) -> int:
        if 0 < value < 60:
            raise ValueError("must be 0 (never repeat) or at least 60 seconds")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> AlertRule:
        """Kind-specific fields only on their kinds, within their ranges."""
        for name, kinds in _KIND_FIELDS.items():
            if getattr(self, name) is not None and self.kind not in kinds:
                takes = ", ".join(sorted(kinds))
                raise ValueError(f"{name}: only {takes} rules take {name}")
        if self.kind is RuleKind.USAGE_SPIKE and self.window_s > MAX_SPIKE_WINDOW_S:
            raise ValueError("window_s: usage_spike windows are 1m … 6h (default 1h)")
        lookback = self.lookback_s
        if (
            self.kind is RuleKind.UNKNOWN_IP
            and lookback is not None
            and (not 86_400 <= lookback <= MAX_DURATION_S or lookback % 86_400)
        ):
            raise ValueError("lookback_s: whole days from 1d to 30d (default 14d)")
        if (
            self.kind is RuleKind.ERROR_PATTERN
            and lookback is not None
            and (not 3_600 <= lookback <= MAX_DURATION_S or lookback % 3_600)
        ):
            raise ValueError("lookback_s: whole hours from 1h to 30d (default 7d)")
        margin = self.margin
        if margin is not None and not (math.isfinite(margin) and 0 <= margin <= 100):
            raise ValueError("margin: percentage points 0..100 (default 10)")
        if self.kind is RuleKind.CREDENTIAL_STUFFING and not isinstance(self.scope, AccountScope):
            raise ValueError(
                "scope: credential_stuffing watches client IPs across the account; use "
                '{"type": "account"}'
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_kind_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave the kind-specific fields out while they are None, so a rule of the older
        kinds is written as before (readers that predate these fields still read it)."""
        data: dict[str, Any] = handler(self)
        for name in _KIND_FIELDS:
            if data.get(name, 0) is None:
                del data[name]
        return data

    @property
    def key_id(self) -> str | None:
        """The watched key for a key-scoped rule; None for an account-wide rule."""
        return self.scope.key_id if isinstance(self.scope, KeyScope) else None

    @property
    def effective_min_requests(self) -> int:
        """Requests a window needs before a ratio or percentile is judged (else nodata)."""
        if self.kind in _NO_MIN_REQUESTS or self.kind is RuleKind.USAGE_SPIKE:
            return 0  # usage_spike applies its volume floor itself (to the window or baseline)
        return self.min_requests if self.min_requests is not None else 1


# --------------------------------------------------------------------------- rule events


class AlertRuleCreated(Event):
    type: Literal["alert_rule_created"] = "alert_rule_created"
    rule: AlertRule


class AlertRuleUpdated(Event):
    """Replaces the whole rule; the latest event per `rule_id` wins."""

    type: Literal["alert_rule_updated"] = "alert_rule_updated"
    rule: AlertRule


class AlertRuleDeleted(Event):
    type: Literal["alert_rule_deleted"] = "alert_rule_deleted"
    rule_id: Identifier
    account_id: AccountId


AlertRuleEvent = Annotated[
    AlertRuleCreated | AlertRuleUpdated | AlertRuleDeleted, Field(discriminator="type")
]


# --------------------------------------------------------------------------- instances


class AlertInstance(_Frozen):
    """Persisted state of one rule x key instance, as the transition function sees it.

    `episode` counts firing episodes (0 before the first); an episode is open while
    `fired_at` is set. `started_at` is when the current breach began (pending or firing).
    """

    fingerprint: str
    rule_id: Identifier
    account_id: AccountId
    key_id: Subject
    state: AlertState = AlertState.NORMAL
    since: AwareDatetime | None = None
    episode: Annotated[int, Field(ge=0)] = 0
    started_at: AwareDatetime | None = None
    fired_at: AwareDatetime | None = None
    recovering_since: AwareDatetime | None = None
    last_notified_at: AwareDatetime | None = None
    repeat_n: Annotated[int, Field(ge=0)] = 0

    @property
    def episode_open(self) -> bool:
        return self.fired_at is not None


class AlertHistoryEntry(_Frozen):
    """One appended row of `alert_history`: a transition (or a repeat) and the state after it.

    Restoring the latest entry's `instance` per fingerprint restores the evaluator.
    """

    schema_version: int = SCHEMA_VERSION
    at: AwareDatetime
    from_state: AlertState
    to_state: AlertState
    reason: TransitionReason
    value: float | None
    threshold: float
    notified: NotificationKind | None
    detail: str = ""
    """Why a query failed, or the evidence of the observation (`Notification.evidence`)."""
    instance: AlertInstance


# --------------------------------------------------------------------------- notifications


class RuleRef(_Frozen):
    rule_id: Identifier
    name: str
    kind: RuleKind
    percentile: Percentile | None = None


class Notification(_Frozen):
    """One message on `keypulse.notifications` (keyed by fingerprint).

    `idempotency_key` is stable per (fingerprint, episode, firing | resolved | repeat n) and
    is used verbatim as the webhook-id, the email Message-ID local part and Slack metadata.
    """

    schema_version: int = SCHEMA_VERSION
    idempotency_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")]
    fingerprint: str
    rule: RuleRef
    account_id: AccountId
    key_id: Subject
    key_name: str
    state: NotificationKind
    value: float | None
    threshold: float
    comparator: Comparator
    window_s: int
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    episode: Annotated[int, Field(ge=1)]
    repeat_n: Annotated[int, Field(ge=0)] = 0
    occurred_at: AwareDatetime
    channels: list[Channel]
    evidence: str = ""
    """The observation in words and numbers, for kinds that explain themselves (e.g.
    `stale_key_presented`: the key, when it was revoked or expired, how often and from
    where it was presented); "" otherwise."""


class DeliveryAttempt(_Frozen):
    """One attempt to deliver a notification to one channel (a `deliveries` row)."""

    schema_version: int = SCHEMA_VERSION
    idempotency_key: str
    fingerprint: str
    channel_id: str
    channel_type: Literal["email", "slack", "webhook"]
    attempt: Annotated[int, Field(ge=1)]
    at: AwareDatetime
    outcome: DeliveryOutcome
    detail: str = ""
    next_attempt_at: AwareDatetime | None = None
    dead_letter: bool = False
