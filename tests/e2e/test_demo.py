"""A shortened `keypulse demo` runs headless to completion and shows a delivered alert.

The demo creates its account and keys through the key service, prints the admin key once
and reads the keys page from the HTTP API with it. It records through the library with
its default compression (lz4), so the worker consumes lz4 batches here as it does in
production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.key_format import ParsedSecret, check_secret

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_demo_runs_headless_and_delivers_an_alert(tmp_path: Path, kafka_bootstrap: str) -> None:
    env = {
        **os.environ,
        "KEYPULSE_DATA_DIR": str(tmp_path),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COLUMNS": "160",
    }
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo", "--duration", "15"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "alert fired" in output
    assert "[FIRING]" in output
    assert "webhook-id" in output
    assert "Batch exporter" in output
    assert "(lz4 compression)" in output
    assert "demo finished cleanly" in output
    secrets = re.findall(r"pk_(?:live|test)_[0-9A-Za-z]{36}", output)
    assert len(secrets) == 1, "the admin key is printed once, no other secret at all"
    assert f"Authorization: Bearer {secrets[0]}" in output
    assert isinstance(check_secret(secrets[0]), ParsedSecret)
    assert "Demo admin" in output, "the keys page was read with the admin key"
