"""Benchmark: build and render a 300-paper edition, with the time split by stage.

Stages: classify (300 new papers), build the draft (select, arrange, store the items), view
(items with findings and links), render the HTML email (Jinja + CSS inlining) and the text.
The obvious alternative for the costliest stage is measured in the same run: rendering the
HTML without inlining its CSS, to show what css-inline costs.

    python benchmarks/edition.py [--papers 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tracker.classify import Classifier
from tracker.edition import EditionBuilder
from tracker.labels import classify_store
from tracker.lexicon import build_lexicon
from tracker.paper import AbstractSection, Paper
from tracker.profile import load_profile
from tracker.render import email_context, render_email
from tracker.store import Store
from tracker.templating import environment

DRUGS = ["glofitamab", "epcoritamab", "polatuzumab vedotin", "a second CAR-T infusion", "pembrolizumab",
         "lenalidomide", "R-GemOx", "allogeneic transplantation", "radiotherapy", "loncastuximab"]
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def papers(count: int) -> list[Paper]:
    monday = date(2026, 11, 9)
    made = []
    for index in range(count):
        drug = DRUGS[index % len(DRUGS)]
        made.append(Paper(
            pmid=str(43000000 + index), edat=(monday + timedelta(days=index % 7)).isoformat(),
            pub_date="2026-11", title=f"Outcomes of {drug} after CAR T-cell failure in large B-cell lymphoma ({index})",
            abstract=[AbstractSection("BACKGROUND", None, "Relapse after CAR-T therapy is common. " * 3),
                      AbstractSection("RESULTS", None, f"In {40 + index % 50} patients, {drug} gave a 41% response rate (NCT0{5000000 + index})."),
                      AbstractSection("CONCLUSIONS", None, f"{drug.capitalize()} is active after CAR-T failure.")],
            authors=["Smith J", "Garcia M", "Chen L", "Okafor C"], journal="Blood Advances",
            journal_abbrev="Blood Adv", doi=f"10.9999/bench.{index}",
            publication_types=["Journal Article", "Clinical Trial, Phase II" if index % 3 == 0 else "Multicenter Study"]))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=300)
    arguments = parser.parse_args()
    profile = load_profile()
    lexicon = build_lexicon(profile)
    env = environment()
    timings: dict[str, float] = {}

    def timed(stage: str, action):
        started = time.perf_counter()
        result = action()
        timings[stage] = time.perf_counter() - started
        return result

    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "bench.db") as store:
        with store.transaction():
            for paper in papers(arguments.papers):
                store.upsert_paper(paper, ["query:car-t-failure-lymphoma", "cites:38283399"], NOW)
        env.get_template("email.html")   # compile templates outside the timed stages
        env.get_template("email.txt")
        timed("classify", lambda: classify_store(store, Classifier(lexicon), NOW))
        builder = EditionBuilder(store, profile, lexicon)
        edition_id = timed("build draft", lambda: builder.draft("2026-W46", NOW))
        view = timed("view", lambda: builder.view(edition_id))
        context = email_context(view, "https://digest.example.org")
        rendered = timed("render html+text", lambda: render_email(env, context))
        plain_html = timed("(html without inlining)", lambda: env.get_template("email.html").render(c=context))

    total = sum(seconds for stage, seconds in timings.items() if not stage.startswith("("))
    print(f"edition of {len(view.items)} papers in {len(view.sections)} sections "
          f"({len(rendered.html) // 1024} KiB HTML, {len(rendered.text) // 1024} KiB text)")
    for stage, seconds in timings.items():
        print(f"  {stage:<26} {seconds * 1000:8.1f} ms")
    print(f"  {'total':<26} {total * 1000:8.1f} ms  (goal: under 1,000 ms)")
    print(f"inlining CSS makes the HTML render {timings['render html+text'] / timings['(html without inlining)']:.1f}x "
          f"the time of a plain Jinja render ({len(plain_html) // 1024} KiB before inlining)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
