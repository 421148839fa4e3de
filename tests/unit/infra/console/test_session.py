"""Console sessions: lifetime, idle timeout, sign-out, flashes, the CSRF comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.console.session import IDLE, LIFETIME, SessionStore, csrf_matches

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def test_a_session_is_found_by_its_token_and_holds_only_the_key_hash() -> None:
    store = SessionStore()
    session = store.start(DIGEST, T0)
    found = store.get(session.token, T0 + timedelta(minutes=5))
    assert found is not None
    assert found.key_digest == DIGEST
    assert found.csrf_token != session.token
    assert store.get("not-a-token", T0) is None
    assert store.get(None, T0) is None


def test_idle_sessions_end_and_requests_keep_them_alive() -> None:
    store = SessionStore()
    token = store.start(DIGEST, T0).token
    at = T0
    for _ in range(5):  # a request every 50 minutes keeps it going past one idle period
        at += IDLE - timedelta(minutes=10)
        assert store.get(token, at) is not None
    assert store.get(token, at + IDLE) is None
    assert len(store) == 0


def test_no_session_outlives_its_lifetime_however_busy() -> None:
    store = SessionStore()
    token = store.start(DIGEST, T0).token
    at = T0
    while at + timedelta(minutes=30) < T0 + LIFETIME:
        at += timedelta(minutes=30)
        assert store.get(token, at) is not None
    assert store.get(token, T0 + LIFETIME) is None


def test_sign_out_ends_the_session_and_its_flashes() -> None:
    store = SessionStore()
    token = store.start(DIGEST, T0).token
    store.flash(token, "Key key_abc123 revoked")
    assert store.pop_flashes(token) == ["Key key_abc123 revoked"]
    assert store.pop_flashes(token) == []
    store.flash(token, "again")
    store.end(token)
    assert store.get(token, T0) is None
    assert store.pop_flashes(token) == []
    store.flash(token, "to a session that ended")
    assert store.pop_flashes(token) == []


def test_every_session_has_its_own_tokens() -> None:
    store = SessionStore()
    a, b = store.start(DIGEST, T0), store.start(DIGEST, T0)
    assert len({a.token, b.token, a.csrf_token, b.csrf_token}) == 4


def test_csrf_tokens_must_match_exactly() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", "")
    assert not csrf_matches("abc", None)
