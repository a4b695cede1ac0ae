"""Which version of each projection's read model serves readers: checks shared by stores."""

from __future__ import annotations

from eventcore._exceptions import ProjectionError

__all__ = ["check_activation"]


def check_activation(name: str, version: int) -> None:
    """Refuse an empty projection name or a version that is not an int >= 1."""
    if not name:
        raise ProjectionError("a projection name cannot be empty")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProjectionError(f"a projection version is an int >= 1, not {version!r}")
