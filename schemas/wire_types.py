"""Field rules that hold every event field to its wire form, whatever the input mode.

Each rule is pydantic metadata (`Annotated[int, JsonInteger(100, 599)]`) that replaces
pydantic's own, mode-dependent coercion with one check, so a model validates the same in
lax and strict mode, from JSON or from Python, and exports exactly that check as JSON
Schema. The worker's column validator (`schemas.request_columns`) runs the same rules
(`wire_value`), so a model and the decoder cannot drift apart.

- `wire_value(value)`: the JSON value as the decoder keeps it (an integer-valued float
  normalised to `int`, text kept as written), or `ValueError` saying what was expected.
- `python_value(value)`: what the model holds (a `UUID`, an address object, an aware UTC
  `datetime`). It also takes those Python objects themselves, for producers in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from schemas.request_bounds import (
    MAX_OCCURRED_MS,
    MIN_OCCURRED_MS,
    is_json_number,
    json_integer,
    valid_ip,
    valid_route,
)
from schemas.utc import to_epoch_ms, to_utc_ms
from schemas.wire_time import (
    OCCURRED_AT_PATTERN,
    OCCURRED_AT_RULE,
    parse_occurred_at,
)


class WireRule:
    """Base of the rules: pydantic hooks around `python_value` and `json_schema`."""

    @property
    def expected(self) -> str:
        """What a valid value is, in words (`expected ..., got ...`)."""
        raise NotImplementedError

    def wire_value(self, value: Any) -> Any:
        raise NotImplementedError

    def python_value(self, value: Any) -> Any:
        return self.wire_value(value)

    def json_schema(self) -> JsonSchemaValue:
        raise NotImplementedError

    def reject(self, value: Any) -> ValueError:
        return ValueError(f"expected {self.expected}, got {value!r}"[:300])

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.python_value)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.json_schema()


@dataclass(frozen=True)
class JsonInteger(WireRule):
    """A JSON Schema integer in `[lo, hi]`: an int, or a float with a zero fraction."""

    lo: int
    hi: int

    @property
    def expected(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"

    def wire_value(self, value: Any) -> int:
        number = json_integer(value)
        if number is None or not self.lo <= number <= self.hi:
            raise self.reject(value)
        return number

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class JsonNumber(WireRule):
    """A JSON number in `[lo, hi]` (an int or a float, never a bool); held as a float."""

    lo: int
    hi: int

    @property
    def expected(self) -> str:
        return f"a number in [{self.lo}, {self.hi}]"

    def wire_value(self, value: Any) -> int | float:
        if not is_json_number(value) or not self.lo <= value <= self.hi:
            raise self.reject(value)
        return value  # type: ignore[no-any-return]

    def python_value(self, value: Any) -> float:
        return float(self.wire_value(value))

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Flag(WireRule):
    """`true` or `false`; never a number or a string."""

    @property
    def expected(self) -> str:
        return "true or false"

    def wire_value(self, value: Any) -> bool:
        if type(value) is not bool:
            raise self.reject(value)
        return value

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Matching(WireRule):
    """A string matching `pattern` in full."""

    pattern: str

    @property
    def expected(self) -> str:
        return f"a string matching {self.pattern}"

    def wire_value(self, value: Any) -> str:
        if not isinstance(value, str) or _compiled(self.pattern).fullmatch(value) is None:
            raise self.reject(value)
        return str(value)

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "string", "pattern": self.pattern}


@dataclass(frozen=True)
class Route(WireRule):
    """`schemas.request_bounds.valid_route` text."""

    min_length: int
    max_length: int

    @property
    def expected(self) -> str:
        return f"a string of {self.min_length}..{self.max_length} characters"

    def wire_value(self, value: Any) -> str:
        if not isinstance(value, str) or not valid_route(value):
            raise self.reject(value)
        return str(value)

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}


@dataclass(frozen=True)
class CanonicalUuid(Matching):
    """An event id: canonical lowercase UUID text on the wire, a `UUID` in the model
    (the text itself when `as_text`, as in a batch's columns)."""

    as_text: bool = False

    @property
    def expected(self) -> str:
        return "a lowercase hyphenated UUID string"

    def python_value(self, value: Any) -> UUID | str:
        if self.as_text:
            return self.wire_value(value)
        if isinstance(value, UUID):
            return value
        return UUID(self.wire_value(value))

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "string", "format": "uuid", "pattern": self.pattern}


@dataclass(frozen=True)
class IpAddress(WireRule):
    """IPv4 or IPv6 text (`valid_ip`: no zone id); an address object in the model."""

    @property
    def expected(self) -> str:
        return "an IPv4 or IPv6 address string (no zone id)"

    def wire_value(self, value: Any) -> str:
        if not isinstance(value, str) or not valid_ip(value):
            raise self.reject(value)
        return str(value)

    def python_value(self, value: Any) -> IPv4Address | IPv6Address:
        if isinstance(value, IPv4Address) or (
            isinstance(value, IPv6Address) and not value.scope_id
        ):
            return value
        return ip_address(self.wire_value(value))

    def json_schema(self) -> JsonSchemaValue:
        return {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


@dataclass(frozen=True)
class OccurredAt(WireRule):
    """`schemas.wire_time` text on the wire; an aware UTC `datetime` with millisecond
    precision in the model (which also takes an aware `datetime` within the range)."""

    @property
    def expected(self) -> str:
        return OCCURRED_AT_RULE

    def wire_value(self, value: Any) -> str:
        if parse_occurred_at(value) is None:
            raise self.reject(value)
        return str(value)

    def python_value(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            if value.utcoffset() is None or not (
                MIN_OCCURRED_MS <= to_epoch_ms(value) <= MAX_OCCURRED_MS
            ):
                raise self.reject(value)
            return to_utc_ms(value)
        instant = parse_occurred_at(value)
        if instant is None:
            raise self.reject(value)
        return to_utc_ms(instant)

    def json_schema(self) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "date-time",
            "pattern": OCCURRED_AT_PATTERN,
            "description": f"{OCCURRED_AT_RULE}, e.g. 2026-01-15T09:30:00.123Z",
        }


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled
