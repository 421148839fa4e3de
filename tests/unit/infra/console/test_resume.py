"""`Authenticator.resume`: a console session's key hash checked again on every request,
so a key revoked or deleted after sign-in ends its sessions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infra.http.auth import Authenticator, AuthError
from schemas.key_format import generate_secret, hash_secret
from schemas.key_ledger import KeyStatus
from schemas.keys import KeyAccess, KeyType
from tests.unit.infra.test_auth import READ_ONLY, Registry, _operator, _record


def test_resume_follows_the_key_as_it_now_is() -> None:
    secret = generate_secret(KeyType.LIVE)
    record = _record(secret, KeyAccess.ADMIN)
    registry = Registry([record])
    auth = Authenticator([], registry)
    caller = auth.resume(hash_secret(secret))
    assert (caller.key_id, caller.access) == (record.key_id, KeyAccess.ADMIN)

    registry.by_hash[record.secret_hash] = replace(record, status=KeyStatus.REVOKED)
    with pytest.raises(AuthError) as revoked:
        auth.resume(hash_secret(secret))
    assert revoked.value.code == "revoked_api_key"

    registry.by_hash[record.secret_hash] = replace(record, status=KeyStatus.DELETED)
    with pytest.raises(AuthError) as deleted:
        auth.resume(hash_secret(secret))
    assert deleted.value.code == "invalid_api_key"


def test_resume_knows_the_operator_bootstrap_keys() -> None:
    auth = Authenticator([_operator("mk_readonly", READ_ONLY, "read_only")], Registry([]))
    caller = auth.resume(hash_secret(READ_ONLY))
    assert caller.bootstrap and caller.access is KeyAccess.READ_ONLY
    with pytest.raises(AuthError):
        auth.resume(hash_secret("something else"))
