"""The records domain: a student's standing in a section. Pure Python, no I/O."""

from __future__ import annotations
