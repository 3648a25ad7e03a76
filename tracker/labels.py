"""The classify stage and the labels it keeps: machine labels, editor corrections, gold export.

Machine labels are tagged with the classifier version and the record's content hash; a plain
`classify` re-labels only what is missing or stale. Editor corrections are stored apart and win.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from tracker.classify import Classifier, Document
from tracker.errors import CartdigestError
from tracker.lexicon import RELEVANCE_LEVELS, STUDY_TYPES, THERAPY_KEYS
from tracker.store import Store

log = logging.getLogger(__name__)


@dataclass
class ClassifyReport:
    classified: int = 0
    skipped: int = 0
    core: int = 0
    adjacent: int = 0
    off_topic: int = 0


def classify_store(store: Store, classifier: Classifier, now: datetime,
                   relabel_all: bool = False) -> ClassifyReport:
    """Label every paper the current classifier version has not labelled (or all of them)."""
    report = ClassifyReport()
    current = {row["paper_id"]: (row["version"], row["content_hash"]) for row in store.execute(
        "SELECT paper_id, version, content_hash FROM classifications")}
    hashes = {row["id"]: row["content_hash"] for row in store.execute("SELECT id, content_hash FROM papers")}
    stamp = now.isoformat(timespec="seconds")
    with store.transaction():
        for stored in store.papers():
            if not relabel_all and current.get(stored.id) == (classifier.version, hashes[stored.id]):
                report.skipped += 1
                continue
            result = classifier.classify(Document.from_paper(stored.paper))
            store.connection.execute(
                "INSERT INTO classifications (paper_id, version, content_hash, relevance, therapies, "
                "study_type, evidence, classified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (paper_id) DO UPDATE SET version = excluded.version, "
                "content_hash = excluded.content_hash, relevance = excluded.relevance, "
                "therapies = excluded.therapies, study_type = excluded.study_type, "
                "evidence = excluded.evidence, classified_at = excluded.classified_at",
                (stored.id, classifier.version, hashes[stored.id], result.relevance,
                 json.dumps(result.therapies), result.study_type, json.dumps(result.evidence), stamp))
            report.classified += 1
            setattr(report, result.relevance, getattr(report, result.relevance) + 1)
    return report


def effective_labels(store: Store, paper_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
    """Labels per paper id: the machine's, with every editor correction laid over it.
    `paper_ids` limits the work to those papers (a week's, say) instead of the whole store."""
    labels: dict[int, dict[str, Any]] = {}
    selected = "" if paper_ids is None else \
        f" WHERE paper_id IN ({','.join(str(int(paper_id)) for paper_id in paper_ids) or 'NULL'})"
    for row in store.execute(f"SELECT * FROM classifications{selected}"):
        labels[row["paper_id"]] = {"relevance": row["relevance"],
                                   "therapies": json.loads(row["therapies"]),
                                   "study_type": row["study_type"],
                                   "evidence": json.loads(row["evidence"]),
                                   "version": row["version"], "corrected": []}
    for row in store.execute(f"SELECT * FROM corrections{selected} ORDER BY created_at"):
        label = labels.setdefault(row["paper_id"], {"relevance": None, "therapies": [],
                                                    "study_type": None, "evidence": {},
                                                    "version": None, "corrected": []})
        label[row["field"]] = json.loads(row["value"])
        label["corrected"].append(row["field"])
        label["evidence"] = {**label["evidence"], f"editor:{row['field']}": [
            {"term": "editor correction", "field": "editor", "snippet": row["note"] or "",
             "editor": row["editor"], "at": row["created_at"]}]}
    return labels


def correct_label(store: Store, pmid: str, field: str, value: Any, editor: str, now: datetime,
                  note: str | None = None) -> None:
    """Record an editor's correction of one label; the latest correction of a field wins."""
    valid = {"relevance": RELEVANCE_LEVELS, "study_type": STUDY_TYPES}
    if field == "therapies":
        unknown = set(value) - set(THERAPY_KEYS)
        if unknown:
            raise CartdigestError(f"unknown therapy {', '.join(sorted(unknown))}; "
                                  f"use {', '.join(THERAPY_KEYS)}")
    elif field in valid:
        if value not in valid[field]:
            raise CartdigestError(f"{field} must be one of {', '.join(valid[field])}")
    else:
        raise CartdigestError(f"cannot correct '{field}'; choose relevance, therapies or study_type")
    stored = store.paper_by_pmid(pmid)
    if stored is None:
        raise CartdigestError(f"no paper with PMID {pmid} in the store")
    with store.transaction():
        store.connection.execute(
            "INSERT INTO corrections (paper_id, field, value, editor, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (paper_id, field) DO UPDATE SET "
            "value = excluded.value, editor = excluded.editor, note = excluded.note, "
            "created_at = excluded.created_at",
            (stored.id, field, json.dumps(value), editor, note, now.isoformat(timespec="seconds")))


def export_gold(store: Store, path: Path) -> int:
    """Write every editor-corrected paper as a gold record (../shared/gold/LABELS.md format)."""
    labels = effective_labels(store)
    records = []
    for stored in store.papers():
        label = labels.get(stored.id)
        if not label or not label["corrected"]:
            continue
        paper = stored.paper
        year = int(paper.pub_date[:4]) if paper.pub_date and paper.pub_date[:4].isdigit() else None
        editors = sorted({entry["editor"] for key, entries in label["evidence"].items()
                          if key.startswith("editor:") for entry in entries})
        records.append({
            "pmid": paper.pmid, "title": paper.title_text, "journal": paper.journal_abbrev or paper.journal,
            "year": year, "publication_types": paper.publication_types,
            "mesh": [heading.descriptor for heading in paper.mesh], "keywords": paper.keywords,
            "abstract": paper.abstract_text,
            "source": f"https://pubmed.ncbi.nlm.nih.gov/{paper.pmid}/" if paper.pmid else paper.doi,
            "relevance": label["relevance"], "therapies": label["therapies"],
            "study_type": label["study_type"],
            "notes": f"editor correction of {', '.join(sorted(set(label['corrected'])))} by "
                     f"{', '.join(editors)}; the abstract is PubMed's own, not a summary",
        })
    try:
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as error:
        raise CartdigestError(f"cannot write {path}: {error.strerror}") from None
    return len(records)
