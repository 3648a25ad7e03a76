"""The `cartdigest` command: a thin layer that parses input, calls one library function and
prints its result. Errors from the library arrive as CartdigestError and leave as one line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import click

from tracker import __version__
from tracker.errors import CartdigestError
from tracker.profile import Profile, load_profile
from tracker.settings import Settings, load_settings

log = logging.getLogger("cartdigest")


class Context:
    """What every command needs: settings (loaded on first use, so --help never fails)."""

    def __init__(self, flags: dict[str, Any], config: Path | None, debug: bool) -> None:
        self.flags = flags
        self.config = config
        self.debug = debug
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags, config_path=self.config)
        return self._settings

    def profile(self) -> Profile:
        return load_profile(self.settings.profile)

    def now(self) -> datetime:
        return datetime.now(ZoneInfo(self.settings.timezone))

    @property
    def editor(self) -> str:
        """Who makes a change from the command line (recorded with every editor change)."""
        import getpass

        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            return "cli"


class FriendlyGroup(click.Group):
    """Turns CartdigestError into one line on stderr and exit status 1 (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CartdigestError as error:
            if "--debug" in sys.argv:
                raise
            click.echo(f"cartdigest: error: {error}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("cartdigest: interrupted; the store holds everything finished so far", err=True)
            ctx.exit(130)


def iso_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-16") from None


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False))


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder holding the store, drafts and outbox [env CARTDIGEST_DATA_DIR].")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="TOML config file [env CARTDIGEST_CONFIG; default <data dir>/cartdigest.toml].")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(__version__, prog_name="cartdigest")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, config: Path | None, debug: bool) -> None:
    """cartdigest: a weekly digest of new research on B-cell lymphoma that relapsed after CAR-T.

    \b
    Example:
        cartdigest demo            # the whole pipeline offline, on a bundled sample
        NCBI_EMAIL=you@example.org cartdigest fetch
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="cartdigest: %(levelname)s: %(message)s", stream=sys.stderr)
    ctx.obj = Context({"data_dir": data_dir}, config, debug)


pass_context = click.make_pass_decorator(Context)


@cli.command()
@pass_context
def init(context: Context) -> None:
    """Create the data dir, config file, secret key (mode 0600) and database.

    Safe to run again: nothing that exists is overwritten.

    \b
    Example:
        cartdigest --data-dir ./cartdigest-data init
    """
    from tracker.setup import init_data_dir

    report = init_data_dir(context.settings)
    for path in report.created:
        click.echo(f"created {path}")
    for path in report.kept:
        click.echo(f"kept    {path}")


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A progress bar on stderr for long fetches, only on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label="fetching", file=sys.stderr)
            state["bar"].__enter__()
            state["done"] = 0
        state["bar"].update(done - state["done"])
        state["done"] = done

    def finish() -> None:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)

    return update, finish


@cli.command()
@click.option("--since", callback=iso_day, metavar="YYYY-MM-DD",
              help="First Entrez date of the window (default: the watermark less a few days' overlap).")
@click.option("--until", callback=iso_day, metavar="YYYY-MM-DD", help="Last Entrez date (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_context
def fetch(context: Context, since: date | None, until: date | None, as_json: bool) -> None:
    """Find and store new papers by Entrez date.

    Without --since it continues from the end of the last complete fetch (first run: the last
    7 days). The watermark moves only when the whole window is stored.

    \b
    Example:
        NCBI_EMAIL=you@example.org cartdigest fetch --since 2026-01-01 --json
    """
    from tracker.fetch import run_fetch

    progress, finish = _progress_bar(not as_json)
    try:
        report = run_fetch(context.settings, context.profile(), context.now(), since, until, progress)
    finally:
        finish()
    for problem in report.source_errors:
        click.echo(f"cartdigest: warning: {problem}", err=True)
    if as_json:
        emit_json(report.as_json())
        return
    click.echo(f"window {report.since} .. {report.until}: {report.found} found, {report.new} new, "
               f"{report.updated} updated ({report.requests} requests)")
    for entry in report.searches:
        click.echo(f"  {entry.source:<40} {entry.count:>6}  ({entry.since} .. {entry.until})")


@cli.command()
@click.option("--since", callback=iso_day, metavar="YYYY-MM-DD", help="First Entrez date.")
@click.option("--until", callback=iso_day, metavar="YYYY-MM-DD", help="Last Entrez date.")
@click.option("--relevance", metavar="LIST",
              help="Comma-separated: core, adjacent, off_topic (default: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per paper.")
@pass_context
def papers(context: Context, since: date | None, until: date | None, relevance: str | None,
           as_json: bool) -> None:
    """List stored papers.

    \b
    Example:
        cartdigest papers --since 2026-11-09 --relevance core,adjacent --json
    """
    from tracker.catalog import RELEVANCE_LEVELS, paper_rows
    from tracker.store import open_store

    wanted = None
    if relevance:
        wanted = {level.strip() for level in relevance.split(",") if level.strip()}
        unknown = wanted - set(RELEVANCE_LEVELS)
        if unknown:
            raise click.BadParameter(f"unknown relevance {', '.join(sorted(unknown))}; "
                                     f"choose from {', '.join(RELEVANCE_LEVELS)}",
                                     param_hint="--relevance")
    settings = context.settings
    with open_store(settings.data_dir, settings.database_path) as store:
        rows = paper_rows(store, since, until, wanted)
    for row in rows:
        if as_json:
            emit_json(row)
        else:
            label = row["relevance"] or "unclassified"
            click.echo(f"{row['pmid'] or row['doi']:>10}  {row['edat'] or '':10}  {label:<12} "
                       f"{row['title'][:90]}")


def _classifier(context: Context):
    from tracker.classify import Classifier
    from tracker.lexicon import build_lexicon

    return Classifier(build_lexicon(context.profile()))


@cli.command()
@click.option("--all", "relabel_all", is_flag=True, help="Re-label every paper, not only new or stale ones.")
@pass_context
def classify(context: Context, relabel_all: bool) -> None:
    """Classify papers the current classifier version has not labelled yet.

    A paper PubMed revised since it was labelled is labelled again; --all re-labels everything.

    \b
    Example:
        cartdigest classify --all
    """
    from tracker.labels import classify_store
    from tracker.store import open_store

    settings = context.settings
    classifier = _classifier(context)
    with open_store(settings.data_dir, settings.database_path) as store:
        report = classify_store(store, classifier, context.now(), relabel_all)
    click.echo(f"classified {report.classified} papers with classifier {classifier.version} "
               f"({report.core} core, {report.adjacent} adjacent, {report.off_topic} off topic); "
               f"{report.skipped} already up to date")


@cli.command()
@click.argument("gold", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--predictions", type=click.Path(path_type=Path), metavar="OUT.jsonl",
              help="Write one JSON line per record: pmid, relevance, therapies, study_type, evidence.")
@pass_context
def evaluate(context: Context, gold: Path, as_json: bool, predictions: Path | None) -> None:
    """Score the classifier against a gold file: precision, recall and F1 per label.

    Therapies are scored on core and adjacent records only, as the labelling guide says.

    \b
    Example:
        cartdigest evaluate ../shared/gold/dev.jsonl --predictions predictions.jsonl
    """
    from tracker.evaluate import evaluate as run_evaluation
    from tracker.evaluate import format_report, read_gold, write_predictions

    records, skipped = read_gold(gold)
    for note in skipped:
        click.echo(f"cartdigest: warning: {gold}: skipped {note}", err=True)
    result, predicted = run_evaluation(_classifier(context), records, skipped)
    if predictions:
        write_predictions(predictions, records, predicted)
    if as_json:
        emit_json(result.as_json())
    else:
        for line in format_report(result):
            click.echo(line)


@cli.command(name="export-gold")
@click.argument("file", type=click.Path(path_type=Path))
@pass_context
def export_gold_command(context: Context, file: Path) -> None:
    """Write every editor-corrected paper as a gold record, to become test data.

    \b
    Example:
        cartdigest export-gold corrections.jsonl
    """
    from tracker.labels import export_gold
    from tracker.store import open_store

    settings = context.settings
    with open_store(settings.data_dir, settings.database_path) as store:
        count = export_gold(store, file)
    click.echo(f"wrote {count} corrected papers to {file}")


@cli.command()
@click.argument("pmid")
@click.option("--relevance", type=click.Choice(["core", "adjacent", "off_topic"]))
@click.option("--therapies", metavar="LIST", help="Comma-separated therapy keys ('' for none).")
@click.option("--study-type", type=click.Choice(["clinical_trial", "real_world", "review",
                                                 "case_report", "preclinical", "other"]))
@click.option("--editor", default="cli", show_default=True, help="Who made the correction.")
@click.option("--note", help="Why (shown as the evidence of the corrected label).")
@pass_context
def correct(context: Context, pmid: str, relevance: str | None, therapies: str | None,
            study_type: str | None, editor: str, note: str | None) -> None:
    """Correct a paper's labels; corrections always win over the classifier's.

    \b
    Example:
        cartdigest correct 40238938 --therapies bispecific_antibody --note "glofitamab cohort"
    """
    from tracker.labels import correct_label
    from tracker.store import open_store

    changes: dict[str, object] = {}
    if relevance:
        changes["relevance"] = relevance
    if therapies is not None:
        changes["therapies"] = [key.strip() for key in therapies.split(",") if key.strip()]
    if study_type:
        changes["study_type"] = study_type
    if not changes:
        raise click.UsageError("give at least one of --relevance, --therapies, --study-type")
    settings = context.settings
    with open_store(settings.data_dir, settings.database_path) as store:
        for field_name, value in changes.items():
            correct_label(store, pmid, field_name, value, editor, context.now(), note)
    click.echo(f"corrected {', '.join(changes)} of {pmid}")


@cli.command()
@click.option("--week", metavar="YYYY-Www", help="ISO week (default: the last complete week).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_context
def draft(context: Context, week: str | None, as_json: bool) -> None:
    """Build, or rebuild while still a draft, the edition of an ISO week.

    Editor changes (exclusions, moves, order, findings, the note) survive a rebuild.

    \b
    Example:
        cartdigest draft --week 2026-W46 --json
    """
    from tracker.edition import last_complete_week
    from tracker.publish import draft_edition

    now = context.now()
    report = draft_edition(context.settings, week or last_complete_week(now), now)
    if as_json:
        emit_json(report.as_json())
        return
    click.echo(f"edition {report.edition} ({report.week}, {report.status}): "
               f"{len(report.items)} papers" + (" (no new papers this week)" if report.empty else ""))
    click.echo(f"html: {report.html}")
    click.echo(f"text: {report.text}")


@cli.group()
def edition() -> None:
    """List, show and change editions: exclude, include, move, note, test-send, approve.

    \b
    Example:
        cartdigest edition list
        cartdigest edition exclude 3 40238938
    """


def _builder(context: Context):
    from tracker.publish import edition_builder

    return edition_builder(context.settings)


@edition.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per edition.")
@pass_context
def edition_list(context: Context, as_json: bool) -> None:
    """Editions with their status: draft, approved, sending, sent.

    \b
    Example:
        cartdigest edition list --json
    """
    with _builder(context) as builder:
        rows = builder.editions()
    for row in rows:
        if as_json:
            emit_json({"edition": row["id"], "week": row["week"], "status": row["status"],
                       "items": row["items"], "approved_by": row["approved_by"],
                       "sent_at": row["sent_at"]})
        else:
            click.echo(f"{row['id']:>4}  {row['week']}  {row['status']:<9} {row['items']:>3} papers")


@edition.command(name="show")
@click.argument("edition_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_context
def edition_show(context: Context, edition_id: int, as_json: bool) -> None:
    """One edition: its note, sections, items and what was left out.

    \b
    Example:
        cartdigest edition show 3
    """
    with _builder(context) as builder:
        view = builder.view(edition_id)
    if as_json:
        emit_json({"edition": view.id, "week": view.week, "status": view.status, "note": view.note,
                   "items": [{"pmid": i.pmid, "section": i.section, "title": i.title_text,
                              "study_type": i.study_type, "finding": i.finding_html}
                             for i in view.items],
                   "excluded": [{"pmid": i.pmid, "title": i.title_text, "reason": i.left_out}
                                for i in view.excluded]})
        return
    click.echo(f"edition {view.id}: {view.week} ({view.week_label}), {view.status}")
    if view.note:
        click.echo(f"note: {view.note}")
    for section in view.sections:
        click.echo(f"\n{section.label} [{section.key}]")
        for item in section.items:
            click.echo(f"  {item.pmid:>10}  {item.study_label:<20} {item.title_text[:80]}")
    if view.excluded:
        click.echo("\nleft out")
        for item in view.excluded:
            click.echo(f"  {item.pmid:>10}  {item.left_out:<22} {item.title_text[:70]}")


def _edition_change(context: Context, action: str, edition_id: int, *args: str) -> None:
    with _builder(context) as builder:
        getattr(builder, action)(edition_id, *args, context.editor, context.now())


@edition.command(name="exclude")
@click.argument("edition_id", type=int)
@click.argument("pmid")
@pass_context
def edition_exclude(context: Context, edition_id: int, pmid: str) -> None:
    """Leave a paper out of a draft (it stays out when the draft is rebuilt).

    \b
    Example:
        cartdigest edition exclude 3 40238938
    """
    _edition_change(context, "exclude", edition_id, pmid)
    click.echo(f"excluded {pmid} from edition {edition_id}")


@edition.command(name="include")
@click.argument("edition_id", type=int)
@click.argument("pmid")
@pass_context
def edition_include(context: Context, edition_id: int, pmid: str) -> None:
    """Put a paper of the week into a draft, even one the classifier left out.

    \b
    Example:
        cartdigest edition include 3 40238938
    """
    _edition_change(context, "include", edition_id, pmid)
    click.echo(f"included {pmid} in edition {edition_id}")


@edition.command(name="move")
@click.argument("edition_id", type=int)
@click.argument("pmid")
@click.argument("section")
@pass_context
def edition_move(context: Context, edition_id: int, pmid: str, section: str) -> None:
    """Move a paper to another section (recorded as a correction of its labels).

    SECTION is a therapy key, `other` or `related`.

    \b
    Example:
        cartdigest edition move 3 40238938 cell_therapy
    """
    _edition_change(context, "move", edition_id, pmid, section)
    click.echo(f"moved {pmid} to {section} in edition {edition_id}")


@edition.command(name="reorder")
@click.argument("edition_id", type=int)
@click.argument("pmid")
@click.argument("direction", type=click.Choice(["up", "down"]))
@pass_context
def edition_reorder(context: Context, edition_id: int, pmid: str, direction: str) -> None:
    """Move a paper one place up or down in its section.

    \b
    Example:
        cartdigest edition reorder 3 40238938 up
    """
    _edition_change(context, "reorder", edition_id, pmid, direction)
    click.echo(f"moved {pmid} {direction} in edition {edition_id}")


@edition.command(name="finding")
@click.argument("edition_id", type=int)
@click.argument("pmid")
@click.argument("text")
@pass_context
def edition_finding(context: Context, edition_id: int, pmid: str, text: str) -> None:
    """Replace a paper's key finding in a draft.

    \b
    Example:
        cartdigest edition finding 3 40238938 "Responses were best when relapse came late."
    """
    _edition_change(context, "set_finding", edition_id, pmid, text)
    click.echo(f"set the key finding of {pmid} in edition {edition_id}")


@edition.command(name="note")
@click.argument("edition_id", type=int)
@click.argument("text")
@pass_context
def edition_note(context: Context, edition_id: int, text: str) -> None:
    """Set the editor's note at the top of a draft ("" removes it).

    \b
    Example:
        cartdigest edition note 3 "Two bispecific cohorts this week."
    """
    with _builder(context) as builder:
        builder.set_note(edition_id, text)
    click.echo(f"set the note of edition {edition_id}")


@edition.command(name="test-send")
@click.argument("edition_id", type=int)
@click.option("--to", "address", required=True, metavar="EMAIL", help="Where to send the test.")
@pass_context
def edition_test_send(context: Context, edition_id: int, address: str) -> None:
    """Send the edition to one address, marked as a test.

    \b
    Example:
        cartdigest edition test-send 3 --to editor@example.org
    """
    from tracker.publish import test_send

    where = test_send(context.settings, edition_id, address, context.now())
    click.echo(f"test sent: {where}")


@edition.command(name="approve")
@click.argument("edition_id", type=int)
@pass_context
def edition_approve(context: Context, edition_id: int) -> None:
    """Lock a draft for sending; an approved edition never changes.

    \b
    Example:
        cartdigest edition approve 3
    """
    with _builder(context) as builder:
        builder.approve(edition_id, context.editor, context.now())
    click.echo(f"approved edition {edition_id}")


@cli.group()
def editor() -> None:
    """Editor accounts for the review pages.

    \b
    Example:
        cartdigest editor add ada --email ada@example.org
    """


@editor.command(name="add")
@click.argument("name")
@click.option("--email", help="Where the editor gets notices (optional).")
@click.password_option(help="The password (asked for twice when not given).")
@pass_context
def editor_add(context: Context, name: str, email: str | None, password: str) -> None:
    """Create an editor account, or set a new password for an existing one.

    \b
    Example:
        cartdigest editor add ada
    """
    from tracker.accounts import add_editor
    from tracker.store import open_store

    settings = context.settings
    with open_store(settings.data_dir, settings.database_path) as store:
        created = add_editor(store, name, password, email, context.now())
    click.echo(f"{'created' if created else 'updated'} editor {name}")


@editor.command(name="hash")
@click.password_option(help="The password to hash.")
def editor_hash(password: str) -> None:
    """Print a password hash for `editor_accounts` in the config file.

    \b
    Example:
        cartdigest editor hash
    """
    from werkzeug.security import generate_password_hash

    click.echo(generate_password_hash(password))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@pass_context
def serve(context: Context, host: str, port: int) -> None:
    """Serve the editors' review pages (login required) and the public pages.

    \b
    Example:
        cartdigest serve --port 8000
    """
    from tracker.web import serve as run_server

    run_server(context.settings, host, port)


def _sections(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()]


@cli.group()
def subscribers() -> None:
    """Readers: add, import, list, remove, export.

    \b
    Example:
        cartdigest subscribers add reader@example.org --sections bispecific_antibody
    """


@subscribers.command(name="add")
@click.argument("email")
@click.option("--name", help="The reader's name.")
@click.option("--sections", metavar="LIST", help="Comma-separated section keys (none = all).")
@click.option("--confirmed", is_flag=True,
              help="Consent was already collected: skip the confirmation email.")
@pass_context
def subscribers_add(context: Context, email: str, name: str | None, sections: str | None,
                    confirmed: bool) -> None:
    """Add a reader; without --confirmed a confirmation email is sent (double opt-in).

    \b
    Example:
        cartdigest subscribers add reader@example.org --name "Ada" --sections cell_therapy
    """
    from subscribers.service import add_reader

    reader, outcome = add_reader(context.settings, email, context.now(), name=name,
                                 sections=_sections(sections), confirmed=confirmed)
    note = " (confirmation email sent)" if reader.status == "pending" and outcome == "added" else ""
    click.echo(f"{outcome} {reader.email}: {reader.status}{note}")


@subscribers.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--confirmed", is_flag=True, help="Consent for this list was already collected.")
@pass_context
def subscribers_import(context: Context, file: Path, confirmed: bool) -> None:
    """Import readers from a CSV file with the columns email,name,sections.

    Bad rows are reported by line number and skipped; good rows are kept; duplicates merge.

    \b
    Example:
        cartdigest subscribers import readers.csv --confirmed
    """
    from subscribers.service import import_readers

    report = import_readers(context.settings, file, context.now(), confirmed)
    for problem in report.problems:
        click.echo(f"cartdigest: {file}: {problem}", err=True)
    click.echo(f"imported {file}: {report.added} added, {report.merged} merged, "
               f"{report.unchanged} unchanged, {len(report.problems)} rows skipped"
               + (f"; {len(report.new_pending)} confirmation emails sent" if report.new_pending else ""))


@subscribers.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: email, name, sections, status.")
@pass_context
def subscribers_list(context: Context, as_json: bool) -> None:
    """List readers.

    \b
    Example:
        cartdigest subscribers list --json
    """
    from subscribers.service import reader_store

    with reader_store(context.settings) as readers:
        everyone = readers.all()
    for reader in everyone:
        if as_json:
            emit_json(reader.as_json())
        else:
            click.echo(f"{reader.email:<40} {reader.status:<13} {','.join(reader.sections) or 'all'}")


@subscribers.command(name="remove")
@click.argument("email")
@pass_context
def subscribers_remove(context: Context, email: str) -> None:
    """Delete a reader and their data; only a hash of the address is kept, so they are never
    mailed again by accident.

    \b
    Example:
        cartdigest subscribers remove reader@example.org
    """
    from subscribers.service import reader_store

    with reader_store(context.settings) as readers:
        removed = readers.remove(email, context.now())
    click.echo(f"removed {email}" if removed else f"no reader {email}; the address is suppressed anyway")


@subscribers.command(name="export")
@click.argument("email")
@pass_context
def subscribers_export(context: Context, email: str) -> None:
    """Print everything held about one reader, as JSON.

    \b
    Example:
        cartdigest subscribers export reader@example.org > reader.json
    """
    from subscribers.service import reader_store

    with reader_store(context.settings) as readers:
        emit_json(readers.export(email))


@cli.command()
@click.argument("edition_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dry-run", "dry_run_folder", type=click.Path(path_type=Path), metavar="FOLDER",
              help="Write every reader's message to FOLDER instead of sending.")
@pass_context
def send(context: Context, edition_id: int, as_json: bool, dry_run_folder: Path | None) -> None:
    """Send an approved edition to every confirmed reader, once each.

    Safe to run again: a send that was stopped resumes where it was, and an edition already
    sent sends nothing.

    \b
    Example:
        cartdigest send 3 --json
    """
    from subscribers.service import send as send_edition

    result = send_edition(context.settings, edition_id, context.now, dry_run_folder)
    if dry_run_folder is not None:
        click.echo(f"wrote {result} messages to {dry_run_folder} (nothing sent)")
        return
    if as_json:
        emit_json(result.as_json())
        return
    click.echo(f"edition {edition_id}: {result.sent} sent, {result.skipped} already had it, "
               f"{result.failed} failed" + (" -- edition sent to every reader" if result.finished else ""))
    for address in result.hard_bounces:
        click.echo(f"  hard bounce, marked bounced: {address}")
    for address in result.soft_bounces:
        click.echo(f"  soft bounce, retried by the next send: {address}")


def _print_job(report) -> None:
    if report.fetch:
        click.echo(f"fetched {report.fetch.since} .. {report.fetch.until}: {report.fetch.found} found, "
                   f"{report.fetch.new} new, {report.fetch.updated} updated ({report.fetch.requests} requests)")
    if report.draft:
        click.echo(f"drafted edition {report.draft.edition} for {report.week}: {len(report.draft.items)} papers "
                   f"({report.draft.html})")
    click.echo(f"editors told: {', '.join(report.notified) or 'nobody (set editor_emails)'}")


@cli.command()
@pass_context
def run(context: Context) -> None:
    """The weekly job: fetch, classify, draft the last complete week, notify the editors.

    It sends nothing that no editor approved. Running it twice in a week is harmless.

    \b
    Example:
        NCBI_EMAIL=you@example.org cartdigest run
    """
    from tracker.job import run_weekly_job

    report = run_weekly_job(context.settings, context.now)
    _print_job(report)
    if not report.ok:
        raise CartdigestError(f"the weekly job for {report.week} had problems: {'; '.join(report.errors)}")


@cli.command()
@click.option("--once", is_flag=True, help="Run the weekly job now and exit.")
@click.option("--next", "count", type=int, metavar="N", help="Print the next N run times and exit.")
@pass_context
def schedule(context: Context, once: bool, count: int | None) -> None:
    """Run the weekly job on its schedule until stopped (same as `python scheduler.py`).

    Default: Mondays at 07:00 Europe/London (schedule_day, schedule_time, timezone). A run
    missed while the machine was off happens at the next start.

    \b
    Example:
        cartdigest schedule --next 3
    """
    from tracker.schedule import next_run_times, run_scheduler, send_trigger, weekly_trigger

    settings = context.settings
    if count is not None:
        for moment in next_run_times(weekly_trigger(settings), context.now(), count):
            click.echo(moment.isoformat())
        trigger = send_trigger(settings)
        if trigger is not None:
            for moment in next_run_times(trigger, context.now(), count):
                click.echo(f"send {moment.isoformat()}")
        return
    if once:
        click.get_current_context().invoke(run)   # the same weekly job as `cartdigest run`
        return
    run_scheduler(settings)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per trial.")
@click.option("--all", "show_all", is_flag=True, help="Also trials left out (they exclude prior CAR-T).")
@pass_context
def trials(context: Context, as_json: bool, show_all: bool) -> None:
    """Tracked clinical trials (refreshed by `fetch` and `run`).

    \b
    Example:
        cartdigest trials --json
    """
    from tracker.store import open_store
    from tracker.trials import trial_rows

    settings = context.settings
    with open_store(settings.data_dir, settings.database_path) as store:
        rows = trial_rows(store)
    for row in rows:
        if row["excluded"] and not show_all:
            continue
        if as_json:
            emit_json(row)
        else:
            flag = " (excludes prior CAR-T)" if row["excluded"] else ""
            click.echo(f"{row['nct']}  {row['status']:<19} {row['phase'] or '':<16} {row['title'][:70]}{flag}")


@cli.command()
@click.option("--data-dir", "demo_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for the demo's data (default ./cartdigest-demo).")
@pass_context
def demo(context: Context, demo_dir: Path | None) -> None:
    """Run the pipeline offline on a bundled sample, against a local E-utilities stand-in.

    Needs no network and no keys. Prints what it did and where the results are.

    \b
    Example:
        cartdigest demo
    """
    from tracker.demo.run import run_demo

    target = demo_dir or context.flags.get("data_dir") or Path("cartdigest-demo")
    report = run_demo(Path(target), now=datetime.now(ZoneInfo("Europe/London")))
    for line in report.lines:
        click.echo(line)


@cli.command(name="settings")
@pass_context
def show_settings(context: Context) -> None:
    """Show every setting with its value (secrets hidden), environment variable and help.

    \b
    Example:
        cartdigest settings
    """
    from tracker.settings import SETTINGS

    values = context.settings
    for setting in SETTINGS:
        value = getattr(values, setting.name)
        shown = ("(set)" if value else "(unset)") if setting.secret else value
        click.echo(f"{setting.name:<16} {shown!s:<45} {setting.help}")


def main() -> None:
    cli(prog_name="cartdigest")
