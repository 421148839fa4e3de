"""The render quota as HTTP response headers (the IETF RateLimit header fields draft).

`RateLimit-Policy: "renders";q=100;w=86400` (100 renders per 86400-second window, the
UTC day) and `RateLimit: "renders";r=<remaining>;t=<seconds until 00:00 UTC>`; a refused
render adds `Retry-After` (the same seconds). Only test-key renders carry them: live keys
have no render quota.
"""

from __future__ import annotations

from streams.client.quota import WINDOW_S, QuotaState

POLICY = "renders"
"""The policy name, also the `violated-policies` entry of a quota-exceeded problem."""


def ratelimit_headers(state: QuotaState) -> dict[str, str]:
    """The RateLimit-Policy and RateLimit headers of a render's answer (and Retry-After
    when it was refused)."""
    headers = {
        "RateLimit-Policy": f'"{POLICY}";q={state.limit};w={WINDOW_S}',
        "RateLimit": f'"{POLICY}";r={state.remaining};t={state.reset_s}',
    }
    if not state.admitted:
        headers["Retry-After"] = str(state.reset_s)
    return headers
