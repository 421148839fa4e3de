"""Where a console page's time goes: `bench.console --profile FILE` runs this after its
timing, on the same data (the worker stopped, so this process may open chDB).

The app (`build_api`, as the worker builds it) is served by uvicorn in a thread of this
process, with a cProfile profiler in every thread started from then on (the server's
event loop and the thread pool the page handlers run in: `threading.setprofile` hands
each new thread its own profiler, enabled from its first call), so the page's work is
profiled wherever it runs. It signs in with the admin key, loads the page `warmup` times
(then the profilers are cleared) and `runs` times; the merged stats go to FILE
(`python -m pstats FILE`) and the functions (ours, templating, models, the ClickHouse
client) with the largest cumulative time are returned, in ms per page. cProfile slows
Python code more than the queries, so read the shares, not the absolute times.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

from bench.console_http import sign_in
from infra.clickhouse import make_client
from infra.http.client_pool import ClientPool
from infra.settings import Settings
from infra.wiring import build_api

OURS = ("/infra/", "/projections/", "/schemas/", "jinja2", "pydantic", "clickhouse", "chdb")
"""Which functions the summary lists (ours, templating, models and the ClickHouse client)."""


class ThreadProfilers:
    """A cProfile profiler for every thread started after `install()`."""

    def __init__(self) -> None:
        self.profilers: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        threading.setprofile(self._first_call)

    def uninstall(self) -> None:
        threading.setprofile(None)

    def _first_call(self, frame: FrameType, event: str, arg: Any) -> None:
        profiler = cProfile.Profile()
        with self._lock:
            self.profilers.append(profiler)
        sys.setprofile(None)
        profiler.enable()

    def clear(self) -> None:
        with self._lock:
            for profiler in self.profilers:
                profiler.clear()

    def stats(self) -> pstats.Stats:
        with self._lock:
            found = [p for p in self.profilers if p.getstats()]
        merged = pstats.Stats(found[0])
        for profiler in found[1:]:
            merged.add(profiler)
        return merged


def _serve(settings: Settings, pool: ClientPool) -> tuple[uvicorn.Server, threading.Thread]:
    app, _ = build_api(settings, pool)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.api.port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread


def top_functions(stats: pstats.Stats, runs: int, limit: int = 25) -> list[dict[str, Any]]:
    """The `limit` functions (ours, see `OURS`) with the largest cumulative time, per page."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_, calls, tottime, cumtime, _) in raw.items():
        if any(part in path for part in OURS):
            short = path.split("/site-packages/")[-1].split("/work/main/")[-1]
            rows.append(
                {
                    "function": f"{short}:{line} {name}",
                    "cum_ms": round(cumtime * 1000 / runs, 2),
                    "self_ms": round(tottime * 1000 / runs, 2),
                    "calls": round(calls / runs, 1),
                }
            )
    rows.sort(key=lambda r: -float(r["cum_ms"]))
    return rows[:limit]


def profile_page(
    settings: Settings, secret: str, path: str, runs: int, out: Path, warmup: int = 3
) -> list[dict[str, Any]]:
    """Profile `runs` loads of the console page `path` (see the module docstring)."""
    profilers = ThreadProfilers()
    profilers.install()
    pool = ClientPool(lambda: make_client(settings), size=2)
    server, thread = _serve(settings, pool)
    base = f"http://127.0.0.1:{settings.api.port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            deadline = time.monotonic() + 120
            while not http.get("/readyz").is_success:
                if time.monotonic() > deadline:
                    raise RuntimeError("the profiled app's key registry did not load")
                time.sleep(0.5)
            sign_in(http, secret)
            for _ in range(warmup):
                http.get(path).raise_for_status()
            profilers.clear()
            began = time.perf_counter()
            for _ in range(runs):
                http.get(path).raise_for_status()
            took_ms = (time.perf_counter() - began) * 1000 / runs
    finally:
        profilers.uninstall()
        server.should_exit = True
        thread.join(30)
        for client in pool.clients:
            client.close()
    stats = profilers.stats()
    stats.dump_stats(str(out))
    whole = {"function": "(whole page, client wall time)", "cum_ms": round(took_ms, 1)}
    return [whole, *top_functions(stats, runs)]
