"""Reader and delivery work as library calls: the CLI and the web pages go through here."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from subscribers.delivery import SendReport, dry_run, send_edition
from subscribers.mailer import Mailer, OutboxMailer, build_message, mailer_for
from subscribers.readers import ImportReport, Reader, Readers, import_csv
from subscribers.tokens import Tokens
from tracker.edition import EXTRA_SECTIONS, TRIALS_LABEL, TRIALS_SECTION, EditionBuilder
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.publish import template_environment
from tracker.settings import Settings
from tracker.store import open_store


def section_choices(settings: Settings) -> dict[str, str]:
    """Section keys a reader may choose, with their labels, in the profile's order."""
    lexicon = build_lexicon(load_profile(settings.profile))
    return {**{key: lexicon.section_labels[key] for key in lexicon.sections}, **EXTRA_SECTIONS,
            TRIALS_SECTION: TRIALS_LABEL}


@contextmanager
def reader_store(settings: Settings) -> Iterator[Readers]:
    with open_store(settings.data_dir, settings.database_path) as store:
        yield Readers(store, list(section_choices(settings)))


def make_mailer(settings: Settings) -> Mailer:
    return mailer_for(settings.smtp_url, settings.data_dir / "outbox", settings.request_timeout)


def send_confirmation(settings: Settings, reader: Reader, now: datetime, mailer: Mailer | None = None) -> None:
    """The double opt-in email: a signed link that expires after 7 days."""
    token = Tokens(settings.require_secret_key()).make("confirm", reader.id, reader.email)
    env = template_environment(settings)
    profile = load_profile(settings.profile)
    context = {"title": profile.title, "name": reader.name,
               "confirm_url": f"{settings.base_url}/confirm/{token}"}
    own = mailer is None
    mailer = mailer or make_mailer(settings)
    try:
        mailer.send(build_message(
            sender=settings.from_address, to=reader.email, to_name=reader.name,
            subject=f"Please confirm your subscription to {profile.title}",
            text=env.get_template("confirm_email.txt").render(**context),
            html=env.get_template("confirm_email.html").render(**context), now=now))
    finally:
        if own:
            mailer.close()


def add_reader(settings: Settings, email: str, now: datetime, *, name: str | None,
               sections: list[str], confirmed: bool) -> tuple[Reader, str]:
    with reader_store(settings) as readers:
        reader, outcome = readers.add(email, now, name=name, sections=sections, confirmed=confirmed,
                                      source="cli" + (" (consent collected elsewhere)" if confirmed else ""))
    if reader.status == "pending" and outcome == "added":
        send_confirmation(settings, reader, now)
    return reader, outcome


def import_readers(settings: Settings, path: Path, now: datetime, confirmed: bool) -> ImportReport:
    with reader_store(settings) as readers:
        report = import_csv(readers, path, now, confirmed)
    if report.new_pending:
        mailer = make_mailer(settings)
        try:
            for reader in report.new_pending:
                send_confirmation(settings, reader, now, mailer)
        finally:
            mailer.close()
    return report


def send(settings: Settings, edition_id: int, now: Callable[[], datetime],
         dry_run_folder: Path | None = None) -> SendReport | int:
    """Send an approved edition; with a folder, write every reader's message there instead."""
    profile = load_profile(settings.profile)
    lexicon = build_lexicon(profile)
    env = template_environment(settings)
    with open_store(settings.data_dir, settings.database_path) as store:
        builder = EditionBuilder(store, profile, lexicon)
        readers = Readers(store, list(section_choices(settings)))
        if dry_run_folder is not None:
            return dry_run(builder, readers, settings, edition_id, OutboxMailer(dry_run_folder), now, env)
        return send_edition(builder, readers, settings, edition_id, lambda: make_mailer(settings), now, env)
