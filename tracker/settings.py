"""Settings as data: one table holds every setting's default, type, source and help.

Precedence (CONTRACT.md): command-line flag > environment variable > config file > default.
Everything is validated once, at start-up, so a typo fails before any work is done.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.errors import ConfigError

NCBI_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
CONFIG_FILENAME = "cartdigest.toml"
SECRET_FILENAME = "secret_key"
DATABASE_FILENAME = "cartdigest.db"


def _url(value: Any) -> str:
    text = str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text if text.endswith("/") else text + "/"


def _smtp_url(value: Any) -> str:
    text = str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
        raise ValueError("must look like smtp://[user:pass@]host:port or smtps://host:port")
    return text


def _email(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+", text):
        raise ValueError("must be an email address such as you@example.org")
    return text


def _positive_int(limit: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        number = int(value)
        if not 1 <= number <= limit:
            raise ValueError(f"must be between 1 and {limit}")
        return number

    return convert


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    number = float(value)
    if number <= 0:
        raise ValueError("must be more than 0")
    return number


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/London") from None
    return str(value)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday(value: Any) -> str:
    text = str(value).strip().lower()[:3]
    if text not in WEEKDAYS:
        raise ValueError("must be a weekday name such as mon or tuesday (names, not numbers: "
                         "APScheduler counts Monday as 0, cron as 1)")
    return text


def _clock_time(value: Any) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value).strip())
    if not match:
        raise ValueError("must be a time of day like 07:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _url_list(value: Any) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else list(value)
    return tuple(_url(item).rstrip("/") for item in items)


def _email_list(value: Any) -> tuple[str, ...]:
    items = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else list(value)
    return tuple(_email(item) for item in items if item)


def _accounts(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ValueError('must be a list of tables like {name = "ada", password_hash = "scrypt:..."}')
    accounts = []
    for entry in value:
        if set(entry) != {"name", "password_hash"} or not all(isinstance(v, str) and v for v in entry.values()):
            raise ValueError("each account needs exactly a name and a password_hash "
                             "(make one with `cartdigest editor hash`)")
        accounts.append(dict(entry))
    return tuple(accounts)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _path(value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("must be a path")
    return Path(value).expanduser()


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    convert: Callable[[Any], Any]
    help: str
    env: str | None = None
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", Path("./cartdigest-data"), _path,
            "folder holding the SQLite store, drafts, outbox and archive", env="CARTDIGEST_DATA_DIR"),
    Setting("profile", None, _path,
            "topic profile (TOML); default: the shipped post-CAR-T relapse profile"),
    Setting("eutils_url", NCBI_EUTILS_URL, _url,
            "base URL of NCBI E-utilities", env="CARTDIGEST_EUTILS_URL"),
    Setting("ncbi_email", None, _email,
            "contact address sent to NCBI with every request (NCBI policy)", env="NCBI_EMAIL"),
    Setting("ncbi_api_key", None, _text,
            "NCBI API key: 10 requests/s instead of 3", env="NCBI_API_KEY", secret=True),
    Setting("tool", "cartdigest", _text, "tool name sent to NCBI with every request"),
    Setting("batch_size", 500, _positive_int(10000), "records per EFetch request"),
    Setting("request_timeout", 30.0, _positive_float, "seconds before an HTTP request is abandoned"),
    Setting("max_retries", 6, _non_negative_int, "retries of a failed request before giving up"),
    Setting("overlap_days", 3, _non_negative_int,
            "days re-read before the watermark, for records PubMed indexes late"),
    Setting("first_run_days", 7, _positive_int(36500), "days a first fetch reaches back"),
    Setting("timezone", "Europe/London", _timezone, "time zone of the weekly edition and schedule"),
    Setting("schedule_day", "mon", _weekday, "weekday the weekly job runs (fetch, classify, draft, notice)"),
    Setting("schedule_time", "07:00", _clock_time, "time of day the weekly job runs, in `timezone`"),
    Setting("send_day", None, _weekday, "weekday an approved edition is sent (unset: send by hand)"),
    Setting("send_time", "08:00", _clock_time, "time of day of the scheduled send"),
    Setting("smtp_url", None, _smtp_url,
            "SMTP relay; unset: messages are written as .eml files under <data dir>/outbox/",
            env="CARTDIGEST_SMTP_URL", secret=True),
    Setting("secret_key", None, _text,
            "signs email tokens and editor sessions; generated by init into <data dir>/secret_key",
            env="CARTDIGEST_SECRET_KEY", secret=True),
    Setting("feeds", (), _url_list, "extra RSS/Atom feed URLs (space-separated in the environment)",
            env="CARTDIGEST_FEEDS"),
    Setting("trials", True, _flag, "refresh tracked trials from ClinicalTrials.gov in fetch and run",
            env="CARTDIGEST_TRIALS"),
    Setting("ctgov_url", "https://clinicaltrials.gov/api/v2/", _url,
            "base URL of the ClinicalTrials.gov API v2", env="CARTDIGEST_CTGOV_URL"),
    Setting("preprint_versions", True, _flag,
            "ask bioRxiv/medRxiv which journal article a stored preprint became (when feeds are read)",
            env="CARTDIGEST_PREPRINT_VERSIONS"),
    Setting("biorxiv_url", "https://api.biorxiv.org/", _url,
            "base URL of the bioRxiv/medRxiv API", env="CARTDIGEST_BIORXIV_URL"),
    Setting("base_url", "http://127.0.0.1:8000", lambda value: _url(value).rstrip("/"),
            "public URL of `cartdigest serve`, used in links inside emails", env="CARTDIGEST_BASE_URL"),
    Setting("from_address", "cartdigest@localhost", _email, "From: address of every email"),
    Setting("editor_emails", (), _email_list, "editors told about each new draft"),
    Setting("send_rate", 50.0, _positive_float, "most messages per second sent to the SMTP relay"),
    Setting("smtp_connections", 1, _positive_int(32),
            "SMTP connections used in parallel, each reused (more than 1: a crash may repeat that many)"),
    Setting("unsubscribe_mailto", None, _email,
            "address for mailto: unsubscribe requests, added to List-Unsubscribe (optional)"),
    Setting("editor_accounts", (), _accounts,
            "editor logins besides `cartdigest editor add`: [{name, password_hash}]", secret=True),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Validated settings. `repr` hides secrets so the object can be logged."""

    data_dir: Path = Path("./cartdigest-data")
    profile: Path | None = None
    eutils_url: str = NCBI_EUTILS_URL
    ncbi_email: str | None = None
    ncbi_api_key: str | None = field(default=None, repr=False)
    tool: str = "cartdigest"
    batch_size: int = 500
    request_timeout: float = 30.0
    max_retries: int = 6
    overlap_days: int = 3
    first_run_days: int = 7
    timezone: str = "Europe/London"
    schedule_day: str = "mon"
    schedule_time: str = "07:00"
    send_day: str | None = None
    send_time: str = "08:00"
    smtp_url: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    feeds: tuple[str, ...] = ()
    trials: bool = True
    ctgov_url: str = "https://clinicaltrials.gov/api/v2/"
    preprint_versions: bool = True
    biorxiv_url: str = "https://api.biorxiv.org/"
    base_url: str = "http://127.0.0.1:8000"
    from_address: str = "cartdigest@localhost"
    editor_emails: tuple[str, ...] = ()
    send_rate: float = 50.0
    smtp_connections: int = 1
    unsubscribe_mailto: str | None = None
    editor_accounts: tuple[dict[str, str], ...] = field(default=(), repr=False)
    config_file: Path | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILENAME

    @property
    def uses_real_ncbi(self) -> bool:
        return (urlparse(self.eutils_url).hostname or "").endswith("ncbi.nlm.nih.gov")

    def require_ncbi_email(self) -> str:
        """NCBI asks every client for a contact address; refuse to call real NCBI without one."""
        if self.ncbi_email:
            return self.ncbi_email
        if self.uses_real_ncbi:
            raise ConfigError(
                "NCBI requires a contact email: set NCBI_EMAIL=you@example.org "
                "(or ncbi_email in the config file)"
            )
        return ""

    def require_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        raise ConfigError(
            f"no secret key: run `cartdigest init --data-dir {self.data_dir}` "
            "or set CARTDIGEST_SECRET_KEY"
        )


