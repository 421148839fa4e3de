"""Where the master keyring of channel secrets comes from, and writing it (never a topic).

Sources, first match wins:

1. `KEYPULSE_SECRETS_MASTER_KEY`: the keyring text itself (`kid:<base64>` entries,
   separated by commas or newlines, current first);
2. `KEYPULSE_SECRETS_MASTER_KEY_FILE`: a keyring file (it must exist);
3. `<data_dir>/master.keyring`, when that file exists (`keypulse secrets init` writes it,
   and a worker's first start writes it when no key is configured at all: `ensure_keyring`).

The file format is `alerting.sealing.format_keyring`; files are written 0600 (directory
0700), atomically (a new file renamed over the old). `KeyringSource` re-reads the file
when it changed, so a running worker or API picks up a rotation without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from alerting.sealing import Keyring, SealingError, format_keyring, new_master_key, parse_keyring
from infra.settings import ConfigError, Settings

log = logging.getLogger(__name__)

DEFAULT_FILE = "master.keyring"
ENV_KEY = "KEYPULSE_SECRETS_MASTER_KEY"
ENV_FILE = "KEYPULSE_SECRETS_MASTER_KEY_FILE"

NOT_CONFIGURED = (
    f"no master key for channel secrets is configured: set {ENV_FILE} to a keyring file "
    f"(create one with `keypulse secrets init`) or {ENV_KEY} to 'kid:<base64 of 32 bytes>'"
)


class MasterKeyError(ConfigError):
    """The master key is missing or unusable; the message says what to set."""


@dataclass(frozen=True)
class KeyringLocation:
    """Where the keyring comes from: `path` for a file, None for the environment."""

    path: Path | None
    from_env: bool = False

    def describe(self) -> str:
        return ENV_KEY if self.from_env else str(self.path)


def default_keyring_path(settings: Settings) -> Path:
    return settings.data_dir / DEFAULT_FILE


def keyring_location(settings: Settings) -> KeyringLocation | None:
    """The configured source (None: nothing configured and no default file)."""
    if settings.secrets.master_key.get_secret_value().strip():
        return KeyringLocation(None, from_env=True)
    if settings.secrets.master_key_file is not None:
        return KeyringLocation(settings.secrets.master_key_file)
    default = default_keyring_path(settings)
    return KeyringLocation(default) if default.exists() else None


def _read(settings: Settings, where: KeyringLocation) -> Keyring:
    if where.from_env:
        text, source = settings.secrets.master_key.get_secret_value(), ENV_KEY
    else:
        assert where.path is not None
        source = str(where.path)
        try:
            text = where.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MasterKeyError(
                f"{ENV_FILE}={where.path}: no such file; create it with "
                f"`keypulse secrets init --file {where.path}`"
            ) from None
        except OSError as exc:
            raise MasterKeyError(f"{where.path}: cannot read the keyring ({exc})") from None
    try:
        return parse_keyring(text, source)
    except SealingError as exc:
        raise MasterKeyError(str(exc)) from None


def load_keyring(settings: Settings) -> Keyring | None:
    """The configured keyring (None: none configured); raises `MasterKeyError` for a
    configured one that is missing or malformed."""
    where = keyring_location(settings)
    return None if where is None else _read(settings, where)


def require_keyring(settings: Settings) -> Keyring:
    keyring = load_keyring(settings)
    if keyring is None:
        raise MasterKeyError(NOT_CONFIGURED)
    return keyring


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Write `keyring` to `path` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(format_keyring(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_keyring_file(path: Path) -> Keyring:
    """A new keyring with one fresh key at `path` (which must not exist)."""
    if path.exists():
        raise MasterKeyError(f"{path} exists already; rotate with `keypulse secrets rotate-master`")
    keyring = Keyring((new_master_key(),))
    write_keyring(path, keyring)
    return keyring


def ensure_keyring(settings: Settings) -> None:
    """First start without any master key configured: write `<data_dir>/master.keyring`
    (0600) so that rules with channel secrets work on a fresh machine (`keypulse demo`)."""
    if keyring_location(settings) is not None:
        return
    path = default_keyring_path(settings)
    try:
        keyring = create_keyring_file(path)
    except (MasterKeyError, FileExistsError):
        return  # another process made it first
    log.warning(
        "no master key configured: generated %s (master key %s) to seal channel secrets; "
        "back it up, and in production set %s instead",
        path,
        keyring.current_kid,
        ENV_FILE,
    )


class KeyringSource:
    """The keyring for long-lived processes: loaded when asked, re-read when the file
    changed (size or modification time), so a rotation is picked up without a restart.
    Calling it gives the keyring or None (none configured); `require()` raises instead."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._keyring: Keyring | None = None

    def _stamp_now(self) -> tuple[object, ...]:
        where = keyring_location(self._settings)
        if where is None or where.path is None:
            return (where,)
        try:
            stat = where.path.stat()
        except OSError:
            return (where, None)
        return (where, stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def __call__(self) -> Keyring | None:
        stamp = self._stamp_now()
        with self._lock:
            if stamp != self._stamp:
                self._keyring = load_keyring(self._settings)
                self._stamp = stamp
            return self._keyring

    def require(self) -> Keyring:
        keyring = self()
        if keyring is None:
            raise MasterKeyError(NOT_CONFIGURED)
        return keyring
