"""Packing rows into `RequestBatch` records, and the bulk UUIDv7 ids they carry."""

from __future__ import annotations

import re
from uuid import UUID

import orjson
import pytest

from schemas.codec import decode_request_batch, decode_requests
from schemas.utc import to_epoch_ms
from schemas.uuid7 import uuid7_block
from streams.client.batch_packer import Row, pack_rows, split_packed

NOW_MS = 1_768_469_400_123


def rows(n: int, keys: int = 1) -> list[Row]:
    return [
        (
            NOW_MS - i,
            f"key_abc{i % keys:03d}",
            "acc_7Hq2x",
            "POST" if i % 2 else "GET",
            "/v1/render",
            200 + i % 300,
            float(i) / 4,
            f"10.0.{i % 256}.{i % 7}" if i % 3 else "2001:db8::1",
            i * 10,
            i % 2 == 0,
            i % 5 == 0,
        )
        for i in range(n)
    ]


def test_uuid7_block_is_valid_sorted_and_unique() -> None:
    ids = uuid7_block(5000, NOW_MS)
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    for value in ids[:50] + ids[-50:]:
        parsed = UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7
        assert parsed.variant == "specified in RFC 4122"
        assert parsed.int >> 80 == NOW_MS


def test_uuid7_blocks_do_not_collide() -> None:
    seen: set[str] = set()
    for _ in range(200):
        block = uuid7_block(100, NOW_MS)
        assert seen.isdisjoint(block)
        seen.update(block)


@pytest.mark.parametrize("n", [0, 2**24 + 1])
def test_uuid7_block_bounds(n: int) -> None:
    with pytest.raises(ValueError):
        uuid7_block(n, NOW_MS)


def test_packed_batch_decodes_with_both_validators() -> None:
    packed = pack_rows(rows(300, keys=3), NOW_MS)
    fast = decode_requests(packed.value)
    assert fast.count == packed.count == 300
    assert fast.columns["status"][:3] == [200, 201, 202]
    assert fast.columns["client_ip"][0] == "2001:db8::1"
    assert fast.columns["occurred_at_ms"][1] == NOW_MS - 1
    full = decode_request_batch(packed.value)
    assert len(full.events()) == 300
    assert to_epoch_ms(full.occurred_at) == NOW_MS
    assert all(re.fullmatch(r"[0-9a-f-]{36}", e) for e in fast.columns["event_id"])


def test_key_is_set_only_for_a_single_key_batch() -> None:
    assert pack_rows(rows(10, keys=1), NOW_MS).key == b"key_abc000"
    assert pack_rows(rows(10, keys=2), NOW_MS).key is None


def test_each_pack_assigns_fresh_ids() -> None:
    data = rows(5)
    a = decode_requests(pack_rows(data, NOW_MS).value).columns["event_id"]
    b = decode_requests(pack_rows(data, NOW_MS).value).columns["event_id"]
    assert set(a).isdisjoint(b)


def test_split_keeps_event_ids_and_rows() -> None:
    packed = pack_rows(rows(101, keys=1), NOW_MS)
    first, second = split_packed(packed)
    assert (first.count, second.count) == (50, 51)
    assert first.key == second.key == packed.key
    whole = decode_requests(packed.value).columns
    halves = [decode_requests(p.value).columns for p in (first, second)]
    for name, values in whole.items():
        assert halves[0][name] + halves[1][name] == values
    envelopes = [orjson.loads(p.value)["event_id"] for p in (packed, first, second)]
    assert envelopes[0] == envelopes[1] != envelopes[2]


def test_packing_twenty_thousand_rows() -> None:
    data = rows(20_000, keys=50)
    packed = pack_rows(data, NOW_MS)
    decoded = decode_requests(packed.value)
    assert decoded.count == 20_000
    assert decoded.columns["key_id"] == [row[1] for row in data]
