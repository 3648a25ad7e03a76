"""Feeds: PubMed RSS, preprint servers and journal tables of contents, merged with PubMed.

A PubMed RSS item is recognised by the PMID in its guid or link (never by the link itself,
whose tracking parameters change on every fetch) and fetched through E-utilities as a full
record. Any other item is keyed by its DOI: a preprint or an in-press article that PubMed does
not hold yet. When the same work later appears in PubMed (same DOI, or a near-identical title
with a shared author), the two are linked and editions show the PubMed record once.

Every feed is read with a conditional request (ETag, Last-Modified) and its own timeout; a
broken, dead or malformed feed is reported by name and skipped, and the others still count.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from difflib import SequenceMatcher
from time import struct_time
from typing import Any, Iterable
from urllib.parse import urlparse

import feedparser
import requests

from tracker import __version__
from tracker.errors import CartdigestError
from tracker.eutils import EutilsClient
from tracker.markup import clean_inline, to_text
from tracker.paper import AbstractSection, Paper
from tracker.store import Store

log = logging.getLogger(__name__)

PMID_IN_TEXT = re.compile(r"(?:pubmed\.ncbi\.nlm\.nih\.gov/|ncbi\.nlm\.nih\.gov/pubmed/|\bpubmed:|\bpmid:)\s*(\d{1,9})\b",
                          re.IGNORECASE)
DOI_IN_TEXT = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>?#&]+)", re.IGNORECASE)
PREPRINT_HOSTS = ("biorxiv.org", "medrxiv.org", "arxiv.org", "researchsquare.com", "ssrn.com",
                  "preprints.org", "authorea.com", "europepmc.org/article/PPR")
TITLE_MATCH = 0.92


class FeedError(CartdigestError):
    """A feed that could not be read or parsed."""


@dataclass(frozen=True)
class Feed:
    name: str
    url: str


@dataclass
class FeedItem:
    title: str                 # cleaned inline markup
    link: str | None
    summary: str
    authors: list[str]
    published: date | None
    pmid: str | None
    doi: str | None
    preprint: bool
    published_doi: str | None = None   # the journal version a preprint server points to


@dataclass
class FeedOutcome:
    feed: Feed
    status: str                # 'ok', 'not modified' or the error
    items: int = 0
    new: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "not modified")


def feed_name(url: str) -> str:
    parsed = urlparse(url)
    tail = [part for part in parsed.path.split("/") if part][-1:] or [""]
    return f"{parsed.hostname}{'/' + tail[0] if tail[0] else ''}"


def configured_feeds(profile_feeds: Iterable[Any], extra_urls: Iterable[str]) -> list[Feed]:
    """The profile's feeds (URLs or {name, url} tables) plus CARTDIGEST_FEEDS, without repeats."""
    feeds: dict[str, Feed] = {}
    for entry in profile_feeds:
        feed = Feed(entry["name"], entry["url"]) if isinstance(entry, dict) else Feed(feed_name(entry), entry)
        feeds.setdefault(feed.url, feed)
    for url in extra_urls:
        feeds.setdefault(url, Feed(feed_name(url), url))
    return list(feeds.values())


def _doi(text: str, link: str | None) -> str | None:
    match = DOI_IN_TEXT.search(text)
    if not match:
        return None
    doi = match.group(1).rstrip(".,;)")
    if link and any(host in link for host in ("biorxiv.org", "medrxiv.org")):
        doi = re.sub(r"v\d+$", "", doi)   # bioRxiv links end in a version, DOIs do not
    return doi


def _published(entry: Any) -> date | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if isinstance(value, struct_time):
            return date(value.tm_year, value.tm_mon, value.tm_mday)
    return None


