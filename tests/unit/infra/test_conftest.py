"""The test session is hermetic: a developer's `KEYPULSE_CLICKHOUSE_DSN` pointing at a
real server (in the environment or in `.env`) receives nothing from the fixtures: no
migration, no `DROP DATABASE`, not one request."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.settings import load_settings

pytestmark = pytest.mark.clickhouse

ROOT = Path(__file__).resolve().parents[3]
PROBE = Path(__file__).with_name("hermetic_probe.py")


@contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback recording `METHOD path body` of every request."""
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            seen.append(f"{self.command} {self.path} {body}".strip())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _record  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_real_clickhouse_dsn_receives_nothing_from_the_fixtures(tmp_path: Path) -> None:
    with recording_server() as (url, seen):
        urllib.request.urlopen(f"{url}/ping", timeout=5).read()
        assert seen == ["GET /ping"], "the recorder must see requests for this test to mean much"
        seen.clear()
        dotenv = tmp_path / ".env"
        dotenv.write_text(f"KEYPULSE_CLICKHOUSE_DSN={url}\nKEYPULSE_CLICKHOUSE_DATABASE=prod\n")
        assert load_settings(_env_file=dotenv).clickhouse_dsn == url  # a `.env` that would count
        env = {**os.environ, "KEYPULSE_CLICKHOUSE_DSN": url, "KEYPULSE_CLICKHOUSE_DATABASE": "prod"}
        pytest_args = ["-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml")]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args, "--rootdir", str(ROOT), str(PROBE)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        assert seen == [], "requests reached the developer's ClickHouse"
        assert result.returncode == 0, output[-3000:]
        assert "4 passed" in result.stdout, output[-3000:]
