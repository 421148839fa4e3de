"""The key-state snapshot: account ledgers as records of a compacted topic (pure).

Replaying the whole key-events topic at start costs about 50 µs an event (decode and
fold), so a verifier holding 100,000 keys would need seconds to be ready. A snapshot
writer (`streams.client.key_state_writer`) therefore writes, from time to time, the
ledgers of the accounts that changed to `keypulse.key-state` (compacted), and a follower
starts from those records, then reads the key-events topic only from where they end.

Records (the message key names what the value is):

- `account/<account_id>`: the header: plan, seq, head, times, where the account's events
  are (`partition`, `first_offset`, `source_offset` = the offset of its last event in this
  state), and how many chunks hold its keys and idempotency entries;
- `account/<account_id>/<i>`: chunk `i` of the account's keys and idempotency entries
  (at most `CHUNK_ITEMS` each), carrying the header's `writer`, `cut` and `seq`;
- `checkpoint/<partition>/<writer>`: written by a writer after every account record of one
  cut was acknowledged: "every account with an event at or below `offset` in `partition`
  has a record, and each record of mine from cut `cut` or earlier holds its account as of
  `offset`" (a writer writes every account that changed, each cut, and all of them in its
  first cut).

`start_offsets` decides where a reader continues on each key-events partition: after the
newest checkpoint, or earlier for an account whose record is not covered as far (its
writer's newest checkpoint is older or missing: after the account's last event in the
record; chunks that do not match their header: from the account's first event). Events a
reader then reads that its state already holds (offset <= the account's `source_offset`)
are skipped, so a snapshot never changes what the fold decides, it only shortens the way
there. Several writers (one per API process) are safe; a writer that stops leaves its
checkpoint records behind (four small records per process start).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from schemas.key_ledger import AccountLedger, IdempotentCreate, KeyRecord, KeyStatus, restore_key
from schemas.keys import KeyAccess, KeyType, RevokeReason
from schemas.plans import Plan

STATE_VERSION = 1
CHUNK_ITEMS = 2_000

_KEY_FIELDS = tuple(f.name for f in fields(KeyRecord) if f.name != "account_id")
"""A key row: the record's fields in order, without `account_id` (the header has it)."""
_TIMES = frozenset({"created_at", "updated_at", "revoked_at", "deleted_at", "expires_at"})


class StateFormatError(ValueError):
    """A key-state record this version cannot read."""


@dataclass(frozen=True)
class AccountPlace:
    """Where an account's events are on the key-events topic."""

    partition: int
    first_offset: int
    source_offset: int
    """The offset of the last event the state holds."""


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    offset: int
    writer: str
    cut: int


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _key_row(record: KeyRecord) -> list[Any]:
    row: list[Any] = []
    for name in _KEY_FIELDS:
        value = getattr(record, name)
        if name in _TIMES:
            value = _time(value)
        elif name == "allowed_cidrs":
            value = list(value)
        row.append(value)
    return row


_FIELD_AT = {name: i for i, name in enumerate(_KEY_FIELDS)}
_TIME_AT = tuple(_FIELD_AT[name] for name in sorted(_TIMES))
_ENUMS_AT = tuple(
    (_FIELD_AT[name], {m.value: m for m in enum})
    for name, enum in (
        ("key_type", KeyType),
        ("access", KeyAccess),
        ("status", KeyStatus),
        ("revoke_reason", RevokeReason),
    )
)
_CIDRS_AT = _FIELD_AT["allowed_cidrs"]
_parse_iso = datetime.fromisoformat


def _key_record(account_id: str, row: list[Any]) -> KeyRecord:
    """A key row back into its record (positional: 100,000 of them load in well under a
    second, see `bench.verify`)."""
    if len(row) != len(_KEY_FIELDS):
        raise StateFormatError(f"a key row has {len(row)} fields, expected {len(_KEY_FIELDS)}")
    for i in _TIME_AT:
        if row[i] is not None:
            row[i] = _parse_iso(row[i])
    try:
        for i, members in _ENUMS_AT:
            if row[i] is not None:
                row[i] = members[row[i]]
    except KeyError as exc:
        raise StateFormatError(f"a key row holds an unknown value {exc}") from None
    row[_CIDRS_AT] = tuple(row[_CIDRS_AT])
    return KeyRecord(account_id, *row)


def account_key(account_id: str) -> bytes:
    return f"account/{account_id}".encode()


