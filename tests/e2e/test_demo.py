"""A shortened `keypulse demo` runs headless to completion and shows a delivered alert.

The demo records through the library with its default compression (lz4), so the worker
consumes lz4 batches here as it does in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
