"""The brute-force limit on the app alone under uvicorn, with small thresholds: guesses
from one address are slowed, then refused (429 `too_many_failures`, Retry-After) on the
management API, the console's sign-in and `POST /verify` (service tokens by calling
address, guessed keys by the body's `client_ip`), while valid keys and tokens from other
addresses (and for other clients) keep working; after the block the address may try again.

Distinct source addresses are real ones: the client binds 127.0.0.2 or 127.0.0.3 (the
whole 127/8 is loopback on Linux) and the server sees `request.client.host`."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from infra.tools.receivers import free_port
from schemas.key_format import generate_secret, hash_secret
from schemas.topics import TopicNames
from tests.eventually import eventually_sync
from tests.integration.http.api_support import (
    SECRETS,
    LiveApi,
    assert_problem,
    bearer,
    live_api,
    management_keys,
)
from tests.integration.ingest_helpers import worker_settings
from tests.samples.keys import Chain, publish

TOKEN = "brute-force-service-token"
BEFORE_DELAY, BEFORE_BLOCK, BLOCK_S, STEP_S = 2, 4, 1.5, 0.25
ATTACKER, TOKEN_GUESSER = "127.0.0.2", "127.0.0.3"
"""Client addresses; the honest clients connect from 127.0.0.1."""
RETRY_AFTER = math.ceil(BLOCK_S)
GUESSING_CLIENT, OTHER_CLIENT = "203.0.113.7", "203.0.113.8"
"""`client_ip`s the product API reports to `POST /verify`."""


@dataclass
class Served:
    api: LiveApi
    key: str
    """A valid live key (the product's end user's) for `POST /verify`."""

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.api.base_url, timeout=30, transport=transport)


@pytest.fixture
def served(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> Iterator[Served]:
    chain = Chain("acc_bruteforce")
    chain.create_key("key_enduser1")
    publish(kafka_bootstrap, topics.key_events, chain.events)
    api = {
        "port": free_port(),
        "management_keys": management_keys(),
        "verify_tokens": [hash_secret(TOKEN)],
        "auth_failures_before_delay": BEFORE_DELAY,
        "auth_failures_before_block": BEFORE_BLOCK,
        "auth_failure_window_s": 60.0,
        "auth_block_s": BLOCK_S,
    }
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, api=api)
    with live_api(settings) as live:
        yield Served(live, chain.secrets["key_enduser1"])


Send = Callable[[httpx.Client], httpx.Response]


def _guesses(client: httpx.Client, send: Send, status: int) -> list[float]:
    """`BEFORE_BLOCK` guesses, each answered `status`; the seconds each took."""
    took = []
    for _ in range(BEFORE_BLOCK):
        started = time.monotonic()
        response = send(client)
        took.append(time.monotonic() - started)
        assert response.status_code == status, response.text
    return took


def _after_block(client: httpx.Client, send: Send, what: str) -> httpx.Response:
    """The first answer to `send` that is no 429 (the block over)."""

    def answer() -> httpx.Response | None:
        response = send(client)
        return None if response.status_code == 429 else response

    answered = eventually_sync(answer, BLOCK_S + 5, what)
    assert answered is not None
    return answered


def _assert_slowed(took: list[float]) -> None:
    """Answers past `BEFORE_DELAY` wait `STEP_S` more each (sleep: at least that)."""
    for n, seconds in enumerate(took, start=1):
        if n > BEFORE_DELAY:
            assert seconds >= STEP_S * (n - BEFORE_DELAY), (n, took)


def _assert_refused(response: httpx.Response) -> None:
    assert_problem(response, 429, "too_many_failures")
    assert 1 <= int(response.headers["Retry-After"]) <= RETRY_AFTER
    assert "Retry-After" in response.json()["detail"]


def _console_sign_in(client: httpx.Client, key: str) -> httpx.Response:
    form = client.get("/console/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match is not None, form.text
    data = {"key": key, "csrf_token": match.group(1)}
    return client.post("/console/sign-in", data=data, follow_redirects=False)


def _metric(text: str, by: str, outcome: str) -> float:
    pattern = rf'keypulse_auth_failures_total{{by="{by}",outcome="{outcome}"}} (\S+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_guesses_are_slowed_then_refused_without_locking_valid_keys_out(served: Served) -> None:
    admin = bearer(SECRETS["alpha_full"])  # an operator bootstrap key: an admin key

    def guess(client: httpx.Client) -> httpx.Response:
        return client.get("/api-keys", headers=bearer(generate_secret("live")))

    def admin_call(client: httpx.Client) -> httpx.Response:
        return client.get("/api-keys", headers=admin)

    def token_guess(client: httpx.Client) -> httpx.Response:
        return client.post("/verify", json={"key": served.key}, headers=bearer("not-the-token"))

    def right_token(client: httpx.Client) -> httpx.Response:
        return client.post("/verify", json={"key": served.key}, headers=bearer(TOKEN))

    with (
        served.client(ATTACKER) as attacker,
        served.client(TOKEN_GUESSER) as token_guesser,
        served.client() as honest,
    ):
        # the management API: guesses from one address, slowed, then refused
        _assert_slowed(_guesses(attacker, guess, 401))
        _assert_refused(guess(attacker))
        _assert_refused(admin_call(attacker))  # even a valid key, from that address
        assert admin_call(honest).status_code == 200  # from elsewhere: fine
        assert guess(honest).status_code == 401
        signin = _console_sign_in(attacker, SECRETS["alpha_full"])  # one count for all
        assert signin.status_code == 429, signin.text  # an HTML page: a browser asked
        assert 1 <= int(signin.headers["Retry-After"]) <= RETRY_AFTER
        assert _console_sign_in(honest, SECRETS["alpha_full"]).status_code == 303

        # POST /verify: bad service tokens count against the calling address
        _assert_slowed(_guesses(token_guesser, token_guess, 401))
        _assert_refused(right_token(token_guesser))
        valid = right_token(honest)
        assert valid.status_code == 200 and valid.json()["verdict"] == "valid", valid.text

        # POST /verify: guessed end-user keys count against the body's client_ip
        def verify(key: str, client_ip: str) -> httpx.Response:
            body = {"key": key, "client_ip": client_ip}
            return honest.post("/verify", json=body, headers=bearer(TOKEN))

        for _ in range(BEFORE_BLOCK):
            guessed = verify(generate_secret("live"), GUESSING_CLIENT)
            assert guessed.status_code == 200 and guessed.json()["verdict"] == "unknown"
        _assert_refused(verify(served.key, GUESSING_CLIENT))  # refused whatever the key
        assert verify(served.key, OTHER_CLIENT).json()["verdict"] == "valid"

        # once the blocks end, the same addresses and client may try again
        assert _after_block(attacker, admin_call, "the attacker's block").status_code == 200
        fresh = guess(attacker)
        assert fresh.status_code == 401 and fresh.elapsed.total_seconds() < STEP_S
        back = _after_block(token_guesser, right_token, "the token guesser's block")
        assert back.json()["verdict"] == "valid"
        again = _after_block(
            honest, lambda _: verify(served.key, GUESSING_CLIENT), "the client's block"
        )
        assert again.json()["verdict"] == "valid"

        metrics = honest.get("/metrics").text
        # guesses (refused ones are not looked at): the attacker's 4 + 1 fresh, the
        # honest client's 1, the token guesser's 4
        assert _metric(metrics, "address", "failed") == 10
        assert _metric(metrics, "address", "slowed") == 4  # 2 of the attacker's, 2 of tokens
        assert _metric(metrics, "address", "refused") >= 4
        assert _metric(metrics, "client_ip", "failed") == BEFORE_BLOCK
        assert _metric(metrics, "client_ip", "refused") >= 1
