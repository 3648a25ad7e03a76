"""The offline demo: the bundled sample served by the local E-utilities stand-in."""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources

from tracker.profile import Profile
from tracker.standin import EutilsStandIn, add_article


def last_complete_week_start(today: date) -> date:
    """Monday of the last ISO week that has fully ended before `today`."""
    return today - timedelta(days=today.weekday() + 7)


def load_sample() -> list[dict]:
    text = resources.files("tracker.demo").joinpath("sample.json").read_text("utf-8")
    return json.loads(text)["records"]


def sample_standin(profile: Profile, week_start: date) -> EutilsStandIn:
    """A stand-in holding the sample records, dated into the week starting `week_start`.

    Each record says which profile queries find it and which seed papers it cites, so the
    demo's `found_by` reasons are as varied as a real week's.
    """
    records = load_sample()
    standin = EutilsStandIn()
    by_query: dict[str, set[str]] = {}
    for record in records:
        add_article(standin, record["pmid"], record["title"], week_start + timedelta(days=record["day"]),
                    abstract=[tuple(part) for part in record["abstract"]]
                    if isinstance(record["abstract"], list) else record["abstract"],
                    authors=record["authors"], journal=record["journal"],
                    journal_abbrev=record["journal_abbrev"],
                    publication_types=record["publication_types"],
                    mesh=[tuple(heading) for heading in record["mesh"]], keywords=record["keywords"],
                    doi=record.get("doi"), pmcid=record.get("pmcid"))
        for name in record["queries"]:
            by_query.setdefault(name, set()).add(record["pmid"])
        for seed in record["cites"]:
            standin.cited_by.setdefault(seed, []).append(record["pmid"])
    terms = {query.term: by_query.get(query.name, set()) for query in profile.queries}
    standin.search = lambda term: terms.get(term, set())
    return standin


def sample_trials_standin(week_start: date):
    """A ClinicalTrials.gov stand-in holding the sample trials, dated into the demo week."""
    from tracker.ctgov_standin import CtgovStandIn, study_json

    data = json.loads(resources.files("tracker.demo").joinpath("trials.json").read_text("utf-8"))
    studies = []
    for trial in data["studies"]:
        posted = week_start + timedelta(days=trial["posted"]) if trial["posted"] is not None \
            else week_start - timedelta(days=200)
        updated = week_start + timedelta(days=3) if trial.get("previous") else posted
        studies.append(study_json(
            trial["nct"], trial["title"], status=trial["status"], phases=trial["phases"],
            interventions=[tuple(item) for item in trial["interventions"]], eligibility=trial["eligibility"],
            countries=trial["countries"], first_posted=posted.isoformat(), last_update=updated.isoformat()))
    return CtgovStandIn(studies)