def encode_account(
    ledger: AccountLedger, place: AccountPlace, writer: str, cut: int
) -> list[tuple[bytes, bytes]]:
    """The records (message key, value) that hold `ledger`: a header, then its chunks."""
    keys = [_key_row(k) for k in ledger.keys.values()]
    idem = [[k, v.key_id, v.request_hash, _time(v.at)] for k, v in ledger.idempotency.items()]
    chunks = max(1, -(-max(len(keys), len(idem)) // CHUNK_ITEMS))
    stamp = {"v": STATE_VERSION, "writer": writer, "cut": cut, "seq": ledger.seq}
    header = stamp | {
        "kind": "account",
        "account_id": ledger.account_id,
        "plan": ledger.plan.value,
        "head": str(ledger.head),
        "created_at": _time(ledger.created_at),
        "updated_at": _time(ledger.updated_at),
        "partition": place.partition,
        "first_offset": place.first_offset,
        "source_offset": place.source_offset,
        "chunks": chunks,
    }
    out = [(account_key(ledger.account_id), orjson.dumps(header))]
    for i in range(chunks):
        part = slice(i * CHUNK_ITEMS, (i + 1) * CHUNK_ITEMS)
        chunk = stamp | {"kind": "chunk", "i": i, "keys": keys[part], "idempotency": idem[part]}
        out.append((f"account/{ledger.account_id}/{i}".encode(), orjson.dumps(chunk)))
    return out


def encode_checkpoint(checkpoint: Checkpoint) -> tuple[bytes, bytes]:
    value = {
        "v": STATE_VERSION,
        "kind": "checkpoint",
        "partition": checkpoint.partition,
        "offset": checkpoint.offset,
        "writer": checkpoint.writer,
        "cut": checkpoint.cut,
    }
    key = f"checkpoint/{checkpoint.partition}/{checkpoint.writer}"
    return key.encode(), orjson.dumps(value)


@dataclass(frozen=True)
class LoadedAccount:
    ledger: AccountLedger
    place: AccountPlace
    writer: str
    cut: int


@dataclass
class LoadedState:
    accounts: dict[str, LoadedAccount] = field(default_factory=dict)
    incomplete: dict[str, AccountPlace] = field(default_factory=dict)
    """Accounts whose chunks do not all match their header (a writer stopped mid-cut)."""
    checkpoints: dict[tuple[int, str], Checkpoint] = field(default_factory=dict)
    """The newest checkpoint of each (partition, writer)."""


class StateAssembler:
    """Collects key-state records (latest per message key wins, as compaction keeps)."""

    def __init__(self) -> None:
        self._latest: dict[bytes, bytes] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:  # a tombstone
            self._latest.pop(key, None)
        else:
            self._latest[key] = value

    def result(self) -> LoadedState:
        state = LoadedState()
        headers: dict[str, dict[str, Any]] = {}
        chunks: dict[str, dict[int, dict[str, Any]]] = {}
        for key, value in self._latest.items():
            parts = key.decode().split("/")
            record = orjson.loads(value)
            if record.get("v") != STATE_VERSION:
                raise StateFormatError(f"key-state record {key!r} has version {record.get('v')}")
            if parts[0] == "checkpoint":
                cp = Checkpoint(
                    record["partition"], record["offset"], record["writer"], record["cut"]
                )
                state.checkpoints[(cp.partition, cp.writer)] = cp
            elif len(parts) == 2:
                headers[parts[1]] = record
            else:
                chunks.setdefault(parts[1], {})[int(parts[2])] = record
        for account_id, header in headers.items():
            place = AccountPlace(
                header["partition"], header["first_offset"], header["source_offset"]
            )
            stamp = (header["writer"], header["cut"], header["seq"])
            found = [chunks.get(account_id, {}).get(i) for i in range(header["chunks"])]
            if any(c is None or (c["writer"], c["cut"], c["seq"]) != stamp for c in found):
                state.incomplete[account_id] = place
                continue
            ledger = _ledger(header, [c for c in found if c is not None])
            state.accounts[account_id] = LoadedAccount(
                ledger, place, header["writer"], header["cut"]
            )
        return state


def _ledger(header: dict[str, Any], chunks: list[dict[str, Any]]) -> AccountLedger:
    created_at = _parse_time(header["created_at"])
    updated_at = _parse_time(header["updated_at"])
    assert created_at is not None and updated_at is not None
    ledger = AccountLedger(
        account_id=header["account_id"],
        plan=Plan(header["plan"]),
        seq=header["seq"],
        head=UUID(header["head"]),
        created_at=created_at,
        updated_at=updated_at,
    )
    for chunk in chunks:
        for row in chunk["keys"]:
            restore_key(ledger, _key_record(ledger.account_id, row))
        for key, key_id, request_hash, at in chunk["idempotency"]:
            when = _parse_time(at)
            assert when is not None
            ledger.idempotency[key] = IdempotentCreate(key_id, request_hash, when)
    return ledger


def covered_to(state: LoadedState, loaded: LoadedAccount) -> int:
    """The offset up to which `loaded` holds its account exactly."""
    cp = state.checkpoints.get((loaded.place.partition, loaded.writer))
    if cp is not None and cp.cut >= loaded.cut:
        return max(cp.offset, loaded.place.source_offset)
    return loaded.place.source_offset


def start_offsets(state: LoadedState, partitions: list[int]) -> dict[int, int]:
    """Where to continue reading each key-events partition after loading `state`."""
    start: dict[int, int] = {}
    for p in partitions:
        newest = max((cp.offset for (q, _), cp in state.checkpoints.items() if q == p), default=-1)
        at = newest + 1
        for loaded in state.accounts.values():
            if loaded.place.partition == p:
                at = min(at, covered_to(state, loaded) + 1)
        for place in state.incomplete.values():
            if place.partition == p:
                at = min(at, place.first_offset)
        start[p] = at
    return start
