"""Editor accounts kept in the store, with Werkzeug password hashes (scrypt)."""

from __future__ import annotations

from datetime import datetime

from werkzeug.security import generate_password_hash

from tracker.errors import CartdigestError
from tracker.store import Store

MINIMUM_PASSWORD = 10


def add_editor(store: Store, name: str, password: str, email: str | None, now: datetime) -> bool:
    """Create or update an editor; returns True when created."""
    name = name.strip()
    if not name or len(name) > 60 or any(not (char.isalnum() or char in "._-") for char in name):
        raise CartdigestError("an editor name is 1-60 letters, digits, '.', '_' or '-'")
    if len(password) < MINIMUM_PASSWORD:
        raise CartdigestError(f"choose a password of at least {MINIMUM_PASSWORD} characters")
    existed = store.execute("SELECT 1 FROM editors WHERE name = ?", (name,)).fetchone() is not None
    with store.transaction():
        store.connection.execute(
            "INSERT INTO editors (name, email, password_hash, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, "
            "email = COALESCE(excluded.email, email)",
            (name, email, generate_password_hash(password), now.isoformat(timespec="seconds")))
    return not existed
