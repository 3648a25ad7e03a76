"""Parsing real E-utilities responses (Biopython's recorded NCBI answers) into Papers."""

from __future__ import annotations

import logging

import pytest

from conftest import fixture_bytes
from tracker.errors import EutilsQueryError
from tracker.pubmed_xml import (RetryableBodyError, parse_efetch, parse_elink, parse_epost,
                                parse_esearch)
from tracker.standin import PUBMED_DOCTYPE, article_xml
from datetime import date


def test_full_modern_record_has_every_field():
    [paper] = parse_efetch(fixture_bytes("pubmed4.xml"))
    assert paper.pmid == "27797938"
    assert paper.doi == "10.1136/gutjnl-2016-312510"
    assert paper.pmcid == "PMC5442267"
    assert paper.title == ("Leucocyte telomere length, genetic variants at the <i>TERT</i> gene "
                           "region and risk of pancreatic cancer.")
    assert [section.label for section in paper.abstract] == ["OBJECTIVE", "DESIGN", "RESULTS",
                                                            "CONCLUSIONS"]
    assert paper.authors[:2] == ["Bao Y", "Prescott J"] and len(paper.authors) == 22
    assert (paper.journal, paper.journal_abbrev) == ("Gut", "Gut")
    assert paper.pub_date == "2017-06"
    assert paper.edat == "2016-11-01"
    assert "Observational Study" in paper.publication_types
    adenocarcinoma = paper.mesh[0]
    assert adenocarcinoma.descriptor == "Adenocarcinoma" and adenocarcinoma.major
    assert ("epidemiology", True) in adenocarcinoma.qualifiers
    assert paper.keywords == ["PANCREATIC CANCER"]
    assert "Telomerase" in paper.chemicals
    assert paper.languages == ["eng"]
    assert [(c.kind, c.pmid) for c in paper.corrections] == [("CommentIn", "27920200")]


def test_missing_parts_are_normal():
    first, second = parse_efetch(fixture_bytes("pubmed1.xml"))
    assert first.pmid == "12091962"
    assert first.abstract == [] and first.doi is None and first.pmcid is None
    assert first.pub_date == "1990"      # PubDate with a Season only
    assert second.doi == "10.1016/0005-2795(76)90109-4"
    assert second.abstract[0].label is None


def test_badly_nested_markup_and_mathml_are_cleaned():
    [paper] = parse_efetch(fixture_bytes("pubmed6.xml"))
    assert paper.title_text.startswith('A "Blood Relationship" Between the Overlooked')
    text = paper.abstract[0].text
    assert "<math" not in text and "<mi>" not in text
    assert "V.O2max" in text             # MathML symbols kept as text, not dropped
    assert "LE<sub>min</sub>" in text    # allowed inline markup survives
    assert "&lt; 0.001" in text          # a bare "<" stays escaped


def test_hostile_markup_never_passes_through():
    record = article_xml("1", 'Hello <script>alert("x")</script><img src="x" onerror="alert(1)"/>'
                         '<i onclick="steal()">world</i>', date(2026, 11, 2),
                         abstract='<a href="javascript:alert(1)">click</a> &lt;b&gt;bold&lt;/b&gt;')
    [paper] = parse_efetch(f"{PUBMED_DOCTYPE}<PubmedArticleSet>{record}</PubmedArticleSet>".encode())
    assert paper.title == "Hello <i>world</i>"
    assert "href" not in paper.abstract[0].text and "javascript" not in paper.abstract[0].text
    assert paper.abstract[0].text == "click &lt;b&gt;bold&lt;/b&gt;"


