"""Benchmark: a 2,000-record backfill through the local E-utilities stand-in.

Compares, in the same run and on the same records, cartdigest's fetch (search, EPost, EFetch
in batches of 500, parsed into Papers and stored in SQLite) against what a user would pick
instead: pymed (on a lenient server, since it sends ~4 requests/s and crashes on the first
429) and easy-entrez (in its documented batch mode of 100 with its pause between batches).
cartdigest runs against a stand-in enforcing NCBI's strict 3 requests/s.

    python benchmarks/fetch.py [--records 2000]

Needs `pip install pymed easy-entrez` (benchmark-only; not dependencies of cartdigest).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tracker.eutils import EutilsClient
from tracker.fetch import fetch_window
from tracker.profile import Profile, Query
from tracker.ratelimit import RateLimiter
from tracker.standin import EutilsStandIn, article_xml, Record

START = date(2025, 1, 1)


def stock(standin: EutilsStandIn, count: int) -> None:
    for index in range(count):
        pmid = str(38000000 + index)
        edat = START + timedelta(days=index % 300)
        standin.records[pmid] = Record(pmid, edat, article_xml(
            pmid, f"Outcomes after CAR T-cell failure in large B-cell lymphoma, cohort {index}",
            edat, abstract=[("BACKGROUND", "Relapse after CAR-T is common. " * 4),
                            ("RESULTS", "The overall response rate was 41% with glofitamab. " * 3),
                            ("CONCLUSIONS", "Bispecific antibodies are active after CAR-T failure.")],
            authors=["Smith J", "Garcia M", "Chen L", "Okafor C"],
            mesh=[("Lymphoma, Large B-Cell, Diffuse", True), ("Receptors, Chimeric Antigen", False)],
            keywords=["CAR-T", "relapse"], doi=f"10.9999/bench.{index}"))


def run_cartdigest(standin: EutilsStandIn, until: date) -> tuple[float, int, int]:
    client = EutilsClient(standin.url, tool="cartdigest-bench", email="bench@example.org",
                          limiter=RateLimiter(3))
    profile = Profile("bench", "bench", (Query("all", "car-t failure lymphoma"),))
    with tempfile.TemporaryDirectory() as folder:
        from tracker.store import Store
        with Store(Path(folder) / "bench.db") as store:
            started = time.perf_counter()
            report = fetch_window(store, client, profile, START, until,
                                  datetime.now(timezone.utc), batch_size=500)
            elapsed = time.perf_counter() - started
    return elapsed, report.requests, report.new


def run_pymed(standin: EutilsStandIn, count: int) -> tuple[float, int, int]:
    import pymed.api

    pymed.api.BASE_URL = standin.url.split("/entrez/")[0]
    pubmed = pymed.PubMed(tool="pymed-bench", email="bench@example.org")
    before = len(standin.log)
    started = time.perf_counter()
    articles = list(pubmed.query("car-t failure lymphoma", max_results=count))
    return time.perf_counter() - started, len(standin.log) - before, len(articles)


def run_easy_entrez(standin: EutilsStandIn, count: int) -> tuple[float, int, int]:
    from easy_entrez import EntrezAPI

    api = EntrezAPI("easy-entrez-bench", "bench@example.org", server=standin.url)
    before = len(standin.log)
    started = time.perf_counter()
    found = api.search("car-t failure lymphoma", max_results=count)
    ids = found.data["esearchresult"]["idlist"]
    batches = api.in_batches_of(100).fetch(ids, max_results=100)
    fetched = sum(len(batch.data.findall(".//PubmedArticle")) for batch in batches.values())
    return time.perf_counter() - started, len(standin.log) - before, fetched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    arguments = parser.parse_args()
    until = START + timedelta(days=299)

    rows = []
    with EutilsStandIn(strict_rate=3) as strict:
        stock(strict, arguments.records)
        seconds, requests, stored = run_cartdigest(strict, until)
        rejected = sum(1 for entry in strict.log if entry.status == 429)
        rows.append(("cartdigest (strict 3/s)", seconds, requests, stored, rejected))
    with EutilsStandIn() as lenient:
        stock(lenient, arguments.records)
        try:
            seconds, requests, stored = run_pymed(lenient, arguments.records)
            rows.append(("pymed (lenient server)", seconds, requests, stored, 0))
        except ImportError:
            print("pymed is not installed: pip install pymed", file=sys.stderr)
    with EutilsStandIn(strict_rate=3) as strict:
        stock(strict, arguments.records)
        try:
            seconds, requests, stored = run_easy_entrez(strict, arguments.records)
            rejected = sum(1 for entry in strict.log if entry.status == 429)
            rows.append(("easy-entrez (strict 3/s)", seconds, requests, stored, rejected))
        except ImportError:
            print("easy-entrez is not installed: pip install easy-entrez", file=sys.stderr)

    print(f"backfill of {arguments.records} records through the local E-utilities stand-in")
    print(f"{'client':<26} {'seconds':>8} {'requests':>9} {'records':>8} {'429s':>5}")
    for name, seconds, requests, stored, rejected in rows:
        print(f"{name:<26} {seconds:>8.2f} {requests:>9} {stored:>8} {rejected:>5}")
    ours = rows[0][1]
    for name, seconds, *_ in rows[1:]:
        print(f"{name} takes {seconds / ours:.2f}x cartdigest's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
