"""Sending an approved edition to every confirmed reader, exactly once each.

The send log has one row per (edition, reader). It is written *before* a message goes out
('sending') and again *after* ('sent', 'soft_bounce', 'hard_bounce'), each in its own
committed transaction. So a sender killed at any moment and started again skips everyone
marked sent, re-sends at most the one message that was in flight, and misses no one.

What a reader whose chosen sections are empty this week gets: a short, honest note that
nothing new appeared in their sections, the other sections' counts with a link to the full
edition on the web, and their preferences and unsubscribe links. Silence would look like a
broken subscription; the whole edition would ignore their choice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from html import escape as html_escape
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from subscribers.mailer import Mailer, SendError, build_message
from subscribers.readers import Reader, Readers
from subscribers.tokens import Tokens
from tracker.edition import EditionBuilder, EditionError, EditionView
from tracker.errors import CartdigestError
from tracker.render import RenderedEmail, email_context, render_email
from tracker.ratelimit import RateLimiter
from tracker.settings import Settings

log = logging.getLogger(__name__)

SOFT_RETRIES = 3
DONE = ("sent", "hard_bounce")


@dataclass
class SendReport:
    sent: int = 0
    skipped: int = 0          # readers who already had this edition
    failed: int = 0           # soft bounces after every retry, and hard bounces
    hard_bounces: list[str] = field(default_factory=list)
    soft_bounces: list[str] = field(default_factory=list)
    finished: bool = False    # every reader done: the edition is now 'sent'

    def as_json(self) -> dict[str, int]:
        """The `send --json` document of CONTRACT.md."""
        return {"sent": self.sent, "skipped": self.skipped, "failed": self.failed}


class PersonalMessages:
    """Renders each reader's own copy: their sections, their signed links."""

    # Stand-ins for the personal parts: readers with the same sections share one render, and
    # each copy only swaps these in (10,000 renders of the same edition would dominate a send).
    UNSUBSCRIBE = "cartdigest-personal-unsubscribe-url"
    PREFERENCES = "cartdigest-personal-preferences-url"
    NAME = "cartdigest-personal-reader-name"

    def __init__(self, settings: Settings, view: EditionView, env, tokens: Tokens, list_id: str) -> None:
        self.settings = settings
        self.view = view
        self.env = env
        self.tokens = tokens
        self.list_id = list_id
        self._renders: dict[tuple[tuple[str, ...], bool], RenderedEmail] = {}

    def links(self, reader: Reader) -> tuple[str, str]:
        base = self.settings.base_url
        return (f"{base}/unsubscribe/{self.tokens.make('unsubscribe', reader.id, reader.email)}",
                f"{base}/preferences/{self.tokens.make('preferences', reader.id, reader.email)}")

    def render(self, reader: Reader) -> RenderedEmail:
        key = (tuple(reader.sections), bool(reader.name))
        shared = self._renders.get(key)
        if shared is None:
            shared = self._renders[key] = render_email(self.env, email_context(
                self.view, self.settings.base_url, sections=set(reader.sections) if reader.sections else None,
                reader_name=self.NAME if reader.name else None,
                unsubscribe_url=self.UNSUBSCRIBE, preferences_url=self.PREFERENCES))
        unsubscribe_url, preferences_url = self.links(reader)
        name = reader.name or ""

        def personal(body: str, escape_name: bool) -> str:
            return (body.replace(self.UNSUBSCRIBE, unsubscribe_url)
                    .replace(self.PREFERENCES, preferences_url)
                    .replace(self.NAME, html_escape(name) if escape_name else name))

        return RenderedEmail(shared.subject, personal(shared.html, True), personal(shared.text, False))

    def message(self, reader: Reader, now: datetime):
        rendered = self.render(reader)
        unsubscribe_url, _ = self.links(reader)
        unsubscribe = f"<{unsubscribe_url}>"
        if self.settings.unsubscribe_mailto:
            unsubscribe += f", <mailto:{self.settings.unsubscribe_mailto}?subject=unsubscribe>"
        return build_message(
            sender=self.settings.from_address, to=reader.email, to_name=reader.name,
            subject=rendered.subject, text=rendered.text, html=rendered.html, now=now,
            headers={"List-Id": self.list_id, "List-Unsubscribe": unsubscribe,
                     # RFC 8058: a POST to the https URI unsubscribes in one click.
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                     "X-Cartdigest-Edition": self.view.week})


def list_id(settings: Settings, profile_name: str) -> str:
    from urllib.parse import urlparse

    host = urlparse(settings.base_url).hostname or "localhost"
    return f"<{profile_name}.{host}>"


def personal_messages(builder: EditionBuilder, settings: Settings, edition_id: int, env) -> PersonalMessages:
    """Each reader's copy of the edition, with their signed links and the list headers."""
    return PersonalMessages(settings, builder.view(edition_id), env, Tokens(settings.require_secret_key()),
                            list_id(settings, builder.profile.name))


