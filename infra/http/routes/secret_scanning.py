"""Reports of leaked keys from a secret-scanning partner (GitHub's program): a signed POST
of found tokens, `POST /secret-scanning/github`.

The body is a JSON array of `{token, type, url, source}`; the headers
`Github-Public-Key-Identifier` and `Github-Public-Key-Signature` name the reporter's key
and carry its base64 ECDSA-SHA256 signature (DER) over the raw body. The signature is the
authentication (no Bearer key): it is checked against `api.secret_scanning_public_keys`
(PEM) before the body is even parsed; no signature, an unknown key id or a bad
signature is 401 (`invalid_signature`), a body that is not such an array 400 (problem
JSON, never a 5xx).

Each token is checked by `schemas.key_scan.is_key` (format and checksum) and looked up by
hash: a key of this registry is a `true_positive` (whatever its status), anything else a
`false_positive`. An active key is revoked with reason `compromised` by actor
`secret-scanning:github` and its account notified (`alerting.leak_notice`: the
channels of its enabled rules, published on the notifications topic for the real
notifier; a failure to publish is logged and does not undo the revocation). A second
report of the same key finds it revoked: nothing is revoked or sent twice. The answer is
GitHub's feedback format, one `{token_hash, token_type, label}` per token (the token's
SHA-256 in hex, never the token itself). While the key registry is loading the answer
is 503 with Retry-After (GitHub retries).
"""

import base64
import binascii
import logging
from collections.abc import Sequence
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from alerting.leak_notice import build_leak_notices
from infra.http.context import RouteContext
from infra.http.problems import ApiError, problem_response
from infra.settings import SecretScanningKey
from projections.alert_store import ClickHouseRuleStore
from schemas.alerts import AlertRule
from schemas.key_format import hash_secret
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.key_scan import is_key
from schemas.keys import RevokeReason
from streams.keyservice.commands import RevokeKey

log = logging.getLogger(__name__)

PATH = "/secret-scanning/github"
ACTOR = "secret-scanning:github"
REPORTER = "GitHub secret scanning"
MAX_BODY = 1_000_000
MAX_TOKENS = 1000


class SignatureRejected(Exception):
    """Why a report's signature is not accepted (one line, safe to show the sender)."""


def verify_signature(
    body: bytes,
    key_identifier: str | None,
    signature_b64: str | None,
    keys: Sequence[SecretScanningKey],
) -> None:
    """Return if `signature_b64` is a valid ECDSA-SHA256 signature of `body` by the
    configured key `key_identifier`; else `SignatureRejected` saying why (pure)."""
    if not key_identifier or not signature_b64:
        raise SignatureRejected(
            "the report is not signed: send Github-Public-Key-Identifier and "
            "Github-Public-Key-Signature"
        )
    pem = next((k.key for k in keys if k.key_identifier == key_identifier), None)
    if pem is None:
        raise SignatureRejected("unknown Github-Public-Key-Identifier")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected("Github-Public-Key-Signature is not base64") from None
    try:
        public_key = load_pem_public_key(pem.encode())
    except ValueError:
        log.error("secret scanning key %r is not a PEM public key", key_identifier)
        raise SignatureRejected("the signing key is not usable here") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        log.error("secret scanning key %r is not an ECDSA key", key_identifier)
        raise SignatureRejected("the signing key is not usable here")
    try:
        public_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureRejected("the signature does not match the body") from None


class ReportedToken(BaseModel):
    """One token a partner found."""

    model_config = ConfigDict(extra="allow")

    token: Annotated[str, Field(max_length=1000)]
    type: Annotated[str, Field(max_length=200)]
    url: Annotated[str, Field(max_length=2000)] = ""
    source: Annotated[str, Field(max_length=200)] = ""


class TokenLabel(BaseModel):
    """GitHub's feedback on one reported token (`token_hash`: its SHA-256 in hex)."""

    token_hash: str
    token_type: str
    label: Literal["true_positive", "false_positive"]


_REPORT = TypeAdapter(list[ReportedToken])
_REQUEST_SCHEMA = {
    "type": "array",
    "maxItems": MAX_TOKENS,
    "items": ReportedToken.model_json_schema(),
}


