"""ClinicalTrials.gov API v2: the trials open to patients whose CAR-T failed.

`/studies` with query.cond, query.term, filter.overallStatus, pageSize and pageToken paging, and
`fields` so only what is used comes back. Same politeness as the E-utilities client (one
limiter, keep-alive, timeouts, back-off on 429 and 5xx): tracker.http. Parsing is pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from tracker.errors import CartdigestError, RetryableBodyError
from tracker.http import ApiClient

# The API asks clients to stay near 50 requests a minute.
CTGOV_RATE = 0.8
FIELDS = ("NCTId", "BriefTitle", "OverallStatus", "Phase", "Condition", "InterventionName",
          "InterventionType", "EligibilityCriteria", "LeadSponsorName", "LocationCountry",
          "StudyFirstPostDate", "LastUpdatePostDate", "BriefSummary")
PHASES = {"EARLY_PHASE1": "Early phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2", "PHASE3": "Phase 3",
          "PHASE4": "Phase 4", "NA": "Not applicable"}


class CtgovError(CartdigestError):
    """ClinicalTrials.gov could not be reached or answered nonsense every time."""


@dataclass
class Trial:
    nct: str
    title: str
    status: str
    phase: str | None = None
    conditions: list[str] = field(default_factory=list)
    interventions: list[str] = field(default_factory=list)
    eligibility: str | None = None
    sponsor: str | None = None
    countries: list[str] = field(default_factory=list)
    summary: str | None = None
    first_posted: str | None = None
    last_update: str | None = None

    @property
    def url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct}"


def _date(struct: Any) -> str | None:
    value = (struct or {}).get("date")
    return str(value) if value else None


def parse_study(study: dict[str, Any]) -> Trial:
    protocol = study["protocolSection"]
    ident = protocol["identificationModule"]
    status = protocol.get("statusModule", {})
    phases = protocol.get("designModule", {}).get("phases", [])
    interventions = [f"{item.get('type', '').replace('_', ' ').title()}: {item['name']}".lstrip(": ")
                     for item in protocol.get("armsInterventionsModule", {}).get("interventions", [])
                     if item.get("name")]
    locations = protocol.get("contactsLocationsModule", {}).get("locations", [])
    return Trial(
        nct=ident["nctId"], title=ident.get("briefTitle") or ident.get("officialTitle") or ident["nctId"],
        status=status.get("overallStatus", "UNKNOWN"),
        phase="/".join(PHASES.get(phase, phase) for phase in phases) or None,
        conditions=list(protocol.get("conditionsModule", {}).get("conditions", [])),
        interventions=interventions,
        eligibility=protocol.get("eligibilityModule", {}).get("eligibilityCriteria"),
        sponsor=protocol.get("sponsorCollaboratorsModule", {}).get("leadSponsor", {}).get("name"),
        countries=sorted({location["country"] for location in locations if location.get("country")}),
        summary=protocol.get("descriptionModule", {}).get("briefSummary"),
        first_posted=_date(status.get("studyFirstPostDateStruct")),
        last_update=_date(status.get("lastUpdatePostDateStruct")))


def parse_page(body: bytes) -> tuple[list[Trial], str | None]:
    """One page of /studies: its trials and the next page token. A page that is not the JSON we
    asked for is retryable; a study of unexpected shape is an error naming it."""
    try:
        data = json.loads(body)
        studies = data["studies"]
    except (ValueError, KeyError, TypeError):
        raise RetryableBodyError(f"not a ClinicalTrials.gov studies page: {body[:80]!r}") from None
    trials = []
    for study in studies:
        try:
            trials.append(parse_study(study))
        except (KeyError, TypeError, AttributeError) as error:
            raise CtgovError(f"a study of unexpected shape ({error.__class__.__name__}: {error})") from None
    return trials, data.get("nextPageToken")


class CtgovClient(ApiClient):
    name, rate, error, setting = "ctgov", CTGOV_RATE, CtgovError, "CARTDIGEST_CTGOV_URL"

    def studies(self, *, condition: str, term: str, statuses: list[str], page_size: int = 100,
                max_pages: int = 50) -> Iterator[Trial]:
        """Every study matching, page by page (pageToken), with only the fields cartdigest uses."""
        params: dict[str, Any] = {"query.cond": condition, "query.term": term, "pageSize": page_size,
                                  "fields": ",".join(FIELDS), "format": "json"}
        if statuses:
            params["filter.overallStatus"] = ",".join(statuses)
        for _ in range(max_pages):
            trials, token = self.http.request("studies", params, parse_page)
            yield from trials
            if not token:
                return
            params["pageToken"] = token
        raise CtgovError(f"more than {max_pages} pages of trials: narrow the trial query in the profile")


def eligibility_sections(criteria: str) -> list[tuple[str, str]]:
    """(part, line) for each criterion, part being 'inclusion', 'exclusion' or '' (unlabelled)."""
    part = ""
    lines = []
    for raw in (criteria or "").splitlines():
        line = raw.strip().lstrip("*-•0123456789.) ").strip()
        if not line:
            continue
        lowered = line.lower()
        if re.match(r"^(key )?inclusion criteria", lowered):
            part = "inclusion"
            continue
        if re.match(r"^(key )?exclusion criteria", lowered):
            part = "exclusion"
            continue
        lines.append((part, line))
    return lines
