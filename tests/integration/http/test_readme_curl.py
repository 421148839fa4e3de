"""The README's "Manage keys over HTTP" commands, taken from the README and run as they
are, in order, by bash with the real `curl` (and `jq`) against a live local API, with
`ADMIN_KEY` set to a registry admin key.

The commands name `http://127.0.0.1:8787` (the default `KEYPULSE_API_HOST:PORT`); the
test's API listens on a free port, and a `.curlrc` in `CURL_HOME` (read by curl before
the command line) redirects the connection there with `connect-to`, makes every answer
of 400 or more an error (`fail-with-body`) and writes each request's status to stderr.
So each command must answer 2xx, in sequence (the last, the idempotent create, twice as
the README says), and the state afterwards is checked over the API with the test's own
client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.settings import ApiSettings
from projections.queries import UsageQueries
from tests.integration.http.api_support import assert_problem, bearer
from tests.integration.http.conftest import Live

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## Manage keys over HTTP"
README_BASE = "http://127.0.0.1:8787"
EXPECTED = [
    ("GET", "/api-keys", 200),
    ("POST", "/api-keys", 201),
    ("GET", "/api-keys/{id}", 200),
    ("PATCH", "/api-keys/{id}", 200),
    ("PATCH", "/api-keys/{id}", 200),  # the allow-list
    ("POST", "/api-keys/{id}/roll", 201),
    ("POST", "/api-keys/{id}/revoke", 200),
    ("DELETE", "/api-keys/{id}", 204),
    ("GET", "/account", 200),
    ("PUT", "/account/plan", 200),
    ("GET", "/audit-log?limit=20", 200),
    ("POST", "/api-keys", 201),
    ("POST", "/api-keys", 200),  # the same Idempotency-Key again: a replay
]
"""(method, path with the created key as {id}, status) of each request, in order."""


def readme_commands() -> list[str]:
    """The ```sh blocks of the README's section, in order."""
    text = README.read_text()
    section = text[text.index(SECTION) + len(SECTION) :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def test_the_readme_names_the_default_local_api() -> None:
    blocks = readme_commands()
    assert len(blocks) == 12
    default = ApiSettings()
    assert f"http://{default.host}:{default.port}" == README_BASE
    for block in blocks:
        assert f"{README_BASE}/" in block and "$ADMIN_KEY" in block, block
        assert "pk_" not in block  # no secret in the documentation


def _split_bodies(text: str) -> tuple[str, list[Any]]:
    """`text` without the JSON objects in it, and those objects (in order)."""
    decoder = json.JSONDecoder()
    rest: list[str] = []
    bodies: list[Any] = []
    at = 0
    while (start := text.find('{"', at)) != -1:
        try:
            body, end = decoder.raw_decode(text, start)
        except ValueError:
            rest.append(text[at : start + 2])
            at = start + 2
            continue
        rest.append(text[at:start])
        bodies.append(body)
        at = end
    rest.append(text[at:])
    return "".join(rest), bodies


def _curlrc(home: Path, port: int) -> None:
    home.mkdir()
    (home / ".curlrc").write_text(
        f'connect-to = "127.0.0.1:8787:127.0.0.1:{port}"\n'
        "fail-with-body\n"
        'write-out = "%{stderr}HTTP %{http_code} %{method} %{url_effective}\\n"\n'
    )


@pytest.mark.skipif(shutil.which("jq") is None, reason="the README's create example uses jq")
def test_the_readme_curl_commands_work_verbatim(live: Live, tmp_path: Path) -> None:
    if not hasattr(UsageQueries, "audit_log"):
        pytest.skip("GET /audit-log needs UsageQueries.audit_log (the audit projection)")
    assert shutil.which("curl") is not None
    port = live.api.settings.api.port
    _curlrc(tmp_path / "curl", port)
    blocks = readme_commands()
    script = "\n".join(["set -euo pipefail", *blocks, blocks[-1]])  # the last: "run it twice"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CURL_HOME": str(tmp_path / "curl"),
        "ADMIN_KEY": live.secret("alpha:admin"),
    }
    done = subprocess.run(
        ["bash", "-c", script],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    # the create answer, echoed to stderr by tee, may land anywhere in curl's status
    # lines (curl writes them piece by piece, unbuffered): take JSON bodies out first
    lines, bodies = _split_bodies(done.stderr)
    requests = re.findall(r"HTTP (\d{3}) ([A-Z]+) (http://\S+)", lines)
    created = [b["id"] for b in bodies if isinstance(b, dict) and "secret" in b]
    assert created, done.stderr
    key_id = created[0]
    seen = [
        (method, url.removeprefix(README_BASE).replace(key_id, "{id}"), int(code))
        for code, method, url in requests
    ]
    assert seen == EXPECTED

    with live.api.client() as client:
        client.headers.update(bearer(live.secret("alpha:admin")))
        assert_problem(client.get(f"/api-keys/{key_id}"), 404, "key_not_found")  # deleted
        assert client.get("/account").json()["plan"] == "business"
        listed = client.get("/api-keys").json()["data"]
        names = [k["name"] for k in listed]
        assert names.count("Staging exporter") == 1  # created once, replayed once
        (successor,) = [k for k in listed if k["replaces"] == key_id]  # the roll's new key
        assert successor["name"] == "Production web app (EU)" and successor["status"] == "active"
        assert successor["allowed_cidrs"] == ["203.0.113.0/24", "2001:db8::/32"]
