"""The E-utilities client: the only code in cartdigest that does HTTP to NCBI.

Why not `Bio.Entrez.esearch/efetch`: they hard-code NCBI's URL, have no timeout, retry 429 and
5xx at once without honouring Retry-After, close the connection after every request and
rate-limit with an unlocked global. So the transport is ours (a keep-alive requests.Session,
a shared limiter, back-off with jitter); parsing stays with `Bio.Entrez.read` (tracker.pubmed_xml).
NCBI's usage policy: https://www.ncbi.nlm.nih.gov/books/NBK25497/ ("Usage Guidelines").
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import date, timezone
from typing import Callable, Iterable, Sequence, TypeVar
from urllib.parse import urlencode, urlparse

import requests

from tracker import __version__
from tracker.errors import EutilsError, EutilsQueryError, ParseError
from tracker.paper import Paper
from tracker.pubmed_xml import (RetryableBodyError, SearchResult, parse_efetch, parse_elink,
                                parse_epost, parse_esearch, read_xml)
from tracker.ratelimit import RateLimiter, shared_limiter

log = logging.getLogger(__name__)

T = TypeVar("T")
CITEDIN = "pubmed_pubmed_citedin"
# NCBI: "ESearch can only retrieve the first 9,999 records matching the query".
ESEARCH_LIMIT = 9999
# Long GET URLs are refused by proxies on the way; NCBI accepts POST for every E-utility.
MAX_GET_URL = 2000
RETRY_STATUSES = {429, 500, 502, 503, 504}


def ncbi_date(day: date) -> str:
    return day.strftime("%Y/%m/%d")


@dataclass
class Backoff:
    """Exponential back-off with full jitter between `base` and `cap` seconds."""
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** attempt))
        return random.uniform(ceiling / 2, ceiling)


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After as seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class EutilsClient:
    """Polite E-utilities calls: tool/email/api_key on every request, shared rate limit,
    keep-alive, timeouts and retries. `requests` counts every HTTP attempt made."""

    def __init__(self, base_url: str, *, tool: str, email: str | None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 6, backoff: Backoff | None = None,
                 limiter: RateLimiter | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.identity = {"tool": tool}
        if email:
            self.identity["email"] = email
        if api_key:
            self.identity["api_key"] = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        rate = 10.0 if api_key else 3.0
        host = urlparse(self.base_url).netloc
        self.limiter = limiter or shared_limiter(f"eutils:{host}:{api_key or ''}", rate)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"cartdigest/{__version__} ({email or 'no contact'})"
        self.sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    # -- transport -----------------------------------------------------------------------------

    def call(self, utility: str, params: dict[str, str | int], parse: Callable[[bytes], T],
             *, force_post: bool = False) -> T:
        """Call one E-utility and parse its body, retrying what is worth retrying."""
        url = self.base_url + utility
        payload = {**params, **self.identity}
        post = force_post or len(url) + 1 + len(urlencode(payload)) > MAX_GET_URL
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            self.requests += 1
            wait = self.backoff.delay(attempt)
            try:
                if post:
                    response = self.session.post(url, data=payload, timeout=self.timeout)
                else:
                    response = self.session.get(url, params=payload, timeout=self.timeout)
            except requests.Timeout:
                last_problem = f"no answer within {self.timeout:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                last_problem = f"connection failed ({error.__class__.__name__})"
            except requests.RequestException as error:
                raise EutilsError(f"cannot call {url}: {error}; check CARTDIGEST_EUTILS_URL") from None
            else:
                if response.status_code in RETRY_STATUSES:
                    last_problem = f"HTTP {response.status_code}"
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        # Never sooner than the server asked; a little jitter so that
                        # threads told the same pause do not all return at once.
                        wait = retry_after + random.uniform(0, 0.25)
                elif response.status_code >= 400:
                    self._raise_for_client_error(utility, response)
                else:
                    try:
                        return parse(response.content)
                    except RetryableBodyError as error:
                        last_problem = str(error)
            if attempt == self.max_retries:
                break
            log.info("%s: %s; retry %d of %d in %.1f s", utility, last_problem, attempt + 1,
                        self.max_retries, wait)
            self.sleep(wait)
        raise EutilsError(f"{utility} failed {self.max_retries + 1} times (last: {last_problem}); "
                          f"is {self.base_url} reachable? Try again later")

    def _raise_for_client_error(self, utility: str, response: requests.Response) -> None:
        # NCBI sends some refusals (e.g. retstart past 9,998) as 400 with an <ERROR> body.
        try:
            read_xml(response.content)
        except EutilsQueryError:
            raise
        except ParseError:
            pass  # not an E-utilities body at all: report the HTTP status below
        hint = " (check CARTDIGEST_EUTILS_URL)" if response.status_code == 404 else ""
        raise EutilsError(f"{utility}: HTTP {response.status_code} from {self.base_url}{hint}")

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