def _convert(setting: Setting, value: Any, origin: str) -> Any:
    try:
        return setting.convert(value)
    except (ValueError, TypeError) as error:
        hint = f"set {setting.env}" if setting.env and origin.startswith("environment") else origin
        raise ConfigError(f"setting '{setting.name}' ({hint}): {error}; got {value!r}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: create it or drop --config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None


def load_settings(flags: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None,
                  config_path: Path | None = None) -> Settings:
    """Merge defaults, the config file, the environment and flags; validate every value."""
    flags = {name: value for name, value in (flags or {}).items() if value is not None}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

    env_values = {setting.name: environ[setting.env] for setting in SETTINGS
                  if setting.env and environ.get(setting.env, "").strip()}

    # The config file's own location depends on the data dir, which the file may not override
    # when a flag or the environment already named it.
    early_data_dir = flags.get("data_dir") or env_values.get("data_dir")
    if config_path is None and environ.get("CARTDIGEST_CONFIG"):
        config_path = Path(environ["CARTDIGEST_CONFIG"])
    if config_path is None:
        candidate = _path(early_data_dir or values["data_dir"]) / CONFIG_FILENAME
        config_path = candidate if candidate.is_file() else None

    if config_path is not None:
        for key, value in read_config_file(config_path).items():
            setting = SETTINGS_BY_NAME.get(key)
            if setting is None:
                known = ", ".join(SETTINGS_BY_NAME)
                raise ConfigError(f"unknown setting '{key}' in {config_path}; known settings: {known}")
            values[key] = _convert(setting, value, f"in {config_path}")

    for name, value in env_values.items():
        values[name] = _convert(SETTINGS_BY_NAME[name], value, "environment")
    for name, value in flags.items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"unknown setting '{name}'")
        values[name] = _convert(setting, value, f"--{name.replace('_', '-')}")

    # Relative paths in a config file are relative to the file, not to wherever cron started us.
    if config_path is not None:
        for name in ("data_dir", "profile"):
            value = values[name]
            if isinstance(value, Path) and not value.is_absolute() and name not in flags \
                    and name not in env_values and value != SETTINGS_BY_NAME[name].default:
                values[name] = config_path.parent / value

    if values["secret_key"] is None:
        values["secret_key"] = read_secret_file(values["data_dir"])
    return Settings(**values, config_file=config_path)


