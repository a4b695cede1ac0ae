"""The `Course` aggregate: one entry of the catalogue, with its prerequisites."""

from __future__ import annotations

from collections.abc import Iterable

from eventcore import Aggregate, apply
from university.registration.domain.errors import InvalidCourse
from university.registration.domain.events import CourseCatalogued
from university.registration.domain.values import (
    Level,
    Prerequisites,
    StudentRecord,
    missing_prerequisites,
)

__all__ = ["MAX_CREDITS", "Course"]

MAX_CREDITS = 12
"""The most credits one course may carry."""


class Course(Aggregate, aggregate_type="registration.Course"):
    """A course of the catalogue (stream `course:{course_id}`).

    Its prerequisites are groups of course ids: a student must have completed one
    course of every group (see `Prerequisites`).
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.course_id = ""
        self.title = ""
        self.department = ""
        self.credits = 0
        self.level = Level.UNDERGRADUATE
        self.prerequisites: Prerequisites = ()
        self.restricted_to: Level | None = None

    @staticmethod
    def stream_id(course_id: str) -> str:
        """The stream of course `course_id`."""
        return f"course:{course_id}"

    @classmethod
    def catalogue(
        cls,
        course_id: str,
        *,
        title: str,
        department: str,
        credits: int,
        level: Level = Level.UNDERGRADUATE,
        prerequisites: Iterable[Iterable[str]] = (),
        restricted_to: Level | None = None,
    ) -> Course:
        """Add a course to the catalogue (`InvalidCourse` if its credits or prerequisites
        do not make sense)."""
        groups = tuple(tuple(group) for group in prerequisites)
        if not course_id.strip() or not title.strip():
            raise InvalidCourse(course_id, "the course id and title must not be blank")
        if not 1 <= credits <= MAX_CREDITS:
            raise InvalidCourse(course_id, f"credits must be 1 to {MAX_CREDITS}, not {credits}")
        if any(not group for group in groups):
            raise InvalidCourse(course_id, "a prerequisite group must name at least one course")
        if any(course_id in group for group in groups):
            raise InvalidCourse(course_id, "a course cannot be its own prerequisite")
        course = cls(cls.stream_id(course_id))
        course.record(
            CourseCatalogued(
                course_id=course_id,
                title=title,
                department=department,
                credits=credits,
                level=level,
                prerequisites=groups,
                restricted_to=restricted_to,
            )
        )
        return course

    def missing_for(self, student: StudentRecord) -> Prerequisites:
        """The prerequisite groups `student` has not completed a course of."""
        return missing_prerequisites(self.prerequisites, student.completed_courses)

    @apply
    def _catalogued(self, event: CourseCatalogued) -> None:
        self.course_id = event.course_id
        self.title = event.title
        self.department = event.department
        self.credits = event.credits
        self.level = event.level
        self.prerequisites = event.prerequisites
        self.restricted_to = event.restricted_to
