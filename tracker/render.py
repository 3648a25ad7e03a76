"""Rendering an edition: the HTML email (CSS inlined), the plain-text email, the web view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import css_inline
from jinja2 import Environment

from tracker.edition import TRIALS_SECTION, EditionView, Section

# keep_at_rules keeps the dark-mode @media block in <style>; nothing remote is ever fetched.
INLINER = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True,
                                load_remote_stylesheets=False)


@dataclass
class EmailContext:
    """The documented context of templates/email.html and templates/email.txt."""
    edition: EditionView
    sections: list[Section]          # the sections this reader gets, in the profile's order
    subject: str
    preheader: str
    base_url: str
    web_url: str
    unsubscribe_url: str
    preferences_url: str
    reader_name: str | None = None
    is_test: bool = False
    chose_sections: bool = False     # the reader picked sections (else: everything)
    show_trials: bool = True         # the trials block (a reader may leave it out)


@dataclass
class RenderedEmail:
    subject: str
    html: str
    text: str


def subject_line(view: EditionView, count: int) -> str:
    if count == 0:
        return f"{view.title}: no new papers, {view.week_label}"
    return f"{view.title}: {count} new paper{'s' if count != 1 else ''}, {view.week_label}"


def preheader(sections: list[Section]) -> str:
    if not sections:
        return "No new papers this week; the search log shows what was searched."
    parts = [f"{len(section.items)} {section.label.lower()}" for section in sections[:3]]
    return "This week: " + "; ".join(parts) + ("; and more" if len(sections) > 3 else "")


def email_context(view: EditionView, base_url: str, *, sections: set[str] | None = None,
                  reader_name: str | None = None, unsubscribe_url: str | None = None,
                  preferences_url: str | None = None, is_test: bool = False) -> EmailContext:
    """The context for one message. `sections` None means all; related reading always comes."""
    chosen = [section for section in view.sections
              if sections is None or section.key in sections]
    count = sum(len(section.items) for section in chosen)
    subject = ("[TEST] " if is_test else "") + subject_line(view, count)
    return EmailContext(
        edition=view, sections=chosen, subject=subject, preheader=preheader(chosen),
        base_url=base_url, web_url=f"{base_url}/archive/{view.week}",
        unsubscribe_url=unsubscribe_url or f"{base_url}/unsubscribe",
        preferences_url=preferences_url or f"{base_url}/preferences",
        reader_name=reader_name, is_test=is_test, chose_sections=sections is not None,
        show_trials=sections is None or TRIALS_SECTION in sections)


def render_email(env: Environment, context: EmailContext) -> RenderedEmail:
    html = env.get_template("email.html").render(c=context)
    text = env.get_template("email.txt").render(c=context)
    return RenderedEmail(context.subject, INLINER.inline(html), text)


def render_web(env: Environment, view: EditionView, base_url: str) -> str:
    """The archive page: the same edition as a web page."""
    return env.get_template("archive_edition.html").render(
        c=email_context(view, base_url), page_title=f"{view.title}, {view.week_label}")


def write_draft_files(folder: Path, view: EditionView, rendered: RenderedEmail) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{view.week}.html"
    text_path = folder / f"{view.week}.txt"
    html_path.write_text(rendered.html, encoding="utf-8")
    text_path.write_text(rendered.text, encoding="utf-8")
    return html_path, text_path
