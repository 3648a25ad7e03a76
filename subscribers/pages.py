"""Public pages for readers: subscribe (double opt-in), confirm, preferences, unsubscribe.

RFC 8058: a POST to the unsubscribe URL unsubscribes with no login and no CSRF token (mail
clients send it from the List-Unsubscribe header); a GET only shows a page with a button,
because link scanners follow GETs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from flask import Flask, render_template, request

from subscribers.mailer import AddressError
from subscribers.readers import ReaderError, Readers
from subscribers.service import section_choices, send_confirmation
from subscribers.tokens import TokenError, Tokens
from tracker.settings import Settings
from tracker.store import Store

log = logging.getLogger(__name__)


def register_public_pages(app: Flask, settings: Settings, store: Callable[[], Store],
                          now: Callable[[], datetime], csrf: Any) -> None:
    choices = section_choices(settings)
    tokens = Tokens(settings.require_secret_key())

    def readers() -> Readers:
        return Readers(store(), list(choices))

    def reader_from(purpose: str, token: str) -> Any:
        book = readers()
        reader_id = tokens.read(purpose, token, lambda rid: getattr(book.by_id(rid), "email", None))
        return book, book.by_id(reader_id)

    def page(title: str, message: str, status: int = 200) -> tuple[str, int]:
        return render_template("message.html", title=title, message=message), status

    @app.errorhandler(TokenError)
    def bad_token(error: TokenError) -> tuple[str, int]:
        return page("This link does not work", str(error), 400)

    @app.route("/subscribe", methods=["GET", "POST"])
    def subscribe() -> Any:
        if request.method == "GET":
            return render_template("subscribe.html", choices=choices, error=None, form={})
        form = request.form
        chosen = [key for key in form.getlist("sections") if key in choices]
        try:
            reader, _ = readers().resubscribe(form.get("email", ""), now(), form.get("name") or None, chosen)
        except AddressError as error:
            return render_template("subscribe.html", choices=choices, error=str(error), form=form), 400
        except ReaderError:
            reader = None   # removed at their request: say the same as for anyone else
        if reader is not None and reader.status == "pending":
            send_confirmation(settings, reader, now())
        # The same answer whatever the address's history, so the form reveals nobody's.
        return page("Check your inbox",
                    "If this address can subscribe, a confirmation link is on its way. "
                    "Open it within 7 days to start receiving the digest.")

    @app.route("/confirm/<token>", methods=["GET", "POST"])
    def confirm(token: str) -> Any:
        book, reader = reader_from("confirm", token)
        if request.method == "GET":
            return render_template("confirm.html", reader=reader)
        book.confirm(reader.id, now(), "web confirmation link")
        return page("You are subscribed", "Thank you. The next weekly edition will come to "
                    f"{reader.email}. Every email has links to choose sections or unsubscribe.")

    @app.route("/preferences/<token>", methods=["GET", "POST"])
    def preferences(token: str) -> Any:
        book, reader = reader_from("preferences", token)
        if request.method == "POST":
            chosen = [key for key in request.form.getlist("sections") if key in choices]
            reader = book.set_sections(reader.id, chosen, now(), "preferences page")
            return render_template("preferences.html", reader=reader, choices=choices,
                                   saved=True, token=token)
        return render_template("preferences.html", reader=reader, choices=choices, saved=False, token=token)

    @app.route("/unsubscribe/<token>", methods=["GET"])
    def unsubscribe_page(token: str) -> Any:
        _, reader = reader_from("unsubscribe", token)
        return render_template("unsubscribe.html", reader=reader, token=token)

    @app.route("/unsubscribe/<token>", methods=["POST"])
    @csrf.exempt
    def unsubscribe(token: str) -> Any:
        book, reader = reader_from("unsubscribe", token)
        if reader.status != "unsubscribed":
            source = "one-click (List-Unsubscribe-Post)" if \
                request.form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
            book.set_status(reader.id, "unsubscribed", now(), source)
        return page("You are unsubscribed", f"{reader.email} will get no more editions. "
                    "Changed your mind? You can subscribe again at any time.")
