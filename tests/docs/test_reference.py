"""The API reference lists every public name once, on the page of its topic."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import eventcore

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
TOPICS = [
    "events.md",
    "stores.md",
    "repository.md",
    "projections.md",
    "process-managers.md",
    "messaging.md",
    "personal-data.md",
    "errors.md",
]


def _listed() -> Counter[str]:
    names: Counter[str] = Counter()
    for page in TOPICS:
        text = (REFERENCE / page).read_text("utf-8")
        names.update(re.findall(r"^::: eventcore\.(\w+)$", text, flags=re.MULTILINE))
    return names


def test_every_public_name_is_on_exactly_one_topic_page() -> None:
    listed = _listed()
    public = {name for name in eventcore.__all__ if name != "__version__"}
    assert sorted(public - set(listed)) == []  # missing from the reference
    assert sorted(set(listed) - public) == []  # not public
    assert sorted(n for n, count in listed.items() if count > 1) == []


def test_errors_have_the_errors_page() -> None:
    errors = {
        name
        for name in eventcore.__all__
        if isinstance(getattr(eventcore, name), type)
        and issubclass(getattr(eventcore, name), eventcore.EventcoreError)
    }
    text = (REFERENCE / "errors.md").read_text("utf-8")
    assert errors == set(re.findall(r"^::: eventcore\.(\w+)$", text, flags=re.MULTILINE))


def test_the_overview_no_longer_renders_the_whole_package() -> None:
    assert "::: eventcore\n" not in (REFERENCE / "api.md").read_text("utf-8") + "\n"
