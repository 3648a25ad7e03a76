"""`cartdigest init`: create the data dir, config, secret key and database. Safe to re-run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tracker.errors import ConfigError
from tracker.settings import CONFIG_FILENAME, Settings, default_config_text, write_secret_file
from tracker.store import Store


@dataclass
class InitReport:
    data_dir: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def init_data_dir(settings: Settings) -> InitReport:
    """Create whatever is missing; never overwrite what exists."""
    data_dir = settings.data_dir
    report = InitReport(data_dir.resolve())
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("outbox", "drafts", "archive"):
            (data_dir / sub).mkdir(exist_ok=True)
        config_path = settings.config_file or data_dir / CONFIG_FILENAME
        if config_path.exists():
            report.kept.append(str(config_path))
        else:
            config_path.write_text(default_config_text(), encoding="utf-8")
            report.created.append(str(config_path))
        secret_path = data_dir / "secret_key"
        if secret_path.exists() or os.environ.get("CARTDIGEST_SECRET_KEY"):
            report.kept.append(str(secret_path) if secret_path.exists() else "CARTDIGEST_SECRET_KEY")
        else:
            write_secret_file(data_dir)
            report.created.append(f"{secret_path} (mode 0600)")
    except OSError as error:
        raise ConfigError(f"cannot create {data_dir}: {error.strerror}; "
                          "choose another --data-dir or fix its permissions") from None
    database_existed = settings.database_path.exists()
    Store(settings.database_path).close()
    (report.kept if database_existed else report.created).append(str(settings.database_path))
    return report
