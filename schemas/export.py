"""JSON Schema export: one file per event type (`keypulse schemas export DIR`).

Each schema is JSON Schema draft 2020-12 (`$schema`), made from the model in validation
mode, so it states what a record on the wire must be: every field listed in `required`
must be present (`type`, `schema_version`, `event_id` and `occurred_at` included), unknown
extra fields are allowed, `pattern` is ECMA-262 and the `format`s (`uuid`, `date-time`,
`ipv4`, `ipv6`) are meant as assertions. One rule JSON Schema cannot state: the columns of
a `request.batch` all have the same length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.alerts import AlertRuleCreated, AlertRuleDeleted, AlertRuleUpdated, Notification
from schemas.keys import (
    AccountCreated,
    KeyAllowListChanged,
    KeyCreated,
    KeyDeleted,
    KeyRenamed,
    KeyRevoked,
    KeyRolled,
    PlanChanged,
)
from schemas.requests import OutcomeBatch, OutcomeRecorded, RequestBatch, RequestCompleted

DRAFT = "https://json-schema.org/draft/2020-12/schema"

EXPORTED: tuple[type[BaseModel], ...] = (
    AccountCreated,
    PlanChanged,
    KeyCreated,
    KeyRenamed,
    KeyRevoked,
    KeyDeleted,
    KeyAllowListChanged,
    KeyRolled,
    RequestCompleted,
    RequestBatch,
    OutcomeRecorded,
    OutcomeBatch,
    AlertRuleCreated,
    AlertRuleUpdated,
    AlertRuleDeleted,
    Notification,
)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The exported JSON Schema of `model` (what `export_json_schemas` writes)."""
    return {"$schema": DRAFT, **model.model_json_schema()}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write `<Model>.schema.json` for every `EXPORTED` model into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED:
        path = directory / f"{model.__name__}.schema.json"
        path.write_bytes(orjson.dumps(json_schema(model), option=orjson.OPT_INDENT_2))
        written.append(path)
    return written
