"""Serving the console for the browser tests: the app alone (`live_api`: its own key
service, chDB, no worker) over accounts made through the key service, once per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.kafka.admin import ensure_topics
from infra.tools.receivers import free_port
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.keyservice.service import start_key_service
from tests.integration.http.api_support import LiveApi, Tenant, create_tenant, live_api
from tests.integration.ingest_helpers import worker_settings


@dataclass
class ServedConsole:
    api: LiveApi
    tenants: dict[str, Tenant]
    topics: TopicNames

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def secret(self, account: str, role: str) -> str:
        return self.tenants[account].keys[role][1]

    def key_id(self, account: str, role: str) -> str:
        return self.tenants[account].keys[role][0]


@contextmanager
def served_console(
    data_dir: Path, bootstrap: str, accounts: dict[str, tuple[Plan, Sequence[str]]]
) -> Iterator[ServedConsole]:
    """`accounts`: account id -> (plan, roles such as admin, read_only, full, revoked)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(bootstrap, prefix)
    topics = TopicNames.with_prefix(prefix)
    with start_key_service(bootstrap, topics.key_events) as service:
        tenants = {
            account: create_tenant(service, account, roles, plan)
            for account, (plan, roles) in accounts.items()
        }
    settings = worker_settings(data_dir, bootstrap, prefix, api={"port": free_port()})
    with live_api(settings) as api:
        yield ServedConsole(api, tenants, topics)
