"""Marking personal data on events: the data subject's id and the personal fields.

A field annotated `Annotated[str, PersonalData()]` is encrypted at rest with a key of the
event's data subject (the field annotated `Annotated[str, DataSubjectId()]`); forgetting
the subject deletes its keys, and the field then reads as its replacement. This module
only reads the declarations (when the class is defined, so mistakes fail at import);
the stores do the encryption.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from eventcore._exceptions import PersonalDataError

__all__ = [
    "SCHEMA_ATTRIBUTE",
    "DataSubjectId",
    "PersonalData",
    "PersonalField",
    "PersonalSchema",
    "forgotten_stream",
    "message_schema",
    "read_schema",
    "register_message_schema",
    "schema_of",
]

SCHEMA_ATTRIBUTE = "__eventcore_personal__"
MAX_GROUP_LENGTH = 64
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class DataSubjectId:
    """Marks the field that holds the id of the person an event's personal data is about.

    ```python
    class StudentRegistered(DomainEvent):
        student_id: Annotated[str, DataSubjectId()]
        name: Annotated[str, PersonalData()]
    ```

    The id stays in clear text (it finds the subject's keys): make it a pseudonymous
    id (a UUID, a student number), never a name or an e-mail address.
    """


class PersonalData:
    """Marks a field as personal data: encrypted at rest, shredded when forgotten.

    Args:
        group: keys are per subject *and* group: a group (say `"medical"`) can be
            forgotten on its own. Default: the subject's main key (`""`).
        replacement: what the field reads as once its key is gone. It must be a
            valid value of the field's type. Default: `None` if the type allows it,
            else `""` if the type is a string; otherwise give one.
    """

    __slots__ = ("group", "replacement")

    def __init__(self, *, group: str = "", replacement: Any = _UNSET) -> None:
        if not isinstance(group, str) or len(group) > MAX_GROUP_LENGTH or "*" in group:
            raise PersonalDataError(
                f"PersonalData(group={group!r}): a group is a str of at most "
                f"{MAX_GROUP_LENGTH} characters, without '*'"
            )
        self.group = group
        self.replacement = replacement

    def __repr__(self) -> str:
        shown = "" if self.replacement is _UNSET else f", replacement={self.replacement!r}"
        return f"PersonalData(group={self.group!r}{shown})"


@dataclass(frozen=True, slots=True)
class PersonalField:
    """One personal field of an event class: its group and replacement (as JSON)."""

    name: str
    group: str
    replacement: Any
    """The replacement as a JSON-compatible value."""


@dataclass(frozen=True, slots=True)
class PersonalSchema:
    """Which field of a class names the data subject, and which fields are personal."""

    subject_field: str
    fields: tuple[PersonalField, ...]

    @property
    def groups(self) -> frozenset[str]:
        """The key groups the class's personal fields use."""
        return frozenset(f.group for f in self.fields)


def read_schema(cls: type[BaseModel]) -> PersonalSchema | None:
    """The personal data declarations of `cls`, checked (raises `PersonalDataError`)."""
    subjects: list[str] = []
    fields: list[PersonalField] = []
    for name, info in cls.model_fields.items():
        markers = [m for m in info.metadata if _is_marker(m)]
        if not markers:
            continue
        where = f"{cls.__qualname__}.{name}"
        if len(markers) > 1:
            raise PersonalDataError(f"{where}: mark a field once (DataSubjectId or PersonalData)")
        marker = markers[0]
        if marker is DataSubjectId or isinstance(marker, DataSubjectId):
            subjects.append(name)
            continue
        personal = marker() if marker is PersonalData else marker
        replacement = _replacement(where, info.annotation, personal.replacement)
        fields.append(PersonalField(info.alias or name, personal.group, replacement))
    if not fields:
        return None
    if len(subjects) != 1:
        found = "none" if not subjects else ", ".join(subjects)
        raise PersonalDataError(
            f"{cls.__qualname__} has personal data fields, so exactly one field must be "
            f"marked DataSubjectId() (found: {found})"
        )
    subject_info = cls.model_fields[subjects[0]]
    return PersonalSchema(subject_info.alias or subjects[0], tuple(fields))


def schema_of(cls: type) -> PersonalSchema | None:
    """The schema stored on an event class when it was defined (`None`: no personal data)."""
    schema: PersonalSchema | None = cls.__dict__.get(SCHEMA_ATTRIBUTE)
    return schema


_MESSAGE_SCHEMAS: dict[tuple[str, int], PersonalSchema] = {}


def register_message_schema(type_name: str, version: int, schema: PersonalSchema | None) -> None:
    """Remember the schema of an integration event type, for its messages at rest."""
    if schema is None:
        _MESSAGE_SCHEMAS.pop((type_name, version), None)
    else:
        _MESSAGE_SCHEMAS[(type_name, version)] = schema


def message_schema(type_name: str, version: int) -> PersonalSchema | None:
    """The schema of integration event `type_name` at `version`, if it has personal data."""
    return _MESSAGE_SCHEMAS.get((type_name, version))


def _is_marker(value: object) -> bool:
    return value in (DataSubjectId, PersonalData) or isinstance(value, DataSubjectId | PersonalData)


def _replacement(where: str, annotation: Any, given: Any) -> Any:
    try:
        adapter: TypeAdapter[Any] | None = TypeAdapter(annotation)
    except Exception:  # an unresolved forward reference: checked when stored
        adapter = None
    if given is _UNSET:
        if _allows_none(annotation):
            return None
        if _allows_str(annotation):
            return ""
        raise PersonalDataError(
            f"{where}: give PersonalData(replacement=...), a valid {annotation!r} to show "
            "once the subject is forgotten"
        )
    if adapter is None:
        return _json_value(where, given)
    try:
        value = adapter.validate_python(given)
        return adapter.dump_python(value, mode="json")
    except Exception as error:
        raise PersonalDataError(
            f"{where}: replacement {given!r} is not a valid {annotation!r}: {error}"
        ) from None


def _json_value(where: str, value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        raise PersonalDataError(f"{where}: replacement {value!r} is not JSON") from None
    return value


def _allows_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_allows_none(arg) for arg in get_args(annotation))
    return False


def _allows_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_allows_str(arg) for arg in get_args(annotation))
    return False


def forgotten_stream(subject_id: str) -> str:
    """The stream a subject's `SubjectForgotten` events go to."""
    return f"eventcore-forgotten-{subject_id}"
