"""`POST /verify`: the key check over HTTP, for APIs not written in Python.

Authenticated with a service credential, `Authorization: Bearer <token>`, whose sha256 is
in `KEYPULSE_API_VERIFY_TOKENS` (never with the key being checked; 401
`invalid_service_token` otherwise). The body names the key, the client's address and
whether the request is a render; the answer is the `KeyVerifier` verdict
(`streams.client.verifier`) with 200 for every verdict but a refused render, and a
test-key render carries the RateLimit headers (`RateLimit-Policy`, `RateLimit`). A refused
render (the test key's 100 renders of the UTC day used) is 429 problem+json of type
`quota-exceeded` with `violated-policies: ["renders"]` and `Retry-After` (seconds to
00:00 UTC). Before the key state (and today's render counts) are read: 503 `unavailable`
with `Retry-After`.

Brute force, twice over (`infra.http.auth_throttle`):
- bad service tokens count against the calling address (`request.client.host`), in the
  same count as bad keys on the management API and the console: slowed, then 429
  `too_many_failures` with `Retry-After`;
- the keys being verified are the product's end users' keys, guessed through the
  product's API: `malformed` and `unknown` verdicts count against the body's
  `client_ip` (never against the calling service, which speaks for every end user).
  Once that client has too many, `/verify` answers 429 `too_many_failures` with
  `Retry-After` for it, whatever key it presents (answering a valid key would tell the
  guesser it found one), so the product refuses it too; other clients' keys, and the
  same keys from other clients, are verified as usual. These answers are not slowed: a
  wait would hold the product's connections to this API, i.e. slow the product for all
  its users. A verification without `client_ip` cannot be attributed and is not counted.

The verifier reads the key service's follower (`KeyRegistry`; no second read of the
key-events topic) and shares render counts with every other verifier through the
render-counts topic (read from the app's start when service tokens are configured); it
is built on the first call after the registry is ready.

(No `from __future__ import annotations`: see `infra.http.routes.keys`.)
"""

import hmac
import threading
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from infra.http.auth import AuthError, throttled
from infra.http.auth_throttle import AuthThrottle
from infra.http.context import RouteContext
from infra.http.key_registry import KeyRegistry
from infra.http.problems import PROBLEM_RESPONSES, QUOTA_EXCEEDED_RESPONSE, quota_exceeded
from infra.settings import Settings
from schemas.key_format import hash_secret
from schemas.keys import KeyAccess, KeyType
from schemas.topics import TopicNames
from streams.client.key_follower import NotReady
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.quota import WINDOW_S, RenderCountSharing, RenderQuota, SharingConfig
from streams.client.ratelimit_headers import POLICY, ratelimit_headers
from streams.client.recorder_config import RecorderConfig
from streams.client.verdicts import Verdict, Verification
from streams.client.verifier import KeyVerifier
from streams.keyservice.service import Unavailable

GUESSED = frozenset({Verdict.MALFORMED, Verdict.UNKNOWN})
"""The verdicts a guessed key gets (any other takes the key's exact secret)."""

VERIFY_EXAMPLE = {"key": "pk_test_…", "client_ip": "203.0.113.7", "render": True}


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=4096, description="The key the API's caller presented, as is")
    client_ip: str | None = Field(
        default=None,
        max_length=100,
        description="The caller's address (needed for keys with an allow-list)",
    )
    render: bool = Field(default=False, description="Count a render (test keys: 100 per UTC day)")


class QuotaOut(BaseModel):
    limit: int = Field(description="Renders per UTC day")
    remaining: int = Field(description="Renders left today after this one")
    reset_s: int = Field(description="Seconds until the quota resets at 00:00 UTC")
    window_s: int = WINDOW_S


class VerifyOut(BaseModel):
    verdict: Verdict
    valid: bool
    message: str = Field(description="What the developer should do (safe to show them)")
    key_id: str | None
    account_id: str | None
    key_type: KeyType | None
    access: KeyAccess | None
    watermark: bool = Field(description="A test key: watermark the response")
    hint: str | None = Field(description="malformed only: why (whitespace, quoted, ...)")
    warning: str | None = Field(description="The key type does not fit the environment")
    quota: QuotaOut | None = Field(description="Test-key renders only")


def verify_out(result: Verification) -> VerifyOut:
    quota = result.quota
    return VerifyOut(
        verdict=result.verdict,
        valid=result.valid,
        message=result.message,
        key_id=result.key_id,
        account_id=result.account_id,
        key_type=result.key_type,
        access=result.access,
        watermark=result.watermark,
        hint=None if result.hint is None else result.hint.value,
        warning=result.warning,
        quota=None
        if quota is None
        else QuotaOut(limit=quota.limit, remaining=quota.remaining, reset_s=quota.reset_s),
    )


