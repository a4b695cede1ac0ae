"""`python -m university ...` ends in one line, not a traceback, when a server is away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE_DB = "postgresql://postgres@127.0.0.1:1/test"
NOWHERE_AMQP = "amqp://guest:guest@127.0.0.1:1/"
NOWHERE_NATS = "nats://127.0.0.1:1"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "university", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def _assert_one_line(done: subprocess.CompletedProcess[str], command: str, *says: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # The broker client may log its own line first; ours is the last, and the only one.
    ours = [line for line in done.stderr.splitlines() if line.startswith("university ")]
    assert ours == [done.stderr.strip().splitlines()[-1]], done.stderr
    assert ours[0].startswith(f"university {command}: "), ours
    for fragment in says:
        assert fragment in ours[0], ours


@pytest.mark.parametrize("command", ["relay", "records"])
def test_an_unreachable_database(command: str) -> None:
    done = _run(command, "--database-url", NOWHERE_DB, "--broker-url", NOWHERE_NATS)
    _assert_one_line(done, command, "Connect call failed")


def test_the_demo_with_an_unreachable_database() -> None:
    _assert_one_line(_run("demo", "--database-url", NOWHERE_DB), "demo", "Connect call failed")


def test_a_database_file_that_cannot_be_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-directory' / 'university.db'}"
    done = _run("records", "--database-url", url, "--broker-url", NOWHERE_NATS)
    _assert_one_line(done, "records", "unable to open database file")


def test_records_with_an_unreachable_rabbitmq(tmp_path: Path) -> None:
    # (On NATS the client keeps reconnecting: the service waits for the broker.)
    url = f"sqlite:///{tmp_path / 'university.db'}"
    done = _run("records", "--database-url", url, "--broker-url", NOWHERE_AMQP)
    _assert_one_line(done, "records", "cannot connect")
