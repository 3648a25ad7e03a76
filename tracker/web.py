"""`cartdigest serve`: the editors' review pages and the public pages.

Flask with Flask-Login (editor sessions, signed with the secret key) and Flask-WTF (a CSRF
token on every state-changing form). Editor accounts live in the store (`cartdigest editor
add`) or in the config (`editor_accounts`), with Werkzeug password hashes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import ChoiceLoader
from markupsafe import Markup
from werkzeug.security import check_password_hash

from tracker.edition import EditionBuilder, EditionError, last_complete_week, week_bounds
from tracker.errors import CartdigestError
from tracker.lexicon import build_lexicon
from tracker.profile import load_profile
from tracker.publish import preview, template_environment, test_send
from tracker.render import render_web
from tracker.settings import Settings
from tracker.store import Store, open_store

log = logging.getLogger(__name__)


class Editor(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name
        self.name = name


def editor_password_hash(settings: Settings, store: Store, name: str) -> str | None:
    for account in settings.editor_accounts:
        if account["name"] == name:
            return account["password_hash"]
    row = store.execute("SELECT password_hash FROM editors WHERE name = ?", (name,)).fetchone()
    return row["password_hash"] if row else None


def job_runs(store: Store, limit: int) -> list[dict[str, Any]]:
    runs = []
    for row in store.execute("SELECT * FROM job_runs ORDER BY id DESC LIMIT ?", (limit,)):
        run = dict(row)
        run["summary"] = json.loads(run["summary"] or "{}")
        runs.append(run)
    return runs


def create_app(settings: Settings, clock: Callable[[], datetime] | None = None) -> Flask:
    """The WSGI app. `clock` returns now (tests pass a fixed one)."""
    app = Flask(__name__, static_folder=None)
    app.secret_key = settings.require_secret_key()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=urlparse(settings.base_url).scheme == "https",
        REMEMBER_COOKIE_HTTPONLY=True, WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1_000_000)
    # One Jinja environment setup for every page (tracker.templating), shared with the emails.
    shared = template_environment(settings)
    app.jinja_loader = ChoiceLoader([shared.loader])  # type: ignore[list-item]
    app.jinja_env.undefined = shared.undefined
    app.jinja_env.filters.update(shared.filters)
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    csrf = CSRFProtect(app)
    login = LoginManager(app)
    login.login_view = "login"
    login.login_message = "Please log in to review editions."
    profile = load_profile(settings.profile)
    lexicon = build_lexicon(profile)
    now = clock or (lambda: datetime.now(ZoneInfo(settings.timezone)))

    def store() -> Store:
        if "store" not in g:
            g.store = open_store(settings.data_dir, settings.database_path)
        return g.store

    def builder() -> EditionBuilder:
        return EditionBuilder(store(), profile, lexicon)

    @app.teardown_appcontext
    def close_store(_error: BaseException | None) -> None:
        opened = g.pop("store", None)
        if opened is not None:
            opened.close()

    @login.user_loader
    def load_editor(name: str) -> Editor | None:
        return Editor(name) if editor_password_hash(settings, store(), name) else None

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {"site_title": profile.title, "editor": current_user}

    # -- errors: a clear page, never a traceback ---------------------------------------------

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[str, int]:
        return render_template("message.html", title="This form could not be accepted",
                               message="The form was missing its security token or it had "
                                       "expired. Go back, reload the page and try again."), 400

    @app.errorhandler(404)
    def not_found(_error: Exception) -> tuple[str, int]:
        return render_template("message.html", title="Not found",
                               message="There is nothing at this address."), 404

    @app.errorhandler(CartdigestError)
    def refused(error: CartdigestError) -> tuple[str, int]:
        return render_template("message.html", title="That could not be done",
                               message=str(error)), 400

    # -- editors: log in and out ---------------------------------------------------------------

    @app.route("/editor/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            name = request.form.get("name", "").strip()
            password = request.form.get("password", "")
            hashed = editor_password_hash(settings, store(), name) if name else None
            if hashed and check_password_hash(hashed, password):
                login_user(Editor(name))
                target = request.args.get("next", "")
                # Only ever redirect within this site.
                if not target.startswith("/") or target.startswith("//"):
                    target = url_for("editions")
                return redirect(target)
            log.info("failed editor login for %r", name)
            return render_template("login.html", error="Wrong name or password."), 401
        return render_template("login.html", error=None)

    @app.route("/editor/logout", methods=["POST"])
    @login_required
    def logout() -> Any:
        logout_user()
        return redirect(url_for("login"))

    # -- editors: editions ---------------------------------------------------------------------

    @app.route("/editor/")
    @app.route("/editor/editions")
    @login_required
    def editions() -> str:
        return render_template("editions.html", editions=builder().editions(),
                               default_week=last_complete_week(now()), runs=store().fetch_runs(10),
                               jobs=job_runs(store(), 10))

    @app.route("/editor/editions/draft", methods=["POST"])
    @login_required
    def build_draft() -> Any:
        from tracker.publish import draft_edition

        week = request.form.get("week", "").strip() or last_complete_week(now())
        week_bounds(week)
        report = draft_edition(settings, week, now())
        flash(f"Built the {report.week} draft: {len(report.items)} papers.")
        return redirect(url_for("edition", edition_id=report.edition))

    @app.route("/editor/editions/<int:edition_id>")
    @login_required
    def edition(edition_id: int) -> str:
        view = builder().view(edition_id)
        return render_template("edition.html", view=view, sections=builder().labels)

    @app.route("/editor/editions/<int:edition_id>/preview.html")
    @login_required
    def preview_html(edition_id: int) -> Response:
        _, rendered = preview(builder(), settings, edition_id)
        return Response(rendered.html, mimetype="text/html")

    @app.route("/editor/editions/<int:edition_id>/preview.txt")
    @login_required
    def preview_text(edition_id: int) -> Response:
        _, rendered = preview(builder(), settings, edition_id)
        return Response(rendered.text, mimetype="text/plain")

    def back(edition_id: int, message: str) -> Any:
        flash(message)
        return redirect(url_for("edition", edition_id=edition_id))

    @app.route("/editor/editions/<int:edition_id>/items/<path:key>/<action>", methods=["POST"])
    @login_required
    def item_action(edition_id: int, key: str, action: str) -> Any:
        pmid = key   # a PMID, or doi:<DOI> for a work PubMed does not hold yet
        editions_builder = builder()
        if action in ("exclude", "include"):
            getattr(editions_builder, action)(edition_id, pmid, current_user.name, now())
            return back(edition_id, f"{action.capitalize()}d {pmid}.")
        if action in ("up", "down"):
            editions_builder.reorder(edition_id, pmid, action, current_user.name, now())
            return back(edition_id, f"Moved {pmid} {action}.")
        if action == "move":
            section = request.form.get("section", "")
            editions_builder.move(edition_id, pmid, section, current_user.name, now())
            return back(edition_id, f"Moved {pmid} to {editions_builder.labels.get(section, section)}.")
        if action == "finding":
            editions_builder.set_finding(edition_id, pmid, request.form.get("finding", ""),
                                         current_user.name, now())
            return back(edition_id, f"Saved the key finding of {pmid}.")
        abort(404)

    @app.route("/editor/editions/<int:edition_id>/note", methods=["POST"])
    @login_required
    def note(edition_id: int) -> Any:
        builder().set_note(edition_id, request.form.get("note", ""))
        return back(edition_id, "Saved the editor's note.")

    @app.route("/editor/editions/<int:edition_id>/test-send", methods=["POST"])
    @login_required
    def send_test(edition_id: int) -> Any:
        where = test_send(settings, edition_id, request.form.get("to", ""), now())
        return back(edition_id, f"Test sent ({where}).")

    @app.route("/editor/editions/<int:edition_id>/approve", methods=["POST"])
    @login_required
    def approve(edition_id: int) -> Any:
        builder().approve(edition_id, current_user.name, now())
        return back(edition_id, "Approved: this edition is locked and ready to send.")

    # -- public: the archive of sent editions --------------------------------------------------

    @app.route("/")
    def home() -> Any:
        return redirect(url_for("subscribe"))

    @app.route("/archive")
    def archive() -> str:
        sent = [row for row in builder().editions() if row["status"] == "sent"]
        return render_template("archive.html", editions=sent)

    @app.route("/archive/<week>")
    def archive_edition(week: str) -> Any:
        try:
            week_bounds(week)
        except EditionError:
            abort(404)
        row = store().execute("SELECT id, status FROM editions WHERE week = ?", (week,)).fetchone()
        if row is None or row["status"] != "sent":
            abort(404)
        view = builder().view(row["id"])
        return Markup(render_web(template_environment(settings), view, settings.base_url))

    from subscribers.pages import register_public_pages

    register_public_pages(app, settings, store, now, csrf)
    app.extensions["cartdigest"] = {"settings": settings, "csrf": csrf}
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app with waitress, a production WSGI server (Flask's own is for development)."""
    from waitress import serve as waitress_serve

    app = create_app(settings)
    log.warning("serving on http://%s:%d (public links use %s)", host, port, settings.base_url)
    waitress_serve(app, host=host, port=port, threads=8)
