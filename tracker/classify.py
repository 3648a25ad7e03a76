"""Classify a paper: relevance, therapy types and study type, each label with its evidence.

Rules, not a trained model: the gold set is small and judged on unseen papers, so every rule is
a general statement about how post-CAR-T papers are written (see the profile's [classifier]).
Evidence keeps the matched term, the field it was found in and a snippet, so an editor sees why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracker.lexicon import (CAR, CAR_FILLER, CAR_SENTINEL, LYMPHOMA, OTHER_DISEASE, Hit, Lexicon,
                             TherapyRule, study_concept, therapy_concept)
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


@dataclass
class FieldScan:
    """One field of a document, scanned once: its term hits and its CAR-T-masked text."""
    name: str
    text: str
    hits: dict[str, list[Hit]]
    masked: str      # lower-cased, CAR-T mentions replaced by same-length sentinels
    triggers: set[str] = field(default_factory=set)   # pattern triggers present in `masked`

    def evidence(self, start: int, end: int, **extra: Any) -> dict[str, Any]:
        return {"term": self.text[start:end].strip(), "field": self.name,
                "snippet": snippet(self.text, start, end), **extra}


def scan_document(document: Document, lexicon: Lexicon) -> dict[str, FieldScan]:
    scans = {}
    for name in FIELDS:
        text = document.field_text(name)
        hits = lexicon.index.scan(text) if text else {}
        lower = text.lower()
        # Some characters change length when lower-cased; offsets must stay those of `text`.
        masked = lower if len(lower) == len(text) else text
        if hits.get(CAR):
            pieces, position = [], 0
            for hit in hits[CAR]:
                pieces += [masked[position:hit.start], CAR_SENTINEL + CAR_FILLER * (hit.end - hit.start - 1)]
                position = hit.end
            masked = "".join(pieces) + masked[position:]
        scans[name] = FieldScan(name, text, hits, masked, lexicon.triggers.present(masked))
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

        score = 0.0
        kinds: set[str] = set()
        title = scans["title"]
        for cue in lexicon.cues:
            title_hits, body_hits = [], []
            # A cue that counts only in titles need not read the abstract.
            fields = scans.values() if cue.weight else (title,)
            runs = [(pattern, scan) for pattern in cue.patterns for scan in fields]
            if title.hits.get(CAR):
                runs += [(pattern, title) for pattern in cue.title_patterns]
            for pattern, scan in runs:
                if not scan.text or (pattern.needs_car and CAR_SENTINEL not in scan.masked) \
                        or not pattern.can_match(scan.triggers):
                    continue
                if scan.name == "title" and title_hits or scan.name != "title" and len(body_hits) >= 2:
                    continue   # this cue already counts all it can from this field
                for match in pattern.finditer(scan.masked):
                    if pattern.preceded_by and not self._therapy_just_before(scan, match.start(), pattern.within):
                        continue
                    (title_hits if scan.name == "title" else body_hits).append((scan, match))
            contribution = (cue.title_weight if title_hits else 0) + cue.weight * min(len(body_hits), 2)
            if contribution:
                score += contribution
                if contribution > 0:
                    kinds.add(cue.kind)
                for scan, match in title_hits[:1] + body_hits[:2]:
                    weight = cue.title_weight if scan.name == "title" else cue.weight
                    reasons.append(scan.evidence(match.start(), match.end(), cue=cue.name, weight=weight))

        disease, disease_reason = self._disease(document, scans)
        if disease_reason:
            reasons.append(disease_reason)
        if score >= lexicon.relevance_threshold:
            relevance = "core" if disease == "lymphoma" else "adjacent"
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
        scored: list[tuple[float, int, str]] = []
        for order, rule in enumerate(self.lexicon.therapies):
            kept: list[dict[str, Any]] = []
            score = 0.0
            for scan in scans.values():
                for hit in scan.hits.get(therapy_concept(rule.key), []):
                    if self._ignored(rule, scan.text, hit):
                        continue
                    score += 3 if scan.name == "title" else 1
                    if len(kept) < 3:   # evidence: the first three mentions are enough
                        kept.append(scan.evidence(hit.start, hit.end))
            for heading in document.mesh:
                if heading.lower() in rule.mesh:
                    score += 2
                    kept.append({"term": heading, "field": "mesh", "snippet": heading})
            if score > 0:
                scored.append((score, order, rule.key))
                evidence[rule.key] = kept[:3]
        return [key for _, _, key in sorted(scored, key=lambda item: (-item[0], item[1]))]

    def _ignored(self, rule: TherapyRule, text: str, hit: Hit) -> bool:
        """A mention that belongs to another role: an excluded phrase, or after "first-line"."""
        window_start = max(0, hit.start - self.lexicon.ignore_window)
        for exclude in rule.exclude:
            for excluded in exclude.finditer(text, window_start, min(len(text), hit.end + 40)):
                if excluded.start() <= hit.start < excluded.end():
                    return True
        return bool(self.lexicon.ignore_context.search(text, window_start, hit.start))

    # -- study type ----------------------------------------------------------------------------

    def _study_type(self, document: Document, scans: dict[str, FieldScan], evidence: dict) -> str:
        lexicon = self.lexicon
        scores: dict[str, float] = {}
        hits: dict[str, list[tuple[FieldScan, int, int]]] = {}
        for kind in lexicon.study_patterns:
            weight = lexicon.study_weights.get(kind, 1)
            for scan in (scans["title"], scans["abstract"]):
                found = [(hit.start, hit.end, hit.term.lower()) for hit in scan.hits.get(study_concept(kind), [])]
                for pattern in lexicon.study_patterns[kind]:
                    match = next(pattern.finditer(scan.masked), None) if pattern.can_match(scan.triggers) else None
                    if match:
                        found.append((match.start(), match.end(), pattern.regex.pattern))
                if not found:
                    continue
                distinct = {key: (start, end) for start, end, key in reversed(found)}
                if scan.name == "title":
                    scores[kind] = scores.get(kind, 0) + TITLE_STUDY_WEIGHT * weight
                else:
                    scores[kind] = scores.get(kind, 0) + weight * min(len(distinct), MAX_BODY_STUDY_CUES)
                # Spans now; evidence is built for the winning kind only.
                hits.setdefault(kind, []).extend((scan, start, end) for start, end in list(distinct.values())[:2])

        publication_types = set(document.publication_types)
        title_case = any(scan.name == "title" for scan, _, _ in hits.get("case_report", []))
        if not title_case:
            for kind in lexicon.study_priority:
                matched = publication_types & lexicon.study_publication_types.get(kind, frozenset())
                if not matched:
                    continue
                if kind == "other" and any(k != "other" for k in scores):
                    break   # a letter that reports data is typed by its data
                evidence[f"study_type:{kind}"] = [{"term": sorted(matched)[0],
                                                   "field": "publication_type",
                                                   "snippet": ", ".join(document.publication_types)}]
                return kind
        if not scores:
            evidence[f"study_type:{lexicon.study_default}"] = [
                {"term": "no study-design cue", "field": "title, abstract",
                 "snippet": f"default: {lexicon.study_default}"}]
            return lexicon.study_default
        rank = {kind: index for index, kind in enumerate(lexicon.study_priority)}
        best = min(scores, key=lambda kind: (-scores[kind], rank.get(kind, 99)))
        evidence[f"study_type:{best}"] = [scan.evidence(start, end) for scan, start, end in hits[best][:3]]
        return best


def classify_paper(classifier: Classifier, paper: Paper) -> Classification:
    return classifier.classify(Document.from_paper(paper))
