"""Classify a paper: relevance, therapy types and study type, each label with its evidence.

Rules, not a trained model: the gold set is small and judged on unseen papers, so every rule is
a general statement about how post-CAR-T papers are written (see the profile's [classifier]).
Evidence keeps the matched term, the field it was found in and a snippet, so an editor sees why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracker.lexicon import (CAR, CAR_FILLER, CAR_SENTINEL, LYMPHOMA, OTHER_DISEASE, Hit, Lexicon, Pattern,
                             THERAPY_CONTEXT_TRIGGER, TherapyRule, lower_same_length)
from tracker.paper import Paper

SNIPPET_CONTEXT = 60
FIELDS = ("title", "abstract", "keywords")
TITLE_STUDY_WEIGHT = 3
MAX_BODY_STUDY_CUES = 3


@dataclass(frozen=True)
class Document:
    """What the classifier reads: title, abstract, keywords, MeSH and publication types."""
    pmid: str | None
    title: str
    abstract: str = ""
    keywords: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    publication_types: tuple[str, ...] = ()

    @classmethod
    def from_paper(cls, paper: Paper) -> "Document":
        return cls(paper.pmid, paper.title_text, paper.abstract_text, tuple(paper.keywords),
                   tuple(heading.descriptor for heading in paper.mesh),
                   tuple(paper.publication_types))

    @classmethod
    def from_gold(cls, record: dict[str, Any]) -> "Document":
        return cls(str(record.get("pmid")), record.get("title", ""), record.get("abstract", ""),
                   tuple(record.get("keywords", [])), tuple(record.get("mesh", [])),
                   tuple(record.get("publication_types", [])))

    def field_text(self, name: str) -> str:
        if name == "keywords":
            return "; ".join(self.keywords)
        return getattr(self, name)


@dataclass
class Classification:
    relevance: str
    therapies: list[str]
    study_type: str
    evidence: dict[str, list[dict[str, Any]]]
    version: str
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def main_therapy(self) -> str | None:
        """The therapy that decides the paper's section (the highest-scoring one)."""
        return self.therapies[0] if self.therapies else None

    def as_json(self) -> dict[str, Any]:
        return {"relevance": self.relevance, "therapies": self.therapies,
                "study_type": self.study_type, "evidence": self.evidence}


def snippet(text: str, start: int, end: int, context: int = SNIPPET_CONTEXT) -> str:
    left = max(0, start - context)
    right = min(len(text), end + context)
    if left > 0:
        left = text.find(" ", left, start) + 1 or left
    if right < len(text):
        cut = text.rfind(" ", end, right)
        right = cut if cut > 0 else right
    return ("…" if left > 0 else "") + text[left:right].strip() + ("…" if right < len(text) else "")


@dataclass(slots=True)
class FieldScan:
    """One field of a document, scanned once: its term hits and its CAR-T-masked text."""
    name: str
    text: str
    hits: dict[str, list[Hit]]
    masked: str      # lower-cased, CAR-T mentions replaced by same-length sentinels
    # Where the triggers of each relation pattern, and of each group of words, start: a pattern
    # that is not here cannot match in this field (TermIndex.scan_with_triggers, completed by
    # TriggerIndex.complete).
    offsets: dict[Pattern | str, list[int]] = field(default_factory=dict)

    def starts_between(self, group: str, low: int, high: int) -> bool:
        """A word of `group` starts somewhere in [low, high]."""
        for offset in self.offsets.get(group, ()):
            if low <= offset <= high:
                return True
        return False

    def evidence(self, start: int, end: int, cue: str | None = None, weight: int | None = None) -> dict[str, Any]:
        """The term, the field and a snippet around it; for a relevance cue, its name and weight."""
        found = {"term": self.text[start:end].strip(), "field": self.name,
                 "snippet": snippet(self.text, start, end)}
        if cue is not None:
            found["cue"] = cue
        if weight is not None:
            found["weight"] = weight
        return found


