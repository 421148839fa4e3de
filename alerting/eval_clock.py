"""The evaluator's clock: it follows the ingest watermark, never the wall clock alone (pure).

Contracts of `EvaluationClock.now(wall_now, caught_up)`:

- The evaluation time is the newest `occurred_at` that has landed in ClickHouse (the
  watermark), capped at `wall_now` (future-dated events do not move it ahead), so a window
  is never judged before its data has landed.
- When no block has landed for `idle_advance_s` and the caller reports that ingest is
  caught up (nothing waiting in the requests topic), the time may advance to
  `wall_now - idle_advance_s`, so windows of idle keys close and timers (`for`,
  `keep_firing_for`) run without traffic.
- It never goes backwards (also across restarts: `floor` is set from the restored state)
  and is None until there is a watermark or an idle advance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class EvaluationClock:
    idle_advance_s: float
    watermark: datetime | None = None
    last_landed_wall: datetime | None = None
    floor: datetime | None = None

    def landed(self, max_occurred_at: datetime, wall_now: datetime) -> None:
        """A block whose newest event is `max_occurred_at` landed at `wall_now`."""
        if self.watermark is None or max_occurred_at > self.watermark:
            self.watermark = max_occurred_at
        self.last_landed_wall = wall_now

    def raise_floor(self, at: datetime) -> None:
        if self.floor is None or at > self.floor:
            self.floor = at

    def idle(self, wall_now: datetime) -> bool:
        """True when nothing has landed for `idle_advance_s` (or ever)."""
        last = self.last_landed_wall
        return last is None or (wall_now - last).total_seconds() >= self.idle_advance_s

    def now(self, wall_now: datetime, caught_up: bool) -> datetime | None:
        """The evaluation time for a cycle starting at `wall_now` (see the module doc)."""
        candidates: list[datetime] = []
        if self.watermark is not None:
            candidates.append(min(self.watermark, wall_now))
        if caught_up and self.idle(wall_now):
            candidates.append(wall_now - timedelta(seconds=self.idle_advance_s))
        if self.floor is not None:
            candidates.append(self.floor)
        if not candidates:
            return None
        at = max(candidates)
        self.floor = at
        return at
