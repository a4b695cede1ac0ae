"""`--app module:attribute`: where the commands find the application's projectors."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence

import click

from eventcore import Consumer, Projector

__all__ = ["DEFAULT_ATTRIBUTE", "load_consumer", "load_projectors", "select"]

DEFAULT_ATTRIBUTE = "projectors"


def load_projectors(spec: str | None) -> list[Projector]:
    """The projectors that `spec` (`module:attribute`) names.

    The attribute is a `Projector`, an iterable of them, or a callable taking no
    arguments that returns either (a function, or a `Projector` subclass).
    `:attribute` defaults to `projectors`. The current directory is importable, as
    with `python -m`.
    """
    if not spec:
        raise click.UsageError("this command needs the projectors: give --app or set EVENTCORE_APP")
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise click.UsageError(f"--app {spec!r}: expected module:attribute")
    value = getattr(_import(module_name, spec), attribute or DEFAULT_ATTRIBUTE, None)
    if value is None:
        raise click.UsageError(f"--app {spec!r}: the module has no {attribute or 'projectors'!r}")
    if callable(value):
        value = _called(value, spec, "--app")
    return _checked(value, spec)


def load_consumer(spec: str) -> Consumer:
    """The consumer that `spec` (`module:attribute`) names: a `Consumer`, or a callable
    taking no arguments that returns one (a `Consumer` subclass, say)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.UsageError(f"--consumer {spec!r}: expected module:attribute")
    value = getattr(_import(module_name, spec, "--consumer"), attribute, None)
    if callable(value) and not isinstance(value, Consumer):
        value = _called(value, spec, "--consumer")
    if not isinstance(value, Consumer):
        raise click.ClickException(
            f"--consumer {spec!r} must give a Consumer (or a class or function returning "
            f"one), got {value!r}"
        )
    return value


def select(projectors: Sequence[Projector], names: Iterable[str]) -> list[Projector]:
    """The projectors called `names`, in that order (all of them when `names` is empty).

    A name selects every version of its projection; a key (`name@v2`) just that one.
    """
    wanted = list(names)
    if not wanted:
        return list(projectors)
    found = {name: [p for p in projectors if name in (p.name, p.key)] for name in wanted}
    unknown = [name for name, matches in found.items() if not matches]
    if unknown:
        known = ", ".join(sorted(p.key for p in projectors)) or "none"
        raise click.UsageError(f"no projector named {', '.join(unknown)} (known: {known})")
    chosen = [p for name in wanted for p in found[name]]
    return [p for i, p in enumerate(chosen) if p not in chosen[:i]]


def _called(value: Callable[[], object], spec: str, option: str) -> object:
    try:
        return value()
    except Exception as error:
        message = " ".join(repr(error).split())
        raise click.ClickException(f"{option} {spec!r}: calling it failed: {message}") from None


def _import(module_name: str, spec: str, option: str = "--app") -> object:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise click.ClickException(
            f"{option} {spec!r}: cannot import {module_name}: {error} (the current directory, "
            f"{os.getcwd()}, is on the import path)"
        ) from None
    except Exception as error:  # the module itself failed: a SyntaxError, say
        message = " ".join(repr(error).split())
        where = ""
        if isinstance(error, SyntaxError) and error.filename:
            where = f" ({error.filename}, line {error.lineno})"
        raise click.ClickException(
            f"{option} {spec!r}: importing {module_name} failed: {message}{where}"
        ) from None


def _checked(value: object, spec: str) -> list[Projector]:
    if isinstance(value, Projector):
        return [value]
    items = list(value) if isinstance(value, Iterable) else [value]
    projectors = [item for item in items if isinstance(item, Projector)]
    if not items or len(projectors) < len(items):
        wrong = [item for item in items if not isinstance(item, Projector)]
        got = repr(wrong[0]) if wrong else "nothing"
        raise click.ClickException(
            f"--app {spec!r} must give Projector instances (an iterable of them, or a "
            f"function or class returning them), got {got}"
        )
    return projectors
