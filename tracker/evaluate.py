"""`cartdigest evaluate`: the classifier against a hand-labelled gold file.

Relevance and study type are single-label (precision, recall, F1 per label, macro-F1, accuracy
and a confusion table); therapies are multi-label and, as the labelling guide says, scored only
on papers whose gold relevance is core or adjacent (micro and macro averages).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tracker.classify import Classification, Classifier, Document
from tracker.errors import CartdigestError
from tracker.lexicon import RELEVANCE_LEVELS, STUDY_TYPES, THERAPY_KEYS

log = logging.getLogger(__name__)


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    support: int

    def as_json(self) -> dict[str, float | int]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "support": self.support}


def prf(true_positive: int, false_positive: int, false_negative: int) -> Scores:
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, true_positive + false_negative)


def single_label(gold: list[str], predicted: list[str], labels: Iterable[str]) -> dict[str, Any]:
    labels = list(labels)
    per_label = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted) if g == label and p != label)
        per_label[label] = prf(tp, fp, fn)
    present = [label for label in labels if per_label[label].support]
    confusion = {g: {p: sum(1 for a, b in zip(gold, predicted) if a == g and b == p) for p in labels}
                 for g in labels}
    return {
        "per_label": {label: scores.as_json() for label, scores in per_label.items()},
        "macro_f1": round(sum(per_label[label].f1 for label in present) / len(present), 4) if present else 0.0,
        "accuracy": round(sum(1 for g, p in zip(gold, predicted) if g == p) / len(gold), 4) if gold else 0.0,
        "confusion": confusion,
    }


def multi_label(gold: list[set[str]], predicted: list[set[str]], labels: Iterable[str]) -> dict[str, Any]:
    per_label = {}
    totals = [0, 0, 0]
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if label in g and label in p)
        fp = sum(1 for g, p in zip(gold, predicted) if label not in g and label in p)
        fn = sum(1 for g, p in zip(gold, predicted) if label in g and label not in p)
        per_label[label] = prf(tp, fp, fn)
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    present = [scores for scores in per_label.values() if scores.support]
    micro = prf(*totals)
    return {
        "per_label": {label: scores.as_json() for label, scores in per_label.items()},
        "micro": micro.as_json(),
        "macro_f1": round(sum(s.f1 for s in present) / len(present), 4) if present else 0.0,
        "exact_match": round(sum(1 for g, p in zip(gold, predicted) if g == p) / len(gold), 4) if gold else 0.0,
        "records": len(gold),
    }


@dataclass
class Evaluation:
    records: int
    relevance: dict[str, Any]
    therapies: dict[str, Any]
    study_type: dict[str, Any]
    misclassified: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    classifier_version: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"records": self.records, "classifier_version": self.classifier_version,
                "relevance": self.relevance, "therapies": self.therapies,
                "study_type": self.study_type, "misclassified": self.misclassified,
                "skipped": self.skipped}


def read_gold(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Gold records, and a note for each line that could not be used (kept going past it)."""
    records, skipped = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CartdigestError(f"gold file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CartdigestError(f"cannot read gold file {path}: {error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            skipped.append(f"line {number}: not JSON ({error.msg})")
            continue
        missing = [key for key in ("pmid", "title", "relevance", "therapies", "study_type")
                   if key not in record]
        if missing:
            skipped.append(f"line {number}: missing {', '.join(missing)}")
            continue
        records.append(record)
    if not records:
        raise CartdigestError(f"gold file {path} holds no usable record"
                              + (f" ({skipped[0]})" if skipped else ""))
    return records, skipped


def evaluate(classifier: Classifier, records: list[dict[str, Any]],
             skipped: list[str] | None = None) -> tuple[Evaluation, list[Classification]]:
    predictions = [classifier.classify(Document.from_gold(record)) for record in records]
    relevance = single_label([r["relevance"] for r in records], [p.relevance for p in predictions],
                             RELEVANCE_LEVELS)
    study_type = single_label([r["study_type"] for r in records], [p.study_type for p in predictions],
                              STUDY_TYPES)
    scored = [(set(r["therapies"]), set(p.therapies)) for r, p in zip(records, predictions)
              if r["relevance"] in ("core", "adjacent")]
    therapies = multi_label([g for g, _ in scored], [p for _, p in scored], THERAPY_KEYS)

    misclassified = []
    for record, prediction in zip(records, predictions):
        wrong = {}
        if record["relevance"] != prediction.relevance:
            wrong["relevance"] = {"gold": record["relevance"], "predicted": prediction.relevance}
        if record["study_type"] != prediction.study_type:
            wrong["study_type"] = {"gold": record["study_type"], "predicted": prediction.study_type}
        if record["relevance"] in ("core", "adjacent") and set(record["therapies"]) != set(prediction.therapies):
            wrong["therapies"] = {"gold": sorted(record["therapies"]),
                                  "predicted": sorted(prediction.therapies)}
        if wrong:
            misclassified.append({"pmid": str(record["pmid"]), "title": record["title"], **wrong,
                                  "evidence": _misleading_evidence(prediction, wrong)})
    return (Evaluation(len(records), relevance, therapies, study_type, misclassified, skipped or [],
                       classifier.version), predictions)


def _misleading_evidence(prediction: Classification, wrong: dict[str, Any]) -> dict[str, list]:
    """The evidence behind each wrong label (what misled), or why a label is missing."""
    shown: dict[str, list] = {}
    if "relevance" in wrong:
        shown[prediction.relevance] = prediction.evidence.get(prediction.relevance, [])
    if "study_type" in wrong:
        key = f"study_type:{prediction.study_type}"
        shown[key] = prediction.evidence.get(key, [])
    if "therapies" in wrong:
        for therapy in set(wrong["therapies"]["predicted"]) - set(wrong["therapies"]["gold"]):
            shown[therapy] = prediction.evidence.get(therapy, [])
        for therapy in set(wrong["therapies"]["gold"]) - set(wrong["therapies"]["predicted"]):
            shown[therapy] = [{"term": "(no term of the lexicon matched)", "field": "", "snippet": ""}]
    return shown


def write_predictions(path: Path, records: list[dict[str, Any]], predictions: list[Classification]) -> None:
    try:
        with path.open("w", encoding="utf-8") as handle:
            for record, prediction in zip(records, predictions):
                handle.write(json.dumps({"pmid": str(record["pmid"]), **prediction.as_json()},
                                        ensure_ascii=False) + "\n")
    except OSError as error:
        raise CartdigestError(f"cannot write {path}: {error.strerror}") from None


def format_report(result: Evaluation) -> list[str]:
    """The human-readable report: tables of scores, confusions and misclassified PMIDs."""
    lines = [f"{result.records} gold records, classifier {result.classifier_version}"]
    for note in result.skipped:
        lines.append(f"skipped {note}")
    for title, block, labels in (("relevance", result.relevance, RELEVANCE_LEVELS),
                                 ("study type", result.study_type, STUDY_TYPES)):
        lines += ["", f"{title}: accuracy {block['accuracy']:.3f}, macro-F1 {block['macro_f1']:.3f}",
                  f"  {'label':<26}{'P':>7}{'R':>7}{'F1':>7}{'n':>5}"]
        for label in labels:
            s = block["per_label"][label]
            lines.append(f"  {label:<26}{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}{s['support']:>5}")
        lines.append("  confusion (rows gold, columns predicted): " + " ".join(label[:8] for label in labels))
        for gold in labels:
            lines.append(f"  {gold:<26}" + "".join(f"{block['confusion'][gold][p]:>9}" for p in labels))
    therapies = result.therapies
    lines += ["", f"therapies (on {therapies['records']} core/adjacent records): micro-F1 "
                  f"{therapies['micro']['f1']:.3f} (P {therapies['micro']['precision']:.3f}, "
                  f"R {therapies['micro']['recall']:.3f}), macro-F1 {therapies['macro_f1']:.3f}",
              f"  {'label':<26}{'P':>7}{'R':>7}{'F1':>7}{'n':>5}"]
    for label in THERAPY_KEYS:
        s = therapies["per_label"][label]
        lines.append(f"  {label:<26}{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}{s['support']:>5}")
    lines += ["", f"misclassified: {len(result.misclassified)}"]
    for miss in result.misclassified:
        wrong = ", ".join(f"{key} gold {value['gold']} got {value['predicted']}"
                          for key, value in miss.items() if isinstance(value, dict) and "gold" in value)
        lines.append(f"  {miss['pmid']}: {wrong}")
        for label, entries in miss["evidence"].items():
            for entry in entries[:2]:
                lines.append(f"      {label}: {entry.get('term')!r} in {entry.get('field')}: {entry.get('snippet', '')[:100]}")
    return lines
