"""The demo (`python -m university`), run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from university.__main__ import main


def test_the_demo_registers_thirty_of_fifty_and_reseats_a_late_student(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--database-url", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"])

    out = capsys.readouterr().out
    assert status == 0
    assert "registered: 30, rejected as full: 20" in out
    assert "section version: 31" in out
    assert "Done: 30/30 seats taken, version 33." in out
    assert out.count("registration.StudentRegistered") == 3
    assert len(out.splitlines()) < 25
    assert (tmp_path / "demo.db").exists()


def test_the_demo_runs_on_a_throwaway_sqlite_file_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    assert "Done: 30/30 seats taken" in capsys.readouterr().out
