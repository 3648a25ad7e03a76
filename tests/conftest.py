"""Shared, function-scoped fixtures: a stand-in E-utilities server, a store, a client, a clock."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tracker.eutils import EutilsClient
from tracker.http import Backoff
from tracker.ratelimit import RateLimiter
from tracker.standin import EutilsStandIn
from tracker.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
EUTILS_FIXTURES = FIXTURES / "eutils"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def no_real_registries(monkeypatch):
    """No test may reach clinicaltrials.gov or api.biorxiv.org: trial refresh and preprint
    lookups are off unless a test turns them on with a local stand-in."""
    monkeypatch.setenv("CARTDIGEST_TRIALS", "0")
    monkeypatch.setenv("CARTDIGEST_PREPRINT_VERSIONS", "0")


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


# -- a week of papers, for edition tests ---------------------------------------------------------

WEEK = "2026-W46"   # Monday 9 to Sunday 15 November 2026


def week_papers():
    """Papers written for these tests (not real records), Entrez-dated in WEEK."""
    from tracker.paper import AbstractSection, Paper

    def paper(pmid, title, edat, abstract, types=("Journal Article",), **more):
        sections = [AbstractSection(label, None, text) for label, text in abstract] \
            if isinstance(abstract, list) else [AbstractSection(None, None, abstract)]
        return Paper(pmid=pmid, title=title, edat=edat, pub_date=edat, abstract=sections,
                     authors=more.pop("authors", ["Doe J", "Roe R", "Poe P", "Loe L"]),
                     journal="Blood Advances", journal_abbrev="Blood Adv",
                     publication_types=list(types), **more)

    return [
        paper("41000001", "Glofitamab after CAR T-cell failure in large B-cell lymphoma", "2026-11-09",
              [("METHODS", "A retrospective cohort of 40 patients."),
               ("CONCLUSIONS", "Glofitamab gave durable responses after CAR-T failure.")],
              doi="10.1/a", pmcid="PMC1"),
        paper("41000002", "Epcoritamab in lymphoma relapsing after CAR-T: a phase 2 trial", "2026-11-10",
              "In this phase 2 trial (NCT01234567) epcoritamab was given after CAR-T failure. "
              "Epcoritamab may offer a bridge to transplant for some.", types=("Clinical Trial, Phase II",)),
        paper("41000003", "Second CAR-T infusion after relapse following axi-cel", "2026-11-11",
              "Twelve patients with lymphoma relapsing after axi-cel got a second CAR-T infusion. "
              "Responses occurred in half."),
        paper("41000004", "Why CAR T cells fail in lymphoma", "2026-11-12",
              "This review discusses relapse after CAR T-cell therapy in lymphoma.", types=("Review",)),
        paper("41000005", "Relapse after BCMA CAR-T in myeloma treated with teclistamab", "2026-11-13",
              "Teclistamab was given to patients with myeloma relapsing after BCMA CAR-T."),
        paper("41000006", "Cytokine release syndrome after axi-cel", "2026-11-14",
              "CRS occurred in most patients with refractory lymphoma treated with axi-cel."),
        paper("41000007", "Glofitamab after CAR-T failure in lymphoma", "2026-11-02",
              "Outside the week: entered PubMed the week before."),
    ]


@pytest.fixture
def week_store(store):
    """A store holding week_papers(), classified, with one complete fetch run."""
    from tracker.classify import Classifier
    from tracker.labels import classify_store
    from tracker.lexicon import build_lexicon
    from tracker.profile import load_profile

    with store.transaction():
        for paper in week_papers():
            store.upsert_paper(paper, ["query:car-t-failure-lymphoma"], NOW)
    run = store.start_fetch_run(date(2026, 11, 1), date(2026, 11, 16), NOW)
    store.finish_fetch_run(run, "complete", NOW, searches=[], requests=5, found=7, new=7, updated=0,
                           watermark=date(2026, 11, 16))
    classify_store(store, Classifier(build_lexicon(load_profile())), NOW)
    return store


@pytest.fixture
def builder(week_store):
    from tracker.edition import EditionBuilder
    from tracker.lexicon import build_lexicon
    from tracker.profile import load_profile

    profile = load_profile()
    return EditionBuilder(week_store, profile, build_lexicon(profile))


# -- a real SMTP server on 127.0.0.1 ------------------------------------------------------------

class RecordingHandler:
    """aiosmtpd handler that records messages and fails on demand.

    `refuse` maps an address to an RCPT reply (e.g. "550 5.1.1 no such user"); `data_replies`
    is a list of DATA replies used first (e.g. ["451 4.3.0 try again"]); `slow_for` names an
    address whose DATA waits `slow_seconds` before it is accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.data_replies: list[str] = []
        self.sessions: set[int] = set()
        self.slow_for: str | None = None
        self.slow_seconds = 60.0
        self.slow_started = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.sessions.add(id(session))
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        import asyncio

        if self.data_replies:
            return self.data_replies.pop(0)
        if self.slow_for and self.slow_for in envelope.rcpt_tos:
            self.slow_started = True
            await asyncio.sleep(self.slow_seconds)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def received_by(self, address: str) -> int:
        return sum(1 for recipients, _ in self.messages if address in recipients)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port; Controller(port=0) does not work."""
    from aiosmtpd.controller import Controller

    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.url = f"smtp://127.0.0.1:{controller.port}"
    yield handler
    controller.stop()
