"""Benchmark: records per second to classify (parsing excluded), on one core.

Compares, in the same run on the same documents, cartdigest's classifier (one alternation
per concept, relation patterns, evidence kept) against the naive approach: one regular-expression
search per lexicon term per field, with no evidence and no relation rules, i.e. strictly less work.

    python benchmarks/classify.py [--records 5000] [--repeat 5] [--gold ../shared/gold/dev.jsonl]

Each approach is timed --repeat times, taking turns, and the best run is reported (as timeit
does: slower runs are other processes' interference; this machine's speed varies by a third
from minute to minute), with the median beside it. The naive approach is ~30x slower, so it is timed on
at most --naive-records records; records per second compare either way.

A figure that does not drift with the machine: CPU instructions per record, as
    valgrind --tool=callgrind python benchmarks/classify.py --records 470 --repeat 1 --naive-records 0
less the same with --records 1, divided by 469.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

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


def timings(works: list[Callable[[], object]], repeat: int) -> list[list[float]]:
    """Seconds for each of `repeat` runs of each work, the works taking turns so that a slow
    spell on the machine falls on both."""
    seconds: list[list[float]] = [[] for _ in works]
    for _ in range(max(1, repeat)):
        for work, times in zip(works, seconds):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--naive-records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gold", type=Path, default=HERE.parent.parent / "shared" / "gold" / "dev.jsonl")
    arguments = parser.parse_args()
    docs = documents(arguments.gold, arguments.records)
    lexicon = build_lexicon(load_profile())
    classifier = Classifier(lexicon)
    patterns = [re.compile(term_pattern(term), re.IGNORECASE) for term in naive_terms(lexicon.raw)]

    classifier.classify(docs[0])  # warm the regex engine's caches for both
    naive_classify(patterns, docs[0])
    naive_docs = docs[:arguments.naive_records]
    if not naive_docs:   # --naive-records 0: ours alone, e.g. to count instructions under valgrind
        [ours] = timings([lambda: [classifier.classify(document) for document in docs]], arguments.repeat)
        print(f"cartdigest: {len(docs) / min(ours):.0f} records/s (best of {arguments.repeat})")
        return 0
    ours, naive = timings([lambda: [classifier.classify(document) for document in docs],
                           lambda: [naive_classify(patterns, document) for document in naive_docs]],
                          arguments.repeat)
    ours_rate = [len(docs) / seconds for seconds in ours]
    naive_rate = [len(naive_docs) / seconds for seconds in naive]

    print(f"classifying {len(docs)} records (one core, parsing excluded), best of {arguments.repeat} runs; "
          f"naive = one regex search per term ({len(patterns)} terms) per field, on {len(naive_docs)} records")
    print(f"{'approach':<12} {'records/s':>10} {'median':>10}")
    print(f"{'cartdigest':<12} {max(ours_rate):>10.0f} {statistics.median(ours_rate):>10.0f}")
    print(f"{'naive':<12} {max(naive_rate):>10.0f} {statistics.median(naive_rate):>10.0f}")
    print(f"cartdigest is {max(ours_rate) / max(naive_rate):.1f}x the naive approach's speed "
          f"(medians: {statistics.median(ours_rate) / statistics.median(naive_rate):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