class VerifyService:
    """The app's `KeyVerifier`, built over the key registry's follower once it runs,
    the service credentials, and the brute-force limits: `callers` counts bad service
    tokens by calling address (the app's one count, shared with the management API),
    `clients` counts guessed keys by the body's `client_ip`."""

    def __init__(
        self,
        settings: Settings,
        registry: KeyRegistry,
        outcomes: OutcomeRecorder | None = None,
        callers: AuthThrottle | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._outcomes = outcomes
        self.callers = callers or AuthThrottle.of(settings.api)
        self.clients = AuthThrottle.of(settings.api, "failed key verifications for client {source}")
        self._tokens = list(settings.api.verify_tokens)
        self._lock = threading.Lock()
        self._verifier: KeyVerifier | None = None
        self._sharing: RenderCountSharing | None = None
        if self._tokens:  # /verify can be used: read today's render counts from now on
            self._sharing = self._start_sharing()

    def _start_sharing(self) -> RenderCountSharing:
        kafka = self._settings.kafka
        topic = TopicNames.with_prefix(kafka.topic_prefix).render_counts
        config = SharingConfig(kafka.bootstrap_servers, topic, client_id="keypulse-api-verify")
        return RenderCountSharing(RenderQuota(), config).start()

    def authenticate(self, authorization: str | None) -> None:
        if not self._tokens:
            raise AuthError(
                401,
                "invalid_service_token",
                "POST /verify has no service credential configured: set "
                "KEYPULSE_API_VERIFY_TOKENS to the sha256 hashes of the service tokens",
            )
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                401, "invalid_service_token", "expected Authorization: Bearer <service token>"
            )
        digest = hash_secret(token.strip())
        matched = False
        for known in self._tokens:  # every entry, so the time does not say which matched
            matched |= hmac.compare_digest(known, digest)
        if not matched:
            raise AuthError(
                401,
                "invalid_service_token",
                "unknown service token (POST /verify takes a service token from "
                "KEYPULSE_API_VERIFY_TOKENS, not the key being checked)",
                guess=True,
            )

    async def authenticate_request(self, request: Request, authorization: str | None) -> None:
        """`authenticate`, refused (429) while the calling address is blocked, its
        guesses counted and slowed."""
        address = request.client.host if request.client else None
        await throttled(self.callers, address, lambda: self.authenticate(authorization))

    def verifier(self) -> KeyVerifier:
        verifier = self._verifier
        if verifier is not None:
            return verifier
        with self._lock:
            if self._verifier is None:
                follower = self._registry.service().follower  # Unavailable until it runs
                if self._sharing is None:
                    self._sharing = self._start_sharing()
                self._verifier = KeyVerifier(
                    follower,
                    environment=self._settings.api.verify_environment,
                    sharing=self._sharing,
                    outcomes=self._outcomes,
                )
            return self._verifier

    def close(self) -> None:
        """Stop the render-count sharing and flush the outcomes (the follower belongs to
        the key registry)."""
        with self._lock:
            sharing, self._sharing, self._verifier = self._sharing, None, None
            outcomes, self._outcomes = self._outcomes, None
        if sharing is not None:
            sharing.close()
        if outcomes is not None:
            outcomes.close()


def outcome_recorder(settings: Settings) -> OutcomeRecorder:
    """The recorder that sends `/verify`'s verdicts to the requests topic (spilling to the
    data directory while Kafka is unreachable)."""
    kafka = settings.kafka
    topic = TopicNames.with_prefix(kafka.topic_prefix).requests
    spill = settings.data_dir / "spill" / "verify"
    config = RecorderConfig(kafka.bootstrap_servers, topic, spill_dir=spill)
    return OutcomeRecorder(config)


def verify_router(ctx: RouteContext, service: VerifyService | None = None) -> APIRouter:
    """The route over `service` (default: a new one; whoever passes one closes it)."""
    router = APIRouter(tags=["verify"])
    service = service or VerifyService(ctx.settings, ctx.registry)

    async def service_token(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> None:
        """The service credential, checked as a dependency: before the body is validated,
        so a caller without a token learns nothing about what the body should be."""
        await service.authenticate_request(request, authorization)

    @router.post(
        "/verify",
        response_model=VerifyOut,
        responses={
            401: PROBLEM_RESPONSES[401],
            422: PROBLEM_RESPONSES[422],
            429: QUOTA_EXCEEDED_RESPONSE,
            503: PROBLEM_RESPONSES[503],
        },
        summary="Verify an API key (service credential)",
    )
    async def verify(
        _: Annotated[None, Depends(service_token)],
        body: Annotated[VerifyIn, Body(openapi_examples={"render": {"value": VERIFY_EXAMPLE}})],
    ) -> JSONResponse:
        if body.client_ip is not None:
            service.clients.check(body.client_ip)
        try:
            result = service.verifier().verify(
                body.key, client_ip=body.client_ip, render=body.render
            )
        except NotReady as exc:
            raise Unavailable(str(exc)) from None
        if body.client_ip is not None and result.verdict in GUESSED:
            service.clients.record(body.client_ip)  # counted, not slowed: see the docstring
        headers = {} if result.quota is None else ratelimit_headers(result.quota)
        if result.verdict is Verdict.QUOTA_EXCEEDED:
            return quota_exceeded(result.message, [POLICY], headers, key_id=result.key_id)
        content = verify_out(result).model_dump(mode="json")
        return JSONResponse(content, headers=headers)

    return router
