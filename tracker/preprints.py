"""Published versions of preprints, from bioRxiv's and medRxiv's own record.

A preprint feed item often says nothing of the journal article it became, and a journal may
retitle it, so neither the DOI nor the title links the two. The servers' details API
(`/details/{server}/{doi}`) gives each preprint's `published` DOI once the journal version is
out. A stored preprint is asked about at most once every `recheck_days`, and at most `limit`
of them per run, newest first, through the same polite transport as E-utilities; the answer
is stored (papers.published_doi) and `feeds.link_works` then joins the preprint to its PubMed
record by that DOI. The API being down is reported, never fatal: the next run asks again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlparse

from tracker.errors import CartdigestError, RetryableBodyError
from tracker.http import ApiClient
from tracker.store import Store

log = logging.getLogger(__name__)

# bioRxiv and medRxiv share the DOI prefix; which server holds a preprint is told by its URL.
PREPRINT_DOI_PREFIX = "10.1101/"
SERVERS = {"biorxiv.org": "biorxiv", "medrxiv.org": "medrxiv"}
# The API publishes no limit; one request a second is gentle.
BIORXIV_RATE = 1.0


class PreprintError(CartdigestError):
    """The preprint servers' API could not be reached or answered nonsense every time."""


def server_for(url: str | None, doi: str | None) -> str | None:
    """'biorxiv' or 'medrxiv' for a preprint of theirs, else None."""
    if not doi or not doi.lower().startswith(PREPRINT_DOI_PREFIX) or not url:
        return None
    host = (urlparse(url).hostname or "").lower()
    return next((server for domain, server in SERVERS.items() if host == domain or host.endswith("." + domain)),
                None)


def parse_details(body: bytes) -> str | None:
    """The journal DOI a preprint was published as, from a details answer ("NA": not yet)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise RetryableBodyError("the details answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("collection", []), list):
        raise RetryableBodyError("the details answer has no collection")
    published = None
    for version in document.get("collection", []):   # one entry per preprint version
        value = str(version.get("published") or "").strip() if isinstance(version, dict) else ""
        if value and value.upper() != "NA":
            published = value
    return published


class PreprintClient(ApiClient):
    name, rate, error, setting = "biorxiv", BIORXIV_RATE, PreprintError, "CARTDIGEST_BIORXIV_URL"

    def published_doi(self, server: str, doi: str) -> str | None:
        # A preprint the server does not know answers with an empty collection, not a 404.
        return self.http.request(f"details/{server}/{doi}", {}, parse_details)


@dataclass
class PreprintReport:
    asked: int = 0
    published: list[tuple[str, str]] = field(default_factory=list)   # (preprint DOI, journal DOI)
    error: str | None = None


def find_published_versions(store: Store, client: PreprintClient, now: datetime, *,
                            recheck_days: int = 7, limit: int = 100) -> PreprintReport:
    """Ask the servers about the stored preprints not linked to a journal version yet."""
    report = PreprintReport()
    due = (now - timedelta(days=recheck_days)).isoformat(timespec="seconds")
    rows = store.execute(
        "SELECT papers.id, papers.doi, papers.url FROM papers "
        "LEFT JOIN preprint_checks ON preprint_checks.doi = lower(papers.doi) "
        "WHERE papers.pmid IS NULL AND papers.merged_into IS NULL AND papers.published_doi IS NULL "
        "AND lower(papers.doi) LIKE ? AND (preprint_checks.checked_at IS NULL OR preprint_checks.checked_at < ?) "
        "ORDER BY papers.first_seen DESC, papers.id DESC",
        (PREPRINT_DOI_PREFIX + "%", due)).fetchall()
    for row in rows:
        server = server_for(row["url"], row["doi"])
        if server is None:
            continue
        if report.asked >= limit:
            break   # the rest wait for the next run
        report.asked += 1
        try:
            published = client.published_doi(server, row["doi"])
        except PreprintError as error:
            # Down or broken for one is down for all: stop, and ask again next run.
            report.error = str(error)
            log.warning("preprint versions: %s", error)
            break
        with store.transaction():
            store.connection.execute(
                "INSERT INTO preprint_checks (doi, server, checked_at, published_doi) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (doi) DO UPDATE SET checked_at = excluded.checked_at, "
                "published_doi = excluded.published_doi",
                (row["doi"].lower(), server, now.isoformat(timespec="seconds"), published))
            if published:
                store.connection.execute("UPDATE papers SET published_doi = ? WHERE id = ?", (published, row["id"]))
        if published:
            report.published.append((row["doi"], published))
    return report
