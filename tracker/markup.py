"""Inline markup in titles and abstracts: keep a small allow-list, never pass anything else.

PubMed titles carry <i>, <sup>, <sub>, <b>, <u> (sometimes badly nested) and MathML.
`Bio.Entrez.read(..., escape=True)` keeps those tags and escapes bare `&` and `<`; nh3 (an
html5ever-based allow-list sanitizer) then repairs nesting and drops every other tag.
"""

from __future__ import annotations

import html
import re

import nh3

INLINE_TAGS = frozenset({"i", "b", "u", "sup", "sub", "em", "strong"})
_WHITESPACE = re.compile(r"\s+")
_MATHML = re.compile(r"<(?:mml:)?math\b.*?</(?:mml:)?math>", re.DOTALL | re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")


def _flatten_mathml(markup: str) -> str:
    # html5ever drops foreign (MathML) elements with their content; keep the symbols as text
    # instead, so "V̇O2max" reads "V.O2max" rather than vanishing from the abstract.
    return _MATHML.sub(lambda match: "".join(_ANY_TAG.sub(" ", match.group(0)).split()), markup)


def clean_inline(markup: str) -> str:
    """Return HTML safe to place in a template: only INLINE_TAGS survive, with no attributes."""
    cleaned = nh3.clean(_flatten_mathml(markup or ""), tags=set(INLINE_TAGS), attributes={}, link_rel=None)
    return _WHITESPACE.sub(" ", cleaned).strip()


def to_text(markup: str) -> str:
    """Plain text of a markup fragment: tags dropped, entities decoded, whitespace collapsed."""
    stripped = nh3.clean(_flatten_mathml(markup or ""), tags=set(), attributes={}, link_rel=None)
    return _WHITESPACE.sub(" ", html.unescape(stripped)).strip()
