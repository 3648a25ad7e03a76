"""The E-utilities client: the only code in cartdigest that does HTTP to NCBI.

Why not `Bio.Entrez.esearch/efetch`: they hard-code NCBI's URL, have no timeout, retry 429 and
5xx at once without honouring Retry-After, close the connection after every request and
rate-limit with an unlocked global. So the transport is ours (a keep-alive requests.Session,
a shared limiter, back-off with jitter); parsing stays with `Bio.Entrez.read` (tracker.pubmed_xml).
NCBI's usage policy: https://www.ncbi.nlm.nih.gov/books/NBK25497/ ("Usage Guidelines").
"""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Callable, Iterable, Sequence, TypeVar
from urllib.parse import urlencode, urlparse

import requests

from tracker import __version__
from tracker.errors import EutilsError, EutilsQueryError, ParseError
from tracker.http import Backoff, PoliteClient
from tracker.paper import Paper
from tracker.pubmed_xml import (SearchResult, parse_efetch, parse_elink, parse_epost, parse_esearch,
                                read_xml)
from tracker.ratelimit import RateLimiter, shared_limiter

log = logging.getLogger(__name__)

T = TypeVar("T")
CITEDIN = "pubmed_pubmed_citedin"
# NCBI: "ESearch can only retrieve the first 9,999 records matching the query".
ESEARCH_LIMIT = 9999
# Long GET URLs are refused by proxies on the way; NCBI accepts POST for every E-utility.
MAX_GET_URL = 2000


def ncbi_date(day: date) -> str:
    return day.strftime("%Y/%m/%d")


def _in_band_error(response: requests.Response) -> None:
    # NCBI sends some refusals (e.g. retstart past 9,998) as 400 with an <ERROR> body.
    try:
        read_xml(response.content)
    except EutilsQueryError:
        raise
    except ParseError:
        pass  # not an E-utilities body at all: PoliteClient reports the HTTP status


class EutilsClient:
    """Polite E-utilities calls: tool/email/api_key on every request, shared rate limit,
    keep-alive, timeouts and retries (tracker.http). `requests` counts every HTTP attempt."""

    def __init__(self, base_url: str, *, tool: str, email: str | None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 6, backoff: Backoff | None = None,
                 limiter: RateLimiter | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.identity = {"tool": tool}
        if email:
            self.identity["email"] = email
        if api_key:
            self.identity["api_key"] = api_key
        rate = 10.0 if api_key else 3.0
        host = urlparse(base_url).netloc
        self.http = PoliteClient(
            base_url, limiter=limiter or shared_limiter(f"eutils:{host}:{api_key or ''}", rate),
            error=EutilsError, setting="CARTDIGEST_EUTILS_URL", timeout=timeout,
            max_retries=max_retries, backoff=backoff, session=session, sleep=sleep,
            user_agent=f"cartdigest/{__version__} ({email or 'no contact'})")

    @property
    def base_url(self) -> str:
        return self.http.base_url

    @property
    def limiter(self) -> RateLimiter:
        return self.http.limiter

    @property
    def requests(self) -> int:
        return self.http.requests

    def close(self) -> None:
        self.http.close()

    def call(self, utility: str, params: dict[str, str | int], parse: Callable[[bytes], T],
             *, force_post: bool = False) -> T:
        """Call one E-utility (tool, email and api_key added) and parse its body."""
        payload = {**params, **self.identity}
        post = force_post or len(self.base_url + utility) + 1 + len(urlencode(payload, doseq=True)) > MAX_GET_URL
        return self.http.request(utility, payload, parse, post=post, on_client_error=_in_band_error)

    # -- the E-utilities cartdigest uses -------------------------------------------------------

    def esearch(self, term: str, since: date, until: date, *, retmax: int = ESEARCH_LIMIT,
                webenv: str | None = None) -> SearchResult:
        """PubMed search restricted to an Entrez-date window (both ends inclusive)."""
        params: dict[str, str | int] = {
            "db": "pubmed", "term": term, "datetype": "edat", "mindate": ncbi_date(since),
            "maxdate": ncbi_date(until), "retmax": retmax, "usehistory": "y"}
        if webenv:
            params["WebEnv"] = webenv
        return self.call("esearch.fcgi", params, parse_esearch)

    def cited_by(self, pmids: Sequence[str], since: date, until: date) -> dict[str, list[str]]:
        """Papers citing each PMID (PubMed Central's citations), Entrez-dated in the window.

        Repeated id= parameters give one LinkSet per seed; comma-joined ids would merge them.
        """
        params: list[tuple[str, str]] = [("dbfrom", "pubmed"), ("db", "pubmed"),
                                         ("linkname", CITEDIN), ("datetype", "edat"),
                                         ("mindate", ncbi_date(since)), ("maxdate", ncbi_date(until))]
        params += [("id", pmid) for pmid in pmids]
        return self._call_pairs("elink.fcgi", params, lambda body: parse_elink(body, CITEDIN))

    def _call_pairs(self, utility: str, pairs: list[tuple[str, str]], parse: Callable[[bytes], T]) -> T:
        # requests encodes a dict of lists as repeated keys; group the pairs that way.
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        return self.call(utility, grouped, parse)  # type: ignore[arg-type]

    def post_ids(self, pmids: Iterable[str], webenv: str | None = None) -> tuple[str, str]:
        """EPost a list of PMIDs (always by POST); returns (WebEnv, query_key)."""
        params: dict[str, str | int] = {"db": "pubmed", "id": ",".join(pmids)}
        if webenv:
            params["WebEnv"] = webenv
        return self.call("epost.fcgi", params, parse_epost, force_post=True)

    def fetch_batch(self, webenv: str, query_key: str, retstart: int, retmax: int) -> list[Paper]:
        """EFetch one batch of full PubMed records from the history server."""
        params: dict[str, str | int] = {"db": "pubmed", "WebEnv": webenv, "query_key": query_key,
                                        "retstart": retstart, "retmax": retmax, "retmode": "xml"}
        return self.call("efetch.fcgi", params, parse_efetch)
