"""Pure parsing of E-utilities responses: bytes in, plain Python objects and Papers out.

No HTTP here (see tracker.eutils). Every body goes through `Bio.Entrez.read`, one batch at a
time: `Bio.Entrez.parse` cannot stream a PubmedArticleSet (it is a dict, not a list).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from Bio import Entrez
from Bio.Entrez.Parser import CorruptedXMLError, NotXMLError, ValidationError

from tracker.errors import EutilsQueryError, ParseError, RetryableBodyError
from tracker.markup import clean_inline
from tracker.paper import AbstractSection, Correction, MeshHeading, Paper

log = logging.getLogger(__name__)

MONTHS = {name: number for number, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
# CommentsCorrections kinds worth keeping with a paper ("Cites" is the reference list).
KEPT_CORRECTIONS = {"ErratumIn", "ErratumFor", "RetractionIn", "RetractionOf",
                    "ExpressionOfConcernIn", "ExpressionOfConcernFor", "UpdateIn", "UpdateOf",
                    "CommentOn", "CommentIn", "RepublishedIn", "RepublishedFrom"}


@dataclass(frozen=True)
class SearchResult:
    count: int
    ids: list[str]
    webenv: str | None = None
    query_key: str | None = None
    query_translation: str | None = None
    warnings: list[str] = field(default_factory=list)


def read_xml(body: bytes, escape: bool = False) -> Any:
    """`Bio.Entrez.read` with its failures turned into our error types."""
    try:
        return Entrez.read(io.BytesIO(body), escape=escape)
    except (CorruptedXMLError, NotXMLError) as error:
        snippet = body[:80].decode("utf-8", "replace").replace("\n", " ")
        raise RetryableBodyError(f"not a complete XML answer ({error.__class__.__name__}): "
                                 f"{snippet!r}") from None
    except RuntimeError as error:
        # An <ERROR> element inside a 200 answer: NCBI refused the request itself.
        raise EutilsQueryError(f"NCBI refused the request: {error}") from None
    except (ValidationError, ValueError) as error:
        raise ParseError(f"unexpected E-utilities XML: {error}") from None


def parse_esearch(body: bytes) -> SearchResult:
    result = read_xml(body)
    warnings = []
    for group in ("ErrorList", "WarningList"):
        for kind, values in (result.get(group) or {}).items():
            for value in values if isinstance(values, list) else [values]:
                warnings.append(f"{kind}: {value}")
    return SearchResult(
        count=int(result.get("Count", 0)),
        ids=[str(pmid) for pmid in result.get("IdList", [])],
        webenv=str(result["WebEnv"]) if result.get("WebEnv") else None,
        query_key=str(result["QueryKey"]) if result.get("QueryKey") else None,
        query_translation=str(result.get("QueryTranslation") or "") or None,
        warnings=warnings,
    )


def parse_epost(body: bytes) -> tuple[str, str]:
    """Return (WebEnv, QueryKey) of the posted id list."""
    result = read_xml(body)
    try:
        return str(result["WebEnv"]), str(result["QueryKey"])
    except KeyError:
        raise ParseError("EPost answer has no WebEnv/QueryKey") from None


def parse_elink(body: bytes, linkname: str) -> dict[str, list[str]]:
    """Map each source id to the ids linked by `linkname` (one LinkSet per source id)."""
    linked: dict[str, list[str]] = {}
    for linkset in read_xml(body):
        sources = [str(pmid) for pmid in linkset.get("IdList", [])]
        targets = []
        for linkset_db in linkset.get("LinkSetDb", []):
            if linkset_db.get("LinkName") == linkname:
                targets.extend(str(link["Id"]) for link in linkset_db.get("Link", []))
        for source in sources:
            linked.setdefault(source, []).extend(targets)
    return linked


def parse_efetch(body: bytes) -> list[Paper]:
    """Parse a PubmedArticleSet. A record of an unexpected shape is logged and skipped."""
    result = read_xml(body, escape=True)
    if not isinstance(result, dict):
        raise ParseError("EFetch answer is not a PubmedArticleSet")
    papers = []
    for record, reader in [(record, _article) for record in result.get("PubmedArticle", [])] + \
                          [(record, _book_article) for record in result.get("PubmedBookArticle", [])]:
        try:
            papers.append(reader(record))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            log.warning("skipped a PubMed record of unexpected shape: %s: %s",
                        error.__class__.__name__, error)
    return papers


def _article(record: dict) -> Paper:
    citation = record["MedlineCitation"]
    article = citation["Article"]
    pubmed_data = record.get("PubmedData", {})
    journal = article.get("Journal", {})
    ids = _article_ids(pubmed_data.get("ArticleIdList", []))
    doi = ids.get("doi") or _elocation_doi(article.get("ELocationID", []))
    return Paper(
        pmid=str(citation["PMID"]),
        title=clean_inline(str(article.get("ArticleTitle", "") or article.get("VernacularTitle", ""))),
        doi=doi,
        pmcid=ids.get("pmc"),
        abstract=_abstract(article.get("Abstract")),
        authors=_authors(article.get("AuthorList", [])),
        journal=_text_or_none(journal.get("Title")),
        journal_abbrev=_text_or_none(journal.get("ISOAbbreviation"))
        or _text_or_none(citation.get("MedlineJournalInfo", {}).get("MedlineTA")),
        pub_date=_pub_date(journal.get("JournalIssue", {}).get("PubDate", {}),
                           article.get("ArticleDate", [])),
        edat=_history_date(pubmed_data.get("History", [])),
        publication_types=[str(kind) for kind in article.get("PublicationTypeList", [])],
        mesh=_mesh(citation.get("MeshHeadingList", [])),
        keywords=[clean_inline(str(word)) for group in citation.get("KeywordList", []) for word in group],
        chemicals=[str(chemical["NameOfSubstance"]) for chemical in citation.get("ChemicalList", [])],
        languages=[str(language) for language in article.get("Language", [])],
        corrections=_corrections(citation.get("CommentsCorrectionsList", [])),
    )


def _book_article(record: dict) -> Paper:
    document = record["BookDocument"]
    book = document.get("Book", {})
    book_data = record.get("PubmedBookData", {})
    ids = _article_ids(book_data.get("ArticleIdList", []))
    title = document.get("ArticleTitle") or book.get("BookTitle") or ""
    return Paper(
        pmid=str(document["PMID"]),
        title=clean_inline(str(title)),
        doi=ids.get("doi"),
        pmcid=ids.get("pmc"),
        abstract=_abstract(document.get("Abstract")),
        authors=_authors(_first_author_list(document.get("AuthorList", []))
                         or _first_author_list(book.get("AuthorList", []))),
        journal=_text_or_none(book.get("BookTitle")),
        journal_abbrev=None,
        pub_date=_pub_date(book.get("PubDate", {}), []),
        edat=_history_date(book_data.get("History", [])),
        publication_types=[str(kind) for kind in document.get("PublicationType", [])],
        keywords=[clean_inline(str(word)) for group in document.get("KeywordList", []) for word in group],
        languages=[str(language) for language in document.get("Language", [])],
        is_book=True,
    )


def _first_author_list(value: Any) -> list:
    # Book records nest author lists one level deeper (a list of AuthorList elements).
    if value and isinstance(value, list) and isinstance(value[0], list):
        return value[0]
    return value or []


def _text_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _article_ids(id_list: Iterable) -> dict[str, str]:
    ids = {}
    for article_id in id_list:
        kind = getattr(article_id, "attributes", {}).get("IdType")
        if kind and kind not in ids and str(article_id).strip():
            ids[kind] = str(article_id).strip()
    return ids


def _elocation_doi(locations: Iterable) -> str | None:
    for location in locations:
        if getattr(location, "attributes", {}).get("EIdType") == "doi":
            return str(location).strip()
    return None


def _abstract(abstract: Any) -> list[AbstractSection]:
    if not abstract:
        return []
    sections = []
    for part in abstract.get("AbstractText", []):
        attributes = getattr(part, "attributes", {})
        text = clean_inline(str(part))
        if text:
            sections.append(AbstractSection(attributes.get("Label"), attributes.get("NlmCategory"), text))
    return sections


def _authors(author_list: Iterable) -> list[str]:
    names = []
    for author in author_list:
        if author.get("CollectiveName"):
            names.append(str(author["CollectiveName"]).strip())
        elif author.get("LastName"):
            initials = str(author.get("Initials") or "").strip()
            names.append(f"{author['LastName']} {initials}".strip())
    return names


def _pub_date(pub_date: dict, article_dates: Iterable) -> str | None:
    year = pub_date.get("Year")
    if year:
        parts = [str(year)]
        month = _month_number(pub_date.get("Month"))
        if month:
            parts.append(f"{month:02d}")
            if pub_date.get("Day"):
                parts.append(f"{int(pub_date['Day']):02d}")
        return "-".join(parts)
    if pub_date.get("MedlineDate"):
        return str(pub_date["MedlineDate"])
    for article_date in article_dates:
        if article_date.get("Year"):
            return _ymd(article_date)
    return None


def _month_number(month: Any) -> int | None:
    if not month:
        return None
    text = str(month).strip().lower()
    if text.isdigit():
        return int(text)
    return MONTHS.get(text[:3])


def _ymd(date: dict) -> str:
    return f"{int(date['Year']):04d}-{int(date.get('Month', 1)):02d}-{int(date.get('Day', 1)):02d}"


def _history_date(history: Iterable) -> str | None:
    """The Entrez date is the History date with PubStatus 'entrez' ('pubmed' as a fallback)."""
    by_status = {getattr(date, "attributes", {}).get("PubStatus"): date for date in history}
    for status in ("entrez", "pubmed"):
        if status in by_status:
            return _ymd(by_status[status])
    return None


def _mesh(headings: Iterable) -> list[MeshHeading]:
    parsed = []
    for heading in headings:
        descriptor = heading["DescriptorName"]
        attributes = getattr(descriptor, "attributes", {})
        qualifiers = tuple((str(q), getattr(q, "attributes", {}).get("MajorTopicYN") == "Y")
                           for q in heading.get("QualifierName", []))
        major = attributes.get("MajorTopicYN") == "Y" or any(flag for _, flag in qualifiers)
        parsed.append(MeshHeading(str(descriptor), attributes.get("UI"), major, qualifiers))
    return parsed


def _corrections(entries: Iterable) -> list[Correction]:
    kept = []
    for entry in entries:
        kind = getattr(entry, "attributes", {}).get("RefType")
        if kind in KEPT_CORRECTIONS:
            pmid = entry.get("PMID")
            kept.append(Correction(kind, str(pmid) if pmid else None,
                                   _text_or_none(entry.get("RefSource"))))
    return kept
