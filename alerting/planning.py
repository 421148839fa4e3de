"""Pure planning of one evaluation cycle: batched queries and the observations they give.

Contracts:

- `plan_queries` groups rules by (kind, window, options): exactly one `StatsQuery` per
  distinct triple (`QueryOptions`: the few rule fields that change what a misuse query
  reads), covering every key-scoped rule's key and every account-scoped rule's account.
- `observe` turns one query's answer into an `Observation` per key a rule concerns: the
  rule's key (key scope), or every key of the account in the answer (keys with data in
  the window; for `request_count` every active key, see `EvaluationQueries.window_stats`)
  plus every key that already has an instance of the rule (account scope, so a firing
  instance sees its traffic stop). Without data a `request_count` rule observes 0
  requests; the other kinds observe no value (nodata). A failed query gives error
  observations to the same keys (account scope: only the keys with instances).
  The misuse kinds observe through their detectors (`alerting.detectors.OBSERVERS`:
  each subject's figures, or None without any, at the evaluation time `now`), with their
  evidence; `credential_stuffing`'s subjects are client IPs (`ip:<address>`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from alerting.detectors import OBSERVERS
from alerting.ports import QueryOptions, StatsByKey, StatsQuery, WindowStats
from alerting.state import Observation
from schemas.alerts import AlertRule, Percentile, RuleKind

QueryKey = tuple[RuleKind, int, QueryOptions]


def query_key(rule: AlertRule) -> QueryKey:
    return (rule.kind, rule.window_s, QueryOptions.of(rule))


def plan_queries(rules: Iterable[AlertRule]) -> list[StatsQuery]:
    """One query per (kind, window) over all keys the rules concern, in a stable order."""
    accounts: dict[QueryKey, set[str]] = defaultdict(set)
    pairs: dict[QueryKey, set[tuple[str, str]]] = defaultdict(set)
    for rule in rules:
        qk = query_key(rule)
        key_id = rule.key_id
        if key_id is None:
            accounts[qk].add(rule.account_id)
            pairs.setdefault(qk, set())
        else:
            pairs[qk].add((rule.account_id, key_id))
            accounts.setdefault(qk, set())
    keys = sorted(set(accounts) | set(pairs), key=lambda k: (k[0].value, k[1], repr(k[2])))
    out: list[StatsQuery] = []
    for qk in keys:
        kind, window, options = qk
        wide = accounts[qk]
        # A key-scoped rule on an account that is watched as a whole adds nothing.
        narrow = {p for p in pairs[qk] if p[0] not in wide}
        out.append(StatsQuery(kind, window, tuple(sorted(wide)), tuple(sorted(narrow)), options))
    return out


def metric_value(rule: AlertRule, stats: WindowStats | None) -> Observation:
    """The rule's measure over one key's figures (None stats: no rows in the window)."""
    if stats is None or stats.requests <= 0:
        if rule.kind is RuleKind.REQUEST_COUNT:
            return Observation(0.0, sample_count=0)
        return Observation(None, sample_count=0)
    n = stats.requests
    if rule.kind is RuleKind.REQUEST_COUNT:
        return Observation(float(n), sample_count=n)
    if rule.kind is RuleKind.ERROR_RATE:
        return Observation(100.0 * stats.errors / n, sample_count=n)
    value = {
        Percentile.P50: stats.p50_ms,
        Percentile.P95: stats.p95_ms,
        Percentile.P99: stats.p99_ms,
    }[rule.percentile or Percentile.P99]
    return Observation(value, sample_count=n)


@dataclass(frozen=True)
class QueryAnswer:
    """A query's rows, indexed by account; or the reason it failed."""

    by_key: StatsByKey
    by_account: Mapping[str, list[str]]
    error: str | None = None

    @classmethod
    def of(cls, stats: StatsByKey) -> QueryAnswer:
        index: dict[str, list[str]] = defaultdict(list)
        for account, key in stats:
            index[account].append(key)
        return cls(stats, dict(index))

    @classmethod
    def failed(cls, error: str) -> QueryAnswer:
        return cls({}, {}, error)


def observe(
    rule: AlertRule, answer: QueryAnswer, instance_keys: Iterable[str], now: datetime
) -> list[tuple[str, Observation]]:
    """(key_id, observation) for every key the rule concerns this cycle (see module doc)."""
    key_id = rule.key_id
    if key_id is not None:
        keys: Iterable[str] = (key_id,)
    else:
        keys = dict.fromkeys([*answer.by_account.get(rule.account_id, ()), *instance_keys])
    if answer.error is not None:
        scoped = (key_id,) if key_id is not None else tuple(instance_keys)
        return [(k, Observation(None, error=answer.error)) for k in scoped]
    account = rule.account_id
    observer = OBSERVERS.get(rule.kind)
    if observer is not None:
        return [(k, observer(rule, k, answer.by_key.get((account, k)), now)) for k in keys]
    return [(k, metric_value(rule, answer.by_key.get((account, k)))) for k in keys]
