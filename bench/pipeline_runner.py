"""One benchmark step in a child process: `python -m bench.pipeline_runner STEP JSON_ARGS`.

Each step prints progress to stderr and its result as one JSON object on the last line
of stdout. A child per step gives every run a fresh process (chDB opens one data
directory per process; faust and the allocator start clean).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson


def _settings(a: dict[str, Any]) -> Any:
    from bench.pipeline_worker import bench_settings

    return bench_settings(
        a["data_dir"], a["bootstrap"], a["controller_port"], a["prefix"], a["group"]
    )


def _produce_batches(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_produce import produce_batches

    return produce_batches(
        a["bootstrap"], a["topic"], a["events"], a["record_events"], a["seed"], a["compression"]
    )


def _produce_singles(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_produce import produce_singles

    return produce_singles(a["bootstrap"], a["topic"], a["events"], a["seed"])


def _produce_steady(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_produce import produce_steady

    return produce_steady(
        a["bootstrap"],
        a["topic"],
        a["rate"],
        a["duration_s"],
        a["tick_s"],
        a["probe_run"],
        a["seed"],
        a["compression"],
    )


def _keypulse(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_worker import keypulse_throughput

    return asyncio.run(
        keypulse_throughput(_settings(a), a["events"], a.get("ready_file"), a.get("profile_file"))
    )


def _freshness(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_worker import keypulse_freshness

    return asyncio.run(keypulse_freshness(_settings(a), a["ready_file"], a["stop_file"]))


def _ceiling(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_ceiling import ceiling_throughput

    return asyncio.run(
        ceiling_throughput(
            _settings(a), a["topic"], a["events"], a["max_events"], arrow=a.get("arrow", False)
        )
    )


def _faust_sink(a: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline_faust_sink import faust_sink_throughput

    return asyncio.run(faust_sink_throughput(_settings(a), a["topic"], a["events"]))


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "produce-batches": _produce_batches,
    "produce-singles": _produce_singles,
    "produce-steady": _produce_steady,
    "keypulse": _keypulse,
    "freshness": _freshness,
    "ceiling": _ceiling,
    "faust-sink": _faust_sink,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in STEPS:
        print(f"usage: python -m bench.pipeline_runner {{{','.join(STEPS)}}} JSON", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = STEPS[argv[0]](orjson.loads(argv[1]))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
