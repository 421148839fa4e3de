"""The partner report's signature check: an ECDSA P-256 key pair made here signs a body;
the right key id and signature pass, anything else is refused with its reason."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.http.routes.secret_scanning import SignatureRejected, verify_signature
from infra.settings import SecretScanningKey

BODY = b'[{"token":"pk_live_x","type":"keypulse_api_key","url":"https://e.x/a","source":"content"}]'


def key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem.decode()


def sign(private: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture(scope="module")
def keys() -> tuple[ec.EllipticCurvePrivateKey, list[SecretScanningKey]]:
    private, pem = key_pair()
    _, other_pem = key_pair()
    return private, [
        SecretScanningKey(key_identifier="other", key=other_pem),
        SecretScanningKey(key_identifier="kid-1", key=pem),
    ]


def test_a_correct_signature_passes(
    keys: tuple[ec.EllipticCurvePrivateKey, list[SecretScanningKey]],
) -> None:
    private, configured = keys
    verify_signature(BODY, "kid-1", sign(private, BODY), configured)


@pytest.mark.parametrize(
    ("key_id", "signature", "body", "why"),
    [
        (None, "good", BODY, "not signed"),
        ("kid-1", None, BODY, "not signed"),
        ("kid-1", "", BODY, "not signed"),
        ("nobody", "good", BODY, "unknown"),
        ("other", "good", BODY, "does not match"),  # signed by kid-1, checked against other
        ("kid-1", "good", BODY + b" ", "does not match"),  # the body changed after signing
        ("kid-1", "%%%not-base64", BODY, "not base64"),
        ("kid-1", base64.b64encode(b"\x30\x00").decode(), BODY, "does not match"),
    ],
)
def test_anything_else_is_refused(
    keys: tuple[ec.EllipticCurvePrivateKey, list[SecretScanningKey]],
    key_id: str | None,
    signature: str | None,
    body: bytes,
    why: str,
) -> None:
    private, configured = keys
    if signature == "good":
        signature = sign(private, BODY)
    with pytest.raises(SignatureRejected, match=why):
        verify_signature(body, key_id, signature, configured)


def test_no_configured_keys_refuses_every_report() -> None:
    private, _ = key_pair()
    with pytest.raises(SignatureRejected, match="unknown"):
        verify_signature(BODY, "kid-1", sign(private, BODY), [])


def test_a_configured_key_that_is_not_ecdsa_pem_is_refused_not_a_crash() -> None:
    private, _ = key_pair()
    bad = [SecretScanningKey(key_identifier="kid-1", key="not a pem")]
    with pytest.raises(SignatureRejected, match="not usable"):
        verify_signature(BODY, "kid-1", sign(private, BODY), bad)
