"""keypulse configuration: one `Settings` read from `KEYPULSE_*` variables and `.env`.

Nested groups use a single underscore after the group name, e.g.
`KEYPULSE_KAFKA_BOOTSTRAP_SERVERS`, `KEYPULSE_CLICKHOUSE_DSN`. Only `infra` reads the
environment; everything below it receives plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KEYPULSE_"


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the variable."""


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    controller_port: Annotated[int, Field(gt=0, lt=65536)] = 9093
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]*$", max_length=100)] = ""
    client_id: str = "keypulse"
    consumer_group: str = "keypulse-worker"
    session_timeout_s: Annotated[float, Field(ge=6, le=300)] = 10.0
    broker_heap: str = "768m"
    start_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    replication_factor: Annotated[int, Field(ge=1, le=16)] = 1
    """`KEYPULSE_KAFKA_REPLICATION_FACTOR`: the replication factor of the topics keypulse
    creates (3 on a three-broker cluster)."""
    min_insync_replicas: Annotated[int, Field(ge=1, le=16)] = 1
    """`KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS`: `min.insync.replicas` of the topics keypulse
    creates (2 with replication factor 3: an acks=all write survives one broker down)."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        for server in servers:
            _check_host_port(server)
        return ",".join(servers)

    @model_validator(mode="after")
    def _replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} exceeds replication_factor "
                f"{self.replication_factor}: no write could succeed; lower "
                "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS or raise KEYPULSE_KAFKA_REPLICATION_FACTOR"
            )
        return self

    @property
    def first_server(self) -> tuple[str, int]:
        host, _, port = self.bootstrap_servers.split(",")[0].rpartition(":")
        return host, int(port)


class ClickHouseSettings(BaseModel):
    dsn: str = ""  # empty: chdb:///<data_dir>/clickhouse
    database: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "keypulse"
    chdb_max_memory_mb: Annotated[int, Field(ge=256)] = 4096
    raw_ttl_days: Annotated[int, Field(ge=1)] = 35

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        if not value:
            return value
        parsed = urlparse(value)
        if parsed.scheme == "chdb":
            if not parsed.path or parsed.path == "/":
                raise ValueError("a chdb DSN needs a data directory: chdb:///path/to/dir")
            return value
        if parsed.scheme in ("http", "https"):
            if not parsed.hostname:
                raise ValueError("an http(s) DSN needs a host: http://host:8123")
            try:
                _ = parsed.port
            except ValueError as exc:
                raise ValueError(f"bad port in {value!r}") from exc
            return value
        raise ValueError(f"expected chdb:///path or http(s)://host:port, got {value!r}")


class WorkerSettings(BaseModel):
    batch_max_messages: Annotated[int, Field(ge=1)] = 256
    batch_max_events: Annotated[int, Field(ge=1)] = 50_000
    batch_max_ms: Annotated[int, Field(ge=1)] = 500
    max_message_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 8 * 1024 * 1024
    max_future_s: Annotated[int, Field(ge=0)] = 300
    """Request events dated more than this after their Kafka record's timestamp are
    dead-lettered (`future_timestamp`)."""
    fault_kill_after_blocks: Annotated[int, Field(ge=0)] = 0
    """Fault injection for tests only: SIGKILL the worker right after its Nth insert,
    before the offsets are committed. 0 (the default) disables it."""
    attribution_grace_s: Annotated[float, Field(gt=0)] = 60.0
    """How long request events for a key the registry does not know wait for its
    `key.created` before they are recorded as unattributed (`key_anomalies`, metric)."""


class ManagementKey(BaseModel):
    """An operator bootstrap key for the HTTP API, configured with its hash only (never
    the secret). Only for bootstrapping an account and for the operator's own tools: the
    management API's keys are the registry's admin and read-only keys. Scope `full` acts
    as an admin key, `read_only` as a read-only key, on `account_id`."""

    key_id: Annotated[str, Field(pattern=r"^mk_[A-Za-z0-9]{3,64}$")]
    account_id: Annotated[str, Field(pattern=r"^acc_[A-Za-z0-9]{3,64}$")]
    scope: Literal["full", "read_only"] = "read_only"
    secret_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    revoked: bool = False


class SecretScanningKey(BaseModel):
    """One public key of a secret-scanning reporter (ECDSA, PEM)."""

    key_identifier: Annotated[str, Field(min_length=1, max_length=512)]
    key: Annotated[str, Field(min_length=1)]


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8787
    serve_in_worker: bool = True
    token: SecretStr = SecretStr("")
    """The key the CLI sends when it reads through a running worker: a read-only or
    admin key of the registry (or an operator bootstrap key)."""
    management_keys: list[ManagementKey] = []
    """Operator bootstrap keys, a JSON list, e.g. `[{"key_id": "mk_ops", "account_id":
    "acc_x", "scope": "full", "secret_hash": "sha256:..."}]`; `keypulse api-keys hash`
    prints a hash."""
    verify_tokens: list[Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]] = []
    """`KEYPULSE_API_VERIFY_TOKENS`: the service credentials of `POST /verify`, a JSON list
    of `sha256:<hex>` hashes of the tokens (never the tokens); `keypulse api-keys hash`
    prints one. Empty: `/verify` refuses every call."""
    verify_environment: Literal["production", "development"] = "production"
    secret_scanning_public_keys: list[SecretScanningKey] = []
    """`KEYPULSE_API_SECRET_SCANNING_PUBLIC_KEYS`: the public keys that sign secret-scanning
    reports (GitHub's partner program), a JSON list of `{"key_identifier": …, "key": PEM}`.
    Empty: the report endpoint refuses every call."""
    auth_failures_before_delay: Annotated[int, Field(ge=1)] = 5
    """Failed authentications from one client IP (within `auth_failure_window_s`) before
    its answers are slowed."""
    auth_failures_before_block: Annotated[int, Field(ge=1)] = 20
    """Failed authentications from one client IP before it is refused (429) for
    `auth_block_s`."""
    auth_failure_window_s: Annotated[float, Field(gt=0)] = 300.0
    auth_block_s: Annotated[float, Field(gt=0)] = 900.0
    """`KEYPULSE_API_VERIFY_ENVIRONMENT`: what `POST /verify` flags (a live key in
    development, a test key in production)."""


class AlertingSettings(BaseModel):
    """Evaluator, notifier and channel settings (`KEYPULSE_ALERTING_<FIELD>`).

    Email is configured when `smtp_host` is set (otherwise email channels dead-letter).
    `allow_loopback_webhooks` exists for tests and local demos only.
    """

    eval_interval_s: Annotated[float, Field(gt=0)] = 5.0
    eval_min_gap_s: Annotated[float, Field(ge=0)] = 1.0
    idle_advance_s: Annotated[float, Field(gt=0)] = 10.0
    evaluator_enabled: bool = True
    notifier_enabled: bool = True
    allow_loopback_webhooks: bool = False
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    webhook_ca_file: str | None = None
    slack_api_base_url: str = "https://slack.com/api/"
    slack_allowed_webhook_hosts: list[str] = ["hooks.slack.com"]
    smtp_host: str = ""
    smtp_port: Annotated[int, Field(gt=0, lt=65536)] = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_sender: str = "keypulse <alerts@keypulse.invalid>"
    smtp_ca_file: str | None = None
    smtp_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    retry_fast_delays_s: list[Annotated[float, Field(ge=0)]] = [5.0, 30.0, 120.0]
    retry_give_up_after_s: Annotated[float, Field(gt=0)] = 86_400.0
    max_concurrent_deliveries: Annotated[int, Field(ge=1, le=256)] = 16


class SecretsSettings(BaseModel):
    """The master key that wraps channel secrets at rest (`KEYPULSE_SECRETS_<FIELD>`).

    It comes from a file or the environment, never from a topic or a table."""

    master_key_file: Path | None = None
    master_key: SecretStr = Field(default=SecretStr(""), repr=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    data_dir: Path = Path(".keypulse")
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    alerting: AlertingSettings = AlertingSettings()
    secrets: SecretsSettings = SecretsSettings()

    @property
    def clickhouse_dsn(self) -> str:
        if self.clickhouse.dsn:
            return self.clickhouse.dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"


def _variable_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "_".join(str(part) for part in loc).upper()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into one `ConfigError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [f"{_variable_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
