"""The demo (`python -m university`), run in-process: registration, relay and records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from university.__main__ import main
from university.settings import BROKER_URL, DATABASE_URL


@pytest.fixture(autouse=True)
def no_university_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults: no database or broker from the environment."""
    monkeypatch.delenv(DATABASE_URL, raising=False)
    monkeypatch.delenv(BROKER_URL, raising=False)


def test_the_demo_registers_thirty_of_fifty_and_records_sees_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--database-url", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"])

    out = capsys.readouterr().out
    assert status == 0
    assert "messages through an in-memory broker" in out
    assert "registered: 30, rejected as full: 20" in out
    assert "section version: 31" in out
    assert "Done: 30/30 seats taken, version 33." in out
    assert re.search(r"records: 30 students enrolled in cs101-\w+, matching registration\.", out)
    assert re.search(r"records: student-\d+ withdrawn \(as of v32\), student-\d+ enrolled", out)
    assert "Outbox relay published 32 messages; records handled 32, skipped 0 duplicates." in out
    assert out.count("registration.StudentRegistered") == 3
    assert len(out.splitlines()) < 25
    assert (tmp_path / "demo.db").exists()


def test_the_demo_runs_on_a_throwaway_sqlite_file_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "Done: 30/30 seats taken" in out
    assert "matching registration." in out


@pytest.mark.parametrize("command", [["relay"], ["records"], ["demo", "--external"]])
def test_services_need_a_database_and_a_broker_other_processes_share(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--database-url", f"sqlite:///{tmp_path / 'u.db'}"])
    assert exit_.value.code == 2
    assert "set UNIVERSITY_DATABASE_URL and UNIVERSITY_BROKER_URL" in capsys.readouterr().err


def test_unknown_brokers_are_refused() -> None:
    from university.messaging import broker_for

    with pytest.raises(ValueError, match="unsupported broker URL 'kafka://x'"):
        broker_for("kafka://x")