def send_edition(builder: EditionBuilder, readers: Readers, settings: Settings, edition_id: int,
                 make_mailer: Callable[[], Mailer], now: Callable[[], datetime], env, *,
                 sleep: Callable[[float], None] = time.sleep) -> SendReport:
    """Send an approved edition (or resume a send); never an edition no editor approved.

    `settings.smtp_connections` workers each reuse one connection from `make_mailer`; with one
    (the default), a crash repeats at most the single message in flight.
    """
    row = builder.edition_row(edition_id)
    if row["status"] == "draft":
        raise EditionError(f"edition {edition_id} ({row['week']}) is a draft: an editor must approve "
                           f"it first (cartdigest edition approve {edition_id})")
    report = SendReport()
    if row["status"] == "sent":
        report.skipped = _count(builder, edition_id, "sent")
        report.finished = True
        return report
    if row["status"] == "approved":
        builder.set_status(edition_id, "sending", now())
    personal = personal_messages(builder, settings, edition_id, env)
    limiter = RateLimiter(settings.send_rate) if settings.send_rate else None
    store = builder.store
    logged = {r["reader_id"]: r["status"] for r in store.execute(
        "SELECT reader_id, status FROM send_log WHERE edition_id = ?", (edition_id,))}
    waiting: queue.Queue[Reader] = queue.Queue()
    for reader in readers.confirmed():
        if logged.get(reader.id) in DONE:
            report.skipped += 1
        elif not readers.is_suppressed(reader.email):
            waiting.put(reader)
    # One store connection is shared: every write to it goes through this lock.
    store_lock = threading.Lock()
    stop = threading.Event()
    problems: list[BaseException] = []

    def work() -> None:
        mailer = make_mailer()
        try:
            while not stop.is_set():
                try:
                    reader = waiting.get_nowait()
                except queue.Empty:
                    return
                with store_lock:
                    _log(store, edition_id, reader.id, "sending", now())      # before the message
                outcome, detail, message_id = _deliver(personal, mailer, reader, now, limiter, sleep)
                with store_lock:
                    _log(store, edition_id, reader.id, outcome, now(), error=detail, message_id=message_id)
                    if outcome == "sent":
                        report.sent += 1
                    elif outcome == "hard_bounce":
                        report.failed += 1
                        report.hard_bounces.append(reader.email)
                        readers.set_status(reader.id, "bounced", now(), "delivery", detail)
                    else:
                        report.failed += 1
                        report.soft_bounces.append(reader.email)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
            problems.append(error)
            stop.set()
        finally:
            mailer.close()

    workers = [threading.Thread(target=work, name=f"send-{n}", daemon=True)
               for n in range(max(1, settings.smtp_connections))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if problems:
        raise problems[0]
    pending = store.execute(
        "SELECT count(*) FROM readers r WHERE r.status = 'confirmed' AND NOT EXISTS ("
        "SELECT 1 FROM send_log s WHERE s.edition_id = ? AND s.reader_id = r.id AND s.status IN ('sent', 'hard_bounce'))",
        (edition_id,)).fetchone()[0]
    if pending == 0:
        builder.set_status(edition_id, "sent", now())
        report.finished = True
    return report


def _deliver(personal: PersonalMessages, mailer: Mailer, reader: Reader, now: Callable[[], datetime],
             limiter: RateLimiter | None, sleep: Callable[[float], None]) -> tuple[str, str | None, str | None]:
    """('sent' | 'soft_bounce' | 'hard_bounce', error, Message-ID). 4xx is retried with back-off."""
    message = personal.message(reader, now())
    problem = None
    for attempt in range(SOFT_RETRIES):
        if limiter:
            limiter.acquire()
        try:
            mailer.send(message)
            return "sent", None, message["Message-ID"]
        except SendError as error:
            if error.policy:
                # 5.7.x: the relay refuses us (authentication, reputation). Sending on would
                # only burn the list; stop and tell a person.
                raise CartdigestError(f"the mail relay refused on policy grounds: {error}; sending "
                                      "stopped, fix it and run the same `cartdigest send` again") from None
            if error.permanent:
                return "hard_bounce", str(error), None
            problem = str(error)
            log.info("temporary failure for reader %d (%s); retrying", reader.id, error)
            sleep(min(30.0, 0.5 * 2 ** attempt))
    return "soft_bounce", problem, None


def _log(store, edition_id: int, reader_id: int, status: str, now: datetime, *, error: str | None = None,
         message_id: str | None = None) -> None:
    with store.transaction():
        store.connection.execute(
            "INSERT INTO send_log (edition_id, reader_id, status, attempts, message_id, error, updated_at) "
            "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (edition_id, reader_id) DO UPDATE SET "
            "status = excluded.status, message_id = COALESCE(excluded.message_id, message_id), "
            "error = excluded.error, updated_at = excluded.updated_at, "
            "attempts = attempts + (excluded.status = 'sending')",
            (edition_id, reader_id, status, message_id, error, now.isoformat(timespec="seconds")))


def _count(builder: EditionBuilder, edition_id: int, status: str) -> int:
    return builder.store.execute("SELECT count(*) FROM send_log WHERE edition_id = ? AND status = ?",
                                 (edition_id, status)).fetchone()[0]


def dry_run(builder: EditionBuilder, readers: Readers, settings: Settings, edition_id: int,
            mailer: Mailer, now: Callable[[], datetime], env) -> int:
    """Write every confirmed reader's message (the outbox mailer) without touching the log."""
    personal = personal_messages(builder, settings, edition_id, env)
    count = 0
    for reader in readers.confirmed():
        mailer.send(personal.message(reader, now()))
        count += 1
    mailer.close()
    return count
