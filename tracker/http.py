"""Polite HTTP for the APIs cartdigest reads (NCBI E-utilities, ClinicalTrials.gov).

One shared transport: a keep-alive session, a process-wide rate limiter, a timeout on every
request, and retries with exponential back-off and jitter on 429 (honouring Retry-After), 5xx,
timeouts, dropped connections and bodies the parser finds cut off or not what was asked for.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Callable, Mapping, TypeVar

import requests

from tracker import __version__
from tracker.errors import CartdigestError, RetryableBodyError
from tracker.ratelimit import RateLimiter, shared_limiter

log = logging.getLogger(__name__)


class RedactApiKeys(logging.Filter):
    """urllib3 logs request URLs at DEBUG, query string and api_key included: mask the key
    before any handler sees the record, so `--debug` never prints a secret."""

    KEY = re.compile(r"(api_key=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = self.KEY.sub(r"\1***", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactApiKeys())

T = TypeVar("T")
RETRY_STATUSES = {429, 500, 502, 503, 504}


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


class PoliteClient:
    """Calls one API politely; `requests` counts every HTTP attempt made."""

    def __init__(self, base_url: str, *, limiter: RateLimiter, error: type[CartdigestError],
                 setting: str, timeout: float = 30.0, max_retries: int = 6, backoff: Backoff | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep,
                 user_agent: str = "cartdigest") -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.limiter = limiter
        self.error = error
        self.setting = setting          # the setting to check when the URL is wrong
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    def request(self, path: str, params: Mapping[str, Any], parse: Callable[[bytes], T], *,
                post: bool = False,
                on_client_error: Callable[[requests.Response], None] | None = None) -> T:
        """GET (or POST) base_url + path and parse the body, retrying what is worth retrying.

        `parse` raises RetryableBodyError for a cut-off or wrong-format body. A 4xx other than
        429 is not retried: `on_client_error` may raise a more precise error first.
        """
        url = self.base_url + path
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            self.requests += 1
            wait = self.backoff.delay(attempt)
            try:
                if post:
                    response = self.session.post(url, data=params, timeout=self.timeout)
                else:
                    response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.Timeout:
                last_problem = f"no answer within {self.timeout:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                last_problem = f"connection failed ({error.__class__.__name__})"
            except requests.RequestException as error:
                # The exception's text can hold the full URL with its query, api_key included:
                # name only its kind, so no secret reaches a log or a terminal.
                raise self.error(f"cannot call {url} ({error.__class__.__name__}); check {self.setting}") from None
            else:
                if response.status_code in RETRY_STATUSES:
                    last_problem = f"HTTP {response.status_code}"
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        # Never sooner than the server asked; a little jitter so that
                        # threads told the same pause do not all return at once.
                        wait = retry_after + random.uniform(0, 0.25)
                elif response.status_code >= 400:
                    if on_client_error is not None:
                        on_client_error(response)
                    hint = f" (check {self.setting})" if response.status_code == 404 else ""
                    raise self.error(f"{path}: HTTP {response.status_code} from {self.base_url}{hint}")
                else:
                    try:
                        return parse(response.content)
                    except RetryableBodyError as error:
                        last_problem = str(error)
            if attempt == self.max_retries:
                break
            log.info("%s: %s; retry %d of %d in %.1f s", path, last_problem, attempt + 1, self.max_retries, wait)
            self.sleep(wait)
        raise self.error(f"{path} failed {self.max_retries + 1} times (last: {last_problem}); "
                         f"is {self.base_url} reachable? Try again later")


class ApiClient:
    """A client of one web API at one polite rate (ClinicalTrials.gov, the preprint servers):
    subclasses name the API and add its calls on `self.http`."""

    name = "api"                 # the limiter's key: one rate per API, shared by all its clients
    rate = 1.0                   # requests per second
    error: type[CartdigestError] = CartdigestError
    setting = ""                 # the setting to check when the URL is wrong

    def __init__(self, base_url: str, *, timeout: float = 30.0, max_retries: int = 6,
                 backoff: Backoff | None = None, limiter: RateLimiter | None = None) -> None:
        self.http = PoliteClient(base_url, limiter=limiter or shared_limiter(self.name, self.rate),
                                 error=self.error, setting=self.setting, timeout=timeout,
                                 max_retries=max_retries, backoff=backoff, user_agent=f"cartdigest/{__version__}")

    @property
    def requests(self) -> int:
        return self.http.requests

    def close(self) -> None:
        self.http.close()
