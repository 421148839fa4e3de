"""What the API Keys page shows (pure; every function that judges time takes `now`).

- `choose_page`: which keys the page lists: the account's keys (the registry's, then any
  only the projection knows, as `infra.http.key_views.listing` merges them) filtered by
  `KeyQuery` (a name or key-id fragment, a status), newest first, `PER_PAGE` at a time.
  Only the chosen page's keys are then read in full (`KeyOut`, activity, daily usage).
- `key_row`: one table row: type and access badges, created and last-used times (relative,
  with the last-used client IP), the status badges (`status_badges`), the request counts
  and a sparkline of requests per day (`spark`: SVG polyline coordinates), and which
  actions the row's menu offers.
- `plan_view`: the plan and limits line ("1 of 2 live keys, ... on Free") and, per limit
  class, whether a new key of that class is refused and why (`limit_reason`).

Status badges and where each comes from:
- `active` / `revoked` / `expired`: the key's status at `now`; `expiring soon`: active
  and expiring within 7 days (`KeyOut.expiring_soon`; a rolled key until its overlap ends);
- `over quota`: an active test key whose renders today (the UTC day, the quota's window)
  reached `TEST_KEY_DAILY_RENDERS`, from the key's day row in the rollup;
- `elevated errors`: a firing (or recovering) `error_rate` or `error_pattern` alert
  instance for the key (the account's own rules: every account has the default
  `error_pattern` misuse rule, judged against the key's own baseline);
- `unknown IP`: a firing (or recovering) `unknown_ip` alert instance for the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from math import ceil
from urllib.parse import quote, urlencode

from infra.console.formats import ago, until, when
from infra.http.key_views import KeyOut
from schemas.alerts import RuleKind
from schemas.key_ledger import AccountLedger, KeyRecord, KeyStatus
from schemas.plans import TEST_KEY_DAILY_RENDERS

__all__ = [
    "ACTIONS",
    "PER_PAGE",
    "SPARK_DAYS",
    "Badge",
    "ClassLimit",
    "KeyQuery",
    "KeyRowView",
    "KeyUsage",
    "Listed",
    "PageChoice",
    "PlanView",
    "Spark",
    "actions_for",
    "choose_page",
    "key_row",
    "limit_reason",
    "listed_keys",
    "plan_view",
    "rows",
    "spark",
    "spark_points",
    "status_badges",
]

PER_PAGE = 50
"""Keys per page (the default page is the newest 50)."""
SPARK_DAYS = 30
"""The sparkline's points: requests per UTC day, the last 30 days (today last)."""
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 120, 28, 2
STATUS_FILTERS = ("", "active", "revoked", "expired")
"""The status filter's values ("": every status)."""
ERROR_KINDS = frozenset({RuleKind.ERROR_RATE.value, RuleKind.ERROR_PATTERN.value})
IP_KINDS = frozenset({RuleKind.UNKNOWN_IP.value})
BADGE_KINDS = ERROR_KINDS | IP_KINDS
"""The alert kinds the page shows as badges (the reads ask only for these)."""
LIMIT_CLASSES = ("live", "test", "admin")


# --------------------------------------------------------------------------- choosing


@dataclass(frozen=True)
class KeyQuery:
    """The page's filter and position (from the URL's `q`, `status`, `page`)."""

    q: str = ""
    status: str = ""
    page: int = 1

    @classmethod
    def of(cls, q: str | None, status: str | None, page: str | int | None) -> KeyQuery:
        """Tolerant of anything in the URL: an unknown status or a bad page is ignored."""
        wanted = (status or "").strip().lower()
        try:
            number = max(1, int(page or 1))
        except ValueError:
            number = 1
        return cls((q or "").strip()[:100], wanted if wanted in STATUS_FILTERS else "", number)

    def href(self, page: int | None = None) -> str:
        """The query string of this filter at `page` (default: its own), "" if none."""
        params = {"q": self.q, "status": self.status}
        number = self.page if page is None else page
        fields = {k: v for k, v in params.items() if v}
        if number > 1:
            fields["page"] = str(number)
        return "?" + urlencode(fields) if fields else ""

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.status)


@dataclass(frozen=True)
class Listed:
    """What choosing a page needs of a key: its id, name, creation and status at `now`."""

    key_id: str
    name: str
    created_at: datetime
    status: str


def listed_keys(
    records: Iterable[KeyRecord], projection_only: Iterable[KeyOut], now: datetime
) -> list[Listed]:
    """The account's keys as the listing has them: the registry's records (deleted ones
    left out) and `projection_only`, the keys only the projection knows."""
    out = [
        Listed(r.key_id, r.name, r.created_at, r.status_at(now).value)
        for r in records
        if r.status is not KeyStatus.DELETED
    ]
    out += [Listed(k.key_id, k.name, k.created_at, k.status) for k in projection_only]
    return out