def parse_feed(body: bytes, feed: Feed) -> list[FeedItem]:
    """Feed bytes to items (no network). RSS 2.0, RSS 1.0 (RDF) and Atom all work."""
    parsed = feedparser.parse(body)
    if not parsed.version and not parsed.entries:   # e.g. an HTML maintenance page
        raise FeedError(f"feed '{feed.name}' is not a readable feed (not RSS or Atom)")
    if parsed.bozo and not parsed.entries:
        raise FeedError(f"feed '{feed.name}' is not a readable feed "
                        f"({parsed.get('bozo_exception', 'malformed')})")
    if parsed.bozo:
        log.info("feed '%s' has minor errors (%s); its items were read", feed.name, parsed.get("bozo_exception"))
    items = []
    for entry in parsed.entries:
        link = entry.get("link")
        guid = entry.get("id") or ""
        # feedparser keeps only the last dc:identifier, so look everywhere a PMID or DOI may be.
        identifiers = " ".join(str(value) for value in (guid, link or "", entry.get("dc_identifier", ""),
                                                        entry.get("prism_doi", ""), entry.get("summary", "")))
        pmid_match = PMID_IN_TEXT.search(" ".join(str(v) for v in (guid, link or "", entry.get("dc_identifier", ""))))
        # One dc:creator often holds every author: "Varga, E.; Lindqvist, K."
        names = [author.get("name", "") for author in entry.get("authors", [])] or [entry.get("author", "")]
        authors = [name.strip() for joined in names for name in joined.split(";") if name.strip()]
        title = clean_inline(entry.get("title", ""))
        if not title:
            continue
        # Preprint servers name the published version in dc:relation or a related link.
        related = " ".join([str(entry.get("dc_relation", ""))] + [
            item.get("href", "") for item in entry.get("links", []) if item.get("rel") == "related"])
        items.append(FeedItem(
            title=title, link=link, summary=clean_inline(entry.get("summary", "")), authors=authors,
            published=_published(entry), pmid=pmid_match.group(1) if pmid_match else None,
            doi=_doi(identifiers, link), preprint=bool(link and any(host in link for host in PREPRINT_HOSTS)),
            published_doi=_doi(related, None)))
    return items


