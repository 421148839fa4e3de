"""`infra.http.auth`: Bearer secrets to callers (operator bootstrap keys, then the key
format, then the registry by the secret's hash) and the access levels."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from infra.http.auth import Authenticator, AuthError, Caller, authorize
from infra.settings import ManagementKey
from schemas.key_format import generate_secret, hash_secret, hint
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from streams.keyservice.service import Unavailable

FULL, READ_ONLY, REVOKED = "full-secret-1", "read-only-secret-2", "revoked-secret-3"
AT = datetime(2026, 1, 5, tzinfo=UTC)


def _operator(key_id: str, secret: str, scope: str, revoked: bool = False) -> ManagementKey:
    return ManagementKey(
        key_id=key_id,
        account_id="acc_main",
        scope=scope,
        secret_hash="sha256:" + hashlib.sha256(secret.encode()).hexdigest(),
        revoked=revoked,
    )


def _record(secret: str, access: KeyAccess, status: KeyStatus = KeyStatus.ACTIVE) -> KeyRecord:
    return KeyRecord(
        account_id="acc_reg",
        key_id=f"key_{access.value.replace('_', '')}{status.value}",
        name="x",
        key_type=KeyType.LIVE,
        access=access,
        status=status,
        secret_hash=hash_secret(secret),
        hint=hint(secret),
        created_at=AT,
        created_by="test",
        updated_at=AT,
        seq=2,
    )


class Registry:
    """The registry's lookup by hash (what the key follower answers)."""

    def __init__(self, records: list[KeyRecord], ready: bool = True) -> None:
        self.by_hash = {r.secret_hash: r for r in records}
        self.ready = ready
        self.lookups = 0

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        self.lookups += 1
        if not self.ready:
            raise Unavailable("the key registry is still loading")
        return self.by_hash.get(secret_hash)


SECRETS = {
    (access, status): generate_secret("live") for access in KeyAccess for status in KeyStatus
}


@pytest.fixture
def registry() -> Registry:
    return Registry([_record(s, access, status) for (access, status), s in SECRETS.items()])


@pytest.fixture
def auth(registry: Registry) -> Authenticator:
    operators = [
        _operator("mk_full", FULL, "full"),
        _operator("mk_readonly", READ_ONLY, "read_only"),
        _operator("mk_revoked", REVOKED, "full", revoked=True),
    ]
    return Authenticator(operators, registry)


def _refused(auth: Authenticator, header: str | None) -> AuthError:
    with pytest.raises(AuthError) as caught:
        auth.authenticate(header)
    return caught.value


def test_hash_is_sha256_of_the_secret() -> None:
    # a fixed vector (`printf s3cret | sha256sum`), not the implementation's own expression
    assert (
        hash_secret("s3cret") == "sha256:1ec1c26b50d5d3c58d9583181af8076655fe0075"
        "6bf7285940ba3670f99fcba0"
    )


@pytest.mark.parametrize("access", list(KeyAccess))
def test_an_active_registry_key_is_a_caller_with_its_access(
    auth: Authenticator, access: KeyAccess
) -> None:
    caller = auth.authenticate(f"Bearer {SECRETS[(access, KeyStatus.ACTIVE)]}")
    assert caller == Caller(f"key_{access.value.replace('_', '')}active", "acc_reg", access)


def test_revoked_and_deleted_registry_keys_are_refused(auth: Authenticator) -> None:
    revoked = _refused(auth, f"Bearer {SECRETS[(KeyAccess.ADMIN, KeyStatus.REVOKED)]}")
    assert (revoked.status, revoked.code) == (401, "revoked_api_key")
    assert "key_adminrevoked" in revoked.detail
    deleted = _refused(auth, f"Bearer {SECRETS[(KeyAccess.ADMIN, KeyStatus.DELETED)]}")
    assert (deleted.status, deleted.code, deleted.detail) == (
        401,
        "invalid_api_key",
        "unknown API key",
    )


def test_a_well_formed_unknown_key_is_refused(auth: Authenticator) -> None:
    err = _refused(auth, f"Bearer {generate_secret('test')}")
    assert (err.status, err.code, err.detail) == (401, "invalid_api_key", "unknown API key")


