"""Settings from the environment (the session removes the developer's `KEYPULSE_*`), and
the README's Configuration table, which must list every setting with its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from infra.settings import ConfigError, Settings, load_settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_use_chdb_under_the_data_dir() -> None:
    settings = load_settings(_env_file=None, data_dir=Path("/var/tmp/kp"))
    assert settings.clickhouse_dsn == "chdb:///var/tmp/kp/clickhouse"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")
    monkeypatch.setenv("KEYPULSE_KAFKA_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("KEYPULSE_CLICKHOUSE_DSN", "https://ch.example:8443")
    monkeypatch.setenv("KEYPULSE_WORKER_BATCH_MAX_EVENTS", "1000")
    settings = load_settings(_env_file=None)
    assert settings.kafka.bootstrap_servers == "a:1,b:2"
    assert settings.kafka.topic_prefix == "staging."
    assert settings.clickhouse_dsn == "https://ch.example:8443"
    assert settings.worker.batch_max_events == 1000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEYPULSE_CLICKHOUSE_DSN", "mysql://db"),
        ("KEYPULSE_CLICKHOUSE_DSN", "chdb://"),
        ("KEYPULSE_CLICKHOUSE_DSN", "http://:8123"),
        ("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "host:99999"),
        ("KEYPULSE_WORKER_BATCH_MAX_EVENTS", "zero"),
        ("KEYPULSE_KAFKA_TOPIC_PREFIX", "bad prefix!"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert variable in message
    assert "\n" not in message


def _model_variables() -> dict[str, tuple[tuple[str, ...], FieldInfo]]:
    """Every setting as `KEYPULSE_<GROUP>_<FIELD>` (or `KEYPULSE_<FIELD>`): path and field."""
    found: dict[str, tuple[tuple[str, ...], FieldInfo]] = {}
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            for sub, sub_field in group.model_fields.items():
                found[f"KEYPULSE_{name}_{sub}".upper()] = ((name, sub), sub_field)
        else:
            found[f"KEYPULSE_{name}".upper()] = ((name,), field)
    return found


def _readme_rows() -> dict[str, str]:
    """`variable -> default cell` of the README's Configuration table."""
    text = README.read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(KEYPULSE_[A-Z0-9_]+)` \| (.*?) \| .+ \|", line.strip())
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
            rows[match.group(1)] = match.group(2)
    return rows


def _value(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_readme_table_lists_every_setting_and_nothing_else() -> None:
    rows, model = _readme_rows(), _model_variables()
    assert len(rows) > 30, "the Configuration table was not found in README.md"
    assert sorted(set(model) - set(rows)) == [], "settings missing from the README table"
    assert sorted(set(rows) - set(model)) == [], "README rows that are no setting"


def test_readme_defaults_agree_with_the_settings_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backticked default, read back through its variable, is the model's default;
    `(empty…)` means an empty string and `(none)` no value."""
    defaults, model = load_settings(_env_file=None), _model_variables()
    for variable, cell in _readme_rows().items():
        if variable not in model:
            continue  # reported by the test above
        path, _ = model[variable]
        expected = _value(defaults, path)
        if cell.startswith("(empty"):
            assert expected == "", variable
        elif cell == "(none)":
            assert expected is None, variable
        else:
            literal = re.fullmatch(r"`([^`]*)`", cell)
            assert literal, f"{variable}: default {cell!r} is no `literal`, (empty) or (none)"
            with monkeypatch.context() as patch:
                patch.setenv(variable, literal.group(1))
                assert _value(load_settings(_env_file=None), path) == expected, variable
