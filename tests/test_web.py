"""The editor pages and the public archive: login, CSRF, actions, preview; and a real browser."""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from conftest import NOW, WEEK
from tracker.accounts import add_editor
from tracker.edition import EditionBuilder
from tracker.settings import Settings
from tracker.web import create_app

PASSWORD = "correct-horse-battery"


@pytest.fixture
def site(week_store, tmp_path: Path):
    """The app over the week's store, with one editor and one draft."""
    add_editor(week_store, "ada", PASSWORD, "ada@example.org", NOW)
    settings = Settings(data_dir=week_store.path.parent, secret_key="test-secret-key-0123456789",
                        base_url="https://digest.example.org", from_address="digest@example.org")
    from tracker.lexicon import build_lexicon
    from tracker.profile import load_profile
    profile = load_profile()
    edition_id = EditionBuilder(week_store, profile, build_lexicon(profile)).draft(WEEK, NOW)
    app = create_app(settings, clock=lambda: NOW)
    return app, edition_id, settings


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client) -> None:
    token = csrf_from(client.get("/editor/login").text)
    response = client.post("/editor/login", data={"name": "ada", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302


def test_editor_pages_need_a_login(site):
    app, edition_id, _ = site
    client = app.test_client()
    for path in ("/editor/editions", f"/editor/editions/{edition_id}",
                 f"/editor/editions/{edition_id}/preview.html"):
        response = client.get(path)
        assert response.status_code == 302 and "/editor/login" in response.headers["Location"]


def test_a_wrong_password_gets_a_clear_page(site):
    client = site[0].test_client()
    token = csrf_from(client.get("/editor/login").text)
    response = client.post("/editor/login", data={"name": "ada", "password": "nope", "csrf_token": token})
    assert response.status_code == 401
    assert "Wrong name or password." in response.text and "Traceback" not in response.text


def test_a_form_without_its_token_is_refused_with_a_clear_page(site):
    app, edition_id, _ = site
    client = app.test_client()
    log_in(client)
    response = client.post(f"/editor/editions/{edition_id}/approve")
    assert response.status_code == 400
    assert "security token" in response.text and "Traceback" not in response.text
    page = client.get(f"/editor/editions/{edition_id}").text
    assert 'id="status">draft<' in page


def test_login_redirects_only_within_the_site(site):
    client = site[0].test_client()
    token = csrf_from(client.get("/editor/login").text)
    response = client.post("/editor/login?next=//evil.example/", data={
        "name": "ada", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"].endswith("/editor/editions")


def test_only_sent_editions_are_public(site, week_store):
    app, edition_id, _ = site
    client = app.test_client()
    assert client.get(f"/archive/{WEEK}").status_code == 404
    week_store.execute("UPDATE editions SET status = 'sent', snapshot = NULL WHERE id = ?", (edition_id,))
    page = client.get(f"/archive/{WEEK}")
    assert page.status_code == 200 and "Glofitamab after CAR T-cell failure" in page.text
    assert WEEK in client.get("/archive").text


# -- a real browser --------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_site(site):
    app, edition_id, settings = site
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", edition_id, settings
    server.shutdown()


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is missing: `bash .ci/run` installs it (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)   # CI can install it, so CI never skips this test
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def test_an_editor_reviews_and_approves_in_the_browser(live_site, page):
    url, edition_id, settings = live_site
    page.goto(f"{url}/editor/editions/{edition_id}")
    assert "/editor/login" in page.url                       # sent to the login first
    page.fill("input[name=name]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/editor/editions/{edition_id}")

    item = page.locator(".item[data-pmid='41000003']").first
    item.locator("button", has_text="Exclude").click()
    page.wait_for_selector(".flash:has-text('Excluded 41000003')")
    assert page.locator("#left-out .item[data-pmid='41000003']").count() == 1

    page.fill("#note", "Two bispecific papers this week.")
    page.click("button:has-text('Save note')")
    page.wait_for_selector(".flash:has-text('Saved the editor')")

    page.goto(f"{url}/editor/editions/{edition_id}/preview.html")
    assert page.locator(".note").inner_text() == "Two bispecific papers this week."
    pmids = page.locator("td.item").evaluate_all("cells => cells.map(c => c.dataset.pmid)")
    assert "41000003" not in pmids and "41000001" in pmids

    page.goto(f"{url}/editor/editions/{edition_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#approve")
    page.wait_for_selector(".flash:has-text('Approved')")
    assert page.inner_text("#status") == "approved"
    assert page.locator("button", has_text="Exclude").count() == 0   # nothing left to change

    text = page.goto(f"{url}/editor/editions/{edition_id}/preview.txt").text()
    assert "Two bispecific papers this week." in text and "41000003" not in text


def test_the_run_log_is_shown_to_editors(site, week_store):
    from tracker.job import _finish_run, _start_run

    run_id = _start_run(week_store, "weekly", WEEK, NOW)
    _finish_run(week_store, run_id, NOW, "failed", {"papers": 5, "searches": [
        {"source": "query:car-t-failure-lymphoma", "since": "2026-11-09", "until": "2026-11-16", "count": 6}]},
        2.5, error="fetch failed: esearch.fcgi failed 7 times (last: HTTP 503)")
    client = site[0].test_client()
    log_in(client)
    page = client.get("/editor/editions").text
    assert "fetch failed: esearch.fcgi failed 7 times (last: HTTP 503)" in page
    assert "query:car-t-failure-lymphoma (2026-11-09 – 2026-11-16): 6" in page


def test_the_search_log_shows_a_dead_feed_on_the_editions_page(site, week_store):
    from datetime import date
    app, _, _ = site
    run_id = week_store.start_fetch_run(date(2026, 11, 9), date(2026, 11, 15), NOW)
    week_store.finish_fetch_run(run_id, "complete", NOW, requests=3, found=2, new=2, updated=0,
                                searches=[{"source": "query:main", "term": "t", "since": "2026-11-09",
                                           "until": "2026-11-15", "count": 2, "warnings": []}])
    week_store.add_fetch_run_searches(run_id, [{"source": "feed:journal", "term": "https://j.example/rss",
                                                "since": "", "until": "", "count": 0,
                                                "warnings": ["answered HTTP 404 <b>gone</b>"]}])
    client = app.test_client()
    log_in(client)
    page = client.get("/editor/editions").text
    assert "2 searches" in page and "1 with problems" in page
    assert "feed:journal: 0" in page and "answered HTTP 404 &lt;b&gt;gone&lt;/b&gt;" in page
