"""The seeded catalogue: departments, courses with prerequisites, and a term's sections.

Each department has a ladder of courses: introductions at the 100 level (no
prerequisites), then 200-, 300- and 400-level courses that each require one course of
the level below (sometimes one of two, sometimes a mathematics course as well), and
graduate courses at the 500 level. Introductions have many large sections, advanced
courses one small one. Meetings are the usual blocks: 50 minutes on Monday, Wednesday
and Friday, or 75 minutes on Tuesday and Thursday, or an evening twice a week.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import time

from university.registration.application.commands import CatalogueCourse, OfferSection
from university.registration.domain.values import Level, Meeting, Weekday

__all__ = ["DEPARTMENTS", "Catalogue", "plan_catalogue"]

DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "CS": ("Computing", "Programming", "Data Structures", "Algorithms", "Systems", "Databases",
           "Networks", "Compilers", "Machine Learning", "Security", "Graphics"),
    "MATH": ("Calculus", "Linear Algebra", "Discrete Mathematics", "Probability", "Analysis",
             "Algebra", "Topology", "Number Theory", "Numerical Methods", "Geometry"),
    "STAT": ("Statistics", "Data Analysis", "Regression", "Sampling", "Bayesian Methods",
             "Time Series", "Experimental Design", "Statistical Learning"),
    "PHYS": ("Mechanics", "Electromagnetism", "Waves", "Thermodynamics", "Quantum Physics",
             "Optics", "Astrophysics", "Solid State Physics"),
    "CHEM": ("General Chemistry", "Organic Chemistry", "Physical Chemistry", "Biochemistry",
             "Analytical Chemistry", "Inorganic Chemistry", "Spectroscopy"),
    "BIO": ("Cell Biology", "Genetics", "Ecology", "Evolution", "Microbiology", "Physiology",
            "Neuroscience", "Immunology", "Molecular Biology"),
    "ECON": ("Microeconomics", "Macroeconomics", "Econometrics", "Game Theory",
             "Labour Economics", "Public Finance", "Development Economics", "Trade"),
    "HIST": ("World History", "Ancient History", "Medieval Europe", "Modern Europe",
             "History of Science", "Colonial Americas", "Asian History", "Historiography"),
    "ENG": ("Academic Writing", "Literature", "Poetry", "The Novel", "Shakespeare",
            "Rhetoric", "Creative Writing", "Literary Theory"),
    "PSY": ("Psychology", "Cognition", "Development", "Social Psychology", "Perception",
            "Personality", "Clinical Psychology", "Research Methods"),
    "PHIL": ("Philosophy", "Logic", "Ethics", "Epistemology", "Metaphysics",
             "Philosophy of Mind", "Political Philosophy"),
    "LING": ("Language", "Phonetics", "Syntax", "Semantics", "Sociolinguistics",
             "Historical Linguistics", "Computational Linguistics"),
    "ART": ("Drawing", "Art History", "Painting", "Sculpture", "Photography", "Design"),
    "MUS": ("Music Theory", "Music History", "Harmony", "Composition", "Ensemble",
            "Orchestration"),
}  # fmt: skip
"""Department codes and the topics their courses are named after, introductory first."""

_LADDER = (100, 100, 100, 200, 200, 200, 300, 300, 300, 400, 400, 500, 500)
_SECTIONS = {100: (3, 6), 200: (2, 3), 300: (1, 2), 400: (1, 1), 500: (1, 1)}
_CAPACITY = {100: (30, 35, 40, 60, 90, 120), 200: (25, 30, 40, 45), 300: (20, 25, 30, 35),
             400: (15, 20, 25), 500: (10, 12, 15)}  # fmt: skip
_PREFIX = {100: "Introduction to", 200: "Topics in", 300: "Intermediate", 400: "Advanced",
           500: "Graduate Seminar in"}  # fmt: skip
_MWF = (Weekday.MO, Weekday.WE, Weekday.FR)
_TR = (Weekday.TU, Weekday.TH)
_BLOCKS = (
    *(Meeting(days=_MWF, starts=time(h), ends=time(h, 50)) for h in range(8, 17)),
    *(Meeting(days=_TR, starts=time(h, m), ends=time(h + 1, m + 15))
      for h, m in ((8, 0), (9, 30), (11, 0), (12, 30), (14, 0), (15, 30))),
    Meeting(days=(Weekday.MO, Weekday.WE), starts=time(18), ends=time(19, 15)),
    Meeting(days=_TR, starts=time(18), ends=time(19, 15)),
)  # fmt: skip
_SURNAMES = ("Achebe", "Banach", "Curie", "Dijkstra", "Euler", "Franklin", "Gauss", "Hopper",
             "Ibn Sina", "Johnson", "Kovalevskaya", "Lovelace", "Meitner", "Noether", "Ostrom",
             "Pauling", "Quine", "Ramanujan", "Sen", "Turing", "Ueda", "Volterra", "Wu",
             "Xenakis", "Yalow", "Zhang")  # fmt: skip


@dataclass(frozen=True)
class Catalogue:
    """The planned catalogue and sections (registration's commands)."""

    courses: list[CatalogueCourse]
    sections: list[OfferSection]

    @property
    def departments(self) -> int:
        """How many departments offer courses."""
        return len({c.department for c in self.courses})

    def course(self, course_id: str) -> CatalogueCourse:
        """The planned course `course_id`."""
        return next(c for c in self.courses if c.course_id == course_id)


def plan_catalogue(rng: random.Random, term_id: str) -> Catalogue:
    """The catalogue and the term's sections, drawn from `rng`."""
    courses: list[CatalogueCourse] = []
    for department, topics in DEPARTMENTS.items():
        courses.extend(_department(rng, department, topics))
    sections = [s for course in courses for s in _sections(rng, term_id, course)]
    return Catalogue(courses, sections)


def _department(
    rng: random.Random, department: str, topics: tuple[str, ...]
) -> list[CatalogueCourse]:
    by_level: dict[int, list[str]] = {}
    courses = []
    for level, topic in zip(_LADDER, topics * 2, strict=False):
        course_id = f"{department}{level + 1 + 10 * len(by_level.get(level, []))}"
        below = by_level.get(level - 100, []) if level < 500 else by_level.get(400, [])
        prerequisites: list[list[str]] = []
        if below:
            group = rng.sample(below, k=min(len(below), rng.choice((1, 1, 2))))
            prerequisites.append(group)
        if level >= 300 and department in ("PHYS", "CHEM", "ECON", "STAT") and rng.random() < 0.5:
            prerequisites.append(["MATH101", "MATH111"])
        graduate = level == 500
        courses.append(
            CatalogueCourse(
                command_id=f"seed:course:{course_id}",
                course_id=course_id,
                title=f"{_PREFIX[level]} {topic}",
                department=department,
                credits=rng.choice((3, 3, 3, 4, 4, 1)) if not graduate else 3,
                level=Level.GRADUATE if graduate else Level.UNDERGRADUATE,
                prerequisites=prerequisites,
                restricted_to=Level.GRADUATE if graduate and rng.random() < 0.5 else None,
            )
        )
        by_level.setdefault(level, []).append(course_id)
    return courses


def _sections(rng: random.Random, term_id: str, course: CatalogueCourse) -> list[OfferSection]:
    level = int(course.course_id.removeprefix(course.department)) // 100 * 100
    low, high = _SECTIONS[level]
    capacity = rng.choice(_CAPACITY[level])
    sections = []
    for n in range(1, rng.randint(low, high) + 1):
        section_id = f"{term_id}-{course.course_id}-{n:02d}"
        waitlist = 0 if rng.random() < 0.1 else max(5, capacity // 5)
        sections.append(
            OfferSection(
                command_id=f"seed:section:{section_id}",
                section_id=section_id,
                term_id=term_id,
                course_id=course.course_id,
                meetings=[rng.choice(_BLOCKS)],
                capacity=capacity,
                waitlist_capacity=waitlist,
                instructor=f"Prof. {rng.choice(_SURNAMES)}",
            )
        )
    return sections
