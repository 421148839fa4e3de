"""Schemathesis against the served OpenAPI document: every operation, fuzzed with an
admin key, a read-only key and invalid credentials, in positive and negative generation
modes. Every answer must be no 5xx, a documented status code with a documented content
type, a body that conforms to its documented schema, documented headers present, and
nothing of another account: beta (the other account) has keys, usage, an alert rule and
a delivery, and no raw body answered to alpha's callers may contain beta's ids, key ids,
or names (but a string the request itself carried, which an error may echo).

The API is a worker serving it over a real broker and chDB (`serving`), over alpha's and
beta's traffic; the fuzzing runs in a thread (the worker serves on the test's loop).
Bounded and reproducible: hypothesis derandomized, a fixed `max_examples` per operation
and credential kind, no shrinking (every failing case is recorded, not minimised), no
example database. The figures (operations, cases, failures per credential kind) are
written to `test-artifacts/fuzz-summary.json` and printed.

Credential kinds: `admin` (alpha's admin key; on `POST /verify` a valid service token,
the only credential that route takes), `read_only` (alpha's read-only key, everywhere),
`invalid` (per case one of: a well-formed unknown key, a key with a wrong checksum, a
non-Bearer header, none). The probes take no credential and run once, as `admin`; the
secret-scanning report is authenticated by its signature (all three kinds send it
unsigned or wrongly signed, and every check but the credential's status applies). The
brute-force limits are set out of reach (the invalid callers all come from 127.0.0.1);
their 429 answers have tests of their own.

Beyond schemathesis' checks: an invalid credential gets 401 and a read-only key's change
403 (`_refusal`), and a request the document calls valid is not refused 422 by the
admin (`_rejected_valid_data`), but for the reasons `DOMAIN_REFUSALS` and
`UNTYPED_BODIES` give.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, Response
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup

from alerting.ports import DeliveryRecord, RuleChange
from infra.kafka.admin import ensure_topics
from projections.alert_store import ClickHouseDeliveryLog, ClickHouseRuleStore
from schemas.alerts import EmailChannel
from schemas.key_format import generate_secret, hash_secret
from schemas.topics import TopicNames
from tests.conftest import fresh_topic_prefix
from tests.eventually import eventually
from tests.integration.http.api_support import ALPHA, BETA, Api, bearer, serving, serving_settings
from tests.integration.http.conftest import (
    ALPHA_KEYS,
    BETA_KEY,
    account_chains,
    chain_secrets,
    traffic,
)
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.alerting import make_notification, make_rule
from tests.samples.keys import publish

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    # schemathesis 4.32.5's generators call the `random` module inside strategies (its
    # code, not ours); hypothesis warns about that, which this suite makes an error
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

SUMMARY = Path(__file__).resolve().parents[3] / "test-artifacts" / "fuzz-summary.json"
SERVICE_TOKEN = "fuzz-service-token"
INVALID_VARIANTS = 4
PROBES = {"/healthz", "/readyz", "/metrics"}
"""Unauthenticated routes."""
SIGNED = "/secret-scanning/"
"""Routes authenticated by a request signature, not a key (the partner's reports, whose
signature checks have tests of their own): every other check applies."""
UNREACHABLE = 10**9
"""Brute-force limits no fuzzing run reaches."""

MAX_EXAMPLES = {
    ("admin", GenerationMode.POSITIVE): 10,
    ("admin", GenerationMode.NEGATIVE): 6,
    ("read_only", GenerationMode.POSITIVE): 4,
    ("read_only", GenerationMode.NEGATIVE): 2,
    ("invalid", GenerationMode.POSITIVE): 3,
    ("invalid", GenerationMode.NEGATIVE): 2,
}
"""Cases per operation, credential kind and generation mode (the time bound)."""

CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

BETA_RULE, BETA_RULE_NAME, BETA_DELIVERY = "rule_betafuzz01", "Beta fuzz rule", "dlv_betafuzz01"
ALPHA_RULE, ALPHA_DELIVERY = "rule_alphafuzz1", "dlv_alphafuzz1"
KNOWN_IDS = {
    "key_id": [*ALPHA_KEYS, "key_alphafull", BETA_KEY, "key_betaadmin"],
    "rule_id": [ALPHA_RULE, BETA_RULE],
    "delivery_id": [ALPHA_DELIVERY, BETA_DELIVERY],
}
"""Ids the path parameters also take: alpha's (never its admin or read-only key, the
fuzzer's credentials, which a revocation would end) and beta's."""
BETA_MARKERS = (
    BETA,
    BETA_KEY,
    "key_betaadmin",
    f"name of {BETA_KEY}",
    BETA_RULE,
    BETA_RULE_NAME,
    BETA_DELIVERY,
    "hooks.beta.example.com",
)
"""Beta's ids and names (its admin key is named `name of admin`, as alpha's is, so that
name is not a marker; its usage key's name is)."""


