"""Looking for channel secrets (webhook signing secrets, Slack tokens and incoming-webhook
URLs) and master keys where none may be, and the local endpoints that receive them.

`find_channel_secrets` finds the exact strings it is given, plus anything shaped like a
plaintext channel secret (`whsec_<base64>`, `xox?-…`, a `hooks.slack.com/services/` URL);
a sealed value (`kpsealed:v1:…`) holds none of these. `threaded_receiver` runs an
`infra.tools.receivers.HttpReceiver` on a loop of its own, for synchronous tests; it
answers Slack's Web API (`/api/…`) with `{"ok": true}` and everything else with "ok".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import threading
from collections.abc import Iterable, Iterator

from aiohttp import web

from infra.tools.receivers import HttpReceiver

_SHAPES = re.compile(
    rb"whsec_[A-Za-z0-9+/]{32,}={0,2}|xox[a-z]-[A-Za-z0-9-]{6,}|hooks\.slack\.com/services/[\w/]+"
)


def find_channel_secrets(
    data: bytes, known: Iterable[str | bytes] = (), shapes: bool = True
) -> set[str]:
    """Plaintext channel secrets in `data` (by shape, unless `shapes` is False), plus every
    one of `known` in it (bytes also in base64 and hex, as a master key would be written)."""
    found = (
        {m.group().decode("utf-8", "replace") for m in _SHAPES.finditer(data)} if shapes else set()
    )
    for item in known:
        if isinstance(item, str):
            forms = [item.encode()]
        else:
            forms = [item, base64.b64encode(item), base64.urlsafe_b64encode(item).rstrip(b"=")]
            forms.append(item.hex().encode())
        if any(form in data for form in forms):
            found.add(item if isinstance(item, str) else f"<{len(item)} key bytes>")
    return found


async def _slack_like(request: web.Request, _: bytes) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        return web.json_response({"ok": True, "ts": "1700000000.000100"})
    return web.Response(text="ok")


@contextlib.contextmanager
def threaded_receiver() -> Iterator[HttpReceiver]:
    """An `HttpReceiver` serving on 127.0.0.1 from a thread of its own until the block ends."""
    loop = asyncio.new_event_loop()
    receiver = HttpReceiver(default=_slack_like)
    thread = threading.Thread(target=loop.run_forever, name="receiver", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
