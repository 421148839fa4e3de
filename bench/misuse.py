"""Misuse-detection quality benchmark: `python -m bench.misuse`; the last stdout line is
one JSON object (progress on stderr).

1. Generates six weeks of seasonal traffic for 1,000 keys in 50 accounts with labelled
   anomalies in the final two weeks (`bench.misuse_traffic`: spikes of 2x/5x/10x, new
   IPs, error bursts, credential stuffing from one IP, revoked keys presented again).
2. Backfills it into a fresh migrated chDB database through the real insert path
   (`bench.misuse_backfill`: the key registry, then `ClickHouseIngestStore` blocks, so
   every materialized view is fed as in production); `events_per_s` is the end-to-end
   rate of generating, encoding and inserting.
3. Evaluates every account's default misuse rules (`alerting.defaults`, the kinds'
   defaults: usage_spike rising) as the evaluator does over the final two weeks, each
   kind at its cadence of simulated time (`bench.misuse_replay.CADENCES`), and matches
   the alerts to the labels (`bench.misuse_score`).
4. Tunes a static threshold per detector on the same data and labels, one grid value for
   every account's rule: `request_count` over 1 h for usage_spike, `error_rate` over
   15 min (min_requests 20, the detector's floor) for error_pattern, distinct client IPs
   per key-hour for unknown_ip, invalid verifications per IP per 15 min for
   credential_stuffing; `f1_margin_min` is the smallest detector F1 minus its
   baseline's. `baseline_per_account_f1`: each account's rule tuned on its own labels
   (about one per account and kind: an oracle, shown for comparison only).
5. Times one evaluation cycle over 10,000 keys with every detector on
   (`bench.misuse_cycle`); `eval_interval_ms` is the evaluator's interval.

`--quick`: 100 keys in 10 accounts and a 1,000-key cycle dataset (a smoke run; its
figures are not the targets').
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from alerting.defaults import default_misuse_rules
from alerting.evaluator import EvaluatorConfig
from bench.misuse_backfill import backfill, migrated_client, register_keys
from bench.misuse_cycle import build, time_cycles
from bench.misuse_replay import CADENCES, Replay, ips_per_key_hour, run, static_series
from bench.misuse_score import Figures, LabelIndex, detector_figures, log_grid, tune
from bench.misuse_traffic import Traffic, generate
from infra.settings import AlertingSettings
from schemas.alerts import KIND_DEFAULTS, RuleKind
from schemas.utc import as_utc

DETECTORS = (
    RuleKind.USAGE_SPIKE,
    RuleKind.UNKNOWN_IP,
    RuleKind.ERROR_PATTERN,
    RuleKind.CREDENTIAL_STUFFING,
    RuleKind.STALE_KEY_PRESENTED,
)
WITH_BASELINE = DETECTORS[:4]


def _window(kind: RuleKind) -> timedelta:
    return timedelta(seconds=int(str(KIND_DEFAULTS[kind]["window_s"])))


def _grace(cadences: dict[RuleKind, timedelta]) -> dict[str, timedelta]:
    return {k.value: _window(k) + cadences[k] for k in DETECTORS}


def _detectors(
    index: LabelIndex, replay: Replay, key_weeks: float
) -> tuple[dict[str, Figures], dict[str, Any]]:
    figures: dict[str, Figures] = {}
    details: dict[str, Any] = {}
    for kind in DETECTORS:
        fig, false, missed = detector_figures(index, replay.alerts, kind.value, key_weeks)
        figures[kind.value] = fig
        details[kind.value] = {
            "false_examples": [f"{a.at:%m-%d %H:%M} {a.evidence}"[:220] for a in false[:5]],
            "missed_examples": [
                f"{m.subject} {m.start:%m-%d %H:%M}-{m.end:%H:%M} size {m.size}" for m in missed[:8]
            ],
        }
    return figures, details


def _spike_recall(index: LabelIndex, replay: Replay, key_weeks: float) -> dict[str, float]:
    out = {}
    for name, test in (
        ("recall_spike_2x", lambda lb: lb.size < 5),
        ("recall_spike_5x", lambda lb: lb.size >= 5),
        ("recall_spike_10x", lambda lb: lb.size >= 10),
    ):
        fig, _, _ = detector_figures(index, replay.alerts, "usage_spike", key_weeks, test)
        out[name] = round(fig.recall, 4)
    return out


def _baselines(
    client: Any, traffic: Traffic, index: LabelIndex, key_weeks: float,
    cadences: dict[RuleKind, timedelta],
) -> dict[str, tuple[Figures, Figures]]:  # fmt: skip
    active = [(k.account_id, k.key_id) for k in traffic.keys if k.revoked_at is None]
    requests, errors, invalid = static_series(
        client, active, traffic.eval_start, traffic.end, cadences
    )
    ips = ips_per_key_hour(client, traffic.eval_start, traffic.end)
    top = max((v for pts in requests.values() for _, v, _ in pts), default=10.0)

    def both(kind: str, series: Any, grid: list[float], **kw: Any) -> tuple[Figures, Figures]:
        one, _ = tune(index, kind, series, grid, key_weeks, **kw)
        each, _ = tune(index, kind, series, grid, key_weeks, per_account=True, **kw)
        return one, each

    return {
        "usage_spike": both("usage_spike", requests, log_grid(5, top, 80)),
        "error_pattern": both(
            "error_pattern", errors, [float(x) for x in range(2, 101, 2)], min_samples=20
        ),
        "unknown_ip": both("unknown_ip", ips, [float(x) for x in range(1, 13)]),
        "credential_stuffing": both(
            "credential_stuffing",
            invalid,
            [float(x) for x in range(2, 81)],
            ignore_account=True,
        ),
    }


def _ms_summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "median": round(ordered[len(ordered) // 2], 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


def measure(opts: argparse.Namespace, root: Path) -> dict[str, Any]:
    began = time.perf_counter()
    end = opts.end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    traffic = generate(opts.seed, end, keys=opts.keys, accounts=opts.accounts)
    print(f"misuse: {len(traffic.labels)} labels, {len(traffic.keys)} keys", file=sys.stderr)
    client = migrated_client(root / "quality")
    try:
        register_keys(client, traffic.keys, traffic.start)
        stats = backfill(client, traffic)
        print(f"misuse: backfill {stats.events:,} events in {stats.seconds:.0f} s", file=sys.stderr)
        rules = [r for a in traffic.accounts for r in default_misuse_rules(a)]
        cadences = dict(CADENCES)
        replay_began = time.perf_counter()
        replay = run(client, rules, traffic.eval_start, traffic.end, cadences)
        replay_s = time.perf_counter() - replay_began
        eval_weeks = (traffic.end - traffic.eval_start) / timedelta(weeks=1)
        key_weeks = len(traffic.keys) * eval_weeks
        index = LabelIndex(traffic.labels, _grace(cadences))
        figures, details = _detectors(index, replay, key_weeks)
        spikes = _spike_recall(index, replay, key_weeks)
        baselines = _baselines(client, traffic, index, key_weeks, cadences)
    finally:
        client.close()
    cycle_client = migrated_client(root / "cycle")
    try:
        cycle_build_s = build(cycle_client, opts.cycle_keys, end)
        cycle = time_cycles(cycle_client, opts.cycle_keys, end)
    finally:
        cycle_client.close()
    settings_interval = AlertingSettings().eval_interval_s
    config_interval = EvaluatorConfig().interval_s
    result: dict[str, Any] = {
        **spikes,
        "recall_unknown_ip": round(figures["unknown_ip"].recall, 4),
        "recall_stuffing": round(figures["credential_stuffing"].recall, 4),
        "recall_error_pattern": round(figures["error_pattern"].recall, 4),
        "recall_stale_key": round(figures["stale_key_presented"].recall, 4),
        "false_alerts_per_key_week_max": round(
            max(f.false_per_key_week for f in figures.values()), 5
        ),
    }
    margins = {k.value: figures[k.value].f1 - baselines[k.value][0].f1 for k in WITH_BASELINE}
    result["f1_margin_min"] = round(min(margins.values()), 4)
    result |= {
        "cycle_10k_ms": cycle["cycle_10k_ms"],
        "eval_interval_ms": round(min(settings_interval, config_interval) * 1000),
    }
    per: dict[str, Any] = {}
    for kind in DETECTORS:
        entry = figures[kind.value].summary()
        if kind in WITH_BASELINE:
            base, oracle = baselines[kind.value]
            entry |= {
                "baseline_f1": round(base.f1, 4),
                "baseline_precision": round(base.precision, 4),
                "baseline_recall": round(base.recall, 4),
                "baseline_alerts": base.alerts,
                "f1_margin": round(margins[kind.value], 4),
                "baseline_per_account_f1": round(oracle.f1, 4),
            }
        entry["query_ms"] = _ms_summary(replay.query_ms.get(kind.value, []))
        entry["query_errors"] = replay.errors.get(kind.value, 0)
        entry |= details[kind.value]
        per[kind.value] = entry
    result["detectors"] = per
    result |= {
        "events": stats.events,
        "outcome_rows": stats.outcomes,
        "backfill_s": round(stats.seconds, 1),
        "events_per_s": round(stats.events_per_s),
        "replay_s": round(replay_s, 1),
        "replay_cycles": replay.cycles,
        "cadence_min": {k.value: c / timedelta(minutes=1) for k, c in cadences.items()},
        "labels": len(traffic.labels),
        "keys": len(traffic.keys),
        "accounts": len(traffic.accounts),
        "seed": opts.seed,
        "end": traffic.end.isoformat(),
        "cycle_10k_build_s": round(cycle_build_s, 1),
        **{k: v for k, v in cycle.items() if k != "cycle_10k_ms"},
        "eval_interval_settings_ms": round(settings_interval * 1000),
        "eval_interval_config_ms": round(config_interval * 1000),
        "quick": opts.quick,
        "runtime_s": round(time.perf_counter() - began, 1),
    }
    result["targets_met"] = bool(
        result["recall_spike_5x"] >= 0.95
        and result["recall_unknown_ip"] >= 0.95
        and result["recall_stuffing"] >= 0.95
        and result["false_alerts_per_key_week_max"] <= 0.05
        and result["f1_margin_min"] > 0
        and result["cycle_10k_ms"] <= result["eval_interval_ms"]
    )
    return result


def _end(text: str) -> datetime:
    value = as_utc(datetime.fromisoformat(text))
    if value.minute or value.second or value.microsecond:
        raise argparse.ArgumentTypeError(f"--end must be a whole UTC hour, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--cycle-keys", type=int, default=10_000)
    parser.add_argument(
        "--end", type=_end, default=None, help="end of the traffic (default: today 00:00 UTC)"
    )
    parser.add_argument("--quick", action="store_true", help="100 keys, 1,000-key cycle")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.keys, opts.accounts, opts.cycle_keys = 100, 10, 1000
    with tempfile.TemporaryDirectory(prefix="keypulse-bench-misuse-") as tmp:
        result = measure(opts, Path(tmp))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