DOMAIN_REFUSALS = {
    "invalid_cidr": "allowed_cidrs entries must parse as IP networks: JSON Schema has no "
    "format for an IP network (ipv4/ipv6 are addresses), and a regex would be wrong",
    "idempotency_key_reused": "an Idempotency-Key names one request: the generator may send "
    "one key with two bodies, and no schema can say a header is unique per request",
    "invalid_expiry": "expires_at must carry a zone and lie in the next 3650 days, and "
    "excludes expires_in: facts of the clock and of a combination of nullable fields",
}
"""Codes of 422 refusals of schema-valid requests, each for a reason JSON Schema cannot
express."""
UNTYPED_BODIES = {
    "/alert-rules": "the body is documented as any object (`dict[str, Any]` in "
    "infra.http.routes.rules), validated as a rule in the route",
    "/alert-rules/{rule_id}": "the same, for a change",
}
"""Operations whose request body the document does not describe yet, so any 422 for a
generated body is expected (the document should reference the rule's schema)."""


def _wrong_checksum(secret: str) -> str:
    changed = "A" if secret[10] != "A" else "B"
    return secret[:10] + changed + secret[11:]


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)
    no_negative: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    http_seconds: dict[str, float] = field(default_factory=dict)

    def fail(self, kind: str, what: str) -> None:
        self.failures.setdefault(kind, []).append(what)


def _leaks(response: Response) -> list[str]:
    """Beta's markers in the raw body (decoded leniently: every byte counts), but those
    the request carried itself (a 404 names the id it was asked for)."""
    sent = f"{response.request.url} {response.request.body!r}"
    body = response.content.decode("utf-8", "replace")
    return [m for m in BETA_MARKERS if m in body and m not in sent]


def _unreadable_body(response: Response) -> bool:
    """422 for a body that is not JSON at all (`body` or `body.<offset>`)."""
    if response.status_code != 422:
        return False
    errors = json.loads(response.content).get("errors") or []
    return bool(errors) and all(re.fullmatch(r"body(\.\d+)?", e["field"]) for e in errors)


def _rejected_valid_data(operation: Operation, response: Response) -> str | None:
    """A request the document says is well formed, refused as invalid (422), but for
    the refusals no JSON Schema can express (`DOMAIN_REFUSALS`)."""
    if response.status_code != 422 or operation.path in UNTYPED_BODIES:
        return None
    code = json.loads(response.content).get("error")
    if code in DOMAIN_REFUSALS:
        return None
    return f"valid data refused ({code})"


def _refusal(kind: str, operation: Operation, response: Response) -> str | None:
    """What is wrong with the answer's status for this credential (None: nothing): an
    invalid credential gets 401 everywhere but the probes; a read-only key gets 403 for
    every change, and 401 on `/verify` (no management key is a service token).

    One answer comes before authentication and says nothing about any account: a body
    that is not JSON at all is 422 everywhere (FastAPI reads and decodes the body before
    it runs the auth dependency)."""
    status, method, path = response.status_code, operation.method.upper(), operation.path
    if path in PROBES or path.startswith(SIGNED) or kind == "admin":
        return None
    if _unreadable_body(response):
        return None
    if kind == "invalid" or path == "/verify":
        return None if status == 401 else f"expected 401 for a {kind} credential"
    if method != "GET" and status != 403:
        return "expected 403 for a read-only key's change"
    return None


