"""Benchmark: records per second to classify (parsing excluded), on one core.

Compares, in the same run on the same documents, cartdigest's classifier (one alternation
per concept, relation patterns, evidence kept) against the naive approach: one regular-expression
search per lexicon term per field, with no evidence and no relation rules, i.e. strictly less work.

    python benchmarks/classify.py [--records 5000] [--gold ../shared/gold/dev.jsonl]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from tracker.classify import Classifier, Document
from tracker.lexicon import build_lexicon, term_pattern
from tracker.profile import load_profile

HERE = Path(__file__).resolve().parent


def documents(gold: Path, count: int) -> list[Document]:
    if gold.is_file():
        base = [Document.from_gold(json.loads(line)) for line in gold.read_text().splitlines() if line.strip()]
    else:  # the demo sample, when the gold file is not beside the checkout
        from tracker.demo import load_sample
        base = [Document(r["pmid"], r["title"], r["abstract"] if isinstance(r["abstract"], str)
                         else " ".join(text for _, text in r["abstract"]), tuple(r["keywords"]),
                         tuple(m for m, _ in r["mesh"]), tuple(r["publication_types"]))
                for r in load_sample()]
    return [base[index % len(base)] for index in range(count)]


def naive_terms(raw: dict) -> list[str]:
    terms = list(raw["car_t"]["terms"]) + list(raw["disease"]["lymphoma"]) + list(raw["disease"]["other"])
    for rule in raw["therapies"].values():
        terms += rule.get("terms", [])
    return terms


def naive_classify(patterns: list[re.Pattern[str]], document: Document) -> int:
    found = 0
    for field in (document.title, document.abstract, "; ".join(document.keywords)):
        for pattern in patterns:
            if pattern.search(field):
                found += 1
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--gold", type=Path, default=HERE.parent.parent / "shared" / "gold" / "dev.jsonl")
    arguments = parser.parse_args()
    docs = documents(arguments.gold, arguments.records)
    lexicon = build_lexicon(load_profile())
    classifier = Classifier(lexicon)
    patterns = [re.compile(term_pattern(term), re.IGNORECASE) for term in naive_terms(lexicon.raw)]

    classifier.classify(docs[0])  # warm the regex engine's caches for both
    naive_classify(patterns, docs[0])
    started = time.perf_counter()
    for document in docs:
        classifier.classify(document)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for document in docs:
        naive_classify(patterns, document)
    naive = time.perf_counter() - started

    print(f"classifying {len(docs)} records (one core, parsing excluded); "
          f"naive = one regex search per term ({len(patterns)} terms) per field")
    print(f"{'approach':<12} {'seconds':>8} {'records/s':>10}")
    print(f"{'cartdigest':<12} {ours:>8.3f} {len(docs) / ours:>10.0f}")
    print(f"{'naive':<12} {naive:>8.3f} {len(docs) / naive:>10.0f}")
    print(f"cartdigest is {naive / ours:.1f}x the naive approach's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
