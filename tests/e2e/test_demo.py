"""A shortened `keypulse demo` in an 80-column terminal runs to its report, keeps serving
its console until Ctrl-C, then stops cleanly.

The demo creates its account and keys through the key service, reads the keys page from
the HTTP API with the admin key and prints that key once, at the end, with the console's
address; this test signs in to the console with it over HTTP while the demo serves. It
records through the library with its default compression (lz4), so the worker consumes
lz4 batches here as it does in production. Its stdout is a pseudo-terminal 80 columns
wide (what `keypulse demo` sees in a terminal: it keeps serving only there); the report
must read there, no line longer and no cell cut short.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.console_http import sign_in
from infra.tools.demo import KEYS
from schemas.key_format import ParsedSecret, check_secret

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
SERVING = "serving the console and the API until Ctrl-C"
KEY_NAMES = ("Demo admin", *(k.name for k in KEYS))


class Terminal:
    """A pseudo-terminal `columns` wide whose output a thread collects (ANSI removed)."""

    def __init__(self, columns: int) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self._raw = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self._raw += chunk

    def text(self) -> str:
        return ANSI.sub("", bytes(self._raw).decode(errors="replace")).replace("\r\n", "\n")

    def wait_for(self, marker: str, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while marker not in (text := self.text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} (exit {proc.poll()}):\n{text[-3000:]}")
            time.sleep(0.2)
        return text

    def close(self) -> None:
        os.close(self.slave)
        self._thread.join(10)
        os.close(self.master)


def test_demo_reports_serves_its_console_and_stops_on_ctrl_c(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
        "KEYPULSE_DATA_DIR": str(tmp_path),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TERM": "xterm-256color",
    }
    terminal = Terminal(columns=80)
    errors = tmp_path / "stderr.log"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "demo", "--duration", "15"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=terminal.slave,
            stderr=stderr,
        )
    try:
        output = terminal.wait_for(SERVING, proc, timeout_s=300)
        base = re.search(r"^console   (http://127\.0\.0\.1:\d+)/console$", output, re.M)
        secrets = re.findall(r"pk_(?:live|test)_[0-9A-Za-z]{36}", output)
        assert base is not None, output[-3000:]
        assert len(secrets) == 1, "the admin key is printed once, no other secret at all"
        assert isinstance(check_secret(secrets[0]), ParsedSecret)
        with httpx.Client(base_url=base.group(1), timeout=30) as http:
            sign_in(http, secrets[0])
            page = http.get("/console/keys")
        assert page.status_code == 200 and "API Keys" in page.text, page.text[:500]
        assert "acc_demo" in page.text, "signed in as the demo account"
        for name in KEY_NAMES:
            assert name in page.text, f"{name} on the console's keys page"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, terminal.text()[-3000:] + errors.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        terminal.close()
    output = terminal.text()
    assert "alert fired" in output and "[FIRING]" in output and "webhook-id" in output
    assert "(lz4 compression)" in output
    assert output.index(SERVING) < output.index("stopping") < output.index("finished cleanly")
    report = output[output.index("API keys (") : output.index(SERVING)]
    for name in KEY_NAMES:
        assert name in report, f"{name} in the keys table read with the admin key"
    lines = report.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in report, "no cell cut short in 80 columns"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base.group(1)}/healthz", timeout=5)
