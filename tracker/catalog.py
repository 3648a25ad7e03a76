"""Read-side views of the store for `cartdigest papers` and the web pages."""

from __future__ import annotations

from datetime import date
from typing import Any

from tracker.labels import effective_labels
from tracker.lexicon import RELEVANCE_LEVELS
from tracker.store import Store, StoredPaper

__all__ = ["RELEVANCE_LEVELS", "paper_row", "paper_rows"]


def paper_row(stored: StoredPaper, label: dict[str, Any] | None) -> dict[str, Any]:
    """One `papers --json` line (CONTRACT.md): pmid, doi, title, journal, edat, relevance,
    therapies, study_type, evidence, found_by; plus title_html and pmcid."""
    paper = stored.paper
    return {
        "pmid": paper.pmid, "doi": paper.doi, "title": paper.title_text, "journal": paper.journal,
        "edat": paper.edat,
        "relevance": label["relevance"] if label else None,
        "therapies": label["therapies"] if label else [],
        "study_type": label["study_type"] if label else None,
        "evidence": label["evidence"] if label else {},
        "found_by": stored.found_by,
        "title_html": paper.title, "pmcid": paper.pmcid, "preprint": paper.is_preprint,
        "url": paper.url,
    }


def paper_rows(store: Store, since: date | None, until: date | None,
               relevance: set[str] | None = None) -> list[dict[str, Any]]:
    papers = store.papers(since, until)
    labels = effective_labels(store, [stored.id for stored in papers])
    rows = []
    for stored in papers:
        row = paper_row(stored, labels.get(stored.id))
        if relevance is None or row["relevance"] in relevance:
            rows.append(row)
    return rows