@dataclass(frozen=True)
class PageChoice:
    key_ids: list[str]
    """The page's keys, in the order shown (newest first)."""
    page: int
    pages: int
    matched: int
    total: int
    first: int
    """1-based position of the page's first key among the matches (0: none)."""

    @property
    def last(self) -> int:
        return self.first + len(self.key_ids) - 1 if self.key_ids else 0


def _matches(key: Listed, query: KeyQuery) -> bool:
    if query.status and key.status != query.status:
        return False
    needle = query.q.lower()
    return not needle or needle in key.name.lower() or needle in key.key_id.lower()


def choose_page(keys: Sequence[Listed], query: KeyQuery, per_page: int = PER_PAGE) -> PageChoice:
    """The keys matching `query`, newest first, and the page `query.page` of them (the
    last page when it asks for one beyond it)."""
    matched = sorted(
        (k for k in keys if _matches(k, query)),
        key=lambda k: (k.created_at, k.key_id),
        reverse=True,
    )
    pages = max(1, ceil(len(matched) / per_page))
    page = min(query.page, pages)
    start = (page - 1) * per_page
    chosen = matched[start : start + per_page]
    return PageChoice(
        key_ids=[k.key_id for k in chosen],
        page=page,
        pages=pages,
        matched=len(matched),
        total=len(keys),
        first=start + 1 if chosen else 0,
    )


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Badge:
    kind: str
    """The CSS suffix: `.badge-<kind>`."""
    label: str
    title: str = ""


@dataclass(frozen=True)
class KeyUsage:
    """A shown key's usage: requests in the last 24h, 7d and 30d (`windows`), per UTC
    day over the last `SPARK_DAYS` days (`per_day`, oldest first, today last) and renders
    today."""

    windows: tuple[int, int, int] = (0, 0, 0)
    per_day: tuple[int, ...] = (0,) * SPARK_DAYS
    renders_today: int = 0


NO_USAGE = KeyUsage()


@dataclass(frozen=True)
class Spark:
    points: str
    """The `<polyline points>` value."""
    label: str
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT


@dataclass(frozen=True)
class KeyRowView:
    key_id: str
    name: str
    hint: str
    type_badge: Badge
    access_badge: Badge | None
    created: str
    created_iso: str
    last_used: str
    last_used_iso: str
    last_used_ip: str
    badges: tuple[Badge, ...]
    requests_24h: str
    requests_7d: str
    requests_30d: str
    spark: Spark
    actions: frozenset[str]
    """What the row's menu offers (`actions_for`)."""
    note: str = ""
    """A roll's link to the other key ("rolled to key_…", "rolled from key_…")."""

    @property
    def path(self) -> str:
        """The key's detail page, under the console's base."""
        return f"/keys/{quote(self.key_id, safe='')}"


def status_badges(
    key: KeyOut, usage: KeyUsage, firing: frozenset[str], now: datetime
) -> tuple[Badge, ...]:
    """The row's status badges (see the module docstring for their sources)."""
    badges = [Badge(key.status, key.status, _status_title(key))]
    if key.expiring_soon and key.expires_at is not None:
        title = f"Expires {until(key.expires_at, now)} ({when(key.expires_at)})"
        badges.append(Badge("expiring_soon", "expiring soon", title))
    if key.status != "active":
        return tuple(badges)
    if key.type == "test" and usage.renders_today >= TEST_KEY_DAILY_RENDERS:
        title = (
            f"{usage.renders_today:,} renders today: test keys have {TEST_KEY_DAILY_RENDERS} "
            "a day (resets at 00:00 UTC)"
        )
        badges.append(Badge("over_quota", "over quota", title))
    if firing & ERROR_KINDS:
        badges.append(Badge("elevated_errors", "elevated errors", "An error alert is firing"))
    if firing & IP_KINDS:
        title = "An unknown-IP alert is firing: requests from an address this key had not used"
        badges.append(Badge("unknown_ip", "unknown IP", title))
    return tuple(badges)


def _status_title(key: KeyOut) -> str:
    if key.status == "revoked" and key.revoked_at is not None:
        reason = f" ({key.revoke_reason})" if key.revoke_reason else ""
        return f"Revoked {when(key.revoked_at)}{reason}"
    if key.status == "expired" and key.expires_at is not None:
        return f"Expired {when(key.expires_at)}"
    return ""


def spark_points(
    values: Sequence[int],
    width: int = SPARK_WIDTH,
    height: int = SPARK_HEIGHT,
    pad: int = SPARK_PAD,
) -> str:
    """SVG polyline coordinates of `values`, left to right across `width`, scaled so the
    largest value touches the top (less `pad`) and zero sits on the bottom; all zeros
    (or no peak) draw a flat line along the bottom."""
    if not values:
        return ""
    peak = max(values)
    span_x = width - 2 * pad
    span_y = height - 2 * pad
    step = span_x / (len(values) - 1) if len(values) > 1 else 0.0
    points = []
    for i, value in enumerate(values):
        x = pad + i * step
        y = height - pad - (value / peak * span_y if peak > 0 else 0.0)
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)


