"""`infra.http.auth.Authenticator`: Bearer secrets to callers, by the secret's hash."""

from __future__ import annotations

import hashlib

import pytest

from infra.http.auth import Authenticator, AuthError, Caller, Scope, hash_secret
from infra.settings import ManagementKey

FULL, READ_ONLY, REVOKED = "full-secret-1", "read-only-secret-2", "revoked-secret-3"


def _key(key_id: str, secret: str, scope: str, revoked: bool = False) -> ManagementKey:
    return ManagementKey(
        key_id=key_id,
        account_id="acc_main",
        scope=scope,
        secret_hash="sha256:" + hashlib.sha256(secret.encode()).hexdigest(),
        revoked=revoked,
    )


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        [
            _key("mk_full", FULL, "full"),
            _key("mk_readonly", READ_ONLY, "read_only"),
            _key("mk_revoked", REVOKED, "full", revoked=True),
        ]
    )


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


def test_a_full_key_is_a_caller_that_may_write(auth: Authenticator) -> None:
    caller = auth.authenticate(f"Bearer {FULL}")
    assert caller == Caller("mk_full", "acc_main", Scope.FULL)
    assert caller.can_write
    auth.require_write(caller)


def test_a_read_only_key_reads_but_may_not_write(auth: Authenticator) -> None:
    caller = auth.authenticate(f"Bearer {READ_ONLY}")
    assert caller == Caller("mk_readonly", "acc_main", Scope.READ_ONLY)
    assert not caller.can_write
    with pytest.raises(AuthError) as caught:
        auth.require_write(caller)
    assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
    assert "mk_readonly" in caught.value.detail and READ_ONLY not in caught.value.detail


@pytest.mark.parametrize("header", [f"bearer {FULL}", f"BEARER  {FULL} ", f"Bearer {FULL}\t"])
def test_scheme_case_and_surrounding_space_do_not_matter(auth: Authenticator, header: str) -> None:
    assert auth.authenticate(header).key_id == "mk_full"


def test_a_revoked_key_is_refused_by_name(auth: Authenticator) -> None:
    err = _refused(auth, f"Bearer {REVOKED}")
    assert (err.status, err.code) == (401, "revoked_api_key")
    assert "mk_revoked" in err.detail and REVOKED not in err.detail


@pytest.mark.parametrize("secret", ["nope", FULL + "x", FULL[:-1], FULL.upper()])
def test_an_unknown_secret_is_refused(auth: Authenticator, secret: str) -> None:
    err = _refused(auth, f"Bearer {secret}")
    assert (err.status, err.code, err.detail) == (401, "invalid_api_key", "unknown API key")
    assert secret not in err.detail


@pytest.mark.parametrize(
    "header",
    [None, "", f"Basic {FULL}", FULL, "Bearer", "Bearer ", "Bearer    ", f"Token {FULL}"],
)
def test_a_missing_or_malformed_header_is_refused(auth: Authenticator, header: str | None) -> None:
    err = _refused(auth, header)
    assert (err.status, err.code) == (401, "invalid_api_key")
    assert "Bearer" in err.detail  # says what to send


def test_no_configured_keys_refuse_everyone() -> None:
    err = _refused(Authenticator([]), f"Bearer {FULL}")
    assert err.code == "invalid_api_key"
