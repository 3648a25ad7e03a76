"""The store: explicit schema, numbered migrations, WAL, idempotent upserts."""

from __future__ import annotations

import sqlite3
from datetime import date

from conftest import NOW
from tracker.migrations import MIGRATIONS
from tracker.paper import Paper
from tracker.store import Store


def test_migrations_are_applied_once_at_open(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        assert store.schema_version == MIGRATIONS[-1][0]
        assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.migrate() == []
    with Store(path) as reopened:
        assert reopened.schema_version == MIGRATIONS[-1][0]


def test_schema_refuses_bad_rows(store):
    try:
        store.connection.execute("INSERT INTO papers (pmid, title, content_hash, first_seen, "
                                 "updated_at) VALUES ('1', NULL, 'h', 'x', 'x')")
    except sqlite3.IntegrityError as error:
        assert "NOT NULL" in str(error)
    else:
        raise AssertionError("a paper without a title was accepted")


def test_upsert_reports_what_it_did(store):
    paper = Paper(pmid="123", title="A <i>title</i>", edat="2026-11-10")
    with store.transaction():
        assert store.upsert_paper(paper, ["query:a"], NOW) == "new"
    with store.transaction():
        assert store.upsert_paper(paper, ["cites:38283399"], NOW) == "unchanged"
        paper.publication_types = ["Journal Article"]
        assert store.upsert_paper(paper, [], NOW) == "updated"
    [stored] = store.papers(date(2026, 11, 9), date(2026, 11, 15))
    assert stored.found_by == ["cites:38283399", "query:a"]
    assert stored.paper == paper
    assert store.papers(date(2026, 11, 11), None) == []


def test_to_json_dict_is_asdict_without_the_cost():
    """The content hash depends on it: every field, the same JSON as dataclasses.asdict."""
    import json
    from dataclasses import asdict

    from conftest import fixture_bytes
    from tracker.pubmed_xml import parse_efetch

    for name in ("pubmed1.xml", "pubmed4.xml", "pubmed6.xml"):
        for paper in parse_efetch(fixture_bytes(name)):
            assert json.dumps(paper.to_json_dict(), sort_keys=True) == json.dumps(asdict(paper), sort_keys=True)