class LeakReports:
    """What a verified report does: label each token, revoke and notify."""

    def __init__(self, ctx: RouteContext) -> None:
        self.ctx = ctx

    def notify(self, key: KeyRecord, url: str) -> None:
        """Publish the account's leak notice (a failure is logged: the revocation stands)."""
        ctx = self.ctx

        def rules() -> list[AlertRule]:
            return ctx.pool.with_client(
                lambda c: [s.rule for s in ClickHouseRuleStore(c).list_rules(key.account_id)]
            )

        try:
            notices = build_leak_notices(
                key.key_id, key.name, key.hint, url, REPORTER, rules(), key.account_id, ctx.clock()
            )
            if not notices:
                log.warning("leaked key %s revoked; its account has no channel", key.key_id)
            for notice in notices:
                ctx.publisher.notification(notice)
        except Exception:
            log.exception("leaked key %s revoked, but its account was not notified", key.key_id)

    async def label(self, token: ReportedToken) -> TokenLabel:
        """The token's label; an active key of this registry revoked and notified."""
        registry, now = self.ctx.registry, self.ctx.clock()
        digest = hash_secret(token.token)  # "sha256:<hex>", the registry's key
        label = TokenLabel(
            token_hash=digest.removeprefix("sha256:"), token_type=token.type, label="false_positive"
        )
        key = registry.key_by_hash(digest) if is_key(token.token) else None
        if key is None:
            return label
        label.label = "true_positive"
        if key.status_at(now) is KeyStatus.ACTIVE:
            command = RevokeKey(key.account_id, key.key_id, RevokeReason.COMPROMISED)
            outcome = await registry.service().execute_async(command, actor=ACTOR)
            if outcome.decision.events and outcome.key is not None:
                log.warning("key %s revoked: reported leaked by %s", key.key_id, REPORTER)
                await run_in_threadpool(self.notify, outcome.key, token.url)
        return label


async def _bounded_body(request: Request) -> bytes:
    """The body, read no further than `MAX_BODY` + 1 bytes (the endpoint takes no key:
    nobody may make it hold more)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(400, "bad_request", f"the report is larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            break
    return bytes(body)


def _report(
    body: bytes, key_id: str | None, signature: str | None, ctx: RouteContext
) -> list[ReportedToken]:
    """The verified, parsed report; `ApiError` 401 or 400 otherwise."""
    if len(body) > MAX_BODY:
        raise ApiError(400, "bad_request", f"the report is larger than {MAX_BODY} bytes")
    try:
        verify_signature(body, key_id, signature, ctx.settings.api.secret_scanning_public_keys)
    except SignatureRejected as exc:
        raise ApiError(401, "invalid_signature", str(exc)) from None
    try:
        report = _REPORT.validate_json(body)
    except ValidationError:
        raise ApiError(
            400, "bad_request", "expected a JSON array of {token, type, url, source}"
        ) from None
    if len(report) > MAX_TOKENS:
        raise ApiError(400, "bad_request", f"at most {MAX_TOKENS} tokens per report")
    return report


def secret_scanning_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["secret scanning"])
    reports = LeakReports(ctx)

    @router.post(
        PATH,
        response_model=list[TokenLabel],
        summary="Leaked keys reported by GitHub secret scanning",
        description="GitHub's secret-scanning partner format, signed with ECDSA (no API "
        "key). Revokes each reported active key (reason compromised) and notifies its "
        "account; answers a label per token.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
            }
        },
        responses={
            400: problem_response("The body is not a JSON array of reported tokens"),
            401: problem_response("No signature, an unknown key identifier or a bad signature"),
            503: problem_response("The key registry or Kafka did not answer; retry later"),
        },
    )
    async def github_report(
        request: Request,
        github_public_key_identifier: Annotated[str | None, Header()] = None,
        github_public_key_signature: Annotated[str | None, Header()] = None,
    ) -> list[TokenLabel]:
        body = await _bounded_body(request)
        report = _report(body, github_public_key_identifier, github_public_key_signature, ctx)
        return [await reports.label(token) for token in report]

    return router
