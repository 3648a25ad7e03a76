"""The weekly job and its scheduler: triggers, catch-up, idempotence, the lock, failures."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tracker.demo import last_complete_week_start, sample_standin
from tracker.job import AlreadyRunning, catch_up_needed, exclusive, run_weekly_job, scheduled_send
from tracker.profile import load_profile
from tracker.schedule import next_run_times, weekly_trigger
from tracker.settings import Settings
from tracker.store import Store

LONDON = ZoneInfo("Europe/London")
ROOT = Path(__file__).resolve().parent.parent


def test_monday_seven_in_london_across_the_clock_changes():
    trigger = weekly_trigger(Settings())
    autumn = next_run_times(trigger, datetime(2026, 10, 14, 12, 0, tzinfo=LONDON), 3)
    assert [moment.isoformat() for moment in autumn] == [
        "2026-10-19T07:00:00+01:00", "2026-10-26T07:00:00+00:00", "2026-11-02T07:00:00+00:00"]
    spring = next_run_times(trigger, datetime(2027, 3, 23, 12, 0, tzinfo=LONDON), 2)
    assert [moment.isoformat() for moment in spring] == ["2027-03-29T07:00:00+01:00", "2027-04-05T07:00:00+01:00"]


def test_weekday_names_not_numbers():
    trigger = weekly_trigger(Settings(schedule_day="tue", schedule_time="06:30", timezone="America/New_York"))
    [first] = next_run_times(trigger, datetime(2026, 11, 20, tzinfo=ZoneInfo("America/New_York")), 1)
    assert first.isoformat() == "2026-11-24T06:30:00-05:00" and first.strftime("%a") == "Tue"


def test_next_prints_iso_times_with_offsets():
    result = subprocess.run([sys.executable, str(ROOT / "scheduler.py"), "--next", "3"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "CARTDIGEST_DATA_DIR": "/tmp/none-needed"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert len(lines) == 3 and all(datetime.fromisoformat(line).tzinfo for line in lines)
    assert all(datetime.fromisoformat(line).strftime("%a %H:%M") == "Mon 07:00" for line in lines)


@pytest.fixture
def job_env(tmp_path):
    """Settings for a data dir, and a stand-in holding the demo week ending before `now`."""
    now = datetime(2026, 11, 16, 7, 0, tzinfo=LONDON)            # Monday: week 46 just ended
    profile = load_profile()
    standin = sample_standin(profile, last_complete_week_start(now.date()))
    standin.start()
    settings = Settings(data_dir=tmp_path / "data", eutils_url=standin.url, ncbi_email="tests@example.org",
                        trials=False,
                        secret_key="k" * 32, editor_emails=("editor@example.org",), max_retries=0,
                        base_url="https://digest.example.org")
    yield settings, standin, now
    standin.stop()


def notices(settings: Settings) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in sorted((settings.data_dir / "outbox").glob("*editor@example.org*.eml"))]


def test_a_run_drafts_last_week_and_tells_the_editors(job_env):
    settings, _, now = job_env
    report = run_weekly_job(settings, lambda: now)
    assert report.ok and report.week == "2026-W46" and report.fetch.new == 16
    assert len(report.draft.items) == 14
    [notice] = notices(settings)
    assert notice["Subject"] == "[cartdigest] 2026-W46 draft ready: 14 papers"
    body = notice.get_body(("plain",)).get_content()
    assert f"https://digest.example.org/editor/editions/{report.draft.edition}" in body
    assert "Bispecific antibodies: 2" in body and "query:car-t-failure-lymphoma" in body
    with Store(settings.database_path) as store:
        [run] = [dict(row) for row in store.execute("SELECT * FROM job_runs")]
        assert run["status"] == "complete" and run["week"] == "2026-W46" and run["seconds"] >= 0
        assert store.execute("SELECT status FROM editions").fetchone()[0] == "draft"   # nothing sent


def test_two_runs_in_one_week_leave_one_draft(job_env):
    settings, _, now = job_env
    first = run_weekly_job(settings, lambda: now)
    second = run_weekly_job(settings, lambda: now)
    assert first.draft.edition == second.draft.edition and second.fetch.new == 0
    with Store(settings.database_path) as store:
        assert store.execute("SELECT count(*) FROM editions").fetchone()[0] == 1


def test_catch_up_after_downtime(job_env):
    settings, _, now = job_env
    assert catch_up_needed(settings, now) == "the 2026-W46 edition has not been drafted"
    run_weekly_job(settings, lambda: now)
    assert catch_up_needed(settings, now) is None
    later = datetime(2026, 11, 25, 9, 0, tzinfo=LONDON)           # the machine was off on Monday 23rd
    assert catch_up_needed(settings, later) == "the 2026-W47 edition has not been drafted"


def test_a_failing_fetch_gives_a_notice_and_a_retry_not_a_crash(job_env):
    settings, standin, now = job_env
    standin.fail("500")   # NCBI is down for this run (max_retries = 0)
    report = run_weekly_job(settings, lambda: now)
    assert not report.ok and report.errors[0].startswith("fetch failed: esearch.fcgi failed 1 times")
    [notice] = notices(settings)
    assert notice["Subject"] == "[cartdigest] 2026-W46: the weekly job had problems"
    assert "fetch failed" in notice.get_body(("plain",)).get_content()
    assert catch_up_needed(settings, now) == "the last weekly run for 2026-W46 failed"
    retry = run_weekly_job(settings, lambda: now)                 # the next tick
    assert retry.ok and retry.fetch.new == 16 and catch_up_needed(settings, now) is None


def test_the_lock_refuses_a_second_instance(tmp_path):
    with exclusive(tmp_path / "scheduler.lock", "a scheduler"):
        with pytest.raises(AlreadyRunning, match=r"a scheduler is already running \(pid \d+\)"):
            with exclusive(tmp_path / "scheduler.lock", "a scheduler"):
                pass
    with exclusive(tmp_path / "scheduler.lock", "a scheduler"):   # released on exit
        pass


def test_a_second_scheduler_process_is_refused_and_sigterm_stops_the_first(job_env):
    settings, _, _ = job_env
    settings.data_dir.mkdir(parents=True)
    environment = {**os.environ, "CARTDIGEST_DATA_DIR": str(settings.data_dir),
                   "CARTDIGEST_EUTILS_URL": settings.eutils_url, "NCBI_EMAIL": "tests@example.org",
                   "CARTDIGEST_SECRET_KEY": "k" * 32}
    first = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py")], env=environment,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (settings.data_dir / "scheduler.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        second = subprocess.run([sys.executable, str(ROOT / "scheduler.py")], env=environment,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "scheduler stopped" in err
    assert "catching up" in err                                   # the missed week ran at start
    with Store(settings.database_path) as store:
        assert store.execute("SELECT count(*) FROM editions").fetchone()[0] == 1


def test_scheduled_send_reminds_when_not_approved_and_sends_when_approved(job_env):
    settings, _, now = job_env
    assert scheduled_send(settings, lambda: now) == "not sent: the 2026-W46 edition has no draft yet; editors reminded"
    report = run_weekly_job(settings, lambda: now)
    assert scheduled_send(settings, lambda: now).endswith("is still a draft; editors reminded")
    assert sum("reminder" in notice["Subject"] for notice in notices(settings)) == 2
    from subscribers.service import reader_store
    with reader_store(settings) as readers:
        readers.add("reader@example.org", now, confirmed=True)
    from tracker.publish import edition_builder
    with edition_builder(settings) as builder:
        builder.approve(report.draft.edition, "ada", now)
    assert scheduled_send(settings, lambda: now) == "sent the 2026-W46 edition: 1 sent, 0 skipped, 0 failed"
    assert scheduled_send(settings, lambda: now) == "the 2026-W46 edition was already sent"
