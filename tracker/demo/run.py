"""`cartdigest demo`: the pipeline, offline, on the bundled sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tracker.demo import last_complete_week_start, sample_standin
from tracker.fetch import fetch_window
from tracker.classify import Classifier
from tracker.edition import week_of
from tracker.eutils import EutilsClient
from tracker.labels import classify_store
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.publish import draft_edition
from tracker.settings import Settings
from tracker.setup import init_data_dir
from tracker.store import open_store

DEMO_EMAIL = "demo@example.org"


@dataclass
class DemoReport:
    data_dir: Path
    lines: list[str] = field(default_factory=list)


def run_demo(data_dir: Path, now: datetime) -> DemoReport:
    """Fetch the sample week from a local stand-in into `data_dir`, then the later stages."""
    settings = Settings(data_dir=data_dir)
    report = DemoReport(data_dir.resolve())
    init_data_dir(settings)
    profile = load_profile()
    week_start = last_complete_week_start(now.date())
    week_end = week_start + timedelta(days=6)
    with sample_standin(profile, week_start) as standin:
        standin_url = standin.url
        client = EutilsClient(standin.url, tool="cartdigest-demo", email=DEMO_EMAIL, max_retries=2)
        with open_store(settings.data_dir, settings.database_path) as store:
            fetched = fetch_window(store, client, profile, week_start, week_end, now)
        client.close()
    classifier = Classifier(build_lexicon(profile))
    with open_store(settings.data_dir, settings.database_path) as store:
        labelled = classify_store(store, classifier, now)
    report.lines.append(
        f"fetched {fetched.found} papers for {week_start} .. {week_end} from a local E-utilities "
        f"stand-in at {standin_url} ({fetched.new} new, {fetched.updated} updated, "
        f"{fetched.requests} requests)")
    report.lines.append(
        f"classified {labelled.classified} papers: {labelled.core} core, {labelled.adjacent} "
        f"adjacent, {labelled.off_topic} off topic (classifier {classifier.version})")
    drafted = draft_edition(settings, week_of(week_start), now)
    report.lines.append(f"drafted edition {drafted.edition} for {drafted.week}: {len(drafted.items)} papers")
    report.lines.append(f"digest (HTML): {drafted.html}")
    report.lines.append(f"digest (text): {drafted.text}")
    report.lines.append(f"store: {settings.database_path.resolve()}")
    return report
