"""Settings: one table, a fixed precedence, and one clear line for every mistake."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from tracker.errors import ConfigError
from tracker.settings import SETTINGS_BY_NAME, Settings, load_settings


def test_the_table_and_the_settings_object_agree():
    assert {f.name for f in fields(Settings)} - {"config_file"} == set(SETTINGS_BY_NAME)
    for name, setting in SETTINGS_BY_NAME.items():
        assert getattr(Settings(), name) == setting.default, name


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path):
    config = tmp_path / "cartdigest.toml"
    config.write_text('batch_size = 200\neutils_url = "http://file.example/eutils"\n'
                      'overlap_days = 5\n')
    environ = {"CARTDIGEST_DATA_DIR": str(tmp_path), "CARTDIGEST_EUTILS_URL": "http://env.example/e"}
    settings = load_settings({}, environ)
    assert settings.config_file == config                      # found in the data dir
    assert settings.batch_size == 200 and settings.overlap_days == 5
    assert settings.eutils_url == "http://env.example/e/"      # environment beats the file
    assert settings.first_run_days == 7                        # default
    flagged = load_settings({"data_dir": tmp_path / "other"}, environ)
    assert flagged.data_dir == tmp_path / "other" and flagged.config_file is None


@pytest.mark.parametrize("text, message", [
    ("batchsize = 3\n", "unknown setting 'batchsize' in .*known settings: data_dir"),
    ('batch_size = "many"\n', "setting 'batch_size' .*invalid literal"),
    ("batch_size = 20000\n", "setting 'batch_size' .*between 1 and 10000"),
    ('timezone = "Mars/Olympus"\n', "setting 'timezone' .*IANA time zone"),
    ('eutils_url = "ftp://x"\n', "setting 'eutils_url' .*http:// or https:// URL"),
    ("this is not toml\n", "is not valid TOML"),
])
def test_config_mistakes_fail_at_start_with_a_hint(tmp_path: Path, text: str, message: str):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, {}, config_path=config)


def test_environment_mistakes_name_the_variable(tmp_path: Path):
    with pytest.raises(ConfigError, match="set NCBI_EMAIL.*email address"):
        load_settings({"data_dir": tmp_path}, {"NCBI_EMAIL": "not-an-address"})
    with pytest.raises(ConfigError, match="smtp://"):
        load_settings({"data_dir": tmp_path}, {"CARTDIGEST_SMTP_URL": "http://mail"})


def test_missing_config_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, {"CARTDIGEST_CONFIG": str(tmp_path / "nope.toml")})


def test_real_ncbi_needs_a_contact_email(tmp_path: Path):
    settings = load_settings({"data_dir": tmp_path}, {})
    with pytest.raises(ConfigError, match="NCBI requires a contact email: set NCBI_EMAIL"):
        settings.require_ncbi_email()
    local = load_settings({"data_dir": tmp_path}, {"CARTDIGEST_EUTILS_URL": "http://127.0.0.1:9/"})
    assert local.require_ncbi_email() == ""


def test_secrets_never_appear_in_repr(tmp_path: Path):
    settings = load_settings({"data_dir": tmp_path}, {
        "NCBI_API_KEY": "key-abc123", "CARTDIGEST_SMTP_URL": "smtp://user:pw-xyz@mail:25",
        "CARTDIGEST_SECRET_KEY": "s3cr3t-value"})
    text = repr(settings)
    for secret in ("key-abc123", "pw-xyz", "s3cr3t-value"):
        assert secret not in text
