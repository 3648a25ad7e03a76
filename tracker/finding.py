"""One key finding per paper, taken from its abstract, never written by us.

The rule, in order:
  1. a structured abstract's conclusions: the section whose NLM category is CONCLUSIONS, or
     whose label starts with CONCLUSION, INTERPRETATION or IMPLICATION;
  2. otherwise the last sentence that states a finding (it concludes, suggests, shows,
     indicates, supports, demonstrates, or says what something can, may or should do);
  3. otherwise the abstract's last sentence.
No abstract: no finding (the item says so). Long findings are cut at a word, with an ellipsis.
"""

from __future__ import annotations

import re

from tracker.markup import to_text
from tracker.paper import Paper

MAX_LENGTH = 420
CONCLUSION_LABELS = ("CONCLUSION", "INTERPRETATION", "IMPLICATION", "SUMMARY")
# A sentence ends at . ! or ? followed by a space and a capital, digit or opening markup;
# "et al." and "vs." are not ends.
SENTENCE_END = re.compile(r"(?<!\bet al)(?<!\bvs)(?<!\bi\.e)(?<!\be\.g)(?<=[.!?])\s+(?=[A-Z0-9<(\"])")
FINDING_CUE = re.compile(
    r"\b(?:conclud\w*|suggest\w*|show(?:s|ed|n)?|indicat\w*|support\w*|demonstrat\w*|reveal\w*|"
    r"can|may|might|should|offers?|remains?|highlight\w*|point\w* to|argu\w*)\b", re.IGNORECASE)


def sentences(markup: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(markup) if part.strip()]


def shorten(markup: str, limit: int = MAX_LENGTH) -> str:
    """Cut long markup at a word boundary outside tags; the cut is marked with an ellipsis."""
    if len(to_text(markup)) <= limit:
        return markup
    text = to_text(markup)
    cut = text.rfind(" ", 0, limit)
    # Plain text from here: a cut inside markup could leave a tag open.
    return text[: cut if cut > 0 else limit].rstrip(",;: ") + "…"


def key_finding(paper: Paper) -> tuple[str | None, str]:
    """(finding markup or None, the rule that chose it)."""
    if not paper.abstract:
        return None, "no abstract"
    for section in paper.abstract:
        category = (section.category or "").upper()
        label = (section.label or "").upper()
        if category == "CONCLUSIONS" or label.startswith(CONCLUSION_LABELS):
            return shorten(section.text), "conclusions"
    body = " ".join(section.text for section in paper.abstract)
    parts = sentences(body)
    if not parts:
        return None, "no abstract"
    for sentence in reversed(parts[1:] or parts):
        if FINDING_CUE.search(to_text(sentence)):
            return shorten(sentence), "last sentence stating a finding"
    return shorten(parts[-1]), "last sentence"
