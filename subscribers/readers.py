"""Readers: who gets the digest, with which sections, and on what consent.

Addresses are validated and normalised before they touch the store. Every consent and change is
recorded with its time and source. Removing a reader deletes their data and keeps only a hash of
the address, so an import or a form cannot mail them again by accident.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from subscribers.mailer import AddressError, clean_display_name, normalise_address
from tracker.errors import CartdigestError
from tracker.store import Store

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced")
SUPPRESSION_SALT = "cartdigest-suppression-v1:"


class ReaderError(CartdigestError):
    """A reader cannot be added or changed as asked."""


@dataclass
class Reader:
    id: int
    email: str
    name: str | None
    sections: list[str]          # [] means every section
    status: str
    consent_at: str | None
    consent_source: str | None
    created_at: str
    updated_at: str

    def as_json(self) -> dict[str, Any]:
        """A `subscribers list --json` line (CONTRACT.md): email, name, sections, status."""
        return {"email": self.email, "name": self.name, "sections": self.sections,
                "status": self.status, "consent_at": self.consent_at,
                "consent_source": self.consent_source}


def address_hash(email: str) -> str:
    return hashlib.sha256((SUPPRESSION_SALT + email).encode()).hexdigest()


def _row_to_reader(row: Any) -> Reader:
    return Reader(row["id"], row["email"], row["name"], json.loads(row["sections"]), row["status"],
                  row["consent_at"], row["consent_source"], row["created_at"], row["updated_at"])


class Readers:
    """Reader operations on a store; `valid_sections` are the keys readers may choose."""

    def __init__(self, store: Store, valid_sections: list[str]) -> None:
        self.store = store
        self.valid_sections = list(valid_sections)

    # -- reading ---------------------------------------------------------------------------

    def get(self, email: str) -> Reader | None:
        row = self.store.execute("SELECT * FROM readers WHERE email = ?",
                                 (normalise_address(email),)).fetchone()
        return _row_to_reader(row) if row else None

    def by_id(self, reader_id: int) -> Reader | None:
        row = self.store.execute("SELECT * FROM readers WHERE id = ?", (reader_id,)).fetchone()
        return _row_to_reader(row) if row else None

    def all(self) -> list[Reader]:
        return [_row_to_reader(row) for row in self.store.execute("SELECT * FROM readers ORDER BY email")]

    def confirmed(self) -> list[Reader]:
        return [_row_to_reader(row) for row in self.store.execute(
            "SELECT * FROM readers WHERE status = 'confirmed' ORDER BY id")]

    def is_suppressed(self, email: str) -> bool:
        return self.store.execute("SELECT 1 FROM suppressed WHERE email_hash = ?",
                                  (address_hash(email),)).fetchone() is not None

    # -- changing --------------------------------------------------------------------------

    def check_sections(self, sections: list[str]) -> list[str]:
        unknown = [key for key in sections if key not in self.valid_sections]
        if unknown:
            raise ReaderError(f"unknown section {', '.join(unknown)}; choose from "
                              f"{', '.join(self.valid_sections)} (none chosen = all)")
        return [key for key in self.valid_sections if key in sections]   # profile order

    def _event(self, reader_id: int, kind: str, source: str, now: datetime, detail: str | None = None) -> None:
        self.store.connection.execute(
            "INSERT INTO reader_events (reader_id, at, kind, source, detail) VALUES (?, ?, ?, ?, ?)",
            (reader_id, now.isoformat(timespec="seconds"), kind, source, detail))

    def add(self, email: str, now: datetime, *, name: str | None = None, sections: list[str] | None = None,
            confirmed: bool = False, source: str = "cli") -> tuple[Reader, str]:
        """Add or merge a reader. Returns (reader, what happened): 'added', 'merged', or
        'kept' when nothing changed. A reader who left, bounced or was removed is refused."""
        address = normalise_address(email)
        chosen = self.check_sections(sections or [])
        clean_name = clean_display_name(name) or None
        stamp = now.isoformat(timespec="seconds")
        if self.is_suppressed(address):
            raise ReaderError(f"{address} was removed at their request and is never added again")
        with self.store.transaction():
            row = self.store.connection.execute("SELECT * FROM readers WHERE email = ?", (address,)).fetchone()
            if row is None:
                status = "confirmed" if confirmed else "pending"
                reader_id = self.store.connection.execute(
                    "INSERT INTO readers (email, name, sections, status, consent_at, consent_source, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (address, clean_name, json.dumps(chosen), status, stamp if confirmed else None,
                     source if confirmed else None, stamp, stamp)).lastrowid
                self._event(reader_id, "subscribed", source, now, f"status {status}")
                outcome = "added"
            else:
                existing = _row_to_reader(row)
                if existing.status in ("unsubscribed", "bounced"):
                    raise ReaderError(f"{address} is {existing.status}; only they can subscribe again, "
                                      "through the subscribe page")
                # Sections merge as a union in which [] means "all": all absorbs everything,
                # and a row naming no sections says nothing new.
                merged_sections = existing.sections
                if existing.sections and chosen:
                    merged_sections = [k for k in self.valid_sections if k in set(existing.sections) | set(chosen)]
                new_name = clean_name or existing.name
                new_status = "confirmed" if confirmed or existing.status == "confirmed" else existing.status
                changed = (new_name, merged_sections, new_status) != (existing.name, existing.sections, existing.status)
                if changed:
                    self.store.connection.execute(
                        "UPDATE readers SET name = ?, sections = ?, status = ?, updated_at = ?, "
                        "consent_at = COALESCE(consent_at, ?), consent_source = COALESCE(consent_source, ?) "
                        "WHERE id = ?",
                        (new_name, json.dumps(merged_sections), new_status, stamp,
                         stamp if new_status == "confirmed" else None,
                         source if new_status == "confirmed" else None, existing.id))
                    self._event(existing.id, "merged", source, now)
                reader_id = existing.id
                outcome = "merged" if changed else "kept"
        return self.by_id(reader_id), outcome  # type: ignore[return-value]

    def confirm(self, reader_id: int, now: datetime, source: str) -> Reader:
        reader = self.by_id(reader_id)
        if reader is None:
            raise ReaderError("this subscription no longer exists; subscribe again")
        if reader.status == "pending":
            with self.store.transaction():
                stamp = now.isoformat(timespec="seconds")
                self.store.connection.execute(
                    "UPDATE readers SET status = 'confirmed', consent_at = ?, consent_source = ?, "
                    "updated_at = ? WHERE id = ?", (stamp, source, stamp, reader_id))
                self._event(reader_id, "confirmed", source, now)
        elif reader.status != "confirmed":
            raise ReaderError("this address left the list; subscribe again to come back")
        return self.by_id(reader_id)  # type: ignore[return-value]

    def set_sections(self, reader_id: int, sections: list[str], now: datetime, source: str) -> Reader:
        chosen = self.check_sections(sections)
        with self.store.transaction():
            self.store.connection.execute("UPDATE readers SET sections = ?, updated_at = ? WHERE id = ?",
                                          (json.dumps(chosen), now.isoformat(timespec="seconds"), reader_id))
            self._event(reader_id, "sections", source, now, ", ".join(chosen) or "all")
        return self.by_id(reader_id)  # type: ignore[return-value]

    def set_status(self, reader_id: int, status: str, now: datetime, source: str,
                   detail: str | None = None) -> None:
        with self.store.transaction():
            self.store.connection.execute("UPDATE readers SET status = ?, updated_at = ? WHERE id = ?",
                                          (status, now.isoformat(timespec="seconds"), reader_id))
            self._event(reader_id, status, source, now, detail)

    def resubscribe(self, email: str, now: datetime, name: str | None, sections: list[str]) -> tuple[Reader, str]:
        """The subscribe page: a reader who left may come back, pending a new confirmation."""
        address = normalise_address(email)
        existing = self.get(address)
        if existing is not None and existing.status in ("unsubscribed", "bounced"):
            with self.store.transaction():
                self.store.connection.execute(
                    "UPDATE readers SET status = 'pending', updated_at = ? WHERE id = ?",
                    (now.isoformat(timespec="seconds"), existing.id))
                self._event(existing.id, "resubscribed", "web form", now)
        return self.add(address, now, name=name, sections=sections, source="web form")

    def remove(self, email: str, now: datetime) -> bool:
        """Delete the reader and all their data; keep only a hash of the address."""
        address = normalise_address(email)
        with self.store.transaction():
            deleted = self.store.connection.execute("DELETE FROM readers WHERE email = ?", (address,)).rowcount
            self.store.connection.execute(
                "INSERT OR IGNORE INTO suppressed (email_hash, reason, at) VALUES (?, 'removed', ?)",
                (address_hash(address), now.isoformat(timespec="seconds")))
        return bool(deleted)

    def export(self, email: str) -> dict[str, Any]:
        """Everything held about one reader (a data-access request)."""
        reader = self.get(email)
        if reader is None:
            raise ReaderError(f"no reader {normalise_address(email)}")
        events = [dict(row) for row in self.store.execute(
            "SELECT at, kind, source, detail FROM reader_events WHERE reader_id = ? ORDER BY id", (reader.id,))]
        sends = [dict(row) for row in self.store.execute(
            "SELECT e.week, s.status, s.attempts, s.updated_at FROM send_log s "
            "JOIN editions e ON e.id = s.edition_id WHERE s.reader_id = ? ORDER BY e.week", (reader.id,))]
        return {"reader": {**reader.as_json(), "created_at": reader.created_at,
                           "updated_at": reader.updated_at},
                "events": events, "deliveries": sends}


@dataclass
class ImportReport:
    added: int = 0
    merged: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)   # "line 7: 'bob@' is not a valid email address"
    new_pending: list[Reader] = field(default_factory=list)


def import_csv(readers: Readers, path: Path, now: datetime, confirmed: bool) -> ImportReport:
    """Import `email,name,sections` rows; each bad row is reported by line and skipped."""
    report = ImportReport()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ReaderError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReaderError(f"cannot read {path}: {error}") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        return report
    columns = [column.strip().lower() for column in header]
    if "email" not in columns:
        raise ReaderError(f"{path}: the first line must name the columns: email,name,sections")
    source = f"import {path.name}" + (" (consent collected elsewhere)" if confirmed else "")
    for line_number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            report.problems.append(f"line {line_number}: {len(row)} fields where the header has {len(columns)}")
            continue
        values = dict(zip(columns, (cell.strip() for cell in row)))
        sections = [key.strip() for key in values.get("sections", "").replace(";", ",").split(",") if key.strip()]
        try:
            reader, outcome = readers.add(values.get("email", ""), now, name=values.get("name") or None,
                                          sections=sections, confirmed=confirmed, source=source)
        except (AddressError, ReaderError) as error:
            report.problems.append(f"line {line_number}: {error}")
            continue
        if outcome == "added":
            report.added += 1
            if reader.status == "pending":
                report.new_pending.append(reader)
        elif outcome == "merged":
            report.merged += 1
        else:
            report.unchanged += 1
    return report
