"""The weekly job: fetch, classify, draft, tell the editors. One function; the CLI (`run`),
the scheduler and the tests all call it.

It never sends an edition no editor approved. It is idempotent: a second run in the same week
continues the fetch from the watermark and rebuilds the same draft. Each run is recorded in
`job_runs` with its windows, searches, counts, errors and duration.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from subscribers.mailer import build_message, mailer_for
from tracker.edition import EditionBuilder, last_complete_week, week_bounds
from tracker.errors import CartdigestError
from tracker.fetch import FetchReport, run_fetch
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.publish import DraftReport, draft_edition, template_environment
from tracker.settings import Settings
from tracker.store import Store, open_store

log = logging.getLogger(__name__)


class AlreadyRunning(CartdigestError):
    """Another process holds the lock."""


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """A non-blocking lock file (flock): the second holder is refused at once, and the lock is
    released by the kernel if the holder dies, so a crash never leaves a stale lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise AlreadyRunning(f"{what} is already running ({holder}); wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class JobReport:
    week: str
    run_id: int = 0
    fetch: FetchReport | None = None
    draft: DraftReport | None = None
    errors: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sections: dict[str, int] = field(default_factory=dict)
    skipped_draft: str | None = None   # the week's edition is approved or sent: left alone

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        fetch = self.fetch.as_json() if self.fetch else None
        return {"week": self.week, "fetch": fetch,
                "searches": [vars(entry) for entry in self.fetch.searches] if self.fetch else [],
                "edition": self.draft.edition if self.draft else None,
                "papers": len(self.draft.items) if self.draft else 0, "sections": self.sections,
                "notified": self.notified, "errors": self.errors, "skipped_draft": self.skipped_draft}


def _start_run(store: Store, kind: str, week: str, now: datetime) -> int:
    with store.transaction():
        store.connection.execute(
            "UPDATE job_runs SET status = 'interrupted' WHERE status = 'running' AND kind = ?", (kind,))
        return store.connection.execute(
            "INSERT INTO job_runs (kind, started_at, status, week) VALUES (?, ?, 'running', ?)",
            (kind, now.isoformat(timespec="seconds"), week)).lastrowid


def _finish_run(store: Store, run_id: int, now: datetime, status: str, summary: dict[str, Any],
                seconds: float, error: str | None = None, edition_id: int | None = None,
                fetch_run_id: int | None = None) -> None:
    with store.transaction():
        store.connection.execute(
            "UPDATE job_runs SET finished_at = ?, status = ?, summary = ?, error = ?, seconds = ?, "
            "edition_id = ?, fetch_run_id = ? WHERE id = ?",
            (now.isoformat(timespec="seconds"), status, json.dumps(summary), error, round(seconds, 2),
             edition_id, fetch_run_id, run_id))


def editor_addresses(settings: Settings, store: Store) -> list[str]:
    emails = list(settings.editor_emails)
    emails += [row[0] for row in store.execute("SELECT email FROM editors WHERE email IS NOT NULL")]
    return list(dict.fromkeys(emails))


def notify_editors(settings: Settings, store: Store, subject: str, template: str,
                   context: dict[str, Any], now: datetime) -> list[str]:
    """Email every editor; returns who was told. A failure to notify is logged, not fatal."""
    recipients = editor_addresses(settings, store)
    if not recipients:
        log.warning("no editor address to notify (set editor_emails, or `cartdigest editor add --email`)")
        return []
    env = template_environment(settings)
    text = env.get_template(template).render(**context)
    mailer = mailer_for(settings.smtp_url, settings.data_dir / "outbox", settings.request_timeout)
    told = []
    try:
        for address in recipients:
            try:
                mailer.send(build_message(sender=settings.from_address, to=address, subject=subject,
                                          text=text, html=None, now=now))
                told.append(address)
            except CartdigestError as error:
                log.error("could not notify %s: %s", address, error)
    finally:
        mailer.close()
    return told


def run_weekly_job(settings: Settings, now: Callable[[], datetime]) -> JobReport:
    """Fetch from the watermark, classify, draft the last complete week, tell the editors."""
    started = time.monotonic()
    week = last_complete_week(now())
    report = JobReport(week)
    with exclusive(settings.data_dir / "job.lock", "the weekly job"):
        with open_store(settings.data_dir, settings.database_path) as store:
            report.run_id = _start_run(store, "weekly", week, now())
        try:
            # The window always covers the whole week about to be drafted.
            report.fetch = run_fetch(settings, load_profile(settings.profile), now(),
                                     cover_from=week_bounds(week)[0])
        except CartdigestError as error:
            # Draft anyway from what is stored, and say so; the next tick retries the fetch.
            report.errors.append(f"fetch failed: {error}")
        with open_store(settings.data_dir, settings.database_path) as store:
            existing = store.execute("SELECT status FROM editions WHERE week = ?", (week,)).fetchone()
        if existing is not None and existing["status"] != "draft":
            report.skipped_draft = f"the {week} edition is already {existing['status']}"
        else:
            try:
                report.draft = draft_edition(settings, week, now())
            except CartdigestError as error:
                report.errors.append(f"draft failed: {error}")
        with open_store(settings.data_dir, settings.database_path) as store:
            if report.draft:
                profile = load_profile(settings.profile)
                builder = EditionBuilder(store, profile, build_lexicon(profile))
                view = builder.view(report.draft.edition)
                report.sections = {section.label: len(section.items) for section in view.sections}
            report.seconds = time.monotonic() - started
            fetch_run = store.fetch_runs(1)
            report.notified = notify_editors(
                settings, store,
                subject=(f"[cartdigest] {week}: the weekly job had problems" if not report.ok else
                         f"[cartdigest] {week} draft ready: {len(report.draft.items)} papers" if report.draft else
                         f"[cartdigest] {week}: {report.skipped_draft}"),
                template="notice.txt",
                context={"report": report, "review_url": f"{settings.base_url}/editor/editions/"
                         + (str(report.draft.edition) if report.draft else ""),
                         "fetch_run": fetch_run[0] if fetch_run else None},
                now=now())
            _finish_run(store, report.run_id, now(), "complete" if report.ok else "failed",
                        report.summary(), report.seconds, "; ".join(report.errors) or None,
                        report.draft.edition if report.draft else None,
                        report.fetch.run_id if report.fetch else None)
    return report


def catch_up_needed(settings: Settings, now: datetime) -> str | None:
    """Why the weekly job should run now, or None: last week's draft is missing, or the last
    run for it failed (the machine was off, or NCBI was down)."""
    week = last_complete_week(now)
    with open_store(settings.data_dir, settings.database_path) as store:
        edition = store.execute("SELECT id FROM editions WHERE week = ?", (week,)).fetchone()
        if edition is None:
            return f"the {week} edition has not been drafted"
        last = store.execute("SELECT status FROM job_runs WHERE kind = 'weekly' AND week = ? "
                             "ORDER BY id DESC LIMIT 1", (week,)).fetchone()
        if last is not None and last["status"] in ("failed", "interrupted"):
            return f"the last weekly run for {week} {last['status']}"
    return None


def scheduled_send(settings: Settings, now: Callable[[], datetime]) -> str:
    """At the send time: send last week's edition if an editor approved it, else remind them."""
    from subscribers.service import send

    week = last_complete_week(now())
    with open_store(settings.data_dir, settings.database_path) as store:
        row = store.execute("SELECT id, status FROM editions WHERE week = ?", (week,)).fetchone()
        if row is None or row["status"] == "draft":
            state = "has no draft yet" if row is None else "is still a draft"
            notify_editors(settings, store, f"[cartdigest] reminder: the {week} edition {state}",
                           "reminder.txt", {"week": week, "state": state, "review_url":
                                            f"{settings.base_url}/editor/editions"}, now())
            return f"not sent: the {week} edition {state}; editors reminded"
        if row["status"] == "sent":
            return f"the {week} edition was already sent"
        edition_id = row["id"]
    with exclusive(settings.data_dir / "send.lock", "a send"):
        report = send(settings, edition_id, now)
    return f"sent the {week} edition: {report.sent} sent, {report.skipped} skipped, {report.failed} failed"