def scan_document(document: Document, lexicon: Lexicon) -> dict[str, FieldScan]:
    scans = {}
    for name in FIELDS:
        text = document.field_text(name)
        hits, offsets = lexicon.index.scan_with_triggers(text) if text else ({}, {})
        masked = lower_same_length(text)
        if CAR in hits:
            pieces, position = [], 0
            for hit in hits[CAR]:
                pieces += [masked[position:hit.start], CAR_SENTINEL + CAR_FILLER * (hit.end - hit.start - 1)]
                position = hit.end
            masked = "".join(pieces) + masked[position:]
        if text:
            lexicon.triggers.complete(offsets, [hit.start for hit in hits.get(CAR, ())])
        scans[name] = FieldScan(name, text, hits, masked, offsets)
    return scans


class Classifier:
    """Applies a compiled Lexicon to Documents."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    @property
    def version(self) -> str:
        return self.lexicon.version

    def classify(self, document: Document) -> Classification:
        evidence: dict[str, list[dict[str, Any]]] = {}
        scans = scan_document(document, self.lexicon)
        relevance, score = self._relevance(document, scans, evidence)
        therapies = self._therapies(document, scans, evidence)
        study_type = self._study_type(document, scans, evidence)
        return Classification(relevance, therapies, study_type, evidence, self.version,
                              {"relevance": score})

    def therapies(self, document: Document) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
        """Therapy labels alone (for trials: their interventions and title), with evidence."""
        evidence: dict[str, list[dict[str, Any]]] = {}
        return self._therapies(document, scan_document(document, self.lexicon), evidence), evidence

    # -- relevance -----------------------------------------------------------------------------

    def _relevance(self, document: Document, scans: dict[str, FieldScan], evidence: dict) -> tuple[str, float]:
        lexicon = self.lexicon
        reasons: list[dict[str, Any]] = []
        excluded = [kind for kind in document.publication_types
                    if kind in lexicon.excluded_publication_types]
        if excluded:
            reasons.append({"term": excluded[0], "field": "publication_type",
                            "snippet": f"a {excluded[0]} is never an item of its own"})
            evidence["off_topic"] = reasons
            return "off_topic", 0.0

        car_mesh = [heading for heading in document.mesh if heading.lower() in lexicon.car_mesh]
        car_field = next((scan for scan in scans.values() if scan.hits.get(CAR)), None)
        if car_field is None and not car_mesh:
            evidence["off_topic"] = [{"term": "no CAR-T named", "field": "title, abstract, keywords, MeSH",
                                      "snippet": document.title[:120]}]
            return "off_topic", 0.0
        if car_field is not None:
            hit = car_field.hits[CAR][0]
            reasons.append(car_field.evidence(hit.start, hit.end, cue="CAR-T named"))
        else:
            reasons.append({"term": car_mesh[0], "field": "mesh", "snippet": car_mesh[0], "cue": "CAR-T named"})

        # Each field runs only the patterns whose triggers it contains, in profile order; a cue
        # counts its first title match and up to two matches in the abstract and keywords.
        counted: list[tuple[list, list]] = [([], []) for _ in lexicon.cues]
        for scan in scans.values():
            if scan.name == "title":
                runs = lexicon.title_runs_with_car if CAR in scan.hits else lexicon.title_runs
                slot, wanted = 0, 1
            else:
                runs, slot, wanted = lexicon.body_runs, 1, 2
            for pattern, cue_index in runs:
                offsets = scan.offsets.get(pattern)
                if offsets is None:
                    continue   # its triggers are not in this field
                found = counted[cue_index][slot]
                if len(found) >= wanted:
                    continue   # this cue already counts all it can from this field
                for match in pattern.matches(scan.masked, offsets):
                    if pattern.preceded_by and not self._therapy_just_before(scan, match.start(), pattern.within):
                        continue
                    found.append((scan, match))
                    if len(found) >= wanted:
                        break
        score = 0.0
        kinds: set[str] = set()
        for cue, (title_hits, body_hits) in zip(lexicon.cues, counted):
            contribution = (cue.title_weight if title_hits else 0) + cue.weight * len(body_hits)
            if contribution:
                score += contribution
                if contribution > 0:
                    kinds.add(cue.kind)
                for scan, match in title_hits + body_hits:
                    weight = cue.title_weight if scan.name == "title" else cue.weight
                    reasons.append(scan.evidence(match.start(), match.end(), cue=cue.name, weight=weight))

        disease, disease_reason = self._disease(document, scans)
        if disease_reason:
            reasons.append(disease_reason)
        if score >= lexicon.relevance_threshold:
            relevance = "core" if disease == "lymphoma" else "adjacent"
            if relevance == "core" and lexicon.core_needs_car_in_title and CAR not in scans["title"].hits:
                relevance = "adjacent"
                reasons.append({"term": "CAR-T not in the title", "field": "title", "snippet": document.title[:120],
                                "cue": "the patients after CAR-T are a subgroup of the study's"})
        elif score >= 1 and "subgroup" in kinds:
            relevance = "adjacent"
        else:
            relevance = "off_topic"
            reasons.append({"term": f"score {score:g} < {lexicon.relevance_threshold}", "field": "cues",
                            "snippet": "CAR-T is named, but not a relapse or failure after it"})
        evidence[relevance] = reasons
        return relevance, score

    @staticmethod
    def _therapy_just_before(scan: FieldScan, start: int, within: int) -> bool:
        """A therapy term ends at most `within` characters before `start`, in the same sentence."""
        for concept, hits in scan.hits.items():
            if not concept.startswith("therapy:"):
                continue
            for hit in hits:
                if start - within <= hit.end <= start and not any(
                        mark in scan.text[hit.end:start] for mark in ".;:?!"):
                    return True
        return False

    def _disease(self, document: Document, scans: dict[str, FieldScan]) -> tuple[str, dict[str, Any] | None]:
        """'lymphoma' or 'other': the title decides when it names a disease, else the counts."""
        lexicon = self.lexicon
        for names in (("title",), ("abstract", "keywords")):
            lymphoma = [(scans[name], hit) for name in names for hit in scans[name].hits.get(LYMPHOMA, [])]
            other = [(scans[name], hit) for name in names for hit in scans[name].hits.get(OTHER_DISEASE, [])]
            if names == ("title",):
                is_lymphoma = bool(lymphoma)
                mesh_lymphoma = mesh_other = []
            else:
                mesh_lymphoma = [h for h in document.mesh if h.startswith(lexicon.lymphoma_mesh_prefixes)]
                mesh_other = [h for h in document.mesh if h.startswith(lexicon.other_mesh_prefixes)]
                count_lymphoma = len(lymphoma) + len(mesh_lymphoma)
                count_other = len(other) + len(mesh_other)
                # Mixed series (ALL, CLL and NHL) count as lymphoma when lymphoma data are there.
                is_lymphoma = count_lymphoma > 0 and (count_lymphoma >= 2 or count_lymphoma >= count_other)
            if not (lymphoma or other or mesh_lymphoma or mesh_other):
                continue
            cue = "disease: B-cell lymphoma" if is_lymphoma else "disease: another malignancy"
            chosen = lymphoma if is_lymphoma else other
            if chosen:
                scan, hit = chosen[0]
                return ("lymphoma" if is_lymphoma else "other"), scan.evidence(hit.start, hit.end, cue=cue)
            heading = (mesh_lymphoma if is_lymphoma else mesh_other)[0]
            return ("lymphoma" if is_lymphoma else "other"), {"term": heading, "field": "mesh",
                                                               "snippet": heading, "cue": cue}
        return "lymphoma", None

    # -- therapies -----------------------------------------------------------------------------

    def _therapies(self, document: Document, scans: dict[str, FieldScan], evidence: dict) -> list[str]:
        lexicon = self.lexicon
        scores: dict[int, float] = {}            # by the therapy's order in the profile
        kept: dict[int, list[dict[str, Any]]] = {}
        for scan in scans.values():
            weight = 3 if scan.name == "title" else 1
            for concept, hits in scan.hits.items():
                therapy = lexicon.therapy_by_concept.get(concept)
                if therapy is None:
                    continue
                order, rule = therapy
                for hit in hits:
                    if self._ignored(rule, scan, hit):
                        continue
                    scores[order] = scores.get(order, 0) + weight
                    mentions = kept.setdefault(order, [])
                    if len(mentions) < 3:   # evidence: the first three mentions are enough
                        mentions.append(scan.evidence(hit.start, hit.end))
        for heading in document.mesh:
            for order, _ in lexicon.therapies_by_mesh.get(heading.lower(), ()):
                scores[order] = scores.get(order, 0) + 2
                kept.setdefault(order, []).append({"term": heading, "field": "mesh", "snippet": heading})
        ranked = sorted(scores, key=lambda order: (-scores[order], order))
        for order in ranked:
            evidence[lexicon.therapies[order].key] = kept[order][:3]
        return [lexicon.therapies[order].key for order in ranked]

    def _ignored(self, rule: TherapyRule, scan: FieldScan, hit: Hit) -> bool:
        """A mention that belongs to another role: an excluded phrase, or after "first-line".
        Each regex runs only when its words start within reach (the field's trigger offsets)."""
        text = scan.text
        window_start = max(0, hit.start - self.lexicon.ignore_window)
        for exclude, trigger in zip(rule.exclude, rule.exclude_triggers):
            if trigger is not None and not scan.starts_between(trigger, window_start, hit.start):
                continue
            for excluded in exclude.finditer(text, window_start, min(len(text), hit.end + 40)):
                if excluded.start() <= hit.start < excluded.end():
                    return True
        return scan.starts_between(THERAPY_CONTEXT_TRIGGER, window_start, hit.start - 1) and \
            bool(self.lexicon.ignore_context.search(text, window_start, hit.start))

    # -- study type ----------------------------------------------------------------------------

    def _study_type(self, document: Document, scans: dict[str, FieldScan], evidence: dict) -> str:
        """Publication types first (unless the title says it is a case report), then the text."""
        lexicon = self.lexicon
        scores: dict[str, float] = {}
        hits: dict[str, list[tuple[FieldScan, int, int]]] = {}
        self._study_cues(scans["title"], scores, hits)
        publication_kind, matched = None, set()
        if "case_report" not in hits:   # a title that says "case" outranks the publication type
            publication_types = set(document.publication_types)
            for kind in lexicon.study_priority:
                matched = publication_types & lexicon.study_publication_types.get(kind, frozenset())
                if matched:
                    publication_kind = kind
                    break
        if publication_kind is None or publication_kind == "other":
            self._study_cues(scans["abstract"], scores, hits)   # the abstract is read only if needed
        # A letter or comment that reports data is typed by its data.
        if publication_kind is not None and not (publication_kind == "other" and any(k != "other" for k in scores)):
            evidence[f"study_type:{publication_kind}"] = [{"term": sorted(matched)[0], "field": "publication_type",
                                                           "snippet": ", ".join(document.publication_types)}]
            return publication_kind
        if not scores:
            evidence[f"study_type:{lexicon.study_default}"] = [
                {"term": "no study-design cue", "field": "title, abstract",
                 "snippet": f"default: {lexicon.study_default}"}]
            return lexicon.study_default
        rank = {kind: index for index, kind in enumerate(lexicon.study_priority)}
        best = min(scores, key=lambda kind: (-scores[kind], rank.get(kind, 99)))
        evidence[f"study_type:{best}"] = [scan.evidence(start, end) for scan, start, end in hits[best][:3]]
        return best

    def _study_cues(self, scan: FieldScan, scores: dict[str, float],
                    hits: dict[str, list[tuple[FieldScan, int, int]]]) -> None:
        """Add one field's study-design cues (terms and patterns) to the scores and spans."""
        lexicon = self.lexicon
        present: dict[str, list[tuple[int, int, str]]] = {}
        for concept, concept_hits in scan.hits.items():
            kind = lexicon.study_kind_by_concept.get(concept)
            if kind is not None:
                present[kind] = [(hit.start, hit.end, hit.term.lower()) for hit in concept_hits]
        for pattern, kind in lexicon.study_runs:
            offsets = scan.offsets.get(pattern)
            match = None if offsets is None else next(iter(pattern.matches(scan.masked, offsets)), None)
            if match:
                present.setdefault(kind, []).append((match.start(), match.end(), pattern.regex.pattern))
        for kind, found in present.items():
            weight = lexicon.study_weights.get(kind, 1)
            distinct = {key: (start, end) for start, end, key in reversed(found)}
            if scan.name == "title":
                scores[kind] = scores.get(kind, 0) + TITLE_STUDY_WEIGHT * weight
            else:
                scores[kind] = scores.get(kind, 0) + weight * min(len(distinct), MAX_BODY_STUDY_CUES)
            # Spans now; evidence is built for the winning kind only.
            hits.setdefault(kind, []).extend((scan, start, end) for start, end in list(distinct.values())[:2])


def classify_paper(classifier: Classifier, paper: Paper) -> Classification:
    return classifier.classify(Document.from_paper(paper))
