"""The distribution's name: `eventcore` on the package index is an unrelated project."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = "eventcore-es"


def test_the_distribution_is_eventcore_es_and_imports_as_eventcore() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == NAME
    assert all(d.startswith(f"{NAME}[") for d in project["optional-dependencies"]["dev"][:1])
    assert project["scripts"] == {"eventcore": "eventcore.cli:main"}
    installed = metadata.distribution(NAME)
    assert installed.metadata["Name"] == NAME
    assert [e.name for e in installed.entry_points if e.group == "console_scripts"] == ["eventcore"]


def test_the_example_app_depends_on_eventcore_es() -> None:
    project = tomllib.loads((ROOT / "examples" / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for extra in extras for r in extra)]
    names = {re.split(r"[\[<>=~ ]", r, maxsplit=1)[0] for r in requirements}
    assert "eventcore" not in names
    assert NAME in names


def test_every_install_command_names_eventcore_es() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    sources = [*pages, *sorted((ROOT / "src").rglob("*.py"))]
    for path in sources:
        for line in path.read_text("utf-8").splitlines():
            for match in re.finditer(r"pip install (?P<args>.*)", line):
                wrong = re.findall(r"""["' ]eventcore\[""", " " + match["args"])
                assert not wrong, f"{path.relative_to(ROOT)}: {line.strip()}"


def test_the_license_and_the_changelog() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 eventcore developers" in license_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", changelog, flags=re.MULTILINE)
    assert headings[:2] == ["Unreleased", "0.1.0"]
    assert "Keep a Changelog" in changelog