class FeedReader:
    """Reads feeds over HTTP with conditional requests; the store keeps each feed's state."""

    def __init__(self, store: Store, timeout: float = 20.0, session: requests.Session | None = None) -> None:
        self.store = store
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"cartdigest/{__version__} (+feed reader)"

    def read(self, feed: Feed, now: datetime) -> tuple[str, list[FeedItem]]:
        """('ok' | 'not modified', items); raises FeedError with the feed's name."""
        state = self.store.execute("SELECT etag, last_modified FROM feed_state WHERE url = ?",
                                   (feed.url,)).fetchone()
        headers = {}
        if state and state["etag"]:
            headers["If-None-Match"] = state["etag"]
        if state and state["last_modified"]:
            headers["If-Modified-Since"] = state["last_modified"]
        try:
            response = self.session.get(feed.url, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise FeedError(f"feed '{feed.name}' did not answer within {self.timeout:g} s") from None
        except requests.RequestException as error:
            raise FeedError(f"feed '{feed.name}' could not be reached ({error.__class__.__name__})") from None
        if response.status_code == 304:
            self._save(feed, now, "not modified", 0, state["etag"] if state else None,
                       state["last_modified"] if state else None)
            return "not modified", []
        if response.status_code != 200:
            raise FeedError(f"feed '{feed.name}' answered HTTP {response.status_code} ({feed.url})")
        items = parse_feed(response.content, feed)
        self._save(feed, now, "ok", len(items), response.headers.get("ETag"), response.headers.get("Last-Modified"))
        return "ok", items

    def _save(self, feed: Feed, now: datetime, status: str, items: int, etag: str | None,
              last_modified: str | None) -> None:
        with self.store.transaction():
            self.store.connection.execute(
                "INSERT INTO feed_state (url, name, etag, last_modified, checked_at, status, items) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET name = excluded.name, "
                "etag = excluded.etag, last_modified = excluded.last_modified, "
                "checked_at = excluded.checked_at, status = excluded.status, items = excluded.items",
                (feed.url, feed.name, etag, last_modified, now.isoformat(timespec="seconds"), status, items))

    def failed(self, feed: Feed, now: datetime, error: str) -> None:
        with self.store.transaction():
            self.store.connection.execute(
                "INSERT INTO feed_state (url, name, checked_at, status) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (url) DO UPDATE SET checked_at = excluded.checked_at, status = excluded.status",
                (feed.url, feed.name, now.isoformat(timespec="seconds"), error))


def item_paper(item: FeedItem, feed: Feed, today: date) -> Paper:
    """A work PubMed does not hold (yet), from its feed item."""
    published = item.published or today
    return Paper(pmid=None, doi=item.doi, title=item.title,
                 abstract=[AbstractSection(None, None, item.summary)] if item.summary else [],
                 authors=item.authors, journal=feed.name, journal_abbrev=None,
                 pub_date=published.isoformat(), edat=published.isoformat(),
                 is_preprint=item.preprint, url=item.link, published_doi=item.published_doi)


def collect_feeds(store: Store, client: EutilsClient, feeds: list[Feed], now: datetime,
                  reader: FeedReader | None = None) -> list[FeedOutcome]:
    """Read every feed; store PubMed items as full records and the rest by DOI; link works."""
    reader = reader or FeedReader(store)
    outcomes = []
    pubmed_sources: dict[str, set[str]] = {}
    for feed in feeds:
        try:
            status, items = reader.read(feed, now)
        except FeedError as error:
            log.warning("%s", error)
            reader.failed(feed, now, str(error))
            outcomes.append(FeedOutcome(feed, str(error)))
            continue
        outcome = FeedOutcome(feed, status, len(items))
        source = f"feed:{feed.name}"
        with store.transaction():
            for item in items:
                if item.pmid:
                    pubmed_sources.setdefault(item.pmid, set()).add(source)
                elif item.doi:
                    if store.upsert_paper(item_paper(item, feed, now.date()), [source], now) == "new":
                        outcome.new += 1
                else:
                    log.info("feed '%s': item without PMID or DOI skipped: %s", feed.name, to_text(item.title)[:80])
        outcomes.append(outcome)
    if pubmed_sources:
        _store_pubmed_items(store, client, pubmed_sources, now)
    link_works(store)
    return outcomes


def _store_pubmed_items(store: Store, client: EutilsClient, sources: dict[str, set[str]], now: datetime) -> None:
    known = {pmid for pmid in sources if store.paper_by_pmid(pmid) is not None}
    with store.transaction():
        for pmid in known:   # already stored: only the new reason is added
            paper_id = store.paper_by_pmid(pmid).id
            for source in sources[pmid]:
                store.connection.execute(
                    "INSERT OR IGNORE INTO paper_sources (paper_id, source, first_seen) VALUES (?, ?, ?)",
                    (paper_id, source, now.isoformat(timespec="seconds")))
    missing = sorted(set(sources) - known, key=int)
    if not missing:
        return
    webenv, query_key = client.post_ids(missing)
    for start in range(0, len(missing), 500):
        papers = client.fetch_batch(webenv, query_key, start, 500)
        with store.transaction():
            for paper in papers:
                if paper.pmid in sources:
                    store.upsert_paper(paper, sorted(sources[paper.pmid]), now)


def normalised_title(title: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", to_text(title).lower()).split())


def _last_names(authors: list[str]) -> set[str]:
    # "Varga E", "Varga, E." and "Varga EJ" all give "varga".
    return {re.split(r"[\s,]+", author.strip())[0].lower() for author in authors if author.strip()}


def link_works(store: Store) -> int:
    """Point each unpublished work at its PubMed record: the same DOI, the published-version DOI
    its preprint server gave, or a near-identical title with a shared author. The work's reasons
    move over, so the edition shows one item."""
    import json

    unpublished = store.execute("SELECT id, doi, published_doi, title, authors FROM papers WHERE "
                                "pmid IS NULL AND merged_into IS NULL").fetchall()
    if not unpublished:
        return 0
    linked = 0
    published = store.execute("SELECT id, doi, title, authors FROM papers WHERE pmid IS NOT NULL").fetchall()
    by_doi = {row["doi"].lower(): row["id"] for row in published if row["doi"]}
    for work in unpublished:
        target = by_doi.get((work["doi"] or "").lower()) or by_doi.get((work["published_doi"] or "").lower())
        if target is None:
            title = normalised_title(work["title"])
            authors = _last_names(json.loads(work["authors"]))
            for candidate in published:
                other = normalised_title(candidate["title"])
                matcher = SequenceMatcher(None, title, other)
                if matcher.real_quick_ratio() < TITLE_MATCH or matcher.ratio() < TITLE_MATCH:
                    continue
                if authors & _last_names(json.loads(candidate["authors"])):
                    target = candidate["id"]
                    break
        if target is not None:
            with store.transaction():
                store.connection.execute("UPDATE papers SET merged_into = ? WHERE id = ?", (target, work["id"]))
                store.connection.execute(
                    "INSERT OR IGNORE INTO paper_sources (paper_id, source, first_seen, fetch_run_id) "
                    "SELECT ?, source, first_seen, fetch_run_id FROM paper_sources WHERE paper_id = ?",
                    (target, work["id"]))
            linked += 1
    return linked
