"""The Paper: one PubMed record (or, later, a preprint) as the rest of cartdigest sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

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
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> "Paper":
        data = dict(data)
        data["abstract"] = [AbstractSection(**section) for section in data.get("abstract", [])]
        data["mesh"] = [MeshHeading(heading["descriptor"], heading.get("ui"), heading["major"],
                                    tuple(tuple(q) for q in heading.get("qualifiers", ())))
                        for heading in data.get("mesh", [])]
        data["corrections"] = [Correction(**c) for c in data.get("corrections", [])]
        return cls(**data)

    def content_hash(self) -> str:
        """Fingerprint of everything PubMed can revise, so a re-fetch can tell `updated` apart."""
        canonical = json.dumps(self.to_json_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]
