"""Readers and delivery against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import time
from email import policy

import pytest

from conftest import NOW, WEEK
from subscribers.delivery import send_edition
from subscribers.mailer import AddressError, SmtpMailer, SmtpSettings, build_message, normalise_address
from subscribers.readers import ReaderError, Readers, import_csv
from subscribers.service import section_choices
from subscribers.tokens import TokenError, Tokens
from tracker.edition import EditionBuilder, EditionError
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.settings import Settings
from tracker.templating import environment

SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def setup(week_store, smtp_server):
    """An approved edition, four confirmed readers, settings pointing at the SMTP server."""
    settings = Settings(data_dir=week_store.path.parent, secret_key=SECRET, smtp_url=smtp_server.url,
                        base_url="https://digest.example.org", from_address="digest@example.org",
                        send_rate=1000.0, unsubscribe_mailto="leave@example.org")
    profile = load_profile()
    builder = EditionBuilder(week_store, profile, build_lexicon(profile))
    edition_id = builder.draft(WEEK, NOW)
    builder.approve(edition_id, "ada", NOW)
    readers = Readers(week_store, list(section_choices(settings)))
    readers.add("all@example.org", NOW, name="All Sections", confirmed=True)
    readers.add("cells@example.org", NOW, sections=["cell_therapy"], confirmed=True)
    readers.add("radio@example.org", NOW, sections=["radiotherapy"], confirmed=True)
    readers.add("pending@example.org", NOW)                       # never confirmed: gets nothing
    return settings, builder, readers, edition_id


def run_send(setup, smtp_server):
    settings, builder, readers, edition_id = setup
    mailers = []

    def make_mailer():
        mailers.append(SmtpMailer(SmtpSettings.from_url(smtp_server.url)))
        return mailers[-1]

    report = send_edition(builder, readers, settings, edition_id, make_mailer, lambda: NOW, environment(),
                          sleep=lambda seconds: None)
    return report, (mailers[0] if mailers else None)


def message_for(smtp_server, address: str) -> email.message.EmailMessage:
    [content] = [content for recipients, content in smtp_server.messages if address in recipients]
    return email.message_from_bytes(content, policy=policy.default)


def test_each_reader_gets_their_sections_with_list_headers(setup, smtp_server):
    report, mailer = run_send(setup, smtp_server)
    assert report.as_json() == {"sent": 3, "skipped": 0, "failed": 0} and report.finished
    assert smtp_server.received_by("pending@example.org") == 0
    assert len(smtp_server.sessions) == 1 and mailer.connections_opened == 1   # one connection
    message = message_for(smtp_server, "cells@example.org")
    assert message["From"] == "digest@example.org" and message["To"] == "cells@example.org"
    assert message["Date"] and re.match(r"<[^@]+@example\.org>", message["Message-ID"])
    assert message["List-Id"] == "<post-car-t-relapse-b-cell-lymphoma.digest.example.org>"
    unsubscribe = re.search(r"<(https://digest\.example\.org/unsubscribe/[^>]+)>", message["List-Unsubscribe"]).group(1)
    assert "<mailto:leave@example.org?subject=unsubscribe>" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in message.walk()] == \
        ["multipart/alternative", "text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "CAR-T AGAIN, OR AGAINST ANOTHER TARGET (1)" in text and "BISPECIFIC" not in text
    assert unsubscribe in text and unsubscribe in html                         # visible in the body
    assert "https://digest.example.org/preferences/" in text
    assert "Sent to All Sections." in message_for(smtp_server, "all@example.org").get_body(("plain",)).get_content()


def test_a_reader_whose_sections_are_empty_gets_a_short_honest_note(setup, smtp_server):
    run_send(setup, smtp_server)
    text = message_for(smtp_server, "radio@example.org").get_body(("plain",)).get_content()
    assert "No new papers this week in the sections you chose." in text
    assert "Other sections this week: Bispecific antibodies (2)" in text
    assert "https://digest.example.org/archive/2026-W46" in text


def test_a_second_send_sends_nothing(setup, smtp_server):
    run_send(setup, smtp_server)
    again, _ = run_send(setup, smtp_server)
    assert again.as_json() == {"sent": 0, "skipped": 3, "failed": 0}
    assert len(smtp_server.messages) == 3


def test_550_on_rcpt_is_a_hard_bounce_and_the_reader_is_marked(setup, smtp_server):
    smtp_server.refuse["cells@example.org"] = "550 5.1.1 No such user"
    report, _ = run_send(setup, smtp_server)
    assert report.as_json() == {"sent": 2, "skipped": 0, "failed": 1}
    assert report.hard_bounces == ["cells@example.org"] and report.finished
    assert setup[2].get("cells@example.org").status == "bounced"


def test_451_is_retried_then_delivered(setup, smtp_server):
    smtp_server.data_replies = ["451 4.3.0 Try again later"]
    report, _ = run_send(setup, smtp_server)
    assert report.as_json() == {"sent": 3, "skipped": 0, "failed": 0}
    assert smtp_server.received_by("all@example.org") == 1


def test_repeated_4xx_is_a_soft_bounce_retried_by_the_next_send(setup, smtp_server):
    smtp_server.data_replies = ["451 4.3.0 Try again later"] * 3
    report, _ = run_send(setup, smtp_server)
    assert report.failed == 1 and report.soft_bounces and not report.finished
    assert setup[1].edition_row(setup[3])["status"] == "sending"
    again, _ = run_send(setup, smtp_server)
    assert again.as_json() == {"sent": 1, "skipped": 2, "failed": 0} and again.finished
    assert setup[1].edition_row(setup[3])["status"] == "sent"


def test_several_connections_each_reused_deliver_once_each(setup, smtp_server):
    settings = setup[0]
    for number in range(12):
        setup[2].add(f"extra{number}@example.org", NOW, confirmed=True)
    pooled = (Settings(**{**vars(settings), "smtp_connections": 3}),) + tuple(setup[1:])
    mailers = []

    def make_mailer():
        mailers.append(SmtpMailer(SmtpSettings.from_url(smtp_server.url)))
        return mailers[-1]

    report = send_edition(pooled[1], pooled[2], pooled[0], pooled[3], make_mailer, lambda: NOW, environment())
    assert report.as_json() == {"sent": 15, "skipped": 0, "failed": 0} and report.finished
    # each worker reuses its one connection: never more connections than workers
    assert len(mailers) == 3 and sum(m.connections_opened for m in mailers) == len(smtp_server.sessions) <= 3
    assert all(smtp_server.received_by(r.email) == 1 for r in setup[2].confirmed())


def test_421_reconnects_and_delivers(setup, smtp_server):
    smtp_server.data_replies = ["421 4.7.0 Closing connection"]
    report, mailer = run_send(setup, smtp_server)
    assert report.as_json() == {"sent": 3, "skipped": 0, "failed": 0}
    assert mailer.connections_opened == 2


def test_a_draft_is_never_sent(week_store, smtp_server):
    settings = Settings(data_dir=week_store.path.parent, secret_key=SECRET, smtp_url=smtp_server.url)
    profile = load_profile()
    builder = EditionBuilder(week_store, profile, build_lexicon(profile))
    edition_id = builder.draft(WEEK, NOW)
    readers = Readers(week_store, list(section_choices(settings)))
    readers.add("all@example.org", NOW, confirmed=True)
    with pytest.raises(EditionError, match="is a draft: an editor must approve"):
        send_edition(builder, readers, settings, edition_id, lambda: SmtpMailer(SmtpSettings.from_url(smtp_server.url)),
                     lambda: NOW, environment())
    assert smtp_server.messages == []


def test_a_killed_sender_restarts_and_misses_no_one(setup, smtp_server):
    """kill -9 a real `cartdigest send` while a message is in flight; start it again."""
    settings, builder, readers, edition_id = setup
    for number in range(6):
        readers.add(f"reader{number}@example.org", NOW, confirmed=True)
    smtp_server.slow_for = "reader2@example.org"
    data_dir = settings.data_dir
    (data_dir / "cartdigest.toml").write_text('base_url = "https://digest.example.org"\n'
                                               'from_address = "digest@example.org"\n')
    environment_vars = {**os.environ, "CARTDIGEST_DATA_DIR": str(data_dir), "CARTDIGEST_SECRET_KEY": SECRET,
                        "CARTDIGEST_SMTP_URL": smtp_server.url}
    command = [sys.executable, "-m", "tracker", "send", str(edition_id), "--json"]
    process = subprocess.Popen(command, env=environment_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not smtp_server.slow_started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.slow_started, process.stderr.read() if process.poll() is not None else "no DATA"
    process.send_signal(signal.SIGKILL)
    process.wait()
    delivered_before = len(smtp_server.messages)
    smtp_server.slow_for = None
    finished = subprocess.run(command, env=environment_vars, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    everyone = [r.email for r in readers.confirmed()]
    assert all(smtp_server.received_by(address) == 1 for address in everyone), \
        {address: smtp_server.received_by(address) for address in everyone}
    assert delivered_before < len(everyone)
    assert builder.edition_row(edition_id)["status"] == "sent"


def test_dry_run_writes_every_message_and_sends_nothing(setup, smtp_server, tmp_path):
    from subscribers.service import send as service_send

    settings = setup[0]
    count = service_send(settings, setup[3], lambda: NOW, tmp_path / "dry")
    assert count == 3 and len(list((tmp_path / "dry").glob("*.eml"))) == 3
    assert smtp_server.messages == []
    assert setup[1].edition_row(setup[3])["status"] == "approved"


# -- readers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["a@example.org\r\nBcc: evil@example.org", "a@example.org, b@example.org",
                                     "<a@example.org>", "no-at-sign", "a@localhost", "a b@example.org", ""])
def test_injection_and_malformed_addresses_are_refused(address):
    with pytest.raises(AddressError):
        normalise_address(address)


def test_a_name_cannot_inject_headers():
    message = build_message(sender="digest@example.org", to="A@Example.ORG", to_name="Ada\r\nBcc: evil@example.org",
                            subject="Hi\nBcc: evil@example.org", text="x", html=None, now=NOW)
    raw = message.as_bytes().decode()
    assert "\nBcc:" not in raw
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert [address.addr_spec for address in parsed["To"].addresses] == ["a@example.org"]
    assert parsed["Bcc"] is None


def test_import_reports_bad_rows_by_line_and_merges_duplicates(week_store, tmp_path):
    readers = Readers(week_store, ["bispecific_antibody", "cell_therapy", "other", "related"])
    readers.add("left@example.org", NOW, confirmed=True)
    readers.set_status(readers.get("left@example.org").id, "unsubscribed", NOW, "test")
    readers.add("gone@example.org", NOW, confirmed=True)
    readers.remove("gone@example.org", NOW)
    path = tmp_path / "readers.csv"
    path.write_text("email,name,sections\n"
                    "ann@example.org,Ann,cell_therapy\n"
                    "not-an-address,Bob,\n"
                    "ANN@example.org,Ann B,bispecific_antibody\n"
                    "cy@example.org,Cy,nonsense\n"
                    "left@example.org,Left,\n"
                    "gone@example.org,Gone,\n"
                    "dee@example.org,Dee,\"cell_therapy;related\",extra\n"
                    "eve@example.org,,\n")
    report = import_csv(readers, path, NOW, confirmed=True)
    assert (report.added, report.merged) == (2, 1)
    assert [problem.split(":")[0] for problem in report.problems] == \
        ["line 3", "line 5", "line 6", "line 7", "line 8"]
    assert "unsubscribed" in report.problems[2] and "removed" in report.problems[3]
    ann = readers.get("ann@example.org")
    assert ann.name == "Ann B" and ann.sections == ["bispecific_antibody", "cell_therapy"]
    assert readers.get("eve@example.org").sections == [] and readers.get("left@example.org").status == "unsubscribed"


def test_remove_keeps_only_a_hash_and_export_shows_everything(week_store):
    readers = Readers(week_store, ["cell_therapy"])
    readers.add("ann@example.org", NOW, name="Ann", sections=["cell_therapy"], source="web form")
    readers.confirm(readers.get("ann@example.org").id, NOW, "web confirmation link")
    exported = readers.export("ann@example.org")
    assert exported["reader"]["consent_source"] == "web confirmation link"
    assert [event["kind"] for event in exported["events"]] == ["subscribed", "confirmed"]
    assert readers.remove("ann@example.org", NOW)
    dump = "\n".join(week_store.connection.iterdump())
    assert "ann@example.org" not in dump and "Ann" not in dump
    with pytest.raises(ReaderError, match="never added again"):
        readers.add("ann@example.org", NOW, confirmed=True)


# -- tokens and the public pages -----------------------------------------------------------------

def test_tokens_cannot_be_forged_altered_or_reused_for_another_purpose():
    tokens = Tokens(SECRET)
    token = tokens.make("unsubscribe", 7, "ann@example.org")
    assert tokens.read("unsubscribe", token, lambda rid: "ann@example.org") == 7
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for bad in (altered, Tokens("another-secret-key-000").make("unsubscribe", 7, "ann@example.org"),
                tokens.make("preferences", 7, "ann@example.org"), "garbage"):
        with pytest.raises(TokenError):
            tokens.read("unsubscribe", bad, lambda rid: "ann@example.org")
    with pytest.raises(TokenError, match="no longer exists"):
        tokens.read("unsubscribe", token, lambda rid: "someone-else@example.org")


def test_confirmation_links_expire(monkeypatch):
    tokens = Tokens(SECRET)
    token = tokens.make("confirm", 3, "ann@example.org")
    import itsdangerous.timed
    later = time.time() + 8 * 24 * 3600
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    with pytest.raises(TokenError, match="expired"):
        tokens.read("confirm", token, lambda rid: "ann@example.org")


@pytest.fixture
def public(setup):
    from tracker.web import create_app

    settings = Settings(**{**vars(setup[0]), "smtp_url": None})
    app = create_app(settings, clock=lambda: NOW)
    return app.test_client(), setup[2], settings


def test_one_click_unsubscribe_post_needs_no_login_and_no_token(public):
    client, readers, settings = public
    reader = readers.get("all@example.org")
    token = Tokens(SECRET).make("unsubscribe", reader.id, reader.email)
    page = client.get(f"/unsubscribe/{token}")                 # a GET only shows a button
    assert page.status_code == 200 and "<form method=\"post\"" in page.text
    assert readers.get("all@example.org").status == "confirmed"
    response = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "unsubscribed" in response.text
    assert readers.get("all@example.org").status == "unsubscribed"
    events = readers.export("all@example.org")["events"]
    assert events[-1]["source"] == "one-click (List-Unsubscribe-Post)"


def test_forged_links_get_a_clear_page(public):
    client, readers, _ = public
    for path in ("/unsubscribe/forged.token.here", "/preferences/xyz", "/confirm/abc"):
        response = client.get(path)
        assert response.status_code == 400 and "not valid" in response.text
    assert client.post("/unsubscribe/forged.token.here").status_code == 400


def test_double_opt_in_through_the_pages(public):
    client, readers, settings = public
    form = client.get("/subscribe").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/subscribe", data={"email": "New@Example.org", "name": "Neo",
                                               "sections": ["cell_therapy"], "csrf_token": token})
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert readers.get("new@example.org").status == "pending"
    [eml] = list((settings.data_dir / "outbox").glob("*new@example.org*.eml"))
    body = email.message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    confirm_url = re.search(r"https://digest\.example\.org(/confirm/\S+)", body).group(1)
    page = client.get(confirm_url)
    assert "Yes, subscribe me" in page.text and readers.get("new@example.org").status == "pending"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post(confirm_url).status_code == 400           # no CSRF token
    done = client.post(confirm_url, data={"csrf_token": token})
    assert done.status_code == 200 and readers.get("new@example.org").status == "confirmed"


def test_preferences_page_changes_sections(public):
    client, readers, _ = public
    reader = readers.get("cells@example.org")
    url = f"/preferences/{Tokens(SECRET).make('preferences', reader.id, reader.email)}"
    page = client.get(url).text
    assert 'value="cell_therapy" checked' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(url, data={"sections": ["radiotherapy", "related"], "csrf_token": token})
    assert readers.get("cells@example.org").sections == ["radiotherapy", "related"]


def test_bodies_are_8bit_with_short_lines_and_base64_for_old_relays():
    from subscribers.mailer import as_seven_bit, wrap_long_lines

    html = "<p>" + "<b>bold</b> " * 300 + "</p>" + "<i>x</i>" * 400
    message = build_message(sender="d@example.org", to="a@example.org", to_name="Zoë", subject="Hi – x",
                            text="héllo " * 400, html=html, now=NOW)
    raw = message.as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert [part["Content-Transfer-Encoding"] for part in parsed.walk()][1:] == ["8bit", "8bit"]
    assert " ".join(parsed.get_body(("plain",)).get_content().split()) == " ".join(("héllo " * 400).split())
    assert "<b>bold</b>\n<b>bold</b>" in parsed.get_body(("html",)).get_content()   # a space became the break
    seven = email.message_from_bytes(as_seven_bit(message).as_bytes(), policy=policy.default)
    assert [part["Content-Transfer-Encoding"] for part in seven.walk()][1:] == ["base64", "base64"]
    assert seven.get_body(("html",)).get_content() == parsed.get_body(("html",)).get_content()
    assert wrap_long_lines("short\nlines") == "short\nlines"


def test_the_wire_bytes_read_back_exactly_with_the_email_package():
    from subscribers.mailer import SMTP_POLICY

    message = build_message(sender="digest@example.org", to="A@Example.org", to_name="Zoë Ünïcode",
                            subject="Après CAR-T – " * 10, text="ligne 1\r\nligne 2\n" + "mot " * 500,
                            html="<p>é</p>", now=NOW, headers={"List-Id": "<x.example.org>"})
    for raw in (message.as_bytes(), message.as_bytes(policy=SMTP_POLICY)):
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert str(parsed["To"]) == "Zoë Ünïcode <a@example.org>"
        assert parsed["Subject"] == ("Après CAR-T – " * 10).strip()
        assert parsed["List-Id"] == "<x.example.org>" and parsed["MIME-Version"] == "1.0"
        assert [part.get_content_type() for part in parsed.walk()] == \
            ["multipart/alternative", "text/plain", "text/html"]
        assert parsed.get_body(("html",)).get_content().strip() == "<p>é</p>"
        plain = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert plain.startswith("ligne 1\nligne 2\n") and " ".join(plain.split()[4:]) == " ".join(["mot"] * 500)
    crlf = message.as_bytes(policy=SMTP_POLICY)
    assert b"\r\r" not in crlf and crlf.count(b"\r\n") == message.as_bytes().count(b"\n")
