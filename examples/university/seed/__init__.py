"""A realistic term to run the platform on, deterministic from a seed.

`plan_term()` makes the plan: a catalogue of courses across departments with
prerequisites, hundreds of sections with meeting times, capacities and waitlists,
thousands of students in priority groups (by earned credits and level), their completed
courses and some holds. `load_term()` loads it: the term, courses and sections as
registration's commands (in batches, one transaction each), and the students as the
records context's integration events, handed to registration's consumer in bulk (the
records side that will publish them is still to come).

The same seed gives the same catalogue, students and ids; only the time tickets follow
`now` (the priority groups open around it).
"""

from __future__ import annotations

from university.seed.catalogue import Catalogue, plan_catalogue
from university.seed.loading import LoadReport, SeedPlan, load_term, plan_term
from university.seed.students import Students, plan_students

__all__ = [
    "Catalogue",
    "LoadReport",
    "SeedPlan",
    "Students",
    "load_term",
    "plan_catalogue",
    "plan_students",
    "plan_term",
]