def _seed(api: Api, account_id: str, rule_id: str, name: str, delivery: str, host: str) -> None:
    """An alert rule of the account and a dead delivery of it, straight into ClickHouse."""
    assert api.worker.api is not None
    at = datetime.now(UTC)
    rule = make_rule(rule_id=rule_id, account_id=account_id, name=name)
    # an email channel: a replay republishes the record as written here, and a webhook's
    # secret would then be on a topic in plaintext (the product writes it sealed)
    channel = EmailChannel(to=[f"oncall@{host}"])
    notification = make_notification().model_copy(
        update={"account_id": account_id, "rule_id": rule_id, "channels": [channel]}
    )
    record = DeliveryRecord(
        delivery_id=delivery,
        notification=notification,
        channel_index=0,
        channel_id=f"ch_{delivery}",
        attempt=1,
        at=at,
        status="dead",
        outcome="http_500",
        detail="endpoint answered 500",
    )
    change = RuleChange(rule_id, account_id, rule, 1, at)
    api.worker.api.pool.with_client(lambda c: ClickHouseRuleStore(c).apply([change]))
    api.worker.api.pool.with_client(lambda c: ClickHouseDeliveryLog(c).append([record]))


@pytest.fixture
async def served(tmp_path: Path, kafka_bootstrap: str) -> AsyncIterator[Api]:
    """The worker serving the API over both accounts' keys and traffic, beta's rule and
    delivery, a service token for `/verify`, brute-force limits out of reach."""
    prefix = fresh_topic_prefix()
    ensure_topics(kafka_bootstrap, prefix)
    topics = TopicNames.with_prefix(prefix)
    now = datetime.now(UTC)
    events = traffic(BETA, BETA_KEY, 40, now) + traffic(ALPHA, ALPHA_KEYS[0], 40, now)
    produce(kafka_bootstrap, topics.requests, batches(events, 200))
    alpha, beta = account_chains()
    publish(kafka_bootstrap, topics.key_events, alpha.events + beta.events)
    base = serving_settings(worker_settings(tmp_path, kafka_bootstrap, prefix))
    api = base.api.model_copy(
        update={
            "verify_tokens": [hash_secret(SERVICE_TOKEN)],
            "auth_failures_before_delay": UNREACHABLE,
            "auth_failures_before_block": UNREACHABLE,
        }
    )
    settings_ = base.model_copy(update={"api": api})
    async with serving(settings_, chain_secrets(alpha, beta)) as api_:
        await wait_for_events(api_.worker, len(events))
        keys = api_.worker.app.keys
        assert keys is not None
        total = len(alpha.events) + len(beta.events)
        await eventually(lambda: keys.processed >= total, 30, "the key events")
        _seed(api_, BETA, BETA_RULE, BETA_RULE_NAME, BETA_DELIVERY, "hooks.beta.example.com")
        _seed(api_, ALPHA, ALPHA_RULE, "Alpha fuzz rule", ALPHA_DELIVERY, "hooks.example.com")
        yield api_


def _credentials(api: Api, kind: str, path: str) -> st.SearchStrategy[dict[str, str]]:
    if kind == "admin":
        return st.just(bearer(SERVICE_TOKEN if path == "/verify" else api.secrets["alpha:admin"]))
    if kind == "read_only":
        return st.just(bearer(api.secrets["alpha:read_only"]))
    admin = api.secrets["alpha:admin"]
    variants = [
        bearer(generate_secret("live")),
        bearer(_wrong_checksum(admin)),
        {"Authorization": f"Basic {admin}"},
        {},
    ]
    assert len(variants) == INVALID_VARIANTS
    return st.sampled_from(variants)