def test_book_articles_are_parsed_too():
    book = ("<PubmedBookArticle><BookDocument><PMID Version=\"1\">20301295</PMID>"
            "<ArticleIdList><ArticleId IdType=\"bookaccession\">NBK1116</ArticleId></ArticleIdList>"
            "<Book><Publisher><PublisherName>University of Washington</PublisherName></Publisher>"
            "<BookTitle book=\"gene\">GeneReviews</BookTitle><PubDate><Year>1993</Year></PubDate>"
            "</Book><ArticleTitle>Lymphoma <i>after</i> cellular therapy</ArticleTitle>"
            "<Language>eng</Language><AuthorList Type=\"authors\"><Author ValidYN=\"Y\">"
            "<LastName>Adam</LastName><ForeName>Margaret P</ForeName><Initials>MP</Initials></Author>"
            "<Author><CollectiveName>GeneReviews Group</CollectiveName></Author></AuthorList>"
            "<PublicationType UI=\"D016454\">Review</PublicationType>"
            "<Abstract><AbstractText Label=\"SUMMARY\">A summary.</AbstractText></Abstract>"
            "</BookDocument><PubmedBookData><History><PubMedPubDate PubStatus=\"entrez\"><Year>2026"
            "</Year><Month>11</Month><Day>3</Day></PubMedPubDate></History><PublicationStatus>ppublish"
            "</PublicationStatus><ArticleIdList><ArticleId IdType=\"pubmed\">20301295</ArticleId>"
            "</ArticleIdList></PubmedBookData></PubmedBookArticle>")
    [paper] = parse_efetch(f"{PUBMED_DOCTYPE}<PubmedArticleSet>{book}</PubmedArticleSet>".encode())
    assert paper.is_book and paper.pmid == "20301295"
    assert paper.title == "Lymphoma <i>after</i> cellular therapy"
    assert paper.authors == ["Adam MP", "GeneReviews Group"]
    assert paper.edat == "2026-11-03" and paper.publication_types == ["Review"]
    assert paper.abstract[0].label == "SUMMARY"


def test_unexpected_shape_is_logged_and_skipped(caplog):
    good = article_xml("2", "A good record", date(2026, 11, 2))
    odd = '<PubmedArticle><MedlineCitation><PMID Version="1">3</PMID></MedlineCitation></PubmedArticle>'
    body = f"{PUBMED_DOCTYPE}<PubmedArticleSet>{odd}{good}</PubmedArticleSet>".encode()
    with caplog.at_level(logging.WARNING):
        papers = parse_efetch(body)
    assert [paper.pmid for paper in papers] == ["2"]
    assert "unexpected shape" in caplog.text


def test_errata_and_retractions_are_kept():
    record = article_xml("4", "Retracted study", date(2026, 11, 2),
                         publication_types=["Journal Article", "Retracted Publication"],
                         corrections=[("RetractionIn", "Blood. 2026;1:1"), ("ErratumIn", "Blood. 2026;2:2"),
                                      ("Cites", "Nature. 2001")])
    [paper] = parse_efetch(f"{PUBMED_DOCTYPE}<PubmedArticleSet>{record}</PubmedArticleSet>".encode())
    assert [c.kind for c in paper.corrections] == ["RetractionIn", "ErratumIn"]
    assert paper.is_retracted


def test_search_link_and_post_answers():
    history = parse_esearch(fixture_bytes("esearch2.xml"))
    assert history.count == 42249 and len(history.ids) == 100
    assert history.query_key == "1" and history.webenv.startswith("MCID_")
    empty = parse_esearch(fixture_bytes("esearch8.xml"))
    assert empty.count == 0 and empty.ids == []
    assert "PhraseNotFound: abcXYZ" in empty.warnings
    assert {seed: len(ids) for seed, ids in
            parse_elink(fixture_bytes("elink1.xml"), "pubmed_pubmed_citedin").items()} == {"9298984": 39}
    # comma-joined ids come back as one merged LinkSet: both seeds get the merged links
    merged = parse_elink(fixture_bytes("elink3.xml"), "pubmed_pubmed_citedin")
    assert merged["11812492"] == merged["11774222"] and len(merged["11812492"]) == 3
    assert parse_epost(fixture_bytes("epost1.xml")) == ("MCID_692851c130aec64bed0a8c2a", "1")


def test_in_band_error_is_a_query_error():
    with pytest.raises(EutilsQueryError, match="Invalid db name specified: nothing"):
        parse_epost(fixture_bytes("epost2.xml"))


@pytest.mark.parametrize("body", [
    fixture_bytes("pubmed4.xml")[:4000],                          # cut off mid-record
    b"<html><head><title>NCBI/eutils202 - WWW Error 500</title></head></html>",
    b"Bad Gateway",
    b"",
])
def test_cut_off_or_non_xml_bodies_are_retryable(body):
    with pytest.raises(RetryableBodyError):
        parse_efetch(body)
