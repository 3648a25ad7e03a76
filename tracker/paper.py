"""The Paper: one PubMed record (or, later, a preprint) as the rest of cartdigest sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from tracker.markup import to_text


@dataclass(frozen=True)
class AbstractSection:
    label: str | None      # "CONCLUSIONS", or None for an unstructured abstract
    category: str | None   # NLM's normalised category (BACKGROUND ... CONCLUSIONS), when given
    text: str              # cleaned inline markup


@dataclass(frozen=True)
class MeshHeading:
    descriptor: str
    ui: str | None
    major: bool
    qualifiers: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class Correction:
    """A link PubMed keeps between records: ErratumIn, RetractionIn, RetractionOf, CommentOn ..."""
    kind: str
    pmid: str | None
    source: str | None


SCALAR_FIELDS = ("pmid", "title", "doi", "pmcid", "journal", "journal_abbrev", "pub_date", "edat",
                 "is_book", "is_preprint", "url", "published_doi")


@dataclass
class Paper:
    pmid: str | None
    title: str = ""                      # cleaned inline markup (see tracker.markup)
    doi: str | None = None
    pmcid: str | None = None
    abstract: list[AbstractSection] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)   # "Neelapu SS"; collective names as given
    journal: str | None = None
    journal_abbrev: str | None = None
    pub_date: str | None = None          # as precise as PubMed gives: "2024", "2024-03", "2024-03-15"
    edat: str | None = None              # Entrez date, YYYY-MM-DD
    publication_types: list[str] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    chemicals: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    is_book: bool = False
    is_preprint: bool = False            # from a preprint server's feed; no PMID yet
    url: str | None = None               # the feed item's page, for works PubMed lacks
    published_doi: str | None = None     # a preprint's journal version, when its server says

    @property
    def title_text(self) -> str:
        return to_text(self.title)

    @property
    def abstract_text(self) -> str:
        return " ".join(to_text(section.text) for section in self.abstract)

    @property
    def key(self) -> str:
        """How editors and URLs name the paper: its PMID, or doi:<DOI> for works PubMed lacks."""
        return self.pmid or f"doi:{self.doi}"

    @property
    def is_retracted(self) -> bool:
        return "Retracted Publication" in self.publication_types or any(
            correction.kind == "RetractionIn" for correction in self.corrections)

    def to_json_dict(self) -> dict:
        """Every field as JSON-ready data: the same as dataclasses.asdict, at a fraction of its
        cost (asdict deep-copies every value; a backfill calls this for every record)."""
        data = {name: getattr(self, name) for name in SCALAR_FIELDS}
        data.update(
            abstract=[{"label": s.label, "category": s.category, "text": s.text} for s in self.abstract],
            authors=list(self.authors), publication_types=list(self.publication_types),
            mesh=[{"descriptor": h.descriptor, "ui": h.ui, "major": h.major,
                   "qualifiers": [list(q) for q in h.qualifiers]} for h in self.mesh],
            keywords=list(self.keywords), chemicals=list(self.chemicals), languages=list(self.languages),
            corrections=[{"kind": c.kind, "pmid": c.pmid, "source": c.source} for c in self.corrections])
        return data

    @classmethod
    def from_json_dict(cls, data: dict) -> "Paper":
        data = dict(data)
        data["abstract"] = [AbstractSection(**section) for section in data.get("abstract", [])]
        data["mesh"] = [MeshHeading(heading["descriptor"], heading.get("ui"), heading["major"],
                                    tuple(tuple(q) for q in heading.get("qualifiers", ())))
                        for heading in data.get("mesh", [])]
        data["corrections"] = [Correction(**c) for c in data.get("corrections", [])]
        return cls(**data)

    def content_hash(self, record: dict | None = None) -> str:
        """Fingerprint of everything PubMed can revise, so a re-fetch can tell `updated` apart.
        `record`: this paper's to_json_dict(), when the caller has it already."""
        canonical = json.dumps(record or self.to_json_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

