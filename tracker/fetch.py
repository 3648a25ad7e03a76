"""The fetch stage: find the window's papers in PubMed and store them, losing nothing.

Order of work for one window:
  1. ESearch each profile query by Entrez date, splitting any window over 9,999 hits;
  2. ELink pubmed_pubmed_citedin for every seed PMID in one request;
  3. EPost the union of PMIDs (or reuse the search's own history when one search found them all),
     then EFetch it in batches; each batch is stored in one transaction;
  4. only when every batch is stored does the watermark move to the window's end.
A killed fetch leaves its batches stored and the watermark where it was; the next run reads the
window again and the upserts make that harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator

from tracker.errors import CartdigestError, EutilsError
from tracker.eutils import ESEARCH_LIMIT, EutilsClient
from tracker.pubmed_xml import SearchResult
from tracker.feeds import FeedReader, collect_feeds, configured_feeds, link_works
from tracker.classify import Classifier
from tracker.ctgov import CtgovClient
from tracker.lexicon import build_lexicon
from tracker.preprints import PreprintClient, find_published_versions
from tracker.trials import refresh_trials, trial_query
from tracker.profile import Profile
from tracker.settings import Settings
from tracker.store import Store, open_store

log = logging.getLogger(__name__)

# EPost takes long id lists by POST; keep each well under what one request should carry.
EPOST_CHUNK = 5000


@dataclass
class SearchLog:
    """One line of the search log shown to editors: what was asked and how many it found."""
    source: str
    term: str
    since: str
    until: str
    count: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class FetchReport:
    since: date
    until: date
    requests: int = 0
    found: int = 0
    new: int = 0
    updated: int = 0
    searches: list[SearchLog] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # PMIDs found but not returned by EFetch
    run_id: int | None = None
    feeds: list[Any] = field(default_factory=list)     # FeedOutcome per feed
    trials: Any = None                                  # TrialsReport, when trials are tracked
    trials_error: str | None = None
    preprints: Any = None                               # PreprintReport, when preprints were asked about

    @property
    def source_errors(self) -> list[str]:
        """What failed beside PubMed (feeds, the trials and preprint registries): reported, not fatal."""
        problems = [outcome.status for outcome in self.feeds if not outcome.ok]
        if self.preprints is not None and self.preprints.error:
            problems.append(f"preprint versions: {self.preprints.error}")
        return problems + ([f"trials: {self.trials_error}"] if self.trials_error else [])

    def as_json(self) -> dict:
        """The `fetch --json` document of CONTRACT.md."""
        document: dict[str, Any] = {"window": [self.since.isoformat(), self.until.isoformat()],
                                    "requests": self.requests, "found": self.found, "new": self.new,
                                    "updated": self.updated}
        if self.feeds:
            document["feeds"] = [{"name": o.feed.name, "status": o.status, "items": o.items, "new": o.new}
                                 for o in self.feeds]
        if self.preprints is not None:
            document["preprints"] = {"asked": self.preprints.asked, "error": self.preprints.error,
                                     "published": [{"doi": doi, "published_doi": published}
                                                   for doi, published in self.preprints.published]}
        if self.trials is not None or self.trials_error:
            document["trials"] = {"error": self.trials_error} if self.trials_error else {
                "found": self.trials.found, "new": self.trials.new, "updated": self.trials.updated,
                "status_changed": self.trials.status_changed}
        return document


def resolve_window(store: Store, today: date, since: date | None, until: date | None,
                   overlap_days: int, first_run_days: int, cover_from: date | None = None) -> tuple[date, date]:
    """Without --since: continue from the watermark, re-reading `overlap_days` for records
    PubMed indexes late; on a first run, the last `first_run_days` days. `cover_from` pulls the
    start back so the window covers, say, the whole week about to be drafted."""
    until = until or today
    if since is None:
        watermark = store.watermark()
        since = (watermark - timedelta(days=overlap_days)) if watermark else \
            today - timedelta(days=first_run_days - 1)
        if cover_from is not None:
            since = min(since, cover_from)
    if since > until:
        raise CartdigestError(f"--since {since} is after --until {until}: swap them")
    return since, until


def search_window(client: EutilsClient, term: str, since: date, until: date, source: str,
                  searches: list[SearchLog], limit: int = ESEARCH_LIMIT,
                  webenv: str | None = None, histories: list[SearchResult] | None = None) -> list[str]:
    """All PMIDs of `term` in the window; halves the window while it holds more than `limit`.
    Each search that answered is appended to `histories` (its WebEnv and query key)."""
    result = client.esearch(term, since, until, retmax=limit, webenv=webenv)
    if result.count > limit:
        if since == until:
            raise EutilsError(f"query '{source}' matches {result.count} records on {since} alone; "
                              f"PubMed returns at most {limit} per search: narrow the query")
        middle = since + (until - since) // 2
        log.info("%s: %d hits in %s..%s, splitting the window", source, result.count, since, until)
        return (search_window(client, term, since, middle, source, searches, limit, webenv, histories)
                + search_window(client, term, middle + timedelta(days=1), until, source, searches,
                                limit, webenv, histories))
    searches.append(SearchLog(source, term, since.isoformat(), until.isoformat(), result.count,
                              result.warnings))
    if histories is not None:
        histories.append(result)
    return result.ids


def _history_sets(client: EutilsClient, pmids: list[str],
                  histories: list[SearchResult]) -> Iterator[tuple[list[str], str, str]]:
    """(PMIDs, WebEnv, query key) sets to EFetch. When one search found every PMID (a typical
    backfill), its own history-server result is used; otherwise the union is EPosted. One
    request fewer also leaves a slot free under NCBI's 3 requests a second."""
    whole = [result for result in histories if result.webenv and result.query_key
             and len(result.ids) == len(pmids) and set(result.ids) == set(pmids)]
    if whole:
        yield whole[0].ids, whole[0].webenv, whole[0].query_key   # type: ignore[misc]
        return
    for start in range(0, len(pmids), EPOST_CHUNK):
        chunk = pmids[start:start + EPOST_CHUNK]
        webenv, query_key = client.post_ids(chunk)
        yield chunk, webenv, query_key


