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
