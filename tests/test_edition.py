"""The weekly edition: contents, order, editor changes, status rules and rendering."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from conftest import NOW, WEEK
from tracker.edition import (EditionError, last_complete_week, week_bounds, week_label)
from tracker.finding import key_finding
from tracker.paper import AbstractSection, Paper
from tracker.render import email_context, render_email, render_web
from tracker.templating import environment

GOLDEN = Path(__file__).parent / "golden"
BASE = "https://digest.example.org"


def render(view, **options):
    return render_email(environment(), email_context(view, BASE, **options))


def test_weeks_are_iso_weeks():
    assert week_bounds("2026-W46") == (date(2026, 11, 9), date(2026, 11, 15))
    assert week_bounds("2026-W53") == (date(2026, 12, 28), date(2027, 1, 3))
    with pytest.raises(EditionError, match="write it like 2026-W46"):
        week_bounds("2026-46")
    with pytest.raises(EditionError, match="does not exist"):
        week_bounds("2025-W53")
    assert last_complete_week(datetime(2026, 11, 16, 7, 0)) == "2026-W46"    # a Monday
    assert last_complete_week(datetime(2026, 11, 22, 23, 0)) == "2026-W46"   # the Sunday after
    assert week_label(date(2026, 12, 28), date(2027, 1, 3)) == "28 December 2026 – 3 January 2027"


def test_sections_in_profile_order_with_related_last(builder):
    view = builder.view(builder.draft(WEEK, NOW))
    assert [s.key for s in view.sections] == ["bispecific_antibody", "cell_therapy", "other", "related"]
    bispecific = view.sections[0]
    assert [i.pmid for i in bispecific.items] == ["41000002", "41000001"]    # trial before cohort
    assert view.sections[-1].items[0].pmid == "41000005"                       # myeloma: related
    left_out = {item.pmid: item.left_out for item in view.excluded}
    assert left_out == {"41000006": "classified off topic"}                    # CRS paper
    assert "41000007" not in {item.pmid for item in view.items}                # outside the week


def test_item_content(builder):
    view = builder.view(builder.draft(WEEK, NOW))
    glofitamab = next(item for item in view.items if item.pmid == "41000001")
    assert glofitamab.authors == "Doe J, Roe R, Poe P, et al."
    assert glofitamab.finding_html == "Glofitamab gave durable responses after CAR-T failure."
    assert glofitamab.finding_rule == "conclusions"
    assert [link.label for link in glofitamab.links] == ["PubMed", "DOI", "Free full text (PMC)"]
    assert glofitamab.why == ["found by the PubMed search for CAR-T failure in B-cell lymphoma"]
    trial = next(item for item in view.items if item.pmid == "41000002")
    assert [t.label for t in trial.trials] == ["NCT01234567"]
    assert trial.trials[0].url == "https://clinicaltrials.gov/study/NCT01234567"


def test_key_finding_rules():
    def paper(*sections):
        return Paper(pmid="1", title="t", abstract=[AbstractSection(label, None, text) for label, text in sections])

    assert key_finding(paper(("RESULTS", "R."), ("INTERPRETATION", "It works."))) == ("It works.", "conclusions")
    assert key_finding(paper((None, "We did X. Responses were 40%. These data suggest Y works. Funding was Z.")))[0] \
        == "These data suggest Y works."
    assert key_finding(paper((None, "We did X. Responses were 40%.")))[0] == "Responses were 40%."
    assert key_finding(Paper(pmid="1", title="t")) == (None, "no abstract")
    long = key_finding(paper(("CONCLUSIONS", "word " * 200)))[0]
    assert len(long) <= 421 and long.endswith("…")


def test_editor_changes_survive_a_rebuild(builder, week_store):
    edition_id = builder.draft(WEEK, NOW)
    builder.exclude(edition_id, "41000003", "ada", NOW)
    builder.include(edition_id, "41000006", "ada", NOW)
    builder.move(edition_id, "41000004", "stem_cell_transplant", "ada", NOW)
    builder.reorder(edition_id, "41000001", "up", "ada", NOW)
    builder.set_finding(edition_id, "41000002", "Edited <script>x</script><i>finding</i>", "ada", NOW)
    builder.set_note(edition_id, "Two bispecific papers this week.")
    assert builder.draft(WEEK, NOW) == edition_id                    # rebuild
    view = builder.view(edition_id)
    sections = {s.key: [i.pmid for i in s.items] for s in view.sections}
    assert "41000003" not in sum(sections.values(), [])
    assert sections["bispecific_antibody"] == ["41000001", "41000002"]
    assert sections["stem_cell_transplant"] == ["41000004"]
    assert "41000006" in sections["other"]
    edited = next(item for item in view.items if item.pmid == "41000002")
    assert (edited.finding_html, edited.finding_rule) == ("Edited <i>finding</i>", "editor")
    assert view.note == "Two bispecific papers this week."
    # the move is a label correction, exported as gold
    from tracker.labels import effective_labels
    label = effective_labels(week_store)[week_store.paper_by_pmid("41000004").id]
    assert label["therapies"][0] == "stem_cell_transplant" and "therapies" in label["corrected"]


def test_status_moves_forward_only_and_approved_never_changes(builder, week_store):
    edition_id = builder.draft(WEEK, NOW)
    builder.approve(edition_id, "ada", NOW)
    frozen = builder.view(edition_id)
    for change in (lambda: builder.exclude(edition_id, "41000001", "ada", NOW),
                   lambda: builder.set_note(edition_id, "late"),
                   lambda: builder.draft(WEEK, NOW),
                   lambda: builder.move(edition_id, "41000001", "other", "ada", NOW)):
        with pytest.raises(EditionError, match="never changes"):
            change()
    with pytest.raises(EditionError, match="cannot become sent"):
        builder.set_status(edition_id, "sent", NOW)
    with pytest.raises(EditionError, match="cannot become draft"):
        builder.set_status(edition_id, "draft", NOW)
    # a paper PubMed adds to the week later does not enter the approved edition
    with week_store.transaction():
        week_store.upsert_paper(Paper(pmid="41000099", title="Glofitamab after CAR-T failure in lymphoma",
                                      edat="2026-11-12"), ["query:x"], NOW)
    assert builder.view(edition_id).as_json() == frozen.as_json()
    builder.set_status(edition_id, "sending", NOW)
    builder.set_status(edition_id, "sent", NOW)
    assert builder.view(edition_id).status == "sent"
    with pytest.raises(EditionError, match="cannot become"):
        builder.set_status(edition_id, "sending", NOW)


def test_text_email_matches_the_golden_file(builder):
    view = builder.view(builder.draft(WEEK, NOW))
    view.built_at = "2026-11-16T07:00:00+00:00"
    rendered = render(view)
    golden = GOLDEN / "edition.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":   # regenerate deliberately, then review the diff
        golden.write_text(rendered.text)
    assert rendered.text == golden.read_text()


def test_html_email_structure(builder):
    view = builder.view(builder.draft(WEEK, NOW))
    rendered = render(view, unsubscribe_url=f"{BASE}/u/TOKEN", preferences_url=f"{BASE}/p/TOKEN")
    soup = BeautifulSoup(rendered.html, "html.parser")
    assert soup.select_one("table.container")["width"] == "600"
    assert "display:none" in soup.select_one("div.preheader")["style"].replace(" ", "")
    assert soup.select_one("div.preheader").text.startswith("This week: 2 bispecific antibodies")
    assert [h.text for h in soup.select("h2.section-title")][0] == "Bispecific antibodies"
    first = soup.select("td.item")[0]
    assert first["data-pmid"] == "41000002"
    assert first.select_one(".badge-study").text == "Clinical trial"
    assert first.select_one("a[href='https://clinicaltrials.gov/study/NCT01234567']")
    # CSS is inlined on elements; the dark-mode rules stay in <style>
    assert "color:" in first.select_one("h3.item-title a")["style"]
    assert "prefers-color-scheme: dark" in soup.select_one("style").text
    footer = soup.select_one("td.footer")
    assert footer.select_one(f"a[href='{BASE}/u/TOKEN']").text == "Unsubscribe"
    assert footer.select_one(f"a[href='{BASE}/p/TOKEN']").text == "Choose your sections"
    assert rendered.subject == "After CAR-T: new research on relapsed B-cell lymphoma: 5 new papers, 9–15 November 2026"


def test_a_reader_gets_only_the_sections_chosen(builder):
    view = builder.view(builder.draft(WEEK, NOW))
    rendered = render(view, sections={"cell_therapy"})
    soup = BeautifulSoup(rendered.html, "html.parser")
    assert [h["id"] for h in soup.select("h2.section-title")] == ["cell_therapy"]
    assert "1 new paper," in rendered.subject


def test_hostile_markup_is_shown_as_text(builder, week_store):
    with week_store.transaction():
        week_store.upsert_paper(Paper(
            pmid="41000010", edat="2026-11-12",
            title='Relapse after CAR-T in lymphoma &lt;script&gt;alert(1)&lt;/script&gt; <i>ok</i>',
            abstract=[AbstractSection("CONCLUSIONS", None,
                                      '<img src=x onerror="alert(1)">Relapse after CAR-T &lt;b&gt;x&lt;/b&gt;')]),
            ["query:x"], NOW)
    edition_id = builder.draft(WEEK, NOW)
    builder.include(edition_id, "41000010", "ada", NOW)
    view = builder.view(edition_id)
    for html in (render(view).html, render_web(environment(), view, BASE)):
        soup = BeautifulSoup(html, "html.parser")
        item = soup.select_one("td.item[data-pmid='41000010']")
        assert item is not None
        assert not item.select("script, img")
        assert "<script>alert(1)</script>" in item.select_one("h3.item-title").text
        assert item.select_one("h3.item-title i").text == "ok"
        assert "<b>x</b>" in item.select_one("p.finding").text
    assert "<script>alert(1)</script>" in render(view).text


def test_an_empty_week_is_an_honest_edition(builder):
    view = builder.view(builder.draft("2026-W40", NOW))
    assert view.is_empty
    rendered = render(view)
    assert "no new papers" in rendered.subject
    assert "No new papers this week" in rendered.text
    assert "PubMed search: CAR-T failure in B-cell lymphoma: 0 papers this week" in rendered.text
    soup = BeautifulSoup(rendered.html, "html.parser")
    assert soup.select_one("p.empty") and soup.select("table.log tr")


def test_the_documented_template_context_is_the_real_one(builder):
    """templates/ may only use what EmailContext and EditionView provide (StrictUndefined
    would fail the render otherwise); this renders every template with a real context."""
    from dataclasses import fields
    from tracker.render import EmailContext

    view = builder.view(builder.draft(WEEK, NOW))
    context = email_context(view, BASE, is_test=True, reader_name="Ada")
    assert {f.name for f in fields(EmailContext)} == set(vars(context))
    env = environment()
    for name in ("email.html", "email.txt", "archive_edition.html"):
        env.get_template(name).render(c=context, page_title="t")
