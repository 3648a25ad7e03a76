"""Edition work as library calls: draft, preview, test-send. The CLI, the web pages and the
weekly job all go through here."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from subscribers.mailer import build_message, mailer_for, normalise_address
from tracker.classify import Classifier
from tracker.edition import EditionBuilder, EditionView
from tracker.labels import classify_store
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.render import RenderedEmail, email_context, render_email, write_draft_files
from tracker.settings import Settings
from tracker.store import open_store
from tracker.templating import environment


@contextmanager
def edition_builder(settings: Settings) -> Iterator[EditionBuilder]:
    profile = load_profile(settings.profile)
    lexicon = build_lexicon(profile)
    with open_store(settings.data_dir, settings.database_path) as store:
        yield EditionBuilder(store, profile, lexicon)


def template_environment(settings: Settings):
    """User templates in <data dir>/templates/ win over the shipped ones."""
    return environment(settings.data_dir / "templates")


@dataclass
class DraftReport:
    edition: int
    week: str
    status: str
    html: Path
    text: Path
    items: list[dict[str, str | None]] = field(default_factory=list)
    empty: bool = False

    def as_json(self) -> dict[str, Any]:
        """The `draft --json` document of CONTRACT.md."""
        return {"edition": self.edition, "week": self.week, "status": self.status,
                "html": str(self.html), "text": str(self.text), "items": self.items}


def preview(builder: EditionBuilder, settings: Settings, edition_id: int,
            is_test: bool = False) -> tuple[EditionView, RenderedEmail]:
    """Exactly what a reader who chose every section gets (links point at the public pages)."""
    view = builder.view(edition_id)
    return view, render_email(template_environment(settings),
                              email_context(view, settings.base_url, is_test=is_test))


def draft_edition(settings: Settings, week: str, now: datetime) -> DraftReport:
    """Classify what is new, build or rebuild the week's draft and write its HTML and text."""
    with edition_builder(settings) as builder:
        classify_store(builder.store, Classifier(builder.lexicon), now)
        edition_id = builder.draft(week, now)
        view, rendered = preview(builder, settings, edition_id)
    html, text = write_draft_files(settings.data_dir / "drafts", view, rendered)
    return DraftReport(edition_id, view.week, view.status, html.resolve(), text.resolve(),
                       [{"pmid": item.pmid, "section": item.section} for item in view.items],
                       view.is_empty)


def test_send(settings: Settings, edition_id: int, address: str, now: datetime) -> str:
    """Send the edition to one address, marked as a test; returns where it went."""
    recipient = normalise_address(address)
    with edition_builder(settings) as builder:
        _, rendered = preview(builder, settings, edition_id, is_test=True)
    message = build_message(sender=settings.from_address, to=recipient, subject=rendered.subject,
                            text=rendered.text, html=rendered.html, now=now,
                            headers={"X-Cartdigest-Test": "yes"})
    mailer = mailer_for(settings.smtp_url, settings.data_dir / "outbox", settings.request_timeout)
    try:
        mailer.send(message)
    finally:
        mailer.close()
    where = getattr(mailer, "last_path", None)
    return str(where) if where else f"{recipient} via the SMTP relay"
