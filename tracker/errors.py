"""Domain exceptions. The CLI turns each into one line on stderr that says how to fix it."""


class CartdigestError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""


class ConfigError(CartdigestError):
    """A setting is unknown, of the wrong type, missing or unreachable."""


class ProfileError(CartdigestError):
    """The topic profile file is missing or malformed."""


class StoreError(CartdigestError):
    """The SQLite store cannot be opened, migrated or written."""


class EutilsError(CartdigestError):
    """E-utilities could not be reached or kept failing after every retry."""


class EutilsQueryError(EutilsError):
    """NCBI answered, but refused the request (an in-band <ERROR>); retrying will not help."""


class ParseError(CartdigestError):
    """A response body was not the XML we expected."""


class RetryableBodyError(ParseError):
    """A cut-off body, an HTML error page or other wrong format: worth asking again."""
