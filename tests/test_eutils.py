"""The E-utilities client against the local stand-in: politeness, retries and clear errors.

Every assertion about politeness is read from the stand-in's own request log.
"""

from __future__ import annotations

import socket
import threading
from datetime import date

import pytest

from conftest import fixture_bytes, make_client
from tracker.errors import EutilsError, EutilsQueryError
from tracker.eutils import EutilsClient
from tracker.http import retry_after_seconds
from tracker.ratelimit import RateLimiter
from tracker.standin import add_article

WEEK = (date(2026, 11, 9), date(2026, 11, 15))


def max_in_any_second(times: list[float]) -> int:
    return max(sum(1 for other in times if start <= other < start + 1.0) for start in times)


def test_tool_and_email_on_every_request(standin, client):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    standin.canned["epost.fcgi"] = fixture_bytes("epost1.xml")
    client.esearch("biopython", *WEEK)
    client.post_ids(["1", "2"])
    assert len(standin.log) == 2
    for request in standin.log:
        assert request.params["tool"] == ["cartdigest-tests"]
        assert request.params["email"] == ["tests@example.org"]
        assert "api_key" not in request.params


def test_api_key_sent_when_configured(standin):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    keyed = make_client(standin.url, api_key="secret-key-123")
    keyed.esearch("x", *WEEK)
    assert standin.log[0].params["api_key"] == ["secret-key-123"]


def test_never_over_three_per_second_and_keeps_the_connection(standin):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    standin.strict_rate = 3
    polite = EutilsClient(standin.url, tool="t", email="e@example.org", max_retries=0)
    for _ in range(8):
        polite.esearch("x", *WEEK)
    assert [request.status for request in standin.log] == [200] * 8
    assert max_in_any_second([request.time for request in standin.log]) <= 3
    assert len({request.client_port for request in standin.log}) == 1   # keep-alive


def test_one_limit_across_threads_and_clients(standin):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    standin.strict_rate = 3
    limiter = RateLimiter(3)
    clients = [EutilsClient(standin.url, tool="t", email="e@example.org", max_retries=0,
                            limiter=limiter) for _ in range(3)]
    threads = [threading.Thread(target=lambda c=c: [c.esearch("x", *WEEK) for _ in range(3)])
               for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [request.status for request in standin.log] == [200] * 9
    assert max_in_any_second([request.time for request in standin.log]) <= 3


def test_the_default_limiter_is_shared_by_the_whole_process(standin):
    first = EutilsClient(standin.url, tool="t", email="e@example.org")
    second = EutilsClient(standin.url, tool="t", email="e@example.org")
    assert first.limiter is second.limiter
    keyed = EutilsClient(standin.url, tool="t", email="e@example.org", api_key="k")
    assert keyed.limiter is not first.limiter and keyed.limiter.capacity == 10


def test_429_waits_as_long_as_retry_after_says(standin, client):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    standin.fail("429", retry_after="2")
    result = client.esearch("x", *WEEK)
    assert result.count == 63
    first, second = standin.log
    assert first.status == 429 and second.status == 200
    assert second.time - first.time >= 1.95


@pytest.mark.parametrize("kind", ["500", "502", "503", "cut", "html", "drop"])
def test_transient_failures_are_retried(standin, client, kind):
    add_article(standin, "101", "A paper", date(2026, 11, 10))
    webenv, key = client.post_ids(["101"])
    standin.fail(kind, utility="efetch.fcgi")
    papers = client.fetch_batch(webenv, key, 0, 10)
    assert [paper.pmid for paper in papers] == ["101"]
    assert [request.utility for request in standin.log].count("efetch.fcgi") == 2


def test_slow_answer_times_out_and_is_retried(standin):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    standin.fail("slow", delay=1.5)
    impatient = make_client(standin.url, timeout=0.5)
    assert impatient.esearch("x", *WEEK).count == 63
    assert impatient.requests == 2


def test_in_band_error_is_not_retried_and_says_what_ncbi_said(standin, client):
    standin.fail("error", utility="esearch.fcgi", message="Invalid query syntax near ((")
    with pytest.raises(EutilsQueryError, match="Invalid query syntax"):
        client.esearch("((", *WEEK)
    assert len(standin.log) == 1


def test_gives_up_after_the_retries_with_one_clear_message(standin, client):
    standin.fail("503", times=10)
    with pytest.raises(EutilsError, match=r"esearch.fcgi failed 4 times \(last: HTTP 503\)"):
        client.esearch("x", *WEEK)
    assert len(standin.log) == 4


def test_wrong_url_is_not_retried(standin, client):
    with pytest.raises(EutilsError, match="HTTP 404 .*check CARTDIGEST_EUTILS_URL"):
        client.call("nosuch.fcgi", {}, lambda body: body)
    assert len(standin.log) == 1


def test_unreachable_server_is_reported():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = make_client(f"http://127.0.0.1:{port}/entrez/eutils/", max_retries=1)
    with pytest.raises(EutilsError, match="connection failed.*reachable"):
        unreachable.esearch("x", *WEEK)


def test_long_id_lists_and_long_queries_go_by_post(standin, client):
    standin.canned["esearch.fcgi"] = fixture_bytes("esearch1.xml")
    client.post_ids([str(pmid) for pmid in range(1, 400)])
    client.esearch("x", *WEEK)
    client.esearch(" OR ".join(f"term{n}[tiab]" for n in range(300)), *WEEK)
    assert [request.method for request in standin.log] == ["POST", "GET", "POST"]
    assert len(standin.log[0].params["id"][0].split(",")) == 399


def test_cited_by_asks_once_with_one_linkset_per_seed(standin, client):
    for pmid in ("201", "202", "203"):
        add_article(standin, pmid, f"Citing paper {pmid}", date(2026, 11, 10))
    add_article(standin, "204", "Cites, but entered PubMed before the window", date(2026, 10, 1))
    standin.cited_by = {"38283399": ["201", "202", "204"], "31279751": ["203"]}
    cited = client.cited_by(["38283399", "31279751"], *WEEK)
    assert cited == {"38283399": ["202", "201"], "31279751": ["203"]}
    [request] = standin.log
    assert request.params["id"] == ["38283399", "31279751"]
    assert request.params["linkname"] == ["pubmed_pubmed_citedin"]


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Fri, 20 Nov 2026 10:00:05 GMT", now=1_795_168_800.0) == 5.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_api_key_never_appears_in_errors_or_logs(standin, caplog):
    import logging

    keyed = make_client(standin.url, api_key="SECRET-KEY-123", max_retries=1)
    standin.fail("503", times=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(EutilsError) as raised:
        keyed.esearch("x", *WEEK)
    assert "SECRET-KEY-123" not in str(raised.value) and "SECRET-KEY-123" not in caplog.text
    broken = make_client("http://127.0.0.1:9/bad url/", api_key="SECRET-KEY-123", max_retries=0)
    with pytest.raises(EutilsError) as raised:
        broken.esearch("x", *WEEK)
    assert "SECRET-KEY-123" not in str(raised.value)
