"""A local stand-in for NCBI E-utilities: a real HTTP server on 127.0.0.1.

It answers esearch, elink (pubmed_pubmed_citedin), epost and efetch from an in-memory set of
PubMed records, with NCBI's exact DOCTYPE lines so `Bio.Entrez.read` accepts its answers. It can
fail on demand (429 with Retry-After, 5xx, cut-off XML, HTML error pages, in-band <ERROR>,
slow answers, dropped connections), can enforce NCBI's rate limit strictly, and logs every
request so tests can check the client's politeness. `cartdigest demo`, the tests and the
benchmarks all use it; it never touches the network beyond loopback.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from tracker.loopback import LoopbackServer, Request

ESEARCH_DOCTYPE = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC '
                   '"-//NLM//DTD esearch 20060628//EN" '
                   '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n')
ELINK_DOCTYPE = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eLinkResult PUBLIC '
                 '"-//NLM//DTD elink 20101123//EN" '
                 '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20101123/elink.dtd">\n')
EPOST_DOCTYPE = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE ePostResult PUBLIC '
                 '"-//NLM//DTD epost 20090526//EN" '
                 '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20090526/epost.dtd">\n')
PUBMED_DOCTYPE = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC '
                  '"-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
                  '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')
ROOTS = {"esearch.fcgi": ("eSearchResult", ESEARCH_DOCTYPE),
         "elink.fcgi": ("eLinkResult", ELINK_DOCTYPE),
         "epost.fcgi": ("ePostResult", EPOST_DOCTYPE),
         "efetch.fcgi": ("PubmedArticleSet", PUBMED_DOCTYPE)}
NCBI_LIMIT = 9999

_ARTICLE = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.DOTALL)
_PMID = re.compile(r"<PMID[^>]*>(\d+)</PMID>")
_ENTREZ_DATE = re.compile(r'<PubMedPubDate PubStatus="(?:entrez|pubmed)">\s*<Year>(\d+)</Year>\s*'
                          r"<Month>(\d+)</Month>\s*<Day>(\d+)</Day>")


@dataclass
class Record:
    pmid: str
    edat: date
    xml: str  # one <PubmedArticle> element


@dataclass
class Fault:
    """One planned failure. kind: 429, 500, 502, 503, cut, html, error, slow, drop."""
    kind: str
    utility: str | None = None   # only for this E-utility ("efetch.fcgi"); None: any
    times: int = 1
    retry_after: str | None = "1"
    delay: float = 0.0           # for "slow"
    message: str = "Search Backend failed: simulated by the stand-in"


@dataclass
class LoggedRequest:
    time: float
    utility: str
    method: str
    params: dict[str, list[str]]
    status: int
    client_port: int


@dataclass
class EutilsStandIn:
    """Start with `with EutilsStandIn(records) as server:`; `server.url` is the base URL."""
    records: dict[str, Record] = field(default_factory=dict)
    search: Callable[[str], Iterable[str]] | None = None   # term -> PMIDs; None: every record
    cited_by: dict[str, list[str]] = field(default_factory=dict)
    strict_rate: float | None = None   # answer 429 when more requests than this arrive in 1 s
    canned: dict[str, bytes] = field(default_factory=dict)  # utility -> body served as-is
    faults: deque[Fault] = field(default_factory=deque)
    log: list[LoggedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._history: dict[str, dict[str, list[str]]] = {}
        self._webenv_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self._server = LoopbackServer(self._serve)

    # -- records ----------------------------------------------------------------------------

    def add_xml(self, body: bytes | str) -> list[str]:
        """Add every PubmedArticle of a PubmedArticleSet document; returns their PMIDs."""
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        added = []
        for match in _ARTICLE.finditer(text):
            article = match.group(0)
            pmid = _PMID.search(article).group(1)
            found = _ENTREZ_DATE.search(article)
            edat = date(*map(int, found.groups())) if found else date(1900, 1, 1)
            self.records[pmid] = Record(pmid, edat, article)
            added.append(pmid)
        return added

    def fail(self, kind: str, utility: str | None = None, times: int = 1, **options: object) -> None:
        self.faults.append(Fault(kind, utility, times, **options))  # type: ignore[arg-type]

    # -- server lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self._server.base}/entrez/eutils/"

    def start(self) -> "EutilsStandIn":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _serve(self, request: Request) -> tuple[int, dict[str, str], bytes] | None:
        parsed = urlparse(request.path)
        params = parse_qs(parsed.query, keep_blank_values=True)
        for key, values in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items():
            params.setdefault(key, []).extend(values)
        utility = parsed.path.rsplit("/", 1)[-1]
        arrived = time.monotonic()
        status, headers, body = self.answer(utility, params)
        self.log.append(LoggedRequest(arrived, utility, request.method, params, status, request.client_port))
        return None if status == -1 else (status, headers, body)   # -1: "drop" the connection

    def __enter__(self) -> "EutilsStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- answering --------------------------------------------------------------------------

    def _take_fault(self, utility: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.utility in (None, utility):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _over_rate(self, now: float) -> bool:
        if self.strict_rate is None:
            return False
        with self._lock:
            while self._arrivals and now - self._arrivals[0] >= 1.0:
                self._arrivals.popleft()
            self._arrivals.append(now)
            return len(self._arrivals) > self.strict_rate

    def answer(self, utility: str, params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        """Compute (status, headers, body) for one request, faults and rate limit included."""
        if self._over_rate(time.monotonic()):
            return _rate_limited("1")
        fault = self._take_fault(utility)
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "429":
                return _rate_limited(fault.retry_after)
            elif fault.kind in ("500", "502", "503"):
                page = (f"<html><head><title>NCBI/eutils202 - WWW Error {fault.kind} Diagnostic"
                        "</title></head><body>Service unavailable</body></html>")
                headers = {"Content-Type": "text/html"}
                if fault.retry_after and fault.kind == "503":
                    headers["Retry-After"] = fault.retry_after
                return int(fault.kind), headers, page.encode()
            elif fault.kind == "html":
                return 200, {"Content-Type": "text/html"}, (
                    b"<html><head><title>Error</title></head><body>Temporarily unavailable"
                    b"</body></html>")
            elif fault.kind == "error":
                root, doctype = ROOTS[utility]
                body = f"{doctype}<{root}><ERROR>{escape(fault.message)}</ERROR></{root}>"
                return 200, {"Content-Type": "text/xml"}, body.encode()
            elif fault.kind == "drop":
                return -1, {}, b""
        status, body = self._route(utility, params)
        if fault is not None and fault.kind == "cut":
            body = body[: max(len(body) // 2, 40)]
        kind = "application/json" if body.startswith(b"{") else "text/xml; charset=UTF-8"
        return status, {"Content-Type": kind}, body

    def _route(self, utility: str, params: dict[str, list[str]]) -> tuple[int, bytes]:
        if utility in self.canned:
            return 200, self.canned[utility]
        handlers = {"esearch.fcgi": self._esearch, "elink.fcgi": self._elink,
                    "epost.fcgi": self._epost, "efetch.fcgi": self._efetch}
        if utility not in handlers:
            return 404, b"<html><body>Not found</body></html>"
        return handlers[utility](params)

    def _in_window(self, pmid: str, params: dict[str, list[str]]) -> bool:
        record = self.records.get(pmid)
        if record is None:
            return False
        low, high = _first(params, "mindate"), _first(params, "maxdate")
        if low and record.edat < _ncbi_day(low):
            return False
        if high and record.edat > _ncbi_day(high):
            return False
        return True

    def _history_key(self, params: dict[str, list[str]], ids: list[str]) -> tuple[str, str]:
        with self._lock:
            webenv = _first(params, "WebEnv") or f"MCID_standin{next(self._webenv_ids):06d}"
            queries = self._history.setdefault(webenv, {})
            query_key = str(len(queries) + 1)
            queries[query_key] = ids
        return webenv, query_key

    def _esearch(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        term = _first(params, "term") or ""
        candidates = self.search(term) if self.search else self.records.keys()
        hits = sorted({pmid for pmid in candidates if self._in_window(pmid, params)},
                      key=int, reverse=True)
        retstart = int(_first(params, "retstart") or 0)
        retmax = min(int(_first(params, "retmax") or 20), NCBI_LIMIT)
        root, doctype = ROOTS["esearch.fcgi"]
        if retstart > NCBI_LIMIT - 1:
            message = ("Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. "
                       "For PubMed, ESearch can only retrieve the first 9,999 records matching "
                       "the query.")
            return 200, f"{doctype}<{root}><ERROR>{escape(message)}</ERROR></{root}>".encode()
        history = ""
        if _first(params, "usehistory") == "y":
            webenv, query_key = self._history_key(params, hits)
            history = f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>"
        shown = hits[retstart:retstart + retmax]
        if _first(params, "retmode") == "json":
            # NCBI's JSON shape, which pymed and easy-entrez ask for.
            result = {"count": str(len(hits)), "retmax": str(len(shown)),
                      "retstart": str(retstart), "idlist": shown}
            return 200, json.dumps({"header": {"type": "esearch", "version": "0.3"},
                                    "esearchresult": result}).encode()
        id_list = "".join(f"<Id>{pmid}</Id>\n" for pmid in shown)
        body = (f"{doctype}<{root}><Count>{len(hits)}</Count><RetMax>{len(shown)}</RetMax>"
                f"<RetStart>{retstart}</RetStart>{history}<IdList>\n{id_list}</IdList>"
                f"<TranslationSet/><QueryTranslation>{escape(term)}</QueryTranslation></{root}>")
        return 200, body.encode()

    def _elink(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        root, doctype = ROOTS["elink.fcgi"]
        linkname = _first(params, "linkname") or "pubmed_pubmed_citedin"
        # Repeated id= gives one LinkSet per id; a comma-joined id= gives one merged LinkSet.
        groups = [value.split(",") for value in params.get("id", [])]
        linksets = []
        for group in groups:
            targets = sorted({citing for seed in group for citing in self.cited_by.get(seed, [])
                              if self._in_window(citing, params)}, key=int, reverse=True)
            ids = "".join(f"<Id>{seed}</Id>" for seed in group)
            links = "".join(f"<Link><Id>{pmid}</Id></Link>" for pmid in targets)
            linkset_db = (f"<LinkSetDb><DbTo>pubmed</DbTo><LinkName>{linkname}</LinkName>{links}"
                          "</LinkSetDb>") if targets else ""
            linksets.append(f"<LinkSet><DbFrom>pubmed</DbFrom><IdList>{ids}</IdList>{linkset_db}"
                            "</LinkSet>")
        return 200, f"{doctype}<{root}>{''.join(linksets)}</{root}>".encode()

    def _epost(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        root, doctype = ROOTS["epost.fcgi"]
        ids = [pmid for value in params.get("id", []) for pmid in value.split(",") if pmid]
        webenv, query_key = self._history_key(params, ids)
        body = f"{doctype}<{root}><QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv></{root}>"
        return 200, body.encode()

    def _efetch(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        root, doctype = ROOTS["efetch.fcgi"]
        if "id" in params:
            ids = [pmid for value in params["id"] for pmid in value.split(",")]
        else:
            webenv, query_key = _first(params, "WebEnv"), _first(params, "query_key")
            ids = self._history.get(webenv or "", {}).get(query_key or "")
            if ids is None:
                message = f"Unable to obtain query #{query_key}"
                return 200, f"{doctype}<eFetchResult><ERROR>{message}</ERROR></eFetchResult>".encode()
        retstart = int(_first(params, "retstart") or 0)
        retmax = int(_first(params, "retmax") or 10000)   # EFetch returns the whole set by default
        articles = "\n".join(self.records[pmid].xml for pmid in ids[retstart:retstart + retmax]
                             if pmid in self.records)
        return 200, f"{doctype}<{root}>\n{articles}\n</{root}>".encode()


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _ncbi_day(text: str) -> date:
    parts = [int(part) for part in re.split(r"[/-]", text)] + [1, 1]
    return date(parts[0], parts[1], parts[2])


def _rate_limited(retry_after: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "X-RateLimit-Limit": "3",
               "X-RateLimit-Remaining": "0"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = json.dumps({"error": "API rate limit exceeded", "api-key": "127.0.0.1",
                       "count": "4", "limit": "3"})
    return 429, headers, body.encode()


# -- writing realistic records -------------------------------------------------------------

def article_xml(pmid: str, title: str, edat: date, *, abstract: str | list[tuple[str, str]] = "",
                authors: Iterable[str] = (), journal: str = "Blood Advances",
                journal_abbrev: str = "Blood Adv", pub_date: date | None = None,
                publication_types: Iterable[str] = ("Journal Article",),
                mesh: Iterable[tuple[str, bool]] = (), keywords: Iterable[str] = (),
                chemicals: Iterable[str] = (), doi: str | None = None, pmcid: str | None = None,
                language: str = "eng", corrections: Iterable[tuple[str, str]] = ()) -> str:
    """One <PubmedArticle> in NCBI's format. `title` and abstract texts are XML fragments
    (inline <i>, <sup> ... allowed); everything else is plain text and escaped here."""
    published = pub_date or edat
    if isinstance(abstract, str):
        abstract_parts = f"<AbstractText>{abstract}</AbstractText>" if abstract else ""
    else:
        abstract_parts = "".join(f'<AbstractText Label="{escape(label)}">{text}</AbstractText>'
                                 for label, text in abstract)
    author_xml = ""
    for name in authors:
        if " " in name and not name.endswith(("Group", "Consortium", "Investigators")):
            last, initials = name.rsplit(" ", 1)
            author_xml += (f'<Author ValidYN="Y"><LastName>{escape(last)}</LastName>'
                           f"<ForeName>{escape(initials)}</ForeName>"
                           f"<Initials>{escape(initials)}</Initials></Author>")
        else:
            author_xml += f'<Author ValidYN="Y"><CollectiveName>{escape(name)}</CollectiveName></Author>'
    types = "".join(f'<PublicationType UI="D000000">{escape(kind)}</PublicationType>'
                    for kind in publication_types)
    mesh_xml = "".join(
        f'<MeshHeading><DescriptorName UI="D000000" MajorTopicYN="{"Y" if major else "N"}">'
        f"{escape(name)}</DescriptorName></MeshHeading>" for name, major in mesh)
    keyword_xml = "".join(f'<Keyword MajorTopicYN="N">{escape(word)}</Keyword>' for word in keywords)
    chemical_xml = "".join(f'<Chemical><RegistryNumber>0</RegistryNumber><NameOfSubstance UI="C000000">'
                           f"{escape(name)}</NameOfSubstance></Chemical>" for name in chemicals)
    correction_xml = "".join(f'<CommentsCorrections RefType="{kind}"><RefSource>{escape(source)}'
                             f"</RefSource></CommentsCorrections>" for kind, source in corrections)
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId>'
    if doi:
        ids += f'<ArticleId IdType="doi">{escape(doi)}</ArticleId>'
    if pmcid:
        ids += f'<ArticleId IdType="pmc">{escape(pmcid)}</ArticleId>'
    stamp = datetime(edat.year, edat.month, edat.day, 6, 0)
    return (
        f'<PubmedArticle><MedlineCitation Status="PubMed-not-MEDLINE" Owner="NLM">'
        f'<PMID Version="1">{pmid}</PMID><Article PubModel="Print-Electronic"><Journal>'
        f'<JournalIssue CitedMedium="Internet"><PubDate><Year>{published.year}</Year>'
        f"<Month>{published.strftime('%b')}</Month><Day>{published.day:02d}</Day></PubDate>"
        f"</JournalIssue><Title>{escape(journal)}</Title>"
        f"<ISOAbbreviation>{escape(journal_abbrev)}</ISOAbbreviation></Journal>"
        f"<ArticleTitle>{title}</ArticleTitle>"
        + (f"<Abstract>{abstract_parts}</Abstract>" if abstract_parts else "")
        + (f'<AuthorList CompleteYN="Y">{author_xml}</AuthorList>' if author_xml else "")
        + f"<Language>{escape(language)}</Language><PublicationTypeList>{types}</PublicationTypeList>"
        + "</Article>"
        + (f"<ChemicalList>{chemical_xml}</ChemicalList>" if chemical_xml else "")
        + (f"<CommentsCorrectionsList>{correction_xml}</CommentsCorrectionsList>" if correction_xml else "")
        + (f"<MeshHeadingList>{mesh_xml}</MeshHeadingList>" if mesh_xml else "")
        + (f'<KeywordList Owner="NOTNLM">{keyword_xml}</KeywordList>' if keyword_xml else "")
        + "</MedlineCitation><PubmedData><History>"
        + "".join(f'<PubMedPubDate PubStatus="{status}"><Year>{stamp.year}</Year>'
                  f"<Month>{stamp.month}</Month><Day>{stamp.day}</Day><Hour>{stamp.hour}</Hour>"
                  f"<Minute>0</Minute></PubMedPubDate>" for status in ("pubmed", "entrez"))
        + f"</History><PublicationStatus>epublish</PublicationStatus><ArticleIdList>{ids}"
        "</ArticleIdList></PubmedData></PubmedArticle>")


def add_article(standin: EutilsStandIn, pmid: str, title: str, edat: date, **fields: object) -> None:
    standin.records[pmid] = Record(pmid, edat, article_xml(pmid, title, edat, **fields))  # type: ignore[arg-type]
