"""security/gitleaks.toml finds every generated keypulse key and no near-miss.

The real gitleaks binary (`make setup` installs it into the virtualenv's bin directory)
scans files of keys made by `schemas.key_format.generate_secret` in the places keys end
up (env files, JSON, headers, URLs, code), and files of near-misses made from real keys:
a wrong prefix (pk_prod_, sk_live_, PK_LIVE_), a body one character short or long, one
character outside base62. A second test applies the rule's regex and entropy with
Python's `re` to the same corpus, so the rule's meaning is also checked without the
binary. Neither can check the CRC32 checksum (gitleaks has no such check).
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.key_format import SECRET_LENGTH, ParsedSecret, check_secret, generate_secret

CONFIG = Path(__file__).resolve().parents[2] / "security" / "gitleaks.toml"
RULE_ID = "keypulse-api-key"
CONTEXTS = (
    "KEYPULSE_KEY={}",
    'api_key = "{}"',
    "Authorization: Bearer {}",
    '{{"secret": "{}", "type": "live"}}',
    "curl -H 'Authorization: Bearer {}' http://127.0.0.1:8787/api-keys",
    "https://example.test/render?key={}&page=2",
    "key: `{}`",
    "{}",
    "export TOKEN='{}' # prod",
    "client = Client(token={})",
)
NON_BASE62 = "-+/.=~é:@ "


@dataclass(frozen=True)
class Corpus:
    keys: list[str]
    """Every real key, once per occurrence in `keys.txt`."""
    keys_text: str
    near_misses: list[str]
    near_text: str


def _near_misses(key: str, rng: random.Random) -> list[str]:
    body = key[len("pk_live_") :]
    at = rng.randrange(len(body))
    bad = rng.choice(NON_BASE62)
    return [
        "pk_prod_" + body,
        "sk_live_" + body,
        "sk_test_" + body,
        "PK_LIVE_" + body,
        key[:-1],  # 35 characters after the prefix
        key + rng.choice("aZ7"),  # 37
        key[: len("pk_live_") + at] + bad + key[len("pk_live_") + at + 1 :],
        "xpk_live_" + body,  # no word boundary before it
        "pk_live_" + "0" * 36,  # the shape, but a placeholder
        "pk_test_" + "abcdef" * 6,
    ]


def _corpus(rng: random.Random, count: int = 120) -> Corpus:
    keys = [generate_secret(rng.choice(("live", "test"))) for _ in range(count)]
    assert all(len(k) == SECRET_LENGTH and isinstance(check_secret(k), ParsedSecret) for k in keys)
    lines = [rng.choice(CONTEXTS).format(k) for k in keys]
    lines.append(f"two on a line: {keys[0]} and {keys[1]}")
    found = [*keys, keys[0], keys[1]]
    near = [m for k in keys[:60] for m in _near_misses(k, rng)]
    near_lines = [rng.choice(CONTEXTS).format(m) for m in near]
    return Corpus(found, "\n".join(lines) + "\n", near, "\n".join(near_lines) + "\n")


def _gitleaks() -> str:
    beside = Path(sys.executable).parent / "gitleaks"
    found = str(beside) if beside.exists() else shutil.which("gitleaks")
    if found is None:
        pytest.fail("gitleaks is not installed; `make setup` installs it into .venv/bin")
    return found


def _scan(gitleaks: str, target: Path, report: Path) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run(
        [
            gitleaks, "dir", "--config", str(CONFIG), "--no-banner", "--no-color",
            "--log-level", "warn", "--report-format", "json", "--report-path", str(report),
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "ERR" not in result.stderr and "FTL" not in result.stderr, result.stderr
    findings: list[dict[str, Any]] = json.loads(report.read_text())
    return result.returncode, findings


def test_gitleaks_finds_every_key_and_no_near_miss(tmp_path: Path) -> None:
    gitleaks = _gitleaks()
    corpus = _corpus(random.Random(12))
    keys_dir, near_dir = tmp_path / "keys", tmp_path / "near"
    keys_dir.mkdir()
    near_dir.mkdir()
    (keys_dir / "keys.txt").write_text(corpus.keys_text)
    (near_dir / "near.txt").write_text(corpus.near_text)

    code, findings = _scan(gitleaks, keys_dir, tmp_path / "keys.json")
    assert code == 1
    assert {f["RuleID"] for f in findings} == {RULE_ID}
    assert Counter(f["Secret"] for f in findings) == Counter(corpus.keys)

    code, findings = _scan(gitleaks, near_dir, tmp_path / "near.json")
    assert [f["Secret"] for f in findings] == [] and code == 0


def _rule() -> dict[str, Any]:
    config = tomllib.loads(CONFIG.read_text())
    rules: list[dict[str, Any]] = config["rules"]
    assert [r["id"] for r in rules] == [RULE_ID]
    return rules[0]


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _python_scan(rule: dict[str, Any], text: str) -> list[str]:
    """The rule as gitleaks applies it: keywords first, then the regex, then entropy."""
    if not any(k in text.lower() for k in rule["keywords"]):
        return []
    found = (m.group(rule["secretGroup"]) for m in re.finditer(rule["regex"], text, re.ASCII))
    return [s for s in found if _entropy(s) >= rule["entropy"]]


def test_the_rule_means_the_same_in_python_re() -> None:
    """Without the binary: the regex (RE2's subset, so `re` reads it alike) and entropy."""
    rule = _rule()
    assert "keypulse keys scan" in rule["description"] and "checksum" in rule["description"]
    corpus = _corpus(random.Random(34), count=400)
    assert Counter(_python_scan(rule, corpus.keys_text)) == Counter(corpus.keys)
    assert _python_scan(rule, corpus.near_text) == []
    for miss in corpus.near_misses:
        assert _python_scan(rule, miss) == [], miss
