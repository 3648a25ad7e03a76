"""The weekly job on a schedule (APScheduler 3, a blocking scheduler).

Weekdays are names, never numbers: APScheduler counts Monday as 0 where cron counts it as 1.
Missed runs are not left to APScheduler's misfire handling (a memory job store forgets them):
at start and every hour the scheduler asks "is last week's draft missing, or did its run
fail?" and runs the job if so. One scheduler per data dir (a lock file); SIGTERM stops it
cleanly.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tracker.job import catch_up_needed, exclusive, run_weekly_job, scheduled_send
from tracker.settings import Settings

log = logging.getLogger(__name__)
CATCH_UP_EVERY = timedelta(hours=1)


def cron_trigger(day: str, clock_time: str, timezone: str) -> CronTrigger:
    hour, minute = (int(part) for part in clock_time.split(":"))
    return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=ZoneInfo(timezone))


def weekly_trigger(settings: Settings) -> CronTrigger:
    return cron_trigger(settings.schedule_day, settings.schedule_time, settings.timezone)


def send_trigger(settings: Settings) -> CronTrigger | None:
    return cron_trigger(settings.send_day, settings.send_time, settings.timezone) if settings.send_day else None


def next_run_times(trigger: CronTrigger, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `now` (computed, never waited for)."""
    times: list[datetime] = []
    previous = None
    moment = now
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        times.append(fire)
        previous, moment = fire, fire + timedelta(seconds=1)
    return times


class WeeklyRunner:
    """What the scheduler's jobs call. Each job is guarded: a failure is logged (and the job
    has told the editors) and the next tick tries again; the scheduler never dies of it."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock

    def weekly(self) -> None:
        self._guarded("weekly job", lambda: run_weekly_job(self.settings, self.clock))

    def catch_up(self) -> None:
        def check() -> None:
            reason = catch_up_needed(self.settings, self.clock())
            if reason:
                log.warning("catching up: %s", reason)
                run_weekly_job(self.settings, self.clock)
        self._guarded("catch-up", check)

    def send(self) -> None:
        self._guarded("scheduled send", lambda: log.warning("%s", scheduled_send(self.settings, self.clock)))

    def _guarded(self, name: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 - the scheduler's per-job guard: log and carry on
            log.exception("%s failed; the next check retries", name)


def run_scheduler(settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
    """Block, running the weekly job on its schedule, until SIGTERM or SIGINT."""
    zone = ZoneInfo(settings.timezone)
    clock = clock or (lambda: datetime.now(zone))
    with exclusive(settings.data_dir / "scheduler.lock", "a cartdigest scheduler for this data dir"):
        runner = WeeklyRunner(settings, clock)
        scheduler = BlockingScheduler(timezone=zone)
        # max_instances=1 and coalesce: never two runs of one job at once, never a burst of them.
        scheduler.add_job(runner.weekly, weekly_trigger(settings), id="weekly", max_instances=1,
                          coalesce=True, misfire_grace_time=None)
        scheduler.add_job(runner.catch_up, IntervalTrigger(seconds=CATCH_UP_EVERY.total_seconds(), timezone=zone),
                          id="catch-up", max_instances=1, coalesce=True)
        trigger = send_trigger(settings)
        if trigger is not None:
            scheduler.add_job(runner.send, trigger, id="send", max_instances=1, coalesce=True,
                              misfire_grace_time=None)

        def stop(signum: int, _frame: object) -> None:
            log.warning("signal %d: stopping the scheduler", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.warning("scheduler started; next weekly run %s",
                    next_run_times(weekly_trigger(settings), clock(), 1)[0].isoformat())
        runner.catch_up()   # a run missed while the machine was off happens now
        scheduler.start()
    log.warning("scheduler stopped")
