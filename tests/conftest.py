"""Shared, function-scoped fixtures: a stand-in E-utilities server, a store, a client, a clock."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tracker.eutils import Backoff, EutilsClient
from tracker.ratelimit import RateLimiter
from tracker.standin import EutilsStandIn
from tracker.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
EUTILS_FIXTURES = FIXTURES / "eutils"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


def fixture_bytes(name: str) -> bytes:
    return (EUTILS_FIXTURES / name).read_bytes()


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def standin():
    with EutilsStandIn() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "cartdigest.db") as opened:
        yield opened


def make_client(url: str, *, rate: float = 50.0, timeout: float = 5.0, max_retries: int = 3,
                api_key: str | None = None) -> EutilsClient:
    """A client with its own limiter and short back-off, so tests run fast and independently."""
    return EutilsClient(url, tool="cartdigest-tests", email="tests@example.org", api_key=api_key,
                        timeout=timeout, max_retries=max_retries,
                        backoff=Backoff(base=0.01, cap=0.05), limiter=RateLimiter(rate))


@pytest.fixture
def client(standin: EutilsStandIn):
    made = make_client(standin.url)
    yield made
    made.close()


def day(text: str) -> date:
    return date.fromisoformat(text)
