"""The weekly edition: which papers, in which section and order, and its status.

An edition covers one ISO week (Monday to Sunday) of Entrez dates. Its draft can be rebuilt
any number of times; editor changes (exclude, include, reorder, a rewritten finding, the note)
are stored apart and applied again on every rebuild. Moving a paper to another section is a
correction of its labels, so the classifier's gold export learns from it. Status moves
draft -> approved -> sending -> sent and nothing else; approval freezes a snapshot, and an
approved edition never changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tracker.errors import CartdigestError
from tracker.finding import key_finding
from tracker.labels import correct_label, effective_labels
from tracker.lexicon import Lexicon
from tracker.paper import Paper
from tracker.profile import Profile
from tracker.store import Store
from tracker.templating import long_date
from tracker.trials import OPEN_STATUSES, STATUS_LABELS, in_week

STATUSES = ("draft", "approved", "sending", "sent")
NEXT_STATUS = {"draft": "approved", "approved": "sending", "sending": "sent"}
# Within a section: clinical trials first, then cohorts, reviews, case reports.
STUDY_ORDER = {"clinical_trial": 0, "real_world": 1, "review": 2, "case_report": 3,
               "preclinical": 4, "other": 5}
STUDY_LABELS = {"clinical_trial": "Clinical trial", "real_world": "Cohort / real-world",
                "review": "Review", "case_report": "Case report", "preclinical": "Laboratory study",
                "other": "Commentary / other"}
OTHER_SECTION, RELATED_SECTION, TRIALS_SECTION = "other", "related", "trials"
EXTRA_SECTIONS = {OTHER_SECTION: "Other research on relapse after CAR-T",
                  RELATED_SECTION: "Related: other cancers and prior-CAR-T subgroups"}
TRIALS_LABEL = "Clinical trials open after CAR-T"
OPEN_TRIALS_SHOWN = 10
NCT = re.compile(r"\bNCT\d{8}\b")
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class EditionError(CartdigestError):
    """An edition action that the edition's status or content does not allow."""


