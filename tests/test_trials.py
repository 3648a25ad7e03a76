"""Trials from a local ClinicalTrials.gov API v2 stand-in: paging, faults, status changes,
classification, the eligibility rule, the edition's Trials section and `cartdigest trials`."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup

from conftest import NOW, WEEK
from tracker.classify import Classifier
from tracker.ctgov import CtgovClient, CtgovError
from tracker.ctgov_standin import CtgovStandIn, study_json
from tracker.http import Backoff
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.ratelimit import RateLimiter
from tracker.trials import car_t_eligibility, refresh_trials, trial_query, trial_rows

PROFILE = load_profile()
QUERY = trial_query(PROFILE)


@pytest.fixture
def registry():
    with CtgovStandIn() as server:
        yield server


@pytest.fixture
def classifier():
    return Classifier(build_lexicon(PROFILE))


def client_for(registry, retries: int = 3) -> CtgovClient:
    return CtgovClient(registry.url, max_retries=retries, backoff=Backoff(0.01, 0.05), limiter=RateLimiter(50))


def studies(count: int) -> list[dict]:
    return [study_json(f"NCT0880000{n}", f"Trial {n} of glofitamab after CAR-T failure",
                       interventions=[("DRUG", "Glofitamab")]) for n in range(count)]


def test_paging_fields_and_filters(registry):
    registry.studies = studies(5) + [study_json("NCT08899999", "Completed trial", status="COMPLETED")]
    client = client_for(registry)
    found = list(client.studies(condition="B-cell lymphoma", term="CAR-T", statuses=["RECRUITING"], page_size=2))
    assert [trial.nct for trial in found] == [f"NCT0880000{n}" for n in range(5)]
    assert len(registry.log) == 3
    first, second = registry.log[0], registry.log[1]
    assert first["query.cond"] == ["B-cell lymphoma"] and first["query.term"] == ["CAR-T"]
    assert first["filter.overallStatus"] == ["RECRUITING"] and first["pageSize"] == ["2"]
    assert "NCTId" in first["fields"][0].split(",") and "EligibilityCriteria" in first["fields"][0]
    assert "pageToken" not in first and second["pageToken"] == ["2"]


def test_429_and_a_malformed_page_are_retried(registry):
    registry.studies = studies(2)
    registry.faults.extend(["429", "malformed", "500"])
    client = client_for(registry)
    assert len(list(client.studies(condition="c", term="t", statuses=[]))) == 2
    assert client.requests == 4


def test_a_registry_that_keeps_failing_is_a_clear_error(registry):
    registry.faults.extend(["malformed"] * 5)
    with pytest.raises(CtgovError, match=r"studies failed 2 times \(last: not a ClinicalTrials.gov studies page"):
        list(client_for(registry, retries=1).studies(condition="c", term="t", statuses=[]))


def test_a_status_change_updates_the_trial_not_a_duplicate(registry, store, classifier):
    registry.studies = [study_json("NCT08800001", "CD22 CAR T cells after CD19 CAR-T failure", status="NOT_YET_RECRUITING",
                                   interventions=[("BIOLOGICAL", "CD22 CAR T cells")])]
    report = refresh_trials(store, client_for(registry), QUERY, classifier, NOW)
    assert (report.found, report.new) == (1, 1)
    registry.studies[0]["protocolSection"]["statusModule"]["overallStatus"] = "RECRUITING"
    again = refresh_trials(store, client_for(registry), QUERY, classifier, NOW)
    assert (again.new, again.updated, again.status_changed) == (0, 1, ["NCT08800001"])
    [row] = store.execute("SELECT status, previous_status, status_changed_at FROM trials").fetchall()
    assert tuple(row) == ("RECRUITING", "NOT_YET_RECRUITING", NOW.isoformat(timespec="seconds"))


@pytest.mark.parametrize("criteria, line, rule, excluded", [
    ("Inclusion Criteria:\n* Relapse after prior CD19 CAR-T therapy\n\nExclusion Criteria:\n* Active infection",
     "Relapse after prior CD19 CAR-T therapy", "inclusion", False),
    ("Inclusion Criteria:\n* DLBCL\n\nExclusion Criteria:\n* Prior treatment with CAR T-cell therapy",
     "Prior treatment with CAR T-cell therapy", "exclusion", True),
    ("Inclusion Criteria:\n* DLBCL\n\nExclusion Criteria:\n* Prior CAR-T infusion within 90 days",
     "Prior CAR-T infusion within 90 days", "exclusion", False),          # a washout, not a bar
    ("Inclusion Criteria:\n* Relapsed DLBCL\n\nExclusion Criteria:\n* Pregnancy", None, None, False),
])
def test_the_one_eligibility_line_about_car_t(classifier, criteria, line, rule, excluded):
    found = car_t_eligibility(classifier, criteria, QUERY.prior_words)
    assert (found.line, found.rule, found.excludes_prior_car_t) == (line, rule, excluded)


def test_trials_are_classified_and_listed_with_evidence(registry, store, classifier):
    registry.studies = [
        study_json("NCT08800001", "Epcoritamab and lenalidomide after CAR-T", interventions=[("DRUG", "Epcoritamab"), ("DRUG", "Lenalidomide")],
                   eligibility="Inclusion Criteria:\n* Progression after CAR-T", countries=["Spain", "France"]),
        study_json("NCT08800002", "Tafasitamab in relapsed DLBCL", interventions=[("DRUG", "Tafasitamab")],
                   eligibility="Exclusion Criteria:\n* Previous CAR T-cell therapy")]
    refresh_trials(store, client_for(registry), QUERY, classifier, NOW)
    rows = {row["nct"]: row for row in trial_rows(store)}
    first = rows["NCT08800001"]
    assert set(first) >= {"nct", "title", "status", "phase", "therapies", "interventions", "countries",
                          "first_posted", "last_update", "evidence"}
    assert first["therapies"] == ["bispecific_antibody", "immunomodulatory_targeted"]
    assert first["interventions"] == ["Drug: Epcoritamab", "Drug: Lenalidomide"]
    assert first["countries"] == ["France", "Spain"] and first["phase"] == "Phase 2"
    assert first["evidence"]["bispecific_antibody"][0]["term"] == "Epcoritamab"
    assert rows["NCT08800002"]["excluded"]
    assert rows["NCT08800002"]["evidence"]["eligibility"][0]["snippet"] == "Previous CAR T-cell therapy"


def test_the_edition_gets_a_trials_section_readers_can_choose(registry, builder, week_store, classifier):
    from tracker.render import email_context, render_email
    from tracker.templating import environment

    registry.studies = [
        study_json("NCT08800001", "New: glofitamab after CAR-T", first_posted="2026-11-11", last_update="2026-11-11"),
        study_json("NCT08800002", "Older: CD22 CAR after CD19 CAR failure", first_posted="2026-01-05",
                   last_update="2026-10-01"),
        study_json("NCT08800003", "Bars prior CAR-T", eligibility="Exclusion Criteria:\n* Prior CAR-T therapy")]
    refresh_trials(week_store, client_for(registry), QUERY, classifier, NOW)
    view = builder.view(builder.draft(WEEK, NOW))
    assert [t.nct for t in view.trials_new] == ["NCT08800001"]
    assert view.trials_new[0].why_new == "first posted 11 November 2026"
    assert [t.nct for t in view.trials_open] == ["NCT08800002"]
    only_trials = render_email(environment(), email_context(view, "https://d.example.org", sections={"trials"}))
    soup = BeautifulSoup(only_trials.html, "html.parser")
    assert [h["id"] for h in soup.select("h2.section-title")] == ["trials"]
    assert [cell["data-nct"] for cell in soup.select("td.trial")] == ["NCT08800001", "NCT08800002"]
    no_trials = render_email(environment(), email_context(view, "https://d.example.org", sections={"cell_therapy"}))
    assert "CLINICAL TRIALS" not in no_trials.text
    # a paper naming a tracked trial says how it stands
    trial_paper = next(item for item in view.items if item.pmid == "41000002")
    assert trial_paper.trials[0].label == "NCT01234567"                      # not tracked
    week_store.execute("INSERT INTO trials (nct, title, status, content_hash, first_seen, updated_at) "
                       "VALUES ('NCT01234567', 't', 'RECRUITING', 'h', 'x', 'x')")
    from tracker.edition import EditionBuilder
    fresh = EditionBuilder(week_store, builder.profile, builder.lexicon)   # as each request gets
    linked = next(item for item in fresh.view(fresh.draft(WEEK, NOW)).items if item.pmid == "41000002")
    assert linked.trials[0].label == "NCT01234567 (recruiting)"


def test_fetch_refreshes_trials_and_a_registry_failure_is_not_fatal(registry, standin, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from tracker.cli import cli

    registry.studies = studies(2)
    for name, value in {"CARTDIGEST_DATA_DIR": str(tmp_path), "CARTDIGEST_EUTILS_URL": standin.url,
                        "NCBI_EMAIL": "tests@example.org", "CARTDIGEST_TRIALS": "1",
                        "CARTDIGEST_CTGOV_URL": registry.url}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "cartdigest.toml").write_text("max_retries = 0\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["fetch", "--since", "2026-11-09", "--until", "2026-11-15", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trials"] == {"found": 2, "new": 2, "updated": 0, "status_changed": []}
    listed = [json.loads(line) for line in runner.invoke(cli, ["trials", "--json"]).stdout.splitlines()]
    assert [row["nct"] for row in listed] == ["NCT08800000", "NCT08800001"]
    registry.faults.append("500")
    failed = runner.invoke(cli, ["fetch", "--since", "2026-11-09", "--until", "2026-11-15", "--json"])
    assert failed.exit_code == 0
    assert "trials: studies failed 1 times (last: HTTP 500)" in failed.stderr
    assert json.loads(failed.stdout)["trials"]["error"].startswith("studies failed")
