"""`keypulse keys scan PATH…`: keypulse keys in files, each with its status in the key
registry, and with `--revoke` the active ones revoked (reason `compromised`).

Files are read whole (directories recursively, symlinks inside them not followed);
binary files (a NUL byte in the first 8 KiB) and files over `--max-bytes` are skipped
and listed. Keys are found by `schemas.key_scan.find_keys` (format and checksum) and
looked up by their hash against the key-events topic (a key follower, or the key
service with `--revoke`); Kafka is only contacted when a key was found. A secret is
never printed: only its hint (`pk_live_Ab3x…`).

Exit status: 0 when no active key is left exposed (none found, only inactive or unknown
ones, or every active one revoked by `--revoke`); `ACTIVE_EXIT` (3) when active keys
were found and left active; 1 (or 75) when the command failed (see `infra.cli.errors`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from infra.cli.console import err, out, print_json
from infra.cli.errors import CommandFailed
from infra.cli.key_session import execute, key_follower, key_service
from infra.settings import Settings
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.key_scan import FoundKey, find_keys
from schemas.keys import RevokeReason
from schemas.utc import utc_now
from streams.keyservice.commands import CommandRefused, RevokeKey

ACTIVE_EXIT = 3
"""Active keys were found and are still active (not revoked)."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
BINARY_SNIFF = 8192
PROGRESS_AFTER_S = 1.0
UNKNOWN = "unknown"
"""The status of a well-formed key this registry does not know."""


@dataclass(frozen=True)
class Sighting:
    path: str
    key: FoundKey
    record: KeyRecord | None
    status: str
    revoked_now: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.key.line,
            "column": self.key.column,
            "hint": self.key.hint,
            "key_type": self.key.key_type,
            "key_id": None if self.record is None else self.record.key_id,
            "account_id": None if self.record is None else self.record.account_id,
            "status": self.status,
            "revoked_now": self.revoked_now,
        }


@dataclass
class ScanResult:
    found: list[tuple[str, FoundKey]]
    files: int
    skipped: list[tuple[str, str]]


def _files(paths: list[Path], skipped: list[tuple[str, str]]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(names):
                    file = Path(root, name)
                    if not file.is_symlink() and file.is_file():
                        yield file
        elif path.is_file():
            yield path
        elif path.exists():
            skipped.append((str(path), "not a regular file"))
        else:
            raise CommandFailed(f"PATH: {path} does not exist")


def scan_paths(paths: list[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> ScanResult:
    """The keys in every file under `paths` (with a spinner on stderr after a second)."""
    result = ScanResult([], 0, [])
    began = time.monotonic()
    status = None
    try:
        for file in _files(paths, result.skipped):
            if status is None and time.monotonic() - began > PROGRESS_AFTER_S:
                status = err.status("scanning…")
                status.start()
            if status is not None:
                status.update(f"scanning… {result.files} files, {len(result.found)} keys: {file}")
            try:
                size = file.stat().st_size
                if size > max_bytes:
                    result.skipped.append((str(file), f"larger than {max_bytes} bytes"))
                    continue
                data = file.read_bytes()
            except OSError as exc:
                result.skipped.append((str(file), f"unreadable: {exc.strerror or exc}"))
                continue
            if b"\0" in data[:BINARY_SNIFF]:
                result.skipped.append((str(file), "binary"))
                continue
            result.files += 1
            result.found += [(str(file), key) for key in find_keys(data)]
    finally:
        if status is not None:
            status.stop()
    return result


def status_of(record: KeyRecord | None, now: datetime) -> str:
    return UNKNOWN if record is None else record.status_at(now).value


def classify(
    found: list[tuple[str, FoundKey]], lookup: Callable[[str], KeyRecord | None], now: datetime
) -> list[Sighting]:
    """Each found key with its registry record (looked up by hash) and status at `now`."""
    sightings = []
    for path, key in found:
        record = lookup(key.secret_hash)
        sightings.append(Sighting(path, key, record, status_of(record, now)))
    return sightings


def _revoke_active(found: list[tuple[str, FoundKey]], settings: Settings) -> list[Sighting]:
    """`classify` through the key service, each active key revoked (reason compromised)
    once however often it was found; a refused revocation (the key changed meanwhile) is
    a warning and the key keeps the status the service gives."""
    sightings: list[Sighting] = []
    with key_service(settings) as service:
        now: dict[str, KeyRecord | None] = {}
        for s in classify(found, service.follower.key_by_hash, utc_now()):
            if s.record is None or s.status != "active":
                sightings.append(s)
                continue
            key_id = s.record.key_id
            if key_id not in now:
                command = RevokeKey(s.record.account_id, key_id, RevokeReason.COMPROMISED)
                try:
                    now[key_id] = execute(service, command).key
                except CommandRefused as exc:
                    err.print(f"warning: {key_id} not revoked: {exc}", markup=False)
                    now[key_id] = service.follower.key_by_hash(s.key.secret_hash)
            record = now[key_id]
            revoked = record is not None and record.status is KeyStatus.REVOKED
            sightings.append(Sighting(s.path, s.key, record, status_of(record, utc_now()), revoked))
    return sightings


def run_scan(
    settings: Settings, paths: list[Path], revoke: bool, as_json: bool, max_bytes: int
) -> int:
    """Scan, look up, revoke if asked, print; the exit status (see the module doc)."""
    result = scan_paths(paths, max_bytes)
    sightings: list[Sighting] = []
    if result.found:
        if revoke:
            sightings = _revoke_active(result.found, settings)
        else:
            with key_follower(settings) as follower:
                sightings = classify(result.found, follower.key_by_hash, utc_now())
    active_left = sum(1 for s in sightings if s.status == "active")
    if as_json:
        print_json(
            {
                "found": [s.as_json() for s in sightings],
                "files_scanned": result.files,
                "skipped": [{"path": p, "why": w} for p, w in result.skipped],
                "active_left": active_left,
            }
        )
    else:
        _print(sightings, result, active_left)
    return ACTIVE_EXIT if active_left else 0


def _print(sightings: list[Sighting], result: ScanResult, active_left: int) -> None:
    for s in sightings:
        where = f"{s.path}:{s.key.line}:{s.key.column}"
        who = (
            "not a key of this registry"
            if s.record is None
            else (f"{s.record.key_id} in {s.record.account_id}")
        )
        state = f"{s.status} (revoked now, reason compromised)" if s.revoked_now else s.status
        out.print(f"{where}  {s.key.hint}…  {who}  {state}", markup=False, highlight=False)
    for path, why in result.skipped:
        err.print(f"skipped {path}: {why}", markup=False, highlight=False)
    summary = f"{len(sightings)} key(s) in {result.files} file(s) scanned"
    if active_left:
        summary += f"; {active_left} ACTIVE: revoke them with --revoke (reason compromised)"
    err.print(summary, markup=False, highlight=False, soft_wrap=True)
