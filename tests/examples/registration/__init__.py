"""Tests of the registration context: its domain rules, handlers, processes and queries."""

from __future__ import annotations
