"""`keys scan`'s file walk and classification, without Kafka: binary and oversized files
skipped and listed, symlinks inside directories not followed, statuses from the lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.cli.errors import CommandFailed
from infra.cli.key_scan import UNKNOWN, classify, scan_paths
from schemas.key_format import generate_secret, hash_secret
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def record(secret: str, status: KeyStatus, expires_at: datetime | None = None) -> KeyRecord:
    return KeyRecord(
        account_id="acc_alpha",
        key_id="key_" + secret[8:20],
        name="n",
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=status,
        secret_hash=hash_secret(secret),
        hint=secret[:12],
        created_at=NOW,
        created_by="test",
        updated_at=NOW,
        seq=1,
        expires_at=expires_at,
    )


def test_walk_skips_binary_and_large_files_and_does_not_follow_symlinks(tmp_path: Path) -> None:
    a, b, c = (generate_secret("live") for _ in range(3))
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "one.txt").write_text(f"x={a}\n")
    (tmp_path / "d" / "big.txt").write_text(f"{b}\n" + "y" * 200)
    (tmp_path / "d" / "bin").write_bytes(b"\0" + c.encode())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text(c)
    (tmp_path / "d" / "link").symlink_to(outside, target_is_directory=True)
    (tmp_path / "d" / "filelink").symlink_to(outside / "o.txt")
    result = scan_paths([tmp_path / "d"], max_bytes=100)
    assert [(p, k.secret, k.line) for p, k in result.found] == [
        (str(tmp_path / "d" / "e" / "one.txt"), a, 1)
    ]
    assert sorted(result.skipped) == [
        (str(tmp_path / "d" / "big.txt"), "larger than 100 bytes"),
        (str(tmp_path / "d" / "bin"), "binary"),
    ]
    assert result.files == 1
    # a file named on the command line is read, symlink or not
    assert [k.secret for _, k in scan_paths([tmp_path / "d" / "filelink"]).found] == [c]


def test_a_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="does not exist"):
        scan_paths([tmp_path / "nope"])


def test_statuses_come_from_the_registry_record_at_now(tmp_path: Path) -> None:
    active, revoked, expired, unknown = (generate_secret("test") for _ in range(4))
    records = {
        hash_secret(active): record(active, KeyStatus.ACTIVE),
        hash_secret(revoked): record(revoked, KeyStatus.REVOKED),
        hash_secret(expired): record(expired, KeyStatus.ACTIVE, NOW - timedelta(seconds=1)),
    }
    (tmp_path / "f").write_text("\n".join((active, revoked, expired, unknown)))
    found = scan_paths([tmp_path / "f"]).found
    statuses = [s.status for s in classify(found, records.get, NOW)]
    assert statuses == ["active", "revoked", "expired", UNKNOWN]
