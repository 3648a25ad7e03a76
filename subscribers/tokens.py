"""Signed tokens for the links in emails: confirm, preferences, unsubscribe.

itsdangerous signs (HMAC-SHA1 over a key derived per purpose) the reader id and a fingerprint
of their address with the secret key, so a token cannot be guessed, forged or altered, and one
purpose's token is useless for another. Confirmation links expire; unsubscribe links never do.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from tracker.errors import CartdigestError

MAX_AGE = {"confirm": 7 * 24 * 3600, "preferences": 400 * 24 * 3600, "unsubscribe": None}


class TokenError(CartdigestError):
    """A link that is not ours, was altered, or has expired."""


def _fingerprint(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:16]


class Tokens:
    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in MAX_AGE:
            raise ValueError(f"unknown token purpose {purpose}")
        return URLSafeTimedSerializer(self.secret_key, salt=f"cartdigest-{purpose}")

    def make(self, purpose: str, reader_id: int, email: str) -> str:
        return self._serializer(purpose).dumps([reader_id, _fingerprint(email)])

    def read(self, purpose: str, token: str, email_of: "callable") -> int:
        """The reader id in a valid token; `email_of(id)` gives the reader's current address."""
        try:
            reader_id, fingerprint = self._serializer(purpose).loads(token, max_age=MAX_AGE[purpose])
        except SignatureExpired:
            raise TokenError("this link has expired; ask for a new one") from None
        except (BadSignature, ValueError, TypeError):
            raise TokenError("this link is not valid: it may have been altered or cut short") from None
        email = email_of(reader_id)
        if email is None or _fingerprint(email) != fingerprint:
            raise TokenError("this link belongs to a subscription that no longer exists")
        return reader_id
