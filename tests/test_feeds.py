"""Feeds served over HTTP on 127.0.0.1: formats, PubMed items, preprints that reach PubMed,
and feeds that fail in every way a feed can."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest

from conftest import NOW
from tracker.feeds import Feed, FeedReader, collect_feeds, configured_feeds, link_works, parse_feed
from tracker.fetch import fetch_window
from tracker.loopback import LoopbackServer, Request
from tracker.profile import Profile, Query
from tracker.standin import add_article

FEEDS = Path(__file__).parent / "fixtures" / "feeds"


class FeedServer:
    """Serves feed files with ETags (304 on a match), plus a 404, garbage and a slow feed."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.delay: dict[str, float] = {}
        self.httpd = LoopbackServer(self.answer).start()
        self.base = self.httpd.base

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((request.path, request.headers))
        time.sleep(self.delay.get(request.path, 0))
        status, headers, body = self.routes.get(request.path, (404, {}, b"not found"))
        if status == 200 and headers.get("ETag") and request.headers.get("If-None-Match") == headers["ETag"]:
            return 304, {}, b""
        return status, headers, body

    def serve(self, path: str, filename: str, etag: str | None = None, kind: str = "application/rss+xml") -> Feed:
        headers = {"Content-Type": kind, **({"ETag": etag} if etag else {})}
        self.routes[path] = (200, headers, (FEEDS / filename).read_bytes())
        return Feed(path.strip("/"), self.base + path)


@pytest.fixture
def feeds():
    server = FeedServer()
    yield server
    server.httpd.stop()


def test_each_format_gives_items_with_their_keys(feeds):
    pubmed = parse_feed((FEEDS / "pubmed.xml").read_bytes(), Feed("pubmed", "x"))
    assert [(item.pmid, item.doi) for item in pubmed] == [("41000101", "10.1234/feed.41000101"),
                                                          ("41000102", "10.1234/feed.41000102")]
    preprint, atlas = parse_feed((FEEDS / "medrxiv.rdf").read_bytes(), Feed("medrxiv", "x"))
    assert preprint.pmid is None and preprint.doi == "10.1101/2026.11.10.26300001" and preprint.preprint
    assert preprint.published == date(2026, 11, 11) and preprint.authors == ["Varga, E.", "Lindqvist, K."]
    assert atlas.doi == "10.1101/2026.11.12.26300002"            # the link's "v2" is not part of it
    assert atlas.published_doi == "10.9999/nature.2026.777"
    [article] = parse_feed((FEEDS / "journal.atom").read_bytes(), Feed("journal", "x"))
    assert article.doi == "10.9999/jeh.2026.55" and not article.preprint
    assert article.authors == ["Petrov D", "Nakamura Y"] and article.published == date(2026, 11, 12)


def test_feeds_from_the_profile_and_the_environment():
    listed = configured_feeds(["https://a.example.org/feed.xml", {"name": "medRxiv", "url": "https://m.example.org/x"}],
                              ["https://a.example.org/feed.xml", "https://j.example.org/rss"])
    assert [(feed.name, feed.url) for feed in listed] == [
        ("a.example.org/feed.xml", "https://a.example.org/feed.xml"), ("medRxiv", "https://m.example.org/x"),
        ("j.example.org/rss", "https://j.example.org/rss")]


def test_pubmed_items_merge_with_pubmed_records(feeds, standin, client, store):
    add_article(standin, "41000101", "Glofitamab after CAR T-cell failure in large B-cell lymphoma",
                date(2026, 11, 10), doi="10.1234/feed.41000101")
    add_article(standin, "41000102", "Epcoritamab after CAR-T failure: a second cohort", date(2026, 11, 10))
    fetch_window(store, client, Profile("t", "t", (Query("q", "q"),)), date(2026, 11, 9), date(2026, 11, 9), NOW)
    with store.transaction():   # 41000101 is already stored, found by the search
        from tracker.pubmed_xml import parse_efetch
        from tracker.standin import PUBMED_DOCTYPE
        [paper] = parse_efetch(f"{PUBMED_DOCTYPE}<PubmedArticleSet>{standin.records['41000101'].xml}</PubmedArticleSet>".encode())
        store.upsert_paper(paper, ["query:q"], NOW)
    feed = feeds.serve("/pubmed.xml", "pubmed.xml")
    before = len(standin.log)
    [outcome] = collect_feeds(store, client, [feed], NOW)
    assert outcome.ok and outcome.items == 2
    assert store.count_papers() == 2
    assert store.paper_by_pmid("41000101").found_by == ["feed:pubmed.xml", "query:q"]
    assert store.paper_by_pmid("41000102").paper.title == "Epcoritamab after CAR-T failure: a second cohort"
    # only the PMID not yet stored was fetched, through E-utilities
    assert [entry.utility for entry in standin.log[before:]] == ["epost.fcgi", "efetch.fcgi"]
    assert standin.log[before].params["id"] == ["41000102"]