def read_secret_file(data_dir: Path) -> str | None:
    path = data_dir / SECRET_FILENAME
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None


def write_secret_file(data_dir: Path) -> Path:
    """Create the secret key file with mode 0600 unless it exists already."""
    path = data_dir / SECRET_FILENAME
    if path.exists():
        return path
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    return path


def default_config_text() -> str:
    """The commented config file `init` writes: every setting with its default and help."""
    lines = ["# cartdigest configuration. Uncomment a line to change it.",
             "# Precedence: command-line flag > environment variable > this file > default.", ""]
    for setting in SETTINGS:
        if setting.secret or setting.name == "data_dir":
            continue
        lines.append(f"# {setting.help}" + (f" (environment: {setting.env})" if setting.env else ""))
        default = setting.default
        if default is None:
            lines.append(f'# {setting.name} = ""')
        elif isinstance(default, tuple):
            lines.append(f"# {setting.name} = []")
        elif isinstance(default, str):
            lines.append(f'# {setting.name} = "{default}"')
        else:
            lines.append(f"# {setting.name} = {default}")
        lines.append("")
    return "\n".join(lines)


def settings_table() -> list[tuple[str, str, str, str]]:
    """(name, environment, default, help) for the README and `cartdigest settings`."""
    rows = []
    for setting in SETTINGS:
        default = "" if setting.default in (None, ()) else str(setting.default)
        rows.append((setting.name, setting.env or "", default, setting.help))
    return rows

