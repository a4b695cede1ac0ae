"""eventcore.fastapi's public API, and `import eventcore` without FastAPI installed."""

from __future__ import annotations

import inspect
import subprocess
import sys

import eventcore.fastapi


def test_all_is_sorted_unique_and_complete() -> None:
    names = eventcore.fastapi.__all__
    # Sorted as ruff keeps it (RUF022): constants, then classes, then functions.
    kind = {True: 0, False: 1}
    order = sorted(set(names), key=lambda n: (kind[n.isupper()] + (n[0].islower()), n))
    assert list(names) == order
    assert [n for n in names if not hasattr(eventcore.fastapi, n)] == []
    public = {
        name
        for name, value in vars(eventcore.fastapi).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("eventcore.fastapi")
    }
    assert public - set(names) == set()


def test_every_public_name_has_a_docstring() -> None:
    for name in eventcore.fastapi.__all__:
        value = getattr(eventcore.fastapi, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_eventcore_imports_without_fastapi() -> None:
    blocked = "import sys\nfor m in ('fastapi', 'starlette'): sys.modules[m] = None\n"
    done = _run(
        blocked + "import eventcore\nprint(eventcore.InMemoryEventStore().__class__.__name__)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "InMemoryEventStore"
    missing = _run(blocked + "import eventcore.fastapi")
    assert missing.returncode != 0
    assert "pip install 'eventcore-es[fastapi]'" in missing.stderr