def test_a_preprint_that_later_appears_in_pubmed_is_one_paper(feeds, standin, client, store):
    collect_feeds(store, client, [feeds.serve("/medrxiv.rdf", "medrxiv.rdf"),
                                  feeds.serve("/journal.atom", "journal.atom")], NOW)
    works = {stored.paper.doi: stored for stored in store.papers()}
    assert set(works) == {"10.1101/2026.11.10.26300001", "10.1101/2026.11.12.26300002", "10.9999/jeh.2026.55"}
    preprint = works["10.1101/2026.11.10.26300001"]
    assert preprint.paper.pmid is None and preprint.paper.is_preprint and preprint.found_by == ["feed:medrxiv.rdf"]
    # PubMed indexes the journal version of the preprint (same DOI); the atlas under the journal
    # DOI its preprint server gave; and, with another DOI, the in-press article under a
    # near-identical title with a shared author.
    add_article(standin, "41000201", "Odronextamab for lymphoma relapsing after CAR-T therapy: a multicentre cohort",
                date(2026, 11, 18), doi="10.1101/2026.11.10.26300001", authors=["Varga E"])
    add_article(standin, "41000202", "Allogeneic transplantation after CAR-T failure in mantle-cell lymphoma.",
                date(2026, 11, 18), doi="10.9999/jeh.2026.55-final", authors=["Nakamura Y", "Ito K"])
    add_article(standin, "41000203", "A single-cell atlas of relapse after CD19 CAR-T", date(2026, 11, 18),
                doi="10.9999/nature.2026.777", authors=["Someone Else"])
    fetch_window(store, client, Profile("t", "t", (Query("q", "q"),)), date(2026, 11, 18), date(2026, 11, 18), NOW)
    assert link_works(store) == 3
    shown = store.papers()
    assert sorted(stored.paper.pmid for stored in shown) == ["41000201", "41000202", "41000203"]
    assert store.paper_by_pmid("41000201").found_by == ["feed:medrxiv.rdf", "query:q"]
    assert len(store.papers(include_merged=True)) == 6


def test_a_broken_feed_is_reported_by_name_and_the_others_still_count(feeds, client, store):
    feeds.routes["/garbage"] = (200, {"Content-Type": "text/html"}, b"<html><body>Maintenance {oops</body></html>")
    feeds.delay["/slow.xml"] = 3.0
    feeds.serve("/slow.xml", "pubmed.xml")
    good = feeds.serve("/journal.atom", "journal.atom")
    outcomes = collect_feeds(store, client, [
        Feed("garbage feed", feeds.base + "/garbage"), Feed("dead feed", feeds.base + "/gone.xml"),
        Feed("slow feed", feeds.base + "/slow.xml"), good,
        Feed("unreachable feed", "http://127.0.0.1:9/feed.xml")], NOW, FeedReader(store, timeout=1.0))
    statuses = {outcome.feed.name: outcome.status for outcome in outcomes}
    assert statuses["garbage feed"].startswith("feed 'garbage feed' is not a readable feed")
    assert statuses["dead feed"] == f"feed 'dead feed' answered HTTP 404 ({feeds.base}/gone.xml)"
    assert statuses["slow feed"] == "feed 'slow feed' did not answer within 1 s"
    assert statuses["unreachable feed"].startswith("feed 'unreachable feed' could not be reached")
    assert statuses["journal.atom"] == "ok" and store.count_papers() == 1
    row = store.execute("SELECT status FROM feed_state WHERE url = ?", (feeds.base + "/gone.xml",)).fetchone()
    assert "HTTP 404" in row["status"]


