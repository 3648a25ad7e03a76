"""`cartdigest demo`: the whole pipeline, offline, on the bundled sample.

A local E-utilities stand-in serves the sample week; the real weekly job fetches, classifies,
drafts and writes the editors' notice to the outbox; then, standing in for an editor, the demo
approves the draft and sends it to two sample readers, whose messages land in the outbox too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from subscribers.service import reader_store, send
from tracker.demo import last_complete_week_start, sample_standin, sample_trials_standin
from tracker.job import run_weekly_job
from tracker.profile import load_profile
from tracker.publish import edition_builder
from tracker.settings import Settings, read_secret_file
from tracker.setup import init_data_dir

DEMO_EMAIL = "demo@example.org"
NOW_EARLIER = datetime(2000, 1, 1)
DEMO_READERS = (("reader@example.org", "Sam Reader", []), ("cells@example.org", "Cell Therapy Fan", ["cell_therapy"]))


@dataclass
class DemoReport:
    data_dir: Path
    lines: list[str] = field(default_factory=list)


def run_demo(data_dir: Path, now: datetime) -> DemoReport:
    """Run the pipeline into `data_dir` (created if need be) and describe what happened."""
    report = DemoReport(data_dir.resolve())
    init_data_dir(Settings(data_dir=data_dir))
    profile = load_profile()
    week_start = last_complete_week_start(now.date())
    with sample_standin(profile, week_start) as standin, sample_trials_standin(week_start) as registry:
        settings = Settings(data_dir=data_dir, eutils_url=standin.url, ncbi_email=DEMO_EMAIL,
                            ctgov_url=registry.url, tool="cartdigest-demo", max_retries=2,
                            editor_emails=("editor@example.org",), secret_key=read_secret_file(data_dir),
                            timezone=str(now.tzinfo or "UTC"))
        _mark_earlier_trial_status(settings, registry)
        job = run_weekly_job(settings, lambda: now)
        standin_url = standin.url
    fetched = job.fetch
    report.lines.append(
        f"fetched {fetched.found} papers for {fetched.since} .. {fetched.until} from a local E-utilities "
        f"stand-in at {standin_url} ({fetched.new} new, {fetched.updated} updated, {fetched.requests} requests)")
    if fetched.trials is not None:
        report.lines.append(f"tracked {fetched.trials.found} recruiting trials from a local ClinicalTrials.gov "
                            f"stand-in ({fetched.trials.excluded} left out: they exclude patients after CAR-T)")
    if job.draft is None:
        report.lines.append(f"no new draft: {job.skipped_draft or '; '.join(job.errors)}")
        report.lines.append(f"store: {settings.database_path.resolve()}")
        return report
    report.lines.append(f"drafted edition {job.draft.edition} for {job.week}: {len(job.draft.items)} papers in "
                        f"{len(job.sections)} sections; editors' notice in {(data_dir / 'outbox').resolve()}")
    report.lines.append(f"digest (HTML): {job.draft.html}")
    report.lines.append(f"digest (text): {job.draft.text}")
    with reader_store(settings) as readers:
        for address, name, sections in DEMO_READERS:
            readers.add(address, now, name=name, sections=sections, confirmed=True, source="demo")
    with edition_builder(settings) as builder:
        builder.approve(job.draft.edition, "demo-editor", now)
    sent = send(settings, job.draft.edition, lambda: now)
    report.lines.append(f"as a stand-in editor, approved it and sent it to {sent.sent} sample readers: "
                        f"their messages are .eml files in {(data_dir / 'outbox').resolve()}")
    report.lines.append(f"store: {settings.database_path.resolve()}")
    return report


def _mark_earlier_trial_status(settings: Settings, registry) -> None:
    """Record the sample's one 'not yet recruiting' trial as it stood before this week, so the
    edition can show it as newly recruiting."""
    import copy

    from tracker.classify import Classifier
    from tracker.ctgov import parse_study
    from tracker.lexicon import build_lexicon
    from tracker.store import open_store
    from tracker.trials import store_trial, trial_query

    earlier = []
    for raw in registry.studies:
        if raw["protocolSection"]["identificationModule"]["nctId"] == "NCT09900002":
            before = copy.deepcopy(raw)
            before["protocolSection"]["statusModule"]["overallStatus"] = "NOT_YET_RECRUITING"
            before["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = \
                before["protocolSection"]["statusModule"]["studyFirstPostDateStruct"]["date"]
            earlier.append(parse_study(before))
    profile = load_profile(settings.profile)
    classifier = Classifier(build_lexicon(profile))
    with open_store(settings.data_dir, settings.database_path) as store:
        if store.execute("SELECT count(*) FROM trials").fetchone()[0]:
            return   # a demo run before this one already recorded it
        with store.transaction():
            for trial in earlier:
                store_trial(store, classifier, trial, trial_query(profile).prior_words, NOW_EARLIER)
