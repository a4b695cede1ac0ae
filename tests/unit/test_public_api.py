"""Keeps the public API honest: `__all__`, the exception tree, optional drivers."""

from __future__ import annotations

import inspect
import subprocess
import sys

import eventcore
from eventcore import _exceptions


def test_all_is_sorted_and_unique() -> None:
    assert list(eventcore.__all__) == sorted(set(eventcore.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in eventcore.__all__ if not hasattr(eventcore, name)]
    assert missing == []


def test_every_public_object_is_in_all() -> None:
    public = {
        name
        for name, value in vars(eventcore).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("eventcore")
    }
    assert public - set(eventcore.__all__) == set()


def test_every_exception_derives_from_eventcore_error_and_is_drawn() -> None:
    doc = _exceptions.__doc__ or ""
    errors = [
        value
        for value in vars(_exceptions).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert len(errors) > 10
    for error in errors:
        assert issubclass(error, eventcore.EventcoreError), error
        assert error.__name__ in doc, f"{error.__name__} is missing from the drawn tree"
        assert getattr(eventcore, error.__name__) is error, f"{error.__name__} is not exported"


def test_import_works_without_database_drivers() -> None:
    code = (
        "import sys\n"
        "sys.modules['asyncpg'] = None\n"
        "sys.modules['aiosqlite'] = None\n"
        "import eventcore\n"
        "store = eventcore.InMemoryEventStore()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("eventcore").joinpath("py.typed").is_file()


def test_import_works_without_cryptography() -> None:
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "from typing import Annotated\n"
        "import eventcore\n"
        "class Told(eventcore.DomainEvent):\n"
        "    who: Annotated[str, eventcore.DataSubjectId()]\n"
        "    name: Annotated[str, eventcore.PersonalData()]\n"
        "store = eventcore.InMemoryEventStore()\n"
        "try:\n"
        "    eventcore.LocalKeyProvider({'k': bytes(32)})\n"
        "except eventcore.PersonalDataError as error:\n"
        "    assert 'personal-data' in str(error), error\n"
        "    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
