"""The scope of an evaluation query, shared by every rule kind's SQL.

`scope_sql(query, params)` is the WHERE condition that selects the rows of a
`StatsQuery`'s scope (whole accounts, plus single keys of key-scoped rules) and adds its
parameters (`accounts`, `wide`, `keys`) to `params`. `scope_keys` reads, in one small
query over `keys FINAL`, what the registry says about the keys of the scope
(`ScopeKeys.counts` is the filter): account-wide
scopes count only the keys the registry says the account owns (not deleted), as the
account reads of `projections.queries` do; a key-scoped rule reads its key as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsQuery


def scope_sql(query: StatsQuery, params: dict[str, Any]) -> str:
    """`account_id IN … AND (account_id IN wide OR key_id IN keys)` for `query`'s scope."""
    accounts = sorted(set(query.accounts) | {a for a, _ in query.key_pairs})
    params["accounts"] = accounts
    parts = []
    if query.accounts:
        params["wide"] = list(query.accounts)
        parts.append("account_id IN {wide:Array(String)}")
    if query.key_pairs:
        params["keys"] = sorted({k for _, k in query.key_pairs})
        parts.append("key_id IN {keys:Array(String)}")
    return f"account_id IN {{accounts:Array(String)}} AND ({' OR '.join(parts) or '0'})"


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    """What the registry says about one key (its newest record)."""

    status: str
    name: str
    allowed_cidrs: tuple[str, ...]


def registered_keys(
    client: Client, accounts: Sequence[str], key_ids: Sequence[str] = ()
) -> dict[tuple[str, str], RegisteredKey]:
    """(account_id, key_id) -> the registry's record, for every key of `accounts` and the
    keys `key_ids`, deleted keys excluded."""
    if not accounts and not key_ids:
        return {}
    rows = client.query(
        "SELECT account_id, key_id, status, name, allowed_cidrs FROM keys FINAL "
        "WHERE (account_id IN {accounts:Array(String)} OR key_id IN {ids:Array(String)}) "
        "AND status != 'deleted'",
        parameters={"accounts": sorted(accounts), "ids": sorted(key_ids)},
    ).result_rows
    return {
        (str(a), str(k)): RegisteredKey(str(s), str(n), tuple(str(c) for c in cidrs))
        for a, k, s, n, cidrs in rows
    }


@dataclass(frozen=True, slots=True)
class ScopeKeys:
    """A query's scope with what the registry says about its keys (`scope_keys`)."""

    registered: dict[tuple[str, str], RegisteredKey]
    named: frozenset[str]
    """The keys of key-scoped rules."""
    wide: frozenset[str]
    """The accounts watched as a whole."""

    def counts(self, account: str, key: str) -> bool:
        """Whether a row of (account, key) counts: a key-scoped rule's key always; in an
        account-wide scope only a key the registry says the account owns."""
        return key in self.named or (account in self.wide and (account, key) in self.registered)


def scope_keys(client: Client, query: StatsQuery, *, named_records: bool = True) -> ScopeKeys:
    """The registry's records of `query`'s scope (one small read), for names, allow-lists
    and the account-wide filter; without `named_records` only the whole accounts' keys
    are read (the filter needs no more)."""
    named = frozenset(k for _, k in query.key_pairs)
    registered = registered_keys(client, query.accounts, sorted(named) if named_records else ())
    return ScopeKeys(registered, named, frozenset(query.accounts))