def test_an_unchanged_feed_costs_one_small_request(feeds, client, store):
    feed = feeds.serve("/journal.atom", "journal.atom", etag='"v1"')
    assert collect_feeds(store, client, [feed], NOW)[0].status == "ok"
    [second] = collect_feeds(store, client, [feed], NOW)
    assert second.status == "not modified" and second.items == 0
    assert feeds.requests[-1][1].get("If-None-Match") == '"v1"'
    assert store.count_papers() == 1


def test_feeds_in_a_cli_fetch_and_papers_json(feeds, standin, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from tracker.cli import cli

    feed = feeds.serve("/medrxiv.rdf", "medrxiv.rdf")
    for name, value in {"CARTDIGEST_DATA_DIR": str(tmp_path / "data"), "CARTDIGEST_EUTILS_URL": standin.url,
                        "NCBI_EMAIL": "tests@example.org",
                        "CARTDIGEST_FEEDS": f"{feed.url} {feeds.base}/missing.xml"}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    result = runner.invoke(cli, ["fetch", "--since", "2026-11-09", "--until", "2026-11-15", "--json"])
    assert result.exit_code == 0, result.output
    assert "feed '127.0.0.1/missing.xml' answered HTTP 404" in result.stderr
    document = json.loads(result.stdout)
    assert [f["status"] for f in document["feeds"]] == ["ok", document["feeds"][1]["status"]]
    # The run's own record keeps the feeds' lines too, the dead one with its warning.
    from tracker.settings import DATABASE_FILENAME
    from tracker.store import open_store
    with open_store(tmp_path / "data", tmp_path / "data" / DATABASE_FILENAME) as store:
        [run] = store.fetch_runs()
    feed_lines = {entry["source"]: entry for entry in run["searches"] if entry["source"].startswith("feed:")}
    assert feed_lines["feed:127.0.0.1/medrxiv.rdf"]["count"] >= 1
    assert "HTTP 404" in " ".join(feed_lines["feed:127.0.0.1/missing.xml"]["warnings"])
    runner.invoke(cli, ["classify"])
    row, _atlas = [json.loads(line) for line in runner.invoke(cli, ["papers", "--json"]).stdout.splitlines()]
    assert row["pmid"] is None and row["doi"] == "10.1101/2026.11.10.26300001" and row["preprint"]
    assert row["found_by"] == ["feed:127.0.0.1/medrxiv.rdf"]
    assert row["relevance"] == "core" and row["therapies"] == ["bispecific_antibody"]


def test_a_preprint_in_the_edition_has_its_badge_and_can_be_excluded_by_doi(feeds, client, store):
    from bs4 import BeautifulSoup

    from tracker.classify import Classifier
    from tracker.edition import EditionBuilder
    from tracker.labels import classify_store
    from tracker.lexicon import build_lexicon
    from tracker.profile import load_profile
    from tracker.render import email_context, render_email
    from tracker.templating import environment

    collect_feeds(store, client, [feeds.serve("/medrxiv.rdf", "medrxiv.rdf")], NOW)
    profile = load_profile()
    lexicon = build_lexicon(profile)
    classify_store(store, Classifier(lexicon), NOW)
    builder = EditionBuilder(store, profile, lexicon)
    edition_id = builder.draft("2026-W46", NOW)
    item = next(item for item in builder.view(edition_id).items if item.key == "doi:10.1101/2026.11.10.26300001")
    assert item.preprint
    assert [link.label for link in item.links] == ["DOI", "Preprint"]
    assert item.why == ["found in the feed medrxiv.rdf"]
    html = render_email(environment(), email_context(builder.view(edition_id), "https://d.example.org")).html
    badge = BeautifulSoup(html, "html.parser").select_one("td.item .badge-warn")
    assert badge.text == "Preprint, not peer reviewed"
    builder.exclude(edition_id, item.key, "ada", NOW)
    assert item.key not in [each.key for each in builder.view(edition_id).items]
