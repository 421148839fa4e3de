"""Reading the API Keys page: the key registry's state of the account (memory), then
three ClickHouse queries for the shown keys only, whatever the account's size.

1. the account's ledger from the key registry (plan, limits, every key's metadata: the
   state the key service decides on, exact up to this process's last command);
2. the page is chosen from it (`key_list_view.choose_page`: filter, newest first, at
   most `PER_PAGE` keys); nothing else is read for the keys not shown;
3. on one pooled client, for the shown keys: `key_activity` (last use and its IP, uses
   in the last hour: the reads `GET /api-keys` makes), `key_signals.page_usage` (24h, 7d
   and 30d requests, the sparkline's days, renders today: one single-table SELECT) and
   `key_signals.firing_kinds` (the alert badges);
4. `infra.http.key_views.listing` merges metadata and activity into the shown keys'
   `KeyOut`s, as the API does.

Why not `UsageQueries.list_keys`, the JSON listing's read: it counts every key of the
account (the `keys` projection joined with last use, then the rollup for all of them),
~180 ms for 2,000 keys with 2 M requests on chDB, most of the page's budget for 50 rows.
While the registry is loading (no ledger), the page falls back to it, as `/api-keys`
does: the keys are then those of the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client

from infra.console.key_list_view import (
    KeyQuery,
    KeyRowView,
    KeyUsage,
    PageChoice,
    PlanView,
    choose_page,
    listed_keys,
    plan_view,
    rows,
)
from infra.console.key_signals import firing_kinds, page_usage
from infra.http.context import RouteContext
from infra.http.key_views import KeyOut, listing
from projections.key_activity import KeyActivity, key_activity
from projections.queries import KeyRow

__all__ = ["KeyListPage", "read_key_list"]


@dataclass(frozen=True)
class KeyListPage:
    query: KeyQuery
    choice: PageChoice
    rows: list[KeyRowView]
    plan: PlanView | None
    """None while the key registry is loading (limits unknown, commands refused)."""


PageReads = tuple[dict[str, KeyActivity], dict[str, KeyUsage], dict[str, frozenset[str]]]


def read_key_list(
    ctx: RouteContext, account_id: str, query: KeyQuery, now: datetime
) -> KeyListPage:
    """The page `query` asks for (blocking: call from a thread)."""
    ledger = ctx.registry.account_if_ready(account_id)
    records = list(ledger.keys.values()) if ledger is not None else []
    projected: list[KeyRow] = []
    if ledger is None:
        projected = ctx.pool.run(lambda q: q.list_keys(account_id, now))
    only_projected = [KeyOut.of(row, now) for row in projected]
    choice = choose_page(listed_keys(records, only_projected, now), query)
    ids = choice.key_ids

    def page_reads(client: Client) -> PageReads:
        return (
            key_activity(client, account_id, ids, now),
            page_usage(client, account_id, ids, now),
            firing_kinds(client, account_id, ids),
        )

    activity, usage, firing = ctx.pool.with_client(page_reads) if ids else ({}, {}, {})
    wanted = set(ids)
    keys = listing(
        [r for r in records if r.key_id in wanted],
        [row for row in projected if row.key_id in wanted],
        now,
        activity,
    )
    order = {key_id: i for i, key_id in enumerate(ids)}
    keys.sort(key=lambda k: order[k.key_id])
    plan = plan_view(ledger, now) if ledger is not None else None
    return KeyListPage(query, choice, rows(keys, usage, firing, now), plan)
