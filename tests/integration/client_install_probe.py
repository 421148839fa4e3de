"""Run inside a venv holding only the base install: use the library, report what it saw.

`python -I client_install_probe.py BOOTSTRAP REQUESTS_TOPIC KEY_EVENTS_TOPIC PLAN_JSON`
where PLAN_JSON maps key ids to how many events to record for each. Records them through
`streams.client.UsageRecorder` (status 200 + i for the i-th event of a key), publishes the
account's chain (`account.created`, then one `key.created` per key, each with its `seq` and
`prev`) through `KeyEventPublisher`, and prints one JSON object: the
recorder's final stats, the publish results, which server-side packages could be
imported, and which top-level modules importing `streams.client` loaded.
"""

from __future__ import annotations

import importlib
import json
import sys

SERVER_PACKAGES = ("faust", "chdb", "fastapi", "clickhouse_connect", "pydantic_settings")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def main() -> None:
    bootstrap, requests_topic, key_events_topic, plan_json = sys.argv[1:5]
    plan: dict[str, int] = json.loads(plan_json)
    before = set(sys.modules)
    from streams import client

    loaded = sorted({name.split(".")[0] for name in set(sys.modules) - before})
    from schemas.key_format import generate_secret, hash_secret, hint
    from schemas.keys import AccountCreated, KeyCreated, KeyEventModel, KeyType
    from schemas.plans import Plan

    config = client.RecorderConfig(bootstrap_servers=bootstrap, topic=requests_topic)
    with client.UsageRecorder(config) as recorder:
        for key_id, count in plan.items():
            for i in range(count):
                recorder.record(
                    key_id=key_id,
                    account_id="acc_install",
                    method="GET",
                    route="/v1/render",
                    status=200 + i % 300,
                    latency_ms=1.5,
                    client_ip="203.0.113.7",
                )
        flushed = recorder.flush(60)
    stats = recorder.stats()
    published = []
    publisher = client.KeyEventPublisher(
        client.PublisherConfig(bootstrap_servers=bootstrap, topic=key_events_topic)
    )
    chain: list[KeyEventModel] = [
        AccountCreated(account_id="acc_install", seq=1, prev=None, plan=Plan.PRO)
    ]
    for key_id in plan:
        secret = generate_secret("live")  # only its hash and hint leave this process
        chain.append(
            KeyCreated(
                key_id=key_id,
                account_id="acc_install",
                seq=chain[-1].seq + 1,
                prev=chain[-1].event_id,
                name=f"install {key_id}",
                key_type=KeyType.LIVE,
                secret_hash=hash_secret(secret),
                hint=hint(secret),
            )
        )
    with publisher:
        for event in chain:
            result = publisher.publish(event, wait=True, timeout=30)
            published.append({"event_id": str(event.event_id), "offset": result.offset})
    report = {
        "client_file": client.__file__,
        "loaded_by_import": loaded,
        "importable": {name: _importable(name) for name in SERVER_PACKAGES},
        "flushed": flushed,
        "stats": {"recorded": stats.recorded, "sent": stats.sent, "dropped": stats.dropped},
        "published": published,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
