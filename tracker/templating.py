"""The one Jinja2 environment factory: user templates before built-ins, autoescape for HTML,
StrictUndefined so a missing context value fails loudly, and every filter registered here."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined
from jinja2 import select_autoescape
from markupsafe import Markup

from tracker.markup import clean_inline, to_text


def long_date(value: str | None) -> str:
    """'2026-11-09' -> '9 November 2026'; '2026-11' -> 'November 2026'; anything else as is."""
    if not value:
        return ""
    parts = value.split("-")
    try:
        if len(parts) == 3:
            day = date.fromisoformat(value)
            return f"{day.day} {day:%B %Y}"
        if len(parts) == 2:
            return f"{date(int(parts[0]), int(parts[1]), 1):%B %Y}"
    except ValueError:
        pass
    return value


def inline_markup(value: str | None) -> Markup:
    """Allow-listed inline markup (<i>, <sup> ...) as HTML; cleaned again here, so a value that
    skipped the parser's cleaning still cannot inject anything."""
    return Markup(clean_inline(value or ""))


def environment(user_templates: Path | None = None) -> Environment:
    loaders = []
    if user_templates is not None and user_templates.is_dir():
        loaders.append(FileSystemLoader(str(user_templates)))
    loaders.append(PackageLoader("cartdigest_templates", "."))
    env = Environment(loader=ChoiceLoader(loaders),
                      autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["long_date"] = long_date
    env.filters["inline_markup"] = inline_markup
    env.filters["plain"] = to_text
    return env
