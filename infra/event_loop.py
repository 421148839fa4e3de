"""The serving processes' event loop: uvloop (libuv) instead of asyncio's own.

The worker serves the HTTP API, the faust agents and the key service's callbacks on one
event loop, and that loop's own work (socket reads and writes, scheduling) competes for
the GIL with the key service's decider and follower threads. uvloop does that work in C:
under `python -m bench.keys` (16 clients creating keys over HTTP) the create p99 went
from 119 ms (median of 7 runs) to 97 ms (median of 18 runs), creates/s from ~510 to ~560.
"""

from __future__ import annotations

import asyncio

import uvloop


def use_uvloop() -> None:
    """Make new event loops uvloop loops; call before anything creates the loop."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
