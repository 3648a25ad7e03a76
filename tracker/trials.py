"""Tracked clinical trials: refreshed from ClinicalTrials.gov, classified like papers.

A trial is stored by NCT number and updated, never duplicated; a status change is recorded
with when it was seen, so an edition can say "newly recruiting". Its therapies come from its
interventions and title through the same lexicon as papers. The one eligibility line about
CAR-T is kept; a trial whose exclusion criteria rule out prior CAR-T is left out, with that
line as the evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from tracker.classify import Classifier, Document
from tracker.ctgov import CtgovClient, Trial, eligibility_sections
from tracker.errors import ProfileError
from tracker.lexicon import CAR
from tracker.profile import Profile
from tracker.store import Store

OPEN_STATUSES = ("RECRUITING", "NOT_YET_RECRUITING")
STATUS_LABELS = {"RECRUITING": "Recruiting", "NOT_YET_RECRUITING": "Not yet recruiting",
                 "ACTIVE_NOT_RECRUITING": "Active, not recruiting", "COMPLETED": "Completed",
                 "ENROLLING_BY_INVITATION": "Enrolling by invitation", "SUSPENDED": "Suspended",
                 "TERMINATED": "Terminated", "WITHDRAWN": "Withdrawn"}
WASHOUT = re.compile(r"\bwithin\s+(?:the\s+)?(?:last\s+|past\s+)?\d+\s*(?:days?|weeks?|months?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class TrialQuery:
    condition: str
    term: str
    statuses: tuple[str, ...]
    prior_words: tuple[str, ...]


def trial_query(profile: Profile) -> TrialQuery | None:
    data = profile.raw.get("trials")
    if data is None:
        return None
    try:
        return TrialQuery(str(data["condition"]), str(data["term"]), tuple(data.get("statuses", OPEN_STATUSES)),
                          tuple(data.get("prior_words", ("prior", "previous"))))
    except KeyError as error:
        raise ProfileError(f"{profile.source}: [trials] needs {error}") from None


@dataclass
class Eligibility:
    line: str | None
    rule: str | None            # 'inclusion' or 'exclusion'
    excludes_prior_car_t: bool


def car_t_eligibility(classifier: Classifier, criteria: str | None, prior_words: tuple[str, ...]) -> Eligibility:
    """The criterion that speaks of CAR-T, and whether it shuts out patients after CAR-T."""
    index = classifier.lexicon.index
    prior = re.compile(r"\b(?:" + "|".join(re.escape(word) for word in prior_words) + r")\b", re.IGNORECASE)
    first: Eligibility | None = None
    for part, line in eligibility_sections(criteria or ""):
        if not index.scan(line).get(CAR):
            continue
        shuts_out = part == "exclusion" and bool(prior.search(line)) and not WASHOUT.search(line)
        found = Eligibility(line[:300], part or None, shuts_out)
        if shuts_out:
            return found
        first = first or found
    return first or Eligibility(None, None, False)


@dataclass
class TrialsReport:
    found: int = 0
    new: int = 0
    updated: int = 0
    status_changed: list[str] = field(default_factory=list)
    excluded: int = 0
    requests: int = 0


def _hash(trial: Trial) -> str:
    return hashlib.sha256(json.dumps(asdict(trial), sort_keys=True).encode()).hexdigest()[:32]


def store_trial(store: Store, classifier: Classifier, trial: Trial, prior_words: tuple[str, ...],
                now: datetime) -> str:
    """Insert or update one trial; returns 'new', 'updated', 'status' (changed) or 'unchanged'."""
    stamp = now.isoformat(timespec="seconds")
    therapies, evidence = classifier.therapies(Document(trial.nct, trial.title, "; ".join(trial.interventions)))
    eligibility = car_t_eligibility(classifier, trial.eligibility, prior_words)
    if eligibility.line:
        evidence["eligibility"] = [{"term": eligibility.rule or "criteria", "field": "eligibility",
                                    "snippet": eligibility.line,
                                    "excludes_prior_car_t": eligibility.excludes_prior_car_t}]
    values = {"nct": trial.nct, "title": trial.title, "status": trial.status, "phase": trial.phase,
              "conditions": json.dumps(trial.conditions), "interventions": json.dumps(trial.interventions),
              "eligibility": trial.eligibility, "car_t_line": eligibility.line, "car_t_rule": eligibility.rule,
              "excluded": int(eligibility.excludes_prior_car_t), "sponsor": trial.sponsor,
              "countries": json.dumps(trial.countries), "summary": trial.summary,
              "first_posted": trial.first_posted, "last_update": trial.last_update,
              "therapies": json.dumps(therapies), "evidence": json.dumps(evidence),
              "content_hash": _hash(trial), "updated_at": stamp}
    existing = store.connection.execute("SELECT status, content_hash FROM trials WHERE nct = ?",
                                        (trial.nct,)).fetchone()
    if existing is None:
        values.update(first_seen=stamp)
        columns = ", ".join(values)
        store.connection.execute(f"INSERT INTO trials ({columns}) VALUES ({', '.join('?' * len(values))})",
                                 tuple(values.values()))
        return "new"
    if existing["content_hash"] == values["content_hash"]:
        return "unchanged"
    outcome = "updated"
    if existing["status"] != trial.status:
        values.update(previous_status=existing["status"], status_changed_at=stamp)
        outcome = "status"
    assignments = ", ".join(f"{name} = ?" for name in values if name != "nct")
    store.connection.execute(f"UPDATE trials SET {assignments} WHERE nct = ?",
                             tuple(value for name, value in values.items() if name != "nct") + (trial.nct,))
    return outcome


def refresh_trials(store: Store, client: CtgovClient, query: TrialQuery, classifier: Classifier,
                   now: datetime) -> TrialsReport:
    report = TrialsReport()
    before = client.requests
    trials = list(client.studies(condition=query.condition, term=query.term, statuses=list(query.statuses)))
    with store.transaction():
        for trial in trials:
            outcome = store_trial(store, classifier, trial, query.prior_words, now)
            report.found += 1
            if outcome == "new":
                report.new += 1
            elif outcome in ("updated", "status"):
                report.updated += 1
                if outcome == "status":
                    report.status_changed.append(trial.nct)
    report.excluded = store.execute("SELECT count(*) FROM trials WHERE excluded = 1").fetchone()[0]
    report.requests = client.requests - before
    return report


def trial_rows(store: Store) -> list[dict[str, Any]]:
    """`cartdigest trials --json` lines (CONTRACT.md), plus excluded and the eligibility line."""
    rows = []
    for row in store.execute("SELECT * FROM trials ORDER BY first_posted DESC, nct"):
        rows.append({"nct": row["nct"], "title": row["title"], "status": row["status"], "phase": row["phase"],
                     "therapies": json.loads(row["therapies"]), "interventions": json.loads(row["interventions"]),
                     "countries": json.loads(row["countries"]), "first_posted": row["first_posted"],
                     "last_update": row["last_update"], "evidence": json.loads(row["evidence"]),
                     "excluded": bool(row["excluded"]), "car_t_line": row["car_t_line"]})
    return rows


def trial_statuses(store: Store) -> dict[str, str]:
    return {row["nct"]: row["status"] for row in store.execute("SELECT nct, status FROM trials")}


def in_week(value: str | None, monday: date, sunday: date) -> bool:
    if not value:
        return False
    try:
        return monday <= date.fromisoformat(value[:10]) <= sunday
    except ValueError:
        return False
