"""The envelope (`alerting.sealing`) and channel secrets (`alerting.channel_secrets`): pure."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.channel_secrets import (
    kids_of,
    mask,
    needs_sealing,
    open_channel,
    seal_channels,
)
from alerting.delivery import endpoint_id
from alerting.notifier import NO_MASTER_KEY, OpeningNotifier, SendResult
from alerting.sealing import (
    Keyring,
    SealingError,
    UnknownKeyId,
    format_keyring,
    new_master_key,
    open_sealed,
    parse_keyring,
    parse_sealed,
    rewrap,
    seal,
    sealed_hint,
    stable_part,
)
from schemas.alerts import Channel, Notification, SlackChannel, WebhookChannel, is_sealed
from tests.samples.alerting import make_notification

K1 = ("mk_one", bytes(range(32)))
K2 = ("mk_two", bytes(range(32, 64)))
RING = Keyring((K1,))
CTX = "acc_a/rule_1/webhook.secret"
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def test_round_trip_and_the_sealed_form_hides_the_plaintext() -> None:
    sealed = seal(RING, SECRET, CTX, "whsec_…c3M=")
    assert is_sealed(sealed) and sealed.startswith("kpsealed:v1:mk_one:")
    assert SECRET not in sealed and SECRET[6:20] not in sealed
    assert open_sealed(RING, sealed, CTX) == SECRET
    assert sealed_hint(sealed) == "whsec_…c3M="
    assert seal(RING, SECRET, CTX) != seal(RING, SECRET, CTX)  # a new data key and nonce


def test_the_envelope_is_what_the_module_says() -> None:
    """Open by hand with the documented layout: the master key unwraps the data key,
    which opens the body, each with its associated data."""
    sealed = seal(RING, "xoxb-123", "ctx", "hint")
    parts = parse_sealed(sealed)
    data_key = AESGCM(K1[1]).decrypt(
        parts.wrapped[:12], parts.wrapped[12:], b"kpsealed:v1:wrap:mk_one:ctx"
    )
    body = AESGCM(data_key).decrypt(parts.body[:12], parts.body[12:], b"kpsealed:v1:body:ctx:hint")
    assert body == b"xoxb-123"
    assert len(data_key) == 32


@pytest.mark.parametrize("where", ["wrapped", "body", "hint"])
def test_a_tampered_value_does_not_open(where: str) -> None:
    sealed = seal(RING, SECRET, CTX, "hint")
    head, kid, hint, wrapped, body = sealed.rsplit(":", 4)
    flip = {"A": "B"}

    def bent(text: str) -> str:
        return flip.get(text[5], "A").join((text[:5], text[6:]))

    parts = {"wrapped": wrapped, "body": body, "hint": hint}
    parts[where] = bent(parts[where]) if where != "hint" else "aGludHM"  # "hints"
    broken = ":".join((head, kid, parts["hint"], parts["wrapped"], parts["body"]))
    assert broken != sealed
    with pytest.raises(SealingError):
        open_sealed(RING, broken, CTX)


def test_a_value_sealed_for_another_rule_or_field_does_not_open() -> None:
    sealed = seal(RING, SECRET, CTX)
    for other in ("acc_a/rule_2/webhook.secret", "acc_b/rule_1/webhook.secret", "acc_a/rule_1/x"):
        with pytest.raises(SealingError, match="another rule or field"):
            open_sealed(RING, sealed, other)


def test_an_unknown_key_id_says_which_key_and_what_to_set() -> None:
    sealed = seal(Keyring((K2,)), SECRET, CTX)
    with pytest.raises(UnknownKeyId) as caught:
        open_sealed(RING, sealed, CTX)
    message = str(caught.value)
    assert "'mk_two'" in message and "mk_one" in message
    assert "KEYPULSE_SECRETS_MASTER_KEY_FILE" in message


def test_rewrap_moves_to_the_current_key_and_keeps_plaintext_and_body() -> None:
    sealed = seal(RING, SECRET, CTX, "h")
    rotated = RING.with_current(*K2)
    moved = rewrap(rotated, sealed, CTX)
    assert parse_sealed(moved).kid == "mk_two" and moved != sealed
    assert stable_part(moved) == stable_part(sealed)
    assert open_sealed(Keyring((K2,)), moved, CTX) == SECRET  # the old key can go
    assert rewrap(rotated, moved, CTX) == moved
    with pytest.raises(SealingError):
        rewrap(rotated, sealed, "acc_a/rule_9/webhook.secret")


@settings(max_examples=40, deadline=None)
@given(plain=st.text(max_size=300), context=st.text(min_size=1, max_size=80))
def test_round_trip_any_text(plain: str, context: str) -> None:
    sealed = seal(RING, plain, context, mask("bot_token", plain) if plain else "")
    assert is_sealed(sealed)
    assert (
        open_sealed(
            RING.with_current(*K2), rewrap(RING.with_current(*K2), sealed, context), context
        )
        == plain
    )


def test_keyring_text_round_trips_and_bad_text_is_named() -> None:
    ring = Keyring((new_master_key(), K1))
    text = format_keyring(ring)
    assert parse_keyring(text, "f") == ring
    assert parse_keyring(f"# c\n\n{K1[0]}:{base64.b64encode(K1[1]).decode()} # x", "f") == RING
    env = ",".join(text.splitlines()[1:])
    assert parse_keyring(env, "ENV") == ring
    assert repr(ring).count("mk_") == 2 and base64.b64encode(K1[1]).decode() not in repr(ring)
    for bad, says in (
        ("", "holds no master key"),
        ("nokid", "expected 'kid:<base64"),
        ("k:!!!", "not base64"),
        (f"k:{base64.b64encode(b'short').decode()}", "must be 32 bytes"),
        (f"a b:{base64.b64encode(bytes(32)).decode()}", "key id"),
    ):
        with pytest.raises(SealingError, match=says):
            parse_keyring(bad, "the-file")
    dup = f"k:{base64.b64encode(bytes(32)).decode()}\n" * 2
    with pytest.raises(SealingError, match="twice"):
        parse_keyring(dup, "f")


# --------------------------------------------------------------------------- channels

HOOK = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnop"
TOKEN = "xoxb-1234-5678-abcdefghijkl"


def _channels() -> list[WebhookChannel | SlackChannel]:
    return [
        WebhookChannel(url="https://example.com/hook", secret=SECRET),
        SlackChannel(webhook_url=HOOK),
        SlackChannel(bot_token=TOKEN, channel="#ops"),
    ]


def test_channels_sealed_open_again_only_in_their_rule() -> None:
    plain = _channels()
    sealed, counts = seal_channels(plain, "acc_a", "rule_1", RING)
    assert counts.sealed == 3 and not needs_sealing(sealed) and kids_of(sealed) == {"mk_one"}
    dumped = str([c.model_dump() for c in sealed])
    assert SECRET not in dumped and HOOK not in dumped and TOKEN not in dumped
    # the models accept their own sealed form (as read back from the topic)
    assert [type(c).model_validate(c.model_dump()) for c in sealed] == sealed
    assert [open_channel(c, "acc_a", "rule_1", RING) for c in sealed] == plain
    with pytest.raises(SealingError):
        open_channel(sealed[0], "acc_a", "rule_2", RING)
    with pytest.raises(SealingError, match=r"channels\.1\.webhook_url"):
        seal_channels([plain[0], sealed[1]], "acc_a", "rule_2", RING)
    again, counts = seal_channels(sealed, "acc_a", "rule_1", RING)
    assert again == sealed and counts.current == 3 and counts.sealed == 0


def test_masks_show_prefix_and_last_four_and_only_the_host() -> None:
    assert mask("secret", SECRET) == f"whsec_…{SECRET[-4:]}"
    assert mask("bot_token", TOKEN) == "xoxb-…ijkl"
    assert mask("webhook_url", HOOK) == "https://hooks.slack.com/…"
    sealed, _ = seal_channels(_channels(), "acc_a", "rule_1", RING)
    assert isinstance(sealed[1], SlackChannel) and sealed[1].webhook_url is not None
    assert mask("webhook_url", sealed[1].webhook_url) == "https://hooks.slack.com/…"
    assert isinstance(sealed[0], WebhookChannel)
    assert mask("secret", sealed[0].secret) == f"whsec_…{SECRET[-4:]}"


def test_channel_ids_survive_a_rotation() -> None:
    sealed, _ = seal_channels(_channels(), "acc_a", "rule_1", RING)
    moved, counts = seal_channels(
        sealed, "acc_a", "rule_1", RING.with_current(*K2), rewrap_old=True
    )
    assert counts.rewrapped == 3 and kids_of(moved) == {"mk_two"}
    ids = [endpoint_id(c) for c in sealed]
    assert [endpoint_id(c) for c in moved] == ids
    assert len(set(ids)) == 3


def test_an_opened_webhook_signs_with_the_original_secret() -> None:
    sealed, _ = seal_channels(_channels()[:1], "acc_a", "rule_1", RING)
    opened = open_channel(sealed[0], "acc_a", "rule_1", RING)
    assert isinstance(opened, WebhookChannel)
    mac = hmac.new(opened.secret_bytes, b"m", hashlib.sha256).digest()
    assert mac == hmac.new(b"s" * 32, b"m", hashlib.sha256).digest()


def test_slack_failure_details_never_quote_the_webhook_url() -> None:
    from alerting.channels.slack import _without_url

    detail = f"ClientResponseError: 404, message='Not Found', url='{HOOK}'"
    scrubbed = _without_url(detail, HOOK)
    assert "abcdefghijklmnop" not in scrubbed and "<webhook URL>" in scrubbed
    assert _without_url("no /services/T000/B000/abcdefghijklmnop here", HOOK) == "no /… here"


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[Channel] = []

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        self.sent.append(channel)
        return SendResult.delivered()


async def test_the_notifier_opens_just_before_sending_or_says_why_not() -> None:
    n = make_notification()  # rule_1 of acc_main
    sealed, _ = seal_channels(_channels(), n.account_id, n.rule.rule_id, RING)
    inner = _Recorder()
    opener = OpeningNotifier(inner, lambda: RING)
    for chan in sealed:
        assert (await opener.send(n, chan)).outcome.value == "delivered"
    assert inner.sent == _channels()
    gone = await OpeningNotifier(inner, lambda: Keyring((K2,))).send(n, sealed[0])
    assert (
        gone.outcome.value == "permanent" and "'mk_one', which is not in the keyring" in gone.detail
    )
    none = await OpeningNotifier(inner, lambda: None).send(n, sealed[1])
    assert none.outcome.value == "permanent" and none.detail == NO_MASTER_KEY
    plain = await OpeningNotifier(inner, lambda: None).send(n, _channels()[0])
    assert plain.outcome.value == "delivered"  # a rule from before sealing still works
    assert len(inner.sent) == 4


def test_a_masked_value_sent_back_is_refused_saying_what_to_do() -> None:
    from pydantic import ValidationError

    for data in (
        {"type": "webhook", "url": "https://example.com/h", "secret": mask("secret", SECRET)},
        {"type": "slack", "webhook_url": mask("webhook_url", HOOK)},
        {"type": "slack", "bot_token": mask("bot_token", TOKEN), "channel": "#ops"},
    ):
        model = WebhookChannel if data["type"] == "webhook" else SlackChannel
        with pytest.raises(ValidationError, match="masked form a read shows"):
            model.model_validate(data)
