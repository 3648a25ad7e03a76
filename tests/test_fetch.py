"""The fetch stage end to end against the stand-in: complete, never duplicated, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from conftest import NOW, day, make_client
from tracker.errors import EutilsError, StoreError
from tracker.fetch import fetch_window, resolve_window
from tracker.profile import Profile, Query, Seed
from tracker.standin import EutilsStandIn, add_article
from tracker.store import Store

PROFILE = Profile(name="test", title="Test", queries=(Query("lymphoma", "car-t lymphoma"),
                                                      Query("myeloma", "car-t myeloma")),
                  seeds=(Seed("38283399"),))


def stock(standin: EutilsStandIn, count: int, first_day: date, per_day: int = 3) -> list[str]:
    pmids = []
    for index in range(count):
        pmid = str(40000000 + index)
        add_article(standin, pmid, f"Paper {index} on relapse after CAR-T",
                    first_day + timedelta(days=index // per_day),
                    mesh=[("Lymphoma, B-Cell", True)])
        pmids.append(pmid)
    return pmids


def test_stores_every_paper_with_every_reason(standin, client, store):
    pmids = stock(standin, 6, day("2026-11-09"))
    standin.search = lambda term: pmids[:4] if "lymphoma" in term else pmids[3:5]
    standin.cited_by = {"38283399": [pmids[0], pmids[5]]}
    report = fetch_window(store, client, PROFILE, day("2026-11-09"), day("2026-11-15"), NOW)
    assert (report.found, report.new, report.updated) == (6, 6, 0)
    by_pmid = {stored.paper.pmid: stored.found_by for stored in store.papers()}
    assert by_pmid[pmids[0]] == ["cites:38283399", "query:lymphoma"]
    assert by_pmid[pmids[3]] == ["query:lymphoma", "query:myeloma"]
    assert by_pmid[pmids[5]] == ["cites:38283399"]
    assert [entry.source for entry in report.searches] == ["query:lymphoma", "query:myeloma",
                                                           "cites:38283399"]
    utilities = [request.utility for request in standin.log]
    assert utilities == ["esearch.fcgi", "esearch.fcgi", "elink.fcgi", "epost.fcgi", "efetch.fcgi"]
    assert all(request.params["datetype"] == ["edat"] for request in standin.log[:3])
    assert report.requests == 5
    assert store.watermark() == day("2026-11-15")


def test_one_search_that_found_everything_is_fetched_from_its_own_history(standin, client, store):
    stock(standin, 5, day("2026-11-09"))
    report = fetch_window(store, client, Profile("t", "t", (Query("all", "all"),)),
                          day("2026-11-09"), day("2026-11-15"), NOW, batch_size=2)
    assert report.new == 5
    assert [request.utility for request in standin.log] == ["esearch.fcgi"] + ["efetch.fcgi"] * 3
    search_history = standin.log[0]
    assert search_history.params["usehistory"] == ["y"]
    assert {request.params["query_key"][0] for request in standin.log[1:]} == {"1"}


def test_rerun_adds_nothing_and_a_revised_record_is_updated_not_duplicated(standin, client, store):
    pmids = stock(standin, 4, day("2026-11-09"))
    window = (day("2026-11-09"), day("2026-11-15"))
    fetch_window(store, client, PROFILE, *window, NOW)
    again = fetch_window(store, client, PROFILE, *window, NOW)
    assert (again.found, again.new, again.updated) == (4, 0, 0)
    # PubMed indexed one record with MeSH and noted a retraction: same PMID, new content.
    add_article(standin, pmids[1], "Paper 1 on relapse after CAR-T", day("2026-11-09"),
                mesh=[("Lymphoma, B-Cell", True), ("Receptors, Chimeric Antigen", True)],
                publication_types=["Journal Article", "Retracted Publication"])
    revised = fetch_window(store, client, PROFILE, *window, NOW)
    assert (revised.new, revised.updated) == (0, 1)
    assert store.count_papers() == 4
    stored = store.paper_by_pmid(pmids[1]).paper
    assert stored.is_retracted and len(stored.mesh) == 2


def test_windows_over_the_search_limit_are_split(standin, client, store):
    pmids = stock(standin, 14, day("2026-11-01"), per_day=2)
    report = fetch_window(store, client, Profile("t", "t", (Query("all", "all"),)),
                          day("2026-11-01"), day("2026-11-07"), NOW, search_limit=5)
    assert report.found == 14 and store.count_papers() == 14
    windows = [(entry.since, entry.until, entry.count) for entry in report.searches]
    assert sum(count for _, _, count in windows) == 14
    assert all(count <= 5 for _, _, count in windows) and len(windows) > 2
    # the sub-windows tile the whole window without gaps or overlaps
    days = [day(since) + timedelta(days=n) for since, until, _ in windows
            for n in range((day(until) - day(since)).days + 1)]
    assert days == [day("2026-11-01") + timedelta(days=n) for n in range(7)]
    assert set(pmids) == {stored.paper.pmid for stored in store.papers()}


def test_a_single_day_over_the_limit_is_a_clear_error(standin, client, store):
    stock(standin, 8, day("2026-11-02"), per_day=8)
    with pytest.raises(EutilsError, match="matches 8 records on 2026-11-02 alone"):
        fetch_window(store, client, Profile("t", "t", (Query("all", "all"),)),
                     day("2026-11-02"), day("2026-11-02"), NOW, search_limit=5)


def test_failure_keeps_what_was_stored_and_leaves_the_watermark(standin, store):
    stock(standin, 6, day("2026-11-09"))
    fragile = make_client(standin.url, max_retries=0)
    standin.fail("500", utility="efetch.fcgi")   # the first batch fails ...
    window = (day("2026-11-09"), day("2026-11-15"))
    with pytest.raises(EutilsError):
        fetch_window(store, fragile, PROFILE, *window, NOW, batch_size=2)
    assert store.watermark() is None
    assert store.fetch_runs()[0]["status"] == "failed"
    standin.fail("slow", utility="efetch.fcgi", delay=0)   # ... next run: batch 1 answers,
    standin.fail("500", utility="efetch.fcgi")             # batch 2 fails
    with pytest.raises(EutilsError):
        fetch_window(store, fragile, PROFILE, *window, NOW, batch_size=2)
    assert store.count_papers() == 2 and store.watermark() is None   # first batch kept
    report = fetch_window(store, fragile, PROFILE, *window, NOW, batch_size=2)
    assert (report.new, store.count_papers()) == (4, 6)
    assert store.watermark() == day("2026-11-15")


def test_a_full_disk_leaves_the_store_as_it_was(standin, client, tmp_path):
    stock(standin, 30, day("2026-11-09"), per_day=5)
    path = tmp_path / "full.db"
    with Store(path) as store:
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        # SQLite reports SQLITE_FULL ("database or disk is full") once max_page_count is hit.
        store.connection.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StoreError, match="is full: free some space"):
            fetch_window(store, client, PROFILE, day("2026-11-09"), day("2026-11-15"), NOW,
                         batch_size=30)
        assert store.count_papers() == 0 and store.watermark() is None


def test_window_continues_from_the_watermark_with_overlap(store):
    today = day("2026-11-20")
    assert resolve_window(store, today, None, None, 3, 7) == (day("2026-11-14"), today)
    store.finish_fetch_run(store.start_fetch_run(day("2026-11-01"), day("2026-11-16"), NOW),
                           "complete", NOW, searches=[], requests=1, found=0, new=0, updated=0,
                           watermark=day("2026-11-16"))
    assert resolve_window(store, today, None, None, 3, 7) == (day("2026-11-13"), today)
    assert resolve_window(store, today, day("2026-01-01"), day("2026-02-01"), 3, 7) == \
        (day("2026-01-01"), day("2026-02-01"))


def test_a_later_backfill_does_not_move_the_watermark_past_a_gap(standin, client, store):
    stock(standin, 3, day("2026-11-01"))
    fetch_window(store, client, PROFILE, day("2026-11-01"), day("2026-11-03"), NOW)
    fetch_window(store, client, PROFILE, day("2026-11-10"), day("2026-11-12"), NOW)
    assert store.watermark() == day("2026-11-03")
    fetch_window(store, client, PROFILE, day("2026-11-04"), day("2026-11-12"), NOW)
    assert store.watermark() == day("2026-11-12")


def test_a_killed_fetch_resumes_without_loss(standin, tmp_path):
    """Kill -9 a real `cartdigest fetch` between two batches, start it again, lose nothing."""
    pmids = stock(standin, 9, day("2026-11-09"))
    standin.fail("slow", utility="efetch.fcgi", delay=0)      # batch 1: immediate
    standin.fail("slow", utility="efetch.fcgi", delay=30)     # batch 2: hangs until killed
    data_dir = tmp_path / "data"
    environment = {**os.environ, "CARTDIGEST_DATA_DIR": str(data_dir),
                   "CARTDIGEST_EUTILS_URL": standin.url, "NCBI_EMAIL": "tests@example.org"}
    (data_dir).mkdir()
    (data_dir / "cartdigest.toml").write_text("batch_size = 3\nmax_retries = 0\n")
    command = [sys.executable, "-m", "tracker", "fetch", "--since", "2026-11-09",
               "--until", "2026-11-15", "--json"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while [r.utility for r in standin.log].count("efetch.fcgi") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with Store(data_dir / "cartdigest.db") as store:
        assert store.count_papers() == 3 and store.watermark() is None
    standin.faults.clear()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    with Store(data_dir / "cartdigest.db") as store:
        assert sorted(stored.paper.pmid for stored in store.papers()) == sorted(pmids)
        assert store.watermark() == day("2026-11-15")
        assert [run["status"] for run in store.fetch_runs()] == ["complete", "interrupted"]


def test_a_fetch_shows_a_progress_bar_on_a_terminal_and_none_in_a_pipe(standin, tmp_path):
    import pty
    stock(standin, 9, day("2026-11-09"))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "cartdigest.toml").write_text("batch_size = 3\n")
    environment = {**os.environ, "CARTDIGEST_DATA_DIR": str(data_dir),
                   "CARTDIGEST_EUTILS_URL": standin.url, "NCBI_EMAIL": "tests@example.org"}
    command = [sys.executable, "-m", "tracker", "fetch", "--since", "2026-11-09", "--until", "2026-11-15"]
    master, terminal = pty.openpty()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:   # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        shown += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(master)
    assert process.returncode == 0, shown.decode()
    assert "fetching" in shown.decode() and "100%" in shown.decode()
    assert "window 2026-11-09 .. 2026-11-15: 9 found, 9 new" in stdout.decode()
    # Under cron or in CI (stderr not a terminal) there is no bar to garble the log.
    again = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "fetching" not in again.stderr