def fetch_window(store: Store, client: EutilsClient, profile: Profile, since: date, until: date,
                 now: datetime, *, batch_size: int = 500, search_limit: int = ESEARCH_LIMIT,
                 progress: Callable[[int, int], None] | None = None) -> FetchReport:
    """Fetch and store every paper of the window; move the watermark when all are stored."""
    report = FetchReport(since, until)
    requests_before = client.requests
    report.run_id = store.start_fetch_run(since, until, now)
    try:
        reasons: dict[str, set[str]] = {}
        histories: list[SearchResult] = []
        for query in profile.queries:
            source = f"query:{query.name}"
            for pmid in search_window(client, query.term, since, until, source, report.searches,
                                      search_limit, histories=histories):
                reasons.setdefault(pmid, set()).add(source)
        if profile.seeds:
            cited = client.cited_by([seed.pmid for seed in profile.seeds], since, until)
            for seed in profile.seeds:
                citing = cited.get(seed.pmid, [])
                report.searches.append(SearchLog(f"cites:{seed.pmid}", seed.label, since.isoformat(),
                                                 until.isoformat(), len(citing)))
                for pmid in citing:
                    reasons.setdefault(pmid, set()).add(f"cites:{seed.pmid}")

        pmids = sorted(reasons, key=int)
        report.found = len(pmids)
        returned: set[str] = set()
        done = 0
        for chunk, webenv, query_key in _history_sets(client, pmids, histories):
            for retstart in range(0, len(chunk), batch_size):
                papers = client.fetch_batch(webenv, query_key, retstart, batch_size)
                with store.transaction():
                    for paper in papers:
                        if paper.pmid not in reasons:
                            continue   # never store what no query or seed asked for
                        outcome = store.upsert_paper(paper, sorted(reasons[paper.pmid]), now,
                                                     report.run_id)
                        returned.add(paper.pmid)
                        if outcome == "new":
                            report.new += 1
                        elif outcome == "updated":
                            report.updated += 1
                done += min(batch_size, len(chunk) - retstart)
                if progress:
                    progress(done, len(pmids))
        report.missing = [pmid for pmid in pmids if pmid not in returned]
        if report.missing:
            # Deleted or merged records; PubMed answers for them with nothing. Logged, not fatal.
            log.warning("EFetch returned no record for %d PMIDs: %s", len(report.missing),
                        ", ".join(report.missing[:10]))
        report.requests = client.requests - requests_before
        watermark = store.watermark()
        new_watermark = None
        # Only a window that joins the stored stretch moves the watermark: a backfill of some
        # later week must not make the next run skip the days in between.
        if watermark is None:
            new_watermark = until
        elif since <= watermark + timedelta(days=1):
            new_watermark = max(until, watermark)
        store.finish_fetch_run(
            report.run_id, "complete", now, searches=[vars(entry) for entry in report.searches],
            requests=report.requests, found=report.found, new=report.new, updated=report.updated,
            watermark=new_watermark)
        return report
    except CartdigestError as error:
        report.requests = client.requests - requests_before
        store.finish_fetch_run(report.run_id, "failed", now,
                               searches=[vars(entry) for entry in report.searches],
                               requests=report.requests, found=report.found, new=report.new,
                               updated=report.updated, error=str(error))
        raise


