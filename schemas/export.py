"""JSON Schema export: one file per event type."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas.alerts import AlertRuleCreated, AlertRuleDeleted, AlertRuleUpdated, Notification
from schemas.keys import KeyCreated, KeyDeleted, KeyRenamed, KeyRevoked
from schemas.requests import RequestBatch, RequestCompleted

EXPORTED: tuple[type[BaseModel], ...] = (
    KeyCreated,
    KeyRenamed,
    KeyRevoked,
    KeyDeleted,
    RequestCompleted,
    RequestBatch,
    AlertRuleCreated,
    AlertRuleUpdated,
    AlertRuleDeleted,
    Notification,
)


def export_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED:
        path = directory / f"{model.__name__}.schema.json"
        path.write_bytes(orjson.dumps(model.model_json_schema(), option=orjson.OPT_INDENT_2))
        written.append(path)
    return written
