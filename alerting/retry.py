"""The one retry policy for notification delivery, and outcome classification (pure).

Schedule: attempt 1 immediately, then the fast phase (5 s, 30 s, 2 min after the previous
failure), then a long tail that starts at 10 min and doubles up to 1 h between attempts,
until 24 h after the first attempt; after that a retryable failure becomes a dead letter.
A receiver's Retry-After is honoured as a lower bound on the next delay. Permanent
failures dead-letter at once; a 410 disables the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from alerting.notifier import SendResult
from schemas.alerts import DeliveryOutcome


class RetryAction(StrEnum):
    DONE = "done"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    DISABLE_ENDPOINT = "disable_endpoint"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after an attempt; `retry_at`/`delay_s` are set only for RETRY."""

    action: RetryAction
    reason: str
    retry_at: datetime | None = None
    delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays between attempts; see the module docstring for the defaults."""

    fast_delays_s: tuple[float, ...] = (5.0, 30.0, 120.0)
    tail_first_s: float = 600.0
    tail_factor: float = 2.0
    tail_max_s: float = 3_600.0
    give_up_after_s: float = 86_400.0

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if attempt <= len(self.fast_delays_s):
            return self.fast_delays_s[attempt - 1]
        tail_step = attempt - len(self.fast_delays_s) - 1
        return min(self.tail_first_s * self.tail_factor**tail_step, self.tail_max_s)

    def offsets(self) -> list[float]:
        """Seconds after the first attempt at which each attempt runs, without Retry-After."""
        out = [0.0]
        attempt = 1
        while True:
            nxt = out[-1] + self.delay_after(attempt)
            if nxt > self.give_up_after_s:
                return out
            out.append(nxt)
            attempt += 1

    def decide(
        self, result: SendResult, *, attempt: int, first_attempt_at: datetime, now: datetime
    ) -> RetryDecision:
        """Decide after attempt number `attempt` (1-based) that ended at `now`."""
        if result.outcome is DeliveryOutcome.DELIVERED:
            return RetryDecision(RetryAction.DONE, "delivered")
        if result.outcome is DeliveryOutcome.DISABLE_ENDPOINT:
            return RetryDecision(RetryAction.DISABLE_ENDPOINT, result.detail or "endpoint gone")
        if result.outcome is DeliveryOutcome.PERMANENT:
            return RetryDecision(RetryAction.DEAD_LETTER, result.detail or "permanent failure")
        delay = self.delay_after(attempt)
        if result.retry_after_s is not None:
            delay = max(delay, result.retry_after_s)
        retry_at = now + timedelta(seconds=delay)
        if (retry_at - first_attempt_at).total_seconds() > self.give_up_after_s:
            return RetryDecision(
                RetryAction.DEAD_LETTER,
                f"gave up after {attempt} attempts: {result.detail}",
            )
        return RetryDecision(RetryAction.RETRY, result.detail, retry_at, delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date).

    Returns None when absent or unparseable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def classify_http_status(
    status: int, detail: str = "", retry_after_s: float | None = None
) -> SendResult:
    """2xx delivered; 408, 429, 5xx retryable; 410 disables; 3xx and other 4xx permanent."""
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if 200 <= status < 300:
        return SendResult.delivered(text)
    if status in (408, 429) or 500 <= status < 600:
        return SendResult.retryable(text, retry_after_s)
    if status == 410:
        return SendResult.disable_endpoint(text)
    if 300 <= status < 400:
        return SendResult.permanent(f"{text} (redirects are not followed)")
    return SendResult.permanent(text)


def classify_smtp_code(code: int, detail: str = "") -> SendResult:
    """SMTP 4xx (and codes below 400 that are not success) retryable; 5xx permanent."""
    text = f"SMTP {code}" + (f": {detail}" if detail else "")
    if 500 <= code < 600:
        return SendResult.permanent(text)
    return SendResult.retryable(text)
