"""Benchmark: send one edition to 10,000 readers through a local SMTP server (aiosmtpd).

Measures messages per second with cartdigest's sender (one SMTP connection reused, send log
written before and after each message) against the same sender opening one connection per
message, in the same run. The SMTP server runs in its own process (aiosmtpd's Sink handler,
which accepts and discards), so it does not share the sender's interpreter.

    python benchmarks/send.py [--readers 10000] [--baseline-readers 2000]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from subscribers.delivery import send_edition
from subscribers.mailer import SmtpMailer, SmtpSettings
from subscribers.readers import Readers
from tracker.demo import sample_standin
from tracker.edition import EXTRA_SECTIONS, EditionBuilder
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.settings import Settings
from tracker.store import Store
from tracker.templating import environment

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


class ConnectionPerMessage(SmtpMailer):
    """The obvious alternative: a new SMTP connection (and QUIT) for every message."""

    def send(self, message) -> None:
        super().send(message)
        self.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, so the server can offer STARTTLS as relays do."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def start_smtp_server(cert: Path, key: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                               "-l", f"127.0.0.1:{port}", "--tlscert", str(cert), "--tlskey", str(key)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the aiosmtpd server did not start")


def prepare(folder: Path, readers_count: int) -> tuple[Store, EditionBuilder, Readers, int]:
    """The demo week's papers, an approved edition, and `readers_count` confirmed readers."""
    from tracker.classify import Classifier
    from tracker.eutils import EutilsClient
    from tracker.fetch import fetch_window
    from tracker.labels import classify_store

    profile = load_profile()
    lexicon = build_lexicon(profile)
    store = Store(folder / "bench.db")
    monday = datetime(2026, 11, 9).date()
    with sample_standin(profile, monday) as standin:
        fetch_window(store, EutilsClient(standin.url, tool="bench", email="bench@example.org"), profile,
                     monday, monday.replace(day=15), NOW)
    classify_store(store, Classifier(lexicon), NOW)
    builder = EditionBuilder(store, profile, lexicon)
    edition_id = builder.draft("2026-W46", NOW)
    builder.approve(edition_id, "bench", NOW)
    readers = Readers(store, list(lexicon.sections) + list(EXTRA_SECTIONS))
    choices = [[], ["bispecific_antibody"], ["cell_therapy", "related"], []]
    stamp = NOW.isoformat()
    with store.transaction():   # bulk insert: the benchmark is about sending, not adding readers
        store.connection.executemany(
            "INSERT INTO readers (email, name, sections, status, consent_at, consent_source, created_at, "
            "updated_at) VALUES (?, ?, ?, 'confirmed', ?, 'benchmark', ?, ?)",
            [(f"reader{n}@example.org", f"Reader {n}" if n % 2 else None,
              str(choices[n % len(choices)]).replace("'", '"'), stamp, stamp, stamp) for n in range(readers_count)])
    return store, builder, readers, edition_id


def run(mailer_class, readers_count: int, url: str, connections: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        store, builder, readers, edition_id = prepare(Path(folder), readers_count)
        settings = Settings(data_dir=Path(folder), secret_key="benchmark-secret-key-0123456789",
                            base_url="https://digest.example.org", from_address="digest@example.org",
                            send_rate=1_000_000.0, smtp_connections=connections)
        mailers = []

        def make_mailer():
            mailers.append(mailer_class(SmtpSettings.from_url(url)))
            return mailers[-1]

        started = time.perf_counter()
        report = send_edition(builder, readers, settings, edition_id, make_mailer, lambda: NOW, environment())
        elapsed = time.perf_counter() - started
        store.close()
    return elapsed, report.sent, sum(mailer.connections_opened for mailer in mailers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--baseline-readers", type=int, default=2_000,
                        help="readers for the connection-per-message run (its rate is what is compared)")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections for the pooled run")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cert, key = self_signed_certificate(Path(folder))
        server, port = start_smtp_server(cert, key)
        # STARTTLS, as every real relay requires; the CA is the throwaway certificate itself.
        url = f"smtp://127.0.0.1:{port}?starttls=1&cafile={cert}"
        try:
            runs = [(f"cartdigest, {arguments.connections} reused", run(SmtpMailer, arguments.readers, url, arguments.connections)),
                    ("cartdigest, 1 reused", run(SmtpMailer, arguments.baseline_readers, url, 1)),
                    ("connection per message", run(ConnectionPerMessage, arguments.baseline_readers, url, 1))]
        finally:
            server.terminate()
            server.wait()
    print("sending one edition through aiosmtpd with STARTTLS on 127.0.0.1 "
          "(send log written before and after each message)")
    print(f"{'sender':<28} {'messages':>9} {'connections':>12} {'seconds':>8} {'msg/s':>8}")
    rates = {}
    for name, (seconds, sent, connections) in runs:
        rates[name] = sent / seconds
        print(f"{name:<28} {sent:>9} {connections:>12} {seconds:>8.2f} {rates[name]:>8.0f}")
    single = rates["connection per message"]
    print(f"one reused connection sends {rates['cartdigest, 1 reused'] / single:.1f}x the messages per second "
          f"of a connection per message; {arguments.connections} reused connections "
          f"{rates[runs[0][0]] / single:.1f}x (goal: >= 300 msg/s and >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
