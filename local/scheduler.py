"""EventBridge Scheduler for the local stack: fires the template's ``ScheduleV2`` events.

Expressions: ``rate(N minute|minutes|hour|hours|day|days)`` and the six-field
``cron(minutes hours day-of-month month day-of-week year)`` with ``*``, ``?``, lists, ranges, steps
and names (``JAN``, ``MON``); day-of-week is 1-7 = SUN-SAT as in AWS. ``L``, ``W`` and ``#`` are not
supported (such a schedule is skipped with a warning). Times are in the schedule's
``ScheduleExpressionTimezone`` (UTC by default).

A failed invocation is retried ``RetryPolicy.MaximumRetryAttempts`` times (short local backoff), then
handed to the target's dead-letter callback: the stack sends the event to the function's
``DeadLetterQueue`` (``jobs-dlq``) with the error as message attributes, as Lambda does for async
invocations.

A rate schedule first fires one period after the stack starts (not at start, so restarting the stack
does not re-run every job). Each firing invokes the function with the schedule's ``Input`` JSON as the
event, in its own thread; a firing is skipped while the previous run of the same schedule is still
going, like a function with reserved concurrency 1 would throttle it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from local.template import ScheduleEvent

log = logging.getLogger("local.scheduler")

Invoke = Callable[[Any], Any]
Now = Callable[[], datetime]

_MONTHS = {
    n: i + 1
    for i, n in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {n: i + 1 for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleExpressionError(ValueError):
    pass


def parse_rate(expression: str) -> timedelta | None:
    found = _RATE.match(expression.strip())
    if not found:
        return None
    amount, unit = int(found.group(1)), found.group(2).rstrip("s")
    if amount <= 0:
        raise ScheduleExpressionError(f"{expression}: the rate must be positive")
    if (amount == 1) != (found.group(2) == unit):
        raise ScheduleExpressionError(f"{expression}: use '1 {unit}' or 'N {unit}s'")
    return timedelta(seconds=amount * _UNIT_SECONDS[unit])


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int] | None:
    """The set of allowed values; None means 'any' (``*`` or ``?``)."""
    if text in {"*", "?"}:
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        stepped = "/" in part
        if stepped:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step <= 0:
                raise ScheduleExpressionError(f"bad step in {text!r}")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, names), _value(last, names)
        else:
            start = _value(part, names)
            end = high if stepped else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleExpressionError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    upper = text.upper()
    if names and upper in names:
        return names[upper]
    if not text.isdigit():
        raise ScheduleExpressionError(f"unsupported cron value {text!r} (L, W and # are not supported)")
    return int(text)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 1-7, SUN-SAT
    years: frozenset[int] | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        found = re.match(r"^cron\((.*)\)$", expression.strip())
        if not found:
            raise ScheduleExpressionError(f"{expression!r} is neither rate(...) nor cron(...)")
        fields = found.group(1).split()
        if len(fields) != 6:
            raise ScheduleExpressionError(f"{expression!r}: cron needs 6 fields")
        minute, hour, dom, month, dow, year = fields
        if dom != "?" and dow != "?":
            raise ScheduleExpressionError(f"{expression!r}: one of day-of-month and day-of-week must be ?")
        return cls(
            _field(minute, 0, 59),
            _field(hour, 0, 23),
            _field(dom, 1, 31),
            _field(month, 1, 12, _MONTHS),
            _field(dow, 1, 7, _DAYS),
            _field(year, 1970, 2199),
        )

    def matches(self, at: datetime) -> bool:
        weekday = (at.isoweekday() % 7) + 1  # Monday=1..Sunday=7 -> SUN=1..SAT=7
        return all(
            allowed is None or value in allowed
            for allowed, value in (
                (self.minutes, at.minute),
                (self.hours, at.hour),
                (self.days, at.day),
                (self.months, at.month),
                (self.weekdays, weekday),
                (self.years, at.year),
            )
        )

    def next_after(self, after: datetime) -> datetime | None:
        """The first matching minute strictly after ``after`` (within ~5 years), or None."""
        candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = candidate + timedelta(days=366 * 5)
        while candidate < limit:
            if self.months is not None and candidate.month not in self.months:
                month_start = (candidate.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                candidate = month_start
                continue
            day_ok = (self.days is None or candidate.day in self.days) and (
                self.weekdays is None or (candidate.isoweekday() % 7) + 1 in self.weekdays
            )
            if not day_ok or (self.years is not None and candidate.year not in self.years):
                candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if self.hours is not None and candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0) + timedelta(hours=1)
                continue
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        return None


DeadLetter = Callable[[Any, BaseException], None]


@dataclass(frozen=True)
class Target:
    event: ScheduleEvent
    invoke: Invoke
    dead_letter: DeadLetter | None = None


@dataclass
class _Job:
    event: ScheduleEvent
    next_fire: datetime
    rate: timedelta | None
    cron: Cron | None
    zone: ZoneInfo
    running: threading.Event

    def advance(self, now: datetime) -> None:
        if self.rate is not None:
            while self.next_fire <= now:
                self.next_fire += self.rate
            return
        assert self.cron is not None
        nxt = self.cron.next_after(now.astimezone(self.zone))
        self.next_fire = nxt.astimezone(UTC) if nxt else datetime.max.replace(tzinfo=UTC)


class Scheduler:
    def __init__(
        self,
        schedules: Iterable[Target | tuple[ScheduleEvent, Invoke]],
        *,
        now: Now = lambda: datetime.now(UTC),
        retry_delay: float = 1.0,
    ) -> None:
        self._now = now
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: list[tuple[_Job, Target]] = []
        start = now()
        for item in schedules:
            target = item if isinstance(item, Target) else Target(*item)
            if not target.event.enabled:
                continue
            try:
                job = self._job(target.event, start)
            except (ScheduleExpressionError, ValueError) as error:
                log.warning("schedule %s skipped: %s", target.event.name, error)
                continue
            self._jobs.append((job, target))

    @staticmethod
    def _job(event: ScheduleEvent, start: datetime) -> _Job:
        zone = ZoneInfo(event.timezone or "UTC")
        rate = parse_rate(event.expression)
        cron = None if rate is not None else Cron.parse(event.expression)
        job = _Job(event, start + rate if rate else start, rate, cron, zone, threading.Event())
        if cron is not None:
            job.advance(start)
        return job

    @property
    def schedules(self) -> list[tuple[str, str, datetime]]:
        return [(job.event.name, job.event.expression, job.next_fire) for job, _ in self._jobs]

    def tick(self) -> list[str]:
        """Fire every due schedule (in threads); returns their names. The loop calls this."""
        now = self._now()
        fired: list[str] = []
        for job, target in self._jobs:
            if job.next_fire > now:
                continue
            job.advance(now)
            if job.running.is_set():
                log.warning("schedule %s is still running; this firing is skipped", job.event.name)
                continue
            job.running.set()
            fired.append(job.event.name)
            threading.Thread(
                target=self._fire, args=(job, target), name=f"schedule-{job.event.name}", daemon=True
            ).start()
        return fired

    def _fire(self, job: _Job, target: Target) -> None:
        event = job.event.input if job.event.input is not None else {}
        log.info("schedule %s fired: %s", job.event.name, event)
        try:
            for attempt in range(job.event.maximum_retry_attempts + 1):
                try:
                    target.invoke(event)
                    return
                except Exception as error:
                    last = attempt == job.event.maximum_retry_attempts
                    log.exception(
                        "schedule %s: invocation %d of %d failed",
                        job.event.name,
                        attempt + 1,
                        job.event.maximum_retry_attempts + 1,
                    )
                    if last:
                        if target.dead_letter is not None:
                            target.dead_letter(event, error)
                        return
                    if self._stop.wait(self._retry_delay * 2**attempt):
                        return
        finally:
            job.running.clear()

    def wait_running(self, timeout: float) -> bool:
        """Wait for the invocations in progress; False if some still run after ``timeout``."""
        deadline = time.monotonic() + timeout
        while any(job.running.is_set() for job, _ in self._jobs):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception:  # pragma: no cover - tick contains invocation errors
                log.exception("scheduler tick failed")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
