"""The README's Quickstart and the getting-started page can be followed twice in a row.

A newcomer runs the Quickstart, then runs it again: the second run must not fail
because the first one stored its events. Both run twice in one working directory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import test_docs
from tests.docs.test_docs import ROOT, parse_blocks


def test_the_quickstart_script_runs_twice(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    quickstart = readme.split("## Quickstart", 1)[1]
    (block,) = parse_blocks(quickstart.split("\n## ", 1)[0])
    script = tmp_path / "quickstart.py"
    script.write_text(block.code, "utf-8")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "1 {'ada'}\n"


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_page_runs_twice_in_one_directory(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        test_docs.test_page(ROOT / page, tmp_path, monkeypatch)
