"""The library an API embeds stands alone: the base install, in a clean venv, against Kafka.

Once per session a fresh venv (without pip of its own) gets `pip install <repository root>`
with no extras, by this environment's pip run under the venv's interpreter (pip may
download the base dependencies). The root is copied to a temporary directory first,
without its caches, venv and build output, so that the build writes nothing into the
working tree. `client_install_probe.py` then runs there, isolated
(`python -I`: no PYTHONPATH, no user site, not the repository on `sys.path`): it records
events through `streams.client.UsageRecorder`, publishes the account's chain (created,
then one key per plan entry) through `KeyEventPublisher`, and reports which server-side
packages it could import. This process reads both topics back and checks the exact counts
against the plan it gave, and that the one fold applies the whole chain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from schemas.codec import decode_key_event, decode_requests
from schemas.key_ledger import AccountLedger, apply
from schemas.keys import KeyCreated
from schemas.topics import TopicNames
from tests.integration.producer_support import read_topic

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("client_install_probe.py")
VENV_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 600
PROBE_TIMEOUT_S = 180
PLAN = {"key_install01": 1_500, "key_install02": 700, "key_install03": 1}
LIGHT = {"schemas", "streams", "orjson", "kafka", "crc32c", "lz4", "confluent_kafka"} | {
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
}
NOT_SOURCE = (
    ".git",
    ".venv",
    ".keypulse",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "lib",  # infra/kafka/lib: the broker's jars
    "target",
)
SERVER = ("faust", "chdb", "fastapi", "clickhouse_connect", "pydantic_settings")


def _clean_env() -> dict[str, str]:
    """This environment without the venv, PYTHONPATH and any KEYPULSE_* setting."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("KEYPULSE_")
    }


def _run(args: list[str], timeout_s: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args,
        check=False,
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def base_install_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv holding the base install (no extras) only."""
    work = tmp_path_factory.mktemp("client-install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    venv = work / "venv"
    # No pip of its own (ensurepip is most of a venv's creation time): this process's pip
    # installs into it, running under the venv's interpreter (`pip --python`).
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], VENV_TIMEOUT_S, work)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        INSTALL_TIMEOUT_S,
        work,
    )
    return python


def test_base_install_records_and_publishes_without_server_packages(
    base_install_python: Path, kafka_bootstrap: str, topics: TopicNames, tmp_path: Path
) -> None:
    done = _run(
        [
            str(base_install_python),
            "-I",
            str(PROBE),
            kafka_bootstrap,
            topics.requests,
            topics.key_events,
            json.dumps(PLAN),
        ],
        PROBE_TIMEOUT_S,
        tmp_path,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])

    venv = base_install_python.parent.parent
    assert Path(report["client_file"]).is_relative_to(venv), (
        "imported the repository, not the install"
    )
    assert report["importable"] == dict.fromkeys(SERVER, False)
    heavy = {
        name
        for name in report["loaded_by_import"]
        if name not in LIGHT
        and name not in sys.stdlib_module_names
        and not name.startswith("_sysconfigdata")
    }
    assert not heavy, f"importing streams.client loaded {sorted(heavy)}"

    total = sum(PLAN.values())
    assert report["flushed"] is True
    assert report["stats"] == {"recorded": total, "sent": total, "dropped": 0}

    per_key: Counter[str] = Counter()
    event_ids: set[str] = set()
    for record in read_topic(kafka_bootstrap, topics.requests):
        decoded = decode_requests(record.value)
        per_key.update(decoded.columns["key_id"])
        event_ids.update(decoded.columns["event_id"])
        assert decoded.columns["account_id"] == ["acc_install"] * decoded.count
    assert per_key == Counter(PLAN)
    assert len(event_ids) == total

    key_events = [decode_key_event(r.value) for r in read_topic(kafka_bootstrap, topics.key_events)]
    assert sorted(e.key_id for e in key_events if isinstance(e, KeyCreated)) == sorted(PLAN)
    assert {str(e.event_id) for e in key_events} == {p["event_id"] for p in report["published"]}
    ledger: AccountLedger | None = None
    for event in sorted(key_events, key=lambda e: e.seq):
        ledger, refusal = apply(ledger, event)
        assert refusal is None, (event, refusal)
    assert ledger is not None and sorted(ledger.keys) == sorted(PLAN)
