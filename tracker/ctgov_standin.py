"""A local stand-in for ClinicalTrials.gov API v2 `/studies`, on 127.0.0.1.

It serves recorded-format JSON (protocolSection modules) with pageSize/pageToken paging and
the overall-status filter, fails on demand (429 with Retry-After, 500, a malformed page) and
logs every request. The demo and the tests use it; it never leaves loopback.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from tracker.loopback import LoopbackServer


def study_json(nct: str, title: str, *, status: str = "RECRUITING", phases: list[str] | None = None,
               conditions: list[str] | None = None, interventions: list[tuple[str, str]] | None = None,
               eligibility: str = "", countries: list[str] | None = None, sponsor: str = "Example Sponsor",
               summary: str = "", first_posted: str = "2026-11-10", last_update: str = "2026-11-10") -> dict[str, Any]:
    """One study in the API's JSON shape."""
    return {"protocolSection": {
        "identificationModule": {"nctId": nct, "briefTitle": title},
        "statusModule": {"overallStatus": status, "studyFirstPostDateStruct": {"date": first_posted},
                         "lastUpdatePostDateStruct": {"date": last_update}},
        "sponsorCollaboratorsModule": {"leadSponsor": {"name": sponsor}},
        "conditionsModule": {"conditions": conditions or ["Diffuse Large B-Cell Lymphoma"]},
        "designModule": {"phases": phases or ["PHASE2"]},
        "armsInterventionsModule": {"interventions": [{"type": kind, "name": name}
                                                      for kind, name in (interventions or [])]},
        "eligibilityModule": {"eligibilityCriteria": eligibility},
        "contactsLocationsModule": {"locations": [{"facility": "Hospital", "country": country}
                                                  for country in (countries or ["United States"])]},
        "descriptionModule": {"briefSummary": summary}}}


@dataclass
class CtgovStandIn:
    studies: list[dict[str, Any]] = field(default_factory=list)
    faults: deque = field(default_factory=deque)     # "429", "500", "malformed", each once
    log: list[dict[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = LoopbackServer(lambda request: self.answer(request.path))

    @property
    def url(self) -> str:
        return f"{self._server.base}/api/v2/"

    def start(self) -> "CtgovStandIn":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "CtgovStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parsed = urlparse(path)
        params = parse_qs(parsed.query)
        with self._lock:
            self.log.append(params)
            fault = self.faults.popleft() if self.faults else None
        if not parsed.path.endswith("/studies"):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if fault == "429":
            return 429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"Too Many Requests"
        if fault == "500":
            return 500, {"Content-Type": "text/html"}, b"<html><body>Internal error</body></html>"
        if fault == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"studies": [{"protocolSection": '
        statuses = set(",".join(params.get("filter.overallStatus", [])).split(",")) - {""}
        chosen = [s for s in self.studies
                  if not statuses or s["protocolSection"]["statusModule"]["overallStatus"] in statuses]
        size = int(params.get("pageSize", ["10"])[0])
        start = int(params.get("pageToken", ["0"])[0] or 0)
        page = {"studies": chosen[start:start + size]}
        if start + size < len(chosen):
            page["nextPageToken"] = str(start + size)
        return 200, {"Content-Type": "application/json"}, json.dumps(page).encode()