def week_bounds(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written 'YYYY-Www'."""
    match = WEEK.match(week or "")
    if not match:
        raise EditionError(f"'{week}' is not an ISO week; write it like 2026-W46")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise EditionError(f"{week} does not exist (a year has 52 or 53 ISO weeks)") from None
    return monday, monday + timedelta(days=6)


def week_of(day: date) -> str:
    year, number, _ = day.isocalendar()
    return f"{year}-W{number:02d}"


def last_complete_week(now: datetime) -> str:
    """The ISO week that ended most recently before `now` (in now's time zone)."""
    return week_of(now.date() - timedelta(days=now.date().weekday() + 1))


def week_label(monday: date, sunday: date) -> str:
    if monday.month == sunday.month:
        return f"{monday.day}–{sunday.day} {sunday:%B %Y}"
    if monday.year == sunday.year:
        return f"{monday.day} {monday:%B} – {sunday.day} {sunday:%B %Y}"
    return f"{monday.day} {monday:%B %Y} – {sunday.day} {sunday:%B %Y}"


# -- the typed context every template receives -------------------------------------------------

@dataclass
class Link:
    label: str
    url: str


@dataclass
class Item:
    pmid: str | None
    title_html: str              # cleaned inline markup: safe to mark as HTML
    title_text: str
    authors: str                 # "Smith J, Chen L, Garcia M, et al."
    journal: str
    date: str
    study_type: str
    study_label: str
    section: str
    badges: list[str]            # labels of the paper's other therapies
    finding_html: str | None
    finding_rule: str            # how the finding was chosen, or "editor"
    why: list[str]               # "matched the search ...", "cites the key review ..."
    links: list[Link]
    trials: list[Link]
    retracted: bool = False
    paper_id: int = 0
    left_out: str = ""           # why the draft leaves it out (shown to editors only)
    key: str = ""                # PMID, or doi:<DOI> for a work PubMed does not hold yet
    preprint: bool = False


@dataclass
class Section:
    key: str
    label: str
    items: list[Item] = field(default_factory=list)


@dataclass
class TrialItem:
    nct: str
    title: str
    status: str                  # "Recruiting"
    phase: str
    interventions: str
    eligibility: str | None      # the one line about CAR-T
    countries: str
    url: str
    therapies: list[str]
    why_new: str | None = None   # "first posted 10 November 2026", "now recruiting"


@dataclass
class SearchLine:
    source: str
    description: str
    papers: int


@dataclass
class EditionView:
    """Everything the templates show for one edition (the documented template context)."""
    id: int
    week: str
    week_label: str
    monday: str
    sunday: str
    status: str
    title: str
    note: str | None
    sections: list[Section]
    excluded: list[Item]
    search_log: list[SearchLine]
    last_fetch: str | None
    built_at: str
    approved_by: str | None = None
    trials_new: list[TrialItem] = field(default_factory=list)    # posted or newly recruiting this week
    trials_open: list[TrialItem] = field(default_factory=list)   # others recruiting now

    @property
    def items(self) -> list[Item]:
        return [item for section in self.sections for item in section.items]

    @property
    def is_empty(self) -> bool:
        return not self.items

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EditionView":
        def item(raw: dict[str, Any]) -> Item:
            return Item(**{**raw, "links": [Link(**l) for l in raw["links"]],
                           "trials": [Link(**l) for l in raw["trials"]]})
        return cls(**{**data,
                      "sections": [Section(s["key"], s["label"], [item(i) for i in s["items"]])
                                   for s in data["sections"]],
                      "excluded": [item(i) for i in data["excluded"]],
                      "search_log": [SearchLine(**line) for line in data["search_log"]],
                      "trials_new": [TrialItem(**t) for t in data.get("trials_new", [])],
                      "trials_open": [TrialItem(**t) for t in data.get("trials_open", [])]})


def section_labels(lexicon: Lexicon) -> dict[str, str]:
    return {**{key: lexicon.section_labels[key] for key in lexicon.sections}, **EXTRA_SECTIONS}


def short_authors(authors: list[str]) -> str:
    if not authors:
        return "Anonymous"
    return ", ".join(authors[:3]) + (", et al." if len(authors) > 3 else "")


def explain_sources(found_by: list[str], seeds: dict[str, str], queries: dict[str, str]) -> list[str]:
    why = []
    for source in found_by:
        kind, _, name = source.partition(":")
        if kind == "query":
            why.append(f"found by the PubMed search for {queries.get(name, name)}")
        elif kind == "cites":
            label = seeds.get(name, "")
            why.append(f"cites the key paper PMID {name}" + (f" ({label})" if label else ""))
        elif kind == "feed":
            why.append(f"found in the feed {name}")
        else:
            why.append(source)
    return why


def item_links(paper: Paper) -> list[Link]:
    links = []
    if paper.pmid:
        links.append(Link("PubMed", f"https://pubmed.ncbi.nlm.nih.gov/{paper.pmid}/"))
    if paper.doi:
        links.append(Link("DOI", f"https://doi.org/{paper.doi}"))
    if paper.pmcid:
        links.append(Link("Free full text (PMC)", f"https://pmc.ncbi.nlm.nih.gov/articles/{paper.pmcid}/"))
    if paper.url and not paper.pmid:
        links.append(Link("Preprint" if paper.is_preprint else "Publisher's page", paper.url))
    return links


# -- building and changing an edition ------------------------------------------------------------

class EditionBuilder:
    """Builds and changes editions in a store for one profile."""

    def __init__(self, store: Store, profile: Profile, lexicon: Lexicon) -> None:
        self.store = store
        self.profile = profile
        self.lexicon = lexicon
        self.labels = section_labels(lexicon)
        self._statuses: dict[str, str] | None = None

    # status ---------------------------------------------------------------------------------

    def edition_row(self, edition_id: int) -> dict[str, Any]:
        row = self.store.execute("SELECT * FROM editions WHERE id = ?", (edition_id,)).fetchone()
        if row is None:
            raise EditionError(f"no edition {edition_id}; `cartdigest edition list` shows them")
        return dict(row)

    def _require_draft(self, edition_id: int) -> dict[str, Any]:
        row = self.edition_row(edition_id)
        if row["status"] != "draft":
            raise EditionError(f"edition {edition_id} ({row['week']}) is {row['status']}: "
                               "an approved edition never changes")
        return row

    def set_status(self, edition_id: int, status: str, now: datetime, editor: str | None = None) -> None:
        """Move to the next status; anything else (back to draft, skipping one) is refused."""
        row = self.edition_row(edition_id)
        if NEXT_STATUS.get(row["status"]) != status:
            raise EditionError(f"edition {edition_id} is {row['status']}; it cannot become {status} "
                               f"(draft -> approved -> sending -> sent)")
        stamp = now.isoformat(timespec="seconds")
        with self.store.transaction():
            if status == "approved":
                view = self.view(edition_id)
                self.store.connection.execute(
                    "UPDATE editions SET status = 'approved', approved_at = ?, approved_by = ?, "
                    "snapshot = ? WHERE id = ? AND status = 'draft'",
                    (stamp, editor, json.dumps({**view.as_json(), "status": "approved",
                                                "approved_by": editor}), edition_id))
            else:
                self.store.connection.execute(
                    "UPDATE editions SET status = ?, sent_at = COALESCE(?, sent_at) WHERE id = ?",
                    (status, stamp if status == "sent" else None, edition_id))

    def approve(self, edition_id: int, editor: str, now: datetime) -> None:
        self.set_status(edition_id, "approved", now, editor)

    # building -------------------------------------------------------------------------------

    def draft(self, week: str, now: datetime) -> int:
        """Build (or rebuild, while a draft) the edition of `week`; returns its id."""
        monday, sunday = week_bounds(week)
        stamp = now.isoformat(timespec="seconds")
        row = self.store.execute("SELECT id, status FROM editions WHERE week = ?", (week,)).fetchone()
        if row is not None and row["status"] != "draft":
            raise EditionError(f"the {week} edition is {row['status']}: an approved edition never "
                               "changes")
        with self.store.transaction():
            if row is None:
                edition_id = self.store.connection.execute(
                    "INSERT INTO editions (week, created_at, built_at) VALUES (?, ?, ?)",
                    (week, stamp, stamp)).lastrowid
            else:
                edition_id = row["id"]
                self.store.connection.execute("UPDATE editions SET built_at = ? WHERE id = ?",
                                              (stamp, edition_id))
            sections, _ = self._arrange(edition_id, monday, sunday)
            self.store.connection.execute("DELETE FROM edition_items WHERE edition_id = ?", (edition_id,))
            for section in sections:
                for position, item in enumerate(section.items):
                    self.store.connection.execute(
                        "INSERT INTO edition_items (edition_id, paper_id, section, position) "
                        "VALUES (?, ?, ?, ?)", (edition_id, item.paper_id, section.key, position))
        return edition_id

    def _changes(self, edition_id: int) -> dict[tuple[int, str], str | None]:
        return {(row["paper_id"], row["kind"]): row["value"] for row in self.store.execute(
            "SELECT paper_id, kind, value FROM edition_changes WHERE edition_id = ?", (edition_id,))}

    def _arrange(self, edition_id: int, monday: date, sunday: date) -> tuple[list[Section], list[Item]]:
        week = self.store.papers(monday, sunday)
        labels = effective_labels(self.store, [stored.id for stored in week])
        changes = self._changes(edition_id)
        seeds = {seed.pmid: seed.label for seed in self.profile.seeds}
        queries = {query.name: query.label or query.name for query in self.profile.queries}
        order = list(self.lexicon.sections) + [OTHER_SECTION, RELATED_SECTION]
        sections = {key: Section(key, self.labels[key]) for key in order}
        excluded: list[Item] = []
        ranked: list[tuple[tuple, Item]] = []
        for stored in week:
            label = labels.get(stored.id) or {}
            relevance = label.get("relevance")
            therapies = label.get("therapies") or []
            wanted = relevance in ("core", "adjacent") and not stored.paper.is_retracted
            if (stored.id, "include") in changes:
                wanted = True
            section = RELATED_SECTION if relevance == "adjacent" else (therapies[0] if therapies else OTHER_SECTION)
            badges = [self.labels[key] for key in therapies if key != section and key in self.labels]
            item = self._item(stored.id, stored.paper, label, section, badges,
                              explain_sources(stored.found_by, seeds, queries), changes)
            # Editors see what was left out, and why, so they can include it after all.
            if (stored.id, "exclude") in changes:
                item.left_out = "excluded by an editor"
            elif not wanted:
                item.left_out = "retracted" if stored.paper.is_retracted else \
                    f"classified {(relevance or 'unclassified').replace('_', ' ')}"
            if item.left_out:
                excluded.append(item)
                continue
            position = changes.get((stored.id, "position"))
            baseline = (STUDY_ORDER.get(item.study_type, 9), -(date.fromisoformat(stored.paper.edat).toordinal()
                                                                 if stored.paper.edat else 0), item.key)
            ranked.append(((float(position) if position is not None else 1e9, baseline), item))
        for _, item in sorted(ranked, key=lambda pair: pair[0]):
            sections[item.section].items.append(item)
        return [section for section in sections.values() if section.items], excluded

    def _item(self, paper_id: int, paper: Paper, label: dict[str, Any], section: str,
              badges: list[str], why: list[str], changes: dict) -> Item:
        finding, rule = key_finding(paper)
        edited = changes.get((paper_id, "finding"))
        if edited is not None:
            finding, rule = edited, "editor"
        study_type = label.get("study_type") or "other"
        text = f"{paper.title_text} {paper.abstract_text}"
        statuses = self._trial_statuses()
        trials = [Link(nct + (f" ({statuses[nct].replace('_', ' ').lower()})" if nct in statuses else ""),
                       f"https://clinicaltrials.gov/study/{nct}") for nct in dict.fromkeys(NCT.findall(text))]
        return Item(
            pmid=paper.pmid, title_html=paper.title, title_text=paper.title_text,
            authors=short_authors(paper.authors), journal=paper.journal_abbrev or paper.journal or "",
            date=paper.pub_date or paper.edat or "", study_type=study_type,
            study_label=STUDY_LABELS.get(study_type, study_type), section=section, badges=badges,
            finding_html=finding, finding_rule=rule, why=why, links=item_links(paper), trials=trials,
            retracted=paper.is_retracted, paper_id=paper_id, key=paper.key, preprint=paper.is_preprint)

    def _trial_statuses(self) -> dict[str, str]:
        # Papers that name a tracked trial say how it stands (read once per builder).
        if self._statuses is None:
            self._statuses = {row[0]: row[1] for row in self.store.execute("SELECT nct, status FROM trials")}
        return self._statuses

    def view(self, edition_id: int) -> EditionView:
        """The edition as templates see it: the frozen snapshot once approved, else built now."""
        row = self.edition_row(edition_id)
        if row["status"] != "draft" and row["snapshot"]:
            view = EditionView.from_json(json.loads(row["snapshot"]))
            view.status = row["status"]
            return view
        monday, sunday = week_bounds(row["week"])
        sections, excluded = self._arrange(edition_id, monday, sunday)
        trials_new, trials_open = self._trials(monday, sunday)
        return EditionView(
            id=edition_id, week=row["week"], week_label=week_label(monday, sunday),
            monday=monday.isoformat(), sunday=sunday.isoformat(), status=row["status"],
            title=self.profile.title, note=row["note"], sections=sections, excluded=excluded,
            search_log=self._search_log(monday, sunday), last_fetch=self._last_fetch(),
            built_at=row["built_at"], approved_by=row["approved_by"],
            trials_new=trials_new, trials_open=trials_open)

    def _trials(self, monday: date, sunday: date) -> tuple[list[TrialItem], list[TrialItem]]:
        """Trials first posted, or newly recruiting, in the week; then others recruiting now.
        A trial whose criteria exclude patients after CAR-T is never shown."""
        new, still_open = [], []
        rows = self.store.execute("SELECT * FROM trials WHERE excluded = 0 ORDER BY last_update DESC, nct").fetchall()
        for row in rows:
            if row["status"] not in OPEN_STATUSES:
                continue
            countries = json.loads(row["countries"])
            shown = ", ".join(countries[:6]) + (f" and {len(countries) - 6} more" if len(countries) > 6 else "")
            item = TrialItem(
                nct=row["nct"], title=row["title"], status=STATUS_LABELS.get(row["status"], row["status"]),
                phase=row["phase"] or "Phase not given", interventions="; ".join(json.loads(row["interventions"])),
                eligibility=row["car_t_line"], countries=shown or "Locations not listed",
                url=f"https://clinicaltrials.gov/study/{row['nct']}",
                therapies=[self.labels[key] for key in json.loads(row["therapies"]) if key in self.labels])
            if in_week(row["first_posted"], monday, sunday):
                item.why_new = f"first posted {long_date(row['first_posted'])}"
            elif row["previous_status"] and row["previous_status"] not in OPEN_STATUSES[:1] \
                    and row["status"] == "RECRUITING" and in_week(row["last_update"], monday, sunday):
                item.why_new = "now recruiting"
            (new if item.why_new else still_open).append(item)
        return new, still_open[:OPEN_TRIALS_SHOWN]

    def _search_log(self, monday: date, sunday: date) -> list[SearchLine]:
        """Per query and seed paper: how many of the week's papers it found (zeros included)."""
        counts = {row["source"]: row["n"] for row in self.store.execute(
            "SELECT source, count(*) AS n FROM paper_sources JOIN papers ON papers.id = paper_id "
            "WHERE edat BETWEEN ? AND ? GROUP BY source", (monday.isoformat(), sunday.isoformat()))}
        lines = [SearchLine(f"query:{q.name}", f"PubMed search: {q.label or q.name}",
                            counts.pop(f"query:{q.name}", 0))
                 for q in self.profile.queries]
        lines += [SearchLine(f"cites:{s.pmid}", f"papers citing PMID {s.pmid}" + (f" ({s.label})" if s.label else ""),
                             counts.pop(f"cites:{s.pmid}", 0)) for s in self.profile.seeds]
        lines += [SearchLine(source, source, n) for source, n in sorted(counts.items())]
        return lines

    def _last_fetch(self) -> str | None:
        row = self.store.execute(
            "SELECT finished_at, since, until FROM fetch_runs WHERE status = 'complete' "
            "ORDER BY id DESC LIMIT 1").fetchone()
        return f"{row['finished_at']} (Entrez dates {row['since']} to {row['until']})" if row else None

    # editor changes ---------------------------------------------------------------------------

    def _paper_id(self, pmid: str) -> int:
        stored = self.store.paper_by_pmid(pmid)
        if stored is None:
            raise EditionError(f"no paper with PMID {pmid} in the store")
        return stored.id

    def _set_change(self, edition_id: int, pmid: str, kind: str, value: str | None, editor: str,
                    now: datetime, clear: tuple[str, ...] = ()) -> None:
        self._require_draft(edition_id)
        paper_id = self._paper_id(pmid)
        with self.store.transaction():
            for other in clear:
                self.store.connection.execute(
                    "DELETE FROM edition_changes WHERE edition_id = ? AND paper_id = ? AND kind = ?",
                    (edition_id, paper_id, other))
            self.store.connection.execute(
                "INSERT INTO edition_changes (edition_id, paper_id, kind, value, editor, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (edition_id, paper_id, kind) DO UPDATE SET "
                "value = excluded.value, editor = excluded.editor, created_at = excluded.created_at",
                (edition_id, paper_id, kind, value, editor, now.isoformat(timespec="seconds")))

    def exclude(self, edition_id: int, pmid: str, editor: str, now: datetime) -> None:
        self._set_change(edition_id, pmid, "exclude", None, editor, now, clear=("include",))

    def include(self, edition_id: int, pmid: str, editor: str, now: datetime) -> None:
        self._set_change(edition_id, pmid, "include", None, editor, now, clear=("exclude",))

    def set_finding(self, edition_id: int, pmid: str, finding: str, editor: str, now: datetime) -> None:
        from tracker.markup import clean_inline

        self._set_change(edition_id, pmid, "finding", clean_inline(finding), editor, now)

    def move(self, edition_id: int, pmid: str, section: str, editor: str, now: datetime) -> None:
        """Put a paper in another section: a correction of its labels, kept for the gold export."""
        self._require_draft(edition_id)
        if section not in self.labels:
            raise EditionError(f"unknown section '{section}'; choose from {', '.join(self.labels)}")
        paper_id = self._paper_id(pmid)
        label = effective_labels(self.store, [paper_id]).get(paper_id) or {}
        therapies = [key for key in (label.get("therapies") or []) if key != section]
        note = f"moved to {section} in edition {self.edition_row(edition_id)['week']}"
        if section == RELATED_SECTION:
            correct_label(self.store, pmid, "relevance", "adjacent", editor, now, note)
        else:
            correct_label(self.store, pmid, "relevance", "core", editor, now, note)
            correct_label(self.store, pmid, "therapies",
                          [] if section == OTHER_SECTION else [section] + therapies, editor, now, note)

    def reorder(self, edition_id: int, pmid: str, direction: str, editor: str, now: datetime) -> None:
        """Move a paper one place up or down within its section; the order is kept on rebuild."""
        view = self.view(edition_id)
        for section in view.sections:
            pmids = [item.key for item in section.items]
            if pmid in pmids:
                index = pmids.index(pmid)
                target = index - 1 if direction == "up" else index + 1
                if 0 <= target < len(pmids):
                    pmids[index], pmids[target] = pmids[target], pmids[index]
                for position, each in enumerate(pmids):
                    self._set_change(edition_id, each, "position", str(position), editor, now)
                return
        raise EditionError(f"PMID {pmid} is not an item of edition {edition_id}")

    def set_note(self, edition_id: int, note: str) -> None:
        self._require_draft(edition_id)
        with self.store.transaction():
            self.store.connection.execute("UPDATE editions SET note = ? WHERE id = ?",
                                          (note.strip() or None, edition_id))

    def editions(self) -> list[dict[str, Any]]:
        rows = self.store.execute(
            "SELECT e.id, e.week, e.status, e.built_at, e.approved_at, e.approved_by, e.sent_at, "
            "(SELECT count(*) FROM edition_items WHERE edition_id = e.id) AS items "
            "FROM editions e ORDER BY e.week DESC").fetchall()
        return [dict(row) for row in rows]
