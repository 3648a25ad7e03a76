"""Numbered schema migrations, applied in order when the store opens.

`PRAGMA user_version` records the last one applied. Never edit a migration that has shipped:
add the next number instead.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "papers, their sources, fetch runs and the watermark", """
CREATE TABLE papers (
    id                INTEGER PRIMARY KEY,
    pmid              TEXT UNIQUE,                 -- NULL only for works PubMed does not hold yet
    doi               TEXT,
    pmcid             TEXT,
    title             TEXT NOT NULL,               -- cleaned inline markup (tracker.markup)
    abstract          TEXT NOT NULL DEFAULT '[]',  -- JSON [{label, category, text}]
    authors           TEXT NOT NULL DEFAULT '[]',  -- JSON ["Neelapu SS", "collective name"]
    journal           TEXT,
    journal_abbrev    TEXT,
    pub_date          TEXT,                        -- "2024", "2024-03" or "2024-03-15"
    edat              TEXT,                        -- Entrez date YYYY-MM-DD
    publication_types TEXT NOT NULL DEFAULT '[]',
    mesh              TEXT NOT NULL DEFAULT '[]',  -- JSON [{descriptor, ui, major, qualifiers}]
    keywords          TEXT NOT NULL DEFAULT '[]',
    chemicals         TEXT NOT NULL DEFAULT '[]',
    languages         TEXT NOT NULL DEFAULT '[]',
    corrections       TEXT NOT NULL DEFAULT '[]',  -- JSON [{kind, pmid, source}]: errata, retractions
    is_book           INTEGER NOT NULL DEFAULT 0 CHECK (is_book IN (0, 1)),
    is_retracted      INTEGER NOT NULL DEFAULT 0 CHECK (is_retracted IN (0, 1)),
    content_hash      TEXT NOT NULL,
    first_seen        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX papers_edat ON papers (edat);
CREATE INDEX papers_doi ON papers (doi);

CREATE TABLE fetch_runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    since       TEXT NOT NULL,
    until       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'interrupted')),
    searches    TEXT NOT NULL DEFAULT '[]',        -- JSON [{source, term, since, until, count}]
    requests    INTEGER NOT NULL DEFAULT 0,
    found       INTEGER NOT NULL DEFAULT 0,
    new         INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);

-- Why each paper is in the store: 'query:<name>', 'cites:<pmid>', 'feed:<name>'. Every reason kept.
CREATE TABLE paper_sources (
    paper_id     INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    source       TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    fetch_run_id INTEGER REFERENCES fetch_runs (id),
    PRIMARY KEY (paper_id, source)
);

