"""Tests of the reference application in `examples/university`."""

from __future__ import annotations