def spark(usage: KeyUsage) -> Spark:
    total = sum(usage.per_day)
    days = len(usage.per_day)
    label = (
        f"Requests per day, last {days} days: {total:,} in total, at most "
        f"{max(usage.per_day, default=0):,} in a day"
        if total
        else f"No requests in the last {days} days"
    )
    return Spark(spark_points(usage.per_day), label)


ACTIONS = ("rename", "roll", "revoke", "delete")


def actions_for(status: str, replaced_by: str | None) -> frozenset[str]:
    """The changes a key in `status` can take, as the key service decides them: any key
    can be renamed; an active one rolled (unless already rolled) and revoked; only a
    revoked or expired one deleted."""
    offered = {"rename"}
    if status == "active":
        offered.add("revoke")
        if replaced_by is None:
            offered.add("roll")
    if status in ("revoked", "expired"):
        offered.add("delete")
    return frozenset(offered)


def _type_badges(key: KeyOut) -> tuple[Badge, Badge | None]:
    kind = Badge(key.type, key.type)
    if key.access == "admin":
        return kind, Badge("admin", "admin", "Manages keys and alerts (this console, the API)")
    if key.access == "read_only":
        return kind, Badge("readonly", "read-only", "Reads keys, usage and alerts")
    return kind, None


def key_row(
    key: KeyOut, usage: KeyUsage | None, firing: frozenset[str], now: datetime
) -> KeyRowView:
    """One row of the keys table."""
    daily = usage or NO_USAGE
    kind, access = _type_badges(key)
    return KeyRowView(
        key_id=key.key_id,
        name=key.name,
        hint=key.hint or "",
        type_badge=kind,
        access_badge=access,
        created=key.created_at.strftime("%Y-%m-%d"),
        created_iso=key.created_at.isoformat(),
        last_used=ago(key.last_used_at, now),
        last_used_iso=key.last_used_at.isoformat() if key.last_used_at else "",
        last_used_ip=key.last_used_ip or "",
        badges=status_badges(key, daily, firing, now),
        requests_24h=f"{daily.windows[0]:,}",
        requests_7d=f"{daily.windows[1]:,}",
        requests_30d=f"{daily.windows[2]:,}",
        spark=spark(daily),
        actions=actions_for(key.status, key.replaced_by),
        note=_roll_note(key),
    )


def _roll_note(key: KeyOut) -> str:
    notes = []
    if key.replaces:
        notes.append(f"rolled from {key.replaces}")
    if key.replaced_by:
        notes.append(f"rolled to {key.replaced_by}")
    return " · ".join(notes)


def rows(
    keys: Sequence[KeyOut],
    usage: Mapping[str, KeyUsage],
    firing: Mapping[str, frozenset[str]],
    now: datetime,
) -> list[KeyRowView]:
    return [key_row(k, usage.get(k.key_id), firing.get(k.key_id, frozenset()), now) for k in keys]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClassLimit:
    limit_class: str
    count: int
    limit: int | None
    reason: str = ""
    """Why a new key of this class is refused ("" while one is allowed)."""

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit


@dataclass(frozen=True)
class PlanView:
    plan: str
    """The plan's display name, e.g. "Free"."""
    text: str
    classes: dict[str, ClassLimit] = field(default_factory=dict)

    def full(self, limit_class: str) -> bool:
        found = self.classes.get(limit_class)
        return found is not None and found.full


def limit_reason(plan: str, limit_class: str, limit: int) -> str:
    """Why a key of `limit_class` cannot be created, as the page and a refusal say it."""
    noun = "key" if limit == 1 else "keys"
    if limit_class == "admin":
        return f"Every plan allows {limit} active admin {noun}: revoke one to create another"
    return f"{plan} allows {limit} {limit_class} {noun}: revoke one or upgrade the plan"


def _count_text(limit_class: str, count: int, limit: int | None) -> str:
    if limit is None:
        return f"{count} {limit_class} {'key' if count == 1 else 'keys'} (no limit)"
    return f"{count} of {limit} {limit_class} {'key' if limit == 1 else 'keys'}"


def plan_view(ledger: AccountLedger, now: datetime) -> PlanView:
    """The plan line and per-class limits, counted as the key service counts them."""
    plan = ledger.plan.value.capitalize()
    classes: dict[str, ClassLimit] = {}
    for cls in LIMIT_CLASSES:
        limit = ledger.limit(cls)
        count = ledger.count(cls, now)
        full = limit is not None and count >= limit
        reason = limit_reason(plan, cls, limit) if full and limit is not None else ""
        classes[cls] = ClassLimit(cls, count, limit, reason)
    parts = [_count_text(c.limit_class, c.count, c.limit) for c in classes.values()]
    text = f"{', '.join(parts[:-1])} and {parts[-1]} on {plan}"
    return PlanView(plan, text, classes)
