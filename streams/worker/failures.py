"""How the agents treat failures: which Kafka failures are transient (retried with
backoff), and what a bug does (stops the worker process).

A bug (any failure that is not transient: a `TypeError`, a SQL error) must not be
retried forever, and must not be skipped either: faust restarts a crashed agent and
commits the offsets acknowledged so far, and the batch that failed would be acknowledged
when its stream is closed. Later batches would then move the ingest watermarks past
records that were never written. So the agents hand a bug to `stop_on_bug`, which logs
it and ends the process at once, without committing anything. The write-ahead scheme
makes that as safe as a SIGKILL: after the fix, a restart reads the failed batch again.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from aiokafka.errors import KafkaTimeoutError

from schemas.runtime.retry import IsTransient, any_of, io_failure, of_types
from streams.worker.kafka_ranges import RangeReadTimeout

log = logging.getLogger(__name__)

EXIT_BUG = 70
"""Exit status of a worker stopped by a bug (EX_SOFTWARE)."""

kafka_transient: IsTransient = any_of(io_failure, of_types(RangeReadTimeout, KafkaTimeoutError))
"""Transient Kafka failures: lost connections, timeouts and errors the client marks
retriable (kafka-python and aiokafka alike)."""


def stop_on_bug(agent: str, exc: BaseException) -> NoReturn:
    """Log `exc` as a bug in `agent` and end the process with `EXIT_BUG`."""
    log.critical(
        "%s stopped by a bug (%s: %s). The worker exits without committing offsets; "
        "fix the cause and start it again (the failed batch is read again).",
        agent,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_BUG)
