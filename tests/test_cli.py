"""The command line: exact outputs, one-line errors, help on every command."""

from __future__ import annotations

import json
import re
import os
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.cli import cli
from tracker.standin import add_article


def all_commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if hasattr(command, "commands"):
            yield from all_commands(command, prefix + (name,))


@pytest.fixture
def runner(tmp_path: Path, monkeypatch):
    for variable in [name for name in os.environ if name.startswith(("CARTDIGEST_", "NCBI_"))
                     and name != "CARTDIGEST_TRIALS"]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("CARTDIGEST_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


@pytest.mark.parametrize("command", list(all_commands()))
def test_every_command_has_help_with_an_example(runner, command):
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or "Usage" in result.output
    assert "Example" in result.output, f"{' '.join(command)} --help shows no example"


def test_init_creates_everything_and_is_safe_to_rerun(runner, tmp_path):
    first = runner.invoke(cli, ["init"])
    assert first.exit_code == 0, first.output
    data = tmp_path / "data"
    secret = data / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (data / "cartdigest.toml").is_file() and (data / "cartdigest.db").is_file()
    key = secret.read_text()
    second = runner.invoke(cli, ["init"])
    assert second.exit_code == 0 and "created" not in second.output
    assert secret.read_text() == key
    assert key.strip() not in first.output + second.output


def test_fetch_json_is_one_document_and_papers_json_lines(runner, standin, monkeypatch):
    add_article(standin, "41000001", "Glofitamab after <i>CAR-T</i> failure", date(2026, 11, 10),
                doi="10.1/x")
    add_article(standin, "41000002", "Second paper", date(2026, 11, 11))
    monkeypatch.setenv("CARTDIGEST_EUTILS_URL", standin.url)
    monkeypatch.setenv("NCBI_EMAIL", "tests@example.org")
    result = runner.invoke(cli, ["fetch", "--since", "2026-11-09", "--until", "2026-11-15", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # 3 searches, 1 ELink, 1 EFetch: each search found both papers, so no EPost is needed
    assert document == {"window": ["2026-11-09", "2026-11-15"], "requests": 5, "found": 2,
                         "new": 2, "updated": 0}
    listed = runner.invoke(cli, ["papers", "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["pmid"] for row in rows] == ["41000001", "41000002"]
    assert set(rows[0]) >= {"pmid", "doi", "title", "journal", "edat", "relevance", "therapies",
                            "study_type", "evidence", "found_by"}
    assert rows[0]["title"] == "Glofitamab after CAR-T failure"
    assert rows[0]["found_by"] == ["query:car-t-failure-lymphoma",
                                   "query:car-t-failure-other-malignancies",
                                   "query:salvage-agents-after-car-t"]


def test_errors_are_one_line_without_traceback(runner, standin, monkeypatch):
    monkeypatch.setenv("CARTDIGEST_EUTILS_URL", standin.url)
    monkeypatch.setenv("NCBI_EMAIL", "tests@example.org")
    standin.fail("error", utility="esearch.fcgi", message="Query syntax error near ((")
    result = runner.invoke(cli, ["fetch", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == ("cartdigest: error: NCBI refused the request: "
                                     "Query syntax error near ((")


def test_real_ncbi_without_email_stops_before_any_request(runner):
    result = runner.invoke(cli, ["fetch"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("cartdigest: error: NCBI requires a contact email: set "
                                     "NCBI_EMAIL=you@example.org (or ncbi_email in the config file)")


def test_bad_config_is_one_line(runner, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cartdigest.toml").write_text("batch_size = -4\n")
    result = runner.invoke(cli, ["papers"])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "batch_size" in result.stderr and "between 1 and 10000" in result.stderr


def test_unknown_relevance_is_refused(runner):
    result = runner.invoke(cli, ["papers", "--relevance", "core,maybe", "--json"])
    assert result.exit_code == 2 and "unknown relevance maybe" in result.stderr


def test_unreachable_eutils_is_one_line_from_a_real_process(tmp_path):
    environment = {**os.environ, "CARTDIGEST_DATA_DIR": str(tmp_path),
                   "CARTDIGEST_EUTILS_URL": "http://127.0.0.1:9/eutils/",
                   "NCBI_EMAIL": "tests@example.org"}
    (tmp_path / "cartdigest.toml").write_text("max_retries = 1\n")
    result = subprocess.run([sys.executable, "-m", "tracker", "fetch"], env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("cartdigest: error: esearch.fcgi failed 2 times (last: connection failed")
    assert "Traceback" not in result.stderr


def test_demo_runs_offline_in_an_empty_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tracker", "demo", "--data-dir",
                             str(tmp_path / "demo")], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("CARTDIGEST")
                                 or k == "CARTDIGEST_TRIALS"})
    assert result.returncode == 0, result.stderr
    assert "fetched 16 papers" in result.stdout
    html = re.search(r"digest \(HTML\): (\S+)", result.stdout).group(1)
    text = re.search(r"digest \(text\): (\S+)", result.stdout).group(1)
    assert html.startswith(str(tmp_path / "demo")) and Path(html).read_text().startswith("<!DOCTYPE html>")
    assert "BISPECIFIC ANTIBODIES" in Path(text).read_text()


def test_readme_lists_every_setting_and_command():
    from tracker.settings import SETTINGS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in readme, setting.name
    for command in cli.commands:
        assert f"`cartdigest {command}" in readme, command
