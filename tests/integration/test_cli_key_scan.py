"""`keypulse keys scan` against the real broker: a directory with an active key, a
revoked key, an unknown well-formed key, a checksum-failing lookalike and a binary file;
statuses and exit codes; `--revoke` revokes the active key with reason compromised, read
back by an independent key follower. No secret is ever printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from infra.cli.key_scan import ACTIVE_EXIT
from schemas.key_format import generate_secret, hash_secret
from schemas.key_ledger import KeyStatus
from schemas.keys import RevokeReason
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.keyservice.service import start_key_service
from tests.integration.http.api_support import Tenant, create_tenant
from tests.integration.test_cli_keys import Cli
from tests.unit.schemas.test_key_scan import lookalike

pytestmark = pytest.mark.kafka

ACCOUNT = "acc_scanned"


@pytest.fixture
def tenant(kafka_bootstrap: str, topics: TopicNames) -> Tenant:
    """An account with an active and a revoked key, made through the key service."""
    with start_key_service(kafka_bootstrap, topics.key_events) as service:
        return create_tenant(service, ACCOUNT, ("full", "revoked"))


@pytest.fixture
def follower(kafka_bootstrap: str, topics: TopicNames) -> Iterator[KeyFollower]:
    reader = KeyFollower(FollowerConfig(kafka_bootstrap, topics.key_events, "test-scan-reader"))
    reader.start()
    reader.wait_ready(30)
    try:
        yield reader
    finally:
        reader.close()


def tree(root: Path, active: str, revoked: str, unknown: str) -> dict[str, Path]:
    files = {
        "active": root / "app" / "config.env",
        "revoked": root / "docs" / "notes.md",
        "unknown": root / "deep" / "er" / "x.txt",
        "lookalike": root / "lookalike.txt",
        "binary": root / "blob.bin",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    files["active"].write_text(f"# settings\nKEYPULSE_KEY={active}\n")
    files["revoked"].write_text(f"old key: `{revoked}` (revoked)\n")
    files["unknown"].write_text(f"\n\n\ntoken={unknown}&x=1\n")
    files["lookalike"].write_text(f"{lookalike(active)}\n{active[:20]}\n{active[20:]}\n")
    files["binary"].write_bytes(b"\0\1\2" + active.encode())
    return files


def test_scan_says_each_status_and_revoke_revokes_the_active_key(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, tenant: Tenant, follower: KeyFollower
) -> None:
    cli = Cli(kafka_bootstrap, topic_prefix)
    (active_id, active), (revoked_id, revoked) = tenant.keys["full"], tenant.keys["revoked"]
    unknown = generate_secret("test")
    files = tree(tmp_path / "repo", active, revoked, unknown)

    scanned = cli.run("keys", "scan", str(tmp_path / "repo"), "--json")
    assert scanned.returncode == ACTIVE_EXIT, scanned.stdout + scanned.stderr
    report = orjson.loads(scanned.stdout)
    by_path = {f["path"]: f for f in report["found"]}
    assert set(by_path) == {str(files[k]) for k in ("active", "revoked", "unknown")}
    expected = {
        "active": ("active", active_id, ACCOUNT, 2, 14),
        "revoked": ("revoked", revoked_id, ACCOUNT, 1, 11),
        "unknown": ("unknown", None, None, 4, 7),
    }
    for kind, (status, key_id, account, line, column) in expected.items():
        found = by_path[str(files[kind])]
        assert (found["status"], found["key_id"], found["account_id"]) == (status, key_id, account)
        assert (found["line"], found["column"]) == (line, column)
    assert report["skipped"] == [{"path": str(files["binary"]), "why": "binary"}]
    assert report["active_left"] == 1 and report["files_scanned"] == 4
    human = cli.run("keys", "scan", str(tmp_path / "repo"))
    assert human.returncode == ACTIVE_EXIT
    everything = scanned.stdout + scanned.stderr + human.stdout + human.stderr
    assert all(s not in everything for s in (active, revoked, unknown))
    assert active[:12] in human.stdout and "ACTIVE" in human.stderr

    revoking = cli.run("keys", "scan", str(tmp_path / "repo"), "--revoke", "--json")
    assert revoking.returncode == 0, revoking.stdout + revoking.stderr
    [done] = [f for f in orjson.loads(revoking.stdout)["found"] if f["revoked_now"]]
    assert (done["key_id"], done["status"]) == (active_id, "revoked")
    follower.sync(30)
    record = follower.key_by_hash(hash_secret(active))
    assert record is not None
    assert (record.status, record.revoke_reason) == (KeyStatus.REVOKED, RevokeReason.COMPROMISED)
    still = follower.key_by_hash(hash_secret(revoked))
    assert still is not None and still.revoke_reason is RevokeReason.USER_REQUEST

    again = cli.run("keys", "scan", str(tmp_path / "repo"), "--revoke", "--json")
    assert again.returncode == 0
    assert not any(f["revoked_now"] for f in orjson.loads(again.stdout)["found"])


def test_no_keys_needs_no_kafka(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("nothing here\n")
    cli = Cli("127.0.0.1:1", "unused.")  # no broker there: not contacted
    result = cli.run("keys", "scan", str(tmp_path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert orjson.loads(result.stdout)["found"] == []