def client_from_settings(settings: Settings) -> EutilsClient:
    """An E-utilities client configured from settings (refuses real NCBI without an email)."""
    return EutilsClient(settings.eutils_url, tool=settings.tool, email=settings.require_ncbi_email(),
                        api_key=settings.ncbi_api_key, timeout=settings.request_timeout,
                        max_retries=settings.max_retries)


def run_fetch(settings: Settings, profile: Profile, now: datetime, since: date | None = None,
              until: date | None = None, progress: Callable[[int, int], None] | None = None,
              cover_from: date | None = None) -> FetchReport:
    """`cartdigest fetch`: resolve the window from the watermark and fetch it."""
    client = client_from_settings(settings)
    try:
        with open_store(settings.data_dir, settings.database_path) as store:
            window = resolve_window(store, now.date(), since, until, settings.overlap_days,
                                    settings.first_run_days, cover_from)
            report = fetch_window(store, client, profile, *window, now, batch_size=settings.batch_size,
                                  progress=progress)
            pubmed_searches = len(report.searches)
            feeds = configured_feeds(profile.feeds, settings.feeds)
            if feeds:
                # A dead feed is reported by name and skipped; PubMed's window is already stored.
                report.feeds = collect_feeds(store, client, feeds, now, FeedReader(store, settings.request_timeout))
                for outcome in report.feeds:
                    report.searches.append(SearchLog(f"feed:{outcome.feed.name}", outcome.feed.url, "", "",
                                                     outcome.items, [] if outcome.ok else [outcome.status]))
                if settings.preprint_versions:
                    refresh_preprint_versions(settings, store, report, now)
            else:
                link_works(store)   # a PubMed record may be the published version of a stored preprint
            query = trial_query(profile)
            if settings.trials and query is not None:
                refresh_tracked_trials(settings, store, profile, query, report, now)
            if report.run_id is not None and len(report.searches) > pubmed_searches:
                store.add_fetch_run_searches(report.run_id, [vars(entry) for entry in report.searches[pubmed_searches:]])
            return report
    finally:
        client.close()


def refresh_preprint_versions(settings: Settings, store: Store, report: FetchReport, now: datetime) -> None:
    """Ask bioRxiv/medRxiv which stored preprints are now journal articles, and link those
    PubMed holds; the API being down is reported, not fatal."""
    client = PreprintClient(settings.biorxiv_url, timeout=settings.request_timeout, max_retries=settings.max_retries)
    try:
        report.preprints = found = find_published_versions(store, client, now)
    finally:
        client.close()
    if found.published:
        link_works(store)
    report.searches.append(SearchLog("preprints:biorxiv-medrxiv", "published versions", "", "",
                                     len(found.published), [found.error] if found.error else []))


def refresh_tracked_trials(settings: Settings, store: Store, profile: Profile, query: Any,
                           report: FetchReport, now: datetime) -> None:
    """Refresh trials from ClinicalTrials.gov; a failure is reported, not fatal (PubMed's
    papers are stored already)."""
    client = CtgovClient(settings.ctgov_url, timeout=settings.request_timeout, max_retries=settings.max_retries)
    try:
        report.trials = refresh_trials(store, client, query, Classifier(build_lexicon(profile)), now)
        report.searches.append(SearchLog("trials:clinicaltrials.gov", query.term, "", "", report.trials.found))
    except CartdigestError as error:
        report.trials_error = str(error)
        report.searches.append(SearchLog("trials:clinicaltrials.gov", query.term, "", "", 0, [str(error)]))
        log.warning("trials: %s", error)
    finally:
        client.close()
