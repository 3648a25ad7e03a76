"""Published versions of preprints, through a stand-in of the bioRxiv/medRxiv details API served
on 127.0.0.1: a retitled journal article still finds its preprint, each preprint is asked about
once a week, and the API being down loses nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from conftest import NOW
from tracker.feeds import link_works
from tracker.http import Backoff
from tracker.loopback import LoopbackServer, Request
from tracker.paper import Paper
from tracker.preprints import PreprintClient, find_published_versions, parse_details, server_for
from tracker.ratelimit import RateLimiter

PREPRINT_DOI = "10.1101/2026.09.01.26310001"
JOURNAL_DOI = "10.1182/blood.2026031234"


class DetailsServer:
    """/details/{server}/{doi}: the collection of a preprint's versions, as the real API answers."""

    def __init__(self) -> None:
        self.published: dict[str, str] = {}       # "medrxiv/<doi>" -> journal DOI or "NA"
        self.status = 200
        self.paths: list[str] = []
        self.httpd = LoopbackServer(self.answer).start()
        self.url = self.httpd.base + "/"

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        self.paths.append(request.path)
        if self.status != 200:
            return self.status, {}, b"unavailable"
        key = request.path.removeprefix("/details/")
        versions = [{"doi": key.split("/", 1)[1], "version": "1", "published": "NA"}]
        if key in self.published:
            versions.append({"doi": key.split("/", 1)[1], "version": "2", "published": self.published[key]})
        elif not key.startswith(("medrxiv/", "biorxiv/")):
            versions = []
        body = {"messages": [{"status": "ok"}], "collection": versions}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture
def details():
    server = DetailsServer()
    yield server
    server.httpd.stop()


def client_for(server: DetailsServer, max_retries: int = 1) -> PreprintClient:
    return PreprintClient(server.url, timeout=5, max_retries=max_retries, backoff=Backoff(base=0.01, cap=0.02),
                          limiter=RateLimiter(100))


def store_preprint_and_journal_article(store) -> None:
    store.upsert_paper(Paper(None, "Glofitamab after CAR T-cell failure: a preprint", doi=PREPRINT_DOI,
                             authors=["Varga E"], is_preprint=True, edat="2026-09-01",
                             url=f"https://www.medrxiv.org/content/{PREPRINT_DOI}v1"), ["feed:medrxiv"], NOW)
    # The journal retitled it and the first author changed: neither DOI nor title links them.
    store.upsert_paper(Paper("41000001", "Bispecific antibody salvage of lymphoma relapsing after CAR-T",
                             doi=JOURNAL_DOI, authors=["Nagy K"], edat="2026-11-12"), ["query:main"], NOW)


def test_a_retitled_journal_article_finds_its_preprint_through_the_server(store, details):
    store_preprint_and_journal_article(store)
    assert link_works(store) == 0
    details.published[f"medrxiv/{PREPRINT_DOI}"] = JOURNAL_DOI
    client = client_for(details)
    report = find_published_versions(store, client, NOW)
    assert report.asked == 1 and report.published == [(PREPRINT_DOI, JOURNAL_DOI)] and report.error is None
    assert details.paths == [f"/details/medrxiv/{PREPRINT_DOI}"]
    assert link_works(store) == 1
    journal = store.paper_by_pmid("41000001")
    sources = {row[0] for row in store.execute("SELECT source FROM paper_sources WHERE paper_id = ?", (journal.id,))}
    assert sources == {"query:main", "feed:medrxiv"}   # the edition shows one item with both reasons


def test_each_preprint_is_asked_about_once_a_week(store, details):
    store_preprint_and_journal_article(store)
    client = client_for(details)
    assert find_published_versions(store, client, NOW).published == []   # not published yet ("NA")
    assert find_published_versions(store, client, NOW + timedelta(days=3)).asked == 0
    details.published[f"medrxiv/{PREPRINT_DOI}"] = JOURNAL_DOI
    later = find_published_versions(store, client, NOW + timedelta(days=8))
    assert later.published == [(PREPRINT_DOI, JOURNAL_DOI)] and len(details.paths) == 2


def test_the_api_being_down_is_reported_and_loses_nothing(store, details):
    store_preprint_and_journal_article(store)
    details.status = 503
    report = find_published_versions(store, client_for(details, max_retries=1), NOW)
    assert "HTTP 503" in report.error and report.published == []
    assert store.execute("SELECT count(*) FROM preprint_checks").fetchone()[0] == 0   # asked again next run
    details.status = 200
    details.published[f"medrxiv/{PREPRINT_DOI}"] = JOURNAL_DOI
    assert find_published_versions(store, client_for(details), NOW).published == [(PREPRINT_DOI, JOURNAL_DOI)]


def test_only_biorxiv_and_medrxiv_preprints_are_asked_about():
    assert server_for("https://www.biorxiv.org/content/10.1101/x", "10.1101/x") == "biorxiv"
    assert server_for("https://medrxiv.org/content/10.1101/x", "10.1101/X") == "medrxiv"
    assert server_for("https://www.researchsquare.com/article/rs-1", "10.21203/rs.3.rs-1") is None
    assert server_for("https://evil-medrxiv.org/x", "10.1101/x") is None
    assert server_for(None, "10.1101/x") is None


def test_a_details_answer_names_the_latest_published_version():
    assert parse_details(b'{"collection": [{"published": "NA"}, {"published": "10.1/j"}]}') == "10.1/j"
    assert parse_details(b'{"collection": []}') is None
    with pytest.raises(Exception, match="not JSON"):
        parse_details(b"<html>busy</html>")


def test_a_cli_fetch_links_a_feed_preprint_to_its_retitled_journal_article(details, standin, tmp_path,
                                                                           monkeypatch):
    from click.testing import CliRunner
    from test_feeds import FeedServer
    from tracker.cli import cli
    from tracker.standin import add_article

    feeds = FeedServer()
    try:
        feed = feeds.serve("/medrxiv.rdf", "medrxiv.rdf")   # its first item names no journal version
        add_article(standin, "41000201", "Odronextamab salvage of LBCL progressing after CAR T cells",
                    date(2026, 11, 13), doi=JOURNAL_DOI, authors=["Nagy K"])
        details.published["medrxiv/10.1101/2026.11.10.26300001"] = JOURNAL_DOI
        for name, value in {"CARTDIGEST_DATA_DIR": str(tmp_path / "data"), "CARTDIGEST_EUTILS_URL": standin.url,
                            "NCBI_EMAIL": "tests@example.org", "CARTDIGEST_FEEDS": feed.url,
                            "CARTDIGEST_PREPRINT_VERSIONS": "1", "CARTDIGEST_BIORXIV_URL": details.url}.items():
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        result = runner.invoke(cli, ["fetch", "--since", "2026-11-09", "--until", "2026-11-15", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["preprints"] == {
            "asked": 1, "error": None,
            "published": [{"doi": "10.1101/2026.11.10.26300001", "published_doi": JOURNAL_DOI}]}
        rows = [json.loads(line) for line in runner.invoke(cli, ["papers", "--json"]).stdout.splitlines()]
        [journal] = [row for row in rows if row["pmid"] == "41000201"]
        assert "feed:127.0.0.1/medrxiv.rdf" in journal["found_by"]
        assert not any(row["doi"] == "10.1101/2026.11.10.26300001" for row in rows)   # one item, not two
    finally:
        feeds.httpd.stop()
