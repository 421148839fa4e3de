"""Running a key or account command for an HTTP caller.

Each command is recorded with `actor` = the calling key's id and `source_ip` = the
address of the peer that sent the request (the TCP peer as the server saw it; no
forwarding header is trusted). `run` awaits `KeyService.execute_async`, which returns once
this process has applied the command's events (or raises `CommandRefused` /
`Unavailable`) without holding a thread while it waits, so routes that run commands are
`async def`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from fastapi import Request

from infra.http.auth import Caller
from infra.http.key_registry import KeyRegistry
from streams.keyservice.commands import Command
from streams.keyservice.service import Outcome


def client_ip(request: Request) -> IPv4Address | IPv6Address | None:
    """The peer's address (None when the server did not give one that is an IP)."""
    if request.client is None:
        return None
    try:
        return ip_address(request.client.host)
    except ValueError:
        return None


async def run(registry: KeyRegistry, caller: Caller, request: Request, command: Command) -> Outcome:
    """Decide and apply `command` on behalf of `caller`."""
    service = registry.service()
    return await service.execute_async(command, actor=caller.key_id, source_ip=client_ip(request))
