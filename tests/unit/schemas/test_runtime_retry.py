"""`schemas.runtime.retry`: transient failures are retried, bugs surface at once, and the
log follows the state (first failure, recovery), not every try."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from schemas.runtime.retry import any_of, io_failure, of_types, off_loop_until_done, until_done

log = logging.getLogger("tests.retry")


class Flaky:
    """Raises `errors` in turn, then returns "done"; counts the calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    async def attempt(self) -> str:
        return self()


class BrokerDown(Exception):
    retriable = True


def _wrapped_os_error() -> Exception:
    """A library error raised `from` an OSError, as HTTP clients do."""
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            raise RuntimeError("request failed") from exc
    except RuntimeError as outer:
        return outer


def test_io_failure_recognises_os_errors_causes_and_retriable_errors() -> None:
    assert io_failure(ConnectionResetError())
    assert io_failure(TimeoutError())
    assert io_failure(_wrapped_os_error())
    assert io_failure(BrokerDown())
    assert not io_failure(TypeError("bad argument"))
    assert not io_failure(ValueError("bad value"))
    assert not io_failure(RuntimeError("no cause"))


def test_predicates_combine() -> None:
    class Busy(Exception):
        pass

    busy_or_io = any_of(io_failure, of_types(Busy))
    assert busy_or_io(Busy())
    assert busy_or_io(OSError())
    assert not busy_or_io(KeyError("k"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = Busy()
    assert of_types(Busy)(wrapped)


async def test_a_transient_error_is_retried_until_it_succeeds() -> None:
    flaky = Flaky(ConnectionResetError(), TimeoutError(), _wrapped_os_error())
    result = await until_done(flaky.attempt, "write", log, first_delay_s=0.001)
    assert result == "done"
    assert flaky.calls == 4


async def test_a_type_error_propagates_at_once() -> None:
    flaky = Flaky(TypeError("unsupported operand"))
    with pytest.raises(TypeError, match="unsupported operand"):
        await until_done(flaky.attempt, "write", log, first_delay_s=0.001)
    assert flaky.calls == 1


async def test_a_bug_after_transient_failures_propagates_too() -> None:
    flaky = Flaky(OSError(), OSError(), KeyError("column"))
    with pytest.raises(KeyError):
        await until_done(flaky.attempt, "write", log, first_delay_s=0.001)
    assert flaky.calls == 3


async def test_the_caller_says_what_is_transient() -> None:
    class Busy(Exception):
        pass

    flaky = Flaky(Busy(), Busy())
    result = await until_done(
        flaky.attempt, "write", log, transient=of_types(Busy), first_delay_s=0.001
    )
    assert (result, flaky.calls) == ("done", 3)
    with pytest.raises(OSError):  # not transient for this caller
        await until_done(Flaky(OSError()).attempt, "write", log, transient=of_types(Busy))


async def test_logging_happens_on_state_change_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    flaky = Flaky(*(ConnectionResetError("reset") for _ in range(5)))
    await until_done(flaky.attempt, "ingest write", log, first_delay_s=0.001)
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in above_debug] == [
        ("WARNING", "ingest write failed"),
        ("INFO", "ingest write recovered after 5 failed attempts"),
    ]
    assert "ConnectionResetError: reset" in above_debug[0].getMessage()

    caplog.clear()
    await until_done(Flaky().attempt, "ingest write", log)
    assert caplog.records == []  # success on the first try: nothing to say


async def test_backoff_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    flaky = Flaky(*(OSError() for _ in range(6)))
    await until_done(flaky.attempt, "write", log, max_delay_s=2.0, first_delay_s=0.25)
    assert slept == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


async def test_off_loop_runs_in_the_executor_and_retries() -> None:
    flaky = Flaky(ConnectionAbortedError())
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert await off_loop_until_done(pool, flaky, logger=log, first_delay_s=0.001) == "done"
        with pytest.raises(AttributeError):
            await off_loop_until_done(pool, Flaky(AttributeError("x")), logger=log)
    assert flaky.calls == 2