@pytest.mark.parametrize(
    ("mangle", "advice"),
    [
        (lambda s: s[:-1], "cut off"),
        (lambda s: s + "0", "longer"),
        (lambda s: "sk" + s[2:], "pk_live_"),
        (lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), "checksum"),
        (lambda s: s[:20] + "-" + s[21:], "letters and digits"),
        (lambda s: f"'{s}'", "quotes"),
        (lambda s: "nope", "pk_live_"),
    ],
)
def test_a_malformed_key_is_refused_with_advice_before_any_lookup(
    auth: Authenticator, registry: Registry, mangle: Callable[[str], str], advice: str
) -> None:
    presented = mangle(SECRETS[(KeyAccess.ADMIN, KeyStatus.ACTIVE)])
    err = _refused(auth, f"Bearer {presented}")
    assert (err.status, err.code) == (401, "invalid_api_key")
    assert advice in err.detail and presented not in err.detail
    assert registry.lookups == 0


def test_operator_bootstrap_keys_act_as_admin_and_read_only(auth: Authenticator) -> None:
    assert auth.authenticate(f"Bearer {FULL}") == Caller(
        "mk_full", "acc_main", KeyAccess.ADMIN, bootstrap=True
    )
    assert auth.authenticate(f"Bearer {READ_ONLY}").access is KeyAccess.READ_ONLY
    err = _refused(auth, f"Bearer {REVOKED}")
    assert (err.status, err.code) == (401, "revoked_api_key")
    assert "mk_revoked" in err.detail and REVOKED not in err.detail


@pytest.mark.parametrize("header", [f"bearer {FULL}", f"BEARER  {FULL} ", f"Bearer {FULL}\t"])
def test_scheme_case_and_surrounding_space_do_not_matter(auth: Authenticator, header: str) -> None:
    assert auth.authenticate(header).key_id == "mk_full"


@pytest.mark.parametrize(
    "header",
    [None, "", f"Basic {FULL}", FULL, "Bearer", "Bearer ", "Bearer    ", f"Token {FULL}"],
)
def test_a_missing_or_malformed_header_is_refused(auth: Authenticator, header: str | None) -> None:
    err = _refused(auth, header)
    assert (err.status, err.code) == (401, "invalid_api_key")
    assert "Bearer" in err.detail  # says what to send


def test_a_registry_not_ready_is_unavailable_not_unknown(registry: Registry) -> None:
    registry.ready = False
    auth = Authenticator([_operator("mk_full", FULL, "full")], registry)
    with pytest.raises(Unavailable):
        auth.authenticate(f"Bearer {SECRETS[(KeyAccess.ADMIN, KeyStatus.ACTIVE)]}")
    assert auth.authenticate(f"Bearer {FULL}").key_id == "mk_full"  # no registry needed


@pytest.mark.parametrize(
    ("access", "method", "allowed"),
    [
        (KeyAccess.ADMIN, "GET", True),
        (KeyAccess.ADMIN, "POST", True),
        (KeyAccess.ADMIN, "DELETE", True),
        (KeyAccess.READ_ONLY, "GET", True),
        (KeyAccess.READ_ONLY, "HEAD", True),
        (KeyAccess.READ_ONLY, "POST", False),
        (KeyAccess.READ_ONLY, "PATCH", False),
        (KeyAccess.READ_ONLY, "PUT", False),
        (KeyAccess.READ_ONLY, "DELETE", False),
        (KeyAccess.FULL, "GET", False),
        (KeyAccess.FULL, "POST", False),
    ],
)
def test_access_levels(access: KeyAccess, method: str, allowed: bool) -> None:
    caller = Caller("key_someone", "acc_reg", access)
    if allowed:
        authorize(caller, method)
        return
    with pytest.raises(AuthError) as caught:
        authorize(caller, method)
    err = caught.value
    assert (err.status, err.code) == (403, "insufficient_scope")
    assert "key_someone" in err.detail
    expected = "product API" if access is KeyAccess.FULL else "admin key"
    assert expected in err.detail


def test_a_changed_record_is_read_at_each_request(registry: Registry, auth: Authenticator) -> None:
    secret = SECRETS[(KeyAccess.ADMIN, KeyStatus.ACTIVE)]
    assert auth.authenticate(f"Bearer {secret}").access is KeyAccess.ADMIN
    record = registry.by_hash[hash_secret(secret)]
    registry.by_hash[record.secret_hash] = replace(record, status=KeyStatus.REVOKED)
    assert _refused(auth, f"Bearer {secret}").code == "revoked_api_key"
