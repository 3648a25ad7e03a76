"""The SQLite store: papers, why each was found, fetch runs and the fetch watermark.

WAL mode so the web pages can read while a fetch writes. Writes are idempotent upserts keyed
by PMID that report what they did, so any step can be re-run.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

from tracker.errors import StoreError
from tracker.migrations import MIGRATIONS
from tracker.paper import Paper

log = logging.getLogger(__name__)

WATERMARK_KEY = "fetch_watermark"
PAPER_JSON_FIELDS = ("abstract", "authors", "publication_types", "mesh", "keywords",
                     "chemicals", "languages", "corrections")


@dataclass(frozen=True)
class StoredPaper:
    id: int
    paper: Paper
    found_by: list[str]
    first_seen: str
    updated_at: str


def _describe(error: sqlite3.Error, path: Path) -> str:
    message = str(error)
    if "full" in message:
        return f"the disk holding {path} is full: free some space and run the command again"
    if "readonly" in message or "unable to open" in message:
        return f"cannot write the store {path}: check the folder exists and is writable"
    if "locked" in message:
        return f"the store {path} is busy: another cartdigest process is writing; try again"
    return f"store {path}: {message}"


class Store:
    """One connection to the SQLite store; migrations are applied when it opens."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                              check_same_thread=False)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode = WAL")
            self.connection.execute("PRAGMA foreign_keys = ON")
            self.connection.execute("PRAGMA synchronous = NORMAL")
            self.migrate()
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- transactions and migrations ------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error so the store is as it was."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None
        try:
            yield self.connection
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise StoreError(_describe(error, self.path)) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    @property
    def schema_version(self) -> int:
        return self.connection.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> list[int]:
        """Apply every migration newer than the store; return the numbers applied."""
        applied = []
        for number, name, sql in MIGRATIONS:
            if number <= self.schema_version:
                continue
            log.info("applying migration %d: %s", number, name)
            # executescript() commits first, so BEGIN/COMMIT live inside the script itself.
            try:
                self.connection.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.Error:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
            applied.append(number)
        return applied

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.connection.execute(sql, tuple(parameters))
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None

    # -- papers -----------------------------------------------------------------------------

    def upsert_paper(self, paper: Paper, sources: Iterable[str], now: datetime,
                     fetch_run_id: int | None = None) -> str:
        """Insert or update one paper by PMID and add its sources.

        Returns 'new', 'updated' (PubMed revised the record) or 'unchanged'. Call inside
        `transaction()` when writing a batch, so a batch is stored whole or not at all.
        """
        stamp = now.isoformat(timespec="seconds")
        record = paper.to_json_dict()
        content_hash = paper.content_hash(record)
        if paper.pmid:
            existing = self.connection.execute(
                "SELECT id, content_hash FROM papers WHERE pmid = ?", (paper.pmid,)).fetchone()
        elif paper.doi:   # a work PubMed does not hold yet is keyed by its DOI
            existing = self.connection.execute(
                "SELECT id, content_hash FROM papers WHERE pmid IS NULL AND lower(doi) = lower(?)",
                (paper.doi,)).fetchone()
        else:
            raise StoreError("a paper needs a PMID or a DOI to be stored")
        values = {name: json.dumps(record[name], ensure_ascii=False) for name in PAPER_JSON_FIELDS}
        values.update(pmid=paper.pmid, doi=paper.doi, pmcid=paper.pmcid, title=paper.title,
                      journal=paper.journal, journal_abbrev=paper.journal_abbrev,
                      pub_date=paper.pub_date, edat=paper.edat, is_book=int(paper.is_book),
                      is_retracted=int(paper.is_retracted), content_hash=content_hash,
                      is_preprint=int(paper.is_preprint), url=paper.url, published_doi=paper.published_doi)
        if existing is None:
            values.update(first_seen=stamp, updated_at=stamp)
            columns = ", ".join(values)
            placeholders = ", ".join(f":{name}" for name in values)
            paper_id = self.connection.execute(
                f"INSERT INTO papers ({columns}) VALUES ({placeholders})", values).lastrowid
            outcome = "new"
        else:
            paper_id = existing["id"]
            if existing["content_hash"] == content_hash:
                outcome = "unchanged"
            else:
                values.update(updated_at=stamp, id=paper_id)
                assignments = ", ".join(f"{name} = :{name}" for name in values if name != "id")
                self.connection.execute(f"UPDATE papers SET {assignments} WHERE id = :id", values)
                outcome = "updated"
        for source in sources:
            self.connection.execute(
                "INSERT OR IGNORE INTO paper_sources (paper_id, source, first_seen, fetch_run_id) "
                "VALUES (?, ?, ?, ?)", (paper_id, source, stamp, fetch_run_id))
        return outcome

    def _paper_from_row(self, row: sqlite3.Row) -> Paper:
        data = {name: json.loads(row[name]) for name in PAPER_JSON_FIELDS}
        data.update(pmid=row["pmid"], doi=row["doi"], pmcid=row["pmcid"], title=row["title"],
                    journal=row["journal"], journal_abbrev=row["journal_abbrev"],
                    pub_date=row["pub_date"], edat=row["edat"], is_book=bool(row["is_book"]),
                    is_preprint=bool(row["is_preprint"]), url=row["url"], published_doi=row["published_doi"])
        return Paper.from_json_dict(data)

    def papers(self, since: date | None = None, until: date | None = None,
               include_merged: bool = False) -> list[StoredPaper]:
        """Stored papers by Entrez date (inclusive), oldest first, each with every reason found.
        A preprint merged into its PubMed record is left out unless `include_merged`."""
        clauses, parameters = [], []
        if not include_merged:
            clauses.append("merged_into IS NULL")
        if since:
            clauses.append("edat >= ?")
            parameters.append(since.isoformat())
        if until:
            clauses.append("edat <= ?")
            parameters.append(until.isoformat())
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.execute(f"SELECT * FROM papers {where} ORDER BY edat, pmid", parameters).fetchall()
        sources: dict[int, list[str]] = {}
        # Only the selected papers' sources: a week's draft must not read the whole store.
        for paper_id, source in self.execute(
                f"SELECT paper_id, source FROM paper_sources WHERE paper_id IN "
                f"(SELECT id FROM papers {where}) ORDER BY source", parameters):
            sources.setdefault(paper_id, []).append(source)
        return [StoredPaper(row["id"], self._paper_from_row(row), sources.get(row["id"], []),
                            row["first_seen"], row["updated_at"]) for row in rows]

    def paper_by_pmid(self, pmid: str) -> StoredPaper | None:
        """A paper by PMID, or by `doi:<DOI>` for a work PubMed does not hold yet."""
        if pmid.lower().startswith("doi:"):
            row = self.execute("SELECT * FROM papers WHERE pmid IS NULL AND lower(doi) = lower(?)",
                               (pmid[4:],)).fetchone()
        else:
            row = self.execute("SELECT * FROM papers WHERE pmid = ?", (pmid,)).fetchone()
        if row is None:
            return None
        sources = [r[0] for r in self.execute(
            "SELECT source FROM paper_sources WHERE paper_id = ? ORDER BY source", (row["id"],))]
        return StoredPaper(row["id"], self._paper_from_row(row), sources, row["first_seen"],
                           row["updated_at"])

    def count_papers(self) -> int:
        return self.execute("SELECT count(*) FROM papers").fetchone()[0]

    # -- fetch runs and the watermark ------------------------------------------------------------

    def start_fetch_run(self, since: date, until: date, now: datetime) -> int:
        with self.transaction():
            # A run still 'running' was killed: it never moved the watermark, so nothing is lost.
            self.connection.execute(
                "UPDATE fetch_runs SET status = 'interrupted' WHERE status = 'running'")
            return self.connection.execute(
                "INSERT INTO fetch_runs (started_at, since, until, status) VALUES (?, ?, ?, 'running')",
                (now.isoformat(timespec="seconds"), since.isoformat(), until.isoformat())).lastrowid

    def finish_fetch_run(self, run_id: int, status: str, now: datetime, *, searches: list[dict],
                         requests: int, found: int, new: int, updated: int,
                         error: str | None = None, watermark: date | None = None) -> None:
        """Close a fetch run; a complete run may move the watermark in the same transaction."""
        with self.transaction():
            self.connection.execute(
                "UPDATE fetch_runs SET finished_at = ?, status = ?, searches = ?, requests = ?, "
                "found = ?, new = ?, updated = ?, error = ? WHERE id = ?",
                (now.isoformat(timespec="seconds"), status, json.dumps(searches), requests, found,
                 new, updated, error, run_id))
            if watermark is not None:
                self.connection.execute(
                    "INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (WATERMARK_KEY, watermark.isoformat()))

    def add_fetch_run_searches(self, run_id: int, searches: list[dict]) -> None:
        """Add lines to a closed run's search log: the feeds and the trial registry are read
        after PubMed's window is stored (and its run closed), and belong to the same run."""
        with self.transaction():
            row = self.connection.execute("SELECT searches FROM fetch_runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None:
                self.connection.execute("UPDATE fetch_runs SET searches = ? WHERE id = ?",
                                        (json.dumps(json.loads(row[0]) + searches), run_id))

    def watermark(self) -> date | None:
        row = self.execute("SELECT value FROM state WHERE key = ?", (WATERMARK_KEY,)).fetchone()
        return date.fromisoformat(row[0]) if row else None

    def fetch_runs(self, limit: int = 20) -> list[dict]:
        rows = self.execute("SELECT * FROM fetch_runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        runs = []
        for row in rows:
            run = dict(row)
            run["searches"] = json.loads(run["searches"])
            runs.append(run)
        return runs


def open_store(data_dir: Path, database_path: Path) -> Store:
    """Open (creating if need be) the store in the data dir."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the data dir {data_dir}: {error.strerror}; "
                         "choose another --data-dir") from None
    return Store(database_path)