CREATE TABLE state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""),
    (2, "machine labels and editor corrections", """
-- The classifier's labels, one row per paper, tagged with the classifier version and the
-- content it read, so `classify` knows what is stale.
CREATE TABLE classifications (
    paper_id      INTEGER PRIMARY KEY REFERENCES papers (id) ON DELETE CASCADE,
    version       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    relevance     TEXT NOT NULL CHECK (relevance IN ('core', 'adjacent', 'off_topic')),
    therapies     TEXT NOT NULL,                 -- JSON list, main therapy first
    study_type    TEXT NOT NULL CHECK (study_type IN ('clinical_trial', 'real_world', 'review',
                                                       'case_report', 'preclinical', 'other')),
    evidence      TEXT NOT NULL,                 -- JSON {label: [{term, field, snippet}]}
    classified_at TEXT NOT NULL
);
CREATE INDEX classifications_relevance ON classifications (relevance);

-- Editor corrections live apart from machine labels and always win over them.
CREATE TABLE corrections (
    id         INTEGER PRIMARY KEY,
    paper_id   INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    field      TEXT NOT NULL CHECK (field IN ('relevance', 'therapies', 'study_type')),
    value      TEXT NOT NULL,                    -- JSON: a string, or a list for therapies
    editor     TEXT NOT NULL,
    note       TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (paper_id, field)
);
"""),
    (3, "weekly editions, their items, editor changes and editor accounts", """
CREATE TABLE editions (
    id          INTEGER PRIMARY KEY,
    week        TEXT NOT NULL UNIQUE,            -- ISO week, '2026-W46'
    status      TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'approved', 'sending', 'sent')),
    note        TEXT,                            -- the editor's note at the top
    created_at  TEXT NOT NULL,
    built_at    TEXT NOT NULL,
    approved_at TEXT,
    approved_by TEXT,
    sent_at     TEXT,
    snapshot    TEXT                             -- JSON of the edition, frozen at approval
);

-- The draft as last built: which paper sits in which section, in which order.
CREATE TABLE edition_items (
    edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    paper_id   INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    section    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (edition_id, paper_id)
);

-- Editor changes to one edition; a rebuild of the draft applies them again.
-- (Moving a paper to another section is a correction of its labels: see `corrections`.)
CREATE TABLE edition_changes (
    edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    paper_id   INTEGER NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('exclude', 'include', 'finding', 'position')),
    value      TEXT,
    editor     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (edition_id, paper_id, kind)
);

CREATE TABLE editors (
    name          TEXT PRIMARY KEY,
    email         TEXT,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
"""),
    (4, "readers, their consent history, suppressed addresses and the send log", """
CREATE TABLE readers (
    id             INTEGER PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,          -- normalised (subscribers.mailer)
    name           TEXT,
    sections       TEXT NOT NULL DEFAULT '[]',    -- JSON list of section keys; [] = all
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    consent_at     TEXT,
    consent_source TEXT,                          -- 'web form', 'cli', 'import readers.csv' ...
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- Every consent and change, when and from where: what a reader's data export shows.
CREATE TABLE reader_events (
    id        INTEGER PRIMARY KEY,
    reader_id INTEGER NOT NULL REFERENCES readers (id) ON DELETE CASCADE,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,                      -- subscribed, confirmed, sections, unsubscribed ...
    source    TEXT NOT NULL,
    detail    TEXT
);

-- A removed reader leaves only a hash of the address, so they are never mailed again by accident.
CREATE TABLE suppressed (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    at         TEXT NOT NULL
);

-- One row per (edition, reader), written before and after each message.
CREATE TABLE send_log (
    edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    reader_id  INTEGER NOT NULL REFERENCES readers (id) ON DELETE CASCADE,
    status     TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'soft_bounce', 'hard_bounce', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,
    error      TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (edition_id, reader_id)
);
"""),
    (5, "the weekly job's run log", """
-- One row per run of the weekly job (or of the scheduled send): what it did, how long it took,
-- and what went wrong, so anyone can check nothing was missed.
CREATE TABLE job_runs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('weekly', 'send')),
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'interrupted')),
    week         TEXT,
    edition_id   INTEGER REFERENCES editions (id) ON DELETE SET NULL,
    fetch_run_id INTEGER REFERENCES fetch_runs (id) ON DELETE SET NULL,
    summary      TEXT NOT NULL DEFAULT '{}',   -- JSON: counts by section, classified, notices
    error        TEXT,
    seconds      REAL
);
"""),
    (6, "works from feeds: preprints keyed by DOI, their link to the PubMed record, feed state", """
ALTER TABLE papers ADD COLUMN is_preprint INTEGER NOT NULL DEFAULT 0 CHECK (is_preprint IN (0, 1));
ALTER TABLE papers ADD COLUMN url TEXT;               -- where a feed item lives (preprints)
-- A preprint later found in PubMed points at the PubMed paper; editions show that one only.
ALTER TABLE papers ADD COLUMN merged_into INTEGER REFERENCES papers (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX papers_unpublished_doi ON papers (doi) WHERE pmid IS NULL;

-- Conditional-request state per feed, so an unchanged feed costs one small request.
CREATE TABLE feed_state (
    url           TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    checked_at    TEXT,
    status        TEXT,                           -- 'ok', 'not modified', or the error
    items         INTEGER NOT NULL DEFAULT 0
);
"""),
    (7, "clinical trials from ClinicalTrials.gov", """
CREATE TABLE trials (
    nct               TEXT PRIMARY KEY,
    title             TEXT NOT NULL,
    status            TEXT NOT NULL,                 -- RECRUITING, NOT_YET_RECRUITING, ...
    previous_status   TEXT,
    status_changed_at TEXT,                          -- when we saw the status change
    phase             TEXT,
    conditions        TEXT NOT NULL DEFAULT '[]',
    interventions     TEXT NOT NULL DEFAULT '[]',    -- ["Drug: Glofitamab", ...]
    eligibility       TEXT,                          -- the criteria as registered
    car_t_line        TEXT,                          -- the one eligibility line about CAR-T
    car_t_rule        TEXT CHECK (car_t_rule IN ('inclusion', 'exclusion')),
    excluded          INTEGER NOT NULL DEFAULT 0 CHECK (excluded IN (0, 1)),  -- excludes prior CAR-T
    sponsor           TEXT,
    countries         TEXT NOT NULL DEFAULT '[]',
    summary           TEXT,
    first_posted      TEXT,
    last_update       TEXT,
    therapies         TEXT NOT NULL DEFAULT '[]',
    evidence          TEXT NOT NULL DEFAULT '{}',
    content_hash      TEXT NOT NULL,
    first_seen        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
"""),
    (8, "a preprint's published-version DOI", """
ALTER TABLE papers ADD COLUMN published_doi TEXT;   -- from the preprint server's feed
"""),
    (9, "when each preprint was last asked about its journal version", """
CREATE TABLE preprint_checks (
    doi           TEXT PRIMARY KEY,     -- lower-cased preprint DOI
    server        TEXT NOT NULL,        -- biorxiv | medrxiv
    checked_at    TEXT NOT NULL,
    published_doi TEXT                  -- NULL: not published yet when asked
);
"""),
]
