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


def test_the_demo_seeds_a_term_rushes_a_section_and_records_sees_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--database-url", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "messages through an in-memory broker" in out
    assert re.search(
        r"Seeded term \S+: \d{3} sections of \d{3} courses in 14 departments, 3000 students", out
    )
    assert "81 students register for" in out
    assert (
        "enrolled 40, waitlisted 8, refused 33 (hold 3, outside-window 20, section-full 10)" in out
    )
    assert "0 conflicts in 81 decisions" in out
    assert re.search(r"s\d{5}: a bursar hold blocks registration", out)
    assert re.search(r"dropped \S+; the waitlist process seated s\d{5}, first in line", out)
    assert "swapping back was refused (no-seat-for-swap)" in out
    assert re.search(r"Audit trail of \S+: 86 requests \(dropped 2, enrolled 42, refused 34", out)
    assert "by registration.waitlist" in out
    assert "As of the drop: 40 enrolled, 8 waiting; now: 40 enrolled, 6 waiting." in out
    assert re.search(r"records: 40 students enrolled in \S+, matching registration\.", out)
    assert re.search(r"records: s\d+ withdrawn \(as of v50\), s\d+ enrolled \(as of v51\)", out)
    assert "Outbox relay published 53 messages; records handled 45, skipped 0 duplicates." in out
    assert len(out.splitlines()) < 25
    assert (tmp_path / "demo.db").exists()


def test_the_demo_runs_on_a_throwaway_sqlite_file_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "enrolled 40, waitlisted 8" in out
    assert "matching registration." in out


@pytest.mark.parametrize(
    "command", [["relay"], ["registration"], ["records"], ["demo", "--external"]]
)
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
