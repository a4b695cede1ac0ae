"""The records use cases: consuming registration's contracts into the records kept."""

from __future__ import annotations