def _cases(operation: Operation, mode: GenerationMode) -> st.SearchStrategy[Case]:
    """Generated cases, and as many again with a known id in the path: alpha's own (found)
    and beta's (another account's: 404, nothing of it shown)."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    if not names:
        return generated
    (name,) = names
    known = [
        operation.as_strategy(generation_mode=mode, path_parameters={name: value})
        for value in KNOWN_IDS[name]
    ]
    return st.one_of(generated, st.one_of(*known))


def _examples(operation: Operation, kind: str, mode: GenerationMode) -> int:
    """`MAX_EXAMPLES`, but where only the credentials vary, one case per credential
    variant."""
    if any(True for _ in operation.iter_parameters()) or bool(list(operation.body)):
        return MAX_EXAMPLES[(kind, mode)]
    return INVALID_VARIANTS if kind == "invalid" else 1


def _negative_possible(operation: Operation) -> bool:
    """Negative cases need a query parameter or a body to make invalid (a path segment is
    any string, and hypothesis would search long before giving up)."""
    return bool(list(operation.query)) or bool(list(operation.body))


def _fuzz(
    base_url: str,
    operation: Operation,
    kind: str,
    mode: GenerationMode,
    credentials: st.SearchStrategy[dict[str, str]],
    session: requests.Session,
    tally: Tally,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=_examples(operation, kind, mode),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=_cases(operation, mode), headers=credentials)
    def run(case: Case, headers: dict[str, str]) -> None:
        began = time.monotonic()
        response = case.call(base_url=base_url, session=session, headers=headers)
        took = time.monotonic() - began
        tally.http_seconds[label] = tally.http_seconds.get(label, 0.0) + took
        tally.cases[kind] += 1
        tally.statuses[f"{kind} {label} {response.status_code}"] += 1
        where = f"{label} [{mode.value}] -> {response.status_code}"
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                tally.fail(
                    kind, f"{where}: {failure.title}: {failure.message[:300]} {response.text[:300]}"
                )
        except AssertionError as exc:
            tally.fail(kind, f"{where}: {str(exc)[:300]}")
        tally.failures.setdefault(kind, [])
        if mode is GenerationMode.POSITIVE and kind == "admin":
            rejected = _rejected_valid_data(operation, response)
            if rejected:
                sent = f"{response.request.url} {response.request.body!r:.200}"
                tally.fail(kind, f"{where}: {rejected}: {sent} -> {response.text[:300]}")
        refused = _refusal(kind, operation, response)
        if refused:
            tally.fail(kind, f"{where}: {refused} {response.text[:200]}")
        for leak in _leaks(response):
            tally.fail(kind, f"{where}: another account's {leak!r} in {response.text[:200]}")

    run()


def _expected_security(operations: list[str]) -> dict[str, list[str]]:
    """The credential each operation must declare, from the lists here: none for the
    probes and the signed reports, the service token for `/verify`, a key elsewhere."""
    expected: dict[str, list[str]] = {}
    for label in operations:
        path = label.split(" ", 1)[1]
        if path in PROBES or path.startswith(SIGNED):
            expected[label] = []
        else:
            expected[label] = ["serviceToken" if path == "/verify" else "managementKey"]
    return expected


def _declared_security(raw: dict[str, Any]) -> dict[str, list[str]]:
    return {
        f"{method.upper()} {path}": sorted(name for req in op.get("security", []) for name in req)
        for path, item in raw["paths"].items()
        for method, op in item.items()
    }


def _slowest(seconds: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def _run(api: Api, base_url: str) -> dict[str, Any]:
    # the credentials are this test's (`_credentials`), not generated from the schemes
    config = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as session:
        for operation in operations:
            label = f"{operation.method.upper()} {operation.path}"
            began = time.monotonic()
            for kind, mode in MAX_EXAMPLES:
                if operation.path in PROBES and kind != "admin":
                    continue  # a probe takes no credential: one caller covers it
                if mode is GenerationMode.NEGATIVE and not _negative_possible(operation):
                    tally.no_negative.add(label)
                    continue
                credentials = _credentials(api, kind, operation.path)
                _fuzz(base_url, operation, kind, mode, credentials, session, tally)
            tally.seconds[label] = round(time.monotonic() - began, 2)
    return {
        "operations": sorted(f"{op.method.upper()} {op.path}" for op in operations),
        "operation_count": len(operations),
        "security": _declared_security(schema.raw_schema),
        "cases": dict(tally.cases),
        "cases_total": sum(tally.cases.values()),
        "failures": {kind: len(found) for kind, found in tally.failures.items()},
        "failure_details": tally.failures,
        "without_negative_cases": sorted(tally.no_negative),
        "statuses": dict(sorted(tally.statuses.items())),
        "seconds_by_operation": _slowest(tally.seconds),
        "http_seconds_by_operation": _slowest(tally.http_seconds),
        "seconds": round(time.monotonic() - started, 1),
        "max_examples": {f"{k} {m.value}": n for (k, m), n in MAX_EXAMPLES.items()},
    }


async def test_schemathesis_finds_no_failure_with_any_credential(served: Api) -> None:
    base_url = f"http://127.0.0.1:{served.settings.api.port}"
    summary = await asyncio.to_thread(_run, served, base_url)
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    brief = {k: v for k, v in summary.items() if k not in ("statuses", "failure_details")}
    print(json.dumps(brief, indent=2))
    assert "/console" not in " ".join(summary["operations"])
    assert summary["security"] == _expected_security(summary["operations"])
    failures = [f"{kind}: {f}" for kind, found in summary["failure_details"].items() for f in found]
    assert failures == [], "\n".join(failures[:60])
